/* test_gguf.c - unit tests of the GGUF reader and writer.
 *
 *   build/test_unit gguf        # runs only these tests
 *
 * Contract: round trips through the writer and reader (every value type,
 * nested arrays, tensors of several types, alignment), then hostile images
 * built byte by byte here (truncations at every offset, huge counts, bad
 * lengths, types, dims, offsets, duplicates), checking that each fails
 * cleanly with a message naming the field and its byte offset. Real
 * llama.cpp vocab files are parsed when HL_TEST_GGUF_DIR (or .cache/vocab
 * under the working directory) exists; otherwise that test skips. Files go
 * under hl_test_tmp. Single-threaded; uses a static scratch image.
 */
#include <dirent.h>
#include <inttypes.h>
#include <stdbool.h>
#include <stdlib.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "../../src/gguf/gguf.h"
#include "test.h"

/* ---- a byte builder for hand-made images ---- */

typedef struct img {
    uint8_t b[1 << 16];
    size_t n;
} img;

static img M;

static void i_bytes(img *m, const void *p, size_t n) {
    if (m->n + n > sizeof m->b) abort();
    memcpy(m->b + m->n, p, n);
    m->n += n;
}
static void i_u8(img *m, uint8_t v) {
    i_bytes(m, &v, 1);
}
static void i_u32(img *m, uint32_t v) {
    i_bytes(m, &v, 4);
}
static void i_u64(img *m, uint64_t v) {
    i_bytes(m, &v, 8);
}
static void i_str(img *m, const char *s) {
    i_u64(m, strlen(s));
    i_bytes(m, s, strlen(s));
}
static void i_header(img *m, uint32_t version, uint64_t n_tensors, uint64_t n_kv) {
    m->n = 0;
    i_bytes(m, "GGUF", 4);
    i_u32(m, version);
    i_u64(m, n_tensors);
    i_u64(m, n_kv);
}
static void i_kv_u32(img *m, const char *key, uint32_t v) {
    i_str(m, key);
    i_u32(m, GGUF_VT_U32);
    i_u32(m, v);
}
static void i_tensor(img *m, const char *name, uint32_t n_dims, const uint64_t *ne, uint32_t type,
                     uint64_t off) {
    i_str(m, name);
    i_u32(m, n_dims);
    for (uint32_t d = 0; d < n_dims; d++) i_u64(m, ne[d]);
    i_u32(m, type);
    i_u64(m, off);
}
static void i_pad(img *m, size_t a) {
    while (m->n % a) i_u8(m, 0);
}
static void i_zeros(img *m, size_t n) {
    for (size_t i = 0; i < n; i++) i_u8(m, 0);
}

/* Parses m; returns the result and closes the file on success. */
static int parse_img(const img *m, hl_err *e) {
    gguf_file *f;
    e->msg[0] = 0;
    int rc = gguf_parse(&f, m->b, m->n, e);
    if (rc == 0)
        gguf_close(f);
    else
        CHECK(f == NULL);
    return rc;
}

static char *read_file(const char *path, size_t *len) {
    FILE *fp = fopen(path, "rb");
    if (!fp) return NULL;
    fseek(fp, 0, SEEK_END);
    long n = ftell(fp);
    fseek(fp, 0, SEEK_SET);
    char *p = malloc(n > 0 ? (size_t)n : 1);
    if (p && fread(p, 1, (size_t)n, fp) != (size_t)n) {
        free(p);
        p = NULL;
    }
    fclose(fp);
    *len = (size_t)n;
    return p;
}

/* Deep comparison of two values (any type, nested arrays included). */
static bool arr_eq(const gguf_array *a, const gguf_array *b);
static bool val_eq(const gguf_value *a, const gguf_value *b) {
    if (a->type != b->type) return false;
    switch (a->type) {
    case GGUF_VT_STRING:
        return a->v.str.len == b->v.str.len &&
               memcmp(a->v.str.ptr, b->v.str.ptr, a->v.str.len) == 0;
    case GGUF_VT_ARRAY:
        return arr_eq(a->v.arr, b->v.arr);
    case GGUF_VT_F32:
    case GGUF_VT_F64:
        return memcmp(&a->v.f64, &b->v.f64, 8) == 0;
    default:
        return a->v.u64 == b->v.u64;
    }
}
static bool arr_eq(const gguf_array *a, const gguf_array *b) {
    if (gguf_arr_type(a) != gguf_arr_type(b) || gguf_arr_len(a) != gguf_arr_len(b)) return false;
    uint64_t n = gguf_arr_len(a);
    for (uint64_t i = 0; i < n; i++) {
        hl_str sa, sb;
        const gguf_array *aa, *ab;
        int64_t ia, ib;
        float fa, fb;
        switch (gguf_arr_type(a)) {
        case GGUF_VT_STRING:
            if (gguf_arr_str(a, i, &sa) || gguf_arr_str(b, i, &sb) || sa.len != sb.len ||
                memcmp(sa.ptr, sb.ptr, sa.len))
                return false;
            break;
        case GGUF_VT_ARRAY:
            if (gguf_arr_arr(a, i, &aa) || gguf_arr_arr(b, i, &ab) || !arr_eq(aa, ab)) return false;
            break;
        case GGUF_VT_F32:
            if (gguf_arr_f32(a, i, &fa) || gguf_arr_f32(b, i, &fb) || memcmp(&fa, &fb, 4))
                return false;
            break;
        case GGUF_VT_F64:
        case GGUF_VT_U64:
            if (memcmp((const uint8_t *)gguf_arr_data(a) + 8 * i,
                       (const uint8_t *)gguf_arr_data(b) + 8 * i, 8))
                return false;
            break;
        default:
            if (gguf_arr_i64(a, i, &ia) || gguf_arr_i64(b, i, &ib) || ia != ib) return false;
        }
    }
    return true;
}

