/* gguf_read.c - the GGUF reader: mapping, parsing, validation, accessors.
 *
 *   gguf_file *f; hl_err e;
 *   if (gguf_parse(&f, buf, len, &e) < 0) puts(e.msg);
 *
 * Contract. Every byte of the image is untrusted and is read only through
 * the cursor below, which checks each read against the end of the image and
 * formats the first error with the field's name and byte offset (and, inside
 * a metadata pair or tensor record, the key or tensor name). Hostile counts
 * are bounded by the bytes left before anything is allocated: each kv pair
 * needs at least KV_MIN_BYTES, each tensor record TENSOR_MIN_BYTES, each
 * string element 8 bytes and each nested array 12, so allocations stay within
 * a small multiple of the file size. Nesting is limited to GGUF_MAX_NEST
 * levels, so recursion depth is bounded.
 *
 * Decisions: duplicate keys and duplicate tensor names are errors (lookups
 * would be ambiguous). Tensor data ranges may overlap or leave gaps: views
 * are read-only, so overlap cannot corrupt anything, and every range is
 * checked to lie inside the image and to start at an aligned offset. A
 * tensor with n_dims 0 is a scalar (all ne are 1), as ggml reads it. BOOL
 * bytes other than 0 read as true. Tensor dims and element counts must fit
 * int64 (ggml's ne type).
 *
 * Ownership: a gguf_file owns its kv and tensor tables, hash indexes and
 * array tables; with gguf_open it also owns the read-only mapping. After a
 * successful open nothing is mutated, so any thread may read concurrently.
 * A file truncated by someone else while mapped raises SIGBUS on access;
 * that is outside what a reader can check.
 */
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include "gguf_internal.h"

#define GGUF_HEADER_BYTES 24 /* magic, version, tensor count, kv count */
#define KV_MIN_BYTES 13      /* key length (8) + value type (4) + a 1-byte value */
#define TENSOR_MIN_BYTES 24  /* name length (8) + n_dims (4) + type (4) + offset (8) */
#define ARR_MIN_BYTES 12     /* element type (4) + length (8) */
#define STR_MIN_BYTES 8      /* length */
#define DEFAULT_ALIGNMENT 32
#define CTX_NAME_MAX 64 /* bytes of a key/tensor name quoted in messages */

typedef struct htab {
    uint64_t *slot; /* index + 1, 0 when empty */
    uint64_t mask;
} htab;

struct gguf_file {
    const uint8_t *base;
    uint64_t size;
    void *map; /* the mapping made by gguf_open, or NULL */
    size_t map_len;
    uint32_t version;
    uint32_t alignment;
    uint64_t data_offset;
    uint64_t n_kv;
    gguf_kv *kv;
    uint64_t n_tensors;
    gguf_tensor *tensors;
    htab kv_index;
    htab tensor_index;
};

/* ---- bounds-checked cursor ---- */

typedef struct cursor {
    const uint8_t *base;
    uint64_t size;
    uint64_t pos;
    hl_err *e;
    char ctx[CTX_NAME_MAX + 64]; /* "kv #3 'general.name'"; "" in the header */
} cursor;

static int cur_fail(cursor *c, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

static int cur_fail(cursor *c, const char *fmt, ...) {
    char msg[HL_ERR_MSG_MAX];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);
    return hl_errf(c->e, "gguf: %s%s%s", c->ctx, c->ctx[0] ? ": " : "", msg);
}

/* Sets the message context to `what 'name' (#i)` with the name quoted
 * printably and cut to CTX_NAME_MAX bytes, or `what #i` when name is NULL. */
static void cur_ctx(cursor *c, const char *what, const hl_str *name, uint64_t i) {
    if (!name) {
        snprintf(c->ctx, sizeof c->ctx, "%s #%" PRIu64, what, i);
        return;
    }
    char q[CTX_NAME_MAX + 4];
    uint64_t n = name->len < CTX_NAME_MAX ? name->len : CTX_NAME_MAX;
    for (uint64_t k = 0; k < n; k++) {
        unsigned char ch = (unsigned char)name->ptr[k];
        q[k] = ch >= 0x20 && ch < 0x7f ? (char)ch : '?';
    }
    strcpy(q + n, name->len > n ? "..." : "");
    snprintf(c->ctx, sizeof c->ctx, "%s '%s' (#%" PRIu64 ")", what, q, i);
}

