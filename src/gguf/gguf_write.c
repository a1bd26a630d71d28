/* gguf_write.c - the GGUF writer: collect metadata and tensors, write a v3 file.
 *
 *   gguf_writer *w = gguf_writer_new();
 *   gguf_set_str(w, "general.architecture", "llama", &e);
 *   gguf_add_tensor(w, "tok_embd.weight", HL_F32, 2, ne, data, &e);
 *   gguf_writer_write(w, "out.gguf", &e); gguf_writer_free(w);
 *
 * Contract. The writer owns copies of everything it is given: each kv pair
 * is kept as its key plus the value already encoded in GGUF wire form (value
 * type, then payload), each tensor as its record plus a copy of its data.
 * Keys keep their first insertion order; setting a key again replaces its
 * value in place. Tensors are validated when added (known type, 0..4 dims,
 * each dim > 0, ne[0] a multiple of the block size, no size overflow, unique
 * name) so the written file always passes our reader.
 *
 * Layout written: header (v3), kv pairs, tensor records, zero padding to the
 * alignment, then each tensor's data padded to the alignment, in the order
 * added (the offsets llama.cpp expects). The alignment is general.alignment
 * when set (it must be a u32 power of two) else 32. The file is written to a
 * temporary name beside the target and renamed over it only when complete,
 * so a failed write never leaves a partial file at path.
 *
 * A writer is not thread-safe; use one per thread.
 */
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "gguf_internal.h"

#define DEFAULT_ALIGNMENT 32

typedef struct wkv {
    char *key;
    size_t key_len;
    uint8_t *val; /* value type (u32) + payload, as in the file */
    size_t val_len;
} wkv;

typedef struct wtensor {
    char *name;
    size_t name_len;
    uint32_t type, n_dims;
    uint64_t ne[GGUF_MAX_DIMS];
    void *data;
    uint64_t nbytes;
} wtensor;

struct gguf_writer {
    wkv *kv;
    size_t n_kv, cap_kv;
    wtensor *t;
    size_t n_t, cap_t;
};

/* ---- growable byte buffer; the first allocation failure sticks ---- */

typedef struct buf {
    uint8_t *p;
    size_t len, cap;
    bool oom;
} buf;

static void put(buf *b, const void *src, size_t n) {
    if (b->oom || n == 0) return;
    if (n > SIZE_MAX / 2 - b->len) {
        b->oom = true;
        return;
    }
    if (b->len + n > b->cap) {
        size_t cap = b->cap ? b->cap : 64;
        while (cap < b->len + n) cap *= 2;
        uint8_t *p = realloc(b->p, cap);
        if (!p) {
            b->oom = true;
            return;
        }
        b->p = p;
        b->cap = cap;
    }
    memcpy(b->p + b->len, src, n);
    b->len += n;
}

static void put_u32(buf *b, uint32_t v) {
    put(b, &v, 4);
}
static void put_u64(buf *b, uint64_t v) {
    put(b, &v, 8);
}

static void put_str(buf *b, const char *p, uint64_t n) {
    put_u64(b, n);
    put(b, p, n);
}

/* ---- writer ---- */

gguf_writer *gguf_writer_new(void) {
    return calloc(1, sizeof(gguf_writer));
}

void gguf_writer_free(gguf_writer *w) {
    if (!w) return;
    for (size_t i = 0; i < w->n_kv; i++) {
        free(w->kv[i].key);
        free(w->kv[i].val);
    }
    for (size_t i = 0; i < w->n_t; i++) {
        free(w->t[i].name);
        free(w->t[i].data);
    }
    free(w->kv);
    free(w->t);
    free(w);
}

/* Stores key -> encoded value b (taking ownership of b->p in every case). */
static int set_kv(gguf_writer *w, const char *key, size_t key_len, buf *b, hl_err *e) {
    if (b->oom) {
        free(b->p);
        return hl_errf(e, "gguf: out of memory encoding the value of '%.*s'", (int)key_len, key);
    }
    for (size_t i = 0; i < w->n_kv; i++) {
        if (w->kv[i].key_len == key_len && memcmp(w->kv[i].key, key, key_len) == 0) {
            free(w->kv[i].val);
            w->kv[i].val = b->p;
            w->kv[i].val_len = b->len;
            return 0;
        }
    }
    if (w->n_kv == w->cap_kv) {
        size_t cap = w->cap_kv ? w->cap_kv * 2 : 16;
        wkv *kv = realloc(w->kv, cap * sizeof *kv);
        if (!kv) goto oom;
        w->kv = kv;
        w->cap_kv = cap;
    }
    char *k = malloc(key_len + 1);
    if (!k) goto oom;
    if (key_len) memcpy(k, key, key_len);
    k[key_len] = 0;
    w->kv[w->n_kv++] = (wkv){k, key_len, b->p, b->len};
    return 0;
oom:
    free(b->p);
    return hl_errf(e, "gguf: out of memory adding key '%.*s'", (int)key_len, key);
}

