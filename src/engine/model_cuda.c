/* model_cuda.c - the forward pass on the CUDA backend: weights uploaded
 * once at load, the KV cache and all scratch on the GPU, one stream of
 * kernels per batch, and a CUDA graph per decode batch size.
 *
 * Weights. Each matrix is copied as it is in the file (GGUF block layout;
 * the kernels decode every type). Where q/k/v (and gate/up) share a type,
 * their rows are uploaded back to back as one matrix, so one kernel serves
 * the three (two) and its output is [q | k | v] per token, the layout the
 * attention kernels read. Norm and bias vectors go up as the f32 copies
 * the CPU path uses.
 *
 * KV cache. f16, [layer][seq][kv_head][n_ctx][head_dim]: every sequence
 * holds its whole context (a sequence's rows are contiguous, which is what
 * the attention kernel streams).
 *
 * Decode. A batch whose every token wants logits (decode steps) is
 * recorded once per batch size as a CUDA graph and replayed: the batch's
 * tokens, positions and sequence ids go up through one copy that is part
 * of the graph, and every kernel reads them on the device. Other batches
 * (prefill) run the same launches directly (HL_CUDA_GRAPHS=0 runs every
 * batch that way, so a profiler sees each kernel). A graph is recorded the
 * first time its batch size comes, the one allocation after hl_ctx_new.
 * Logits stay on the GPU: the argmax of each row comes back with every
 * batch; a row of logits is copied only when hl_ctx_logits asks for it.
 *
 * Built without CUDA (HL_CUDA undefined), every entry point here fails
 * with a sentence that says so.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "model_internal.h"

#ifndef HL_CUDA

int hl_gpu_count(void) { return 0; }
double hl_gpu_measure_bandwidth(int i) { return (void)i, 0; }
int hl_gpu_info(int i, hl_gpu_desc *out) {
    (void)i;
    memset(out, 0, sizeof *out);
    return -1;
}
int hl_gpu_model_upload(hl_model *m, int device, hl_load_progress cb, void *arg, hl_err *e) {
    (void)m, (void)device, (void)cb, (void)arg;
    return hl_errf(e, "model: this heylookllm was built without CUDA (build it with `make cuda`)");
}
void hl_gpu_model_free(struct hl_gpu_model *g) { (void)g; }
int hl_gpu_ctx_new(hl_ctx *c, hl_err *e) {
    (void)c;
    return hl_errf(e, "context: built without CUDA");
}
void hl_gpu_ctx_free(struct hl_gpu_ctx *g) { (void)g; }
int hl_gpu_decode(hl_ctx *c, const hl_batch *b, hl_err *e) {
    (void)c, (void)b;
    return hl_errf(e, "decode: built without CUDA");
}
int hl_gpu_seq_len(const hl_ctx *c, int seq) { return (void)c, (void)seq, 0; }
void hl_gpu_seq_truncate(hl_ctx *c, int seq, int n_pos) { (void)c, (void)seq, (void)n_pos; }
const float *hl_gpu_logits(const hl_ctx *c, int i) { return (void)c, (void)i, NULL; }
int hl_gpu_argmax(const hl_ctx *c, int i) { return (void)c, (void)i, -1; }
uint64_t hl_gpu_ctx_bytes(const hl_ctx *c) { return (void)c, 0; }
bool hl_gpu_model_fits(const hl_model *m, char *why, size_t n) {
    (void)m;
    snprintf(why, n, "this heylookllm was built without CUDA (build it with `make cuda`)");
    return false;
}

#else

#include "../backend/cuda/cuda.h"

int hl_gpu_count(void) { return hl_cu_device_count(); }
double hl_gpu_measure_bandwidth(int i) { return hl_cu_copy_bandwidth(i); }

int hl_gpu_info(int i, hl_gpu_desc *out) {
    memset(out, 0, sizeof *out);
    hl_cu_info in;
    hl_err e;
    if (hl_cu_device_info(i, &in, &e) < 0) return -1;
    snprintf(out->name, sizeof out->name, "%s", in.name);
    out->cc_major = in.cc_major;
    out->cc_minor = in.cc_minor;
    out->n_sm = in.n_sm;
    out->mem_total = in.mem_total;
    out->mem_free = in.mem_free;
    out->mem_used_by_us = hl_cu_allocated();
    out->bandwidth = in.bandwidth;
    return 0;
}

typedef struct gpu_layer {
    const float *attn_norm, *ffn_norm, *post_attn_norm, *post_ffn_norm;
    const float *bq, *bk, *bv, *q_norm, *k_norm;
    hl_cu_mat qkv[3]; /* one fused matrix (n_qkv = 1) or q, k, v */
    int n_qkv;
    hl_cu_mat wo;
    hl_cu_mat gu[2]; /* gate|up, rows interleaved (n_gu = 1), or gate, up */
    int n_gu;
    hl_cu_mat down;
} gpu_layer;