static uint64_t cur_left(const cursor *c) {
    return c->size - c->pos;
}

static int cur_need(cursor *c, uint64_t n, const char *field) {
    if (n <= cur_left(c)) return 0;
    return cur_fail(c,
                    "%s at byte %" PRIu64 " needs %" PRIu64
                    " bytes but the file ends at byte %" PRIu64 " (truncated file?)",
                    field, c->pos, n, c->size);
}

static int cur_u8(cursor *c, const char *field, uint8_t *v) {
    if (cur_need(c, 1, field) < 0) return -1;
    *v = c->base[c->pos++];
    return 0;
}

static int cur_u16(cursor *c, const char *field, uint16_t *v) {
    if (cur_need(c, 2, field) < 0) return -1;
    memcpy(v, c->base + c->pos, 2);
    c->pos += 2;
    return 0;
}

static int cur_u32(cursor *c, const char *field, uint32_t *v) {
    if (cur_need(c, 4, field) < 0) return -1;
    *v = gguf_le32(c->base + c->pos);
    c->pos += 4;
    return 0;
}

static int cur_u64(cursor *c, const char *field, uint64_t *v) {
    if (cur_need(c, 8, field) < 0) return -1;
    *v = gguf_le64(c->base + c->pos);
    c->pos += 8;
    return 0;
}

static int cur_str(cursor *c, const char *field, hl_str *s) {
    uint64_t at = c->pos, len;
    char lf[64];
    snprintf(lf, sizeof lf, "%s length", field);
    if (cur_u64(c, lf, &len) < 0) return -1;
    if (len > cur_left(c))
        return cur_fail(
            c, "%s length %" PRIu64 " at byte %" PRIu64 " runs past end of file (size %" PRIu64 ")",
            field, len, at, c->size);
    s->ptr = (const char *)c->base + c->pos;
    s->len = len;
    c->pos += len;
    return 0;
}

/* ---- hash index over hl_str names (first member of gguf_kv / gguf_tensor) ---- */

static uint64_t hash_bytes(const char *p, uint64_t n) {
    uint64_t h = 1469598103934665603ull; /* FNV-1a */
    for (uint64_t i = 0; i < n; i++) h = (h ^ (unsigned char)p[i]) * 1099511628211ull;
    return h;
}

static bool str_eq(hl_str a, const char *p, uint64_t n) {
    return a.len == n && (n == 0 || memcmp(a.ptr, p, n) == 0);
}

static int htab_init(htab *t, uint64_t n) {
    uint64_t cap = 8;
    while (cap < 2 * n) cap *= 2; /* n is bounded by the file size, so no overflow */
    t->slot = calloc(cap, sizeof *t->slot);
    t->mask = cap - 1;
    return t->slot ? 0 : -1;
}

/* Looks name up among items (stride bytes apart, hl_str first); returns the
 * index or UINT64_MAX. */
static uint64_t htab_find(const htab *t, const void *items, size_t stride, const char *p,
                          uint64_t n) {
    if (!t->slot) return UINT64_MAX;
    for (uint64_t h = hash_bytes(p, n) & t->mask;; h = (h + 1) & t->mask) {
        uint64_t s = t->slot[h];
        if (!s) return UINT64_MAX;
        const hl_str *name = (const hl_str *)((const char *)items + (s - 1) * stride);
        if (str_eq(*name, p, n)) return s - 1;
    }
}

/* Inserts item i; returns the index of an earlier item with the same name,
 * or UINT64_MAX when the name is new. */
static uint64_t htab_insert(htab *t, const void *items, size_t stride, uint64_t i) {
    const hl_str *name = (const hl_str *)((const char *)items + i * stride);
    uint64_t h = hash_bytes(name->ptr, name->len) & t->mask;
    for (;; h = (h + 1) & t->mask) {
        uint64_t s = t->slot[h];
        if (!s) break;
        const hl_str *other = (const hl_str *)((const char *)items + (s - 1) * stride);
        if (str_eq(*other, name->ptr, name->len)) return s - 1;
    }
    t->slot[h] = i + 1;
    return UINT64_MAX;
}

/* ---- parsing ---- */