static int set_scalar(gguf_writer *w, const char *key, gguf_vtype t, const void *v, size_t n,
                      hl_err *e) {
    if (!key) return hl_errf(e, "gguf: NULL key");
    buf b = {0};
    put_u32(&b, t);
    put(&b, v, n);
    return set_kv(w, key, strlen(key), &b, e);
}

int gguf_set_u32(gguf_writer *w, const char *key, uint32_t v, hl_err *e) {
    return set_scalar(w, key, GGUF_VT_U32, &v, 4, e);
}

int gguf_set_i32(gguf_writer *w, const char *key, int32_t v, hl_err *e) {
    return set_scalar(w, key, GGUF_VT_I32, &v, 4, e);
}

int gguf_set_u64(gguf_writer *w, const char *key, uint64_t v, hl_err *e) {
    return set_scalar(w, key, GGUF_VT_U64, &v, 8, e);
}

int gguf_set_f32(gguf_writer *w, const char *key, float v, hl_err *e) {
    return set_scalar(w, key, GGUF_VT_F32, &v, 4, e);
}

int gguf_set_bool(gguf_writer *w, const char *key, bool v, hl_err *e) {
    uint8_t b = v ? 1 : 0;
    return set_scalar(w, key, GGUF_VT_BOOL, &b, 1, e);
}

int gguf_set_str(gguf_writer *w, const char *key, const char *v, hl_err *e) {
    if (!key || !v) return hl_errf(e, "gguf: NULL key or string value");
    buf b = {0};
    put_u32(&b, GGUF_VT_STRING);
    put_str(&b, v, strlen(v));
    return set_kv(w, key, strlen(key), &b, e);
}

int gguf_set_arr(gguf_writer *w, const char *key, gguf_vtype elem, const void *data, uint64_t n,
                 hl_err *e) {
    if (!key) return hl_errf(e, "gguf: NULL key");
    size_t es = gguf_vtype_size(elem);
    if (!es)
        return hl_errf(e,
                       "gguf: array '%s': element type %d is not a fixed-size value type "
                       "(use gguf_set_arr_str for strings)",
                       key, (int)elem);
    if (n > SIZE_MAX / es)
        return hl_errf(e, "gguf: array '%s': %" PRIu64 " elements is too many", key, n);
    if (n && !data)
        return hl_errf(e, "gguf: array '%s': NULL data for %" PRIu64 " elements", key, n);
    buf b = {0};
    put_u32(&b, GGUF_VT_ARRAY);
    put_u32(&b, elem);
    put_u64(&b, n);
    if (elem == GGUF_VT_BOOL) {
        for (uint64_t i = 0; i < n; i++) {
            uint8_t v = ((const uint8_t *)data)[i] != 0;
            put(&b, &v, 1);
        }
    } else {
        put(&b, data, (size_t)n * es);
    }
    return set_kv(w, key, strlen(key), &b, e);
}

int gguf_set_arr_str(gguf_writer *w, const char *key, const char *const *v, uint64_t n, hl_err *e) {
    if (!key) return hl_errf(e, "gguf: NULL key");
    if (n && !v)
        return hl_errf(e, "gguf: array '%s': NULL strings for %" PRIu64 " elements", key, n);
    buf b = {0};
    put_u32(&b, GGUF_VT_ARRAY);
    put_u32(&b, GGUF_VT_STRING);
    put_u64(&b, n);
    for (uint64_t i = 0; i < n; i++) {
        if (!v[i]) {
            free(b.p);
            return hl_errf(e, "gguf: array '%s': string #%" PRIu64 " is NULL", key, i);
        }
        put_str(&b, v[i], strlen(v[i]));
    }
    return set_kv(w, key, strlen(key), &b, e);
}

/* Encodes a parsed array (element type, length, elements). The reader
 * bounded its nesting depth, so the recursion is bounded. */
static void enc_array(buf *b, const gguf_array *a) {
    put_u32(b, a->type);
    put_u64(b, a->n);
    size_t es = gguf_vtype_size(a->type);
    if (a->type == GGUF_VT_BOOL) {
        for (uint64_t i = 0; i < a->n; i++) {
            uint8_t v = a->data[i] != 0;
            put(b, &v, 1);
        }
    } else if (es) {
        put(b, a->data, (size_t)(a->n * es));
    } else if (a->type == GGUF_VT_STRING) {
        for (uint64_t i = 0; i < a->n; i++) {
            hl_str s;
            gguf_arr_str(a, i, &s);
            put_str(b, s.ptr, s.len);
        }
    } else {
        for (uint64_t i = 0; i < a->n; i++) enc_array(b, &a->sub[i]);
    }
}

