/* model.c - model loading (hyperparameters, tensor binding and validation)
 * and the forward pass over a batch; see model.h for the contract.
 *
 * Supported architectures: llama (Llama 2/3, SmolLM2, Mistral, TinyLlama),
 * qwen2 (llama plus q/k/v biases, NeoX RoPE) and gemma3 (text: embedding
 * scaling, q/k RMS norms, post-attention and post-FFN norms, GELU-gated FFN,
 * sliding-window layers with their own RoPE base).
 */
#include "model.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "../backend/cpu/cpu.h"
#include "../backend/cpu/kernels.h"
#include "../backend/cpu/vec.h"
#include "../backend/cpu/quant.h"
#include "../backend/cpu/repack.h"
#include "kv.h"
#include "model_internal.h"

static const char *const ARCH_NAMES[] = {"llama", "qwen2", "gemma3"};

/* ---------------------------------------------------------------- load -- */

typedef struct loader {
    hl_model *m;
    const char *arch;
    hl_err *e;
} loader;

static int get_u32(loader *L, const char *suffix, uint32_t *out, bool required) {
    char key[128];
    snprintf(key, sizeof key, "%s.%s", L->arch, suffix);
    const gguf_kv *kv = gguf_find(L->m->gguf, key);
    if (!kv) return required ? hl_errf(L->e, "model: missing metadata key '%s'", key) : 1;
    if (gguf_get_u32(L->m->gguf, key, out) < 0)
        return hl_errf(L->e, "model: metadata key '%s' must be an unsigned 32-bit integer", key);
    return 0;
}

static int get_f32(loader *L, const char *suffix, float *out) {
    char key[128];
    snprintf(key, sizeof key, "%s.%s", L->arch, suffix);
    if (!gguf_find(L->m->gguf, key)) return 1;
    if (gguf_get_f32(L->m->gguf, key, out) < 0)
        return hl_errf(L->e, "model: metadata key '%s' must be a float", key);
    return 0;
}

static const gguf_tensor *find_tensor(loader *L, const char *name, int n_dims, uint64_t ne0,
                                      uint64_t ne1, bool required, int *rc) {
    *rc = 0;
    const gguf_tensor *t = gguf_find_tensor(L->m->gguf, name);
    if (!t) {
        if (required) *rc = hl_errf(L->e, "model: tensor '%s' is missing", name);
        return NULL;
    }
    uint64_t n1 = t->n_dims >= 2 ? t->ne[1] : 1;
    bool dims_ok = t->ne[0] == ne0 && n1 == ne1 && t->ne[2] == 1 && t->ne[3] == 1;
    if (!dims_ok) {
        *rc = n_dims == 1
                  ? hl_errf(L->e, "model: tensor '%s' has shape [%llu, %llu], expected [%llu]", name,
                            (unsigned long long)t->ne[0], (unsigned long long)n1,
                            (unsigned long long)ne0)
                  : hl_errf(L->e, "model: tensor '%s' has shape [%llu, %llu], expected [%llu, %llu]",
                            name, (unsigned long long)t->ne[0], (unsigned long long)n1,
                            (unsigned long long)ne0, (unsigned long long)ne1);
        return NULL;
    }
    const hl_dtype_traits *tr = hl_dtype_get(t->type);
    if (!tr || !tr->supported) {
        *rc = hl_errf(L->e,
                      "model: tensor '%s' has weight type %s, which heylook does not support "
                      "(supported: F32, F16, BF16, Q8_0, Q4_0, Q4_1, Q5_0, Q5_1, Q2_K, Q3_K, "
                      "Q4_K, Q5_K, Q6_K)",
                      name, hl_dtype_name(t->type));
        return NULL;
    }
    return t;
}

static int bind_mat(loader *L, hl_mat *out, const char *name, int n_in, int n_out, bool required) {
    int rc;
    const gguf_tensor *t = find_tensor(L, name, 2, (uint64_t)n_in, (uint64_t)n_out, required, &rc);
    if (!t) return rc;
    *out = (hl_mat){.data = t->data, .type = t->type, .n_in = n_in, .n_out = n_out,
                    .row_bytes = hl_dtype_row_size(t->type, (uint64_t)n_in)};
    L->m->weight_bytes += t->nbytes;
    L->m->n_params += (uint64_t)n_in * (uint64_t)n_out;
    return 1; /* bound */
}

/* A norm weight or bias: used in place when F32, else converted once. */
static int bind_vec(loader *L, const float **out, const char *name, int n, bool required) {
    int rc;
    *out = NULL;
    const gguf_tensor *t = find_tensor(L, name, 1, (uint64_t)n, 1, required, &rc);
    if (!t) return rc;
    L->m->weight_bytes += t->nbytes;
    L->m->n_params += (uint64_t)n;
    if (t->type == HL_F32) {
        *out = t->data;
        return 1;
    }
    if (hl_dtype_row_size(t->type, (uint64_t)n) == 0)
        return hl_errf(L->e, "model: tensor '%s' length %d is not a multiple of its block size", name, n);
    float *v = malloc(sizeof(float) * (size_t)n);
    float **owned = realloc(L->m->owned, sizeof(float *) * (size_t)(L->m->n_owned + 1));
    if (!v || !owned) {
        free(v);
        if (owned) L->m->owned = owned;
        return hl_errf(L->e, "model: out of memory");
    }
    L->m->owned = owned;
    owned[L->m->n_owned++] = v;
    hl_dequantize_row(t->type, t->data, v, n);
    *out = v;
    return 1;
}