struct hl_gpu_model {
    int device;
    hl_cu *cu; /* for the re-layout kernels at upload */
    gpu_layer *layers;
    hl_cu_mat tok_embd, output;
    const float *output_norm, *rope_freqs;
    void **allocs;
    int n_allocs, cap_allocs;
    uint64_t bytes;
    size_t max_mat; /* elements of the largest matrix (cuBLAS scratch) */
};

#define MAX_GRAPH_TOK 64

struct hl_gpu_ctx {
    hl_cu *cu;
    void *kc, *vc;          /* [layer][seq][kv_head][n_ctx][hd] f16 */
    size_t layer_stride;    /* elements per layer of one of them */
    float *x, *xb, *qkv, *att, *gu, *hb, *out_x, *logits, *part;
    int8_t *q8;             /* int8 form of the next matmul's input ([n_batch][max_in]) */
    float *q8ds;            /* its (d, d * sum) pairs per block of 32 */
    int *att_count;         /* attention's split counters, [n_batch][n_head] */
    int32_t *meta_d;        /* [4][n_batch]: tokens, positions, sequences, output rows */
    int32_t *meta_h;        /* pinned copy */
    int32_t *argmax_d, *argmax_h;
    float *logits_h;        /* pinned, [n_logits][n_vocab], filled row by row on demand */
    bool *row_copied;
    int *seq_len;
    hl_cu_graph *graphs[MAX_GRAPH_TOK + 1];
    uint64_t bytes;
};

static int track(struct hl_gpu_model *g, void *p, hl_err *e) {
    if (g->n_allocs == g->cap_allocs) {
        int cap = g->cap_allocs ? 2 * g->cap_allocs : 64;
        void **a = realloc(g->allocs, sizeof *a * (size_t)cap);
        if (!a) return hl_errf(e, "model: out of memory");
        g->allocs = a;
        g->cap_allocs = cap;
    }
    g->allocs[g->n_allocs++] = p;
    return 0;
}

static void *upload(struct hl_gpu_model *g, const void *host, size_t bytes, hl_err *e) {
    void *d = hl_cu_alloc(NULL, bytes, e);
    if (!d) return NULL;
    if (track(g, d, e) < 0) {
        hl_cu_dealloc(d);
        return NULL;
    }
    if (hl_cu_upload(NULL, d, host, bytes, e) < 0) return NULL;
    g->bytes += bytes;
    return d;
}

static const float *upload_vec(struct hl_gpu_model *g, const float *v, int n, bool *ok, hl_err *e) {
    if (!v || !*ok) return NULL;
    const float *d = upload(g, v, sizeof(float) * (size_t)n, e);
    if (!d) *ok = false;
    return d;
}

static void note_mat(struct hl_gpu_model *g, const hl_cu_mat *w) {
    size_t n = (size_t)w->n_in * (size_t)w->n_out;
    if (n > g->max_mat) g->max_mat = n;
}

/* Replaces a freshly uploaded matrix by its faster device layout when its
 * type has one (the raw copy is freed). */
static int relayout(struct hl_gpu_model *g, hl_cu_mat *m, hl_err *e) {
    hl_cu_mat r;
    int rc = hl_cu_relayout(g->cu, m, &r, e);
    if (rc <= 0) return rc;
    for (int i = g->n_allocs - 1; i >= 0; i--)
        if (g->allocs[i] == m->data) {
            hl_cu_dealloc(g->allocs[i]);
            g->allocs[i] = (void *)r.data;
            break;
        }
    g->bytes += r.row_bytes * (size_t)r.n_out - m->row_bytes * (size_t)m->n_out;
    *m = r;
    return 0;
}

/* Uploads n matrices of equal n_in; as one stacked matrix when they share a
 * type, else one by one. Returns how many device matrices were made.
 * interleave (n matrices of equal n_out): the stacked matrix takes their
 * rows in turn (row n * i + k is row i of matrix k). */