int gguf_set_kv_from(gguf_writer *w, const gguf_kv *kv, hl_err *e) {
    const gguf_value *v = &kv->val;
    buf b = {0};
    put_u32(&b, v->type);
    switch (v->type) {
    case GGUF_VT_U8:
    case GGUF_VT_I8:
    case GGUF_VT_BOOL: {
        uint8_t x = (uint8_t)v->v.u64;
        put(&b, &x, 1);
        break;
    }
    case GGUF_VT_U16:
    case GGUF_VT_I16: {
        uint16_t x = (uint16_t)v->v.u64;
        put(&b, &x, 2);
        break;
    }
    case GGUF_VT_U32:
    case GGUF_VT_I32: {
        uint32_t x = (uint32_t)v->v.u64;
        put(&b, &x, 4);
        break;
    }
    case GGUF_VT_U64:
    case GGUF_VT_I64:
        put_u64(&b, v->v.u64);
        break;
    case GGUF_VT_F32: {
        float x = (float)v->v.f64;
        put(&b, &x, 4);
        break;
    }
    case GGUF_VT_F64:
        put(&b, &v->v.f64, 8);
        break;
    case GGUF_VT_STRING:
        put_str(&b, v->v.str.ptr, v->v.str.len);
        break;
    case GGUF_VT_ARRAY:
        enc_array(&b, v->v.arr);
        break;
    default:
        free(b.p);
        return hl_errf(e, "gguf: key '%.*s': value type %d is not a GGUF value type",
                       (int)(kv->key.len > 200 ? 200 : kv->key.len), kv->key.ptr, (int)v->type);
    }
    if (kv->key.len > SIZE_MAX - 1) {
        free(b.p);
        return hl_errf(e, "gguf: key too long");
    }
    return set_kv(w, kv->key.ptr, (size_t)kv->key.len, &b, e);
}

int gguf_add_tensor(gguf_writer *w, const char *name, uint32_t type, uint32_t n_dims,
                    const uint64_t *ne, const void *data, hl_err *e) {
    if (!name) return hl_errf(e, "gguf: NULL tensor name");
    size_t name_len = strlen(name);
    const hl_dtype_traits *tr = hl_dtype_get(type);
    if (!tr) return hl_errf(e, "gguf: tensor '%s': unknown type %" PRIu32, name, type);
    if (n_dims > GGUF_MAX_DIMS)
        return hl_errf(e, "gguf: tensor '%s': n_dims %" PRIu32 " exceeds the maximum of %d", name,
                       n_dims, GGUF_MAX_DIMS);
    wtensor t = {.type = type, .n_dims = n_dims, .ne = {1, 1, 1, 1}};
    uint64_t nel = 1;
    for (uint32_t d = 0; d < n_dims; d++) {
        t.ne[d] = ne[d];
        if (ne[d] == 0 || ne[d] > (uint64_t)INT64_MAX / nel)
            return hl_errf(e,
                           "gguf: tensor '%s': dimension ne[%" PRIu32 "] = %" PRIu64
                           " is 0 or overflows the element count",
                           name, d, ne[d]);
        nel *= ne[d];
    }
    if (t.ne[0] % tr->block_elems)
        return hl_errf(e,
                       "gguf: tensor '%s': ne[0] = %" PRIu64 " is not a multiple of the %s block "
                       "size %" PRIu32,
                       name, t.ne[0], tr->name, tr->block_elems);
    uint64_t nb = t.ne[0] / tr->block_elems * tr->block_bytes;
    for (int d = 1; d < GGUF_MAX_DIMS; d++) {
        if (nb > SIZE_MAX / t.ne[d])
            return hl_errf(e, "gguf: tensor '%s': data size overflows", name);
        nb *= t.ne[d];
    }
    t.nbytes = nb;
    if (!data) return hl_errf(e, "gguf: tensor '%s': NULL data", name);
    for (size_t i = 0; i < w->n_t; i++)
        if (w->t[i].name_len == name_len && memcmp(w->t[i].name, name, name_len) == 0)
            return hl_errf(e, "gguf: tensor '%s' was already added", name);
    if (w->n_t == w->cap_t) {
        size_t cap = w->cap_t ? w->cap_t * 2 : 64;
        wtensor *p = realloc(w->t, cap * sizeof *p);
        if (!p) return hl_errf(e, "gguf: out of memory adding tensor '%s'", name);
        w->t = p;
        w->cap_t = cap;
    }
    t.name = strdup(name);
    t.name_len = name_len;
    t.data = malloc((size_t)nb);
    if (!t.name || !t.data) {
        free(t.name);
        free(t.data);
        return hl_errf(e, "gguf: out of memory copying tensor '%s' (%" PRIu64 " bytes)", name, nb);
    }
    memcpy(t.data, data, (size_t)nb);
    w->t[w->n_t++] = t;
    return 0;
}