static int load_hparams(loader *L) {
    hl_model *m = L->m;
    hl_hparams *hp = &m->hp;
    uint32_t u;
#define REQ_U32(key, field)                                                                        \
    do {                                                                                           \
        if (get_u32(L, key, &u, true) < 0) return -1;                                              \
        if (u == 0 || u > (1u << 24)) return hl_errf(L->e, "model: %s.%s = %u is out of range", L->arch, key, u); \
        hp->field = (int)u;                                                                        \
    } while (0)
    REQ_U32("embedding_length", n_embd);
    REQ_U32("block_count", n_layer);
    REQ_U32("feed_forward_length", n_ff);
    REQ_U32("attention.head_count", n_head);
#undef REQ_U32
    if (hp->n_layer > HL_MAX_LAYERS)
        return hl_errf(L->e, "model: %d layers; heylook supports at most %d", hp->n_layer, HL_MAX_LAYERS);
    hp->n_head_kv = hp->n_head;
    int rc = get_u32(L, "attention.head_count_kv", &u, false);
    if (rc < 0) return -1;
    if (rc == 0) hp->n_head_kv = (int)u;
    if (hp->n_head_kv < 1 || hp->n_head % hp->n_head_kv)
        return hl_errf(L->e, "model: head_count %d is not a multiple of head_count_kv %d", hp->n_head,
                       hp->n_head_kv);
    hp->head_dim = hp->n_embd / hp->n_head;
    if ((rc = get_u32(L, "attention.key_length", &u, false)) < 0) return -1;
    if (rc == 0) hp->head_dim = (int)u;
    uint32_t vlen = (uint32_t)hp->head_dim;
    if (get_u32(L, "attention.value_length", &vlen, false) < 0) return -1;
    if ((int)vlen != hp->head_dim)
        return hl_errf(L->e, "model: key_length %d differs from value_length %u; not supported",
                       hp->head_dim, vlen);
    if (hp->head_dim < 2 || hp->head_dim > 1024 || hp->head_dim % 2)
        return hl_errf(L->e, "model: head dimension %d is out of range", hp->head_dim);
    hp->n_rot = hp->head_dim;
    if ((rc = get_u32(L, "rope.dimension_count", &u, false)) < 0) return -1;
    if (rc == 0) hp->n_rot = (int)u;
    if (hp->n_rot > hp->head_dim || hp->n_rot % 2)
        return hl_errf(L->e, "model: rope.dimension_count %d does not fit head dimension %d",
                       hp->n_rot, hp->head_dim);
    hp->n_ctx_train = 4096;
    if ((rc = get_u32(L, "context_length", &u, false)) < 0) return -1;
    if (rc == 0) hp->n_ctx_train = (int)u;
    hp->rope_base = 10000.0f;
    if (get_f32(L, "rope.freq_base", &hp->rope_base) < 0) return -1;
    float factor = 0.0f;
    if (get_f32(L, "rope.scaling.factor", &factor) < 0) return -1;
    hl_str stype;
    char key[128];
    snprintf(key, sizeof key, "%s.rope.scaling.type", L->arch);
    if (gguf_get_str(m->gguf, key, &stype) == 0 && !hl_str_eq(stype, "linear") &&
        !hl_str_eq(stype, "none"))
        return hl_errf(L->e, "model: rope scaling type '%.*s' is not supported (linear, none)",
                       (int)stype.len, stype.ptr);
    if (gguf_get_str(m->gguf, key, &stype) == 0 && hl_str_eq(stype, "none")) factor = 0.0f;
    hp->rope_scale = factor == 0.0f ? 1.0f : 1.0f / factor;
    hp->rms_eps = 1e-5f;
    if (get_f32(L, "attention.layer_norm_rms_epsilon", &hp->rms_eps) < 0) return -1;
    hp->attn_scale = 1.0f / sqrtf((float)hp->head_dim);
    hp->embd_scale = 1.0f;
    hp->rope_neox = hp->arch != HL_ARCH_LLAMA;
    hp->rope_base_swa = hp->rope_base;
    if (hp->arch == HL_ARCH_GEMMA3) {
        hp->embd_scale = sqrtf((float)hp->n_embd);
        hp->rms_eps = 1e-6f;
        if (get_f32(L, "attention.layer_norm_rms_epsilon", &hp->rms_eps) < 0) return -1;
        if ((rc = get_u32(L, "attention.sliding_window", &u, false)) < 0) return -1;
        hp->n_swa = rc == 0 ? (int)u : 0;
        if (hp->n_swa > 0) {
            uint32_t pattern = 6;
            if ((rc = get_u32(L, "attention.sliding_window_pattern", &pattern, false)) < 0) return -1;
            for (int il = 0; il < hp->n_layer; il++)
                hp->swa[il] = pattern == 0 || (uint32_t)il % pattern < pattern - 1;
            hp->rope_base_swa = 10000.0f;
            if (get_f32(L, "rope.freq_base_swa", &hp->rope_base_swa) < 0) return -1;
        }
        if (get_f32(L, "final_logit_softcapping", &hp->final_softcap) < 0) return -1;
        /* Gemma 3 27B scales queries by n_embd / n_head; the others by head_dim. */
        if (hp->n_layer == 62) hp->attn_scale = 1.0f / sqrtf((float)(hp->n_embd / hp->n_head));
    }
    return 0;
}