static const char *vtype_name(uint32_t t) {
    static const char *const names[GGUF_VT_COUNT] = {
        "u8",   "i8",     "u16",   "i16", "u32", "i32", "f32",
        "bool", "string", "array", "u64", "i64", "f64",
    };
    return t < GGUF_VT_COUNT ? names[t] : "unknown";
}

static void array_free(gguf_array *a) {
    if (a->sub)
        for (uint64_t i = 0; i < a->n; i++) array_free(&a->sub[i]);
    free(a->sub);
    free(a->offs);
    a->sub = NULL;
    a->offs = NULL;
}

static int oom(cursor *c, const char *what, uint64_t n) {
    return cur_fail(c, "out of memory allocating %s for %" PRIu64 " elements", what, n);
}

/* Parses an array (element type, length, elements) at the cursor. depth is
 * this array's nesting level, 1 for a kv's own array. On failure the caller
 * still frees a with array_free. */
static int parse_array(cursor *c, gguf_array *a, int depth) {
    uint64_t at = c->pos;
    uint32_t et;
    uint64_t n;
    if (cur_u32(c, "array element type", &et) < 0) return -1;
    if (et >= GGUF_VT_COUNT)
        return cur_fail(c,
                        "array element type %" PRIu32 " at byte %" PRIu64
                        " is not a GGUF value type (0..12)",
                        et, at);
    uint64_t len_at = c->pos;
    if (cur_u64(c, "array length", &n) < 0) return -1;
    a->type = (gguf_vtype)et;
    a->data = c->base + c->pos;
    size_t es = gguf_vtype_size(et);
    uint64_t min = es ? es : et == GGUF_VT_STRING ? STR_MIN_BYTES : ARR_MIN_BYTES;
    if (n > cur_left(c) / min)
        return cur_fail(c,
                        "array length %" PRIu64 " at byte %" PRIu64 " runs past end of file: %s "
                        "elements need at least %" PRIu64 " bytes each, %" PRIu64
                        " bytes remain (file size %" PRIu64 "; truncated file?)",
                        n, len_at, vtype_name(et), min, cur_left(c), c->size);
    if (et == GGUF_VT_ARRAY && depth >= GGUF_MAX_NEST)
        return cur_fail(c, "array at byte %" PRIu64 " is nested deeper than %d levels", at,
                        GGUF_MAX_NEST);
    if (es) {
        c->pos += n * es;
        a->n = n;
        return 0;
    }
    if (et == GGUF_VT_STRING) {
        if (n && !(a->offs = malloc(n * sizeof *a->offs))) return oom(c, "string offsets", n);
        a->n = n;
        for (uint64_t i = 0; i < n; i++) {
            hl_str s;
            a->offs[i] = (uint64_t)(c->base + c->pos - a->data);
            if (cur_str(c, "string element", &s) < 0) return -1;
        }
        return 0;
    }
    if (n && !(a->sub = calloc(n, sizeof *a->sub))) return oom(c, "nested arrays", n);
    a->n = n;
    for (uint64_t i = 0; i < n; i++)
        if (parse_array(c, &a->sub[i], depth + 1) < 0) return -1;
    return 0;
}

static int parse_value(cursor *c, uint32_t type, gguf_value *v) {
    uint8_t u8;
    uint16_t u16;
    uint32_t u32;
    uint64_t u64;
    float f32;
    double f64;
    v->type = (gguf_vtype)type;
    switch (type) {
    case GGUF_VT_U8:
    case GGUF_VT_I8:
    case GGUF_VT_BOOL:
        if (cur_u8(c, "value", &u8) < 0) return -1;
        if (type == GGUF_VT_U8)
            v->v.u64 = u8;
        else if (type == GGUF_VT_I8)
            v->v.i64 = (int8_t)u8;
        else
            v->v.u64 = u8 != 0;
        return 0;
    case GGUF_VT_U16:
    case GGUF_VT_I16:
        if (cur_u16(c, "value", &u16) < 0) return -1;
        if (type == GGUF_VT_U16)
            v->v.u64 = u16;
        else
            v->v.i64 = (int16_t)u16;
        return 0;
    case GGUF_VT_U32:
    case GGUF_VT_I32:
    case GGUF_VT_F32:
        if (cur_u32(c, "value", &u32) < 0) return -1;
        if (type == GGUF_VT_U32)
            v->v.u64 = u32;
        else if (type == GGUF_VT_I32)
            v->v.i64 = (int32_t)u32;
        else {
            memcpy(&f32, &u32, 4);
            v->v.f64 = f32;
        }
        return 0;
    case GGUF_VT_U64:
    case GGUF_VT_I64:
    case GGUF_VT_F64:
        if (cur_u64(c, "value", &u64) < 0) return -1;
        if (type == GGUF_VT_U64)
            v->v.u64 = u64;
        else if (type == GGUF_VT_I64)
            v->v.i64 = (int64_t)u64;
        else {
            memcpy(&f64, &u64, 8);
            v->v.f64 = f64;
        }
        return 0;
    case GGUF_VT_STRING:
        return cur_str(c, "string value", &v->v.str);
    default:
        break;
    }
    /* GGUF_VT_ARRAY; the caller checked type < GGUF_VT_COUNT. */
    gguf_array *a = calloc(1, sizeof *a);
    if (!a) return oom(c, "an array", 1);
    v->v.arr = a;
    return parse_array(c, a, 1);
}

