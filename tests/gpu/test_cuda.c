/* test_cuda.c - the CUDA backend (src/backend/cuda) against the CPU
 * reference, and whole models on both backends.
 *
 * Kernel tests. One executor per test; inputs are fresh seeded random
 * values; every output buffer is filled with 0xff bytes (NaN as floats, -1
 * as ints) before a kernel runs, so an element it fails to write shows up
 * as NaN and an element it should not touch must still hold the poison.
 * Errors are ||out - ref|| / ||ref|| against double-precision references
 * computed here. Tolerances:
 *   cuda_dequant        every weight type x several shapes: hl_cu_dequant
 *                       equals quant.c's hl_dequantize_row to 1e-6 of the
 *                       matrix's largest |value| (the GPU may fuse a multiply
 *                       and an add); hl_cu_supports agrees with the shapes.
 *                       Re-laid copies (hl_cu_relayout) decode the same.
 *   cuda_matmul         every type, raw and re-laid: the small-batch path
 *                       (n_tok 1..8) < 1e-5, against f32 activations, or
 *                       for Q4_K and the re-laid layouts (int8 activations)
 *                       against x quantized by the documented Q8_1 rule
 *                       (and < 2e-2 against f32 x: the int8 error itself);
 *                       cuBLAS path (f16 copies of weights and activations,
 *                       f32 accumulation) < 5e-3; the automatic choice
 *                       likewise; strided x (padding filled with NaN) and y
 *                       (padding must stay poisoned), rows past n_tok
 *                       untouched; hl_cu_quantize_q8 equals the rule, and
 *                       hl_cu_matmul_q8 given its output equals the run that
 *                       quantized x itself, bit for bit.
 *   cuda_get_rows       scaled row lookup at a stride, raw and re-laid, as
 *                       dequant.
 *   cuda_resid_norm     every combination of delta / post / w / rows, and
 *                       out aliasing delta (as the engine calls it): < 1e-5.
 *                       Every int8 side output (resid_norm, attention,
 *                       act_mul) equals quantizing the kernel's own f32
 *                       output by the rule (a quant may differ by one at a
 *                       rounding tie), and is written only where asked.
 *   cuda_qkv_attention  biases, per-head q/k norms, rope (interleaved or
 *                       neox, full or partial, frequency factors, scale),
 *                       the f16 cache and causal attention (with and without
 *                       a sliding window) over several sequences: a prefill
 *                       batch of interleaved sequences, then one decode token
 *                       per sequence, for many head layouts. Checked: q after
 *                       qkv_post < 2e-5 + 3e-7 * max position (the kernel
 *                       computes rope angles in float, whose error grows with
 *                       the position); every cache element written within
 *                       one f16 ulp of the reference (plus the q tolerance
 *                       times its row's largest value), every other one
 *                       still poisoned; the attention counters left zero; attention output against a reference that
 *                       rounds k/v to f16 as the cache does < 1e-4 + 1e-6 *
 *                       max position; against a reference fed the GPU's own
 *                       q and cache (isolating the attention kernel) < 1e-5,
 *                       both with max_len = max position + 1 and with
 *                       max_len = n_ctx (what graphs pass).
 *   cuda_act_mul, cuda_softcap: < 1e-5.  cuda_argmax: exact (ties go to the
 *                       first index, NaN never wins).
 *   cuda_graph          a captured upload, matmul, act_mul with its int8
 *                       form, matmul_q8 reading it and downloads is replayed
 *                       on new pinned inputs and follows them (fused and
 *                       cuBLAS paths), and replays the same input bit for bit.
 * Each test prints its worst observed errors, to show the headroom.
 *
 * End to end (cuda_e2e_models): for each .gguf of HL_GPU_MODELS (colon
 * separated), the model on the CPU and on CUDA: 8 prompts of random ids
 * (lengths 5..60) prefilled on both (last logits: cosine >= 0.999; each
 * backend's hl_ctx_argmax equals the argmax of its hl_ctx_logits), then 32
 * greedy tokens each in lockstep (every step's logits: cosine >= 0.999).
 * At least 7 of 8 continuations must be identical or diverge at a near tie:
 * where the CPU's logits of the two tokens are within a margin, that of
 * tests/ref/check_goldens.py (0.1 on heylook's synthetic models, whose
 * logits are nearly flat, 0.5 on others; HL_GPU_TIE_MARGIN=X sets it, 0 is
 * exact). Ties are real: the backends round activations differently (the
 * CPU to Q8_0 / Q8_K blocks for quantized weights; the GPU to int8 blocks
 * of 32 for some types, f16 in the cuBLAS path, none for the rest), which
 * moves logits by ~1e-3, and on the synthetic models (flat logits) that
 * flips tokens whose logits are 1e-4..2e-2 apart (measured); every
 * divergence is printed with its gaps and the logits' span.
 * Then one decode step of 4 sequences at once, against the CPU (cosine
 * >= 0.999) and against the same tokens decoded one at a time on CUDA
 * (cosine >= 0.9999). One line per model:
 *   "e2e <file>: min cosine X, top1 A/8, greedy B/8 (+T near ties),
 *    batch4 cosine Y (...)"
 *
 * Without a GPU (or in a build without CUDA) the tests print one line
 * "gpu: no CUDA device (<reason>), skipping" and pass.
 */
#include <math.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "../../src/backend/cpu/quant.h"
#include "../../src/backend/cpu/vec.h"
#include "../../src/backend/cuda/cuda.h"
#include "../../src/engine/model.h"
#include "../unit/test.h"

/* Failures go through here: the first FAIL_SHOWN of a test are printed in
 * full, the rest only counted (a broken kernel fails thousands of checks). */
#define FAIL_SHOWN 25
static int g_fails; /* of the current test; reset by test_start */

__attribute__((format(printf, 3, 4))) static void fail_at(const char *file, int line, const char *fmt, ...) {
    if (++g_fails > FAIL_SHOWN) return;
    char msg[1024];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);
    hl_test_fail(file, line, "%s", msg);
}
#define FAILF(...) fail_at(__FILE__, __LINE__, __VA_ARGS__)

static void test_start(void) { g_fails = 0; }

/* Says how many failures were not shown. */
static void test_finish(void) {
    if (g_fails > FAIL_SHOWN) hl_test_fail(__FILE__, __LINE__, "... and %d more failures not shown", g_fails - FAIL_SHOWN);
    g_fails = 0;
}

/* Line-buffered stdout: the result lines interleave with the runner's
 * stderr in a log. */
__attribute__((constructor)) static void stdout_by_line(void) { setvbuf(stdout, NULL, _IOLBF, 0); }

/* True when there is no GPU to test; the first call prints why (or, with a
 * GPU, which one). */
static bool no_gpu(void) {
    static int state = -1; /* -1 not asked yet, 0 a GPU, 1 none */
    if (state >= 0) return state == 1;
#ifdef HL_CUDA
    state = hl_cu_device_count() > 0 ? 0 : 1;
    if (state) {
        printf("gpu: no CUDA device (%s), skipping\n", hl_cu_unavailable_reason());
    } else {
        hl_cu_info in;
        hl_err e = {0};
        if (hl_cu_device_info(0, &in, &e) == 0)
            printf("gpu: %s, compute %d.%d, %d SMs, %.1f GiB\n", in.name, in.cc_major, in.cc_minor,
                   in.n_sm, (double)in.mem_total / (1u << 30));
    }
#else
    state = 1;
    printf("gpu: no CUDA device (built without CUDA), skipping\n");
#endif
    fflush(stdout);
    return state == 1;
}

/* ---------------------------------------------------- random numbers -- */

typedef struct rng {
    uint64_t s;
} rng;

static uint64_t rng_next(rng *r) { /* xorshift64* */
    r->s ^= r->s >> 12;
    r->s ^= r->s << 25;
    r->s ^= r->s >> 27;
    return r->s * 0x2545F4914F6CDD1Dull;
}

static rng rng_seed(uint64_t seed) {
    rng r = {(seed + 1) * 0x9E3779B97F4A7C15ull};
    for (int i = 0; i < 8; i++) rng_next(&r);
    return r;
}