static int load_tensors(loader *L) {
    hl_model *m = L->m;
    hl_hparams *hp = &m->hp;
    const gguf_tensor *te = gguf_find_tensor(m->gguf, "token_embd.weight");
    if (!te) return hl_errf(L->e, "model: tensor 'token_embd.weight' is missing");
    if (te->ne[1] < 1 || te->ne[1] > (1u << 24))
        return hl_errf(L->e, "model: token_embd.weight has %llu rows", (unsigned long long)te->ne[1]);
    hp->n_vocab = (int)te->ne[1];
    int E = hp->n_embd, qd = hp->n_head * hp->head_dim, kvd = hp->n_head_kv * hp->head_dim;
    if (bind_mat(L, &m->tok_embd, "token_embd.weight", E, hp->n_vocab, true) < 0) return -1;
    int rc = bind_mat(L, &m->output, "output.weight", E, hp->n_vocab, false);
    if (rc < 0) return -1;
    if (rc == 0) m->output = m->tok_embd;
    if (bind_vec(L, &m->output_norm, "output_norm.weight", E, true) < 0) return -1;
    if (bind_vec(L, &m->rope_freqs, "rope_freqs.weight", hp->n_rot / 2, false) < 0) return -1;
    m->layers = calloc((size_t)hp->n_layer, sizeof *m->layers);
    if (!m->layers) return hl_errf(L->e, "model: out of memory");
    bool gemma = hp->arch == HL_ARCH_GEMMA3, qwen = hp->arch == HL_ARCH_QWEN2;
    for (int i = 0; i < hp->n_layer; i++) {
        hl_layer *l = &m->layers[i];
        char n[96];
#define NAME(s) (snprintf(n, sizeof n, "blk.%d.%s", i, s), n)
        if (bind_vec(L, &l->attn_norm, NAME("attn_norm.weight"), E, true) < 0 ||
            bind_mat(L, &l->wq, NAME("attn_q.weight"), E, qd, true) < 0 ||
            bind_mat(L, &l->wk, NAME("attn_k.weight"), E, kvd, true) < 0 ||
            bind_mat(L, &l->wv, NAME("attn_v.weight"), E, kvd, true) < 0 ||
            bind_mat(L, &l->wo, NAME("attn_output.weight"), qd, E, true) < 0 ||
            bind_vec(L, &l->ffn_norm, NAME("ffn_norm.weight"), E, true) < 0 ||
            bind_mat(L, &l->w_gate, NAME("ffn_gate.weight"), E, hp->n_ff, true) < 0 ||
            bind_mat(L, &l->w_up, NAME("ffn_up.weight"), E, hp->n_ff, true) < 0 ||
            bind_mat(L, &l->w_down, NAME("ffn_down.weight"), hp->n_ff, E, true) < 0)
            return -1;
        /* Biases: required by qwen2, accepted by llama (some finetunes carry them). */
        if (bind_vec(L, &l->bq, NAME("attn_q.bias"), qd, qwen) < 0 ||
            bind_vec(L, &l->bk, NAME("attn_k.bias"), kvd, qwen) < 0 ||
            bind_vec(L, &l->bv, NAME("attn_v.bias"), kvd, qwen) < 0)
            return -1;
        if (gemma && (bind_vec(L, &l->q_norm, NAME("attn_q_norm.weight"), hp->head_dim, true) < 0 ||
                      bind_vec(L, &l->k_norm, NAME("attn_k_norm.weight"), hp->head_dim, true) < 0 ||
                      bind_vec(L, &l->post_attn_norm, NAME("post_attention_norm.weight"), E, true) < 0 ||
                      bind_vec(L, &l->post_ffn_norm, NAME("post_ffw_norm.weight"), E, true) < 0))
            return -1;
#undef NAME
    }
    return 0;
}

/* Re-lays every matrix the packed kernels take (repack.h) in 8-row groups,
 * once, so decode and prefill read them at close to memory speed. The
 * token embedding keeps its rows (looked up one at a time); a tied output
 * matrix gets its own packed copy. HL_NO_REPACK=1 turns this off. */
static int repack_one(hl_model *m, hl_mat *w, hl_err *e) {
    size_t bytes = hl_repack_bytes(w->type, w->n_in, w->n_out);
    /* The scalar packed kernel is a reference, slower than the scalar row dot. */
    if (!bytes || !hl_packed_kernel(w->type) || hl_kernels_best()->path == HL_PATH_SCALAR) return 0;
    void **list = realloc(m->packed, sizeof *list * (size_t)(m->n_packed + 1));
    if (!list) return hl_errf(e, "model: out of memory repacking weights");
    m->packed = list;
    void *buf = aligned_alloc(64, (bytes + 63) & ~(size_t)63);
    if (!buf) return hl_errf(e, "model: out of memory repacking weights (%zu bytes)", bytes);
    m->packed[m->n_packed++] = buf;
    hl_repack(w->type, w->data, w->row_bytes, w->n_in, 0, w->n_out / HL_PACK_ROWS, buf);
    w->packed = buf;
    w->group_bytes = hl_packed_group_bytes(w->type, w->n_in);
    m->packed_bytes += bytes;
    return 0;
}

/* Reads one byte of every page of a matrix, so its pages are resident when
 * the first request comes (the mapping is otherwise filled lazily). */
static uint64_t touch(const hl_mat *w) {
    const volatile uint8_t *p = w->data;
    size_t n = w->row_bytes * (size_t)w->n_out;
    uint64_t sum = 0;
    for (size_t i = 0; i < n; i += 4096) sum += p[i];
    return sum;
}

/* Repacks (unless HL_NO_REPACK=1) and pages in every layer's matrices,
 * reporting the fraction done after each layer. */
static int prepare_matrices(hl_model *m, hl_load_progress cb, void *arg, hl_err *e) {
    const char *off = getenv("HL_NO_REPACK");
    bool repack = !(off && *off && strcmp(off, "0") != 0);
    uint64_t sink = 0;
    for (int il = 0; il < m->hp.n_layer; il++) {
        hl_layer *l = &m->layers[il];
        hl_mat *mats[] = {&l->wq, &l->wk, &l->wv, &l->wo, &l->w_gate, &l->w_up, &l->w_down};
        for (size_t i = 0; i < sizeof mats / sizeof *mats; i++) {
            if (repack && repack_one(m, mats[i], e) < 0) return -1;
            if (!mats[i]->packed) sink += touch(mats[i]);
        }
        if (cb) cb(arg, (double)(il + 1) / (m->hp.n_layer + 1));
    }
    if (repack && m->output.data && repack_one(m, &m->output, e) < 0) return -1;
    if (m->output.data && !m->output.packed) sink += touch(&m->output);
    m->touch_sum = sink; /* keeps the reads */
    if (cb) cb(arg, 1.0);
    return 0;
}

