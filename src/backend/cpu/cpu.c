/* cpu.c - the CPU backend's kernels outside the per-path tables; see cpu.h.
 *
 * The matmul quantizes its activations once per call to the type the
 * weight's integer dot product reads (kernels.h), then hands out work in
 * chunks of consecutive weight rows across every matrix of the call, about
 * 256 KiB of weights each (one stream from memory per chunk). Within a
 * chunk, tiles of TILE rows stay in L1/L2 while the tokens' quantized
 * activations stream past them, HL_DOT_MAX_A tokens per dot call, so each
 * weight block is decoded once per group (decode: one token, each row
 * streamed once through the fused dequantize-dot).
 * Several matrices reading the same input (q/k/v, gate/up) run as one pool
 * job, so a layer costs a handful of thread synchronizations.
 */
#include "cpu.h"

#include <math.h>
#include <string.h>

#include "kernels.h"
#include "quant.h"
#include "repack.h"

#define MAX_MATS 4 /* matrices of one hl_cpu_matmul_n call */

/* Bytes of one token's quantized activations, rounded up to 64. */
static size_t act_row_bytes(hl_dtype at, int n_in) {
    size_t b = hl_dtype_row_size(at, (uint64_t)n_in);
    if (!b) b = (size_t)n_in * sizeof(float);
    return (b + 63) & ~(size_t)63;
}

size_t hl_cpu_matmul_scratch(int n_in, int n_tok, int n_threads) {
    (void)n_threads;
    /* Up to MAX_MATS activation buffers of the widest type (F32 is never
     * copied; F16/BF16 take 2 bytes per value, the Q8s less), in floats. */
    size_t per = (size_t)n_tok * act_row_bytes(HL_F16, n_in);
    return (MAX_MATS * per + 64) / sizeof(float) + 16;
}

void hl_cpu_get_row(const hl_mat *w, int r, float *out) {
    hl_dequantize_row(w->type, (const uint8_t *)w->data + (size_t)r * w->row_bytes, out, w->n_in);
}

typedef struct mm_job {
    const hl_kernels *k;
    int n_mats, n_tok, n_in;
    const hl_mat *w[MAX_MATS];
    float *y[MAX_MATS];
    const uint8_t *act[MAX_MATS]; /* each matrix's quantized activations */
    size_t act_stride[MAX_MATS];
    int task0[MAX_MATS + 1];      /* first task of each matrix */
    hl_packed_fn packed_fn[MAX_MATS];
    hl_packed_gemm_fn packed_gemm[MAX_MATS]; /* AMX: whole tiles of tokens */
    int rows_per_task;
    /* quantization: distinct activation types and their buffers */
    int n_q;
    hl_dtype q_type[MAX_MATS];
    uint8_t *q_buf[MAX_MATS];
    size_t q_stride[MAX_MATS];
    const float *x;
} mm_job;

static void mm_quant_task(void *arg, int t, int thread) {
    (void)thread;
    const mm_job *j = arg;
    for (int i = 0; i < j->n_q; i++)
        j->k->quant[j->q_type[i]](j->x + (size_t)t * j->n_in, j->q_buf[i] + (size_t)t * j->q_stride[i],
                                  j->n_in);
}

#define TILE 16 /* weight rows that all the tokens pass over before the next (prefill) */