/* ---- an image with every value type, nested arrays included ---- */

static const char *const STRS[] = {"", "a", "hello world", "\xe2\x96\x81the"};

/* Appends array payload: ARRAY of ARRAY of STRING, [[], ["a"], STRS]. */
static void i_nested(img *m) {
    i_u32(m, GGUF_VT_ARRAY);
    i_u64(m, 3);
    i_u32(m, GGUF_VT_STRING);
    i_u64(m, 0);
    i_u32(m, GGUF_VT_STRING);
    i_u64(m, 1);
    i_str(m, "a");
    i_u32(m, GGUF_VT_STRING);
    i_u64(m, 4);
    for (int i = 0; i < 4; i++) i_str(m, STRS[i]);
}

#define ALL_TYPES_KV 16

static void build_all_types(img *m) {
    i_header(m, 3, 0, ALL_TYPES_KV);
    i_str(m, "t.u8");
    i_u32(m, GGUF_VT_U8);
    i_u8(m, 200);
    i_str(m, "t.i8");
    i_u32(m, GGUF_VT_I8);
    i_u8(m, (uint8_t)-5);
    i_str(m, "t.u16");
    i_u32(m, GGUF_VT_U16);
    i_bytes(m, &(uint16_t){65000}, 2);
    i_str(m, "t.i16");
    i_u32(m, GGUF_VT_I16);
    i_bytes(m, &(int16_t){-30000}, 2);
    i_kv_u32(m, "t.u32", 4000000000u);
    i_str(m, "t.i32");
    i_u32(m, GGUF_VT_I32);
    i_bytes(m, &(int32_t){-2000000000}, 4);
    i_str(m, "t.f32");
    i_u32(m, GGUF_VT_F32);
    i_bytes(m, &(float){0.15625f}, 4);
    i_str(m, "t.bool");
    i_u32(m, GGUF_VT_BOOL);
    i_u8(m, 1);
    i_str(m, "t.str");
    i_u32(m, GGUF_VT_STRING);
    i_str(m, "llama");
    i_str(m, "t.u64");
    i_u32(m, GGUF_VT_U64);
    i_u64(m, UINT64_MAX);
    i_str(m, "t.i64");
    i_u32(m, GGUF_VT_I64);
    i_u64(m, (uint64_t)INT64_MIN);
    i_str(m, "t.f64");
    i_u32(m, GGUF_VT_F64);
    i_bytes(m, &(double){1e-300}, 8);
    i_str(m, "t.arr_i16");
    i_u32(m, GGUF_VT_ARRAY);
    i_u32(m, GGUF_VT_I16);
    i_u64(m, 3);
    int16_t s16[3] = {-1, 2, -32768};
    i_bytes(m, s16, sizeof s16);
    i_str(m, "t.arr_str");
    i_u32(m, GGUF_VT_ARRAY);
    i_u32(m, GGUF_VT_STRING);
    i_u64(m, 4);
    for (int i = 0; i < 4; i++) i_str(m, STRS[i]);
    i_str(m, "t.arr_arr_str");
    i_u32(m, GGUF_VT_ARRAY);
    i_nested(m);
    /* array of arrays of arrays of u8 */
    i_str(m, "t.arr3");
    i_u32(m, GGUF_VT_ARRAY);
    i_u32(m, GGUF_VT_ARRAY);
    i_u64(m, 1);
    i_u32(m, GGUF_VT_ARRAY);
    i_u64(m, 2);
    i_u32(m, GGUF_VT_U8);
    i_u64(m, 2);
    i_u8(m, 7);
    i_u8(m, 9);
    i_u32(m, GGUF_VT_BOOL);
    i_u64(m, 1);
    i_u8(m, 1);
}