static const char *const BACKEND_NAMES[] = {"auto", "cpu", "cuda"};

const char *hl_backend_name(hl_backend b) {
    return (unsigned)b < 3 ? BACKEND_NAMES[b] : "unknown";
}

int hl_backend_from_name(const char *name) {
    for (int i = 0; i < 3; i++)
        if (name && !strcasecmp(name, BACKEND_NAMES[i])) return i;
    return -1;
}

int hl_model_load(hl_model **out, const char *path, hl_err *e) {
    return hl_model_load_opts(out, path, NULL, e);
}

int hl_model_load_progress(hl_model **out, const char *path, hl_load_progress cb, void *arg, hl_err *e) {
    hl_model_opts o = {.progress = cb, .progress_arg = arg};
    const char *env = getenv("HL_BACKEND");
    if (env && *env) {
        int b = hl_backend_from_name(env);
        if (b < 0) return hl_errf(e, "model: HL_BACKEND='%s' is not a backend (auto, cpu, cuda)", env);
        o.backend = (hl_backend)b;
    }
    return hl_model_load_opts(out, path, &o, e);
}

hl_backend hl_model_backend(const hl_model *m) { return m->backend; }

int hl_model_load_opts(hl_model **out, const char *path, const hl_model_opts *opts, hl_err *e) {
    if (!opts) return hl_model_load_progress(out, path, NULL, NULL, e);
    hl_load_progress cb = opts->progress;
    void *arg = opts->progress_arg;
    *out = NULL;
    hl_model *m = calloc(1, sizeof *m);
    if (!m) return hl_errf(e, "model: out of memory");
    if (gguf_open(&m->gguf, path, e) < 0) {
        free(m);
        return -1;
    }
    hl_str a;
    if (gguf_get_str(m->gguf, "general.architecture", &a) < 0) {
        hl_errf(e, "model: '%s' has no general.architecture key; is it a model file?", path);
        goto fail;
    }
    int arch = -1;
    for (int i = 0; i < 3; i++)
        if (hl_str_eq(a, ARCH_NAMES[i])) arch = i;
    if (arch < 0) {
        hl_errf(e, "model: architecture '%.*s' is not supported (supported: llama, qwen2, gemma3)",
                (int)(a.len > 64 ? 64 : a.len), a.ptr);
        goto fail;
    }
    m->hp.arch = (hl_arch)arch;
    loader L = {.m = m, .arch = ARCH_NAMES[arch], .e = e};
    if (load_hparams(&L) < 0 || load_tensors(&L) < 0) goto fail;
    if (hl_tokenizer_load(&m->tok, m->gguf, e) < 0) goto fail;
    if (hl_tokenizer_n_vocab(m->tok) > m->hp.n_vocab) {
        hl_errf(e, "model: the tokenizer has %d tokens but token_embd.weight only %d rows",
                hl_tokenizer_n_vocab(m->tok), m->hp.n_vocab);
        goto fail;
    }
    char why[256] = "";
    bool gpu = opts->backend == HL_BACKEND_CUDA ||
               (opts->backend == HL_BACKEND_AUTO && hl_gpu_model_fits(m, why, sizeof why));
    if (opts->backend == HL_BACKEND_CUDA && !hl_gpu_model_fits(m, why, sizeof why)) {
        hl_errf(e, "model: the CUDA backend cannot run '%s': %s", path, why);
        goto fail;
    }
    m->backend = gpu ? HL_BACKEND_CUDA : HL_BACKEND_CPU;
    if (gpu ? hl_gpu_model_upload(m, opts->device, cb, arg, e) < 0
            : prepare_matrices(m, cb, arg, e) < 0)
        goto fail;
    snprintf(m->desc, sizeof m->desc, "%s, %d layers, %d embd, %s weights, %.1fM params, %.1f MiB%s",
             ARCH_NAMES[arch], m->hp.n_layer, m->hp.n_embd, hl_dtype_name(m->layers[0].wq.type),
             (double)m->n_params / 1e6, (double)m->weight_bytes / (1 << 20), gpu ? ", cuda" : "");
    *out = m;
    return 0;
fail:
    hl_model_free(m);
    return -1;
}

void hl_model_free(hl_model *m) {
    if (!m) return;
    hl_gpu_model_free(m->gpu);
    hl_tokenizer_free(m->tok);
    for (int i = 0; i < m->n_owned; i++) free(m->owned[i]);
    free(m->owned);
    for (int i = 0; i < m->n_packed; i++) free(m->packed[i]);
    free(m->packed);
    free(m->layers);
    gguf_close(m->gguf);
    free(m);
}

const hl_hparams *hl_model_hparams(const hl_model *m) { return &m->hp; }
const hl_tokenizer *hl_model_tokenizer(const hl_model *m) { return m->tok; }
const gguf_file *hl_model_gguf(const hl_model *m) { return m->gguf; }
uint64_t hl_model_weight_bytes(const hl_model *m) { return m->weight_bytes; }

uint64_t hl_model_pass_bytes(const hl_model *m) {
    /* Untied embeddings are only looked up (one row per token), not read. */
    uint64_t embd = (uint64_t)m->tok_embd.row_bytes * (uint64_t)m->tok_embd.n_out;
    bool tied = m->output.data == m->tok_embd.data;
    return tied ? m->weight_bytes : m->weight_bytes - embd;
}
const char *hl_model_desc(const hl_model *m) { return m->desc; }

/* ------------------------------------------------------------- context -- */

static void *zalloc(size_t n, size_t size, bool *ok) {
    void *p = calloc(n ? n : 1, size);
    if (!p) *ok = false;
    return p;
}

