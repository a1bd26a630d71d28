/* gguf.h - bounds-checked GGUF reader (read-only mmap) and writer.
 *
 *   gguf_file *f; hl_err e;
 *   if (gguf_open(&f, "model.gguf", &e) < 0) { puts(e.msg); return; }
 *   uint32_t n_layer; gguf_get_u32(f, "llama.block_count", &n_layer);
 *   gguf_close(f);
 *
 * Reader contract. A GGUF file is untrusted input. gguf_open maps the file
 * read-only and parses the header, every metadata pair and every tensor
 * record through a bounds-checked cursor; any count, string length, type,
 * offset, size or multiplication that would step outside the file or
 * overflow fails the open with a message naming the field and its byte
 * offset. On success every tensor's data range lies inside the mapping and
 * its type is known by name (an unsupported type is *not* a parse error: the
 * model loader refuses it by name; a type number nobody knows is). Versions 2
 * and 3 are accepted; `general.alignment` is honoured (a power of two).
 * Vocab-only files (zero tensors) are valid. Duplicate keys and duplicate
 * tensor names are errors; tensor data ranges may overlap (read-only views);
 * n_dims is 0..4 (0 = a scalar); arrays nest at most 8 levels deep.
 *
 * Ownership: the gguf_file owns the mapping and every view it hands out
 * (strings, arrays, tensor data); they live until gguf_close. Strings are
 * (pointer, length) views into the file, not NUL-terminated. The reader is
 * immutable after open and may be read from any number of threads.
 *
 * Writer contract: gguf_writer collects metadata and tensors (copying what it
 * is given) and writes a version-3 file with 32-byte alignment in one call.
 */
#ifndef HL_GGUF_H
#define HL_GGUF_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "../util/dtype.h"
#include "../util/err.h"

typedef enum gguf_vtype {
    GGUF_VT_U8 = 0,
    GGUF_VT_I8 = 1,
    GGUF_VT_U16 = 2,
    GGUF_VT_I16 = 3,
    GGUF_VT_U32 = 4,
    GGUF_VT_I32 = 5,
    GGUF_VT_F32 = 6,
    GGUF_VT_BOOL = 7,
    GGUF_VT_STRING = 8,
    GGUF_VT_ARRAY = 9,
    GGUF_VT_U64 = 10,
    GGUF_VT_I64 = 11,
    GGUF_VT_F64 = 12,
    GGUF_VT_COUNT
} gguf_vtype;

typedef struct hl_str {
    const char *ptr;
    uint64_t len;
} hl_str;

/* An array value. Elements of fixed-size types are packed at `data` in file
 * byte order (little-endian); read them with gguf_arr_* helpers. Arrays of
 * strings and arrays of arrays are variable-size: the reader keeps a table
 * of element offsets so element i is reachable in O(1). */
typedef struct gguf_array gguf_array;

typedef struct gguf_value {
    gguf_vtype type;
    union {
        uint64_t u64; /* U8, U16, U32, U64, BOOL (0/1) widened */
        int64_t i64;  /* I8, I16, I32, I64 widened */
        double f64;   /* F32, F64 widened */
        hl_str str;
        const gguf_array *arr;
    } v;
} gguf_value;

typedef struct gguf_kv {
    hl_str key;
    gguf_value val;
    uint64_t offset; /* byte offset of the key in the file */
} gguf_kv;

#define GGUF_MAX_DIMS 4

typedef struct gguf_tensor {
    hl_str name;
    uint32_t n_dims;
    uint64_t ne[GGUF_MAX_DIMS]; /* ne[0] is the contiguous (row) dimension; unused dims are 1 */
    uint32_t type;              /* hl_dtype number */
    uint64_t offset;            /* relative to the data section, as stored */
    const void *data;           /* inside the mapping */
    uint64_t nbytes;
} gguf_tensor;

typedef struct gguf_file gguf_file;

/* Opens and validates path. On failure *out is NULL and e says why. */
int gguf_open(gguf_file **out, const char *path, hl_err *e);
/* Parses an in-memory image (not copied; must outlive the gguf_file). Same
 * checks as gguf_open; used by the fuzzer and tests. */
int gguf_parse(gguf_file **out, const void *buf, size_t len, hl_err *e);
void gguf_close(gguf_file *f);