static int upload_mats(struct hl_gpu_model *g, const hl_mat *const *src, int n, hl_cu_mat *dst,
                       bool interleave, hl_err *e) {
    bool same = true;
    for (int i = 1; i < n; i++) same &= src[i]->type == src[0]->type && (!interleave || src[i]->n_out == src[0]->n_out);
    if (same && n > 1) {
        size_t total = 0;
        int rows = 0;
        for (int i = 0; i < n; i++) total += src[i]->row_bytes * (size_t)src[i]->n_out, rows += src[i]->n_out;
        uint8_t *d = hl_cu_alloc(NULL, total, e);
        if (!d || track(g, d, e) < 0) return -1;
        size_t off = 0, rb = src[0]->row_bytes;
        for (int i = 0; i < n; i++) {
            size_t b = src[i]->row_bytes * (size_t)src[i]->n_out;
            if (interleave ? hl_cu_upload_rows(NULL, d + (size_t)i * rb, n * rb, src[i]->data, rb, rb,
                                               (size_t)src[i]->n_out, e) < 0
                           : hl_cu_upload(NULL, d + off, src[i]->data, b, e) < 0)
                return -1;
            off += b;
        }
        g->bytes += total;
        dst[0] = (hl_cu_mat){d, src[0]->type, src[0]->n_in, rows, src[0]->row_bytes};
        note_mat(g, &dst[0]);
        return relayout(g, &dst[0], e) < 0 ? -1 : 1;
    }
    for (int i = 0; i < n; i++) {
        size_t b = src[i]->row_bytes * (size_t)src[i]->n_out;
        const void *d = upload(g, src[i]->data, b, e);
        if (!d) return -1;
        dst[i] = (hl_cu_mat){d, src[i]->type, src[i]->n_in, src[i]->n_out, src[i]->row_bytes};
        note_mat(g, &dst[i]);
        if (relayout(g, &dst[i], e) < 0) return -1;
    }
    return n;
}

static bool mat_ok(const hl_mat *w, const char *name, char *why, size_t n) {
    if (hl_cu_supports(w->type, w->n_in)) return true;
    snprintf(why, n, "matrix %s (%s, rows of %d) has no CUDA kernel", name, hl_dtype_name(w->type),
             w->n_in);
    return false;
}

bool hl_gpu_model_fits(const hl_model *m, char *why, size_t n) {
    if (hl_cu_device_count() <= 0) {
        snprintf(why, n, "no CUDA device (%s)", hl_cu_unavailable_reason());
        return false;
    }
    const hl_hparams *hp = &m->hp;
    int hd = hp->head_dim;
    if (hd != 32 && hd != 64 && hd != 96 && hd != 128 && hd != 256) {
        snprintf(why, n, "head dimension %d (the CUDA kernels take 32, 64, 96, 128 or 256)", hd);
        return false;
    }
    if (!mat_ok(&m->tok_embd, "token_embd", why, n) || !mat_ok(&m->output, "output", why, n))
        return false;
    for (int il = 0; il < hp->n_layer; il++) {
        const hl_layer *l = &m->layers[il];
        const hl_mat *ms[] = {&l->wq, &l->wk, &l->wv, &l->wo, &l->w_gate, &l->w_up, &l->w_down};
        for (int i = 0; i < 7; i++)
            if (!mat_ok(ms[i], "of a layer", why, n)) return false;
    }
    return true;
}

void hl_gpu_model_free(struct hl_gpu_model *g) {
    if (!g) return;
    for (int i = 0; i < g->n_allocs; i++) hl_cu_dealloc(g->allocs[i]);
    free(g->allocs);
    free(g->layers);
    hl_cu_free(g->cu);
    free(g);
}

