/* template_value.c - the value model of a render: allocation under the
 * render's limits, strings, lists, dicts, scopes, and Python's semantics for
 * them: truth, str() and repr(), ==, <, hashing, len(), json.dumps, and
 * reading JSON (json-c) into values.
 *
 * Contract. Every object is allocated through tpl_alloc, counted against
 * the render's memory limits and linked into its tctx; the last tpl_decref
 * frees it (iteratively, so a list nested a million deep frees without deep
 * recursion) and tpl_free_all frees whatever remains. Immortal strings
 * (template constants) are never counted, linked, written or freed here.
 * Recursive operations (repr, ==, <, JSON) stop at TPL_MAX_DEPTH nesting.
 * Single-threaded: one render's objects belong to one thread.
 */
#include <errno.h>
#include <inttypes.h>
#include <json-c/json.h>
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "template_internal.h"

/* ---- allocation ---- */

static bool charge(tctx *c, size_t add) {
    if (add > TPL_MAX_LIVE_BYTES || c->live_bytes + add > TPL_MAX_LIVE_BYTES) {
        tpl_fail(c, "the template needs more than %u MiB of memory", TPL_MAX_LIVE_BYTES >> 20);
        return false;
    }
    if (c->total_bytes + add > TPL_MAX_ALLOC_TOTAL) {
        tpl_fail(c, "the template allocates more than %llu GiB in all (a runaway loop?)",
                 (unsigned long long)(TPL_MAX_ALLOC_TOTAL >> 30));
        return false;
    }
    c->live_bytes += add;
    c->total_bytes += add;
    return true;
}

bool tpl_account(tctx *c, size_t add, size_t sub) {
    c->live_bytes -= sub < c->live_bytes ? sub : c->live_bytes;
    return add == 0 || charge(c, add);
}

void *tpl_alloc(tctx *c, uint8_t type, size_t bytes) {
    if (!charge(c, bytes)) return NULL;
    tobj *o = malloc(bytes);
    if (!o) {
        c->live_bytes -= bytes;
        tpl_fail(c, "out of memory");
        return NULL;
    }
    memset(o, 0, type == TV_STR ? sizeof(tstr) : bytes);
    o->rc = 1;
    o->type = type;
    o->bytes = bytes;
    o->next = c->live.next;
    o->prev = &c->live;
    c->live.next->prev = o;
    c->live.next = o;
    return o;
}

void tpl_incref(tval v) {
    if (TV_IS_HEAP(v.t) && v.u.o->rc != TOBJ_IMMORTAL) v.u.o->rc++;
}

/* Releases o's own arrays; with children, queues the objects it held whose
 * count drops to zero onto *pending (linked through prev). */
static void release(tctx *c, tobj *o, tobj **pending);

static void drop(tval v, tobj **pending) {
    if (!TV_IS_HEAP(v.t)) return;
    tobj *o = v.u.o;
    if (o->rc == TOBJ_IMMORTAL || --o->rc > 0) return;
    o->prev->next = o->next; /* unlink, then queue */
    o->next->prev = o->prev;
    o->prev = *pending;
    *pending = o;
}

static void release(tctx *c, tobj *o, tobj **pending) {
    switch (o->type) {
    case TV_LIST:
    case TV_TUPLE: {
        tlist *l = (tlist *)o;
        if (pending)
            for (size_t i = 0; i < l->n; i++) drop(l->v[i], pending);
        tpl_account(c, 0, l->cap * sizeof(tval));
        free(l->v);
        break;
    }
    case TV_DICT:
    case TV_NS: {
        tdict *d = (tdict *)o;
        if (pending)
            for (uint32_t i = 0; i < d->n; i++) drop(d->k[i], pending), drop(d->v[i], pending);
        tpl_account(c, 0, (size_t)d->cap * 2 * sizeof(tval) + d->icap * sizeof(uint32_t));
        free(d->k);
        free(d->v);
        free(d->idx);
        break;
    }
    case TV_FRAME: {
        tframe *f = (tframe *)o;
        if (pending) {
            for (uint32_t i = 0; i < f->n; i++) drop(f->vals[i], pending);
            if (f->parent) drop(tv_obj(TV_FRAME, f->parent), pending);
        }
        tpl_account(c, 0, f->cap * (sizeof(tval) + sizeof(int32_t)));
        free(f->syms);
        free(f->vals);
        break;
    }
    case TV_MACRO: {
        tmacro *m = (tmacro *)o;
        if (pending && m->closure) drop(tv_obj(TV_FRAME, m->closure), pending);
        break;
    }
    case TV_METHOD:
        if (pending) drop(((tmethod *)o)->self, pending);
        break;
    case TV_LOOP:
        if (pending) {
            drop(tv_obj(TV_LIST, ((tloop *)o)->items), pending);
            drop(((tloop *)o)->changed, pending);
            if (((tloop *)o)->frame) drop(tv_obj(TV_FRAME, ((tloop *)o)->frame), pending);
        }
        break;
    case TV_CYCLER:
        if (pending) drop(tv_obj(TV_LIST, ((tcycler *)o)->items), pending);
        break;
    case TV_ITER: {
        titer *it = (titer *)o;
        if (pending) {
            if (it->items) drop(tv_obj(TV_LIST, it->items), pending);
            drop(it->src, pending);
            for (uint32_t i = 0; i < it->npos + it->nkw; i++) drop(it->args[i], pending);
        }
        tpl_account(c, 0, (it->npos + it->nkw) * (sizeof(tval) + sizeof(tstr *)));
        free(it->args);
        free(it->kwn);
        break;
    }
    case TV_JOINER:
        if (pending) drop(((tjoiner *)o)->sep, pending);
        break;
    default:
        break;
    }
}

void tpl_decref(tctx *c, tval v) {
    tobj *pending = NULL;
    drop(v, &pending);
    while (pending) {
        tobj *o = pending;
        pending = o->prev;
        release(c, o, &pending);
        tpl_account(c, 0, o->bytes);
        free(o);
    }
}

void tpl_obj_decref(tctx *c, tobj *o) {
    tpl_decref(c, tv_obj(o->type, o));
}

void tpl_free_all(tctx *c) {
    tobj *o = c->live.next;
    while (o != &c->live) {
        tobj *next = o->next;
        release(c, o, NULL);
        free(o);
        o = next;
    }
    c->live.next = c->live.prev = &c->live;
    c->live_bytes = 0;
}