static void check_all_types(const gguf_file *f) {
    uint32_t u32 = 0;
    uint64_t u64 = 0;
    int64_t i64 = 0;
    float f32 = 0;
    bool b = false;
    hl_str s = {0};
    const gguf_array *a = NULL, *a2 = NULL, *a3 = NULL;
    CHECK_EQ_INT(gguf_kv_count(f), ALL_TYPES_KV);
    CHECK(gguf_get_u32(f, "t.u8", &u32) == 0 && u32 == 200);
    CHECK(gguf_get_i64(f, "t.i8", &i64) == 0 && i64 == -5);
    CHECK(gguf_get_u32(f, "t.i8", &u32) < 0); /* negative */
    CHECK(gguf_get_u32(f, "t.u16", &u32) == 0 && u32 == 65000);
    CHECK(gguf_get_i64(f, "t.i16", &i64) == 0 && i64 == -30000);
    CHECK(gguf_get_u32(f, "t.u32", &u32) == 0 && u32 == 4000000000u);
    CHECK(gguf_get_i64(f, "t.i32", &i64) == 0 && i64 == -2000000000);
    CHECK(gguf_get_f32(f, "t.f32", &f32) == 0 && f32 == 0.15625f);
    CHECK(gguf_get_bool(f, "t.bool", &b) == 0 && b);
    CHECK(gguf_get_str(f, "t.str", &s) == 0 && hl_str_eq(s, "llama"));
    CHECK(gguf_get_u64(f, "t.u64", &u64) == 0 && u64 == UINT64_MAX);
    CHECK(gguf_get_u32(f, "t.u64", &u32) < 0); /* out of range */
    CHECK(gguf_get_i64(f, "t.u64", &i64) < 0);
    CHECK(gguf_get_i64(f, "t.i64", &i64) == 0 && i64 == INT64_MIN);
    const gguf_kv *kv = gguf_find(f, "t.f64");
    CHECK(kv && kv->val.type == GGUF_VT_F64 && kv->val.v.f64 == 1e-300);
    CHECK(gguf_get_f32(f, "t.f64", &f32) < 0); /* not exact as f32 */
    CHECK(gguf_get_f32(f, "t.u16", &f32) == 0 && f32 == 65000.0f);
    CHECK(gguf_get_str(f, "t.u8", &s) < 0);
    CHECK(gguf_get_bool(f, "t.u8", &b) < 0);
    CHECK(gguf_get_u32(f, "t.missing", &u32) < 0);
    CHECK(gguf_get_arr(f, "t.arr_i16", &a) == 0);
    if (a) {
        CHECK(gguf_arr_type(a) == GGUF_VT_I16 && gguf_arr_len(a) == 3);
        CHECK(gguf_arr_i64(a, 2, &i64) == 0 && i64 == -32768);
        CHECK(gguf_arr_i64(a, 3, &i64) < 0);
        CHECK(gguf_arr_str(a, 0, &s) < 0);
        CHECK(gguf_arr_data(a) != NULL);
    }
    CHECK(gguf_get_arr(f, "t.arr_str", &a) == 0);
    if (a) {
        CHECK(gguf_arr_len(a) == 4 && gguf_arr_data(a) == NULL);
        for (int i = 0; i < 4; i++)
            CHECK(gguf_arr_str(a, (uint64_t)i, &s) == 0 && hl_str_eq(s, STRS[i]));
        CHECK(gguf_arr_str(a, 4, &s) < 0);
    }
    CHECK(gguf_get_arr(f, "t.arr_arr_str", &a) == 0);
    if (a) {
        CHECK(gguf_arr_type(a) == GGUF_VT_ARRAY && gguf_arr_len(a) == 3);
        CHECK(gguf_arr_arr(a, 0, &a2) == 0 && gguf_arr_len(a2) == 0);
        CHECK(gguf_arr_arr(a, 1, &a2) == 0 && gguf_arr_str(a2, 0, &s) == 0 && hl_str_eq(s, "a"));
        CHECK(gguf_arr_arr(a, 2, &a2) == 0 && gguf_arr_str(a2, 3, &s) == 0 &&
              hl_str_eq(s, STRS[3]));
        CHECK(gguf_arr_arr(a, 3, &a2) < 0);
    }
    CHECK(gguf_get_arr(f, "t.arr3", &a) == 0);
    if (a && gguf_arr_arr(a, 0, &a2) == 0 && gguf_arr_arr(a2, 1, &a3) == 0) {
        CHECK(gguf_arr_type(a3) == GGUF_VT_BOOL && gguf_arr_i64(a3, 0, &i64) == 0 && i64 == 1);
        CHECK(gguf_arr_arr(a2, 0, &a3) == 0 && gguf_arr_i64(a3, 1, &i64) == 0 && i64 == 9);
    } else {
        CHECK(!"t.arr3 nested access");
    }
}

TEST(gguf_parse_every_value_type) {
    hl_err e;
    gguf_file *f;
    build_all_types(&M);
    CHECK(gguf_parse(&f, M.b, M.n, &e) == 0);
    if (!f) return;
    CHECK_EQ_INT(gguf_version(f), 3);
    CHECK_EQ_INT(gguf_alignment(f), 32);
    CHECK_EQ_INT(gguf_tensor_count(f), 0);
    check_all_types(f);
    CHECK(gguf_kv_at(f, ALL_TYPES_KV) == NULL);
    CHECK(gguf_kv_at(f, 0)->offset == 24);
    gguf_close(f);
}

/* Copies every kv of the hand-made image through the writer and back. */
TEST(gguf_roundtrip_kv_from) {
    hl_err e;
    gguf_file *f, *g;
    build_all_types(&M);
    CHECK(gguf_parse(&f, M.b, M.n, &e) == 0);
    if (!f) return;
    gguf_writer *w = gguf_writer_new();
    for (uint64_t i = 0; i < gguf_kv_count(f); i++)
        CHECK(gguf_set_kv_from(w, gguf_kv_at(f, i), &e) == 0);
    const char *path = hl_test_tmp("kv_from.gguf");
    CHECK(gguf_writer_write(w, path, &e) == 0);
    gguf_writer_free(w);
    CHECK(gguf_open(&g, path, &e) == 0);
    if (g) {
        check_all_types(g);
        for (uint64_t i = 0; i < gguf_kv_count(f); i++) {
            const gguf_kv *a = gguf_kv_at(f, i), *b = gguf_kv_at(g, i);
            CHECK(a->key.len == b->key.len && memcmp(a->key.ptr, b->key.ptr, a->key.len) == 0);
            CHECK(val_eq(&a->val, &b->val));
        }
        gguf_close(g);
    }
    gguf_close(f);
}

static uint16_t f16_bits(int i) {
    return (uint16_t)(0x3c00 + i);
}