uint32_t gguf_version(const gguf_file *f);
uint32_t gguf_alignment(const gguf_file *f);
uint64_t gguf_file_size(const gguf_file *f);
uint64_t gguf_data_offset(const gguf_file *f); /* start of the tensor data section */

/* Metadata. */
uint64_t gguf_kv_count(const gguf_file *f);
const gguf_kv *gguf_kv_at(const gguf_file *f, uint64_t i);
const gguf_kv *gguf_find(const gguf_file *f, const char *key); /* NULL if absent */

/* Typed getters: return 0 and store the value when the key exists and its
 * type converts losslessly (any integer type to a wider one in range, F32 to
 * F64, ...); return -1 and leave *out alone otherwise. */
int gguf_get_u32(const gguf_file *f, const char *key, uint32_t *out);
int gguf_get_u64(const gguf_file *f, const char *key, uint64_t *out);
int gguf_get_i64(const gguf_file *f, const char *key, int64_t *out);
int gguf_get_f32(const gguf_file *f, const char *key, float *out);
int gguf_get_bool(const gguf_file *f, const char *key, bool *out);
int gguf_get_str(const gguf_file *f, const char *key, hl_str *out);
int gguf_get_arr(const gguf_file *f, const char *key, const gguf_array **out);

/* Arrays. Index out of range or wrong element type returns -1. */
gguf_vtype gguf_arr_type(const gguf_array *a);
uint64_t gguf_arr_len(const gguf_array *a);
int gguf_arr_str(const gguf_array *a, uint64_t i, hl_str *out);
int gguf_arr_f32(const gguf_array *a, uint64_t i, float *out);   /* F32 elements */
int gguf_arr_i64(const gguf_array *a, uint64_t i, int64_t *out); /* any integer or BOOL element */
int gguf_arr_arr(const gguf_array *a, uint64_t i, const gguf_array **out);
/* Raw packed elements of a fixed-size element type, or NULL. */
const void *gguf_arr_data(const gguf_array *a);

/* Tensors. */
uint64_t gguf_tensor_count(const gguf_file *f);
const gguf_tensor *gguf_tensor_at(const gguf_file *f, uint64_t i);
const gguf_tensor *gguf_find_tensor(const gguf_file *f, const char *name); /* NULL if absent */

/* Compares a view with a C string. */
bool hl_str_eq(hl_str s, const char *c);

/* ---- writer ---- */

typedef struct gguf_writer gguf_writer;

gguf_writer *gguf_writer_new(void); /* NULL on out-of-memory */
void gguf_writer_free(gguf_writer *w);

/* Each setter copies its arguments. Setting an existing key replaces it. All
 * return 0 or -1 (out of memory, e says so). */
int gguf_set_u32(gguf_writer *w, const char *key, uint32_t v, hl_err *e);
int gguf_set_i32(gguf_writer *w, const char *key, int32_t v, hl_err *e);
int gguf_set_u64(gguf_writer *w, const char *key, uint64_t v, hl_err *e);
int gguf_set_f32(gguf_writer *w, const char *key, float v, hl_err *e);
int gguf_set_bool(gguf_writer *w, const char *key, bool v, hl_err *e);
int gguf_set_str(gguf_writer *w, const char *key, const char *v, hl_err *e);
/* Copies one metadata pair, of any type including nested arrays, from a
 * reader (used to copy a tokenizer between files). */
int gguf_set_kv_from(gguf_writer *w, const gguf_kv *kv, hl_err *e);
/* Arrays of scalars: elem is U8..F64 (not STRING/ARRAY); data holds n packed
 * elements in host (little-endian) order. */
int gguf_set_arr(gguf_writer *w, const char *key, gguf_vtype elem, const void *data, uint64_t n,
                 hl_err *e);
int gguf_set_arr_str(gguf_writer *w, const char *key, const char *const *v, uint64_t n, hl_err *e);

/* Adds a tensor whose data (hl_dtype_row_size(type, ne[0]) * ne[1]*ne[2]*ne[3]
 * bytes) is copied. */
int gguf_add_tensor(gguf_writer *w, const char *name, uint32_t type, uint32_t n_dims,
                    const uint64_t *ne, const void *data, hl_err *e);

/* Writes the file (version 3, general.alignment respected if set, else 32). */
int gguf_writer_write(gguf_writer *w, const char *path, hl_err *e);

#endif