static double seconds(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

#ifdef HL_CUDA

static double rng_unif(rng *r) { return (double)(rng_next(r) >> 11) * 0x1p-53; }

static float rng_normal(rng *r) {
    double u = rng_unif(r) + 0x1p-60, v = rng_unif(r);
    return (float)(sqrt(-2.0 * log(u)) * cos(6.283185307179586 * v));
}

/* ------------------------------------------------ comparison helpers -- */

static bool is_poison32(const void *p) {
    uint32_t u;
    memcpy(&u, p, 4);
    return u == 0xffffffffu;
}

/* ||out - ref|| / ||ref|| over n values; infinite when an output is not
 * finite. worst: the index of the largest difference (or first non-finite). */
static double rel_err(const float *out, const double *ref, size_t n, size_t *worst, size_t *nonfinite) {
    double num = 0, den = 0, wmax = -1;
    *worst = 0;
    *nonfinite = 0;
    for (size_t i = 0; i < n; i++) {
        if (!isfinite(out[i])) {
            if (!*nonfinite) *worst = i, wmax = INFINITY;
            ++*nonfinite;
            continue;
        }
        double d = (double)out[i] - ref[i];
        num += d * d;
        den += ref[i] * ref[i];
        if (fabs(d) > wmax) wmax = fabs(d), *worst = i;
    }
    if (*nonfinite) return INFINITY;
    return den > 0 ? sqrt(num / den) : sqrt(num);
}

/* Fails unless out is within relative error tol of ref; returns the error. */
static double check_rel_at(const char *file, int line, const char *what, const float *out,
                           const double *ref, size_t n, double tol) {
    size_t w, nf;
    double err = rel_err(out, ref, n, &w, &nf);
    hl_test_checks++;
    if (!(err <= tol))
        fail_at(file, line,
                     "%s: rel err %.3g > tol %.3g; worst [%zu] got %.9g want %.9g; %zu of %zu not finite",
                     what, err, tol, w, n ? (double)out[w] : 0.0, n ? ref[w] : 0.0, nf, n);
    return err;
}
#define CHECK_REL(what, out, ref, n, tol) check_rel_at(__FILE__, __LINE__, what, out, ref, n, tol)

/* Fails unless max |out - ref| <= rel * max |ref|; returns max|diff| / max|ref|. */
static double check_maxabs_at(const char *file, int line, const char *what, const float *out,
                              const float *ref, size_t n, double rel) {
    double mref = 0, mdiff = 0;
    size_t w = 0, nf = 0;
    for (size_t i = 0; i < n; i++) {
        if (fabs((double)ref[i]) > mref) mref = fabs((double)ref[i]);
        double d = fabs((double)out[i] - (double)ref[i]);
        if (!isfinite(out[i])) {
            if (!nf) w = i;
            nf++;
        } else if (!nf && d > mdiff) {
            mdiff = d, w = i;
        }
    }
    double r = nf ? INFINITY : mdiff / (mref > 0 ? mref : 1);
    hl_test_checks++;
    if (!(r <= rel))
        fail_at(file, line,
                     "%s: max |diff| %.3g of max |ref| %.3g (%.3g > %.3g); at [%zu] got %.9g want %.9g; "
                     "%zu of %zu not finite",
                     what, mdiff, mref, r, rel, w, n ? (double)out[w] : 0.0, n ? (double)ref[w] : 0.0, nf, n);
    return r;
}
#define CHECK_MAXABS(what, out, ref, n, rel) check_maxabs_at(__FILE__, __LINE__, what, out, ref, n, rel)

/* -------------------------------------------------- executor helpers -- */

#define GT_MAX 64

/* One test's executor and the device buffers it allocated. ok turns false
 * on the first failed allocation or copy (already reported). */
typedef struct gt {
    hl_cu *cu;
    void *dev[GT_MAX];
    int n_dev;
    uint64_t base; /* hl_cu_allocated() before the executor */
    bool ok;
} gt;

static bool gt_begin(gt *g) {
    memset(g, 0, sizeof *g);
    test_start();
    if (no_gpu()) return false;
    hl_err e = {0};
    g->base = hl_cu_allocated();
    if (hl_cu_new(&g->cu, 0, &e) < 0) {
        FAILF("hl_cu_new: %s", e.msg);
        return false;
    }
    g->ok = true;
    return true;
}

/* Waits for the stream; fails (with the executor's error) and returns false
 * if anything failed. */
static bool gt_sync_at(gt *g, const char *file, int line, const char *what) {
    hl_err e = {0};
    hl_test_checks++;
    if (hl_cu_sync(g->cu, &e) == 0) return true;
    fail_at(file, line, "%s: %s", what, e.msg);
    g->ok = false;
    return false;
}
#define GT_SYNC(g, what) gt_sync_at(g, __FILE__, __LINE__, what)

/* bytes of device memory, filled with 0xff. */
static void *gt_alloc(gt *g, size_t bytes) {
    if (!g->ok) return NULL;
    if (g->n_dev == GT_MAX) {
        FAILF("test: more than %d device buffers at once", GT_MAX);
        g->ok = false;
        return NULL;
    }
    hl_err e = {0};
    void *p = hl_cu_alloc(g->cu, bytes, &e);
    if (!p) {
        FAILF("hl_cu_alloc(%zu bytes): %s", bytes, e.msg);
        g->ok = false;
        return NULL;
    }
    g->dev[g->n_dev++] = p;
    hl_cu_memset(g->cu, p, 0xff, bytes);
    return p;
}

/* Host to device on the executor's stream (ordered with the poisoning and
 * the kernels), waited for. */
static bool gt_write(gt *g, void *dev, const void *host, size_t bytes) {
    if (!g->ok || !dev) return false;
    hl_cu_copy_h2d(g->cu, dev, host, bytes);
    return GT_SYNC(g, "copy to device");
}

static void *gt_put(gt *g, const void *host, size_t bytes) {
    void *p = gt_alloc(g, bytes);
    return gt_write(g, p, host, bytes) ? p : NULL;
}

static bool gt_read(gt *g, void *host, const void *dev, size_t bytes) {
    if (!g->ok || !dev) return false;
    hl_cu_copy_d2h(g->cu, host, dev, bytes);
    return GT_SYNC(g, "kernels, then copy to host");
}

static void gt_poison(gt *g, void *dev, size_t bytes) {
    if (dev) hl_cu_memset(g->cu, dev, 0xff, bytes);
}

/* Frees the buffers allocated after mark (= g->n_dev then). */
static void gt_release(gt *g, int mark) {
    hl_err e = {0};
    hl_cu_sync(g->cu, &e);
    while (g->n_dev > mark) hl_cu_dealloc(g->dev[--g->n_dev]);
}

/* Frees everything and checks the executor gave back all it allocated. */
static void gt_end(gt *g) {
    if (!g->cu) return;
    if (g->ok) GT_SYNC(g, "end of test");
    gt_release(g, 0);
    hl_cu_free(g->cu);
    g->cu = NULL;
    uint64_t now = hl_cu_allocated();
    hl_test_checks++;
    if (now != g->base)
        FAILF("hl_cu_allocated: %llu bytes before the executor, %llu after freeing everything",
              (unsigned long long)g->base, (unsigned long long)now);
    test_finish();
}

/* ------------------------------------------------------ weight setup -- */

static const hl_dtype TYPES[] = {HL_F32,  HL_F16,  HL_BF16, HL_Q4_0, HL_Q4_1, HL_Q5_0, HL_Q5_1,
                                 HL_Q8_0, HL_Q2_K, HL_Q3_K, HL_Q4_K, HL_Q5_K, HL_Q6_K};
#define N_TYPES ((int)(sizeof TYPES / sizeof TYPES[0]))

/* A random matrix quantized on the CPU, with its reference dequantization. */
typedef struct qmat {
    hl_dtype t;
    int n_in, n_out;
    size_t row_bytes;
    uint8_t *q;
    float *deq; /* [n_out][n_in] */
} qmat;

static void qmat_free(qmat *m) {
    free(m->q);
    free(m->deq);
    memset(m, 0, sizeof *m);
}

/* Rows of normal values at per-row scales 0.02..2 (so the block scales
 * vary); row 0's first 32 values are zero (an all-zero block). */
static bool qmat_make(qmat *m, hl_dtype t, int n_in, int n_out, rng *r) {
    memset(m, 0, sizeof *m);
    m->t = t, m->n_in = n_in, m->n_out = n_out;
    m->row_bytes = hl_dtype_row_size(t, (uint64_t)n_in);
    m->q = malloc(m->row_bytes * (size_t)n_out);
    m->deq = malloc(sizeof(float) * (size_t)n_in * (size_t)n_out);
    float *src = malloc(sizeof(float) * (size_t)n_in);
    if (!m->row_bytes || !m->q || !m->deq || !src) {
        FAILF("qmat %s %dx%d: out of memory or bad shape", hl_dtype_name(t), n_out, n_in);
        free(src);
        qmat_free(m);
        return false;
    }
    for (int o = 0; o < n_out; o++) {
        float sc = (float)(0.02 + 2.0 * rng_unif(r));
        for (int i = 0; i < n_in; i++) src[i] = rng_normal(r) * sc;
        if (o == 0)
            for (int i = 0; i < 32; i++) src[i] = 0.0f;
        uint8_t *row = m->q + (size_t)o * m->row_bytes;
        hl_quantize_row(t, src, row, n_in);
        hl_dequantize_row(t, row, m->deq + (size_t)o * n_in, n_in);
    }
    free(src);
    return true;
}

static bool gt_mat(gt *g, const qmat *m, hl_cu_mat *w) {
    void *d = gt_put(g, m->q, m->row_bytes * (size_t)m->n_out);
    *w = (hl_cu_mat){d, m->t, m->n_in, m->n_out, m->row_bytes};
    return d != NULL;
}

static const char *mat_name(int t) {
    return t == HL_CU_Q4_0S ? "Q4_0S" : t == HL_CU_Q8_0S ? "Q8_0S" : t == HL_CU_Q6_KP ? "Q6_KP" : hl_dtype_name((uint32_t)t);
}

/* hl_cu_relayout, its copy freed with the test's buffers: 1 re-laid (out
 * set), 0 kept (out = raw), -1 failed (reported). */
static int gt_relayout(gt *g, const hl_cu_mat *raw, hl_cu_mat *out) {
    hl_err e = {0};
    *out = *raw;
    if (!g->ok) return -1;
    if (g->n_dev == GT_MAX) {
        FAILF("test: more than %d device buffers at once", GT_MAX);
        g->ok = false;
        return -1;
    }
    int rc = hl_cu_relayout(g->cu, raw, out, &e);
    hl_test_checks++;
    if (rc < 0) {
        FAILF("hl_cu_relayout(%s, n_in %d, n_out %d): %s", mat_name(raw->type), raw->n_in, raw->n_out, e.msg);
        g->ok = false;
        return -1;
    }
    if (rc == 0) {
        if (out->data != raw->data || out->type != raw->type || out->row_bytes != raw->row_bytes)
            FAILF("hl_cu_relayout(%s, n_in %d) returned 0 but changed the matrix", mat_name(raw->type), raw->n_in);
        return 0;
    }
    g->dev[g->n_dev++] = (void *)out->data;
    if (out->n_in != raw->n_in || out->n_out != raw->n_out || out->type == raw->type || out->data == raw->data)
        FAILF("hl_cu_relayout(%s, n_in %d, n_out %d) gave %s n_in %d n_out %d (the same data: %d)", mat_name(raw->type),
              raw->n_in, raw->n_out, mat_name(out->type), out->n_in, out->n_out, out->data == raw->data);
    return 1;
}

/* ---------------------------------------------------- int8 activations -- */

/* Whether the small-batch matmul takes int8 activations (cuda.h: the
 * HL_CU_* layouts, Q4_1, Q8_0 and Q4_K). */
static bool uses_q8(int t) {
    return t == HL_Q4_K || t == HL_Q4_1 || t == HL_Q8_0 || t == HL_CU_Q4_0S || t == HL_CU_Q8_0S || t == HL_CU_Q6_KP;
}

/* One block of 32 values in int8 as the kernels make it (llama.cpp's Q8_1
 * rule, in float): d = amax / 127, q = round-to-even(x * (127 / amax)),
 * ds = (d, d * sum(q)); *id = 127 / amax. */
static void q8_block(const float *x, int8_t *q, float *ds, float *id) {
    float amax = 0.0f;
    for (int i = 0; i < 32; i++) amax = fmaxf(amax, fabsf(x[i]));
    const float d = amax / 127.0f;
    *id = amax > 0.0f ? 127.0f / amax : 0.0f;
    int sum = 0;
    for (int i = 0; i < 32; i++) {
        q[i] = (int8_t)lrintf(x[i] * *id);
        sum += q[i];
    }
    ds[0] = d;
    ds[1] = d * (float)sum;
}

/* Rows of n values (n % 32 == 0) after the int8 round trip, d * q. */
static void q8_roundtrip(const float *x, int n_tok, int n, double *out) {
    for (int t = 0; t < n_tok; t++)
        for (int b = 0; b < n / 32; b++) {
            int8_t q[32];
            float ds[2], id;
            const size_t o = (size_t)t * n + 32 * (size_t)b;
            q8_block(x + o, q, ds, &id);
            for (int i = 0; i < 32; i++) out[o + i] = (double)ds[0] * q[i];
        }
}

/* Checks a kernel's int8 form (q, ds: n values in contiguous blocks of 32)
 * of the values x against quantizing x here. A quant may differ by one
 * where x * 127 / amax is within 1e-4 of a rounding tie. */
static void check_q8_at(const char *file, int line, const char *what, const float *x, const int8_t *q,
                        const float *ds, size_t n) {
    size_t bad = 0, first = 0;
    int got0 = 0, want0 = 0, qi0 = 0;
    double gd = 0, wd = 0, gs = 0, wsum = 0;
    for (size_t b = 0; b < n / 32; b++) {
        int8_t rq[32];
        float rds[2], id;
        q8_block(x + 32 * b, rq, rds, &id);
        int sum = 0;
        bool ok = ds[2 * b] == rds[0];
        for (int i = 0; i < 32; i++) {
            const int qi = q[32 * b + i];
            sum += qi;
            if (qi != rq[i]) {
                const float v = x[32 * b + i] * id;
                ok &= abs(qi - rq[i]) == 1 && fabsf(fabsf(v - truncf(v)) - 0.5f) < 1e-4f;
            }
        }
        const double ws = (double)rds[0] * sum;
        ok &= fabs(ds[2 * b + 1] - ws) <= 1e-6 * fabs(ws) + 1e-30;
        if (!ok && !bad++) {
            first = b, gd = ds[2 * b], wd = rds[0], gs = ds[2 * b + 1], wsum = ws;
            for (int i = 0; i < 32; i++)
                if (q[32 * b + i] != rq[i] || i == 31) {
                    got0 = q[32 * b + i], want0 = rq[i], qi0 = i;
                    break;
                }
        }
    }
    hl_test_checks++;
    if (bad)
        fail_at(file, line,
                "%s: int8 form: %zu of %zu blocks differ from quantizing the values (first: block %zu: quant %d got "
                "%d want %d (the first that differs, else the last), d %.9g want %.9g, d * sum %.9g want %.9g)",
                what, bad, n / 32, first, qi0, got0, want0, gd, wd, gs, wsum);
}
#define CHECK_Q8(what, x, q, ds, n) check_q8_at(__FILE__, __LINE__, what, x, q, ds, n)

/* y[t][o] = sum_i W[o][i] x[t][i] in double, t < n_tok. */
static void ref_matmul(const float *w, int n_in, int n_out, const double *x, int n_tok, double *y) {
    for (int t = 0; t < n_tok; t++)
        for (int o = 0; o < n_out; o++) {
            const float *wr = w + (size_t)o * n_in;
            const double *xr = x + (size_t)t * n_in;
            double s = 0;
            for (int i = 0; i < n_in; i++) s += wr[i] * xr[i];
            y[(size_t)t * n_out + o] = s;
        }
}

/* -------------------------------------------------------------- dequant -- */

/* Dequantizes w (raw or re-laid from m) on the GPU against m's reference. */
static double dequant_check(gt *g, const qmat *m, const hl_cu_mat *w, float *out, float *out_d) {
    const size_t n = (size_t)m->n_in * m->n_out;
    gt_poison(g, out_d, sizeof(float) * n);
    hl_cu_dequant(g->cu, w, out_d);
    if (!gt_read(g, out, out_d, sizeof(float) * n)) return 0;
    char what[96];
    snprintf(what, sizeof what, "dequant %s (of %s) n_in %d n_out %d", mat_name(w->type), hl_dtype_name(m->t),
             m->n_in, m->n_out);
    return CHECK_MAXABS(what, out, m->deq, n, 1e-6);
}

TEST(cuda_dequant) {
    gt g;
    if (!gt_begin(&g)) return;
    /* what hl_cu_supports promises, against the shapes each type allows */
    for (int ti = 0; ti < N_TYPES; ti++) {
        CHECK(hl_cu_supports(TYPES[ti], 256));
        CHECK(hl_cu_supports(TYPES[ti], 4096));
        CHECK(!hl_cu_supports(TYPES[ti], 0));
        CHECK(!hl_cu_supports(TYPES[ti], 48));
        CHECK_EQ_INT(hl_cu_supports(TYPES[ti], 576), hl_dtype_row_size(TYPES[ti], 576) != 0);
    }
    CHECK(!hl_cu_supports(HL_IQ4_NL, 256));
    CHECK(!hl_cu_supports(HL_Q8_K, 256));

    static const int N_IN[] = {256, 512, 576, 2304, 4096}, N_OUT[] = {1, 7, 64, 300};
    rng r = rng_seed(101);
    int cases = 0, relaid = 0;
    double worst = 0;
    for (int ti = 0; ti < N_TYPES && g.ok; ti++) {
        hl_dtype t = TYPES[ti];
        for (int a = 0; a < 5 && g.ok; a++) {
            for (int b = 0; b < 4 && g.ok; b++) {
                int n_in = N_IN[a], n_out = N_OUT[b];
                if (!hl_dtype_row_size(t, (uint64_t)n_in)) continue; /* K-quants: 256s only */
                qmat m;
                if (!qmat_make(&m, t, n_in, n_out, &r)) continue;
                int mark = g.n_dev;
                size_t n = (size_t)n_in * (size_t)n_out;
                float *out = malloc(sizeof(float) * n);
                hl_cu_mat w, wr;
                float *out_d = gt_mat(&g, &m, &w) ? gt_alloc(&g, sizeof(float) * n) : NULL;
                if (out && out_d) {
                    double e = dequant_check(&g, &m, &w, out, out_d);
                    if (e > worst) worst = e;
                    cases++;
                    if (gt_relayout(&g, &w, &wr) == 1) { /* the device layout decodes the same */
                        e = dequant_check(&g, &m, &wr, out, out_d);
                        if (e > worst) worst = e;
                        relaid++;
                    }
                }
                free(out);
                gt_release(&g, mark);
                qmat_free(&m);
            }
        }
    }
    printf("cuda_dequant: %d matrices (%d also re-laid), worst max|diff|/max|ref| %.3g (tol 1e-6)\n", cases, relaid,
           worst);
    gt_end(&g);
}

/* --------------------------------------------------------------- matmul -- */

#define MM_MAX_TOK 128
#define MM_PAD_X 64 /* strided rows stay 16-byte aligned and whole blocks of 32 (int8 path) */
#define MM_PAD_Y 5

typedef struct mm_worst {
    double err[4]; /* fused f32; fused int8 vs its int8 reference; cuBLAS; fused int8 vs the f32 reference */
    int cases;
} mm_worst;

/* Buffers of one matrix's runs. Host x: [MAX_TOK][n_in] (xs strided, its
 * padding NaN); ref / refq: W . x and W . (x's int8 round trip),
 * [MAX_TOK][n_out]. */
typedef struct mm_case {
    const qmat *m;
    int ldxs, ldys;
    size_t ny;
    float *x, *y, *y2, *got, *xds;
    double *ref, *refq, *refp;
    int8_t *xq;
    float *x_d, *xs_d, *y_d, *y2_d, *xds_d;
    int8_t *xq_d;
} mm_case;

/* hl_cu_matmul_q8 given the int8 form (hl_cu_quantize_q8 of the same x)
 * must equal the run that quantized x itself (y), bit for bit. */
static void matmul_q8_external(gt *g, mm_case *c, const hl_cu_mat *w, const float *x_d, int ldx, int nt, int ldy,
                               const char *what) {
    const int n_in = c->m->n_in;
    gt_poison(g, c->xq_d, (size_t)8 * c->ldxs);
    gt_poison(g, c->y2_d, sizeof(float) * c->ny);
    hl_cu_quantize_q8(g->cu, x_d, ldx, nt, n_in, c->xq_d, c->xds_d);
    hl_cu_matmul_q8(g->cu, w, x_d, ldx, c->xq_d, c->xds_d, nt, c->y2_d, ldy);
    if (!gt_read(g, c->y2, c->y2_d, sizeof(float) * c->ny) || !gt_read(g, c->xq, c->xq_d, (size_t)8 * c->ldxs) ||
        !gt_read(g, c->xds, c->xds_d, sizeof(float) * 2 * (8 * (size_t)c->ldxs / 32)))
        return;
    char q[200];
    for (int t = 0; t < nt; t++) {
        snprintf(q, sizeof q, "hl_cu_quantize_q8 n %d ldx %d, row %d", n_in, ldx, t);
        CHECK_Q8(q, c->x + (size_t)t * n_in, c->xq + (size_t)t * ldx, c->xds + 2 * ((size_t)t * ldx / 32),
                 (size_t)n_in);
    }
    hl_test_checks++;
    if (memcmp(c->y, c->y2, sizeof(float) * c->ny))
        FAILF("%s: hl_cu_matmul_q8 given hl_cu_quantize_q8's int8 form differs from quantizing inside", what);
}

/* Every path and token count of one device matrix. */
static void matmul_mat(gt *g, mm_case *c, const hl_cu_mat *w, mm_worst *W) {
    static const struct {
        int path, n_tok; /* path 2: hl_cu_matmul's own choice */
    } CALLS[] = {{0, 1}, {0, 2}, {0, 3}, {0, 5},  {0, 8},   {1, 2},
                 {1, 9}, {1, 33}, {1, 128}, {2, 4}, {2, 40}, {2, 1}};
    const int n_in = c->m->n_in, n_out = c->m->n_out;
    for (size_t k = 0; k < sizeof CALLS / sizeof CALLS[0] && g->ok; k++) {
        const int path = CALLS[k].path, nt = CALLS[k].n_tok;
        const bool strided = k % 2 == 1, fused = path == 0 || (path == 2 && nt <= 8);
        const bool q8 = fused && uses_q8(w->type);
        const int ldx = strided ? c->ldxs : n_in, ldy = strided ? c->ldys : n_out;
        const float *xd = strided ? c->xs_d : c->x_d;
        gt_poison(g, c->y_d, sizeof(float) * c->ny);
        if (path == 2) hl_cu_matmul(g->cu, w, xd, ldx, nt, c->y_d, ldy);
        else hl_cu_matmul_path(g->cu, w, xd, ldx, nt, c->y_d, ldy, path);
        char what[160];
        snprintf(what, sizeof what, "matmul %s (of %s) %s n_in %d n_out %d n_tok %d ldx %d ldy %d", mat_name(w->type),
                 hl_dtype_name(c->m->t), path == 0 ? "fused" : path == 1 ? "cuBLAS" : "auto", n_in, n_out, nt, ldx, ldy);
        if (!gt_read(g, c->y, c->y_d, sizeof(float) * c->ny)) {
            FAILF("(in %s)", what);
            break;
        }
        size_t touched = 0, first = 0;
        for (size_t i = 0; i < c->ny; i++) {
            const size_t tk = i / (size_t)ldy, o = i % (size_t)ldy;
            if (tk < (size_t)nt && o < (size_t)n_out) {
                c->got[tk * n_out + o] = c->y[i];
                c->refp[tk * n_out + o] = (q8 ? c->refq : c->ref)[tk * n_out + o];
            } else if (!is_poison32(&c->y[i]) && !touched++) {
                first = i;
            }
        }
        hl_test_checks++;
        if (touched)
            FAILF("%s: %zu elements outside the output were written (first: element %zu = row %zu col %zu)", what,
                  touched, first, first / (size_t)ldy, first % (size_t)ldy);
        const size_t n = (size_t)nt * n_out;
        double err = CHECK_REL(what, c->got, c->refp, n, fused ? 1e-5 : 5e-3);
        const int slot = !fused ? 2 : q8 ? 1 : 0;
        if (err > W->err[slot]) W->err[slot] = err;
        if (q8 && n >= 50) { /* and the int8 error itself is what it should be (a norm over enough values) */
            char w2[200];
            snprintf(w2, sizeof w2, "%s, against f32 activations", what);
            err = CHECK_REL(w2, c->got, c->ref, n, 2e-2);
            if (err > W->err[3]) W->err[3] = err;
        }
        if (q8 && path == 0 && nt == 5) matmul_q8_external(g, c, w, xd, ldx, nt, ldy, what);
        W->cases++;
    }
}

/* One matrix, raw and (if its type has one) in its device layout. */
static void matmul_case(gt *g, hl_dtype t, int n_in, int n_out, rng *r, mm_worst *W) {
    qmat m;
    if (!qmat_make(&m, t, n_in, n_out, r)) return;
    int mark = g->n_dev;
    mm_case c = {.m = &m, .ldxs = n_in + MM_PAD_X, .ldys = n_out + MM_PAD_Y};
    c.ny = (size_t)MM_MAX_TOK * c.ldys;
    const size_t nx = (size_t)MM_MAX_TOK * n_in, nxs = (size_t)MM_MAX_TOK * c.ldxs, nr = (size_t)MM_MAX_TOK * n_out;
    float *xs = malloc(sizeof(float) * nxs);
    double *xd = malloc(sizeof(double) * nx);
    c.x = malloc(sizeof(float) * nx), c.y = malloc(sizeof(float) * c.ny), c.y2 = malloc(sizeof(float) * c.ny);
    c.got = malloc(sizeof(float) * nr), c.ref = malloc(sizeof(double) * nr), c.refq = malloc(sizeof(double) * nr);
    c.refp = malloc(sizeof(double) * nr), c.xq = malloc((size_t)8 * c.ldxs);
    c.xds = malloc(sizeof(float) * 2 * (8 * (size_t)c.ldxs / 32));
    hl_err e = {0};
    if (!xs || !xd || !c.x || !c.y || !c.y2 || !c.got || !c.ref || !c.refq || !c.refp || !c.xq || !c.xds) {
        FAILF("matmul: out of memory");
        goto out;
    }
    for (int tk = 0; tk < MM_MAX_TOK; tk++)
        for (int i = 0; i < c.ldxs; i++) {
            float v = i < n_in ? rng_normal(r) : nanf(""); /* the padding must never be read */
            if (i < n_in) c.x[(size_t)tk * n_in + i] = v;
            xs[(size_t)tk * c.ldxs + i] = v;
        }
    for (size_t i = 0; i < nx; i++) xd[i] = c.x[i];
    ref_matmul(m.deq, n_in, n_out, xd, MM_MAX_TOK, c.ref);
    q8_roundtrip(c.x, 8, n_in, xd); /* the int8 path runs at most 8 tokens */
    ref_matmul(m.deq, n_in, n_out, xd, 8, c.refq);
    hl_cu_mat w, wr;
    if (!gt_mat(g, &m, &w)) goto out;
    c.x_d = gt_put(g, c.x, sizeof(float) * nx);
    c.xs_d = gt_put(g, xs, sizeof(float) * nxs);
    c.y_d = gt_alloc(g, sizeof(float) * c.ny);
    c.y2_d = gt_alloc(g, sizeof(float) * c.ny);
    c.xq_d = gt_alloc(g, (size_t)8 * c.ldxs);
    c.xds_d = gt_alloc(g, sizeof(float) * 2 * (8 * (size_t)c.ldxs / 32));
    if (!g->ok) goto out;
    /* max_in covers the strided rows: the int8 scratch is indexed by ldx */
    if (hl_cu_reserve(g->cu, (size_t)n_in * n_out, MM_MAX_TOK, c.ldxs, &e) < 0) {
        FAILF("hl_cu_reserve: %s", e.msg);
        goto out;
    }
    matmul_mat(g, &c, &w, W);
    if (g->ok && gt_relayout(g, &w, &wr) == 1) matmul_mat(g, &c, &wr, W);
out:
    gt_release(g, mark);
    qmat_free(&m);
    free(xs), free(xd), free(c.x), free(c.y), free(c.y2), free(c.got), free(c.ref), free(c.refq), free(c.refp);
    free(c.xq), free(c.xds);
}

TEST(cuda_matmul) {
    gt g;
    if (!gt_begin(&g)) return;
    static const int SHAPES[][2] = {{512, 7}, {2304, 300}, {4096, 1}, {576, 64}};
    rng r = rng_seed(202);
    mm_worst W = {{0}, 0};
    for (int ti = 0; ti < N_TYPES && g.ok; ti++)
        for (int s = 0; s < 4 && g.ok; s++)
            if (hl_dtype_row_size(TYPES[ti], (uint64_t)SHAPES[s][0]))
                matmul_case(&g, TYPES[ti], SHAPES[s][0], SHAPES[s][1], &r, &W);
    printf("cuda_matmul: %d calls, worst rel err: fused f32 %.3g (tol 1e-5), fused int8 %.3g (tol 1e-5 against int8 "
           "inputs; %.3g against f32, tol 2e-2), cuBLAS %.3g (tol 5e-3)\n",
           W.cases, W.err[0], W.err[1], W.err[3], W.err[2]);
    gt_end(&g);
}

/* ------------------------------------------------------------- get_rows -- */

static void get_rows_check(gt *g, const qmat *m, const hl_cu_mat *w, const int32_t *ids_d, const int32_t *ids,
                           int n, float scale, float *out_d, float *out, float *got, float *ref, double *worst) {
    const int n_in = m->n_in, ld = n_in + 3;
    const size_t nb = (size_t)(n + 1) * ld; /* a spare row: must stay poisoned */
    gt_poison(g, out_d, sizeof(float) * nb);
    hl_cu_get_rows(g->cu, w, ids_d, n, out_d, ld, scale);
    if (!gt_read(g, out, out_d, sizeof(float) * nb)) return;
    size_t touched = 0;
    for (int i = 0; i <= n; i++)
        for (int j = 0; j < ld; j++) {
            const float v = out[(size_t)i * ld + j];
            if (i < n && j < n_in) {
                got[(size_t)i * n_in + j] = v;
                ref[(size_t)i * n_in + j] = m->deq[(size_t)ids[i] * n_in + j] * scale;
            } else {
                touched += !is_poison32(&v);
            }
        }
    char what[96];
    snprintf(what, sizeof what, "get_rows %s (of %s) n_in %d ld %d scale %g", mat_name(w->type), hl_dtype_name(m->t),
             n_in, ld, (double)scale);
    hl_test_checks++;
    if (touched) FAILF("%s: %zu elements outside the rows were written", what, touched);
    double e = CHECK_MAXABS(what, got, ref, (size_t)n * n_in, 1e-6);
    if (e > *worst) *worst = e;
}

TEST(cuda_get_rows) {
    gt g;
    if (!gt_begin(&g)) return;
    rng r = rng_seed(303);
    static const int32_t IDS[] = {0, 299, 17, 17, 150, 3};
    const int n = 6, n_out = 300;
    const float scale = 0.7f;
    double worst = 0;
    int cases = 0;
    for (int ti = 0; ti < N_TYPES && g.ok; ti++) {
        for (int n_in = 512; n_in <= 576 && g.ok; n_in += 64) {
            hl_dtype t = TYPES[ti];
            if (!hl_dtype_row_size(t, (uint64_t)n_in)) continue;
            qmat m;
            if (!qmat_make(&m, t, n_in, n_out, &r)) continue;
            int mark = g.n_dev;
            const size_t nb = (size_t)(n + 1) * (n_in + 3);
            float *out = malloc(sizeof(float) * nb), *got = malloc(sizeof(float) * (size_t)n * n_in);
            float *ref = malloc(sizeof(float) * (size_t)n * n_in);
            hl_cu_mat w, wr;
            int32_t *ids_d = gt_mat(&g, &m, &w) ? gt_put(&g, IDS, sizeof IDS) : NULL;
            float *out_d = gt_alloc(&g, sizeof(float) * nb);
            if (out && got && ref && ids_d && out_d) {
                get_rows_check(&g, &m, &w, ids_d, IDS, n, scale, out_d, out, got, ref, &worst);
                cases++;
                if (gt_relayout(&g, &w, &wr) == 1) {
                    get_rows_check(&g, &m, &wr, ids_d, IDS, n, scale, out_d, out, got, ref, &worst);
                    cases++;
                }
            }
            free(out), free(got), free(ref);
            gt_release(&g, mark);
            qmat_free(&m);
        }
    }
    printf("cuda_get_rows: %d cases, worst max|diff|/max|ref| %.3g (tol 1e-6)\n", cases, worst);
    gt_end(&g);
}

/* ----------------------------------------------------------- resid_norm -- */

/* The contract of hl_cu_resid_norm in double precision. x: [n_x][n]
 * updated in place; out: [n_tok][n]. */
static void ref_resid_norm(double *x, const float *delta, const float *post, const float *w, double *out,
                           int n_tok, int n, double eps, const int32_t *rows) {
    if (delta)
        for (int t = 0; t < n_tok; t++) {
            const float *d = delta + (size_t)t * n;
            double r = 1.0;
            if (post) {
                double ss = 0;
                for (int i = 0; i < n; i++) ss += (double)d[i] * d[i];
                r = 1.0 / sqrt(ss / n + eps);
            }
            for (int i = 0; i < n; i++) x[(size_t)t * n + i] += post ? d[i] * r * post[i] : d[i];
        }
    if (w)
        for (int t = 0; t < n_tok; t++) {
            const double *xr = x + (size_t)(rows ? rows[t] : t) * n;
            double ss = 0;
            for (int i = 0; i < n; i++) ss += xr[i] * xr[i];
            double r = 1.0 / sqrt(ss / n + eps);
            for (int i = 0; i < n; i++) out[(size_t)t * n + i] = xr[i] * r * w[i];
        }
}

TEST(cuda_resid_norm) {
    gt g;
    if (!gt_begin(&g)) return;
    rng r = rng_seed(404);
    static const int NS[] = {576, 2048, 4096};
    static const int32_t ROWS[] = {6, 0, 3};
    const int n_x = 7, n_tok = 5, n_rows = 3;
    const float eps = 1e-5f;
    double worst = 0;
    int cases = 0;
    for (int ni = 0; ni < 3 && g.ok; ni++) {
        const int n = NS[ni];
        const size_t nx = (size_t)n_x * n;
        int mark = g.n_dev;
        float *x0 = malloc(sizeof(float) * nx), *delta = malloc(sizeof(float) * nx);
        float *post = malloc(sizeof(float) * n), *w = malloc(sizeof(float) * n);
        float *xg = malloc(sizeof(float) * nx), *og = malloc(sizeof(float) * nx);
        double *xr = malloc(sizeof(double) * nx), *orf = malloc(sizeof(double) * nx);
        int8_t *q8 = malloc(nx);
        float *q8ds = malloc(sizeof(float) * nx / 16);
        if (!x0 || !delta || !post || !w || !xg || !og || !xr || !orf || !q8 || !q8ds) {
            FAILF("resid_norm: out of memory");
            goto next;
        }
        for (size_t i = 0; i < nx; i++) x0[i] = 2.0f * rng_normal(&r), delta[i] = 0.5f * rng_normal(&r);
        for (int i = 0; i < n; i++) post[i] = 1.0f + 0.3f * rng_normal(&r), w[i] = 1.0f + 0.3f * rng_normal(&r);
        float *x_d = gt_alloc(&g, sizeof(float) * nx), *d_d = gt_alloc(&g, sizeof(float) * nx);
        float *o_d = gt_alloc(&g, sizeof(float) * nx);
        float *post_d = gt_put(&g, post, sizeof(float) * n), *w_d = gt_put(&g, w, sizeof(float) * n);
        int32_t *rows_d = gt_put(&g, ROWS, sizeof ROWS);
        int8_t *q8_d = gt_alloc(&g, nx);
        float *q8ds_d = gt_alloc(&g, sizeof(float) * nx / 16);
        if (!g.ok) goto next;
        /* bits 0..3: delta, post, w, rows; 16, 17: out aliasing delta (without
         * / with post). out's int8 form too with w and without post. */
        for (int combo = 0; combo < 18 && g.ok; combo++) {
            const bool alias = combo >= 16;
            const bool has_d = alias || (combo & 1), has_p = alias ? combo == 17 : (combo & 2) != 0;
            const bool has_w = alias || (combo & 4), has_rows = !alias && (combo & 8);
            if (has_rows && has_d) continue; /* the contract excludes it */
            const int nt = has_rows ? n_rows : n_tok;
            const bool with_q8 = has_w && (alias || !has_p);
            float *out_d = alias ? d_d : o_d;
            gt_write(&g, x_d, x0, sizeof(float) * nx);
            gt_write(&g, d_d, delta, sizeof(float) * nx);
            gt_poison(&g, o_d, sizeof(float) * nx);
            gt_poison(&g, q8_d, nx);
            hl_cu_resid_norm(g.cu, x_d, has_d ? d_d : NULL, has_p ? post_d : NULL, has_w ? w_d : NULL, out_d,
                             nt, n, eps, has_rows ? rows_d : NULL, with_q8 ? q8_d : NULL, with_q8 ? q8ds_d : NULL);
            if (!gt_read(&g, xg, x_d, sizeof(float) * nx) || !gt_read(&g, og, out_d, sizeof(float) * nx) ||
                !gt_read(&g, q8, q8_d, nx) || !gt_read(&g, q8ds, q8ds_d, sizeof(float) * nx / 16))
                break;
            for (size_t i = 0; i < nx; i++) xr[i] = x0[i];
            ref_resid_norm(xr, has_d ? delta : NULL, has_p ? post : NULL, has_w ? w : NULL, orf, nt, n, eps,
                           has_rows ? ROWS : NULL);
            char what[128];
            snprintf(what, sizeof what, "resid_norm n %d n_tok %d%s%s%s%s%s%s", n, nt, has_d ? " delta" : "",
                     has_p ? " post" : "", has_w ? " w" : "", has_rows ? " rows" : "", alias ? " out=delta" : "",
                     with_q8 ? " q8" : "");
            char wx[160];
            snprintf(wx, sizeof wx, "%s: x", what);
            double e = CHECK_REL(wx, xg, xr, nx, 1e-5);
            if (e > worst) worst = e;
            if (has_w) {
                snprintf(wx, sizeof wx, "%s: out", what);
                e = CHECK_REL(wx, og, orf, (size_t)nt * n, 1e-5);
                if (e > worst) worst = e;
            }
            if (with_q8) CHECK_Q8(what, og, q8, q8ds, (size_t)nt * n);
            size_t q8_touched = 0; /* the int8 form only where asked for, and only n_tok rows */
            for (size_t i = with_q8 ? (size_t)nt * n : 0; i < nx; i++) q8_touched += q8[i] != -1;
            hl_test_checks++;
            if (q8_touched) FAILF("%s: %zu int8 values written that should not be", what, q8_touched);
            if (!alias) { /* rows of out past n_tok (all of them without w) keep the poison */
                size_t touched = 0;
                for (size_t i = has_w ? (size_t)nt * n : 0; i < nx; i++) touched += !is_poison32(&og[i]);
                hl_test_checks++;
                if (touched) FAILF("%s: %zu elements of out that it should not write were written", what, touched);
            }
            cases++;
        }
    next:
        gt_release(&g, mark);
        free(x0), free(delta), free(post), free(w), free(xg), free(og), free(xr), free(orf), free(q8), free(q8ds);
    }
    printf("cuda_resid_norm: %d cases, worst rel err %.3g (tol 1e-5)\n", cases, worst);
    gt_end(&g);
}

/* hl_cu_matmul_act against the two launches it stands for
 * (hl_cu_matmul_q8 into the interleaved gate|up, then hl_cu_act_mul) on
 * each int8 layout and an f32-path type: 1 to 8 tokens (Q4_K's one-launch
 * kernel up to 2), silu and gelu, one block of 32 outputs and many, rows
 * short and long. */
TEST(cuda_matmul_act) {
    gt g;
    if (!gt_begin(&g)) return;
    rng r = rng_seed(909);
    static const struct {
        hl_dtype t;
        int n_in, F;
    } MATS[] = {{HL_Q4_0, 2048, 576}, {HL_Q8_0, 512, 1024}, {HL_Q6_K, 1024, 256}, {HL_Q4_K, 768, 1536},
                {HL_Q4_0, 256, 32},   {HL_Q4_0, 8192, 64}, {HL_Q6_K, 4096, 96},  {HL_Q5_0, 256, 64}};
    static const int NT[] = {1, 2, 3, 4, 5, 8};
    const int MAXT = 8;
    double worst = 0;
    int cases = 0;
    for (size_t mi = 0; mi < sizeof MATS / sizeof MATS[0] && g.ok; mi++) {
        const int n_in = MATS[mi].n_in, F = MATS[mi].F;
        const size_t nx = (size_t)MAXT * n_in, ny = (size_t)MAXT * F;
        int mark = g.n_dev;
        qmat m;
        if (!qmat_make(&m, MATS[mi].t, n_in, 2 * F, &r)) break;
        float *x = malloc(sizeof(float) * nx), *o1 = malloc(sizeof(float) * ny), *o2 = malloc(sizeof(float) * ny);
        float *ds1 = malloc(sizeof(float) * ny / 16);
        int8_t *q1 = malloc(ny);
        double *ref = malloc(sizeof(double) * ny);
        if (!x || !o1 || !o2 || !ds1 || !q1 || !ref) {
            FAILF("matmul_act: out of memory");
            goto next;
        }
        for (size_t i = 0; i < nx; i++) x[i] = rng_normal(&r);
        hl_cu_mat raw, w;
        if (!gt_mat(&g, &m, &raw) || gt_relayout(&g, &raw, &w) < 0) goto next;
        hl_err e = {0};
        if (hl_cu_reserve(g.cu, (size_t)n_in * 2 * F, MAXT, n_in, &e) < 0) {
            FAILF("hl_cu_reserve: %s", e.msg);
            goto next;
        }
        float *x_d = gt_put(&g, x, sizeof(float) * nx), *gu_d = gt_alloc(&g, sizeof(float) * 2 * ny);
        float *o1_d = gt_alloc(&g, sizeof(float) * ny), *o2_d = gt_alloc(&g, sizeof(float) * ny);
        int8_t *xq_d = gt_alloc(&g, nx), *q1_d = gt_alloc(&g, ny), *q2_d = gt_alloc(&g, ny);
        float *xds_d = gt_alloc(&g, sizeof(float) * nx / 16), *ds1_d = gt_alloc(&g, sizeof(float) * ny / 16);
        float *ds2_d = gt_alloc(&g, sizeof(float) * ny / 16);
        if (!g.ok) goto next;
        for (size_t ti = 0; ti < sizeof NT / sizeof NT[0] && g.ok; ti++)
            for (int gelu = 0; gelu < 2 && g.ok; gelu++) {
                const int nt = NT[ti];
                char what[160];
                snprintf(what, sizeof what, "matmul_act %s 2x%dx%d n_tok %d %s", mat_name(w.type), F, n_in, nt,
                         gelu ? "gelu" : "silu");
                gt_poison(&g, o1_d, sizeof(float) * ny);
                gt_poison(&g, q1_d, ny);
                hl_cu_quantize_q8(g.cu, x_d, n_in, nt, n_in, xq_d, xds_d);
                hl_cu_matmul_act(g.cu, &w, x_d, n_in, xq_d, xds_d, nt, gelu, gu_d, o1_d, q1_d, ds1_d);
                hl_cu_matmul_q8(g.cu, &w, x_d, n_in, xq_d, xds_d, nt, gu_d, 2 * F);
                hl_cu_act_mul(g.cu, gu_d, nt, F, gelu, true, o2_d, q2_d, ds2_d);
                if (!gt_read(&g, o1, o1_d, sizeof(float) * ny) || !gt_read(&g, o2, o2_d, sizeof(float) * ny) ||
                    !gt_read(&g, q1, q1_d, ny) || !gt_read(&g, ds1, ds1_d, sizeof(float) * ny / 16))
                    break;
                const size_t nv = (size_t)nt * F;
                for (size_t i = 0; i < nv; i++) ref[i] = o2[i];
                const double err = CHECK_REL(what, o1, ref, nv, 1e-5);
                if (err > worst) worst = err;
                CHECK_Q8(what, o1, q1, ds1, nv);
                size_t touched = 0;
                for (size_t i = nv; i < ny; i++) touched += !is_poison32(&o1[i]);
                hl_test_checks++;
                if (touched) FAILF("%s: %zu values past n_tok rows written", what, touched);
                cases++;
            }
    next:
        gt_release(&g, mark);
        qmat_free(&m);
        free(x), free(o1), free(o2), free(ds1), free(q1), free(ref);
    }
    printf("cuda_matmul_act: %d cases, worst rel err vs matmul + act_mul %.3g (tol 1e-5)\n", cases, worst);
    gt_end(&g);
}

/* ---------------------------------------------------- qkv + attention -- */

#define ATT_SLOTS 4 /* sequences in the cache; the tests use 0, 2 and 3 */
static const int ATT_SEQ[3] = {0, 2, 3};

typedef struct attn_cfg {
    int n_head, n_kv, hd, n_rot, window, n_ctx;
    bool neox, bias, norms, ff;
    float rope_base, rope_scale;
    int lens[3]; /* prefill lengths of the three sequences */
} attn_cfg;

typedef struct attn_worst {
    double q, kv, att, iso;
    int cases;
} attn_worst;

/* Reference state: the cache as the contract defines it, exact and rounded
 * to f16, [slot][kv_head][n_ctx][hd]. */
typedef struct attn_ref {
    double *k, *v, *k16, *v16;
    bool *written; /* [slot][n_ctx] */
} attn_ref;

/* Device buffers and the host copies of the per-layer vectors. */
typedef struct attn_dev {
    float *qkv, *out, *out2, *out3, *part, *bq, *bk, *bv, *qn, *kn, *ff, *q8ds;
    int8_t *q8;
    int32_t *pos, *seq;
    int *counters; /* attention's: zero between calls */
    uint16_t *kc, *vc, *kc2, *vc2; /* kc2, vc2: the fused form's own cache */
    float *h_bq, *h_bk, *h_bv, *h_qn, *h_kn, *h_ff;
} attn_dev;

static size_t cache_idx(const attn_cfg *c, int slot, int h, int p) {
    return (((size_t)slot * c->n_kv + h) * c->n_ctx + p) * c->hd;
}

/* Bias, optional RMS norm, optional rope of one head, in place. */
static void ref_head(const attn_cfg *c, double *v, const float *bias, const float *nw, double eps,
                     const float *ff, int pos, bool rope) {
    const int hd = c->hd;
    if (bias)
        for (int d = 0; d < hd; d++) v[d] += bias[d];
    if (nw) {
        double ss = 0;
        for (int d = 0; d < hd; d++) ss += v[d] * v[d];
        double r = 1.0 / sqrt(ss / hd + eps);
        for (int d = 0; d < hd; d++) v[d] *= r * nw[d];
    }
    if (!rope) return;
    const int half = c->n_rot / 2;
    for (int i = 0; i < half; i++) {
        double th = pos * pow((double)c->rope_base, -2.0 * i / c->n_rot);
        if (ff) th /= ff[i];
        th *= c->rope_scale;
        const int a = c->neox ? i : 2 * i, b = c->neox ? i + half : 2 * i + 1;
        const double x0 = v[a], x1 = v[b];
        v[a] = x0 * cos(th) - x1 * sin(th);
        v[b] = x0 * sin(th) + x1 * cos(th);
    }
}

/* Causal attention of n tokens (q: [n][n_head * hd]) over the given cache
 * (window from the config); out: [n][n_head * hd]. */
static void ref_attention(const attn_cfg *c, const double *q, const double *kc, const double *vc,
                          const int32_t *pos, const int32_t *seq, int n, double scale, double *out) {
    const int hd = c->hd, group = c->n_head / c->n_kv;
    double *sc = malloc(sizeof(double) * (size_t)c->n_ctx);
    if (!sc) return;
    for (int t = 0; t < n; t++)
        for (int h = 0; h < c->n_head; h++) {
            const double *qh = q + ((size_t)t * c->n_head + h) * hd;
            double *o = out + ((size_t)t * c->n_head + h) * hd;
            const int p1 = pos[t], p0 = c->window > 0 && p1 - c->window + 1 > 0 ? p1 - c->window + 1 : 0;
            double mx = -INFINITY, sum = 0;
            for (int p = p0; p <= p1; p++) {
                const double *k = kc + cache_idx(c, seq[t], h / group, p);
                double s = 0;
                for (int d = 0; d < hd; d++) s += qh[d] * k[d];
                sc[p] = s * scale;
                if (sc[p] > mx) mx = sc[p];
            }
            for (int p = p0; p <= p1; p++) sum += sc[p] = exp(sc[p] - mx);
            for (int d = 0; d < hd; d++) o[d] = 0;
            for (int p = p0; p <= p1; p++) {
                const double *v = vc + cache_idx(c, seq[t], h / group, p);
                for (int d = 0; d < hd; d++) o[d] += sc[p] / sum * v[d];
            }
        }
    free(sc);
}

/* The cache after a batch: written rows within an f16 ulp of the reference (plus the
 * q tolerance times the row's largest value: rope in float moves small
 * elements by more than their ulp), the rest poisoned. */
static void check_cache(const attn_cfg *c, const attn_ref *R, const uint16_t *kc, const uint16_t *vc,
                        double tol_q, const char *label, const char *form, attn_worst *W) {
    const int hd = c->hd;
    size_t bad = 0, stray = 0, nw = 0, first_bad = 0, first_stray = 0;
    double num = 0, den = 0;
    for (int sl = 0; sl < ATT_SLOTS; sl++)
        for (int h = 0; h < c->n_kv; h++)
            for (int p = 0; p < c->n_ctx; p++) {
                const size_t ci = cache_idx(c, sl, h, p);
                const bool wr = R->written[(size_t)sl * c->n_ctx + p];
                for (int kv = 0; kv < 2; kv++) {
                    const uint16_t *gc = kv ? vc : kc;
                    const double *ex = kv ? R->v : R->k, *rd = kv ? R->v16 : R->k16;
                    double rmax = 0;
                    for (int e2 = 0; wr && e2 < hd; e2++) rmax = fmax(rmax, fabs(ex[ci + e2]));
                    for (int e2 = 0; e2 < hd; e2++) {
                        const uint16_t bits = gc[ci + e2];
                        if (!wr) {
                            if (bits != 0xffff && !stray++) first_stray = ci + e2;
                            continue;
                        }
                        const double gv = hl_f16_to_f32(bits), ulp = fmax(fabs(rd[ci + e2]) * 0x1p-10, 0x1p-24);
                        if (!(fabs(gv - rd[ci + e2]) <= ulp * 1.001 + tol_q * rmax) && !bad++) first_bad = ci + e2;
                        num += (gv - ex[ci + e2]) * (gv - ex[ci + e2]);
                        den += ex[ci + e2] * ex[ci + e2];
                        nw++;
                    }
                }
            }
    hl_test_checks += 2;
    if (bad)
        FAILF("%s%s: %zu of %zu cache values differ from the reference by more than an f16 ulp (first at "
              "element %zu: slot %zu, kv head %zu, position %zu, dim %zu; k got %.6g want %.6g, v got %.6g want %.6g)",
              label, form, bad, nw, first_bad, first_bad / ((size_t)c->n_kv * c->n_ctx * hd),
              first_bad / ((size_t)c->n_ctx * hd) % c->n_kv, first_bad / hd % c->n_ctx, first_bad % hd,
              (double)hl_f16_to_f32(kc[first_bad]), R->k16[first_bad], (double)hl_f16_to_f32(vc[first_bad]),
              R->v16[first_bad]);
    if (stray)
        FAILF("%s%s: %zu cache values at positions no token has were written (first at element %zu: slot %zu, "
              "kv head %zu, position %zu)",
              label, form, stray, first_stray, first_stray / ((size_t)c->n_kv * c->n_ctx * hd),
              first_stray / ((size_t)c->n_ctx * hd) % c->n_kv, first_stray / hd % c->n_ctx);
    if (den > 0 && sqrt(num / den) > W->kv) W->kv = sqrt(num / den);
}

/* A max_len under most of the tests' ranges: the grid then has fewer
 * splits than they need, and the kernel makes its splits longer. */
#define ATT_SHORT_GRID 40

/* One batch through qkv_post and attention on the GPU and the reference. */
static void attn_batch(gt *g, const attn_cfg *c, const attn_dev *d, attn_ref *R, const int32_t *pos,
                       const int32_t *seq, int n, rng *r, attn_worst *W, const char *label) {
    const int hd = c->hd, qd = c->n_head * hd, kvd = c->n_kv * hd, ncol = qd + 2 * kvd, ld = ncol + 8;
    const size_t ncache = cache_idx(c, ATT_SLOTS, 0, 0);
    const float eps = 1e-6f, scale = 0.9f / sqrtf((float)hd);
    hl_cu_attn_shape s = {.n_head = c->n_head, .n_head_kv = c->n_kv, .head_dim = hd, .n_rot = c->n_rot,
                          .n_ctx = c->n_ctx, .neox = c->neox, .rope_base = c->rope_base,
                          .rope_scale = c->rope_scale, .eps = eps, .scale = scale,
                          .freq_factors = c->ff ? d->ff : NULL, .window = c->window};
    float *qkv = malloc(sizeof(float) * (size_t)n * ld), *qkv_after = malloc(sizeof(float) * (size_t)n * ld);
    float *out = malloc(sizeof(float) * (size_t)n * qd), *out2 = malloc(sizeof(float) * (size_t)n * qd);
    float *qg = malloc(sizeof(float) * (size_t)n * qd);
    double *qref = calloc((size_t)n * qd, sizeof(double)), *head = calloc((size_t)hd, sizeof(double));
    double *aref = malloc(sizeof(double) * (size_t)n * qd), *iso = malloc(sizeof(double) * (size_t)n * qd);
    double *qgd = malloc(sizeof(double) * (size_t)n * qd);
    uint16_t *kc = malloc(2 * ncache), *vc = malloc(2 * ncache);
    uint16_t *kc2 = malloc(2 * ncache), *vc2 = malloc(2 * ncache);
    float *out3 = malloc(sizeof(float) * (size_t)n * qd), *qkv_f = malloc(sizeof(float) * (size_t)n * ld);
    float *out4 = malloc(sizeof(float) * (size_t)n * qd);
    int8_t *q8 = malloc((size_t)n * qd);
    float *q8ds = malloc(sizeof(float) * (size_t)n * qd / 16);
    int *counters = malloc(sizeof(int) * (size_t)n * c->n_head);
    double *kgd = malloc(sizeof(double) * ncache), *vgd = malloc(sizeof(double) * ncache);
    if (!qkv || !qkv_after || !out || !out2 || !qg || !qref || !head || !aref || !iso || !qgd || !kc || !vc ||
        !kgd || !vgd || !q8 || !q8ds || !counters || !kc2 || !vc2 || !out3 || !qkv_f || !out4) {
        FAILF("%s: out of memory", label);
        goto out;
    }
    char what[200];
    int max_pos = 0;
    for (int t = 0; t < n; t++) max_pos = pos[t] > max_pos ? pos[t] : max_pos;
    for (size_t i = 0; i < (size_t)n * ld; i++) qkv[i] = rng_normal(r);

    /* GPU */
    gt_write(g, d->qkv, qkv, sizeof(float) * (size_t)n * ld);
    gt_write(g, d->pos, pos, sizeof(int32_t) * n);
    gt_write(g, d->seq, seq, sizeof(int32_t) * n);
    gt_poison(g, d->out, sizeof(float) * (size_t)n * qd);
    gt_poison(g, d->out2, sizeof(float) * (size_t)n * qd);
    /* the fused form first, on its own cache, from the same qkv (graph-sized grid) */
    gt_poison(g, d->out3, sizeof(float) * (size_t)n * qd);
    gt_poison(g, d->q8, (size_t)n * qd);
    hl_cu_attention_fused(g->cu, d->qkv, ld, n, &s, c->bias ? d->bq : NULL, c->bias ? d->bk : NULL,
                          c->bias ? d->bv : NULL, c->norms ? d->qn : NULL, c->norms ? d->kn : NULL, d->pos,
                          d->seq, d->kc2, d->vc2, d->out3, c->n_ctx, d->part, d->counters, d->q8, d->q8ds);
    if (!gt_read(g, qkv_f, d->qkv, sizeof(float) * (size_t)n * ld) ||
        !gt_read(g, out3, d->out3, sizeof(float) * (size_t)n * qd) || !gt_read(g, q8, d->q8, (size_t)n * qd) ||
        !gt_read(g, q8ds, d->q8ds, sizeof(float) * (size_t)n * qd / 16) || !gt_read(g, kc2, d->kc2, 2 * ncache) ||
        !gt_read(g, vc2, d->vc2, 2 * ncache)) {
        FAILF("(in %s, fused form)", label);
        goto out;
    }
    hl_test_checks++;
    if (memcmp(qkv_f, qkv, sizeof(float) * (size_t)n * ld)) FAILF("%s: the fused attention modified qkv", label);
    snprintf(what, sizeof what, "%s: fused attention", label);
    CHECK_Q8(what, out3, q8, q8ds, (size_t)n * qd);
    hl_cu_qkv_post(g->cu, d->qkv, ld, n, &s, c->bias ? d->bq : NULL, c->bias ? d->bk : NULL,
                   c->bias ? d->bv : NULL, c->norms ? d->qn : NULL, c->norms ? d->kn : NULL, d->pos, d->seq,
                   d->kc, d->vc);
    gt_poison(g, d->q8, (size_t)n * qd);
    hl_cu_attention(g->cu, d->qkv, ld, n, &s, d->pos, d->seq, d->kc, d->vc, d->out, max_pos + 1, d->part,
                    d->counters, d->q8, d->q8ds);
    hl_cu_attention(g->cu, d->qkv, ld, n, &s, d->pos, d->seq, d->kc, d->vc, d->out2, c->n_ctx, d->part,
                    d->counters, NULL, NULL);
    if (!gt_read(g, qkv_after, d->qkv, sizeof(float) * (size_t)n * ld) ||
        !gt_read(g, out, d->out, sizeof(float) * (size_t)n * qd) ||
        !gt_read(g, out2, d->out2, sizeof(float) * (size_t)n * qd) || !gt_read(g, kc, d->kc, 2 * ncache) ||
        !gt_read(g, vc, d->vc, 2 * ncache) || !gt_read(g, q8, d->q8, (size_t)n * qd) ||
        !gt_read(g, q8ds, d->q8ds, sizeof(float) * (size_t)n * qd / 16) ||
        !gt_read(g, counters, d->counters, sizeof(int) * (size_t)n * c->n_head)) {
        FAILF("(in %s)", label);
        goto out;
    }
    /* max_len only sizes the grid: a grid of fewer splits than the ranges
     * need makes longer splits, the same result */
    hl_cu_attention(g->cu, d->qkv, ld, n, &s, d->pos, d->seq, d->kc, d->vc, d->out2, ATT_SHORT_GRID, d->part,
                    d->counters, NULL, NULL);
    if (!gt_read(g, out4, d->out2, sizeof(float) * (size_t)n * qd)) {
        FAILF("(in %s, short grid)", label);
        goto out;
    }

    /* reference: every token's q and cache rows first, then attention */
    for (int t = 0; t < n; t++) {
        const float *row = qkv + (size_t)t * ld;
        for (int h = 0; h < c->n_head + 2 * c->n_kv; h++) {
            const int kind = h < c->n_head ? 0 : h < c->n_head + c->n_kv ? 1 : 2;
            const int hh = kind == 0 ? h : kind == 1 ? h - c->n_head : h - c->n_head - c->n_kv;
            for (int e = 0; e < hd; e++) head[e] = row[(size_t)h * hd + e];
            const float *bias = !c->bias ? NULL : (kind == 0 ? d->h_bq : kind == 1 ? d->h_bk : d->h_bv) + (size_t)hh * hd;
            const float *nw = !c->norms || kind == 2 ? NULL : kind == 0 ? d->h_qn : d->h_kn;
            ref_head(c, head, bias, nw, eps, c->ff ? d->h_ff : NULL, pos[t], kind < 2);
            if (kind == 0) {
                memcpy(qref + (size_t)t * qd + (size_t)hh * hd, head, sizeof(double) * hd);
            } else {
                const size_t ci = cache_idx(c, seq[t], hh, pos[t]);
                double *ex = kind == 1 ? R->k : R->v, *rd = kind == 1 ? R->k16 : R->v16;
                for (int e = 0; e < hd; e++) {
                    ex[ci + e] = head[e];
                    rd[ci + e] = hl_f16_to_f32(hl_f32_to_f16((float)head[e]));
                }
                R->written[(size_t)seq[t] * c->n_ctx + pos[t]] = true;
            }
        }
    }
    ref_attention(c, qref, R->k16, R->v16, pos, seq, n, scale, aref);

    const double tol_q = 2e-5 + 3e-7 * max_pos;
    /* q after qkv_post; the row padding past [q | k | v] untouched */
    size_t pad_changed = 0;
    for (int t = 0; t < n; t++) {
        memcpy(qg + (size_t)t * qd, qkv_after + (size_t)t * ld, sizeof(float) * qd);
        for (int e = ncol; e < ld; e++)
            pad_changed += memcmp(&qkv[(size_t)t * ld + e], &qkv_after[(size_t)t * ld + e], 4) != 0;
    }
    hl_test_checks++;
    if (pad_changed) FAILF("%s: qkv_post wrote %zu elements past the q|k|v columns", label, pad_changed);
    snprintf(what, sizeof what, "%s: q after qkv_post", label);
    double e = CHECK_REL(what, qg, qref, (size_t)n * qd, tol_q);
    if (e > W->q) W->q = e;

    check_cache(c, R, kc, vc, tol_q, label, "", W);
    check_cache(c, R, kc2, vc2, tol_q, label, " (fused form)", W);
    size_t same = 0;
    for (size_t i = 0; i < ncache; i++) same += kc[i] == kc2[i] && vc[i] == vc2[i];
    if (same != ncache)
        printf("note: %s: the fused form's cache differs in %zu of %zu values from qkv_post's\n", label,
               ncache - same, ncache);

    /* attention against the f16-rounded reference */
    snprintf(what, sizeof what, "%s: attention (max_len %d) vs reference", label, max_pos + 1);
    e = CHECK_REL(what, out, aref, (size_t)n * qd, 1e-4 + 1e-6 * max_pos);
    if (e > W->att) W->att = e;

    /* attention alone: fed the GPU's own q and cache */
    for (size_t i = 0; i < (size_t)n * qd; i++) qgd[i] = qg[i];
    for (size_t i = 0; i < ncache; i++) kgd[i] = hl_f16_to_f32(kc[i]), vgd[i] = hl_f16_to_f32(vc[i]);
    ref_attention(c, qgd, kgd, vgd, pos, seq, n, scale, iso);
    snprintf(what, sizeof what, "%s: attention (max_len %d) vs reference on the GPU's q and cache", label,
             max_pos + 1);
    e = CHECK_REL(what, out, iso, (size_t)n * qd, 1e-5);
    if (e > W->iso) W->iso = e;
    snprintf(what, sizeof what, "%s: attention (max_len n_ctx %d, graph mode) vs reference on the GPU's q and cache",
             label, c->n_ctx);
    e = CHECK_REL(what, out2, iso, (size_t)n * qd, 1e-5);
    if (e > W->iso) W->iso = e;
    snprintf(what, sizeof what, "%s: attention (max_len %d: longer splits) vs reference on the GPU's q and cache",
             label, ATT_SHORT_GRID);
    e = CHECK_REL(what, out4, iso, (size_t)n * qd, 1e-5);
    if (e > W->iso) W->iso = e;
    snprintf(what, sizeof what, "%s: fused attention (graph mode) vs reference", label);
    e = CHECK_REL(what, out3, aref, (size_t)n * qd, 1e-4 + 1e-6 * max_pos);
    if (e > W->att) W->att = e;
    snprintf(what, sizeof what, "%s: fused attention (graph mode) vs reference on the GPU's q and cache", label);
    e = CHECK_REL(what, out3, iso, (size_t)n * qd, 1e-5);
    if (e > W->iso) W->iso = e;
    snprintf(what, sizeof what, "%s: attention", label);
    CHECK_Q8(what, out, q8, q8ds, (size_t)n * qd);
    size_t nonzero = 0;
    for (size_t i = 0; i < (size_t)n * c->n_head; i++) nonzero += counters[i] != 0;
    hl_test_checks++;
    if (nonzero) FAILF("%s: attention left %zu of its counters non-zero", label, nonzero);
out:
    free(qkv), free(qkv_after), free(out), free(out2), free(qg), free(qref), free(head), free(aref), free(iso);
    free(qgd), free(kc), free(vc), free(kgd), free(vgd), free(q8), free(q8ds), free(counters);
    free(kc2), free(vc2), free(out3), free(qkv_f), free(out4);
}

/* A prefill batch (the sequences' tokens interleaved), then one decode
 * token per sequence. */
static void attn_case(gt *g, const attn_cfg *c, rng *r, attn_worst *W) {
    const int hd = c->hd, qd = c->n_head * hd, kvd = c->n_kv * hd, ld = qd + 2 * kvd + 8;
    const int n_pre = c->lens[0] + c->lens[1] + c->lens[2];
    const size_t ncache = cache_idx(c, ATT_SLOTS, 0, 0);
    char label[200];
    snprintf(label, sizeof label,
             "heads %d/%d hd %d n_rot %d%s%s%s%s window %d rope_scale %g n_ctx %d lens %d,%d,%d", c->n_head,
             c->n_kv, hd, c->n_rot, c->neox ? " neox" : "", c->bias ? " bias" : "", c->norms ? " norms" : "",
             c->ff ? " freq_factors" : "", c->window, (double)c->rope_scale, c->n_ctx, c->lens[0], c->lens[1],
             c->lens[2]);
    int mark = g->n_dev;
    attn_dev d = {0};
    attn_ref R = {0};
    int32_t *pos = malloc(sizeof(int32_t) * n_pre), *seq = malloc(sizeof(int32_t) * n_pre);
    d.h_bq = malloc(sizeof(float) * qd), d.h_bk = malloc(sizeof(float) * kvd), d.h_bv = malloc(sizeof(float) * kvd);
    d.h_qn = malloc(sizeof(float) * hd), d.h_kn = malloc(sizeof(float) * hd);
    d.h_ff = malloc(sizeof(float) * (c->n_rot / 2));
    R.k = calloc(ncache, sizeof(double)), R.v = calloc(ncache, sizeof(double));
    R.k16 = calloc(ncache, sizeof(double)), R.v16 = calloc(ncache, sizeof(double));
    R.written = calloc((size_t)ATT_SLOTS * c->n_ctx, sizeof(bool));
    if (!pos || !seq || !d.h_bq || !d.h_bk || !d.h_bv || !d.h_qn || !d.h_kn || !d.h_ff || !R.k || !R.v || !R.k16 ||
        !R.v16 || !R.written) {
        FAILF("%s: out of memory", label);
        goto out;
    }
    for (int i = 0; i < qd; i++) d.h_bq[i] = 0.5f * rng_normal(r);
    for (int i = 0; i < kvd; i++) d.h_bk[i] = 0.5f * rng_normal(r), d.h_bv[i] = 0.5f * rng_normal(r);
    for (int i = 0; i < hd; i++) d.h_qn[i] = 1.0f + 0.2f * rng_normal(r), d.h_kn[i] = 1.0f + 0.2f * rng_normal(r);
    for (int i = 0; i < c->n_rot / 2; i++) d.h_ff[i] = (float)(1.0 + 7.0 * rng_unif(r));
    d.qkv = gt_alloc(g, sizeof(float) * (size_t)n_pre * ld);
    d.out = gt_alloc(g, sizeof(float) * (size_t)n_pre * qd);
    d.out2 = gt_alloc(g, sizeof(float) * (size_t)n_pre * qd);
    d.out3 = gt_alloc(g, sizeof(float) * (size_t)n_pre * qd);
    d.part = gt_alloc(g, sizeof(float) * hl_cu_attn_scratch(n_pre, c->n_head, hd));
    d.counters = gt_alloc(g, sizeof(int) * (size_t)n_pre * c->n_head);
    if (d.counters) hl_cu_memset(g->cu, d.counters, 0, sizeof(int) * (size_t)n_pre * c->n_head);
    d.q8 = gt_alloc(g, (size_t)n_pre * qd);
    d.q8ds = gt_alloc(g, sizeof(float) * (size_t)n_pre * qd / 16);
    d.pos = gt_alloc(g, sizeof(int32_t) * n_pre);
    d.seq = gt_alloc(g, sizeof(int32_t) * n_pre);
    d.kc = gt_alloc(g, 2 * ncache); /* 0xffff: f16 NaN, must never be read */
    d.vc = gt_alloc(g, 2 * ncache);
    d.kc2 = gt_alloc(g, 2 * ncache);
    d.vc2 = gt_alloc(g, 2 * ncache);
    d.bq = gt_put(g, d.h_bq, sizeof(float) * qd);
    d.bk = gt_put(g, d.h_bk, sizeof(float) * kvd);
    d.bv = gt_put(g, d.h_bv, sizeof(float) * kvd);
    d.qn = gt_put(g, d.h_qn, sizeof(float) * hd);
    d.kn = gt_put(g, d.h_kn, sizeof(float) * hd);
    d.ff = gt_put(g, d.h_ff, sizeof(float) * (c->n_rot / 2));
    if (!g->ok) goto out;
    int n = 0, maxlen = c->lens[0] > c->lens[1] ? c->lens[0] : c->lens[1];
    if (c->lens[2] > maxlen) maxlen = c->lens[2];
    for (int p = 0; p < maxlen; p++)
        for (int k = 0; k < 3; k++)
            if (p < c->lens[k]) pos[n] = p, seq[n] = ATT_SEQ[k], n++;
    char bl[260];
    snprintf(bl, sizeof bl, "%s, prefill of %d tokens", label, n);
    attn_batch(g, c, &d, &R, pos, seq, n, r, W, bl);
    for (int k = 0; k < 3; k++) pos[k] = c->lens[k], seq[k] = ATT_SEQ[k];
    snprintf(bl, sizeof bl, "%s, decode", label);
    if (g->ok) attn_batch(g, c, &d, &R, pos, seq, 3, r, W, bl);
    W->cases++;
out:
    gt_release(g, mark);
    free(pos), free(seq), free(d.h_bq), free(d.h_bk), free(d.h_bv), free(d.h_qn), free(d.h_kn), free(d.h_ff);
    free(R.k), free(R.v), free(R.k16), free(R.v16), free(R.written);
}

TEST(cuda_qkv_attention) {
    gt g;
    if (!gt_begin(&g)) return;
    rng r = rng_seed(505);
    attn_worst W = {0, 0, 0, 0, 0};
    /* {n_head, n_kv, hd, combos}: the first five take every combination of
     * five flags (neox, bias, norms, window, partial rope; frequency factors
     * with rope_scale 0.5 on half of them, by parity); the others (one per
     * remaining heads-per-block case of the attention kernel, and a head
     * size that is not a power of two) a few. */
    static const int SHAPES[][4] = {{9, 3, 64, 32},  {32, 8, 64, 32}, {32, 8, 128, 32}, {4, 1, 256, 32},
                                    {14, 2, 64, 32}, {4, 4, 64, 4},   {8, 4, 64, 4},    {12, 2, 64, 4},
                                    {16, 2, 128, 4}, {16, 2, 256, 4}, {8, 2, 96, 4}};
    for (size_t si = 0; si < sizeof SHAPES / sizeof SHAPES[0] && g.ok; si++) {
        const int combos = SHAPES[si][3];
        for (int k = 0; k < combos && g.ok; k++) {
            /* few combos: spread over the flags by a fixed stride */
            const int f = combos == 32 ? k : (k * 11 + (int)si * 7) % 32;
            attn_cfg c = {.n_head = SHAPES[si][0], .n_kv = SHAPES[si][1], .hd = SHAPES[si][2],
                          .neox = f & 1, .bias = (f >> 1) & 1, .norms = (f >> 2) & 1,
                          .window = (f >> 3) & 1 ? 5 : 0, .ff = (f ^ f >> 2 ^ f >> 4) & 1, .n_ctx = 80,
                          .rope_base = 10000.0f, .lens = {20, 7, 33}};
            c.n_rot = (f >> 4) & 1 ? c.hd / 2 : c.hd;
            c.rope_scale = c.ff ? 0.5f : 1.0f;
            attn_case(&g, &c, &r, &W);
        }
    }
    /* long sequences: several attention splits, empty splits for the short
     * sequence, a window across split boundaries, and 1,100 positions (35
     * decode splits of 32; 2 with the short grid) */
    for (int k = 0; k < 3 && g.ok; k++) {
        attn_cfg c = {.n_head = 32, .n_kv = 8, .hd = 128, .n_rot = 128, .neox = true, .bias = k == 1,
                      .norms = k == 1, .window = k == 1 ? 100 : 0, .n_ctx = k == 2 ? 1200 : 600,
                      .rope_base = 500000.0f, .rope_scale = 1.0f,
                      .lens = {k == 2 ? 1100 : 300, 5, 40}};
        attn_case(&g, &c, &r, &W);
    }
    printf("cuda_qkv_attention: %d configurations, worst rel err: q %.3g (tol 2e-5 + 3e-7 pos), cache vs exact "
           "%.3g (f16), attention %.3g (tol 1e-4 + 1e-6 pos), attention on GPU inputs %.3g (tol 1e-5)\n",
           (int)W.cases, W.q, W.kv, W.att, W.iso);
    gt_end(&g);
}

/* --------------------------------------------------------- elementwise -- */

TEST(cuda_act_mul) {
    gt g;
    if (!gt_begin(&g)) return;
    rng r = rng_seed(606);
    /* n = 1000: rows that are not whole blocks of 32; n = 1024 with the int8 form */
    const int n_tok = 3, spare = 16, NMAX = 1024;
    const size_t ngu = (size_t)n_tok * 2 * NMAX, no = (size_t)n_tok * NMAX + spare;
    float *gu = malloc(sizeof(float) * ngu), *out = malloc(sizeof(float) * no);
    double *ref = malloc(sizeof(double) * no);
    int8_t *q8 = malloc(no);
    float *q8ds = malloc(sizeof(float) * no / 16);
    double worst = 0;
    if (!gu || !out || !ref || !q8 || !q8ds) {
        FAILF("act_mul: out of memory");
        goto out;
    }
    for (size_t i = 0; i < ngu; i++) gu[i] = 3.0f * rng_normal(&r);
    float *gu_d = gt_put(&g, gu, sizeof(float) * ngu), *out_d = gt_alloc(&g, sizeof(float) * no);
    int8_t *q8_d = gt_alloc(&g, no);
    float *q8ds_d = gt_alloc(&g, sizeof(float) * no / 16);
    for (int k = 0; k < 8 && g.ok; k++) {
        const bool gelu = k & 1, with_q8 = k & 2, ilv = k & 4;
        const int n = with_q8 ? 1024 : 1000;
        gt_poison(&g, out_d, sizeof(float) * no);
        hl_cu_act_mul(g.cu, gu_d, n_tok, n, gelu, ilv, out_d, with_q8 ? q8_d : NULL, with_q8 ? q8ds_d : NULL);
        if (!gt_read(&g, out, out_d, sizeof(float) * no) || !gt_read(&g, q8, q8_d, no) ||
            !gt_read(&g, q8ds, q8ds_d, sizeof(float) * no / 16))
            break;
        for (int t = 0; t < n_tok; t++)
            for (int i = 0; i < n; i++) {
                const float *row = gu + (size_t)t * 2 * n;
                const double x = ilv ? row[2 * i] : row[i], u = ilv ? row[2 * i + 1] : row[n + i];
                if (gelu) { /* the CPU backend's GELU (half-precision table), which the GPU follows */
                    float gx = (float)x, gu1 = (float)u;
                    hl_vec_ops_scalar()->gelu_mul(&gx, &gu1, 1);
                    ref[(size_t)t * n + i] = gx;
                } else {
                    ref[(size_t)t * n + i] = x / (1.0 + exp(-x)) * u;
                }
            }
        char what[96];
        snprintf(what, sizeof what, "act_mul %s n %d%s%s", gelu ? "gelu (half table)" : "silu", n, with_q8 ? " q8" : "",
                 ilv ? " interleaved" : "");
        double e = CHECK_REL(what, out, ref, (size_t)n_tok * n, 1e-5);
        if (e > worst) worst = e;
        if (with_q8) CHECK_Q8(what, out, q8, q8ds, (size_t)n_tok * n);
        size_t touched = 0;
        for (size_t i = (size_t)n_tok * n; i < no; i++) touched += !is_poison32(&out[i]);
        hl_test_checks++;
        if (touched) FAILF("%s: wrote %zu elements past n_tok * n", what, touched);
    }
    printf("cuda_act_mul: worst rel err %.3g (tol 1e-5)\n", worst);
out:
    free(gu), free(out), free(ref), free(q8), free(q8ds);
    gt_end(&g);
}

TEST(cuda_softcap) {
    gt g;
    if (!gt_begin(&g)) return;
    rng r = rng_seed(707);
    const size_t n = 10000, spare = 16;
    const float cap = 30.0f;
    float *x = malloc(sizeof(float) * (n + spare)), *y = malloc(sizeof(float) * (n + spare));
    double *ref = malloc(sizeof(double) * n);
    if (!x || !y || !ref) {
        FAILF("softcap: out of memory");
        goto out;
    }
    for (size_t i = 0; i < n; i++) x[i] = 50.0f * rng_normal(&r);
    x[0] = 0.0f, x[1] = 1000.0f, x[2] = -1000.0f, x[3] = 1e-3f;
    for (size_t i = 0; i < n; i++) ref[i] = cap * tanh(x[i] / cap);
    memset(x + n, 0xff, sizeof(float) * spare);
    float *x_d = gt_put(&g, x, sizeof(float) * (n + spare));
    if (x_d) {
        hl_cu_softcap(g.cu, x_d, n, cap);
        if (gt_read(&g, y, x_d, sizeof(float) * (n + spare))) {
            double e = CHECK_REL("softcap 30", y, ref, n, 1e-5);
            size_t touched = 0;
            for (size_t i = n; i < n + spare; i++) touched += !is_poison32(&y[i]);
            hl_test_checks++;
            if (touched) FAILF("softcap: changed %zu values past n", touched);
            CHECK_NEAR(y[1], 30.0, 1e-5);
            CHECK_NEAR(y[2], -30.0, 1e-5);
            CHECK(y[0] == 0.0f);
            printf("cuda_softcap: rel err %.3g (tol 1e-5)\n", e);
        }
    }
out:
    free(x), free(y), free(ref);
    gt_end(&g);
}

TEST(cuda_argmax) {
    gt g;
    if (!gt_begin(&g)) return;
    rng r = rng_seed(808);
    /* rows of n = 50000 (more than one pass of the block's threads) */
    const int n = 50000, rows = 8;
    float *x = malloc(sizeof(float) * (size_t)n * rows);
    int32_t want[8], got[3 * 8 + 2]; /* ids, then the kernel's scratch */
    if (!x) {
        FAILF("argmax: out of memory");
        gt_end(&g);
        return;
    }
    for (size_t i = 0; i < (size_t)n * rows; i++) x[i] = rng_normal(&r);
    float *row;
    row = x, want[0] = 12345, row[12345] = 10.0f;                              /* a unique maximum */
    row = x + (size_t)n, want[1] = 100, row[100] = row[40000] = 10.0f;         /* tie across warps */
    row = x + 2 * (size_t)n, want[2] = 37, row[37] = row[37 + 1024] = 10.0f;   /* tie in one thread */
    row = x + 3 * (size_t)n, want[3] = 37, row[38] = row[37] = 10.0f;          /* tie in one warp */
    row = x + 4 * (size_t)n, want[4] = n - 1, row[n - 1] = 10.0f;              /* the last index */
    row = x + 5 * (size_t)n, want[5] = 0, row[0] = 10.0f, row[1] = row[2000] = nanf(""); /* NaN never wins */
    row = x + 6 * (size_t)n, want[6] = 0;                                      /* all equal */
    for (int i = 0; i < n; i++) row[i] = -1.5f;
    row = x + 7 * (size_t)n, want[7] = 777, row[777] = -0.25f;                 /* all negative */
    for (int i = 0; i < n; i++)
        if (i != 777) row[i] = -1.0f - (float)rng_unif(&r);
    float *x_d = gt_put(&g, x, sizeof(float) * (size_t)n * rows);
    int32_t *ids_d = gt_alloc(&g, sizeof got);
    if (x_d && ids_d) {
        hl_cu_memset(g.cu, ids_d + rows, 0, sizeof got - sizeof(int32_t) * rows); /* the scratch starts zero */
        hl_cu_argmax(g.cu, x_d, rows, n, ids_d);
        if (gt_read(&g, got, ids_d, sizeof got)) {
            size_t dirty = 0; /* and is left zero */
            for (int i = rows; i < 3 * rows + 2; i++) dirty += got[i] != 0;
            hl_test_checks++;
            if (dirty) FAILF("argmax left %zu of its scratch words non-zero", dirty);
            for (int i = 0; i < rows; i++) {
                hl_test_checks++;
                if (got[i] != want[i])
                    FAILF("argmax row %d of %d values: got %d (value %g), want %d (value %g)", i, n, got[i],
                          got[i] >= 0 && got[i] < n ? (double)x[(size_t)i * n + got[i]] : 0.0, want[i],
                          (double)x[(size_t)i * n + want[i]]);
            }
        }
        /* short rows: fewer values than threads */
        static const float SHORT[2][7] = {{1, 5, 2, 5, 0, -1, 3}, {-3, -2, -9, -2, -7, -8, -2.5f}};
        if (gt_write(&g, x_d, SHORT, sizeof SHORT)) {
            hl_cu_argmax(g.cu, x_d, 2, 7, ids_d);
            if (gt_read(&g, got, ids_d, 2 * sizeof(int32_t))) {
                CHECK_EQ_INT(got[0], 1);
                CHECK_EQ_INT(got[1], 1);
            }
        }
    }
    free(x);
    gt_end(&g);
}

/* --------------------------------------------------------------- graphs -- */

/* A graph of upload -> matmul (gate | up) -> act_mul (with its int8 form
 * for a small batch) -> matmul_q8 (down, reading that int8 form) ->
 * downloads, replayed with new values in the captured pinned input. */
static void graph_case(gt *g, int n_tok, rng *r, double *worst) {
    const int n_in = 512, n = 256, n_out = 128;
    const bool small = n_tok <= 8; /* Q4_K: int8 activations */
    qmat m1, m2;
    if (!qmat_make(&m1, HL_Q4_K, n_in, 2 * n, r)) return;
    if (!qmat_make(&m2, HL_Q4_K, n, n_out, r)) {
        qmat_free(&m1);
        return;
    }
    int mark = g->n_dev;
    hl_err e = {0};
    hl_cu_graph *gr = NULL;
    const size_t nx = (size_t)n_tok * n_in, nh = (size_t)n_tok * n, ny = (size_t)n_tok * n_out;
    float *x_h = hl_cu_host_alloc(sizeof(float) * nx, &e);
    float *h_h = x_h ? hl_cu_host_alloc(sizeof(float) * nh, &e) : NULL;
    float *y_h = h_h ? hl_cu_host_alloc(sizeof(float) * ny, &e) : NULL;
    float *first = malloc(sizeof(float) * ny), *x0 = malloc(sizeof(float) * nx);
    double *xd = malloc(sizeof(double) * nx), *gu = malloc(sizeof(double) * 2 * nh);
    double *href = malloc(sizeof(double) * nh), *hd = malloc(sizeof(double) * nh), *yref = malloc(sizeof(double) * ny);
    if (!y_h) FAILF("hl_cu_host_alloc: %s", e.msg);
    if (!y_h || !first || !x0 || !xd || !gu || !href || !hd || !yref) goto out;
    hl_cu_mat w1, w2;
    if (!gt_mat(g, &m1, &w1) || !gt_mat(g, &m2, &w2)) goto out;
    float *x_d = gt_alloc(g, sizeof(float) * nx), *gu_d = gt_alloc(g, sizeof(float) * 2 * nh);
    float *h_d = gt_alloc(g, sizeof(float) * nh), *y_d = gt_alloc(g, sizeof(float) * ny);
    int8_t *q8_d = gt_alloc(g, nh);
    float *q8ds_d = gt_alloc(g, sizeof(float) * nh / 16);
    if (!g->ok) goto out;
    if (hl_cu_reserve(g->cu, (size_t)n_in * 2 * n, n_tok, n_in, &e) < 0) {
        FAILF("hl_cu_reserve: %s", e.msg);
        goto out;
    }
    memset(y_h, 0xff, sizeof(float) * ny);
    if (hl_cu_graph_begin(g->cu, &e) < 0) {
        FAILF("graph (n_tok %d): hl_cu_graph_begin: %s", n_tok, e.msg);
        goto out;
    }
    hl_cu_copy_h2d(g->cu, x_d, x_h, sizeof(float) * nx);
    hl_cu_matmul(g->cu, &w1, x_d, n_in, n_tok, gu_d, 2 * n);
    hl_cu_act_mul(g->cu, gu_d, n_tok, n, false, false, h_d, small ? q8_d : NULL, small ? q8ds_d : NULL);
    hl_cu_matmul_q8(g->cu, &w2, h_d, n, small ? q8_d : NULL, small ? q8ds_d : NULL, n_tok, y_d, n_out);
    hl_cu_copy_d2h(g->cu, h_h, h_d, sizeof(float) * nh);
    hl_cu_copy_d2h(g->cu, y_h, y_d, sizeof(float) * ny);
    if (hl_cu_graph_end(g->cu, &gr, &e) < 0) {
        FAILF("graph (n_tok %d): hl_cu_graph_end: %s", n_tok, e.msg);
        goto out;
    }
    GT_SYNC(g, "after capture");
    size_t ran = 0;
    for (size_t i = 0; i < ny; i++) ran += !is_poison32(&y_h[i]);
    hl_test_checks++;
    if (ran) FAILF("graph (n_tok %d): capturing ran the work (%zu outputs written before any launch)", n_tok, ran);
    for (int rep = 0; rep < 3 && g->ok; rep++) {
        /* new inputs in place; the third replay repeats the first input */
        for (size_t i = 0; i < nx; i++) x_h[i] = rep == 2 ? x0[i] : rng_normal(r);
        if (rep == 0) memcpy(x0, x_h, sizeof(float) * nx);
        if (hl_cu_graph_launch(g->cu, gr, &e) < 0) {
            FAILF("graph (n_tok %d): launch %d: %s", n_tok, rep, e.msg);
            break;
        }
        if (!GT_SYNC(g, "graph replay")) break;
        /* each stage against a reference fed the GPU's input to it */
        if (small) q8_roundtrip(x_h, n_tok, n_in, xd);
        else
            for (size_t i = 0; i < nx; i++) xd[i] = x_h[i];
        ref_matmul(m1.deq, n_in, 2 * n, xd, n_tok, gu);
        for (int t = 0; t < n_tok; t++)
            for (int i = 0; i < n; i++) {
                const double gs = gu[(size_t)t * 2 * n + i], us = gu[(size_t)t * 2 * n + n + i];
                href[(size_t)t * n + i] = gs / (1.0 + exp(-gs)) * us;
            }
        if (small) q8_roundtrip(h_h, n_tok, n, hd);
        else
            for (size_t i = 0; i < nh; i++) hd[i] = h_h[i];
        ref_matmul(m2.deq, n, n_out, hd, n_tok, yref);
        char what[96];
        snprintf(what, sizeof what, "graph n_tok %d, replay %d: matmul + act_mul", n_tok, rep);
        double err = CHECK_REL(what, h_h, href, nh, small ? 1e-5 : 5e-3);
        if (err > *worst) *worst = err;
        snprintf(what, sizeof what, "graph n_tok %d, replay %d: matmul_q8 of that", n_tok, rep);
        err = CHECK_REL(what, y_h, yref, ny, small ? 1e-5 : 5e-3);
        if (err > *worst) *worst = err;
        if (rep == 0) memcpy(first, y_h, sizeof(float) * ny);
        if (rep == 2) {
            hl_test_checks++;
            if (memcmp(first, y_h, sizeof(float) * ny))
                FAILF("graph (n_tok %d): the same input replayed gave different bits", n_tok);
        }
    }
out:
    hl_cu_graph_free(gr);
    gt_release(g, mark);
    hl_cu_host_free(x_h);
    hl_cu_host_free(h_h);
    hl_cu_host_free(y_h);
    free(first), free(x0), free(xd), free(gu), free(href), free(hd), free(yref);
    qmat_free(&m1);
    qmat_free(&m2);
}

TEST(cuda_graph) {
    gt g;
    if (!gt_begin(&g)) return;
    rng r = rng_seed(909);
    double worst = 0;
    graph_case(&g, 2, &r, &worst);  /* fused kernel */
    graph_case(&g, 16, &r, &worst); /* cuBLAS inside the capture */
    printf("cuda_graph: worst rel err %.3g\n", worst);
    gt_end(&g);
}

#else /* built without CUDA */

TEST(cuda_kernels) { (void)no_gpu(); }

#endif

/* ----------------------------------------------------------- end to end -- */

#define E2E_PROMPTS 8
#define E2E_GEN 32
static const int E2E_LENS[E2E_PROMPTS] = {5, 60, 8, 9, 33, 17, 44, 23};

static double cosine(const float *a, const float *b, int n) {
    double ab = 0, aa = 0, bb = 0;
    for (int i = 0; i < n; i++) ab += (double)a[i] * b[i], aa += (double)a[i] * a[i], bb += (double)b[i] * b[i];
    if (!(aa > 0 && bb > 0)) return aa == bb ? 1.0 : 0.0;
    return ab / sqrt(aa * bb);
}

static int argmax_f(const float *x, int n) {
    int best = 0;
    for (int i = 1; i < n; i++)
        if (x[i] > x[best]) best = i;
    return best;
}

static int decode1(hl_ctx *c, int32_t tok, int32_t pos, int32_t seq, hl_err *e) {
    bool want = true;
    hl_batch b = {.n = 1, .token = &tok, .pos = &pos, .seq = &seq, .want_logits = &want};
    return hl_ctx_decode(c, &b, e);
}

/* Copies row i of a context's logits; checks hl_ctx_argmax agrees with it. */
static bool take_logits(const hl_ctx *c, int i, float *dst, int n_vocab, const char *who, const char *file) {
    const float *l = hl_ctx_logits(c, i);
    hl_test_checks++;
    if (!l) {
        FAILF("e2e %s: %s: no logits for output %d", file, who, i);
        return false;
    }
    memcpy(dst, l, sizeof(float) * n_vocab);
    int a = hl_ctx_argmax(c, i), b = argmax_f(dst, n_vocab);
    hl_test_checks++;
    if (a != b)
        FAILF("e2e %s: %s: hl_ctx_argmax %d (logit %g) but the logits' argmax is %d (logit %g)", file, who, a,
              a >= 0 && a < n_vocab ? (double)dst[a] : 0.0, b, (double)dst[b]);
    return true;
}

static void e2e_model(const char *path) {
    const char *file = strrchr(path, '/') ? strrchr(path, '/') + 1 : path;
    const double t0 = seconds();
    const char *tm = getenv("HL_GPU_TIE_MARGIN");
    double margin = tm && *tm ? atof(tm) : -1;
    hl_model *mc = NULL, *mg = NULL;
    hl_ctx *cc = NULL, *cg = NULL;
    hl_err e = {0};
    float *lc = NULL, *lg = NULL, *bc = NULL, *bg = NULL;
    int32_t *ids[E2E_PROMPTS] = {0};
    hl_model_opts oc = {.backend = HL_BACKEND_CPU}, og = {.backend = HL_BACKEND_CUDA, .device = 0};
    if (hl_model_load_opts(&mc, path, &oc, &e) < 0) {
        FAILF("e2e %s: CPU load: %s", file, e.msg);
        goto out;
    }
    if (hl_model_load_opts(&mg, path, &og, &e) < 0) {
        FAILF("e2e %s: CUDA load: %s", file, e.msg);
        goto out;
    }
    if (margin < 0) { /* the calibration of tests/ref/check_goldens.py */
        hl_str name = {0};
        bool synth = gguf_get_str(hl_model_gguf(mc), "general.name", &name) == 0 && name.len >= 17 &&
                     !memcmp(name.ptr, "heylook synthetic", 17);
        margin = synth ? 0.1 : 0.5;
    }
    CHECK_EQ_INT(hl_model_backend(mc), HL_BACKEND_CPU);
    CHECK_EQ_INT(hl_model_backend(mg), HL_BACKEND_CUDA);
    const hl_ctx_params p = {.n_ctx = 256, .n_seq = 4};
    if (hl_ctx_new(&cc, mc, &p, &e) < 0 || hl_ctx_new(&cg, mg, &p, &e) < 0) {
        FAILF("e2e %s: hl_ctx_new: %s", file, e.msg);
        goto out;
    }
    const int V = hl_model_hparams(mc)->n_vocab;
    lc = malloc(sizeof(float) * V), lg = malloc(sizeof(float) * V);
    bc = malloc(sizeof(float) * 4 * (size_t)V), bg = malloc(sizeof(float) * 4 * (size_t)V);
    if (!lc || !lg || !bc || !bg) {
        FAILF("e2e %s: out of memory", file);
        goto out;
    }
    rng r = rng_seed(4242);
    for (int k = 0; k < E2E_PROMPTS; k++) {
        if (!(ids[k] = malloc(sizeof(int32_t) * E2E_LENS[k]))) goto out;
        for (int i = 0; i < E2E_LENS[k]; i++) ids[k][i] = (int32_t)(rng_next(&r) % (uint64_t)V);
    }

    /* prompts, then greedy continuations in lockstep */
    double min_cos = 1.0;
    int top1 = 0, greedy = 0, ties = 0, cos_fails = 0;
    char div[1024] = "";
    size_t dl = 0;
    for (int k = 0; k < E2E_PROMPTS; k++) {
        const int len = E2E_LENS[k];
        hl_ctx_seq_truncate(cc, 0, 0);
        hl_ctx_seq_truncate(cg, 0, 0);
        if (hl_ctx_prefill(cc, 0, ids[k], len, &e) < 0 || hl_ctx_prefill(cg, 0, ids[k], len, &e) < 0) {
            FAILF("e2e %s: prefill of prompt %d (%d tokens): %s", file, k, len, e.msg);
            goto out;
        }
        bool same = true;
        for (int s = 0; s < E2E_GEN; s++) {
            if (!take_logits(cc, 0, lc, V, "cpu", file) || !take_logits(cg, 0, lg, V, "cuda", file)) goto out;
            const int ac = argmax_f(lc, V), ag = argmax_f(lg, V);
            const double cs = cosine(lc, lg, V);
            if (cs < min_cos) min_cos = cs;
            hl_test_checks++;
            if (!(cs >= 0.999) && cos_fails++ < 3)
                FAILF("e2e %s: prompt %d (%d tokens), %s: logits cosine %.6f < 0.999", file, k, len,
                      s ? "decode step" : "prefill", cs);
            if (s == 0) top1 += ac == ag;
            if (ac != ag) {
                const double gap = (double)lc[ac] - lc[ag];
                double lo = lc[0], hi = lc[0];
                for (int i = 1; i < V; i++) lo = lc[i] < lo ? lc[i] : lo, hi = lc[i] > hi ? lc[i] : hi;
                same = false;
                ties += gap <= margin && cs >= 0.999; /* a tie only between logits that agree */
                if (dl < sizeof div - 200)
                    dl += (size_t)snprintf(div + dl, sizeof div - dl,
                                           "%s prompt %d token %d: cpu %d vs cuda %d (cpu logit gap %.3g, cuda gap "
                                           "%.3g, cpu logits span %.3g)",
                                           dl ? ";" : "", k, s, ac, ag, gap, (double)lg[ag] - lg[ac], hi - lo);
                break;
            }
            if (s + 1 < E2E_GEN &&
                (decode1(cc, ac, len + s, 0, &e) < 0 || decode1(cg, ag, len + s, 0, &e) < 0)) {
                FAILF("e2e %s: decode at position %d: %s", file, len + s, e.msg);
                goto out;
            }
        }
        greedy += same;
    }
    hl_test_checks++;
    if (greedy + ties < E2E_PROMPTS - 1)
        FAILF("e2e %s: %d of %d greedy continuations identical and %d diverged at a near tie (cpu logit gap <= "
              "%g); need %d together; divergences:%s",
              file, greedy, E2E_PROMPTS, ties, margin, E2E_PROMPTS - 1, div);
    else if (dl)
        printf("e2e %s: divergences (near tie: cpu logit gap <= %g):%s\n", file, margin, div);

    /* one decode step of 4 sequences at once, then the same one at a time */
    int32_t tk[4], pos4[4], seq4[4];
    bool want4[4] = {true, true, true, true};
    for (int s = 0; s < 4; s++) {
        hl_ctx_seq_truncate(cc, s, 0);
        hl_ctx_seq_truncate(cg, s, 0);
        if (hl_ctx_prefill(cc, s, ids[s], E2E_LENS[s], &e) < 0 ||
            hl_ctx_prefill(cg, s, ids[s], E2E_LENS[s], &e) < 0) {
            FAILF("e2e %s: prefill of sequence %d: %s", file, s, e.msg);
            goto out;
        }
        tk[s] = hl_ctx_argmax(cg, 0), pos4[s] = E2E_LENS[s], seq4[s] = s;
    }
    hl_batch b4 = {.n = 4, .token = tk, .pos = pos4, .seq = seq4, .want_logits = want4};
    if (hl_ctx_decode(cg, &b4, &e) < 0 || hl_ctx_decode(cc, &b4, &e) < 0) {
        FAILF("e2e %s: batched decode of 4 sequences: %s", file, e.msg);
        goto out;
    }
    double min_b = 1.0;
    for (int s = 0; s < 4; s++) {
        if (!take_logits(cg, s, bg + (size_t)s * V, V, "cuda batch", file) ||
            !take_logits(cc, s, bc + (size_t)s * V, V, "cpu batch", file))
            goto out;
        const double cs = cosine(bc + (size_t)s * V, bg + (size_t)s * V, V);
        if (cs < min_cos) min_cos = cs;
        hl_test_checks++;
        if (!(cs >= 0.999)) FAILF("e2e %s: batch of 4, sequence %d: cpu vs cuda cosine %.6f < 0.999", file, s, cs);
    }
    for (int s = 0; s < 4; s++) {
        hl_ctx_seq_truncate(cg, s, E2E_LENS[s]);
        if (decode1(cg, tk[s], E2E_LENS[s], s, &e) < 0) {
            FAILF("e2e %s: single decode of sequence %d: %s", file, s, e.msg);
            goto out;
        }
        if (!take_logits(cg, 0, lg, V, "cuda single", file)) goto out;
        const double cs = cosine(lg, bg + (size_t)s * V, V);
        if (cs < min_b) min_b = cs;
        hl_test_checks++;
        if (!(cs >= 0.9999))
            FAILF("e2e %s: sequence %d decoded alone vs in a batch of 4 on cuda: cosine %.7f < 0.9999", file, s, cs);
    }
    printf("e2e %s: min cosine %.6f, top1 %d/%d, greedy %d/%d (+%d near ties), batch4 cosine %.7f (%s; %.1f s)\n",
           file, min_cos, top1, E2E_PROMPTS, greedy, E2E_PROMPTS, ties, min_b, hl_model_desc(mc), seconds() - t0);
    fflush(stdout);
out:
    for (int k = 0; k < E2E_PROMPTS; k++) free(ids[k]);
    free(lc), free(lg), free(bc), free(bg);
    hl_ctx_free(cc);
    hl_ctx_free(cg);
    hl_model_free(mc);
    hl_model_free(mg);
}

TEST(cuda_e2e_models) {
    test_start();
    if (no_gpu()) return;
    const char *list = getenv("HL_GPU_MODELS");
    if (!list || !*list) {
        printf("e2e: HL_GPU_MODELS is not set (colon-separated .gguf paths), skipping\n");
        return;
    }
    char *copy = strdup(list), *save = NULL;
    if (!copy) return;
    int n = 0;
    for (char *p = strtok_r(copy, ":", &save); p; p = strtok_r(NULL, ":", &save), n++) e2e_model(p);
    printf("e2e: %d models\n", n);
    free(copy);
    test_finish();
}