TEST(gguf_roundtrip_writer_tensors) {
    hl_err e;
    gguf_writer *w = gguf_writer_new();
    CHECK(w != NULL);
    if (!w) return;
    uint8_t u8s[5] = {1, 2, 3, 250, 0};
    int32_t i32s[3] = {-7, 0, 7};
    float f32s[2] = {1.5f, -2.25f};
    double f64s[2] = {3.0, -0.5};
    uint8_t bools[3] = {1, 0, 5};
    const char *strs[3] = {"x", "", "zz"};
    CHECK(gguf_set_str(w, "general.architecture", "llama", &e) == 0);
    CHECK(gguf_set_u32(w, "llama.block_count", 7, &e) == 0);
    CHECK(gguf_set_i32(w, "i32", -9, &e) == 0);
    CHECK(gguf_set_u64(w, "u64", 1ull << 40, &e) == 0);
    CHECK(gguf_set_f32(w, "f32", 1e-5f, &e) == 0);
    CHECK(gguf_set_bool(w, "bool", true, &e) == 0);
    CHECK(gguf_set_arr(w, "a.u8", GGUF_VT_U8, u8s, 5, &e) == 0);
    CHECK(gguf_set_arr(w, "a.i32", GGUF_VT_I32, i32s, 3, &e) == 0);
    CHECK(gguf_set_arr(w, "a.f32", GGUF_VT_F32, f32s, 2, &e) == 0);
    CHECK(gguf_set_arr(w, "a.f64", GGUF_VT_F64, f64s, 2, &e) == 0);
    CHECK(gguf_set_arr(w, "a.bool", GGUF_VT_BOOL, bools, 3, &e) == 0);
    CHECK(gguf_set_arr(w, "a.empty", GGUF_VT_U32, NULL, 0, &e) == 0);
    CHECK(gguf_set_arr_str(w, "a.str", strs, 3, &e) == 0);
    CHECK(gguf_set_u32(w, "llama.block_count", 8, &e) == 0); /* replaces */
    CHECK(gguf_set_arr(w, "bad", GGUF_VT_STRING, strs, 1, &e) < 0);
    CHECK_STR_CONTAINS(e.msg, "bad");

    /* Tensors of several types and shapes. */
    float t0[12];
    for (int i = 0; i < 12; i++) t0[i] = (float)i * 0.5f;
    uint16_t t1[8];
    for (int i = 0; i < 8; i++) t1[i] = f16_bits(i);
    static uint8_t t2[2 * 18], t3[2 * 144], t4[66];
    for (size_t i = 0; i < sizeof t2; i++) t2[i] = (uint8_t)(i * 7);
    for (size_t i = 0; i < sizeof t3; i++) t3[i] = (uint8_t)(i * 13);
    for (size_t i = 0; i < sizeof t4; i++) t4[i] = (uint8_t)(i + 1);
    CHECK(gguf_add_tensor(w, "t.f32", HL_F32, 2, (uint64_t[]){4, 3}, t0, &e) == 0);
    CHECK(gguf_add_tensor(w, "t.f16", HL_F16, 1, (uint64_t[]){8}, t1, &e) == 0);
    CHECK(gguf_add_tensor(w, "t.q4_0", HL_Q4_0, 2, (uint64_t[]){32, 2}, t2, &e) == 0);
    CHECK(gguf_add_tensor(w, "t.q4_k", HL_Q4_K, 4, (uint64_t[]){256, 1, 1, 2}, t3, &e) == 0);
    CHECK(gguf_add_tensor(w, "t.iq2_xxs", HL_IQ2_XXS, 1, (uint64_t[]){256}, t4, &e) == 0);
    CHECK(gguf_add_tensor(w, "t.f32", HL_F32, 1, (uint64_t[]){1}, t0, &e) < 0);
    CHECK_STR_CONTAINS(e.msg, "already added");
    CHECK(gguf_add_tensor(w, "t.bad", 99, 1, (uint64_t[]){1}, t0, &e) < 0);
    CHECK_STR_CONTAINS(e.msg, "unknown type 99");
    CHECK(gguf_add_tensor(w, "t.bad", HL_Q4_0, 1, (uint64_t[]){31}, t0, &e) < 0);
    CHECK(gguf_add_tensor(w, "t.bad", HL_F32, 5, (uint64_t[]){1, 1, 1, 1, 1}, t0, &e) < 0);

    const char *path = hl_test_tmp("rt.gguf");
    CHECK(gguf_writer_write(w, path, &e) == 0);
    gguf_writer_free(w);

    gguf_file *f;
    CHECK(gguf_open(&f, path, &e) == 0);
    if (!f) return;
    uint32_t u32;
    uint64_t u64;
    int64_t i64;
    float fl;
    bool b;
    hl_str s;
    const gguf_array *a;
    CHECK_EQ_INT(gguf_version(f), 3);
    CHECK_EQ_INT(gguf_kv_count(f), 13);
    CHECK(gguf_get_u32(f, "llama.block_count", &u32) == 0 && u32 == 8);
    CHECK(hl_str_eq(gguf_kv_at(f, 1)->key, "llama.block_count")); /* kept its place */
    CHECK(gguf_get_i64(f, "i32", &i64) == 0 && i64 == -9);
    CHECK(gguf_get_u64(f, "u64", &u64) == 0 && u64 == 1ull << 40);
    CHECK(gguf_get_f32(f, "f32", &fl) == 0 && fl == 1e-5f);
    CHECK(gguf_get_bool(f, "bool", &b) == 0 && b);
    CHECK(gguf_get_str(f, "general.architecture", &s) == 0 && hl_str_eq(s, "llama"));
    CHECK(gguf_get_arr(f, "a.u8", &a) == 0 && gguf_arr_len(a) == 5 &&
          memcmp(gguf_arr_data(a), u8s, 5) == 0);
    CHECK(gguf_get_arr(f, "a.i32", &a) == 0 && gguf_arr_i64(a, 0, &i64) == 0 && i64 == -7);
    CHECK(gguf_get_arr(f, "a.f32", &a) == 0 && gguf_arr_f32(a, 1, &fl) == 0 && fl == -2.25f);
    CHECK(gguf_get_arr(f, "a.f64", &a) == 0 && memcmp(gguf_arr_data(a), f64s, 16) == 0);
    CHECK(gguf_get_arr(f, "a.bool", &a) == 0 && gguf_arr_i64(a, 2, &i64) == 0 && i64 == 1);
    CHECK(gguf_get_arr(f, "a.empty", &a) == 0 && gguf_arr_len(a) == 0 &&
          gguf_arr_type(a) == GGUF_VT_U32);
    CHECK(gguf_get_arr(f, "a.str", &a) == 0 && gguf_arr_str(a, 2, &s) == 0 && hl_str_eq(s, "zz"));

    CHECK_EQ_INT(gguf_tensor_count(f), 5);
    CHECK_EQ_INT(gguf_data_offset(f) % 32, 0);
    const struct {
        const char *name;
        uint32_t type, n_dims;
        uint64_t ne[4];
        const void *data;
        size_t nbytes;
    } want[5] = {
        {"t.f32", HL_F32, 2, {4, 3, 1, 1}, t0, sizeof t0},
        {"t.f16", HL_F16, 1, {8, 1, 1, 1}, t1, sizeof t1},
        {"t.q4_0", HL_Q4_0, 2, {32, 2, 1, 1}, t2, sizeof t2},
        {"t.q4_k", HL_Q4_K, 4, {256, 1, 1, 2}, t3, sizeof t3},
        {"t.iq2_xxs", HL_IQ2_XXS, 1, {256, 1, 1, 1}, t4, sizeof t4},
    };
    for (int i = 0; i < 5; i++) {
        const gguf_tensor *t = gguf_find_tensor(f, want[i].name);
        CHECK(t == gguf_tensor_at(f, (uint64_t)i));
        if (!t) continue;
        CHECK_EQ_INT(t->type, want[i].type);
        CHECK_EQ_INT(t->n_dims, want[i].n_dims);
        for (int d = 0; d < 4; d++) CHECK_EQ_INT(t->ne[d], want[i].ne[d]);
        CHECK_EQ_INT(t->nbytes, want[i].nbytes);
        CHECK_EQ_INT(t->offset % 32, 0);
        CHECK(memcmp(t->data, want[i].data, want[i].nbytes) == 0);
    }
    CHECK(gguf_find_tensor(f, "t.nope") == NULL);
    CHECK(gguf_tensor_at(f, 5) == NULL);
    gguf_close(f);
}