/* Rows of a task from 8-row packed groups (rows_per_task is a multiple of 8). */
static void packed_rows(const mm_job *j, int m, int task) {
    const hl_mat *w = j->w[m];
    hl_packed_fn kern = j->packed_fn[m];
    int g0 = (task - j->task0[m]) * j->rows_per_task / HL_PACK_ROWS;
    int g1 = g0 + j->rows_per_task / HL_PACK_ROWS;
    if (g1 > w->n_out / HL_PACK_ROWS) g1 = w->n_out / HL_PACK_ROWS;
    const uint8_t *base = w->packed, *act = j->act[m];
    size_t as = j->act_stride[m];
    /* tokens [0, t0) in tiles of HL_PACKED_GEMM_ROWS where the path has
     * them (bit-identical to the group kernel, which takes the rest) */
    const int t0 = j->packed_gemm[m] ? j->n_tok / HL_PACKED_GEMM_ROWS * HL_PACKED_GEMM_ROWS : 0;
    for (int gt = g0; gt < g1; gt += TILE / HL_PACK_ROWS) {
        int ge = gt + TILE / HL_PACK_ROWS < g1 ? gt + TILE / HL_PACK_ROWS : g1;
        if (t0) j->packed_gemm[m](w->n_in, base, gt, ge, act, as, t0, j->y[m], (size_t)w->n_out);
        for (int t = t0; t < j->n_tok; t += HL_DOT_MAX_A) {
            int na = j->n_tok - t < HL_DOT_MAX_A ? j->n_tok - t : HL_DOT_MAX_A;
            float *yt = j->y[m] + (size_t)t * w->n_out;
            for (int g = gt; g < ge; g++)
                kern(w->n_in, base + (size_t)g * w->group_bytes, act + (size_t)t * as, as, na,
                     yt + (size_t)g * HL_PACK_ROWS, (size_t)w->n_out);
        }
    }
}

static void mm_task(void *arg, int task, int thread) {
    (void)thread;
    const mm_job *j = arg;
    int m = 0;
    while (task >= j->task0[m + 1]) m++;
    const hl_mat *w = j->w[m];
    if (w->packed) {
        packed_rows(j, m, task);
        return;
    }
    hl_vec_dot_fn dot = j->k->dot[w->type];
    hl_gemm_fn gemm = j->n_tok > 1 ? j->k->gemm[w->type] : NULL;
    int r0 = (task - j->task0[m]) * j->rows_per_task, r1 = r0 + j->rows_per_task;
    if (r1 > w->n_out) r1 = w->n_out;
    const uint8_t *base = w->data, *act = j->act[m];
    size_t as = j->act_stride[m];
    float *y = j->y[m];
    int step = gemm && j->k->gemm_rows[w->type] ? j->k->gemm_rows[w->type] : HL_GEMM_MAX_W;
    int tile = step > TILE ? step : TILE;
    for (int rt = r0; rt < r1; rt += tile) {
        int re = rt + tile < r1 ? rt + tile : r1;
        for (int t = 0; t < j->n_tok; t += HL_DOT_MAX_A) {
            int na = j->n_tok - t < HL_DOT_MAX_A ? j->n_tok - t : HL_DOT_MAX_A;
            const uint8_t *at = act + (size_t)t * as;
            float *yt = y + (size_t)t * w->n_out;
            if (gemm) {
                for (int r = rt; r < re; r += step) {
                    int nw = re - r < step ? re - r : step;
                    gemm(w->n_in, base + (size_t)r * w->row_bytes, w->row_bytes, nw, at, as, na, yt + r,
                         (size_t)w->n_out);
                }
            } else {
                for (int r = rt; r < re; r++)
                    dot(w->n_in, base + (size_t)r * w->row_bytes, at, as, na, yt + r, (size_t)w->n_out);
            }
        }
    }
}