tval tv_undef_named(uint8_t ukind, uint8_t otype, const char *name) {
    return (tval){.t = TV_UNDEF, .ukind = ukind, .otype = otype, .u.name = name};
}

/* ---- strings ---- */

tstr *tpl_str_ncp(tctx *c, const char *p, size_t len, size_t ncp) {
    if (len > TPL_MAX_OUTPUT) {
        tpl_fail(c, "a string of %zu bytes is longer than the %u MiB limit", len,
                 TPL_MAX_OUTPUT >> 20);
        return NULL;
    }
    tstr *s = tpl_alloc(c, TV_STR, sizeof(tstr) + len + 1);
    if (!s) return NULL;
    if (len) memcpy(s->p, p, len);
    s->p[len] = 0;
    s->len = len;
    s->ncp = ncp;
    return s;
}

tstr *tpl_str(tctx *c, const char *p, size_t len) {
    return tpl_str_ncp(c, p, len, tpl_utf8_count(p, len));
}

tstr *tpl_str_cat(tctx *c, const tstr *a, const tstr *b) {
    size_t len = a->len + b->len;
    if (tpl_work(c, len / 64) < 0) return NULL;
    if (len > TPL_MAX_OUTPUT) {
        tpl_fail(c, "a string of %zu bytes is longer than the %u MiB limit", len,
                 TPL_MAX_OUTPUT >> 20);
        return NULL;
    }
    tstr *s = tpl_alloc(c, TV_STR, sizeof(tstr) + len + 1);
    if (!s) return NULL;
    memcpy(s->p, a->p, a->len);
    memcpy(s->p + a->len, b->p, b->len);
    s->p[len] = 0;
    s->len = len;
    s->ncp = a->ncp + b->ncp;
    return s;
}

int tpl_str_val(tctx *c, const char *p, size_t len, tval *out) {
    tstr *s = tpl_str(c, p, len);
    if (!s) return -1;
    *out = tv_obj(TV_STR, s);
    return 0;
}

int tpl_str_from_buf(tctx *c, tbuf *b, tval *out) {
    int rc = tpl_str_val(c, b->p ? b->p : "", b->len, out);
    tbuf_free(c, b);
    return rc;
}

static uint32_t hash_bytes(const char *p, size_t n) {
    uint32_t h = 2166136261u;
    for (size_t i = 0; i < n; i++) h = (h ^ (unsigned char)p[i]) * 16777619u;
    return h ? h : 1;
}

uint32_t tpl_str_hash(tstr *s) {
    if (!s->hash) s->hash = hash_bytes(s->p, s->len);
    return s->hash;
}

bool tbuf_put(tctx *c, tbuf *b, const char *p, size_t n) {
    if (n == 0) return true;
    if (n >= 4096 && tpl_work(c, n / 64) < 0) return false;
    if (n > TPL_MAX_OUTPUT - b->len || b->len + n > TPL_MAX_OUTPUT) {
        tpl_fail(c, "the text is longer than the %u MiB limit", TPL_MAX_OUTPUT >> 20);
        return false;
    }
    if (b->len + n + 1 > b->cap) {
        size_t cap = b->cap ? b->cap : 64;
        while (cap < b->len + n + 1) cap *= 2;
        if (!tpl_account(c, cap, b->cap)) return false;
        char *q = realloc(b->p, cap);
        if (!q) {
            tpl_account(c, b->cap, cap);
            tpl_fail(c, "out of memory");
            return false;
        }
        b->p = q;
        b->cap = cap;
    }
    memcpy(b->p + b->len, p, n);
    b->len += n;
    b->p[b->len] = 0;
    return true;
}

bool tbuf_putc(tctx *c, tbuf *b, char ch) {
    return tbuf_put(c, b, &ch, 1);
}
bool tbuf_puts(tctx *c, tbuf *b, const char *s) {
    return tbuf_put(c, b, s, strlen(s));
}

void tbuf_free(tctx *c, tbuf *b) {
    tpl_account(c, 0, b->cap);
    free(b->p);
    *b = (tbuf){0};
}

/* ---- lists ---- */

tlist *tpl_list(tctx *c, uint8_t type, size_t cap) {
    tlist *l = tpl_alloc(c, type, sizeof(tlist));
    if (!l) return NULL;
    if (cap) {
        if (cap > TPL_MAX_LIVE_BYTES / sizeof(tval) || !tpl_account(c, cap * sizeof(tval), 0)) {
            if (cap > TPL_MAX_LIVE_BYTES / sizeof(tval)) tpl_fail(c, "a list is too long");
            tpl_obj_decref(c, &l->h);
            return NULL;
        }
        l->v = malloc(cap * sizeof(tval));
        if (!l->v) {
            tpl_account(c, 0, cap * sizeof(tval));
            tpl_fail(c, "out of memory");
            tpl_obj_decref(c, &l->h);
            return NULL;
        }
        l->cap = cap;
    }
    return l;
}

bool tpl_list_push(tctx *c, tlist *l, tval v) {
    if (l->n == l->cap) {
        size_t cap = l->cap ? l->cap * 2 : 4;
        if (cap > TPL_MAX_LIVE_BYTES / sizeof(tval)) {
            tpl_fail(c, "a list is too long");
            tpl_decref(c, v);
            return false;
        }
        if (!tpl_account(c, cap * sizeof(tval), l->cap * sizeof(tval))) {
            tpl_decref(c, v);
            return false;
        }
        tval *nv = realloc(l->v, cap * sizeof(tval));
        if (!nv) {
            tpl_account(c, l->cap * sizeof(tval), cap * sizeof(tval));
            tpl_fail(c, "out of memory");
            tpl_decref(c, v);
            return false;
        }
        l->v = nv;
        l->cap = cap;
    }
    l->v[l->n++] = v;
    return true;
}

/* ---- hashing and equality ---- */

bool tpl_hashable(tval v) {
    switch (v.t) {
    case TV_LIST:
    case TV_DICT:
        return false;
    case TV_TUPLE:
        for (size_t i = 0; i < v.u.l->n; i++)
            if (!tpl_hashable(v.u.l->v[i])) return false;
        return true;
    default:
        return true;
    }
}