TEST(gguf_writer_alignment) {
    hl_err e;
    gguf_writer *w = gguf_writer_new();
    float d[3] = {1, 2, 3};
    CHECK(gguf_set_u32(w, "general.alignment", 48, &e) == 0);
    CHECK(gguf_add_tensor(w, "a", HL_F32, 1, (uint64_t[]){3}, d, &e) == 0);
    CHECK(gguf_add_tensor(w, "b", HL_F32, 1, (uint64_t[]){3}, d, &e) == 0);
    CHECK(gguf_writer_write(w, hl_test_tmp("align48.gguf"), &e) < 0);
    CHECK_STR_CONTAINS(e.msg, "general.alignment = 48");
    CHECK(access(hl_test_tmp("align48.gguf"), F_OK) != 0); /* nothing left behind */
    CHECK(gguf_set_u32(w, "general.alignment", 256, &e) == 0);
    const char *path = hl_test_tmp("align256.gguf");
    CHECK(gguf_writer_write(w, path, &e) == 0);
    gguf_writer_free(w);
    gguf_file *f;
    CHECK(gguf_open(&f, path, &e) == 0);
    if (!f) return;
    CHECK_EQ_INT(gguf_alignment(f), 256);
    CHECK_EQ_INT(gguf_data_offset(f) % 256, 0);
    CHECK_EQ_INT(gguf_tensor_at(f, 1)->offset, 256);
    CHECK_EQ_INT(gguf_file_size(f), gguf_data_offset(f) + 512);
    gguf_close(f);
}

/* ---- hostile input ---- */

TEST(gguf_truncated_at_every_byte) {
    hl_err e;
    gguf_writer *w = gguf_writer_new();
    build_all_types(&M);
    gguf_file *src;
    CHECK(gguf_parse(&src, M.b, M.n, &e) == 0);
    if (!src) return;
    for (uint64_t i = 0; i < gguf_kv_count(src); i++) gguf_set_kv_from(w, gguf_kv_at(src, i), &e);
    gguf_close(src);
    float d[16] = {0};
    CHECK(gguf_add_tensor(w, "a", HL_F32, 2, (uint64_t[]){4, 2}, d, &e) == 0);
    CHECK(gguf_add_tensor(w, "b", HL_Q8_0, 1, (uint64_t[]){32}, d, &e) == 0);
    const char *path = hl_test_tmp("trunc.gguf");
    CHECK(gguf_writer_write(w, path, &e) == 0);
    gguf_writer_free(w);
    size_t len;
    char *buf = read_file(path, &len);
    CHECK(buf != NULL);
    if (!buf) return;
    gguf_file *f;
    CHECK(gguf_parse(&f, buf, len, &e) == 0);
    if (!f) {
        free(buf);
        return;
    }
    const gguf_tensor *last = gguf_tensor_at(f, 1);
    size_t end = (size_t)(gguf_data_offset(f) + last->offset + last->nbytes);
    gguf_close(f);
    int bad = 0;
    for (size_t n = 0; n < len; n++) {
        /* A fresh heap copy of exactly n bytes, so ASan sees any overread. */
        char *p = malloc(n ? n : 1);
        memcpy(p, buf, n);
        e.msg[0] = 0;
        int rc = gguf_parse(&f, p, n, &e);
        if (n < end) {
            if (rc == 0 || !strstr(e.msg, "gguf: ") || !strstr(e.msg, "byte")) {
                if (bad++ < 3)
                    hl_test_fail(__FILE__, __LINE__, "truncated at %zu: rc %d '%s'", n, rc, e.msg);
            }
        } else if (rc != 0) {
            if (bad++ < 3) hl_test_fail(__FILE__, __LINE__, "padding cut at %zu: %s", n, e.msg);
        }
        if (rc == 0) gguf_close(f);
        free(p);
    }
    CHECK_EQ_INT(bad, 0);
    free(buf);
}

