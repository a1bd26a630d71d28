/* kern_float.c - scalar reference kernels of the float weight types F32,
 * F16 and BF16, and their activation quantizers; see kernels.h.
 *
 * Each float weight type pairs with activations of its own type (F32 x F32,
 * F16 x F16, BF16 x BF16, as llama.cpp's CPU backend does), so there are no
 * block scales: a dot is sum_i float(w_i) * float(a_i). Every product is
 * exact in float for F16 and BF16 (11- and 8-bit significands; BF16 barring
 * overflow or underflow) and rounded once for F32. Products are accumulated
 * in float into LANES partial sums (element i goes to sum i % LANES), which
 * are then added pairwise; that keeps the rounding error well inside the
 * test's 1e-5 * sum|w_i a_i| for rows of tens of thousands of elements.
 *
 * The weights are decoded to floats one chunk at a time and that chunk is
 * used for all n_a activation rows. n may be any count (the block is one
 * element). Quantizers: F32 copies, F16 and BF16 round to nearest even
 * with quant.c's converters (NaN stays a quiet NaN).
 */
#include <string.h>

#include "kernels.h"
#include "quant.h"

#define LANES 16 /* partial sums per activation row */
#define CHUNK 64 /* weights decoded at once; a multiple of LANES */

typedef float (*load_fn)(const void *row, int i);

static inline float load_f32(const void *row, int i) {
    return ((const float *)row)[i];
}
static inline float load_f16(const void *row, int i) {
    return hl_f16_to_f32(((const uint16_t *)row)[i]);
}
static inline float load_bf16(const void *row, int i) {
    const uint32_t bits = (uint32_t)((const uint16_t *)row)[i] << 16;
    float f;
    memcpy(&f, &bits, sizeof f);
    return f;
}

/* The LANES partial sums added as a balanced tree. */
static float lanes_total(float *s) {
    for (int width = LANES / 2; width > 0; width /= 2)
        for (int j = 0; j < width; j++) s[j] += s[j + width];
    return s[0];
}

/* Decodes elements i0..i0+m-1 of a row into f, zero-padded to a multiple
 * of LANES. */
static inline __attribute__((always_inline)) void decode(const void *row, int i0, int m, float *f,
                                                         load_fn load) {
    for (int j = 0; j < m; j++) f[j] = load(row, i0 + j);
    for (int j = m; j % LANES; j++) f[j] = 0.0f;
}

/* Shared body; inlined into each type's kernel with its loader. The inner
 * loop over LANES independent sums is what compilers vectorise. */
static inline __attribute__((always_inline)) void dot_rows(int n, const void *w, const void *a,
                                                           size_t a_stride, int n_a, float *out,
                                                           size_t out_stride, load_fn load) {
    float acc[HL_DOT_MAX_A][LANES] = {{0}};
    float wf[CHUNK], af[CHUNK];
    for (int i0 = 0; i0 < n; i0 += CHUNK) {
        const int m = n - i0 < CHUNK ? n - i0 : CHUNK;
        decode(w, i0, m, wf, load);
        for (int r = 0; r < n_a; r++) {
            decode((const char *)a + (size_t)r * a_stride, i0, m, af, load);
            for (int j0 = 0; j0 < m; j0 += LANES)
                for (int l = 0; l < LANES; l++) acc[r][l] += wf[j0 + l] * af[j0 + l];
        }
    }
    for (int r = 0; r < n_a; r++) out[(size_t)r * out_stride] = lanes_total(acc[r]);
}

static void dot_f32(int n, const void *w, const void *a, size_t a_stride, int n_a, float *out,
                    size_t out_stride) {
    dot_rows(n, w, a, a_stride, n_a, out, out_stride, load_f32);
}

static void dot_f16(int n, const void *w, const void *a, size_t a_stride, int n_a, float *out,
                    size_t out_stride) {
    dot_rows(n, w, a, a_stride, n_a, out, out_stride, load_f16);
}

static void dot_bf16(int n, const void *w, const void *a, size_t a_stride, int n_a, float *out,
                     size_t out_stride) {
    dot_rows(n, w, a, a_stride, n_a, out, out_stride, load_bf16);
}

static void quant_f32(const float *x, void *dst, int n) {
    memcpy(dst, x, sizeof(float) * (size_t)n);
}

static void quant_f16(const float *x, void *dst, int n) {
    uint16_t *h = dst;
    for (int i = 0; i < n; i++) h[i] = hl_f32_to_f16(x[i]);
}

static void quant_bf16(const float *x, void *dst, int n) {
    uint16_t *h = dst;
    for (int i = 0; i < n; i++) h[i] = hl_f32_to_bf16(x[i]);
}

void hl_kernels_fill_scalar_float(hl_kernels *k) {
    k->dot[HL_F32] = dot_f32;
    k->dot[HL_F16] = dot_f16;
    k->dot[HL_BF16] = dot_bf16;
    k->quant[HL_F32] = quant_f32;
    k->quant[HL_F16] = quant_f16;
    k->quant[HL_BF16] = quant_bf16;
}
