/* test_vec.c - the float vector helpers (vec.h): the scalar table against
 * double-precision arithmetic, the AVX2 table (where this CPU has it)
 * against the scalar one, on every size 1..300 (so every tail length) at
 * unaligned offsets, plus guards that nothing past n is written and that
 * the dispatched functions use the chosen table.
 *
 * Bounds: dots to 1e-5 relative to sum |a_i b_i|, the kernels' bound (a
 * lost or doubled term would be off by ~1/n of it); mads to 2^-22 relative to |y| + |a x| (the
 * AVX2 path fuses the multiply-add, the scalar one rounds the product);
 * scale exactly (one rounding either way).
 */
#include <stdint.h>
#include <stdlib.h>

#include "../../src/backend/cpu/quant.h"
#include "../../src/backend/cpu/vec.h"
#include "test.h"

#define VMAX 300
#define GUARD 12345.0f

static uint64_t vr_state;
static float vr_uniform(void) { /* in [-1, 1) */
    vr_state = vr_state * 6364136223846793005ull + 1442695040888963407ull;
    return (float)((double)(vr_state >> 11) * 0x1p-52 - 1.0);
}

typedef struct vec_data {
    float a[VMAX + 1], b[VMAX + 1], y[VMAX + 2];
    uint16_t h[VMAX + 1];
} vec_data;

/* Random rows starting one element in (unaligned for vectors). */
static void fill(vec_data *d, int n) {
    for (int i = 0; i <= n; i++) {
        d->a[i] = vr_uniform() * 4;
        d->b[i] = vr_uniform();
        d->h[i] = hl_f32_to_f16(vr_uniform() * 3);
        d->y[i] = vr_uniform() * 2;
    }
    d->y[n + 1] = GUARD;
}

static void check_dots(const hl_vec_ops *k, const vec_data *d, int n) {
    const float *a = d->a + 1, *b = d->b + 1;
    const uint16_t *h = d->h + 1;
    double exact = 0, mag = 0, exact_h = 0, mag_h = 0;
    for (int i = 0; i < n; i++) {
        exact += (double)a[i] * b[i];
        mag += fabs((double)a[i] * b[i]);
        exact_h += (double)hl_f16_to_f32(h[i]) * b[i];
        mag_h += fabs((double)hl_f16_to_f32(h[i]) * b[i]);
    }
    const hl_vec_ops *ref = hl_vec_ops_scalar();
    float got = k->dot_f32(a, b, n), got_h = k->dot_f16_f32(h, b, n);
    if (k == ref) {
        CHECK_NEAR(got, exact, 1e-5 * mag + 1e-30);
        CHECK_NEAR(got_h, exact_h, 1e-5 * mag_h + 1e-30);
    } else {
        CHECK_NEAR(got, ref->dot_f32(a, b, n), 1e-5 * mag + 1e-30);
        CHECK_NEAR(got_h, ref->dot_f16_f32(h, b, n), 1e-5 * mag_h + 1e-30);
    }
}

/* y := y0 + a x (or y0 * a) by k and by double arithmetic or the scalar
 * table; the element past n must stay GUARD. */
static void check_updates(const hl_vec_ops *k, const vec_data *d, int n) {
    const hl_vec_ops *ref = hl_vec_ops_scalar();
    const float s = d->b[0] * 3;
    float y[VMAX + 2], r[VMAX + 2];
    int bad = 0;
    for (int op = 0; op < 3; op++) {
        memcpy(y, d->y, sizeof y);
        memcpy(r, d->y, sizeof r);
        if (op == 0) {
            k->mad_f32(y + 1, d->a + 1, s, n);
            ref->mad_f32(r + 1, d->a + 1, s, n);
        } else if (op == 1) {
            k->mad_f16(y + 1, d->h + 1, s, n);
            ref->mad_f16(r + 1, d->h + 1, s, n);
        } else {
            k->scale_f32(y + 1, s, n);
            ref->scale_f32(r + 1, s, n);
        }
        for (int i = 1; i <= n; i++) {
            const double x = op == 0 ? d->a[i] : op == 1 ? hl_f16_to_f32(d->h[i]) : 0;
            const double want = op == 2 ? (double)d->y[i] * s : (double)d->y[i] + (double)s * x;
            const double tol =
                op == 2 ? fabs(want) * 0x1p-24 : (fabs(d->y[i]) + fabs(s * x)) * 0x1p-23;
            bad += !(fabs(y[i] - want) <= tol) || !(fabs(y[i] - r[i]) <= 2 * tol);
        }
        bad += y[0] != d->y[0] || y[n + 1] != GUARD;
    }
    if (bad)
        hl_test_fail(__FILE__, __LINE__, "%s updates n=%d: %d wrong elements", k->name, n, bad);
    hl_test_checks++;
}