static uint32_t mix64(uint64_t x) {
    x ^= x >> 33;
    x *= 0xff51afd7ed558ccdull;
    x ^= x >> 33;
    return (uint32_t)x | 1;
}

static uint32_t hash_val(tval v, int depth) {
    switch (v.t) {
    case TV_STR:
        return tpl_str_hash(v.u.s);
    case TV_BOOL:
        return mix64((uint64_t)v.u.b);
    case TV_INT:
        return mix64((uint64_t)v.u.i);
    case TV_FLOAT:
        if (v.u.f == floor(v.u.f) && fabs(v.u.f) < 9.2e18) return mix64((uint64_t)(int64_t)v.u.f);
        {
            uint64_t bits;
            memcpy(&bits, &v.u.f, sizeof bits);
            return mix64(bits);
        }
    case TV_NONE:
        return 0x9e3779b9u;
    case TV_UNDEF:
        return 0x7f4a7c15u;
    case TV_TUPLE: {
        uint32_t h = 0x345678u;
        if (depth < TPL_MAX_DEPTH)
            for (size_t i = 0; i < v.u.l->n; i++)
                h = (h * 1000003u) ^ hash_val(v.u.l->v[i], depth + 1);
        return h | 1;
    }
    case TV_BUILTIN:
        return mix64((uint64_t)v.u.i + 77);
    default:
        return mix64((uint64_t)(uintptr_t)v.u.o);
    }
}

static bool is_num(tval v) {
    return v.t == TV_INT || v.t == TV_FLOAT || v.t == TV_BOOL;
}

static double num_f(tval v) {
    return v.t == TV_FLOAT ? v.u.f : v.t == TV_INT ? (double)v.u.i : (double)v.u.b;
}

static int64_t num_i(tval v) {
    return v.t == TV_INT ? v.u.i : (int64_t)v.u.b;
}

static bool eq_depth(tctx *c, tval a, tval b, int depth) {
    if (depth > TPL_MAX_DEPTH || (c && tpl_work(c, 1) < 0)) return false;
    if (is_num(a) && is_num(b)) {
        if (a.t != TV_FLOAT && b.t != TV_FLOAT) return num_i(a) == num_i(b);
        return num_f(a) == num_f(b);
    }
    if (a.t != b.t) return false;
    switch (a.t) {
    case TV_UNDEF:
    case TV_NONE:
        return true;
    case TV_BUILTIN:
        return a.u.i == b.u.i;
    case TV_STR:
        if (a.u.s->len != b.u.s->len) return false;
        if (c && a.u.s->len > 64 && tpl_work(c, a.u.s->len / 64) < 0) return false;
        return memcmp(a.u.s->p, b.u.s->p, a.u.s->len) == 0;
    case TV_LIST:
    case TV_TUPLE:
        if (a.u.l->n != b.u.l->n) return false;
        for (size_t i = 0; i < a.u.l->n; i++)
            if (!eq_depth(c, a.u.l->v[i], b.u.l->v[i], depth + 1)) return false;
        return true;
    case TV_DICT:
        if (a.u.d->n != b.u.d->n) return false;
        for (uint32_t i = 0; i < a.u.d->n; i++) {
            tval *w = tpl_dict_get(c, b.u.d, a.u.d->k[i], NULL);
            if (!w || !eq_depth(c, a.u.d->v[i], *w, depth + 1)) return false;
        }
        return true;
    case TV_ITER:
        if (((titer *)a.u.o)->kind == IT_RANGE && ((titer *)b.u.o)->kind == IT_RANGE)
            return eq_depth(c, tv_obj(TV_LIST, ((titer *)a.u.o)->items),
                            tv_obj(TV_LIST, ((titer *)b.u.o)->items), depth + 1);
        return a.u.o == b.u.o;
    case TV_METHOD:
        return ((tmethod *)a.u.o)->id == ((tmethod *)b.u.o)->id &&
               eq_depth(c, ((tmethod *)a.u.o)->self, ((tmethod *)b.u.o)->self, depth + 1);
    default:
        return a.u.o == b.u.o;
    }
}

bool tpl_eq(tctx *c, tval a, tval b) {
    return eq_depth(c, a, b, 0);
}

/* ---- dicts ---- */

tdict *tpl_dict(tctx *c, uint8_t type) {
    return tpl_alloc(c, type, sizeof(tdict));
}

static bool dict_reindex(tctx *c, tdict *d) {
    uint32_t icap = 16;
    while (icap < d->n * 2 + 2) icap *= 2;
    if (!tpl_account(c, icap * sizeof(uint32_t), d->icap * sizeof(uint32_t))) return false;
    uint32_t *idx = calloc(icap, sizeof *idx);
    if (!idx) {
        tpl_account(c, d->icap * sizeof(uint32_t), icap * sizeof(uint32_t));
        return tpl_fail(c, "out of memory"), false;
    }
    free(d->idx);
    d->idx = idx;
    d->icap = icap;
    for (uint32_t i = 0; i < d->n; i++) {
        uint32_t h = hash_val(d->k[i], 0) & (icap - 1);
        while (idx[h]) h = (h + 1) & (icap - 1);
        idx[h] = i + 1;
    }
    return true;
}

static int64_t dict_find(tctx *c, tdict *d, tval k) {
    if (!d->idx) {
        for (uint32_t i = 0; i < d->n; i++)
            if (tpl_eq(c, d->k[i], k)) return i;
        return -1;
    }
    uint32_t h = hash_val(k, 0) & (d->icap - 1);
    while (d->idx[h]) {
        uint32_t i = d->idx[h] - 1;
        if (tpl_eq(c, d->k[i], k)) return i;
        h = (h + 1) & (d->icap - 1);
    }
    return -1;
}

static int unhashable(tctx *c, tval k) {
    return c ? tpl_fail(c, "unhashable type: '%s'", tpl_type_name(k.t)) : -1;
}

tval *tpl_dict_get(tctx *c, tdict *d, tval k, int *err) {
    if (!tpl_hashable(k)) {
        if (err) *err = unhashable(c, k);
        return NULL;
    }
    int64_t i = dict_find(c, d, k);
    return i < 0 ? NULL : &d->v[i];
}