TEST(gguf_rejects_bad_header) {
    hl_err e;
    M.n = 0;
    CHECK(parse_img(&M, &e) < 0);
    CHECK_STR_CONTAINS(e.msg, "0 bytes");
    CHECK(gguf_parse(&(gguf_file *){0}, NULL, 0, &e) < 0);
    i_header(&M, 3, 0, 0);
    M.b[0] = 'X';
    CHECK(parse_img(&M, &e) < 0);
    CHECK_STR_CONTAINS(e.msg, "magic");
    i_header(&M, 1, 0, 0);
    CHECK(parse_img(&M, &e) < 0);
    CHECK_STR_CONTAINS(e.msg, "version 1 at byte 4");
    i_header(&M, 4, 0, 0);
    CHECK(parse_img(&M, &e) < 0);
    CHECK_STR_CONTAINS(e.msg, "version 4");
    i_header(&M, 0x03000000, 0, 0);
    CHECK(parse_img(&M, &e) < 0);
    CHECK_STR_CONTAINS(e.msg, "big-endian");
    i_header(&M, 2, 0, 0);
    CHECK(parse_img(&M, &e) == 0); /* empty v2 file */
    M.n = 20;
    CHECK(parse_img(&M, &e) < 0);
    CHECK_STR_CONTAINS(e.msg, "kv count at byte 16");
}

TEST(gguf_rejects_huge_counts_fast) {
    hl_err e;
    i_header(&M, 3, 0, 1ull << 60);
    i_kv_u32(&M, "a", 1);
    clock_t t0 = clock();
    CHECK(parse_img(&M, &e) < 0);
    CHECK_STR_CONTAINS(e.msg, "kv count 1152921504606846976 at byte 16");
    i_header(&M, 3, UINT64_MAX, 0);
    CHECK(parse_img(&M, &e) < 0);
    CHECK_STR_CONTAINS(e.msg, "tensor count 18446744073709551615 at byte 8");
    /* Array lengths: fixed, string and nested elements. */
    uint32_t et[3] = {GGUF_VT_U32, GGUF_VT_STRING, GGUF_VT_ARRAY};
    for (int k = 0; k < 3; k++) {
        i_header(&M, 3, 0, 1);
        i_str(&M, "arr");
        i_u32(&M, GGUF_VT_ARRAY);
        i_u32(&M, et[k]);
        i_u64(&M, 1ull << 62);
        i_zeros(&M, 64);
        CHECK(parse_img(&M, &e) < 0);
        CHECK_STR_CONTAINS(e.msg, "kv 'arr' (#0): array length 4611686018427387904 at byte 43");
    }
    CHECK((double)(clock() - t0) / CLOCKS_PER_SEC < 1.0);
}

TEST(gguf_rejects_bad_strings) {
    hl_err e;
    i_header(&M, 3, 0, 1);
    i_u64(&M, UINT64_MAX);
    i_zeros(&M, 20);
    CHECK(parse_img(&M, &e) < 0);
    CHECK_STR_CONTAINS(e.msg, "key length 18446744073709551615 at byte 24 runs past end of file");
    CHECK_STR_CONTAINS(e.msg, "kv #0");
    i_header(&M, 3, 0, 1);
    i_str(&M, "s");
    i_u32(&M, GGUF_VT_STRING);
    i_u64(&M, 1000);
    i_zeros(&M, 10);
    CHECK(parse_img(&M, &e) < 0);
    CHECK_STR_CONTAINS(e.msg, "kv 's' (#0): string value length 1000 at byte 37");
    i_header(&M, 3, 0, 1);
    i_str(&M, "s");
    i_u32(&M, GGUF_VT_ARRAY);
    i_u32(&M, GGUF_VT_STRING);
    i_u64(&M, 2);
    i_str(&M, "ok");
    i_u64(&M, 9);
    i_zeros(&M, 8);
    CHECK(parse_img(&M, &e) < 0);
    CHECK_STR_CONTAINS(e.msg, "string element length 9 at byte 59");
}

TEST(gguf_rejects_bad_value_types_and_nesting) {
    hl_err e;
    i_header(&M, 3, 0, 1);
    i_str(&M, "k");
    i_u32(&M, 13);
    i_zeros(&M, 16);
    CHECK(parse_img(&M, &e) < 0);
    CHECK_STR_CONTAINS(e.msg, "value type 13 at byte 33");
    i_header(&M, 3, 0, 1);
    i_str(&M, "k");
    i_u32(&M, GGUF_VT_ARRAY);
    i_u32(&M, 77);
    i_zeros(&M, 16);
    CHECK(parse_img(&M, &e) < 0);
    CHECK_STR_CONTAINS(e.msg, "array element type 77 at byte 37");
    /* GGUF_MAX_NEST (8) levels are fine, 9 are not. */
    for (int depth = 8; depth <= 9; depth++) {
        i_header(&M, 3, 0, 1);
        i_str(&M, "deep");
        i_u32(&M, GGUF_VT_ARRAY);
        for (int d = 1; d < depth; d++) {
            i_u32(&M, GGUF_VT_ARRAY);
            i_u64(&M, 1);
        }
        i_u32(&M, GGUF_VT_STRING);
        i_u64(&M, 1);
        i_str(&M, "leaf");
        int rc = parse_img(&M, &e);
        CHECK(depth == 8 ? rc == 0 : rc < 0);
    }
    CHECK_STR_CONTAINS(e.msg, "nested deeper than 8 levels");
    /* A hostile million-level nesting must fail without deep recursion. */
    i_header(&M, 3, 0, 1);
    i_str(&M, "deep");
    i_u32(&M, GGUF_VT_ARRAY);
    while (M.n + 12 <= sizeof M.b) {
        i_u32(&M, GGUF_VT_ARRAY);
        i_u64(&M, 1);
    }
    CHECK(parse_img(&M, &e) < 0);
    CHECK_STR_CONTAINS(e.msg, "nested deeper");
}