static int parse_header(cursor *c, gguf_file *f, uint64_t *n_tensors, uint64_t *n_kv) {
    if (c->size < 4)
        return cur_fail(c,
                        "file is %" PRIu64 " bytes, too short for the GGUF magic at byte 0 "
                        "(a GGUF header is %d bytes)",
                        c->size, GGUF_HEADER_BYTES);
    const uint8_t *m = c->base;
    if (memcmp(m, "GGUF", 4) != 0)
        return cur_fail(c,
                        "bad magic %02x %02x %02x %02x at byte 0 (expected \"GGUF\" = 47 47 55 "
                        "46): not a GGUF file",
                        m[0], m[1], m[2], m[3]);
    c->pos = 4;
    if (cur_u32(c, "version", &f->version) < 0) return -1;
    if (f->version == 1)
        return cur_fail(c, "version 1 at byte 4 is not supported (GGUF v1 is the 2023 draft "
                           "format); convert the model again with a current llama.cpp");
    if (f->version != 2 && f->version != 3) {
        if ((f->version & 0xffff) == 0)
            return cur_fail(c,
                            "version %" PRIu32 " at byte 4 looks byte-swapped: big-endian GGUF "
                            "files are not supported",
                            f->version);
        return cur_fail(c, "version %" PRIu32 " at byte 4 is not supported (2 and 3 are)",
                        f->version);
    }
    if (cur_u64(c, "tensor count", n_tensors) < 0) return -1;
    if (cur_u64(c, "kv count", n_kv) < 0) return -1;
    uint64_t left = cur_left(c);
    if (*n_tensors > left / TENSOR_MIN_BYTES)
        return cur_fail(c,
                        "tensor count %" PRIu64 " at byte 8 is impossible: each tensor record "
                        "needs at least %d bytes and only %" PRIu64 " bytes follow the header "
                        "(file size %" PRIu64 "; truncated file?)",
                        *n_tensors, TENSOR_MIN_BYTES, left, c->size);
    left -= *n_tensors * TENSOR_MIN_BYTES;
    if (*n_kv > left / KV_MIN_BYTES)
        return cur_fail(c,
                        "kv count %" PRIu64 " at byte 16 is impossible: each kv pair needs at "
                        "least %d bytes and only %" PRIu64 " bytes remain for them "
                        "(file size %" PRIu64 "; truncated file?)",
                        *n_kv, KV_MIN_BYTES, left, c->size);
    return 0;
}