tval *tpl_dict_get_str(tdict *d, const char *p, size_t n) {
    if (!d->idx) {
        for (uint32_t i = 0; i < d->n; i++)
            if (d->k[i].t == TV_STR && d->k[i].u.s->len == n && memcmp(d->k[i].u.s->p, p, n) == 0)
                return &d->v[i];
        return NULL;
    }
    uint32_t h = hash_bytes(p, n) & (d->icap - 1);
    while (d->idx[h]) {
        uint32_t i = d->idx[h] - 1;
        if (d->k[i].t == TV_STR && d->k[i].u.s->len == n && memcmp(d->k[i].u.s->p, p, n) == 0)
            return &d->v[i];
        h = (h + 1) & (d->icap - 1);
    }
    return NULL;
}

int tpl_dict_set(tctx *c, tdict *d, tval k, tval v) {
    if (!tpl_hashable(k)) {
        tpl_decref(c, k);
        tpl_decref(c, v);
        return unhashable(c, k);
    }
    int64_t i = dict_find(c, d, k);
    if (i >= 0) {
        tpl_decref(c, k);
        tval old = d->v[i];
        d->v[i] = v;
        tpl_decref(c, old);
        return 0;
    }
    if (d->n == d->cap) {
        uint32_t cap = d->cap ? d->cap * 2 : 4;
        size_t add = (size_t)cap * 2 * sizeof(tval), sub = (size_t)d->cap * 2 * sizeof(tval);
        if (cap > (1u << 26) || !tpl_account(c, add, sub)) {
            if (cap > (1u << 26)) tpl_fail(c, "a dict is too large");
            tpl_decref(c, k);
            tpl_decref(c, v);
            return -1;
        }
        tval *nk = malloc(cap * sizeof(tval)), *nv = malloc(cap * sizeof(tval));
        if (!nk || !nv) {
            free(nk);
            free(nv);
            tpl_account(c, sub, add);
            tpl_decref(c, k);
            tpl_decref(c, v);
            return tpl_fail(c, "out of memory");
        }
        if (d->n) {
            memcpy(nk, d->k, d->n * sizeof(tval));
            memcpy(nv, d->v, d->n * sizeof(tval));
        }
        free(d->k);
        free(d->v);
        d->k = nk;
        d->v = nv;
        d->cap = cap;
    }
    d->k[d->n] = k;
    d->v[d->n] = v;
    d->n++;
    if (d->n > TDICT_LINEAR && (!d->idx || d->n * 2 + 2 > d->icap)) {
        if (!dict_reindex(c, d)) return -1;
    } else if (d->idx) {
        uint32_t h = hash_val(k, 0) & (d->icap - 1);
        while (d->idx[h]) h = (h + 1) & (d->icap - 1);
        d->idx[h] = d->n;
    }
    return 0;
}

int tpl_dict_del(tctx *c, tdict *d, tval k, tval *out) {
    if (!tpl_hashable(k)) return unhashable(c, k);
    int64_t i = dict_find(c, d, k);
    if (i < 0) return 0;
    tpl_decref(c, d->k[i]);
    *out = d->v[i];
    memmove(d->k + i, d->k + i + 1, (d->n - (size_t)i - 1) * sizeof(tval));
    memmove(d->v + i, d->v + i + 1, (d->n - (size_t)i - 1) * sizeof(tval));
    d->n--;
    if (d->idx && !dict_reindex(c, d)) return -1;
    return 1;
}

/* ---- frames ---- */

tframe *tpl_frame(tctx *c, tframe *parent) {
    tframe *f = tpl_alloc(c, TV_FRAME, sizeof(tframe));
    if (!f) return NULL;
    f->parent = parent;
    if (parent) parent->h.rc++;
    return f;
}

tval *tpl_frame_find(tframe *f, int32_t sym) {
    for (uint32_t i = 0; i < f->n; i++)
        if (f->syms[i] == sym) return &f->vals[i];
    return NULL;
}

bool tpl_frame_set(tctx *c, tframe *f, int32_t sym, tval v) {
    tval *slot = tpl_frame_find(f, sym);
    if (slot) {
        tval old = *slot;
        *slot = v;
        tpl_decref(c, old);
        return true;
    }
    if (f->n == f->cap) {
        uint32_t cap = f->cap ? f->cap * 2 : 8;
        size_t per = sizeof(tval) + sizeof(int32_t);
        if (!tpl_account(c, cap * per, f->cap * per)) {
            tpl_decref(c, v);
            return false;
        }
        int32_t *ns = malloc(cap * sizeof *ns);
        tval *nv = malloc(cap * sizeof *nv);
        if (!ns || !nv) {
            free(ns);
            free(nv);
            tpl_account(c, f->cap * per, cap * per);
            tpl_decref(c, v);
            return tpl_fail(c, "out of memory"), false;
        }
        if (f->n) {
            memcpy(ns, f->syms, f->n * sizeof *ns);
            memcpy(nv, f->vals, f->n * sizeof *nv);
        }
        free(f->syms);
        free(f->vals);
        f->syms = ns;
        f->vals = nv;
        f->cap = cap;
    }
    f->syms[f->n] = sym;
    f->vals[f->n] = v;
    f->n++;
    return true;
}

void tpl_frame_clear(tctx *c, tframe *f) {
    while (f->n) {
        f->n--;
        tpl_decref(c, f->vals[f->n]);
    }
}

/* ---- truth, names, len ---- */

bool tpl_truthy(tval v) {
    switch (v.t) {
    case TV_UNDEF:
    case TV_NONE:
        return false;
    case TV_BOOL:
        return v.u.b;
    case TV_INT:
        return v.u.i != 0;
    case TV_FLOAT:
        return v.u.f != 0;
    case TV_STR:
        return v.u.s->len != 0;
    case TV_LIST:
    case TV_TUPLE:
        return v.u.l->n != 0;
    case TV_DICT:
        return v.u.d->n != 0;
    case TV_LOOP:
        return ((tloop *)v.u.o)->items->n != 0;
    case TV_ITER:
        return !IT_IS_VIEW(((titer *)v.u.o)->kind) ||
               ((titer *)v.u.o)->items->n != 0; /* views always have items */
    default:
        return true;
    }
}

int tpl_make_iter(tctx *c, tlist *l, uint8_t kind, tval *out) {
    titer *it = tpl_alloc(c, TV_ITER, sizeof(titer));
    if (!it) {
        tpl_obj_decref(c, &l->h);
        return -1;
    }
    it->items = l;
    it->kind = kind;
    it->filter = -1;
    it->src = tv_none();
    *out = tv_obj(TV_ITER, it);
    return 0;
}

