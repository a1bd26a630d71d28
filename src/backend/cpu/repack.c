/* repack.c - the 8-row packed layout of Q4_0 / Q8_0 weights (repack.h),
 * the scalar reference kernels on it, and the choice of kernel per path.
 *
 * Math of the scalar kernel, per block b, row r, activation row k: the
 * signed codes c (Q4_0: nibble - 8; Q8_0: stored byte - 128) and the
 * activation codes a give the exact integer s = sum(c * a), and
 *   out[k][r] += (float)s * (d_w[r] * d_a)
 * block after block: the float operations of kern_legacy.c's row kernel,
 * in the same order.
 *
 * Pure functions over caller memory: thread-safe, no allocation.
 */
#include "repack.h"

#include <string.h>

#include "quant.h"

/* Bytes of one packed block; 0 for types without a packed form. */
static size_t packed_block_bytes(hl_dtype t) {
    switch (t) {
    case HL_Q4_0:
        return sizeof(hl_block_q4_0x8);
    case HL_Q8_0:
        return sizeof(hl_block_q8_0x8);
    default:
        return 0;
    }
}

size_t hl_packed_group_bytes(hl_dtype t, int n_in) {
    if (n_in <= 0 || n_in % HL_QK != 0) return 0;
    return (size_t)(n_in / HL_QK) * packed_block_bytes(t);
}

size_t hl_repack_bytes(hl_dtype t, int n_in, int n_out) {
    if (n_out <= 0 || n_out % HL_PACK_ROWS != 0) return 0;
    return hl_packed_group_bytes(t, n_in) * (size_t)(n_out / HL_PACK_ROWS);
}

/* Row r's nb blocks into its lanes of a group. */
static void pack_row_q4_0(const hl_block_q4_0 *row, int nb, int r, hl_block_q4_0x8 *grp) {
    for (int b = 0; b < nb; b++) {
        grp[b].d[r] = row[b].d;
        for (int u = 0; u < 4; u++) memcpy(grp[b].qs[u][r], row[b].qs + 4 * u, 4);
    }
}

static void pack_row_q8_0(const hl_block_q8_0 *row, int nb, int r, hl_block_q8_0x8 *grp) {
    for (int b = 0; b < nb; b++) {
        grp[b].d[r] = row[b].d;
        for (int u = 0; u < 8; u++) {
            uint32_t v;
            memcpy(&v, row[b].qs + 4 * u, 4);
            v ^= 0x80808080u; /* each code's sign bit */
            memcpy(grp[b].qs[u][r], &v, 4);
        }
    }
}

void hl_repack(hl_dtype t, const void *src, size_t src_row_bytes, int n_in, int g0, int g1,
               void *dst) {
    const size_t gb = hl_packed_group_bytes(t, n_in);
    const int nb = n_in / HL_QK;
    for (int g = g0; g < g1; g++) {
        void *grp = (char *)dst + (size_t)g * gb;
        for (int r = 0; r < HL_PACK_ROWS; r++) {
            const void *row = (const char *)src + (size_t)(HL_PACK_ROWS * g + r) * src_row_bytes;
            if (t == HL_Q4_0)
                pack_row_q4_0(row, nb, r, grp);
            else
                pack_row_q8_0(row, nb, r, grp);
        }
    }
}

/* Row r's scale and 32 signed codes in block b of a group: its units
 * gathered back into the row block's order, then decoded. */
static inline float row_codes(hl_dtype t, const void *group, int b, int r, int8_t c[HL_QK]) {
    uint8_t q[HL_QK];
    if (t == HL_Q4_0) {
        const hl_block_q4_0x8 *p = (const hl_block_q4_0x8 *)group + b;
        for (int u = 0; u < 4; u++) memcpy(q + 4 * u, p->qs[u][r], 4);
        for (int j = 0; j < HL_QK / 2; j++) {
            c[j] = (int8_t)((q[j] & 0xf) - 8);
            c[j + HL_QK / 2] = (int8_t)((q[j] >> 4) - 8);
        }
        return hl_f16_to_f32(p->d[r]);
    }
    const hl_block_q8_0x8 *p = (const hl_block_q8_0x8 *)group + b;
    for (int u = 0; u < 8; u++) memcpy(q + 4 * u, p->qs[u][r], 4);
    for (int j = 0; j < HL_QK; j++) c[j] = (int8_t)(q[j] ^ 0x80);
    return hl_f16_to_f32(p->d[r]);
}

static inline void packed_scalar(hl_dtype t, int n_in, const void *group, const void *act,
                                 size_t act_stride, int n_a, float *out, size_t out_stride) {
    float sum[HL_DOT_MAX_A][HL_PACK_ROWS] = {{0}};
    for (int b = 0; b < n_in / HL_QK; b++) {
        const int8_t *a[HL_DOT_MAX_A];
        float da[HL_DOT_MAX_A];
        for (int k = 0; k < n_a; k++) {
            const hl_block_q8_0 *ab =
                (const hl_block_q8_0 *)((const char *)act + k * act_stride) + b;
            a[k] = ab->qs;
            da[k] = hl_f16_to_f32(ab->d);
        }
        for (int r = 0; r < HL_PACK_ROWS; r++) {
            int8_t c[HL_QK];
            const float dw = row_codes(t, group, b, r, c);
            for (int k = 0; k < n_a; k++) {
                int s = 0;
                for (int j = 0; j < HL_QK; j++) s += c[j] * a[k][j];
                sum[k][r] += (float)s * (dw * da[k]);
            }
        }
    }
    for (int k = 0; k < n_a; k++) memcpy(out + k * out_stride, sum[k], sizeof sum[k]);
}

static void packed_q4_0(int n_in, const void *group, const void *act, size_t act_stride, int n_a,
                        float *out, size_t out_stride) {
    packed_scalar(HL_Q4_0, n_in, group, act, act_stride, n_a, out, out_stride);
}

static void packed_q8_0(int n_in, const void *group, const void *act, size_t act_stride, int n_a,
                        float *out, size_t out_stride) {
    packed_scalar(HL_Q8_0, n_in, group, act, act_stride, n_a, out, out_stride);
}

hl_packed_fn hl_packed_kernel_path(hl_dtype t, hl_cpu_path path) {
    if (packed_block_bytes(t) == 0 || !hl_cpu_has_path(path)) return NULL;
    switch (path) {
    case HL_PATH_AMX: /* decodes, and prefills leftover rows, as AVX-512 */
    case HL_PATH_AVX512:
        return hl_packed_avx512(t);
    case HL_PATH_AVX2:
        return hl_packed_avx2(t);
    default:
        return t == HL_Q4_0 ? packed_q4_0 : packed_q8_0;
    }
}

hl_packed_fn hl_packed_kernel(hl_dtype t) {
    return hl_packed_kernel_path(t, hl_kernels_best()->path);
}

hl_packed_gemm_fn hl_packed_gemm_path(hl_dtype t, hl_cpu_path path) {
    if (packed_block_bytes(t) == 0 || path != HL_PATH_AMX || !hl_cpu_has_path(path)) return NULL;
    return hl_packed_gemm_amx(t);
}

hl_packed_gemm_fn hl_packed_gemm(hl_dtype t) {
    return hl_packed_gemm_path(t, hl_kernels_best()->path);
}