static int parse_kvs(cursor *c, gguf_file *f, uint64_t n) {
    if (n && !(f->kv = calloc(n, sizeof *f->kv))) return oom(c, "kv pairs", n);
    if (htab_init(&f->kv_index, n) < 0) return oom(c, "the key index", n);
    for (uint64_t i = 0; i < n; i++) {
        gguf_kv *kv = &f->kv[i];
        cur_ctx(c, "kv", NULL, i);
        kv->offset = c->pos;
        if (cur_str(c, "key", &kv->key) < 0) return -1;
        cur_ctx(c, "kv", &kv->key, i);
        uint64_t dup = htab_insert(&f->kv_index, f->kv, sizeof *f->kv, i);
        if (dup != UINT64_MAX)
            return cur_fail(c,
                            "duplicate key at byte %" PRIu64 " (first defined by kv #%" PRIu64
                            " at byte %" PRIu64 ")",
                            kv->offset, dup, f->kv[dup].offset);
        uint64_t at = c->pos;
        uint32_t type;
        if (cur_u32(c, "value type", &type) < 0) return -1;
        if (type >= GGUF_VT_COUNT)
            return cur_fail(
                c, "value type %" PRIu32 " at byte %" PRIu64 " is not a GGUF value type (0..12)",
                type, at);
        f->n_kv = i + 1; /* from here on gguf_close frees this pair's array */
        if (parse_value(c, type, &kv->val) < 0) return -1;
    }
    c->ctx[0] = 0;
    return 0;
}

static int check_alignment(cursor *c, gguf_file *f) {
    f->alignment = DEFAULT_ALIGNMENT;
    const gguf_kv *kv = gguf_find(f, "general.alignment");
    if (!kv) return 0;
    if (kv->val.type != GGUF_VT_U32)
        return cur_fail(c, "general.alignment (kv at byte %" PRIu64 ") has type %s; it must be u32",
                        kv->offset, vtype_name(kv->val.type));
    uint64_t a = kv->val.v.u64;
    if (a == 0 || (a & (a - 1)))
        return cur_fail(c,
                        "general.alignment = %" PRIu64 " (kv at byte %" PRIu64
                        ") is not a nonzero power of two",
                        a, kv->offset);
    f->alignment = (uint32_t)a;
    return 0;
}

/* Parses tensor record i; *off_at receives the byte offset of its offset
 * field for the range check done once the data section is known. */
static int parse_tensor(cursor *c, gguf_file *f, uint64_t i, uint64_t *off_at) {
    gguf_tensor *t = &f->tensors[i];
    cur_ctx(c, "tensor", NULL, i);
    uint64_t name_at = c->pos;
    if (cur_str(c, "name", &t->name) < 0) return -1;
    cur_ctx(c, "tensor", &t->name, i);
    uint64_t dup = htab_insert(&f->tensor_index, f->tensors, sizeof *f->tensors, i);
    if (dup != UINT64_MAX)
        return cur_fail(c, "duplicate tensor name at byte %" PRIu64 " (also tensor #%" PRIu64 ")",
                        name_at, dup);
    uint64_t at = c->pos;
    if (cur_u32(c, "n_dims", &t->n_dims) < 0) return -1;
    if (t->n_dims > GGUF_MAX_DIMS)
        return cur_fail(c, "n_dims %" PRIu32 " at byte %" PRIu64 " exceeds the maximum of %d",
                        t->n_dims, at, GGUF_MAX_DIMS);
    uint64_t dims_at = c->pos, nel = 1;
    for (int d = 0; d < GGUF_MAX_DIMS; d++) t->ne[d] = 1;
    for (uint32_t d = 0; d < t->n_dims; d++) {
        at = c->pos;
        if (cur_u64(c, "dimension", &t->ne[d]) < 0) return -1;
        if (t->ne[d] == 0 || t->ne[d] > (uint64_t)INT64_MAX)
            return cur_fail(c,
                            "dimension ne[%" PRIu32 "] = %" PRIu64 " at byte %" PRIu64
                            " is out of range (1..2^63-1)",
                            d, t->ne[d], at);
        if (t->ne[d] > (uint64_t)INT64_MAX / nel)
            return cur_fail(
                c, "element count overflows: dimensions at byte %" PRIu64 " multiply past 2^63-1",
                dims_at);
        nel *= t->ne[d];
    }
    at = c->pos;
    if (cur_u32(c, "type", &t->type) < 0) return -1;
    const hl_dtype_traits *tr = hl_dtype_get(t->type);
    if (!tr)
        return cur_fail(
            c, "unknown tensor type %" PRIu32 " at byte %" PRIu64 " (not a ggml type number)",
            t->type, at);
    if (t->ne[0] % tr->block_elems)
        return cur_fail(c,
                        "ne[0] = %" PRIu64 " (byte %" PRIu64 ") is not a multiple of the %s "
                        "block size %" PRIu32,
                        t->ne[0], dims_at, tr->name, tr->block_elems);
    /* nel fits int64 and block_bytes <= 292, so checking each step suffices. */
    uint64_t nb = t->ne[0] / tr->block_elems * tr->block_bytes;
    for (int d = 1; d < GGUF_MAX_DIMS; d++) {
        if (nb > UINT64_MAX / t->ne[d])
            return cur_fail(c,
                            "data size overflows: %s dimensions at byte %" PRIu64
                            " need more than 2^64 bytes",
                            tr->name, dims_at);
        nb *= t->ne[d];
    }
    t->nbytes = nb;
    *off_at = c->pos;
    if (cur_u64(c, "data offset", &t->offset) < 0) return -1;
    if (t->offset % f->alignment)
        return cur_fail(c,
                        "data offset %" PRIu64 " at byte %" PRIu64
                        " is not a multiple of the alignment %" PRIu32,
                        t->offset, *off_at, f->alignment);
    return 0;
}