const char *tpl_val_type_name(tval v) {
    if (v.t != TV_ITER) return v.t == TV_STR && v.markup ? "Markup" : tpl_type_name(v.t);
    switch (((titer *)v.u.o)->kind) {
    case IT_LIST_REVERSE:
        return "list_reverseiterator";
    case IT_DICT_REVERSE:
        return "dict_reversekeyiterator";
    case IT_RANGE_REVERSE:
        return "range_iterator";
    case IT_RANGE:
        return "range";
    case IT_DICT_ITEMS:
        return "dict_items";
    case IT_DICT_KEYS:
        return "dict_keys";
    case IT_DICT_VALUES:
        return "dict_values";
    default:
        return "generator";
    }
}

const char *tpl_type_name(uint8_t t) {
    switch (t) {
    case TV_UNDEF:
        return "Undefined";
    case TV_NONE:
        return "NoneType";
    case TV_BOOL:
        return "bool";
    case TV_INT:
        return "int";
    case TV_FLOAT:
        return "float";
    case TV_BUILTIN:
        return "builtin_function_or_method";
    case TV_STR:
        return "str";
    case TV_LIST:
        return "list";
    case TV_TUPLE:
        return "tuple";
    case TV_DICT:
        return "dict";
    case TV_NS:
        return "Namespace";
    case TV_MACRO:
        return "Macro";
    case TV_METHOD:
        return "builtin_function_or_method";
    case TV_LOOP:
        return "LoopContext";
    case TV_CYCLER:
        return "Cycler";
    case TV_JOINER:
        return "Joiner";
    case TV_ITER:
        return "generator";
    default:
        return "object";
    }
}

int64_t tpl_len(tval v) {
    switch (v.t) {
    case TV_UNDEF:
        return 0;
    case TV_STR:
        return (int64_t)v.u.s->ncp;
    case TV_LIST:
    case TV_TUPLE:
        return (int64_t)v.u.l->n;
    case TV_DICT:
        return v.u.d->n;
    case TV_LOOP:
        return (int64_t)((tloop *)v.u.o)->items->n;
    case TV_ITER:
        return IT_IS_VIEW(((titer *)v.u.o)->kind) ? (int64_t)((titer *)v.u.o)->items->n : -1;
    default:
        return -1;
    }
}

/* ---- str() and repr() ---- */

void tpl_float_repr(double f, char out[32]) {
    if (isnan(f)) {
        strcpy(out, "nan");
        return;
    }
    if (isinf(f)) {
        strcpy(out, f < 0 ? "-inf" : "inf");
        return;
    }
    if (f == 0) {
        strcpy(out, signbit(f) ? "-0.0" : "0.0");
        return;
    }
    char tmp[40];
    for (int prec = 1; prec <= 17; prec++) {
        snprintf(tmp, sizeof tmp, "%.*e", prec - 1, f);
        if (strtod(tmp, NULL) == f) break;
    }
    /* tmp: [-]d[.ddd]e[+-]XX */
    char digits[24];
    int nd = 0;
    const char *p = tmp;
    bool neg = *p == '-';
    if (neg) p++;
    for (; *p && *p != 'e'; p++)
        if (*p >= '0' && *p <= '9') digits[nd++] = *p;
    while (nd > 1 && digits[nd - 1] == '0') nd--;
    int exp10 = atoi(p + 1);
    int decpt = exp10 + 1;
    char *o = out;
    if (neg) *o++ = '-';
    if (decpt <= -4 || decpt > 16) {
        *o++ = digits[0];
        if (nd > 1) {
            *o++ = '.';
            memcpy(o, digits + 1, (size_t)nd - 1);
            o += nd - 1;
        }
        snprintf(o, 8, "e%c%02d", exp10 < 0 ? '-' : '+', (exp10 < 0 ? -exp10 : exp10) % 1000);
        return;
    }
    if (decpt <= 0) {
        *o++ = '0';
        *o++ = '.';
        for (int i = 0; i < -decpt; i++) *o++ = '0';
        memcpy(o, digits, (size_t)nd);
        o += nd;
    } else if (decpt >= nd) {
        memcpy(o, digits, (size_t)nd);
        o += nd;
        for (int i = nd; i < decpt; i++) *o++ = '0';
        *o++ = '.';
        *o++ = '0';
    } else {
        memcpy(o, digits, (size_t)decpt);
        o += decpt;
        *o++ = '.';
        memcpy(o, digits + decpt, (size_t)(nd - decpt));
        o += nd - decpt;
    }
    *o = 0;
}

static bool repr_string(tctx *c, tbuf *b, const char *s, size_t n) {
    bool sq = memchr(s, '\'', n) != NULL, dq = memchr(s, '"', n) != NULL;
    char q = sq && !dq ? '"' : '\'';
    if (!tbuf_putc(c, b, q)) return false;
    size_t i = 0, run = 0;
    while (i < n) {
        size_t at = i;
        uint32_t cp = tpl_utf8_next(s, n, &i);
        char esc[16];
        int m = 0;
        if (cp == (uint32_t)q || cp == '\\')
            m = snprintf(esc, sizeof esc, "\\%c", (char)cp);
        else if (cp == '\n')
            m = snprintf(esc, sizeof esc, "\\n");
        else if (cp == '\r')
            m = snprintf(esc, sizeof esc, "\\r");
        else if (cp == '\t')
            m = snprintf(esc, sizeof esc, "\\t");
        else if (cp < 0x20 || cp == 0x7f)
            m = snprintf(esc, sizeof esc, "\\x%02x", cp);
        else if (cp >= 0x80 && !tpl_cp_isprintable(cp))
            m = cp <= 0xff     ? snprintf(esc, sizeof esc, "\\x%02x", cp)
                : cp <= 0xffff ? snprintf(esc, sizeof esc, "\\u%04x", cp)
                               : snprintf(esc, sizeof esc, "\\U%08x", cp);
        if (!m) {
            run += i - at;
            continue;
        }
        if (!tbuf_put(c, b, s + at - run, run) || !tbuf_put(c, b, esc, (size_t)m)) return false;
        run = 0;
    }
    return tbuf_put(c, b, s + n - run, run) && tbuf_putc(c, b, q);
}

