/* cpu.c - scalar reference kernels of the CPU backend; see cpu.h.
 *
 * The matmul has two shapes. Decode (one token) streams each weight row once
 * through the fused dequantize-dot of quant.c. Prefill (many tokens)
 * dequantizes a tile of ROWS weight rows into the thread's scratch and
 * multiplies it with every token, so each weight byte is decoded once per
 * batch and the activations of one token stay in L1 across the tile.
 */
#include "cpu.h"

#include <math.h>
#include <string.h>

#include "quant.h"

#define ROWS 16 /* weight rows per prefill task */

size_t hl_cpu_matmul_scratch(int n_in, int n_tok, int n_threads) {
    /* [rounded activations: n_tok * n_in][per thread: ROWS rows + one quantized row] */
    size_t q_row = (size_t)n_in + 64; /* a Q8_K row (292/256 bytes per value) fits in n_in + 64 floats */
    return (size_t)n_tok * n_in + (size_t)n_threads * ((size_t)ROWS * n_in + q_row);
}

/* The activation type paired with weight type t (HL_F32: none). */
static hl_dtype act_type(hl_dtype t) {
    switch (t) {
    case HL_Q4_0: case HL_Q4_1: case HL_Q5_0: case HL_Q5_1: case HL_Q8_0: return HL_Q8_0;
    case HL_Q2_K: case HL_Q3_K: case HL_Q4_K: case HL_Q5_K: case HL_Q6_K: return HL_Q8_K;
    case HL_F16: return HL_F16;
    case HL_BF16: return HL_BF16;
    default: return HL_F32;
    }
}

float hl_cpu_dot(const float *a, const float *b, int n) {
    float s[8] = {0};
    int i = 0;
    for (; i + 8 <= n; i += 8)
        for (int j = 0; j < 8; j++) s[j] += a[i + j] * b[i + j];
    float r = ((s[0] + s[1]) + (s[2] + s[3])) + ((s[4] + s[5]) + (s[6] + s[7]));
    for (; i < n; i++) r += a[i] * b[i];
    return r;
}

void hl_cpu_get_row(const hl_mat *w, int r, float *out) {
    hl_dequantize_row(w->type, (const uint8_t *)w->data + (size_t)r * w->row_bytes, out, w->n_in);
}

typedef struct mm_job {
    const hl_mat *w;
    const float *x;
    float *y;
    int n_tok;
    int rows_per_task;
    hl_dtype act;
    float *xr;      /* rounded activations */
    float *scratch; /* per thread */
    size_t scratch_per_thread;
} mm_job;

/* Rounds token t's activations through the weight's activation type. */
static void mm_round_task(void *arg, int t, int thread) {
    const mm_job *j = arg;
    int n = j->w->n_in;
    void *q = j->scratch + (size_t)thread * j->scratch_per_thread + (size_t)ROWS * n;
    hl_quantize_row(j->act, j->x + (size_t)t * n, q, n);
    hl_dequantize_row(j->act, q, j->xr + (size_t)t * n, n);
}

static void mm_decode_task(void *arg, int task, int thread) {
    (void)thread;
    const mm_job *j = arg;
    const hl_mat *w = j->w;
    int r0 = task * j->rows_per_task, r1 = r0 + j->rows_per_task;
    if (r1 > w->n_out) r1 = w->n_out;
    const uint8_t *base = w->data;
    for (int r = r0; r < r1; r++)
        j->y[r] = hl_dot_row_f32(w->type, base + (size_t)r * w->row_bytes, j->x, w->n_in);
}

static void mm_prefill_task(void *arg, int task, int thread) {
    const mm_job *j = arg;
    const hl_mat *w = j->w;
    int r0 = task * ROWS, r1 = r0 + ROWS;
    if (r1 > w->n_out) r1 = w->n_out;
    const float *rows;
    if (w->type == HL_F32) {
        rows = (const float *)((const uint8_t *)w->data + (size_t)r0 * w->row_bytes);
    } else {
        float *buf = j->scratch + (size_t)thread * j->scratch_per_thread;
        for (int r = r0; r < r1; r++) hl_cpu_get_row(w, r, buf + (size_t)(r - r0) * w->n_in);
        rows = buf;
    }
    for (int t = 0; t < j->n_tok; t++) {
        const float *xt = j->x + (size_t)t * w->n_in;
        float *yt = j->y + (size_t)t * w->n_out;
        for (int r = r0; r < r1; r++) yt[r] = hl_cpu_dot(rows + (size_t)(r - r0) * w->n_in, xt, w->n_in);
    }
}

void hl_cpu_matmul(hl_pool *pool, const hl_mat *w, const float *x, int n_tok, float *y,
                   float *scratch) {
    mm_job j = {.w = w, .x = x, .y = y, .n_tok = n_tok, .act = act_type(w->type),
                .xr = scratch, .scratch = scratch + (size_t)n_tok * w->n_in,
                .scratch_per_thread = (size_t)ROWS * w->n_in + (size_t)w->n_in + 64};
    if (j.act != HL_F32 && hl_dtype_row_size(j.act, (uint64_t)w->n_in)) {
        hl_pool_run(pool, mm_round_task, &j, n_tok);
        j.x = j.xr;
    }
    if (n_tok == 1) {
        /* Enough tasks for balance, few enough that handing them out is free. */
        int n_tasks = hl_pool_threads(pool) * 8;
        j.rows_per_task = (w->n_out + n_tasks - 1) / n_tasks;
        if (j.rows_per_task < 4) j.rows_per_task = 4;
        hl_pool_run(pool, mm_decode_task, &j, (w->n_out + j.rows_per_task - 1) / j.rows_per_task);
    } else {
        hl_pool_run(pool, mm_prefill_task, &j, (w->n_out + ROWS - 1) / ROWS);
    }
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

void hl_cpu_rope(float *x, int n_heads, int head_dim, int n_rot, int pos, float base, float scale,
                 const float *freq_factors, int neox) {
    int half = n_rot / 2;
    for (int i = 0; i < half; i++) {
        float theta = scale * (float)pos * powf(base, -2.0f * (float)i / (float)n_rot);
        if (freq_factors) theta /= freq_factors[i];
        float c = cosf(theta), s = sinf(theta);
        for (int h = 0; h < n_heads; h++) {
            float *v = x + (size_t)h * head_dim;
            int a = neox ? i : 2 * i, b = neox ? i + half : 2 * i + 1;
            float x0 = v[a], x1 = v[b];
            v[a] = x0 * c - x1 * s;
            v[b] = x0 * s + x1 * c;
        }
    }
}

void hl_cpu_softmax(float *x, int n) {
    float mx = -INFINITY;
    for (int i = 0; i < n; i++) mx = x[i] > mx ? x[i] : mx;
    double sum = 0;
    for (int i = 0; i < n; i++) {
        x[i] = expf(x[i] - mx);
        sum += x[i];
    }
    float inv = (float)(1.0 / sum);
    for (int i = 0; i < n; i++) x[i] *= inv;
}

float hl_cpu_silu(float x) { return x / (1.0f + expf(-x)); }

float hl_cpu_gelu(float x) {
    const float k = 0.7978845608028654f; /* sqrt(2/pi) */
    return 0.5f * x * (1.0f + tanhf(k * (x + 0.044715f * x * x * x)));
}