static int parse_tensors(cursor *c, gguf_file *f, uint64_t n) {
    uint64_t *off_at = NULL;
    if (n) {
        f->tensors = calloc(n, sizeof *f->tensors);
        off_at = malloc(n * sizeof *off_at);
        if (!f->tensors || !off_at) {
            free(off_at);
            return oom(c, "tensor records", n);
        }
    }
    f->n_tensors = n;
    int rc = htab_init(&f->tensor_index, n) < 0 ? oom(c, "the tensor index", n) : 0;
    for (uint64_t i = 0; rc == 0 && i < n; i++) rc = parse_tensor(c, f, i, &off_at[i]);
    if (rc == 0) {
        /* The data section starts at the next aligned byte (pos <= size, so no overflow). */
        uint64_t a = f->alignment;
        f->data_offset = (c->pos + a - 1) / a * a;
        uint64_t room = f->data_offset <= c->size ? c->size - f->data_offset : 0;
        for (uint64_t i = 0; rc == 0 && i < n; i++) {
            gguf_tensor *t = &f->tensors[i];
            if (t->offset > room || t->nbytes > room - t->offset) {
                cur_ctx(c, "tensor", &t->name, i);
                rc =
                    cur_fail(c,
                             "data offset %" PRIu64 " + size %" PRIu64 " exceeds file size %" PRIu64
                             " (data section at byte %" PRIu64 ", field at byte %" PRIu64 ")",
                             t->offset, t->nbytes, c->size, f->data_offset, off_at[i]);
            } else {
                t->data = c->base + f->data_offset + t->offset;
            }
        }
    }
    free(off_at);
    return rc;
}

int gguf_parse(gguf_file **out, const void *buf, size_t len, hl_err *e) {
    *out = NULL;
    gguf_file *f = calloc(1, sizeof *f);
    if (!f) return hl_errf(e, "gguf: out of memory");
    static const uint8_t empty[1];
    f->base = buf ? buf : empty;
    f->size = buf ? len : 0;
    cursor c = {.base = f->base, .size = f->size, .e = e};
    uint64_t n_tensors, n_kv;
    if (parse_header(&c, f, &n_tensors, &n_kv) < 0 || parse_kvs(&c, f, n_kv) < 0 ||
        check_alignment(&c, f) < 0 || parse_tensors(&c, f, n_tensors) < 0) {
        gguf_close(f);
        return -1;
    }
    *out = f;
    return 0;
}

int gguf_open(gguf_file **out, const char *path, hl_err *e) {
    *out = NULL;
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0) return hl_errf(e, "gguf: cannot open '%s': %s", path, strerror(errno));
    struct stat st;
    if (fstat(fd, &st) < 0) {
        int err = errno;
        close(fd);
        return hl_errf(e, "gguf: cannot stat '%s': %s", path, strerror(err));
    }
    if (!S_ISREG(st.st_mode)) {
        close(fd);
        return hl_errf(e, "gguf: '%s' is not a regular file", path);
    }
    if ((uint64_t)st.st_size > SIZE_MAX) {
        close(fd);
        return hl_errf(e, "gguf: '%s' is too large to map", path);
    }
    size_t len = (size_t)st.st_size;
    void *map = NULL;
    if (len) { /* mmap refuses length 0; an empty file fails the header check below */
        map = mmap(NULL, len, PROT_READ, MAP_PRIVATE, fd, 0);
        if (map == MAP_FAILED) {
            int err = errno;
            close(fd);
            return hl_errf(e, "gguf: cannot map '%s' (%zu bytes): %s", path, len, strerror(err));
        }
    }
    close(fd);
    if (gguf_parse(out, map, len, e) < 0) {
        if (map) munmap(map, len);
        return -1;
    }
    (*out)->map = map;
    (*out)->map_len = len;
    return 0;
}