/* The context parameters hl_ctx_new would settle on. */
static hl_ctx_params ctx_params_resolve(const hl_hparams *hp, const hl_ctx_params *p) {
    hl_ctx_params r = *p;
    if (r.n_ctx <= 0) r.n_ctx = hp->n_ctx_train < 4096 ? hp->n_ctx_train : 4096;
    if (r.n_seq <= 0) r.n_seq = 1;
    if (r.n_batch <= 0) r.n_batch = 512;
    if (r.n_logits <= 0) r.n_logits = r.n_seq > 8 ? r.n_seq : 8;
    if (r.n_threads <= 0) r.n_threads = hl_cpu_count();
    if (r.n_logits > r.n_batch) r.n_logits = r.n_batch;
    return r;
}

/* Bytes of a context's KV cache and scratch (what hl_ctx_new allocates). */
static uint64_t ctx_bytes(const hl_hparams *hp, const hl_ctx_params *p) {
    uint64_t blocks = (uint64_t)p->n_seq * (((uint64_t)p->n_ctx + HL_KV_BLOCK - 1) / HL_KV_BLOCK);
    uint64_t kv = blocks * HL_KV_BLOCK * 2 * (uint64_t)hp->n_layer * (uint64_t)hp->n_head_kv *
                  (uint64_t)hp->head_dim * (p->kv_f32 ? 4 : 2);
    uint64_t B = (uint64_t)p->n_batch, E = (uint64_t)hp->n_embd;
    uint64_t qd = (uint64_t)hp->n_head * (uint64_t)hp->head_dim, kvd = (uint64_t)hp->n_head_kv * (uint64_t)hp->head_dim;
    int max_in = hp->n_embd > hp->n_ff ? hp->n_embd : hp->n_ff;
    if ((int)qd > max_in) max_in = (int)qd;
    uint64_t floats = B * (2 * E + 2 * qd + 2 * kvd + 2 * (uint64_t)hp->n_ff) +
                      (uint64_t)p->n_logits * (E + (uint64_t)hp->n_vocab) +
                      hl_cpu_matmul_scratch(max_in, p->n_batch, p->n_threads) +
                      (uint64_t)p->n_threads * (uint64_t)p->n_ctx + 2 * B * (uint64_t)hp->n_rot;
    return kv + 4 * floats;
}

int hl_model_estimate(const char *path, const hl_ctx_params *p, uint64_t *bytes, hl_err *e) {
    hl_model m = {0};
    if (gguf_open(&m.gguf, path, e) < 0) return -1;
    int rc = -1;
    hl_str a;
    int arch = -1;
    if (gguf_get_str(m.gguf, "general.architecture", &a) == 0)
        for (int i = 0; i < 3; i++)
            if (hl_str_eq(a, ARCH_NAMES[i])) arch = i;
    const gguf_tensor *te = gguf_find_tensor(m.gguf, "token_embd.weight");
    if (arch < 0 || !te) {
        hl_errf(e, "model: '%s' is not a model this engine runs (llama, qwen2, gemma3)", path);
        goto out;
    }
    m.hp.arch = (hl_arch)arch;
    loader L = {.m = &m, .arch = ARCH_NAMES[arch], .e = e};
    if (load_hparams(&L) < 0) goto out;
    m.hp.n_vocab = (int)te->ne[1];
    hl_ctx_params cp = ctx_params_resolve(&m.hp, p);
    *bytes = gguf_file_size(m.gguf) - gguf_data_offset(m.gguf) + ctx_bytes(&m.hp, &cp);
    rc = 0;
out:
    gguf_close(m.gguf);
    return rc;
}

uint64_t hl_ctx_bytes(const hl_ctx *c) {
    return c->gpu ? hl_gpu_ctx_bytes(c) : ctx_bytes(&c->m->hp, &c->p);
}

int hl_ctx_new(hl_ctx **out, const hl_model *m, const hl_ctx_params *p, hl_err *e) {
    *out = NULL;
    const hl_hparams *hp = &m->hp;
    hl_ctx *c = calloc(1, sizeof *c);
    if (!c) return hl_errf(e, "context: out of memory");
    c->m = m;
    c->p = ctx_params_resolve(hp, p);
    if (m->gpu) {
        if (hl_gpu_ctx_new(c, e) < 0) {
            free(c);
            return -1;
        }
        *out = c;
        return 0;
    }
    c->pool = hl_pool_new(c->p.n_threads);
    if (!c->pool) {
        int n = c->p.n_threads;
        free(c);
        return hl_errf(e, "context: cannot start %d threads", n);
    }
    hl_kv_shape ks = {.n_layer = hp->n_layer, .n_kv_head = hp->n_head_kv, .head_dim = hp->head_dim,
                      .n_seq = c->p.n_seq, .n_ctx = c->p.n_ctx,
                      .type = c->p.kv_f32 ? HL_F32 : HL_F16};
    if (hl_kv_new(&c->kv, &ks, e) < 0) {
        hl_pool_free(c->pool);
        free(c);
        return -1;
    }
    size_t B = (size_t)c->p.n_batch, E = (size_t)hp->n_embd;
    size_t qd = (size_t)hp->n_head * hp->head_dim, kvd = (size_t)hp->n_head_kv * hp->head_dim;
    int max_in = hp->n_embd > hp->n_ff ? hp->n_embd : hp->n_ff;
    if ((int)qd > max_in) max_in = (int)qd;
    bool ok = true;
    c->x = zalloc(B * E, sizeof(float), &ok);
    c->xb = zalloc(B * E, sizeof(float), &ok);
    c->q = zalloc(B * qd, sizeof(float), &ok);
    c->k = zalloc(B * kvd, sizeof(float), &ok);
    c->v = zalloc(B * kvd, sizeof(float), &ok);
    c->att = zalloc(B * qd, sizeof(float), &ok);
    c->hb = zalloc(B * (size_t)hp->n_ff, sizeof(float), &ok);
    c->hb2 = zalloc(B * (size_t)hp->n_ff, sizeof(float), &ok);
    c->out_x = zalloc((size_t)c->p.n_logits * E, sizeof(float), &ok);
    c->logits = zalloc((size_t)c->p.n_logits * (size_t)hp->n_vocab, sizeof(float), &ok);
    c->mm_scratch = zalloc(hl_cpu_matmul_scratch(max_in, c->p.n_batch, c->p.n_threads), sizeof(float), &ok);
    c->scores = zalloc((size_t)c->p.n_threads * (size_t)c->p.n_ctx, sizeof(float), &ok);
    c->rope_cs = zalloc(2 * B * (size_t)hp->n_rot, sizeof(float), &ok);
    c->out_rows = zalloc((size_t)c->p.n_logits, sizeof(int32_t), &ok);
    c->seq_next = zalloc((size_t)c->p.n_seq, sizeof(int32_t), &ok);
    c->pf_pos = zalloc(B, sizeof(int32_t), &ok);
    c->pf_seq = zalloc(B, sizeof(int32_t), &ok);
    c->pf_want = zalloc(B, sizeof(bool), &ok);
    if (!ok) {
        hl_ctx_free(c);
        return hl_errf(e, "context: out of memory for the scratch of %d tokens; lower n_batch",
                       c->p.n_batch);
    }
    *out = c;
    return 0;
}