static bool append_val(tctx *c, tbuf *b, tval v, bool repr, int depth);

static bool append_items(tctx *c, tbuf *b, const tval *v, size_t n, int depth) {
    for (size_t i = 0; i < n; i++)
        if ((i && !tbuf_put(c, b, ", ", 2)) || !append_val(c, b, v[i], true, depth + 1))
            return false;
    return true;
}

static bool append_dict(tctx *c, tbuf *b, const tdict *d, int depth) {
    if (!tbuf_putc(c, b, '{')) return false;
    for (uint32_t i = 0; i < d->n; i++) {
        if ((i && !tbuf_put(c, b, ", ", 2)) || !append_val(c, b, d->k[i], true, depth + 1) ||
            !tbuf_put(c, b, ": ", 2) || !append_val(c, b, d->v[i], true, depth + 1))
            return false;
    }
    return tbuf_putc(c, b, '}');
}

static const char *BUILTIN_NAMES[] = {"range",  "dict",   "namespace",       "cycler",
                                      "joiner", "lipsum", "raise_exception", "strftime_now"};

static bool append_val(tctx *c, tbuf *b, tval v, bool repr, int depth) {
    if (depth > TPL_MAX_DEPTH) {
        tpl_fail(c, "maximum recursion depth exceeded while getting the repr of an object");
        return false;
    }
    char tmp[64];
    switch (v.t) {
    case TV_UNDEF:
        return repr ? tbuf_puts(c, b, "Undefined") : true;
    case TV_NONE:
        return tbuf_puts(c, b, "None");
    case TV_BOOL:
        return tbuf_puts(c, b, v.u.b ? "True" : "False");
    case TV_INT:
        snprintf(tmp, sizeof tmp, "%" PRId64, v.u.i);
        return tbuf_puts(c, b, tmp);
    case TV_FLOAT:
        tpl_float_repr(v.u.f, tmp);
        return tbuf_puts(c, b, tmp);
    case TV_STR:
        if (!repr) return tbuf_put(c, b, v.u.s->p, v.u.s->len);
        if (v.markup)
            return tbuf_puts(c, b, "Markup(") && repr_string(c, b, v.u.s->p, v.u.s->len) &&
                   tbuf_putc(c, b, ')');
        return repr_string(c, b, v.u.s->p, v.u.s->len);
    case TV_LIST:
        return tbuf_putc(c, b, '[') && append_items(c, b, v.u.l->v, v.u.l->n, depth) &&
               tbuf_putc(c, b, ']');
    case TV_TUPLE:
        return tbuf_putc(c, b, '(') && append_items(c, b, v.u.l->v, v.u.l->n, depth) &&
               (v.u.l->n != 1 || tbuf_putc(c, b, ',')) && tbuf_putc(c, b, ')');
    case TV_DICT:
        return append_dict(c, b, v.u.d, depth);
    case TV_NS:
        return tbuf_puts(c, b, "<Namespace ") && append_dict(c, b, v.u.d, depth) &&
               tbuf_putc(c, b, '>');
    case TV_BUILTIN:
        if (v.u.i == BI_RANGE || v.u.i == BI_DICT)
            snprintf(tmp, sizeof tmp, "<class '%s'>", BUILTIN_NAMES[v.u.i]);
        else
            snprintf(tmp, sizeof tmp, "<function %s>", BUILTIN_NAMES[v.u.i]);
        return tbuf_puts(c, b, tmp);
    case TV_MACRO: {
        const tnode *d = ((tmacro *)v.u.o)->def;
        if (d->kind == S_MACRO)
            return tbuf_puts(c, b, "<Macro ") && repr_string(c, b, d->str->p, d->str->len) &&
                   tbuf_putc(c, b, '>');
        return tbuf_puts(c, b, "<Macro anonymous>");
    }
    case TV_LOOP: {
        tloop *l = (tloop *)v.u.o;
        snprintf(tmp, sizeof tmp, "<LoopContext %zu/%zu>", l->index0 + 1, l->items->n);
        return tbuf_puts(c, b, tmp);
    }
    case TV_ITER: {
        titer *it = (titer *)v.u.o;
        if (it->kind == IT_GENERATOR) { /* as Python prints it, with a made-up address */
            snprintf(tmp, sizeof tmp, "<generator object %s at 0x7f0000000000>",
                     tpl_generator_name(it->filter));
            return tbuf_puts(c, b, tmp);
        }
        if (!IT_IS_VIEW(it->kind)) {
            snprintf(tmp, sizeof tmp, "<%s object at 0x7f0000000000>", tpl_val_type_name(v));
            return tbuf_puts(c, b, tmp);
        }
        if (it->kind == IT_RANGE) {
            if (it->step == 1)
                snprintf(tmp, sizeof tmp, "range(%" PRId64 ", %" PRId64 ")", it->start, it->stop);
            else
                snprintf(tmp, sizeof tmp, "range(%" PRId64 ", %" PRId64 ", %" PRId64 ")", it->start,
                         it->stop, it->step);
            return tbuf_puts(c, b, tmp);
        }
        return tbuf_puts(c, b, tpl_val_type_name(v)) && tbuf_put(c, b, "([", 2) &&
               append_items(c, b, it->items->v, it->items->n, depth) && tbuf_put(c, b, "])", 2);
    }
    default:
        snprintf(tmp, sizeof tmp, "<%s object>", tpl_type_name(v.t));
        return tbuf_puts(c, b, tmp);
    }
}

bool tpl_append_str(tctx *c, tbuf *b, tval v) {
    return append_val(c, b, v, false, 0);
}
bool tpl_append_repr(tctx *c, tbuf *b, tval v) {
    return append_val(c, b, v, true, 0);
}

int tpl_to_str(tctx *c, tval v, tval *out) {
    if (v.t == TV_STR) {
        tpl_incref(v);
        *out = v;
        out->markup = v.markup; /* str(Markup) stays Markup through soft_str */
        return 0;
    }
    tbuf b = {0};
    if (!tpl_append_str(c, &b, v)) {
        tbuf_free(c, &b);
        return -1;
    }
    return tpl_str_from_buf(c, &b, out);
}

/* ---- ordering ---- */