int hl_gpu_model_upload(hl_model *m, int device, hl_load_progress cb, void *arg, hl_err *e) {
    const hl_hparams *hp = &m->hp;
    struct hl_gpu_model *g = calloc(1, sizeof *g);
    if (!g) return hl_errf(e, "model: out of memory");
    g->device = device;
    if (hl_cu_new(&g->cu, device, e) < 0) { /* selects the device, checks it works */
        free(g);
        return -1;
    }
    g->layers = calloc((size_t)hp->n_layer, sizeof *g->layers);
    if (!g->layers) {
        hl_cu_free(g->cu);
        free(g);
        return hl_errf(e, "model: out of memory");
    }
    m->gpu = g;
    bool ok = true;
    const hl_mat *te = &m->tok_embd;
    if (upload_mats(g, &te, 1, &g->tok_embd, false, e) < 0) return -1;
    if (m->output.data == m->tok_embd.data) {
        g->output = g->tok_embd;
    } else {
        const hl_mat *o = &m->output;
        if (upload_mats(g, &o, 1, &g->output, false, e) < 0) return -1;
    }
    g->output_norm = upload_vec(g, m->output_norm, hp->n_embd, &ok, e);
    g->rope_freqs = upload_vec(g, m->rope_freqs, hp->n_rot / 2, &ok, e);
    int E = hp->n_embd, qd = hp->n_head * hp->head_dim, kvd = hp->n_head_kv * hp->head_dim;
    for (int il = 0; il < hp->n_layer && ok; il++) {
        const hl_layer *l = &m->layers[il];
        gpu_layer *d = &g->layers[il];
        d->attn_norm = upload_vec(g, l->attn_norm, E, &ok, e);
        d->ffn_norm = upload_vec(g, l->ffn_norm, E, &ok, e);
        d->post_attn_norm = upload_vec(g, l->post_attn_norm, E, &ok, e);
        d->post_ffn_norm = upload_vec(g, l->post_ffn_norm, E, &ok, e);
        d->bq = upload_vec(g, l->bq, qd, &ok, e);
        d->bk = upload_vec(g, l->bk, kvd, &ok, e);
        d->bv = upload_vec(g, l->bv, kvd, &ok, e);
        d->q_norm = upload_vec(g, l->q_norm, hp->head_dim, &ok, e);
        d->k_norm = upload_vec(g, l->k_norm, hp->head_dim, &ok, e);
        if (!ok) return -1;
        const hl_mat *qkv[3] = {&l->wq, &l->wk, &l->wv}, *gu[2] = {&l->w_gate, &l->w_up};
        const hl_mat *wo = &l->wo, *down = &l->w_down;
        if ((d->n_qkv = upload_mats(g, qkv, 3, d->qkv, false, e)) < 0 ||
            (d->n_gu = upload_mats(g, gu, 2, d->gu, true, e)) < 0 || upload_mats(g, &wo, 1, &d->wo, false, e) < 0 ||
            upload_mats(g, &down, 1, &d->down, false, e) < 0)
            return -1;
        if (cb) cb(arg, (double)(il + 1) / (hp->n_layer + 1));
    }
    if (!ok) return -1;
    if (cb) cb(arg, 1.0);
    return 0;
}

/* ------------------------------------------------------------- context -- */

void hl_gpu_ctx_free(struct hl_gpu_ctx *g) {
    if (!g) return;
    for (int i = 0; i <= MAX_GRAPH_TOK; i++) hl_cu_graph_free(g->graphs[i]);
    void *dev[] = {g->kc, g->vc, g->x, g->xb, g->qkv, g->att, g->gu, g->hb, g->out_x, g->logits,
                   g->part, g->meta_d, g->argmax_d, g->q8, g->q8ds, g->att_count};
    for (size_t i = 0; i < sizeof dev / sizeof *dev; i++) hl_cu_dealloc(dev[i]);
    hl_cu_host_free(g->meta_h);
    hl_cu_host_free(g->argmax_h);
    hl_cu_host_free(g->logits_h);
    free(g->row_copied);
    free(g->seq_len);
    hl_cu_free(g->cu);
    free(g);
}

uint64_t hl_gpu_ctx_bytes(const hl_ctx *c) { return c->gpu->bytes; }

static void *dalloc(struct hl_gpu_ctx *g, size_t bytes, bool *ok, hl_err *e) {
    if (!*ok) return NULL;
    void *p = hl_cu_alloc(g->cu, bytes, e);
    if (!p) *ok = false;
    else g->bytes += bytes;
    return p;
}