void hl_ctx_free(hl_ctx *c) {
    if (!c) return;
    hl_gpu_ctx_free(c->gpu);
    hl_pool_free(c->pool);
    hl_kv_free(c->kv);
    free(c->x), free(c->xb), free(c->q), free(c->k), free(c->v), free(c->att);
    free(c->hb), free(c->hb2), free(c->out_x), free(c->logits), free(c->mm_scratch);
    free(c->scores), free(c->rope_cs), free(c->out_rows), free(c->seq_next);
    free(c->pf_pos), free(c->pf_seq), free(c->pf_want);
    free(c);
}

const hl_ctx_params *hl_ctx_params_get(const hl_ctx *c) { return &c->p; }
const float *hl_ctx_logits(const hl_ctx *c, int i) {
    if (i < 0 || i >= c->n_out) return NULL;
    if (c->gpu) return hl_gpu_logits(c, i);
    return c->logits + (size_t)i * c->m->hp.n_vocab;
}
int hl_ctx_argmax(const hl_ctx *c, int i) {
    if (i < 0 || i >= c->n_out) return -1;
    if (c->gpu) return hl_gpu_argmax(c, i);
    const float *l = c->logits + (size_t)i * c->m->hp.n_vocab;
    int best = -1;
    for (int k = 0; k < c->m->hp.n_vocab; k++)
        if (l[k] == l[k] && (best < 0 || l[k] > l[best])) best = k;
    return best;
}
void hl_ctx_seq_truncate(hl_ctx *c, int seq, int n_pos) {
    if (c->gpu) hl_gpu_seq_truncate(c, seq, n_pos);
    else hl_kv_seq_truncate(c->kv, seq, n_pos);
}
int hl_ctx_seq_len(const hl_ctx *c, int seq) {
    return c->gpu ? hl_gpu_seq_len(c, seq) : hl_kv_seq_len(c->kv, seq);
}

/* ------------------------------------------------------------- forward -- */

typedef struct attn_job {
    hl_ctx *c;
    const hl_batch *b;
    int layer;
} attn_job;

/* One (token, head): scores over the sequence's visible positions, softmax,
 * weighted sum of values, reading the cache rows in place (f16 or f32).
 * The scores live in a per-thread row of n_ctx floats: no (token x
 * position) matrix is ever formed, so memory does not grow with the batch. */
static void attn_task(void *arg, int task, int thread) {
    const attn_job *j = arg;
    hl_ctx *c = j->c;
    const hl_hparams *hp = &c->m->hp;
    const hl_vec_ops *v = hl_vec_ops_best();
    int t = task / hp->n_head, h = task % hp->n_head;
    int hd = hp->head_dim, kvh = h / (hp->n_head / hp->n_head_kv);
    int seq = j->b->seq[t], pos = j->b->pos[t];
    int start = 0;
    if (hp->swa[j->layer] && hp->n_swa > 0 && pos - hp->n_swa + 1 > 0) start = pos - hp->n_swa + 1;
    const float *q = c->q + ((size_t)t * hp->n_head + h) * hd;
    float *sc = c->scores + (size_t)thread * c->p.n_ctx;
    float qr[1024];
    /* With an f16 cache, queries and attention weights are rounded to f16,
     * as llama.cpp's f16 dot products round them, so both engines agree. */
    bool f16 = hl_kv_type(c->kv) == HL_F16;
    for (int d = 0; d < hd; d++) qr[d] = f16 ? hl_f16_to_f32(hl_f32_to_f16(q[d])) : q[d];
    int n = pos - start + 1;
    /* Positions in one cache block are contiguous rows: walk block runs. */
    for (int p = start; p <= pos;) {
        int run = HL_KV_BLOCK - p % HL_KV_BLOCK;
        if (run > pos + 1 - p) run = pos + 1 - p;
        const void *k = hl_kv_k(c->kv, j->layer, seq, p, kvh);
        if (f16)
            v->dots_f16(sc + (p - start), k, run, qr, hd);
        else
            v->dots_f32(sc + (p - start), k, run, qr, hd);
        p += run;
    }
    v->scale_f32(sc, hp->attn_scale, n);
    v->softmax(sc, n);
    if (f16) v->round_f16(sc, n);
    float *o = c->att + ((size_t)t * hp->n_head + h) * hd;
    memset(o, 0, sizeof(float) * (size_t)hd);
    for (int p = start; p <= pos;) {
        int run = HL_KV_BLOCK - p % HL_KV_BLOCK;
        if (run > pos + 1 - p) run = pos + 1 - p;
        const void *val = hl_kv_v(c->kv, j->layer, seq, p, kvh);
        if (f16)
            v->wsum_f16(o, val, run, sc + (p - start), hd);
        else
            v->wsum_f32(o, val, run, sc + (p - start), hd);
        p += run;
    }
}