static int lt_depth(tctx *c, tval a, tval b, int depth) {
    if (depth > TPL_MAX_DEPTH) return tpl_fail(c, "maximum recursion depth exceeded in comparison");
    if (tpl_work(c, 1) < 0) return -1;
    if (is_num(a) && is_num(b)) {
        if (a.t != TV_FLOAT && b.t != TV_FLOAT) return num_i(a) < num_i(b);
        return num_f(a) < num_f(b);
    }
    if (a.t == TV_STR && b.t == TV_STR) {
        size_t n = a.u.s->len < b.u.s->len ? a.u.s->len : b.u.s->len;
        if (tpl_work(c, n / 64) < 0) return -1;
        int r = memcmp(a.u.s->p, b.u.s->p, n);
        return r < 0 || (r == 0 && a.u.s->len < b.u.s->len);
    }
    if ((a.t == TV_LIST || a.t == TV_TUPLE) && a.t == b.t) {
        size_t n = a.u.l->n < b.u.l->n ? a.u.l->n : b.u.l->n;
        for (size_t i = 0; i < n; i++) {
            if (tpl_eq(c, a.u.l->v[i], b.u.l->v[i])) continue;
            return lt_depth(c, a.u.l->v[i], b.u.l->v[i], depth + 1);
        }
        return a.u.l->n < b.u.l->n;
    }
    if (a.t == TV_UNDEF || b.t == TV_UNDEF) return tpl_fail_undef(c, a.t == TV_UNDEF ? a : b);
    return tpl_fail(c, "'<' not supported between instances of '%s' and '%s'", tpl_type_name(a.t),
                    tpl_type_name(b.t));
}

int tpl_lt(tctx *c, tval a, tval b) {
    return lt_depth(c, a, b, 0);
}

/* ---- JSON out (Python's json.dumps) ---- */

static bool json_string(tctx *c, tbuf *b, const char *s, size_t n, bool ascii) {
    if (!tbuf_putc(c, b, '"')) return false;
    size_t i = 0, run = 0;
    while (i < n) {
        size_t at = i;
        unsigned char ch = (unsigned char)s[i];
        uint32_t cp;
        if (ch < 0x80) {
            i++;
            cp = ch;
        } else {
            cp = tpl_utf8_next(s, n, &i);
        }
        char esc[16];
        int m = 0;
        switch (cp) {
        case '"':
            m = snprintf(esc, sizeof esc, "\\\"");
            break;
        case '\\':
            m = snprintf(esc, sizeof esc, "\\\\");
            break;
        case '\n':
            m = snprintf(esc, sizeof esc, "\\n");
            break;
        case '\r':
            m = snprintf(esc, sizeof esc, "\\r");
            break;
        case '\t':
            m = snprintf(esc, sizeof esc, "\\t");
            break;
        case '\b':
            m = snprintf(esc, sizeof esc, "\\b");
            break;
        case '\f':
            m = snprintf(esc, sizeof esc, "\\f");
            break;
        default:
            if (cp < 0x20 || (ascii && cp == 0x7f))
                m = snprintf(esc, sizeof esc, "\\u%04x", cp);
            else if (ascii && cp >= 0x80) {
                if (cp >= 0x10000) {
                    uint32_t v = cp - 0x10000;
                    m = snprintf(esc, sizeof esc, "\\u%04x\\u%04x", 0xd800 + (v >> 10),
                                 0xdc00 + (v & 0x3ff));
                } else {
                    m = snprintf(esc, sizeof esc, "\\u%04x", cp);
                }
            }
        }
        if (!m) {
            run += i - at;
            continue;
        }
        if (!tbuf_put(c, b, s + at - run, run) || !tbuf_put(c, b, esc, (size_t)m)) return false;
        run = 0;
    }
    return tbuf_put(c, b, s + n - run, run) && tbuf_putc(c, b, '"');
}

static bool json_float(tctx *c, tbuf *b, double f) {
    if (isnan(f)) return tbuf_puts(c, b, "NaN");
    if (isinf(f)) return tbuf_puts(c, b, f < 0 ? "-Infinity" : "Infinity");
    char tmp[32];
    tpl_float_repr(f, tmp);
    return tbuf_puts(c, b, tmp);
}

static bool json_newline(tctx *c, tbuf *b, const tjson_opts *o, int level) {
    if (!tbuf_putc(c, b, '\n')) return false;
    for (int i = 0; i < level; i++)
        if (!tbuf_put(c, b, o->indent, o->indent_len)) return false;
    return true;
}

/* Sorted order of a dict's entries (stable merge sort on Python's <). */
static int sort_keys(tctx *c, const tdict *d, uint32_t *order) {
    uint32_t *tmp = malloc(((size_t)d->n + 1) * sizeof *tmp);
    if (!tmp) return tpl_fail(c, "out of memory");
    for (uint32_t i = 0; i < d->n; i++) order[i] = i;
    for (uint32_t w = 1; w < d->n; w *= 2) {
        for (uint32_t lo = 0; lo < d->n; lo += 2 * w) {
            uint32_t mid = lo + w < d->n ? lo + w : d->n,
                     hi = lo + 2 * w < d->n ? lo + 2 * w : d->n;
            uint32_t i = lo, j = mid, k = lo;
            while (i < mid && j < hi) {
                int lt = tpl_lt(c, d->k[order[j]], d->k[order[i]]);
                if (lt < 0) {
                    free(tmp);
                    return -1;
                }
                tmp[k++] = lt ? order[j++] : order[i++];
            }
            while (i < mid) tmp[k++] = order[i++];
            while (j < hi) tmp[k++] = order[j++];
            memcpy(order + lo, tmp + lo, (hi - lo) * sizeof *order);
        }
    }
    free(tmp);
    return 0;
}