int hl_gpu_ctx_new(hl_ctx *c, hl_err *e) {
    const hl_model *m = c->m;
    const hl_hparams *hp = &m->hp;
    struct hl_gpu_ctx *g = calloc(1, sizeof *g);
    if (!g) return hl_errf(e, "context: out of memory");
    c->gpu = g;
    if (hl_cu_new(&g->cu, m->gpu->device, e) < 0) goto fail;
    size_t B = (size_t)c->p.n_batch, L = (size_t)c->p.n_logits, E = (size_t)hp->n_embd;
    size_t F = (size_t)hp->n_ff, V = (size_t)hp->n_vocab, hd = (size_t)hp->head_dim;
    size_t qd = (size_t)hp->n_head * hd, kvd = (size_t)hp->n_head_kv * hd;
    g->layer_stride = (size_t)c->p.n_seq * (size_t)hp->n_head_kv * (size_t)c->p.n_ctx * hd;
    size_t kv_bytes = g->layer_stride * (size_t)hp->n_layer * 2;
    bool ok = true;
    g->kc = dalloc(g, kv_bytes, &ok, e);
    g->vc = dalloc(g, kv_bytes, &ok, e);
    g->x = dalloc(g, 4 * B * E, &ok, e);
    g->xb = dalloc(g, 4 * B * E, &ok, e);
    g->qkv = dalloc(g, 4 * B * (qd + 2 * kvd), &ok, e);
    g->att = dalloc(g, 4 * B * qd, &ok, e);
    g->gu = dalloc(g, 4 * B * 2 * F, &ok, e);
    g->hb = dalloc(g, 4 * B * F, &ok, e);
    g->out_x = dalloc(g, 4 * L * E, &ok, e);
    g->logits = dalloc(g, 4 * L * V, &ok, e);
    g->part = dalloc(g, 4 * hl_cu_attn_scratch((int)B, hp->n_head, hp->head_dim), &ok, e);
    g->meta_d = dalloc(g, 4 * 4 * B, &ok, e);
    g->att_count = dalloc(g, sizeof(int) * B * (size_t)hp->n_head, &ok, e);
    g->argmax_d = dalloc(g, 4 * (3 * L + 2), &ok, e);
    int max_in = hp->n_embd > hp->n_ff ? hp->n_embd : hp->n_ff;
    if ((int)qd > max_in) max_in = (int)qd;
    g->q8 = dalloc(g, B * (size_t)max_in, &ok, e);
    g->q8ds = dalloc(g, B * (size_t)max_in / 32 * 2 * sizeof(float), &ok, e);
    if (!ok) goto fail;
    if (hl_cu_reserve(g->cu, m->gpu->max_mat, c->p.n_batch, max_in, e) < 0) goto fail;
    hl_cu_memset(g->cu, g->att_count, 0, sizeof(int) * B * (size_t)hp->n_head);
    hl_cu_memset(g->cu, g->argmax_d, 0, 4 * (3 * L + 2));
    if (hl_cu_sync(g->cu, e) < 0) goto fail;
    g->bytes += 2 * m->gpu->max_mat + 2 * B * (size_t)max_in;
    if (!(g->meta_h = hl_cu_host_alloc(4 * 4 * B, e)) || !(g->argmax_h = hl_cu_host_alloc(4 * L, e)) ||
        !(g->logits_h = hl_cu_host_alloc(4 * L * V, e)))
        goto fail;
    g->row_copied = calloc(L, sizeof(bool));
    g->seq_len = calloc((size_t)c->p.n_seq, sizeof(int));
    c->seq_next = calloc((size_t)c->p.n_seq, sizeof(int32_t));
    c->pf_pos = calloc(B, sizeof(int32_t));
    c->pf_seq = calloc(B, sizeof(int32_t));
    c->pf_want = calloc(B, sizeof(bool));
    if (!g->row_copied || !g->seq_len || !c->seq_next || !c->pf_pos || !c->pf_seq || !c->pf_want) {
        hl_errf(e, "context: out of memory");
        goto fail;
    }
    return 0;
fail:
    hl_gpu_ctx_free(g);
    c->gpu = NULL;
    free(c->seq_next), free(c->pf_pos), free(c->pf_seq), free(c->pf_want);
    return -1;
}

int hl_gpu_seq_len(const hl_ctx *c, int seq) {
    return seq >= 0 && seq < c->p.n_seq ? c->gpu->seq_len[seq] : 0;
}

void hl_gpu_seq_truncate(hl_ctx *c, int seq, int n_pos) {
    if (seq < 0 || seq >= c->p.n_seq || n_pos < 0) return;
    if (n_pos < c->gpu->seq_len[seq]) c->gpu->seq_len[seq] = n_pos;
}