void gguf_close(gguf_file *f) {
    if (!f) return;
    for (uint64_t i = 0; i < f->n_kv; i++) {
        if (f->kv[i].val.type != GGUF_VT_ARRAY || !f->kv[i].val.v.arr) continue;
        gguf_array *a = (gguf_array *)f->kv[i].val.v.arr;
        array_free(a);
        free(a);
    }
    free(f->kv);
    free(f->tensors);
    free(f->kv_index.slot);
    free(f->tensor_index.slot);
    if (f->map) munmap(f->map, f->map_len);
    free(f);
}

/* ---- accessors ---- */

uint32_t gguf_version(const gguf_file *f) {
    return f->version;
}
uint32_t gguf_alignment(const gguf_file *f) {
    return f->alignment;
}
uint64_t gguf_file_size(const gguf_file *f) {
    return f->size;
}
uint64_t gguf_data_offset(const gguf_file *f) {
    return f->data_offset;
}
uint64_t gguf_kv_count(const gguf_file *f) {
    return f->n_kv;
}
uint64_t gguf_tensor_count(const gguf_file *f) {
    return f->n_tensors;
}

const gguf_kv *gguf_kv_at(const gguf_file *f, uint64_t i) {
    return i < f->n_kv ? &f->kv[i] : NULL;
}

const gguf_tensor *gguf_tensor_at(const gguf_file *f, uint64_t i) {
    return i < f->n_tensors ? &f->tensors[i] : NULL;
}

const gguf_kv *gguf_find(const gguf_file *f, const char *key) {
    uint64_t i = htab_find(&f->kv_index, f->kv, sizeof *f->kv, key, strlen(key));
    return i == UINT64_MAX ? NULL : &f->kv[i];
}

const gguf_tensor *gguf_find_tensor(const gguf_file *f, const char *name) {
    uint64_t i = htab_find(&f->tensor_index, f->tensors, sizeof *f->tensors, name, strlen(name));
    return i == UINT64_MAX ? NULL : &f->tensors[i];
}

bool hl_str_eq(hl_str s, const char *c) {
    return str_eq(s, c, strlen(c));
}

static bool is_unsigned(gguf_vtype t) {
    return t == GGUF_VT_U8 || t == GGUF_VT_U16 || t == GGUF_VT_U32 || t == GGUF_VT_U64;
}

static bool is_signed(gguf_vtype t) {
    return t == GGUF_VT_I8 || t == GGUF_VT_I16 || t == GGUF_VT_I32 || t == GGUF_VT_I64;
}

/* Integer value of v as u64 when it is an integer type and not negative. */
static int val_u64(const gguf_value *v, uint64_t *out) {
    if (is_unsigned(v->type))
        *out = v->v.u64;
    else if (is_signed(v->type) && v->v.i64 >= 0)
        *out = (uint64_t)v->v.i64;
    else
        return -1;
    return 0;
}

static int val_i64(const gguf_value *v, int64_t *out) {
    if (is_signed(v->type))
        *out = v->v.i64;
    else if (is_unsigned(v->type) && v->v.u64 <= (uint64_t)INT64_MAX)
        *out = (int64_t)v->v.u64;
    else
        return -1;
    return 0;
}

int gguf_get_u32(const gguf_file *f, const char *key, uint32_t *out) {
    const gguf_kv *kv = gguf_find(f, key);
    uint64_t v;
    if (!kv || val_u64(&kv->val, &v) < 0 || v > UINT32_MAX) return -1;
    *out = (uint32_t)v;
    return 0;
}

int gguf_get_u64(const gguf_file *f, const char *key, uint64_t *out) {
    const gguf_kv *kv = gguf_find(f, key);
    return kv ? val_u64(&kv->val, out) : -1;
}