/* The per-token work between matmuls, one pool task per token (decode: one
 * task, run inline by the pool). */
typedef enum layer_stage_id {
    STAGE_ATTN_NORM,  /* xb = norm(x) */
    STAGE_QKV_POST,   /* biases, gemma's q/k norms, rope, store k and v */
    STAGE_ATTN_RESID, /* x += (gemma: norm) attention out; xb = norm(x) */
    STAGE_FFN_ACT,    /* hb = act(gate) * up */
    STAGE_FFN_RESID,  /* x += (gemma: norm) ffn out */
} layer_stage_id;

typedef struct layer_job {
    hl_ctx *c;
    const hl_batch *b;
    const hl_layer *l;
    int layer;
    layer_stage_id stage;
} layer_job;

static void add_bias(float *x, const float *b, int n) {
    if (!b) return;
    for (int i = 0; i < n; i++) x[i] += b[i];
}

static void layer_task(void *arg, int t, int thread) {
    (void)thread;
    const layer_job *j = arg;
    hl_ctx *c = j->c;
    const hl_model *m = c->m;
    const hl_hparams *hp = &m->hp;
    const hl_layer *l = j->l;
    int E = hp->n_embd, F = hp->n_ff, hd = hp->head_dim;
    int qd = hp->n_head * hd, kvd = hp->n_head_kv * hd;
    bool gemma = hp->arch == HL_ARCH_GEMMA3;
    float *xt = c->x + (size_t)t * E, *ot = c->xb + (size_t)t * E;
    switch (j->stage) {
    case STAGE_ATTN_NORM:
        hl_cpu_rmsnorm(ot, xt, l->attn_norm, E, hp->rms_eps);
        break;
    case STAGE_QKV_POST: {
        float *qt = c->q + (size_t)t * qd, *kt = c->k + (size_t)t * kvd, *vt = c->v + (size_t)t * kvd;
        add_bias(qt, l->bq, qd);
        add_bias(kt, l->bk, kvd);
        add_bias(vt, l->bv, kvd);
        if (gemma) {
            for (int h = 0; h < hp->n_head; h++)
                hl_cpu_rmsnorm(qt + h * hd, qt + h * hd, l->q_norm, hd, hp->rms_eps);
            for (int h = 0; h < hp->n_head_kv; h++)
                hl_cpu_rmsnorm(kt + h * hd, kt + h * hd, l->k_norm, hd, hp->rms_eps);
        }
        const float *cs = c->rope_cs + ((size_t)(hp->swa[j->layer] ? c->p.n_batch : 0) + t) * hp->n_rot;
        int pos = j->b->pos[t], seq = j->b->seq[t];
        hl_cpu_rope_apply(qt, hp->n_head, hd, hp->n_rot, cs, hp->rope_neox);
        hl_cpu_rope_apply(kt, hp->n_head_kv, hd, hp->n_rot, cs, hp->rope_neox);
        for (int h = 0; h < hp->n_head_kv; h++) {
            hl_kv_store(c->kv, hl_kv_k(c->kv, j->layer, seq, pos, h), kt + h * hd);
            hl_kv_store(c->kv, hl_kv_v(c->kv, j->layer, seq, pos, h), vt + h * hd);
        }
        break;
    }
    case STAGE_ATTN_RESID:
        if (gemma) hl_cpu_rmsnorm(ot, ot, l->post_attn_norm, E, hp->rms_eps);
        for (int i = 0; i < E; i++) xt[i] += ot[i];
        hl_cpu_rmsnorm(ot, xt, l->ffn_norm, E, hp->rms_eps);
        break;
    case STAGE_FFN_ACT: {
        float *g = c->hb + (size_t)t * F, *u = c->hb2 + (size_t)t * F;
        (gemma ? hl_vec_ops_best()->gelu_mul : hl_vec_ops_best()->silu_mul)(g, u, F);
        break;
    }
    case STAGE_FFN_RESID:
        if (gemma) hl_cpu_rmsnorm(ot, ot, l->post_ffn_norm, E, hp->rms_eps);
        for (int i = 0; i < E; i++) xt[i] += ot[i];
        break;
    }
}

static void layer_stage(layer_job *j, layer_stage_id stage, int n_tok) {
    j->stage = stage;
    hl_pool_run(j->c->pool, layer_task, j, n_tok);
}

static int check_batch(hl_ctx *c, const hl_batch *b, hl_err *e) {
    const hl_hparams *hp = &c->m->hp;
    if (b->n < 1) return hl_errf(e, "decode: empty batch");
    if (b->n > c->p.n_batch)
        return hl_errf(e, "decode: %d tokens in a batch; this context takes at most %d", b->n,
                       c->p.n_batch);
    for (int s = 0; s < c->p.n_seq; s++) c->seq_next[s] = hl_ctx_seq_len(c, s);
    int n_out = 0;
    for (int i = 0; i < b->n; i++) {
        int s = b->seq[i];
        if (s < 0 || s >= c->p.n_seq)
            return hl_errf(e, "decode: sequence id %d out of range [0, %d)", s, c->p.n_seq);
        if (b->token[i] < 0 || b->token[i] >= hp->n_vocab)
            return hl_errf(e, "decode: token id %d out of range [0, %d)", b->token[i], hp->n_vocab);
        if (b->pos[i] != c->seq_next[s])
            return hl_errf(e, "decode: token %d of sequence %d has position %d, expected %d", i, s,
                           b->pos[i], c->seq_next[s]);
        if (b->pos[i] >= c->p.n_ctx)
            return hl_errf(e, "context full: sequence %d reached %d tokens, the context size", s,
                           c->p.n_ctx);
        c->seq_next[s]++;
        if (b->want_logits && b->want_logits[i]) n_out++;
    }
    if (n_out > c->p.n_logits)
        return hl_errf(e, "decode: %d tokens want logits; this context returns at most %d", n_out,
                       c->p.n_logits);
    return 0;
}