const float *hl_gpu_logits(const hl_ctx *c, int i) {
    struct hl_gpu_ctx *g = c->gpu;
    size_t V = (size_t)c->m->hp.n_vocab;
    if (!g->row_copied[i]) {
        hl_err e;
        hl_cu_bind(g->cu);
        hl_cu_copy_d2h(g->cu, g->logits_h + (size_t)i * V, g->logits + (size_t)i * V, 4 * V);
        if (hl_cu_sync(g->cu, &e) < 0) return NULL;
        g->row_copied[i] = true;
    }
    return g->logits_h + (size_t)i * V;
}

int hl_gpu_argmax(const hl_ctx *c, int i) { return c->gpu->argmax_h[i]; }

/* Enqueues one whole forward pass of n tokens (n_out of them want logits)
 * reading the batch from meta_d; max_len bounds positions + 1. */
static void enqueue(hl_ctx *c, int n, int n_out, int max_len) {
    const hl_model *m = c->m;
    const hl_hparams *hp = &m->hp;
    const struct hl_gpu_model *w = m->gpu;
    struct hl_gpu_ctx *g = c->gpu;
    hl_cu *cu = g->cu;
    int B = c->p.n_batch, E = hp->n_embd, F = hp->n_ff, hd = hp->head_dim;
    int qd = hp->n_head * hd, kvd = hp->n_head_kv * hd, ldqkv = qd + 2 * kvd;
    const int32_t *tok = g->meta_d, *pos = g->meta_d + B, *seq = g->meta_d + 2 * B,
                  *rows = g->meta_d + 3 * B;
    hl_cu_copy_h2d(cu, g->meta_d, g->meta_h, sizeof(int32_t) * 4 * (size_t)B);
    hl_cu_get_rows(cu, &w->tok_embd, tok, n, g->x, E, hp->embd_scale);
    /* int8 forms of matmul inputs are made by their producers for small
     * batches (the int8 kernels); larger ones go to cuBLAS in f16. Small
     * batches also prepare q/k/v inside the attention launch
     * (HL_CUDA_FUSE=0, for profiling, gives that its own launch again).
     * The last layer's residual step goes on to the output norm when every
     * token wants logits. */
    const char *fz = getenv("HL_CUDA_FUSE");
    const bool fuse = !(fz && !strcmp(fz, "0"));
    const bool small = n <= 8;
    int8_t *q8 = small ? g->q8 : NULL;
    float *q8ds = small ? g->q8ds : NULL;
    const bool out_fused = n_out == n;
    hl_cu_resid_norm(cu, g->x, NULL, NULL, w->layers[0].attn_norm, g->xb, n, E, hp->rms_eps, NULL, q8,
                     q8ds);
    for (int il = 0; il < hp->n_layer; il++) {
        const gpu_layer *l = &w->layers[il];
        int off = 0;
        for (int i = 0; i < l->n_qkv; i++) {
            hl_cu_matmul_q8(cu, &l->qkv[i], g->xb, E, q8, q8ds, n, g->qkv + off, ldqkv);
            off += l->qkv[i].n_out;
        }
        bool swa = hp->swa[il] && hp->n_swa > 0;
        hl_cu_attn_shape s = {
            .n_head = hp->n_head, .n_head_kv = hp->n_head_kv, .head_dim = hd, .n_rot = hp->n_rot,
            .n_ctx = c->p.n_ctx, .neox = hp->rope_neox,
            .rope_base = swa ? hp->rope_base_swa : hp->rope_base,
            .rope_scale = swa ? 1.0f : hp->rope_scale, .eps = hp->rms_eps, .scale = hp->attn_scale,
            .freq_factors = w->rope_freqs, .window = swa ? hp->n_swa : 0};
        uint16_t *kc = (uint16_t *)g->kc + (size_t)il * g->layer_stride;
        uint16_t *vc = (uint16_t *)g->vc + (size_t)il * g->layer_stride;
        if (small && fuse) {
            hl_cu_attention_fused(cu, g->qkv, ldqkv, n, &s, l->bq, l->bk, l->bv, l->q_norm, l->k_norm, pos,
                                  seq, kc, vc, g->att, max_len, g->part, g->att_count, q8, q8ds);
        } else {
            hl_cu_qkv_post(cu, g->qkv, ldqkv, n, &s, l->bq, l->bk, l->bv, l->q_norm, l->k_norm, pos, seq,
                           kc, vc);
            hl_cu_attention(cu, g->qkv, ldqkv, n, &s, pos, seq, kc, vc, g->att, max_len, g->part,
                            g->att_count, q8, q8ds);
        }
        hl_cu_matmul_q8(cu, &l->wo, g->att, qd, q8, q8ds, n, g->xb, E);
        hl_cu_resid_norm(cu, g->x, g->xb, l->post_attn_norm, l->ffn_norm, g->xb, n, E, hp->rms_eps, NULL,
                         q8, q8ds);
        const bool gelu = hp->arch == HL_ARCH_GEMMA3;
        if (l->n_gu == 1) { /* gate and up rows interleaved */
            hl_cu_matmul_act(cu, &l->gu[0], g->xb, E, q8, q8ds, n, gelu, g->gu, g->hb, q8, q8ds);
        } else {
            hl_cu_matmul_q8(cu, &l->gu[0], g->xb, E, q8, q8ds, n, g->gu, 2 * F);
            hl_cu_matmul_q8(cu, &l->gu[1], g->xb, E, q8, q8ds, n, g->gu + F, 2 * F);
            hl_cu_act_mul(cu, g->gu, n, F, gelu, false, g->hb, q8, q8ds);
        }
        hl_cu_matmul_q8(cu, &l->down, g->hb, F, q8, q8ds, n, g->xb, E);
        const bool last = il + 1 == hp->n_layer;
        const float *next = !last ? w->layers[il + 1].attn_norm : out_fused ? w->output_norm : NULL;
        hl_cu_resid_norm(cu, g->x, g->xb, l->post_ffn_norm, next, last && out_fused ? g->out_x : g->xb, n, E,
                         hp->rms_eps, NULL, q8, q8ds);
    }
    if (n_out > 0) {
        int8_t *oq = n_out <= 8 ? g->q8 : NULL;
        float *oqds = n_out <= 8 ? g->q8ds : NULL;
        if (!out_fused)
            hl_cu_resid_norm(cu, g->x, NULL, NULL, w->output_norm, g->out_x, n_out, E, hp->rms_eps, rows, oq,
                             oqds);
        hl_cu_matmul_q8(cu, &w->output, g->out_x, E, oq, oqds, n_out, g->logits, hp->n_vocab);
        if (hp->final_softcap > 0)
            hl_cu_softcap(cu, g->logits, (size_t)n_out * hp->n_vocab, hp->final_softcap);
        hl_cu_argmax(cu, g->logits, n_out, hp->n_vocab, g->argmax_d);
        hl_cu_copy_d2h(cu, g->argmax_h, g->argmax_d, sizeof(int32_t) * (size_t)n_out);
    }
}