TEST(gguf_rejects_bad_alignment) {
    hl_err e;
    uint32_t bad[2] = {0, 48};
    for (int k = 0; k < 2; k++) {
        i_header(&M, 3, 0, 1);
        i_kv_u32(&M, "general.alignment", bad[k]);
        CHECK(parse_img(&M, &e) < 0);
        CHECK_STR_CONTAINS(e.msg, "general.alignment");
        CHECK_STR_CONTAINS(e.msg, "at byte 24");
        CHECK_STR_CONTAINS(e.msg, "power of two");
    }
    i_header(&M, 3, 0, 1);
    i_str(&M, "general.alignment");
    i_u32(&M, GGUF_VT_U64);
    i_u64(&M, 64);
    CHECK(parse_img(&M, &e) < 0);
    CHECK_STR_CONTAINS(e.msg, "must be u32");
    i_header(&M, 3, 1, 1);
    i_kv_u32(&M, "general.alignment", 64);
    i_tensor(&M, "w", 1, (uint64_t[]){4}, HL_F32, 0);
    i_pad(&M, 64);
    i_zeros(&M, 16);
    CHECK(parse_img(&M, &e) == 0);
}

/* One tensor record after a single kv; the variations corrupt one field. */
static size_t build_one_tensor(uint32_t n_dims, const uint64_t *ne, uint32_t type, uint64_t off,
                               size_t data_bytes) {
    i_header(&M, 3, 2, 1);
    i_kv_u32(&M, "general.alignment", 32);
    i_tensor(&M, "ok.weight", 1, (uint64_t[]){8}, HL_F32, 0); /* 32 bytes at 0 */
    size_t rec = M.n;
    i_tensor(&M, "blk.0.attn_q.weight", n_dims, ne, type, off);
    i_pad(&M, 32);
    i_zeros(&M, 32 + data_bytes);
    return rec;
}

TEST(gguf_rejects_bad_tensors) {
    hl_err e;
    char want[128];
    /* A valid baseline: Q4_0 [64, 2] = 72 bytes at offset 32. */
    build_one_tensor(2, (uint64_t[]){64, 2}, HL_Q4_0, 32, 72);
    CHECK(parse_img(&M, &e) == 0);
    size_t rec = build_one_tensor(2, (uint64_t[]){64, 2}, HL_Q4_0, 32, 71);
    CHECK(parse_img(&M, &e) < 0);
    CHECK_STR_CONTAINS(
        e.msg, "tensor 'blk.0.attn_q.weight' (#1): data offset 32 + size 72 exceeds file size");
    snprintf(want, sizeof want, "field at byte %zu", rec + 27 + 4 + 16 + 4);
    CHECK_STR_CONTAINS(e.msg, want);
    build_one_tensor(2, (uint64_t[]){64, 2}, HL_Q4_0, UINT64_MAX - 31, 72);
    CHECK(parse_img(&M, &e) < 0);
    CHECK_STR_CONTAINS(e.msg, "exceeds file size");
    rec = build_one_tensor(2, (uint64_t[]){64, 2}, HL_Q4_0, 16, 72);
    CHECK(parse_img(&M, &e) < 0);
    snprintf(want, sizeof want, "data offset 16 at byte %zu is not a multiple of the alignment 32",
             rec + 27 + 4 + 16 + 4);
    CHECK_STR_CONTAINS(e.msg, want);
    rec = build_one_tensor(5, (uint64_t[]){64, 1, 1, 1, 1}, HL_Q4_0, 32, 72);
    CHECK(parse_img(&M, &e) < 0);
    snprintf(want, sizeof want, "n_dims 5 at byte %zu", rec + 27);
    CHECK_STR_CONTAINS(e.msg, want);
    CHECK_STR_CONTAINS(e.msg, "'blk.0.attn_q.weight'");
    rec = build_one_tensor(2, (uint64_t[]){64, 0}, HL_Q4_0, 32, 72);
    CHECK(parse_img(&M, &e) < 0);
    snprintf(want, sizeof want, "ne[1] = 0 at byte %zu", rec + 27 + 4 + 8);
    CHECK_STR_CONTAINS(e.msg, want);
    rec = build_one_tensor(2, (uint64_t[]){64, 2}, 99, 32, 72);
    CHECK(parse_img(&M, &e) < 0);
    snprintf(want, sizeof want, "unknown tensor type 99 at byte %zu", rec + 27 + 4 + 16);
    CHECK_STR_CONTAINS(e.msg, want);
    build_one_tensor(2, (uint64_t[]){64, 2}, 4, 32, 72); /* 4: a hole in the numbering */
    CHECK(parse_img(&M, &e) < 0);
    CHECK_STR_CONTAINS(e.msg, "unknown tensor type 4");
    build_one_tensor(2, (uint64_t[]){48, 2}, HL_Q4_0, 32, 72);
    CHECK(parse_img(&M, &e) < 0);
    CHECK_STR_CONTAINS(e.msg, "ne[0] = 48");
    CHECK_STR_CONTAINS(e.msg, "Q4_0 block size 32");
    build_one_tensor(4, (uint64_t[]){1ull << 32, 1ull << 32, 1, 1}, HL_F32, 32, 72);
    CHECK(parse_img(&M, &e) < 0);
    CHECK_STR_CONTAINS(e.msg, "overflows");
    build_one_tensor(2, (uint64_t[]){1ull << 31, 1ull << 31}, HL_F64, 32, 72);
    CHECK(parse_img(&M, &e) < 0);
    CHECK_STR_CONTAINS(e.msg, "data size overflows");
    /* A known but unsupported type parses; the model loader refuses it. */
    build_one_tensor(1, (uint64_t[]){256}, HL_IQ2_XXS, 32, 66);
    CHECK(parse_img(&M, &e) == 0);
    /* Scalars (n_dims 0) as ggml reads them. */
    build_one_tensor(0, NULL, HL_F32, 32, 4);
    CHECK(parse_img(&M, &e) == 0);
    /* Overlapping data ranges are allowed (read-only views). */
    build_one_tensor(1, (uint64_t[]){8}, HL_F32, 0, 0);
    CHECK(parse_img(&M, &e) == 0);
}