/* ---- output ---- */

typedef struct out {
    FILE *fp;
    uint64_t pos;
    bool failed;
} out;

static void out_put(out *o, const void *p, size_t n) {
    if (o->failed || n == 0) return;
    if (fwrite(p, 1, n, o->fp) != n) o->failed = true;
    o->pos += n;
}

static void out_pad(out *o, uint32_t align) {
    static const uint8_t zeros[64];
    size_t n = (size_t)((align - o->pos % align) % align);
    while (n) {
        size_t k = n < sizeof zeros ? n : sizeof zeros;
        out_put(o, zeros, k);
        n -= k;
    }
}

static void out_u32(out *o, uint32_t v) {
    out_put(o, &v, 4);
}
static void out_u64(out *o, uint64_t v) {
    out_put(o, &v, 8);
}

static int writer_alignment(const gguf_writer *w, uint32_t *align, hl_err *e) {
    *align = DEFAULT_ALIGNMENT;
    for (size_t i = 0; i < w->n_kv; i++) {
        const wkv *kv = &w->kv[i];
        if (kv->key_len != 17 || memcmp(kv->key, "general.alignment", 17) != 0) continue;
        uint32_t a = kv->val_len == 8 ? gguf_le32(kv->val + 4) : 0;
        if (gguf_le32(kv->val) != GGUF_VT_U32)
            return hl_errf(e, "gguf: general.alignment must be a u32");
        if (a == 0 || (a & (a - 1)))
            return hl_errf(e, "gguf: general.alignment = %" PRIu32 " is not a nonzero power of two",
                           a);
        *align = a;
    }
    return 0;
}

static void write_all(out *o, const gguf_writer *w, uint32_t align) {
    out_put(o, "GGUF", 4);
    out_u32(o, 3);
    out_u64(o, w->n_t);
    out_u64(o, w->n_kv);
    for (size_t i = 0; i < w->n_kv; i++) {
        out_u64(o, w->kv[i].key_len);
        out_put(o, w->kv[i].key, w->kv[i].key_len);
        out_put(o, w->kv[i].val, w->kv[i].val_len);
    }
    uint64_t off = 0;
    for (size_t i = 0; i < w->n_t; i++) {
        const wtensor *t = &w->t[i];
        out_u64(o, t->name_len);
        out_put(o, t->name, t->name_len);
        out_u32(o, t->n_dims);
        for (uint32_t d = 0; d < t->n_dims; d++) out_u64(o, t->ne[d]);
        out_u32(o, t->type);
        out_u64(o, off);
        off += (t->nbytes + align - 1) / align * align;
    }
    out_pad(o, align);
    for (size_t i = 0; i < w->n_t; i++) {
        out_put(o, w->t[i].data, (size_t)w->t[i].nbytes);
        out_pad(o, align);
    }
}

int gguf_writer_write(gguf_writer *w, const char *path, hl_err *e) {
    uint32_t align;
    if (writer_alignment(w, &align, e) < 0) return -1;
    static atomic_uint counter;
    char tmp[4096];
    int fd = -1;
    for (int tries = 0; fd < 0 && tries < 16; tries++) {
        int n = snprintf(tmp, sizeof tmp, "%s.tmp.%ld.%u", path, (long)getpid(),
                         atomic_fetch_add(&counter, 1));
        if (n < 0 || (size_t)n >= sizeof tmp) return hl_errf(e, "gguf: path too long: '%s'", path);
        fd = open(tmp, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0666);
        if (fd < 0 && errno != EEXIST) break;
    }
    if (fd < 0) return hl_errf(e, "gguf: cannot create '%s': %s", tmp, strerror(errno));
    out o = {.fp = fdopen(fd, "wb")};
    if (!o.fp) {
        int err = errno;
        close(fd);
        unlink(tmp);
        return hl_errf(e, "gguf: cannot write '%s': %s", tmp, strerror(err));
    }
    errno = 0;
    write_all(&o, w, align);
    int err = 0;
    if (o.failed || fflush(o.fp) != 0 || fsync(fileno(o.fp)) != 0) err = errno ? errno : EIO;
    if (fclose(o.fp) != 0 && !err) err = errno ? errno : EIO;
    if (!err && rename(tmp, path) != 0) err = errno;
    if (err) {
        unlink(tmp);
        return hl_errf(e, "gguf: writing '%s' failed: %s", path, strerror(err));
    }
    return 0;
}