TEST(vec_every_path_matches_the_reference) {
    const hl_vec_ops *paths[2] = {hl_vec_ops_scalar(), hl_vec_ops_avx2()};
    CHECK(paths[0] != NULL);
    if (!paths[1]) fprintf(stderr, "  vec: no AVX2 on this CPU: skipped\n");
    static vec_data d;
    for (int p = 0; p < 2; p++) {
        if (!paths[p]) continue;
        vr_state = 99;
        for (int n = 0; n <= VMAX; n++) {
            fill(&d, n);
            check_dots(paths[p], &d, n);
            check_updates(paths[p], &d, n);
        }
    }
}

TEST(vec_dispatch_uses_the_best_table) {
    const hl_vec_ops *best = hl_vec_ops_best();
    CHECK(best == hl_vec_ops_scalar() || (best != NULL && best == hl_vec_ops_avx2()));
    const char *want = getenv("HL_CPU_PATH");
    if (hl_vec_ops_avx2() && !(want && strcmp(want, "scalar") == 0))
        CHECK(best == hl_vec_ops_avx2());
    static vec_data d;
    vr_state = 7;
    fill(&d, 37);
    float y[VMAX + 2], r[VMAX + 2];
    memcpy(y, d.y, sizeof y);
    memcpy(r, d.y, sizeof r);
    CHECK(hl_vec_dot_f32(d.a, d.b, 37) == best->dot_f32(d.a, d.b, 37));
    CHECK(hl_vec_dot_f16_f32(d.h, d.b, 37) == best->dot_f16_f32(d.h, d.b, 37));
    hl_vec_mad_f32(y, d.a, 0.5f, 37);
    hl_vec_mad_f16(y, d.h, -0.25f, 37);
    hl_vec_scale_f32(y, 3.0f, 37);
    best->mad_f32(r, d.a, 0.5f, 37);
    best->mad_f16(r, d.h, -0.25f, 37);
    best->scale_f32(r, 3.0f, 37);
    CHECK(memcmp(y, r, sizeof y) == 0);
}

/* The exp-based ops against the libm reference (scalar path): the AVX2 exp
 * is a polynomial, so agreement is to a few ulp, over the whole input range
 * including the overflow / underflow ends and tails of every length. */
/* hl_vec_expf: within 2.5 ulp of e^x (double) over the whole finite range,
 * 0 / +inf past it, NaN kept; and every path's activations use it bit for
 * bit. */
TEST(vec_expf_is_accurate_and_total) {
    int bad = 0;
    double worst = 0;
    for (float x = -103.0f; x < 88.3f; x += 0.0137f) {
        double e = exp((double)x), got = hl_vec_expf(x);
        double ulp = ldexp(1.0, ilogb(e) - 23);
        if (e < 0x1p-126) ulp = 0x1p-149; /* subnormal results */
        double err = fabs(got - e) / ulp;
        worst = err > worst ? err : worst;
        bad += !(err <= 2.5); /* measured at most 2.2 (the algorithm's own bound: 1.45 + 0.5) */
    }
    CHECK_EQ_INT(bad, 0);
    CHECK(worst > 0.0); /* it is an approximation: not libm's expf under another name */
    CHECK(hl_vec_expf(0.0f) == 1.0f);
    CHECK(hl_vec_expf(-200.0f) == 0.0f && hl_vec_expf(-INFINITY) == 0.0f);
    CHECK(isinf(hl_vec_expf(100.0f)) && isinf(hl_vec_expf(INFINITY)));
    CHECK(isnan(hl_vec_expf(NAN)));
    CHECK(hl_vec_expf(-100.0f) > 0.0f && hl_vec_expf(-100.0f) < 0x1p-126f); /* subnormal, not 0 */
}