int tpl_to_json(tctx *c, tbuf *b, tval v, const tjson_opts *o, int depth) {
    if (depth > TPL_MAX_DEPTH)
        return tpl_fail(c, "maximum recursion depth exceeded while encoding JSON");
    char tmp[32];
    switch (v.t) {
    case TV_NONE:
        return tbuf_puts(c, b, "null") ? 0 : -1;
    case TV_BOOL:
        return tbuf_puts(c, b, v.u.b ? "true" : "false") ? 0 : -1;
    case TV_INT:
        snprintf(tmp, sizeof tmp, "%" PRId64, v.u.i);
        return tbuf_puts(c, b, tmp) ? 0 : -1;
    case TV_FLOAT:
        return json_float(c, b, v.u.f) ? 0 : -1;
    case TV_STR:
        return json_string(c, b, v.u.s->p, v.u.s->len, o->ensure_ascii) ? 0 : -1;
    case TV_LIST:
    case TV_TUPLE: {
        const tlist *l = v.u.l;
        if (!l->n) return tbuf_puts(c, b, "[]") ? 0 : -1;
        if (!tbuf_putc(c, b, '[')) return -1;
        for (size_t i = 0; i < l->n; i++) {
            if (i && !tbuf_put(c, b, o->item_sep, o->item_sep_len)) return -1;
            if (o->indent && !json_newline(c, b, o, depth + 1)) return -1;
            if (tpl_to_json(c, b, l->v[i], o, depth + 1) < 0) return -1;
        }
        if (o->indent && !json_newline(c, b, o, depth)) return -1;
        return tbuf_putc(c, b, ']') ? 0 : -1;
    }
    case TV_DICT: {
        const tdict *d = v.u.d;
        if (!d->n) return tbuf_puts(c, b, "{}") ? 0 : -1;
        uint32_t *order = NULL;
        if (o->sort_keys) {
            order = malloc(d->n * sizeof *order);
            if (!order) return tpl_fail(c, "out of memory");
            if (sort_keys(c, d, order) < 0) {
                free(order);
                return -1;
            }
        }
        int rc = tbuf_putc(c, b, '{') ? 0 : -1;
        for (uint32_t n = 0; n < d->n && rc == 0; n++) {
            uint32_t i = order ? order[n] : n;
            tval k = d->k[i];
            if ((n && !tbuf_put(c, b, o->item_sep, o->item_sep_len)) ||
                (o->indent && !json_newline(c, b, o, depth + 1))) {
                rc = -1;
                break;
            }
            bool ok;
            switch (k.t) {
            case TV_STR:
                ok = json_string(c, b, k.u.s->p, k.u.s->len, o->ensure_ascii);
                break;
            case TV_BOOL:
                ok = tbuf_puts(c, b, k.u.b ? "\"true\"" : "\"false\"");
                break;
            case TV_NONE:
                ok = tbuf_puts(c, b, "\"null\"");
                break;
            case TV_INT:
                snprintf(tmp, sizeof tmp, "\"%" PRId64 "\"", k.u.i);
                ok = tbuf_puts(c, b, tmp);
                break;
            case TV_FLOAT:
                ok = tbuf_putc(c, b, '"') && json_float(c, b, k.u.f) && tbuf_putc(c, b, '"');
                break;
            default:
                free(order);
                return tpl_fail(c, "keys must be str, int, float, bool or None, not %s",
                                tpl_type_name(k.t));
            }
            if (!ok || !tbuf_put(c, b, o->key_sep, o->key_sep_len) ||
                tpl_to_json(c, b, d->v[i], o, depth + 1) < 0)
                rc = -1;
        }
        free(order);
        if (rc < 0) return -1;
        if (o->indent && !json_newline(c, b, o, depth)) return -1;
        return tbuf_putc(c, b, '}') ? 0 : -1;
    }
    default:
        return tpl_fail(c, "Object of type %s is not JSON serializable", tpl_val_type_name(v));
    }
}

/* ---- JSON in ---- */

static int from_json_obj(tctx *c, json_object *j, tval *out, int depth) {
    if (depth > TPL_MAX_DEPTH) return tpl_fail(c, "JSON nested too deeply");
    switch (json_object_get_type(j)) {
    case json_type_null:
        *out = tv_none();
        return 0;
    case json_type_boolean:
        *out = tv_bool(json_object_get_boolean(j));
        return 0;
    case json_type_int:
        *out = tv_int(json_object_get_int64(j));
        return 0;
    case json_type_double:
        *out = tv_float(json_object_get_double(j));
        return 0;
    case json_type_string:
        return tpl_str_val(c, json_object_get_string(j), (size_t)json_object_get_string_len(j),
                           out);
    case json_type_array: {
        size_t n = json_object_array_length(j);
        tlist *l = tpl_list(c, TV_LIST, n);
        if (!l) return -1;
        *out = tv_obj(TV_LIST, l);
        for (size_t i = 0; i < n; i++) {
            tval v;
            if (from_json_obj(c, json_object_array_get_idx(j, i), &v, depth + 1) < 0 ||
                !tpl_list_push(c, l, v))
                return -1;
        }
        return 0;
    }
    case json_type_object: {
        tdict *d = tpl_dict(c, TV_DICT);
        if (!d) return -1;
        *out = tv_obj(TV_DICT, d);
        json_object_object_foreach(j, key, val) {
            tval k, v;
            if (tpl_str_val(c, key, strlen(key), &k) < 0) return -1;
            if (from_json_obj(c, val, &v, depth + 1) < 0) {
                tpl_decref(c, k);
                return -1;
            }
            if (tpl_dict_set(c, d, k, v) < 0) return -1;
        }
        return 0;
    }
    }
    return tpl_fail(c, "unexpected JSON value");
}

int tpl_from_json(tctx *c, const char *text, size_t len, tval *out, const char *what) {
    json_tokener *tok = json_tokener_new_ex(TPL_MAX_DEPTH);
    if (!tok) return tpl_fail(c, "out of memory");
    if (len > INT32_MAX) {
        json_tokener_free(tok);
        return tpl_fail(c, "%s is too large", what);
    }
    json_object *j = json_tokener_parse_ex(tok, text, (int)len);
    enum json_tokener_error err = json_tokener_get_error(tok);
    size_t used = json_tokener_get_parse_end(tok);
    json_tokener_free(tok);
    if (!j || err != json_tokener_success) {
        json_object_put(j);
        return tpl_fail(c, "%s is not valid JSON: %s", what,
                        err == json_tokener_continue ? "unexpected end"
                                                     : json_tokener_error_desc(err));
    }
    for (; used < len; used++) {
        char ch = text[used];
        if (ch != ' ' && ch != '\n' && ch != '\r' && ch != '\t') {
            json_object_put(j);
            return tpl_fail(c, "%s is not valid JSON: extra text after the value", what);
        }
    }
    int rc = from_json_obj(c, j, out, 0);
    json_object_put(j);
    return rc;
}