int gguf_get_i64(const gguf_file *f, const char *key, int64_t *out) {
    const gguf_kv *kv = gguf_find(f, key);
    return kv ? val_i64(&kv->val, out) : -1;
}

int gguf_get_f32(const gguf_file *f, const char *key, float *out) {
    const gguf_kv *kv = gguf_find(f, key);
    if (!kv) return -1;
    const gguf_value *v = &kv->val;
    int64_t i;
    uint64_t u;
    if (v->type == GGUF_VT_F32) {
        *out = (float)v->v.f64;
    } else if (v->type == GGUF_VT_F64) {
        double d = v->v.f64;
        float x = (float)d;
        if ((double)x != d && d == d) return -1; /* inexact (NaN converts) */
        *out = x;
    } else if (val_i64(v, &i) == 0 && i >= -(1 << 24) && i <= (1 << 24)) {
        *out = (float)i; /* exact below 2^24 */
    } else if (val_u64(v, &u) == 0 && u <= (1u << 24)) {
        *out = (float)u;
    } else {
        return -1;
    }
    return 0;
}

int gguf_get_bool(const gguf_file *f, const char *key, bool *out) {
    const gguf_kv *kv = gguf_find(f, key);
    if (!kv || kv->val.type != GGUF_VT_BOOL) return -1;
    *out = kv->val.v.u64 != 0;
    return 0;
}

int gguf_get_str(const gguf_file *f, const char *key, hl_str *out) {
    const gguf_kv *kv = gguf_find(f, key);
    if (!kv || kv->val.type != GGUF_VT_STRING) return -1;
    *out = kv->val.v.str;
    return 0;
}

int gguf_get_arr(const gguf_file *f, const char *key, const gguf_array **out) {
    const gguf_kv *kv = gguf_find(f, key);
    if (!kv || kv->val.type != GGUF_VT_ARRAY) return -1;
    *out = kv->val.v.arr;
    return 0;
}

gguf_vtype gguf_arr_type(const gguf_array *a) {
    return a->type;
}
uint64_t gguf_arr_len(const gguf_array *a) {
    return a->n;
}

const void *gguf_arr_data(const gguf_array *a) {
    return gguf_vtype_size(a->type) ? a->data : NULL;
}

int gguf_arr_str(const gguf_array *a, uint64_t i, hl_str *out) {
    if (a->type != GGUF_VT_STRING || i >= a->n) return -1;
    const uint8_t *p = a->data + a->offs[i];
    out->len = gguf_le64(p);
    out->ptr = (const char *)p + 8;
    return 0;
}

int gguf_arr_f32(const gguf_array *a, uint64_t i, float *out) {
    if (a->type != GGUF_VT_F32 || i >= a->n) return -1;
    memcpy(out, a->data + i * 4, 4);
    return 0;
}

int gguf_arr_i64(const gguf_array *a, uint64_t i, int64_t *out) {
    if (i >= a->n) return -1;
    const uint8_t *p = a->data + i * gguf_vtype_size(a->type);
    uint64_t u64;
    switch (a->type) {
    case GGUF_VT_BOOL:
        *out = p[0] != 0;
        return 0;
    case GGUF_VT_U8:
        *out = p[0];
        return 0;
    case GGUF_VT_I8:
        *out = (int8_t)p[0];
        return 0;
    case GGUF_VT_U16: {
        uint16_t v;
        memcpy(&v, p, 2);
        *out = v;
        return 0;
    }
    case GGUF_VT_I16: {
        int16_t v;
        memcpy(&v, p, 2);
        *out = v;
        return 0;
    }
    case GGUF_VT_U32:
        *out = gguf_le32(p);
        return 0;
    case GGUF_VT_I32:
        *out = (int32_t)gguf_le32(p);
        return 0;
    case GGUF_VT_I64:
        *out = (int64_t)gguf_le64(p);
        return 0;
    case GGUF_VT_U64:
        u64 = gguf_le64(p);
        if (u64 > (uint64_t)INT64_MAX) return -1;
        *out = (int64_t)u64;
        return 0;
    default:
        return -1;
    }
}

int gguf_arr_arr(const gguf_array *a, uint64_t i, const gguf_array **out) {
    if (a->type != GGUF_VT_ARRAY || i >= a->n) return -1;
    *out = &a->sub[i];
    return 0;
}