void hl_cpu_matmul_n(hl_pool *pool, const hl_mat *const *w, int n_mats, const float *x, int n_tok,
                     float *const *y, float *scratch) {
    mm_job j = {.k = hl_kernels_best(), .n_mats = n_mats, .n_tok = n_tok, .n_in = w[0]->n_in, .x = x};
    uint8_t *buf = (uint8_t *)scratch;
    for (int m = 0; m < n_mats; m++) {
        j.w[m] = w[m];
        j.y[m] = y[m];
        j.packed_fn[m] = w[m]->packed ? hl_packed_kernel(w[m]->type) : NULL;
        j.packed_gemm[m] = w[m]->packed ? hl_packed_gemm(w[m]->type) : NULL;
        hl_dtype at = hl_act_type(w[m]->type);
        if (at == HL_F32) { /* F32 weights read the floats themselves */
            j.act[m] = (const uint8_t *)x;
            j.act_stride[m] = (size_t)j.n_in * sizeof(float);
            continue;
        }
        int q = 0;
        while (q < j.n_q && j.q_type[q] != at) q++;
        if (q == j.n_q) {
            j.q_type[q] = at;
            j.q_stride[q] = act_row_bytes(at, j.n_in);
            j.q_buf[q] = buf;
            buf += (size_t)n_tok * j.q_stride[q];
            j.n_q++;
        }
        j.act[m] = j.q_buf[q];
        j.act_stride[m] = j.q_stride[q];
    }
    if (j.n_q) {
        if (n_tok == 1)
            mm_quant_task(&j, 0, 0);
        else
            hl_pool_run(pool, mm_quant_task, &j, n_tok);
    }
    int total_rows = 0;
    for (int m = 0; m < n_mats; m++) total_rows += w[m]->n_out;
    {
        /* About 256 KiB of weights per task, at least one and at most eight
         * per thread: each task is one stream from memory, and the hardware
         * prefetchers need a run of misses to ramp up on each. Measured on
         * the 2-core VM against the earlier split (16 tasks for one token,
         * 16 rows a task for more): a 135M model decodes 15-20% faster
         * (Q4_0 318-332 -> 381-396 tok/s) and 4 sequences together 2-2.6x
         * (322-416 -> 833-865 tok/s); 4 sequences of a 1B Q4_0 +47% (82 ->
         * 119-121); prefill, with the TILE loop inside a chunk, unchanged
         * (1B Q4_0 pp256 185-188 vs 189). */
        size_t bytes = 0;
        for (int m = 0; m < n_mats; m++) bytes += w[m]->row_bytes * (size_t)w[m]->n_out;
        int nt = hl_pool_threads(pool), n_tasks = nt * 8;
        if (bytes / (256u << 10) < (size_t)n_tasks) n_tasks = (int)(bytes / (256u << 10));
        if (n_tasks < nt) n_tasks = nt;
        j.rows_per_task = (total_rows + n_tasks - 1) / n_tasks;
        j.rows_per_task = (j.rows_per_task + HL_PACK_ROWS - 1) / HL_PACK_ROWS * HL_PACK_ROWS;
    }
    j.task0[0] = 0;
    for (int m = 0; m < n_mats; m++)
        j.task0[m + 1] = j.task0[m] + (w[m]->n_out + j.rows_per_task - 1) / j.rows_per_task;
    hl_pool_run(pool, mm_task, &j, j.task0[n_mats]);
}

void hl_cpu_matmul(hl_pool *pool, const hl_mat *w, const float *x, int n_tok, float *y,
                   float *scratch) {
    hl_cpu_matmul_n(pool, &w, 1, x, n_tok, &y, scratch);
}

void hl_cpu_rmsnorm(float *out, const float *x, const float *w, int n, float eps) {
    double ss = 0;
    for (int i = 0; i < n; i++) ss += (double)x[i] * x[i];
    float scale = 1.0f / sqrtf((float)(ss / n) + eps);
    if (w)
        for (int i = 0; i < n; i++) out[i] = x[i] * scale * w[i];
    else
        for (int i = 0; i < n; i++) out[i] = x[i] * scale;
}

/* The angles are computed as llama.cpp computes them, in float: pos times
 * base^(-2/n_rot) raised by repeated multiplication, then divided by the
 * frequency factor and multiplied by the scale. Any other evaluation order
 * moves the angles by a few ulp, which a deep model amplifies into visibly
 * different logits. */
void hl_cpu_rope_table(float *cs, int n_rot, int pos, float base, float scale,
                       const float *freq_factors) {
    const float step = powf(base, -2.0f / (float)n_rot);
    float theta_base = (float)pos;
    for (int i = 0; i < n_rot / 2; i++) {
        float theta = theta_base;
        if (freq_factors) theta /= freq_factors[i];
        theta *= scale;
        cs[2 * i] = cosf(theta);
        cs[2 * i + 1] = sinf(theta);
        theta_base *= step;
    }
}

void hl_cpu_rope_apply(float *x, int n_heads, int head_dim, int n_rot, const float *cs, int neox) {
    int half = n_rot / 2;
    for (int h = 0; h < n_heads; h++) {
        float *v = x + (size_t)h * head_dim;
        for (int i = 0; i < half; i++) {
            float c = cs[2 * i], s = cs[2 * i + 1];
            int a = neox ? i : 2 * i, b = neox ? i + half : 2 * i + 1;
            float x0 = v[a], x1 = v[b];
            v[a] = x0 * c - x1 * s;
            v[b] = x0 * s + x1 * c;
        }
    }
}