TEST(gguf_rejects_duplicates) {
    hl_err e;
    i_header(&M, 3, 0, 3);
    i_kv_u32(&M, "a", 1);
    i_kv_u32(&M, "b", 2);
    size_t at = M.n;
    i_kv_u32(&M, "a", 3);
    CHECK(parse_img(&M, &e) < 0);
    char want[96];
    snprintf(want, sizeof want,
             "kv 'a' (#2): duplicate key at byte %zu (first defined by kv #0 at byte 24)", at);
    CHECK_STR_CONTAINS(e.msg, want);
    i_header(&M, 3, 2, 0);
    i_tensor(&M, "w", 1, (uint64_t[]){8}, HL_F32, 0);
    at = M.n;
    i_tensor(&M, "w", 1, (uint64_t[]){8}, HL_F32, 32);
    i_pad(&M, 32);
    i_zeros(&M, 64);
    CHECK(parse_img(&M, &e) < 0);
    snprintf(want, sizeof want, "duplicate tensor name at byte %zu (also tensor #0)", at);
    CHECK_STR_CONTAINS(e.msg, want);
}

TEST(gguf_open_errors) {
    hl_err e;
    gguf_file *f = (gguf_file *)&e;
    const char *empty = hl_test_tmp("empty.gguf");
    FILE *fp = fopen(empty, "wb");
    CHECK(fp != NULL);
    if (fp) fclose(fp);
    CHECK(gguf_open(&f, empty, &e) < 0);
    CHECK(f == NULL);
    CHECK_STR_CONTAINS(e.msg, "0 bytes");
    CHECK(gguf_open(&f, hl_test_tmp("does-not-exist.gguf"), &e) < 0);
    CHECK_STR_CONTAINS(e.msg, "cannot open");
    CHECK(gguf_open(&f, hl_test_tmp(""), &e) < 0);
    CHECK_STR_CONTAINS(e.msg, "not a regular file");
}

/* A 150k-entry vocabulary parses in linear time with O(1) element access. */
TEST(gguf_big_string_array) {
    hl_err e;
    enum { N = 150000 };
    char *pool = malloc(N * 16);
    const char **v = malloc(N * sizeof *v);
    for (int i = 0; i < N; i++) {
        snprintf(pool + i * 16, 16, "tok%u", (unsigned)i);
        v[i] = pool + i * 16;
    }
    gguf_writer *w = gguf_writer_new();
    CHECK(gguf_set_arr_str(w, "tokenizer.ggml.tokens", v, N, &e) == 0);
    const char *path = hl_test_tmp("vocab.gguf");
    CHECK(gguf_writer_write(w, path, &e) == 0);
    gguf_writer_free(w);
    gguf_file *f;
    clock_t t0 = clock();
    CHECK(gguf_open(&f, path, &e) == 0);
    double dt = (double)(clock() - t0) / CLOCKS_PER_SEC;
    CHECK(dt < 1.0);
    const gguf_array *a;
    hl_str s;
    if (f && gguf_get_arr(f, "tokenizer.ggml.tokens", &a) == 0) {
        CHECK_EQ_INT(gguf_arr_len(a), N);
        CHECK(gguf_arr_str(a, N - 1, &s) == 0 && hl_str_eq(s, "tok149999"));
        CHECK(gguf_arr_str(a, 777, &s) == 0 && hl_str_eq(s, "tok777"));
    } else {
        CHECK(!"vocab open");
    }
    gguf_close(f);
    free(v);
    free(pool);
}

/* Real llama.cpp vocab-only files, when present. */
TEST(gguf_real_vocab_files) {
    const char *dir = getenv("HL_TEST_GGUF_DIR");
    if (!dir) dir = ".cache/vocab";
    DIR *d = opendir(dir);
    if (!d) {
        fprintf(stderr, "  (skipped: no %s)\n", dir);
        return;
    }
    struct dirent *de;
    int n = 0;
    while ((de = readdir(d))) {
        size_t len = strlen(de->d_name);
        if (len < 5 || strcmp(de->d_name + len - 5, ".gguf") != 0) continue;
        char path[1024];
        snprintf(path, sizeof path, "%s/%s", dir, de->d_name);
        hl_err e;
        gguf_file *f;
        if (gguf_open(&f, path, &e) < 0) {
            hl_test_fail(__FILE__, __LINE__, "%s: %s", path, e.msg);
            continue;
        }
        n++;
        hl_str s;
        const gguf_array *a;
        CHECK(gguf_version(f) >= 2);
        CHECK(gguf_get_str(f, "tokenizer.ggml.model", &s) == 0 && s.len > 0);
        CHECK(gguf_get_arr(f, "tokenizer.ggml.tokens", &a) == 0 &&
              gguf_arr_type(a) == GGUF_VT_STRING && gguf_arr_len(a) > 0);
        CHECK(gguf_get_str(f, "general.architecture", &s) == 0);
        /* Copy every kv through the writer and compare. */
        gguf_writer *w = gguf_writer_new();
        for (uint64_t i = 0; i < gguf_kv_count(f); i++)
            CHECK(gguf_set_kv_from(w, gguf_kv_at(f, i), &e) == 0);
        const char *out = hl_test_tmp("copy.gguf");
        CHECK(gguf_writer_write(w, out, &e) == 0);
        gguf_writer_free(w);
        gguf_file *g;
        if (gguf_open(&g, out, &e) == 0) {
            CHECK_EQ_INT(gguf_kv_count(g), gguf_kv_count(f));
            for (uint64_t i = 0; i < gguf_kv_count(f); i++)
                CHECK(val_eq(&gguf_kv_at(f, i)->val, &gguf_kv_at(g, i)->val));
            gguf_close(g);
        } else {
            hl_test_fail(__FILE__, __LINE__, "copy of %s: %s", path, e.msg);
        }
        gguf_close(f);
    }
    closedir(d);
    CHECK(n > 0);
}