int hl_gpu_decode(hl_ctx *c, const hl_batch *b, hl_err *e) {
    struct hl_gpu_ctx *g = c->gpu;
    hl_cu_bind(g->cu); /* the scheduler's worker is not the thread that made the context */
    int B = c->p.n_batch, n = b->n, n_out = 0, max_len = 0;
    for (int i = 0; i < n; i++) {
        g->meta_h[i] = b->token[i];
        g->meta_h[B + i] = b->pos[i];
        g->meta_h[2 * B + i] = b->seq[i];
        if (b->pos[i] + 1 > max_len) max_len = b->pos[i] + 1;
        if (b->want_logits && b->want_logits[i]) g->meta_h[3 * B + n_out++] = i;
    }
    const char *nog = getenv("HL_CUDA_GRAPHS");
    bool graphs = !(nog && !strcmp(nog, "0"));
    if (graphs && n_out == n && n <= MAX_GRAPH_TOK) {
        if (!g->graphs[n]) {
            if (hl_cu_graph_begin(g->cu, e) < 0) return -1;
            enqueue(c, n, n_out, c->p.n_ctx);
            if (hl_cu_graph_end(g->cu, &g->graphs[n], e) < 0) return -1;
        }
        if (hl_cu_graph_launch(g->cu, g->graphs[n], e) < 0) return -1;
    } else {
        enqueue(c, n, n_out, max_len);
    }
    memset(g->row_copied, 0, sizeof(bool) * (size_t)c->p.n_logits);
    c->n_out = n_out;
    if (hl_cu_sync(g->cu, e) < 0) {
        c->n_out = 0;
        return -1;
    }
    for (int i = 0; i < n; i++) g->seq_len[b->seq[i]] = b->pos[i] + 1;
    return 0;
}

#endif
