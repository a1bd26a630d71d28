/* fuzz_gguf.c - libFuzzer target for the GGUF reader (and the writer's copy path).
 *
 *   make fuzz && build-fuzz/fuzz_gguf -max_total_time=60 fuzz/corpus/gguf
 *
 * Contract: feeds arbitrary bytes to gguf_parse; when they parse, walks every
 * kv (scalars, strings, arrays nested to any depth) and every tensor through
 * the public accessors, touching each byte a view claims to cover, looks every
 * name up again, and copies every kv into a gguf_writer (never written out).
 * Any out-of-bounds read, leak or UB is the sanitizers' to report. Stateless
 * between inputs.
 */
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "../src/gguf/gguf.h"

static volatile uint8_t sink;

static void touch(const void *p, uint64_t n) {
    const uint8_t *b = p;
    uint8_t x = 0;
    for (uint64_t i = 0; i < n; i++) x ^= b[i];
    sink ^= x;
}

static void walk_array(const gguf_array *a) {
    uint64_t n = gguf_arr_len(a);
    gguf_vtype t = gguf_arr_type(a);
    const void *data = gguf_arr_data(a);
    for (uint64_t i = 0; i <= n; i++) { /* one past the end must be refused */
        hl_str s;
        float f;
        int64_t v;
        const gguf_array *sub;
        int rs = gguf_arr_str(a, i, &s), rf = gguf_arr_f32(a, i, &f);
        int ri = gguf_arr_i64(a, i, &v), ra = gguf_arr_arr(a, i, &sub);
        if (i == n && (rs == 0 || rf == 0 || ri == 0 || ra == 0)) abort();
        if (rs == 0) touch(s.ptr, s.len);
        if (rf == 0) touch(&f, sizeof f);
        if (ra == 0) walk_array(sub);
    }
    if (data && t == GGUF_VT_U64 && n) touch((const uint8_t *)data + (n - 1) * 8, 8);
}

static void lookup(const gguf_file *f, hl_str name, int tensor) {
    char buf[256];
    if (name.len >= sizeof buf || memchr(name.ptr, 0, name.len)) return;
    memcpy(buf, name.ptr, name.len);
    buf[name.len] = 0;
    if (tensor ? gguf_find_tensor(f, buf) == NULL : gguf_find(f, buf) == NULL) abort();
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    gguf_file *f;
    hl_err e;
    if (gguf_parse(&f, data, size, &e) < 0) {
        if (strncmp(e.msg, "gguf: ", 6) != 0) abort();
        return 0;
    }
    gguf_writer *w = gguf_writer_new();
    for (uint64_t i = 0; i < gguf_kv_count(f); i++) {
        const gguf_kv *kv = gguf_kv_at(f, i);
        touch(kv->key.ptr, kv->key.len);
        lookup(f, kv->key, 0);
        if (kv->val.type == GGUF_VT_STRING) touch(kv->val.v.str.ptr, kv->val.v.str.len);
        if (kv->val.type == GGUF_VT_ARRAY) walk_array(kv->val.v.arr);
        if (w && gguf_set_kv_from(w, kv, &e) < 0) abort();
        char key[256];
        snprintf(key, sizeof key, "%.*s", (int)(kv->key.len < 255 ? kv->key.len : 255),
                 kv->key.ptr);
        uint32_t u32;
        uint64_t u64;
        int64_t i64;
        float f32;
        bool b;
        hl_str s;
        const gguf_array *a;
        (void)gguf_get_u32(f, key, &u32);
        (void)gguf_get_u64(f, key, &u64);
        (void)gguf_get_i64(f, key, &i64);
        (void)gguf_get_f32(f, key, &f32);
        (void)gguf_get_bool(f, key, &b);
        (void)gguf_get_str(f, key, &s);
        (void)gguf_get_arr(f, key, &a);
    }
    if (gguf_kv_at(f, gguf_kv_count(f)) != NULL) abort();
    for (uint64_t i = 0; i < gguf_tensor_count(f); i++) {
        const gguf_tensor *t = gguf_tensor_at(f, i);
        touch(t->name.ptr, t->name.len);
        lookup(f, t->name, 1);
        const uint8_t *p = t->data, *end = data + size;
        if (t->n_dims > GGUF_MAX_DIMS || !t->nbytes || p < data || p > end ||
            t->nbytes > (uint64_t)(end - p) || t->offset % gguf_alignment(f))
            abort();
        touch(p, 1);
        touch(p + t->nbytes - 1, 1);
    }
    if (gguf_tensor_at(f, gguf_tensor_count(f)) != NULL) abort();
    gguf_writer_free(w);
    gguf_close(f);
    return 0;
}