int hl_ctx_prefill(hl_ctx *c, int seq, const int32_t *ids, int n, hl_err *e) {
    if (n < 1) return hl_errf(e, "prefill: no tokens");
    int start = hl_ctx_seq_len(c, seq);
    for (int done = 0; done < n;) {
        int k = n - done < c->p.n_batch ? n - done : c->p.n_batch;
        for (int i = 0; i < k; i++) {
            c->pf_pos[i] = start + done + i;
            c->pf_seq[i] = seq;
            c->pf_want[i] = done + i == n - 1;
        }
        hl_batch b = {.n = k, .token = ids + done, .pos = c->pf_pos, .seq = c->pf_seq,
                      .want_logits = c->pf_want};
        if (hl_ctx_decode(c, &b, e) < 0) return -1;
        done += k;
    }
    return 0;
}

int hl_ctx_decode(hl_ctx *c, const hl_batch *b, hl_err *e) {
    const hl_model *m = c->m;
    const hl_hparams *hp = &m->hp;
    if (check_batch(c, b, e) < 0) return -1;
    if (c->gpu) return hl_gpu_decode(c, b, e);
    /* Reserve cache positions; undo on failure so a failed call changes nothing. */
    for (int s = 0; s < c->p.n_seq; s++) {
        int old = hl_kv_seq_len(c->kv, s);
        if (c->seq_next[s] == old) continue;
        if (hl_kv_seq_reserve(c->kv, s, c->seq_next[s], e) < 0) {
            for (int r = 0; r < s; r++) {
                /* seq_next[r] - (tokens of r in batch) is r's old length */
                int n_r = 0;
                for (int i = 0; i < b->n; i++) n_r += b->seq[i] == r;
                hl_kv_seq_truncate(c->kv, r, c->seq_next[r] - n_r);
            }
            return -1;
        }
    }
    int T = b->n, E = hp->n_embd;

    for (int t = 0; t < T; t++) {
        float *xt = c->x + (size_t)t * E;
        hl_cpu_get_row(&m->tok_embd, b->token[t], xt);
        if (hp->embd_scale != 1.0f)
            for (int i = 0; i < E; i++) xt[i] *= hp->embd_scale;
    }
    /* The rope rotation of each token, for the global base and (gemma) the
     * sliding-window layers' base. */
    bool any_swa = false;
    for (int il = 0; il < hp->n_layer; il++) any_swa |= hp->swa[il];
    for (int t = 0; t < T; t++) {
        hl_cpu_rope_table(c->rope_cs + (size_t)t * hp->n_rot, hp->n_rot, b->pos[t], hp->rope_base,
                          hp->rope_scale, m->rope_freqs);
        if (any_swa)
            hl_cpu_rope_table(c->rope_cs + ((size_t)c->p.n_batch + t) * hp->n_rot, hp->n_rot,
                              b->pos[t], hp->rope_base_swa, 1.0f, m->rope_freqs);
    }
    for (int il = 0; il < hp->n_layer; il++) {
        const hl_layer *l = &m->layers[il];
        layer_job lj = {.c = c, .b = b, .l = l, .layer = il};
        /* attention block */
        layer_stage(&lj, STAGE_ATTN_NORM, T);
        const hl_mat *qkv[3] = {&l->wq, &l->wk, &l->wv};
        float *qkv_out[3] = {c->q, c->k, c->v};
        hl_cpu_matmul_n(c->pool, qkv, 3, c->xb, T, qkv_out, c->mm_scratch);
        layer_stage(&lj, STAGE_QKV_POST, T);
        attn_job aj = {.c = c, .b = b, .layer = il};
        hl_pool_run(c->pool, attn_task, &aj, T * hp->n_head);
        hl_cpu_matmul(c->pool, &l->wo, c->att, T, c->xb, c->mm_scratch);
        /* feed-forward block */
        layer_stage(&lj, STAGE_ATTN_RESID, T);
        const hl_mat *gu[2] = {&l->w_gate, &l->w_up};
        float *gu_out[2] = {c->hb, c->hb2};
        hl_cpu_matmul_n(c->pool, gu, 2, c->xb, T, gu_out, c->mm_scratch);
        layer_stage(&lj, STAGE_FFN_ACT, T);
        hl_cpu_matmul(c->pool, &l->w_down, c->hb, T, c->xb, c->mm_scratch);
        layer_stage(&lj, STAGE_FFN_RESID, T);
    }
    c->n_out = 0;
    for (int t = 0; t < T; t++) {
        if (!b->want_logits || !b->want_logits[t]) continue;
        hl_cpu_rmsnorm(c->out_x + (size_t)c->n_out * E, c->x + (size_t)t * E, m->output_norm, E,
                       hp->rms_eps);
        c->out_rows[c->n_out++] = t;
    }
    if (c->n_out) {
        hl_cpu_matmul(c->pool, &m->output, c->out_x, c->n_out, c->logits, c->mm_scratch);
        if (hp->final_softcap > 0) {
            size_t n = (size_t)c->n_out * hp->n_vocab;
            for (size_t i = 0; i < n; i++)
                c->logits[i] = hp->final_softcap * tanhf(c->logits[i] / hp->final_softcap);
        }
    }
    return 0;
}