TEST(vec_activations_and_softmax_are_the_same_bits_on_every_path) {
    const hl_vec_ops *ref = hl_vec_ops_scalar(), *k = hl_vec_ops_avx2();
    if (!k) {
        fprintf(stderr, "  vec: no AVX2 on this CPU: skipped\n");
        k = ref;
    }
    static float g[VMAX], g2[VMAX], u[VMAX], x[VMAX], x2[VMAX];
    vr_state = 5;
    int bad_bits_silu = 0, bad_bits_gelu = 0, bad_softmax = 0, bad_silu = 0, bad_gelu = 0;
    for (int n = 1; n <= VMAX; n += 7) {
        for (int i = 0; i < n; i++) {
            double r = (vr_uniform() + 1.0) / 2; /* [0, 1) */
            g[i] = g2[i] = (float)((r - 0.5) * (i % 5 == 0 ? 300.0 : 16.0)); /* some beyond +-88 */
            u[i] = (float)(r * 3 - 1);
            x[i] = x2[i] = (float)((r - 0.5) * 60.0);
        }
        ref->silu_mul(g, u, n);
        k->silu_mul(g2, u, n);
        for (int i = 0; i < n; i++) bad_bits_silu += memcmp(&g[i], &g2[i], sizeof(float)) != 0;
        for (int i = 0; i < n; i++) {
            float in = (float)((((vr_uniform() + 1.0) / 2) - 0.5) * 16.0), one = 1.0f, o = in;
            ref->silu_mul(&o, &one, 1);
            double want = in / (1.0 + exp(-(double)in));
            bad_silu += !(fabs(o - want) <= 4e-7 * fabs(want) + 1e-30);
        }
        for (int i = 0; i < n; i++) g[i] = g2[i] = x[i] / 2; /* [-15, 15): both cut-offs */
        ref->gelu_mul(g, u, n);
        k->gelu_mul(g2, u, n);
        for (int i = 0; i < n; i++) {
            bad_bits_gelu += memcmp(&g[i], &g2[i], sizeof(float)) != 0;
            float xi = x[i] / 2, want;
            if (xi <= -10.0f) want = 0.0f;
            else if (xi >= 10.0f) want = xi * u[i];
            else {
                float h = hl_f16_to_f32(hl_f32_to_f16(xi));
                float t = 0.5f * h * (1.0f + tanhf(0.7978845608028654f * h * (1.0f + 0.044715f * h * h)));
                want = hl_f16_to_f32(hl_f32_to_f16(t)) * u[i];
            }
            bad_gelu += memcmp(&g[i], &want, sizeof(float)) != 0;
        }
        ref->softmax(x, n);
        k->softmax(x2, n);
        double s = 0;
        for (int i = 0; i < n; i++) {
            bad_softmax += !(fabsf(x[i] - x2[i]) <= 1e-6f * x[i] + 1e-12f); /* sums in another order */
            s += x2[i];
        }
        bad_softmax += !(fabs(s - 1) < 1e-5);
    }
    CHECK_EQ_INT(bad_bits_silu, 0);
    CHECK_EQ_INT(bad_bits_gelu, 0);
    CHECK_EQ_INT(bad_softmax, 0);
    CHECK_EQ_INT(bad_silu, 0);
    CHECK_EQ_INT(bad_gelu, 0);
    float big[3] = {1000.0f, -1000.0f, 0.0f}, one[3] = {1, 1, 1};
    k->silu_mul(big, one, 3);
    CHECK(big[0] == 1000.0f && big[1] == 0.0f && big[2] == 0.0f);
}

/* The cache-block attention ops against the row helpers of the scalar path,
 * for head sizes with and without a multiple-of-8 / 32 / 64 fast path. */
TEST(vec_block_attention_ops_match_the_reference) {
    const hl_vec_ops *ref = hl_vec_ops_scalar(), *k = hl_vec_ops_avx2();
    if (!k) k = ref;
    enum { NR = 33, DMAX = 256 };
    static float rows[NR * DMAX], q[DMAX], w[NR], o1[DMAX], o2[DMAX], s1[NR], s2[NR];
    static uint16_t hrows[NR * DMAX];
    const int dims[] = {1, 7, 8, 24, 40, 64, 72, 96, 128, 200, 256};
    vr_state = 11;
    int bad = 0;
    for (size_t di = 0; di < sizeof dims / sizeof *dims; di++) {
        int dim = dims[di];
        for (int i = 0; i < NR * dim; i++) {
            rows[i] = vr_uniform();
            hrows[i] = hl_f32_to_f16(rows[i]);
        }
        for (int i = 0; i < dim; i++) q[i] = vr_uniform();
        for (int i = 0; i < NR; i++) w[i] = (vr_uniform() + 1) / NR;
        for (int h = 0; h < 2; h++) {
            for (int n = 1; n <= NR; n += 8) {
                if (h) {
                    ref->dots_f16(s1, hrows, n, q, dim);
                    k->dots_f16(s2, hrows, n, q, dim);
                } else {
                    ref->dots_f32(s1, rows, n, q, dim);
                    k->dots_f32(s2, rows, n, q, dim);
                }
                for (int i = 0; i < n; i++) bad += !(fabsf(s1[i] - s2[i]) <= 1e-5f * dim);
                for (int i = 0; i < dim; i++) o1[i] = o2[i] = vr_uniform();
                if (h) {
                    ref->wsum_f16(o1, hrows, n, w, dim);
                    k->wsum_f16(o2, hrows, n, w, dim);
                } else {
                    ref->wsum_f32(o1, rows, n, w, dim);
                    k->wsum_f32(o2, rows, n, w, dim);
                }
                for (int i = 0; i < dim; i++) bad += !(fabsf(o1[i] - o2[i]) <= 1e-5f);
            }
        }
    }
    CHECK_EQ_INT(bad, 0);
    float x1[19], x2[19];
    for (int i = 0; i < 19; i++) x1[i] = x2[i] = vr_uniform() * 1000;
    ref->round_f16(x1, 19);
    k->round_f16(x2, 19);
    CHECK(memcmp(x1, x2, sizeof x1) == 0);
    CHECK(x1[3] == hl_f16_to_f32(hl_f32_to_f16(x1[3])));
}
