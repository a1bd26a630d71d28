/* test_sampler.c - the sampler (src/engine/sampler.h) and the stop-string
 * matcher (src/engine/stop.h). Distributions are checked empirically with
 * fixed seeds, so every run draws the same numbers. */
#include <math.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "../../src/engine/sampler.h"
#include "../../src/engine/stop.h"
#include "test.h"

/* ---- helpers ---- */

static hl_sampler *mk(int32_t n_vocab, const hl_sampler_params *p) {
    hl_sampler *s = NULL;
    hl_err e = {0};
    if (hl_sampler_init(&s, n_vocab, p, &e) < 0) {
        fprintf(stderr, "sampler init: %s\n", e.msg);
        abort();
    }
    return s;
}

static hl_sampler_params params(float temperature, uint64_t seed) {
    hl_sampler_params p;
    hl_sampler_params_default(&p);
    p.temperature = temperature;
    p.seed = seed;
    return p;
}

/* Draws `draws` tokens and writes the observed frequency of each id. */
static void histogram(hl_sampler *s, const float *logits, int32_t n_vocab, int draws,
                      double *freq) {
    hl_err e = {0};
    for (int32_t i = 0; i < n_vocab; i++) freq[i] = 0;
    for (int d = 0; d < draws; d++) {
        int32_t id = hl_sampler_sample(s, logits, &e);
        if (id < 0 || id >= n_vocab) {
            hl_test_fail(__FILE__, __LINE__, "sample returned %d: %s", id, e.msg);
            return;
        }
        freq[id] += 1.0 / draws;
    }
}

static void softmax(const float *l, int n, float t, double *p) {
    double m = -INFINITY, z = 0;
    for (int i = 0; i < n; i++) m = l[i] > m ? l[i] : m;
    for (int i = 0; i < n; i++) z += p[i] = exp((l[i] - m) / t);
    for (int i = 0; i < n; i++) p[i] /= z;
}

static double max_abs_diff(const double *a, const double *b, int n) {
    double d = 0;
    for (int i = 0; i < n; i++) d = fmax(d, fabs(a[i] - b[i]));
    return d;
}

/* P(token 0) for a 2-token vocab whose processed logits differ by d. */
static double sigmoid(double d) {
    return 1.0 / (1.0 + exp(-d));
}

static uint64_t lcg(uint64_t *x) {
    *x = *x * 6364136223846793005ull + 1442695040888963407ull;
    return *x >> 33;
}

/* ---- sampler ---- */

TEST(sampler_greedy) {
    float l[6] = {0.5f, 2.0f, -1.0f, 3.0f, 3.0f, 1.0f};
    hl_sampler_params p = params(0.0f, 1);
    hl_sampler *s = mk(6, &p);
    hl_err e = {0};
    for (int i = 0; i < 5; i++) CHECK_EQ_INT(hl_sampler_sample(s, l, &e), 3); /* tie -> lowest */
    float neg[6] = {-5.0f, -INFINITY, -4.0f, -7.0f, -INFINITY, -4.5f};
    CHECK_EQ_INT(hl_sampler_sample(s, neg, &e), 2);
    hl_sampler_free(s);
}

/* Plain greedy (what lets the GPU path skip reading logits): temperature 0
 * and nothing that changes the logits. */
TEST(sampler_plain_greedy) {
    hl_sampler_params p = params(0.0f, 1);
    hl_sampler *s = mk(6, &p);
    CHECK(hl_sampler_plain_greedy(s));
    hl_sampler_free(s);
    p = params(0.7f, 1);
    s = mk(6, &p);
    CHECK(!hl_sampler_plain_greedy(s));
    hl_sampler_free(s);
    for (int i = 0; i < 3; i++) { /* each penalty alone */
        p = params(0.0f, 1);
        if (i == 0) p.repetition_penalty = 1.1f;
        if (i == 1) p.presence_penalty = 0.5f;
        if (i == 2) p.frequency_penalty = 0.5f;
        s = mk(6, &p);
        CHECK(!hl_sampler_plain_greedy(s));
        hl_sampler_free(s);
    }
    hl_logit_bias b = {.id = 2, .bias = 1.0f};
    p = params(0.0f, 1);
    p.logit_bias = &b;
    p.n_logit_bias = 1;
    s = mk(6, &p);
    CHECK(!hl_sampler_plain_greedy(s));
    hl_sampler_free(s);
}

TEST(sampler_seed_reproducible) {
    enum { V = 1000, N = 200 };
    static float l[V];
    uint64_t x = 7;
    for (int i = 0; i < V; i++) l[i] = (float)(lcg(&x) % 1000) / 200.0f;
    int32_t a[N], b[N], c[N];
    hl_err e = {0};
    hl_sampler_params p = params(1.0f, 1234);
    p.top_p = 0.95f;
    p.top_k = 500;
    hl_sampler *s1 = mk(V, &p), *s2 = mk(V, &p);
    p.seed = 1235;
    hl_sampler *s3 = mk(V, &p);
    for (int i = 0; i < N; i++) {
        a[i] = hl_sampler_sample(s1, l, &e);
        b[i] = hl_sampler_sample(s2, l, &e);
        c[i] = hl_sampler_sample(s3, l, &e);
    }
    CHECK(memcmp(a, b, sizeof a) == 0);
    CHECK(memcmp(a, c, sizeof a) != 0);
    /* a pinned prefix: the generator and pipeline must not drift across
     * versions or platforms */
    hl_sampler_params q = params(1.0f, 42);
    float l5[5] = {1.0f, 2.0f, 0.5f, 1.5f, 0.0f};
    hl_sampler *s4 = mk(5, &q);
    char seq[17] = {0};
    for (int i = 0; i < 16; i++) seq[i] = (char)('0' + hl_sampler_sample(s4, l5, &e));
    CHECK(strcmp(seq, "0123433331313133") == 0); /* uniforms .084 .379 .680 .925 .992 ... */
    hl_sampler_free(s4);
    hl_sampler_free(s1);
    hl_sampler_free(s2);
    hl_sampler_free(s3);
}

TEST(sampler_topk1_and_small_topp_are_greedy) {
    enum { V = 5000 };
    static float l[V];
    uint64_t x = 99;
    for (int i = 0; i < V; i++) l[i] = (float)(lcg(&x) % 10000) / 1000.0f;
    hl_err e = {0};
    hl_sampler_params g = params(0.0f, 1);
    hl_sampler *sg = mk(V, &g);
    int32_t want = hl_sampler_sample(sg, l, &e);
    hl_sampler_params k1 = params(1.5f, 5);
    k1.top_k = 1;
    hl_sampler_params p0 = params(2.0f, 6);
    p0.top_p = 1e-6f;
    hl_sampler_params m1 = params(1.0f, 7);
    m1.min_p = 1.0f;
    hl_sampler *sk = mk(V, &k1), *sp = mk(V, &p0), *sm = mk(V, &m1);
    for (int i = 0; i < 50; i++) {
        CHECK_EQ_INT(hl_sampler_sample(sk, l, &e), want);
        CHECK_EQ_INT(hl_sampler_sample(sp, l, &e), want);
        CHECK_EQ_INT(hl_sampler_sample(sm, l, &e), want);
    }
    hl_sampler_free(sg);
    hl_sampler_free(sk);
    hl_sampler_free(sp);
    hl_sampler_free(sm);
}

TEST(sampler_distribution_matches_softmax) {
    float l[5] = {1.0f, 2.0f, 0.5f, 1.5f, -0.5f};
    double want[5], got[5];
    const float temps[3] = {1.0f, 0.7f, 1.8f};
    for (int t = 0; t < 3; t++) {
        hl_sampler_params p = params(temps[t], 1000 + (uint64_t)t);
        hl_sampler *s = mk(5, &p);
        histogram(s, l, 5, 100000, got);
        softmax(l, 5, temps[t], want);
        CHECK(max_abs_diff(got, want, 5) < 0.01);
        hl_sampler_free(s);
    }
}

TEST(sampler_topk_topp_minp_distributions) {
    float l[5] = {1.0f, 2.0f, 0.5f, 1.5f, -0.5f};
    double t1[5], got[5], want[5] = {0};
    softmax(l, 5, 1.0f, t1); /* sorted: 1 (.439) 3 (.266) 0 (.161) 2 (.098) 4 (.036) */

    /* top-k 2 at T = 0.5: tokens 1 and 3, renormalized at that temperature */
    hl_sampler_params p = params(0.5f, 11);
    p.top_k = 2;
    hl_sampler *s = mk(5, &p);
    histogram(s, l, 5, 100000, got);
    want[1] = sigmoid((2.0 - 1.5) / 0.5);
    want[3] = 1 - want[1];
    CHECK(max_abs_diff(got, want, 5) < 0.01);
    hl_sampler_free(s);

    /* top-p 0.8: .439 + .266 < 0.8 <= + .161, so tokens 1, 3, 0 */
    p = params(1.0f, 12);
    p.top_p = 0.8f;
    s = mk(5, &p);
    histogram(s, l, 5, 100000, got);
    double z = t1[1] + t1[3] + t1[0];
    double wp[5] = {t1[0] / z, t1[1] / z, 0, t1[3] / z, 0};
    CHECK(max_abs_diff(got, wp, 5) < 0.01);
    hl_sampler_free(s);

    /* min-p 0.3: keeps p >= 0.3 * p_max, i.e. logit >= 2 + ln 0.3 = 0.796: 0, 1, 3 */
    p = params(1.0f, 13);
    p.min_p = 0.3f;
    s = mk(5, &p);
    histogram(s, l, 5, 100000, got);
    CHECK(max_abs_diff(got, wp, 5) < 0.01);
    CHECK_EQ_INT(got[2] == 0 && got[4] == 0, 1);
    hl_sampler_free(s);

    /* min-p after top-p: the intersection (top-p keeps 1, 3, 0; min-p 0.5 keeps 1, 3) */
    p = params(1.0f, 14);
    p.top_p = 0.8f;
    p.min_p = 0.5f;
    s = mk(5, &p);
    histogram(s, l, 5, 100000, got);
    double w2[5] = {0, sigmoid(0.5), 0, 1 - sigmoid(0.5), 0};
    CHECK(max_abs_diff(got, w2, 5) < 0.01);
    hl_sampler_free(s);

    /* top-p reached exactly at the second token (.439 + .266 >= 0.7): 1, 3 */
    p = params(1.0f, 15);
    p.top_p = 0.7f;
    s = mk(5, &p);
    histogram(s, l, 5, 100000, got);
    CHECK(max_abs_diff(got, w2, 5) < 0.01);
    hl_sampler_free(s);
}

/* Exact kept sets through hl_sampler_dist on a 262144 vocab, where the cut
 * falls inside a crowded bucket or in the far tail bucket. */
typedef struct {
    float l;
    int32_t id;
} lid;

static int by_total_order(const void *a, const void *b) {
    const lid *x = a, *y = b;
    if (x->l != y->l) return x->l > y->l ? -1 : 1;
    return (x->id > y->id) - (x->id < y->id);
}

/* 1 when dist holds exactly the ids of want[0, n). */
static int same_set(const hl_token_prob *d, int32_t nd, const lid *want, int32_t n,
                    unsigned char *seen, int32_t v) {
    if (nd != n) return 0;
    memset(seen, 0, (size_t)v);
    for (int32_t i = 0; i < n; i++) seen[want[i].id] = 1;
    for (int32_t i = 0; i < nd; i++)
        if (!seen[d[i].id]) return 0;
    return 1;
}

TEST(sampler_dist_exact_sets) {
    enum { V = 262144 };
    float *l = malloc(V * sizeof *l);
    lid *srt = malloc(V * sizeof *srt);
    unsigned char *seen = malloc(V);
    uint64_t x = 17;
    /* a wide tail over [-60, 0] and a crowd of 1000 within 0.05 of 5, with ties */
    for (int i = 0; i < V; i++) l[i] = -(float)(lcg(&x) % 60000) / 1000.0f;
    for (int i = 0; i < 1000; i++) l[lcg(&x) % V] = 5.0f - (float)(lcg(&x) % 50) / 1000.0f;
    for (int i = 0; i < V; i++) srt[i] = (lid){l[i], i};
    qsort(srt, V, sizeof *srt, by_total_order);
    hl_err e = {0};
    const hl_token_prob *d;

    const int32_t ks[4] = {1, 100, 999, 200000}; /* 200000: cut in the tail bucket */
    for (int t = 0; t < 4; t++) {
        hl_sampler_params p = params(1.3f, 1);
        p.top_k = ks[t];
        hl_sampler *s = mk(V, &p);
        int32_t n = hl_sampler_dist(s, l, &d, &e);
        CHECK(same_set(d, n, srt, ks[t], seen, V));
        double sum = 0;
        for (int32_t i = 0; i < n; i++) sum += d[i].p;
        CHECK_NEAR(sum, 1.0, 1e-4);
        hl_sampler_free(s);
    }

    const float ps[4] = {0.01f, 0.05f, 0.5f, 0.999f};
    for (int t = 0; t < 4; t++) {
        double z = 0, cum = 0;
        for (int i = 0; i < V; i++) z += exp((double)srt[i].l - srt[0].l);
        int32_t want = V;
        for (int i = 0; i < V; i++) {
            cum += exp((double)srt[i].l - srt[0].l);
            if (cum >= ps[t] * z) {
                want = i + 1;
                break;
            }
        }
        hl_sampler_params p = params(0.8f, 1);
        p.top_p = ps[t];
        hl_sampler *s = mk(V, &p);
        int32_t n = hl_sampler_dist(s, l, &d, &e);
        /* float sums may move the cut by one token on a near-tie */
        CHECK(abs(n - want) <= 1);
        CHECK(same_set(d, n, srt, n, seen, V));
        hl_sampler_free(s);
    }
    free(l);
    free(srt);
    free(seen);
}

TEST(sampler_dist_exact_probs) {
    hl_err e = {0};
    const hl_token_prob *d;
    float l[3] = {2.0f, 1.5f, -1.0f};
    /* repetition 1.25 over a 3-token window, presence 0.5 and frequency 0.25
     * over generated tokens, T = 0.5 */
    hl_sampler_params p = params(0.5f, 1);
    p.repetition_penalty = 1.25f;
    p.repetition_context_size = 3;
    p.frequency_penalty = 0.25f;
    p.presence_penalty = 0.5f;
    hl_sampler *s = mk(3, &p);
    int32_t prompt[2] = {0, 2};
    hl_sampler_accept_prompt(s, prompt, 2, &e);
    hl_sampler_accept(s, 1, &e);
    hl_sampler_accept(s, 1, &e); /* window: 2 1 1; 0 left it */
    CHECK_EQ_INT(hl_sampler_dist(s, l, &d, &e), 3);
    /* 0: 2.0; 1: 1.5 / 1.25 (once, though twice in the window) = 1.2, then
     * - 2 * 0.25 - 0.5 = 0.2; 2: -1 * 1.25 = -1.25 */
    float want_l[3] = {2.0f, 0.2f, -1.25f};
    double want[3];
    softmax(want_l, 3, 0.5f, want);
    for (int i = 0; i < 3; i++) CHECK_NEAR(d[i].p, want[d[i].id], 1e-6);
    hl_sampler_free(s);
}

TEST(sampler_repetition_penalty) {
    hl_err e = {0};
    int32_t prompt[3] = {0, 2, 2};
    /* positive logit is divided: 2 / 1.2 = 1.67 > 1.5 keeps 0; 2 / 2 = 1 < 1.5 */
    float pos[3] = {2.0f, 1.5f, -9.0f};
    hl_sampler_params p = params(0.0f, 1);
    p.repetition_penalty = 1.2f;
    hl_sampler *s = mk(3, &p);
    CHECK_EQ_INT(hl_sampler_accept_prompt(s, prompt, 3, &e), 0);
    CHECK_EQ_INT(hl_sampler_sample(s, pos, &e), 0);
    hl_sampler_free(s);
    p.repetition_penalty = 2.0f;
    s = mk(3, &p);
    hl_sampler_accept_prompt(s, prompt, 3, &e);
    CHECK_EQ_INT(hl_sampler_sample(s, pos, &e), 1);
    hl_sampler_free(s);

    /* negative logit is multiplied: -1 * 1.4 = -1.4 > -1.5 keeps 0; * 2 = -2 */
    float neg[3] = {-1.0f, -1.5f, -9.0f};
    p.repetition_penalty = 1.4f;
    s = mk(3, &p);
    hl_sampler_accept_prompt(s, prompt, 3, &e);
    CHECK_EQ_INT(hl_sampler_sample(s, neg, &e), 0);
    hl_sampler_free(s);
    p.repetition_penalty = 2.0f;
    s = mk(3, &p);
    hl_sampler_accept_prompt(s, prompt, 3, &e);
    CHECK_EQ_INT(hl_sampler_sample(s, neg, &e), 1);

    /* a token that left the window is not penalized; generated tokens count */
    p.repetition_context_size = 2;
    hl_sampler_free(s);
    s = mk(3, &p);
    hl_sampler_accept_prompt(s, prompt, 3, &e); /* window: 2 2 */
    CHECK_EQ_INT(hl_sampler_sample(s, pos, &e), 0);
    hl_sampler_accept(s, 0, &e); /* window: 2 0 */
    CHECK_EQ_INT(hl_sampler_sample(s, pos, &e), 1);
    hl_sampler_accept(s, 2, &e);
    hl_sampler_accept(s, 2, &e); /* window: 2 2 */
    CHECK_EQ_INT(hl_sampler_sample(s, pos, &e), 0);
    hl_sampler_free(s);

    /* exact value through the distribution: 0 occurs twice in the window but
     * is penalized once: 2 / 1.25 = 1.6 vs 1.5 */
    float two[2] = {2.0f, 1.5f};
    p = params(1.0f, 77);
    p.repetition_penalty = 1.25f;
    s = mk(2, &p);
    int32_t pr[2] = {0, 0};
    hl_sampler_accept_prompt(s, pr, 2, &e);
    double got[2];
    histogram(s, two, 2, 100000, got);
    CHECK_NEAR(got[0], sigmoid(1.6 - 1.5), 0.01);
    hl_sampler_free(s);
}

TEST(sampler_presence_frequency) {
    hl_err e = {0};
    float l[2] = {3.0f, 0.0f};
    double got[2];
    /* 0 generated 3 times: 3 - 3 * 0.5 - 1.0 = 0.5 */
    hl_sampler_params p = params(1.0f, 31);
    p.frequency_penalty = 0.5f;
    p.presence_penalty = 1.0f;
    hl_sampler *s = mk(2, &p);
    for (int i = 0; i < 3; i++) CHECK_EQ_INT(hl_sampler_accept(s, 0, &e), 0);
    histogram(s, l, 2, 100000, got);
    CHECK_NEAR(got[0], sigmoid(0.5), 0.01);
    hl_sampler_free(s);

    /* negative values encourage: 3 + 2 * 0.5 + 0.25 = 4.25 vs token 1 seen once: 0 + 0.75 */
    p = params(1.0f, 32);
    p.frequency_penalty = -0.5f;
    p.presence_penalty = -0.25f;
    s = mk(2, &p);
    hl_sampler_accept(s, 0, &e);
    hl_sampler_accept(s, 1, &e);
    hl_sampler_accept(s, 0, &e);
    histogram(s, l, 2, 100000, got);
    CHECK_NEAR(got[0], sigmoid(4.25 - 0.75), 0.01);
    hl_sampler_free(s);

    /* prompt tokens do not count */
    p = params(0.0f, 33);
    p.frequency_penalty = 2.0f;
    p.presence_penalty = 2.0f;
    s = mk(2, &p);
    int32_t prompt[4] = {0, 0, 0, 0};
    hl_sampler_accept_prompt(s, prompt, 4, &e);
    CHECK_EQ_INT(hl_sampler_sample(s, l, &e), 0);
    hl_sampler_accept(s, 0, &e); /* 3 - 2 - 2 = -1 < 0 */
    CHECK_EQ_INT(hl_sampler_sample(s, l, &e), 1);
    hl_sampler_free(s);
}

TEST(sampler_logit_bias) {
    hl_err e = {0};
    float l[4] = {50.0f, 1.0f, 0.0f, -3.0f};
    hl_logit_bias ban[1] = {{0, -100.0f}}, force[1] = {{3, 100.0f}};
    hl_sampler_params p = params(0.0f, 1);
    p.logit_bias = ban;
    p.n_logit_bias = 1;
    hl_sampler *s = mk(4, &p);
    CHECK_EQ_INT(hl_sampler_sample(s, l, &e), 1); /* banned despite a 49-logit lead */
    hl_sampler_free(s);

    p.temperature = 1.0f;
    s = mk(4, &p);
    int seen0 = 0;
    for (int i = 0; i < 10000; i++) seen0 += hl_sampler_sample(s, l, &e) == 0;
    CHECK_EQ_INT(seen0, 0);
    hl_sampler_free(s);

    float flat[4] = {1.0f, 2.0f, 0.0f, -3.0f};
    p.logit_bias = force;
    s = mk(4, &p);
    int all3 = 1;
    for (int i = 0; i < 10000; i++) all3 &= hl_sampler_sample(s, flat, &e) == 3;
    CHECK(all3);
    hl_sampler_free(s);

    /* a moderate bias adds: 1 + 1.5 = 2.5 beats 2 */
    hl_logit_bias mid[1] = {{0, 1.5f}};
    p = params(0.0f, 1);
    p.logit_bias = mid;
    p.n_logit_bias = 1;
    s = mk(4, &p);
    CHECK_EQ_INT(hl_sampler_sample(s, flat, &e), 0);
    hl_sampler_free(s);

    /* the caller's array may go away after init */
    hl_logit_bias *tmp = malloc(sizeof *tmp);
    *tmp = (hl_logit_bias){1, -100.0f};
    p.logit_bias = tmp;
    s = mk(4, &p);
    free(tmp);
    CHECK_EQ_INT(hl_sampler_sample(s, flat, &e), 0);
    hl_sampler_free(s);

    /* everything banned: an error, not a token */
    hl_logit_bias all[4] = {{0, -100}, {1, -100}, {2, -100}, {3, -100}};
    p.logit_bias = all;
    p.n_logit_bias = 4;
    p.temperature = 1.0f;
    s = mk(4, &p);
    CHECK_EQ_INT(hl_sampler_sample(s, flat, &e), -1);
    CHECK_STR_CONTAINS(e.msg, "banned");
    hl_sampler_free(s);
}

TEST(sampler_params_validation) {
    hl_err e = {0};
    hl_sampler_params p;
    hl_sampler_params_default(&p);
    CHECK_EQ_INT(hl_sampler_params_check(&p, 100, &e), 0);
    CHECK(p.temperature == 1.0f && p.top_p == 1.0f && p.top_k == 0 && p.min_p == 0.0f);
    CHECK(p.repetition_penalty == 1.0f && p.repetition_context_size == 20);
    hl_sampler_params q;
    hl_sampler_params_default(&q);
    CHECK(p.seed != q.seed); /* fresh random seed each time */

#define BAD(stmt, field, range)                                                                    \
    do {                                                                                           \
        hl_sampler_params b_ = p;                                                                  \
        stmt;                                                                                      \
        CHECK_EQ_INT(hl_sampler_params_check(&b_, 100, &e), -1);                                   \
        CHECK_STR_CONTAINS(e.msg, field);                                                          \
        CHECK_STR_CONTAINS(e.msg, range);                                                          \
    } while (0)
    BAD(b_.temperature = -0.1f, "temperature", "between 0 and 2");
    BAD(b_.temperature = 2.5f, "temperature", "between 0 and 2");
    BAD(b_.temperature = NAN, "temperature", "between 0 and 2");
    BAD(b_.top_k = -1, "top_k", ">= 0");
    BAD(b_.top_p = 0.0f, "top_p", "(0, 1]");
    BAD(b_.top_p = 1.01f, "top_p", "(0, 1]");
    BAD(b_.min_p = -0.01f, "min_p", "[0, 1]");
    BAD(b_.min_p = 1.5f, "min_p", "[0, 1]");
    BAD(b_.repetition_penalty = 0.0f, "repetition_penalty", "> 0");
    BAD(b_.repetition_penalty = INFINITY, "repetition_penalty", "> 0");
    BAD(b_.repetition_context_size = 0, "repetition_context_size", "between 1 and 65536");
    BAD(b_.presence_penalty = 2.5f, "presence_penalty", "between -2 and 2");
    BAD(b_.frequency_penalty = -3.0f, "frequency_penalty", "between -2 and 2");
    hl_logit_bias bad_id[1] = {{100, 1.0f}}, bad_val[1] = {{5, -101.0f}};
    BAD((b_.logit_bias = bad_id, b_.n_logit_bias = 1), "logit_bias token id 100", "[0, 100)");
    BAD((b_.logit_bias = bad_val, b_.n_logit_bias = 1), "logit_bias for token 5",
        "between -100 and 100");
    BAD(b_.n_logit_bias = 5000, "logit_bias", "at most 1024");
#undef BAD

    /* init refuses bad params and leaves *out NULL */
    hl_sampler *s = (hl_sampler *)&p;
    p.top_p = 0;
    CHECK_EQ_INT(hl_sampler_init(&s, 100, &p, &e), -1);
    CHECK(s == NULL);
    CHECK_STR_CONTAINS(e.msg, "top_p");
    p.top_p = 1;
    CHECK_EQ_INT(hl_sampler_init(&s, 0, &p, &e), -1);
    CHECK_STR_CONTAINS(e.msg, "n_vocab");

    /* accept checks ids; sample reports NaN */
    s = mk(10, &p);
    CHECK_EQ_INT(hl_sampler_accept(s, 10, &e), -1);
    CHECK_STR_CONTAINS(e.msg, "out of range");
    int32_t bad[2] = {1, -1};
    CHECK_EQ_INT(hl_sampler_accept_prompt(s, bad, 2, &e), -1);
    CHECK_STR_CONTAINS(e.msg, "position 1");
    float l[10] = {0};
    l[4] = NAN;
    CHECK_EQ_INT(hl_sampler_sample(s, l, &e), -1);
    CHECK_STR_CONTAINS(e.msg, "token 4 is nan");
    l[4] = INFINITY;
    CHECK_EQ_INT(hl_sampler_sample(s, l, &e), -1);
    CHECK_STR_CONTAINS(e.msg, "token 4 is inf");
    hl_sampler_free(s);
}

TEST(sampler_logprobs) {
    hl_err e = {0};
    float l[6] = {1.0f, 3.0f, -2.0f, 3.0f, 0.5f, -INFINITY};
    double p[6];
    softmax(l, 6, 1.0f, p);
    hl_logprob top[20];
    float chosen = 0;
    CHECK_EQ_INT(hl_sampler_logprobs(l, 6, 4, 3, top, &chosen, &e), 3);
    CHECK_NEAR(chosen, log(p[4]), 1e-5);
    CHECK_EQ_INT(top[0].id, 1); /* tie 1/3: lower id first */
    CHECK_EQ_INT(top[1].id, 3);
    CHECK_EQ_INT(top[2].id, 0);
    CHECK_NEAR(top[0].logprob, log(p[1]), 1e-5);
    CHECK_NEAR(top[2].logprob, log(p[0]), 1e-5);
    /* more than the vocab: all of it, sorted */
    CHECK_EQ_INT(hl_sampler_logprobs(l, 6, 5, 20, top, &chosen, &e), 6);
    CHECK(isinf(chosen) && chosen < 0);
    CHECK_EQ_INT(top[4].id, 2);
    CHECK_EQ_INT(top[5].id, 5);
    CHECK_EQ_INT(hl_sampler_logprobs(l, 6, 0, 0, NULL, &chosen, &e), 0);
    CHECK_EQ_INT(hl_sampler_logprobs(l, 6, 6, 1, top, &chosen, &e), -1);
    CHECK_STR_CONTAINS(e.msg, "out of range");
    CHECK_EQ_INT(hl_sampler_logprobs(l, 6, 0, 21, top, &chosen, &e), -1);
    CHECK_STR_CONTAINS(e.msg, "top_logprobs");
}

/* ---- stop strings ---- */

static hl_stop mkstop(int n, const char *const *strs) {
    hl_stop st;
    size_t lens[HL_STOP_MAX];
    hl_err e = {0};
    for (int i = 0; i < n; i++) lens[i] = strlen(strs[i]);
    if (hl_stop_init(&st, strs, lens, n, &e) < 0) {
        fprintf(stderr, "stop init: %s\n", e.msg);
        abort();
    }
    return st;
}

/* Feeds text cut into chunks at the given sizes (0-terminated; the rest
 * goes whole at the end), collects the output and flushes. Returns the
 * feed result of the last call (1 = stopped). */
static int run_stop(hl_stop *st, const char *text, const int *cuts, char *got, size_t *n_got) {
    char out[1024];
    size_t len = strlen(text), pos = 0, n_out;
    hl_err e = {0};
    int r = 0;
    *n_got = 0;
    for (int i = 0; pos < len; i++) {
        size_t c = cuts && cuts[i] ? (size_t)cuts[i] : len - pos;
        if (c > len - pos) c = len - pos;
        r = hl_stop_feed(st, text + pos, c, out, sizeof out, &n_out, &e);
        if (r < 0) {
            hl_test_fail(__FILE__, __LINE__, "feed: %s", e.msg);
            return r;
        }
        memcpy(got + *n_got, out, n_out);
        *n_got += n_out;
        pos += c;
        if (r == 1) break;
    }
    *n_got += hl_stop_flush(st, got + *n_got);
    got[*n_got] = 0;
    return r;
}

TEST(stop_across_chunks) {
    const char *s1[] = {"END"};
    hl_stop st = mkstop(1, s1);
    char got[256];
    size_t n;
    int cuts[] = {3, 4, 1, 0};
    CHECK_EQ_INT(run_stop(&st, "hello END more", cuts, got, &n), 1);
    CHECK(strcmp(got, "hello ") == 0);
    CHECK_EQ_INT(hl_stop_matched(&st), 0);

    /* held bytes come back once they cannot start the stop any more */
    st = mkstop(1, s1);
    char out[512];
    size_t n_out;
    hl_err e = {0};
    CHECK_EQ_INT(hl_stop_feed(&st, "ab E", 4, out, sizeof out, &n_out, &e), 0);
    CHECK_EQ_INT(n_out, 3);
    CHECK_EQ_INT(hl_stop_feed(&st, "N", 1, out, sizeof out, &n_out, &e), 0);
    CHECK_EQ_INT(n_out, 0);
    CHECK_EQ_INT(hl_stop_feed(&st, "x", 1, out, sizeof out, &n_out, &e), 0);
    CHECK(n_out == 3 && memcmp(out, "ENx", 3) == 0);
    CHECK_EQ_INT(hl_stop_matched(&st), -1);

    /* after a stop: nothing more, ever */
    st = mkstop(1, s1);
    CHECK_EQ_INT(hl_stop_feed(&st, "xENDy", 5, out, sizeof out, &n_out, &e), 1);
    CHECK(n_out == 1 && out[0] == 'x');
    CHECK_EQ_INT(hl_stop_feed(&st, "z", 1, out, sizeof out, &n_out, &e), 1);
    CHECK_EQ_INT(n_out, 0);
    CHECK_EQ_INT(hl_stop_flush(&st, out), 0);
}

TEST(stop_overlapping_prefix) {
    const char *s[] = {"abcabd"};
    char got[256];
    size_t n;
    int bytes[] = {1, 1, 1, 1, 1, 1, 1, 1, 1, 0};
    hl_stop st = mkstop(1, s);
    CHECK_EQ_INT(run_stop(&st, "abcabcabd", bytes, got, &n), 1);
    CHECK(strcmp(got, "abc") == 0);
    st = mkstop(1, s);
    CHECK_EQ_INT(run_stop(&st, "abcabcabd", NULL, got, &n), 1);
    CHECK(strcmp(got, "abc") == 0);
    int cuts[] = {5, 0};
    st = mkstop(1, s);
    CHECK_EQ_INT(run_stop(&st, "abcabcabdzz", cuts, got, &n), 1);
    CHECK(strcmp(got, "abc") == 0);
}

TEST(stop_multiple_and_start) {
    char got[256];
    size_t n;
    /* the first to complete wins: "bc" ends before "abcd" would */
    const char *s2[] = {"abcd", "bc"};
    hl_stop st = mkstop(2, s2);
    CHECK_EQ_INT(run_stop(&st, "xabcd", NULL, got, &n), 1);
    CHECK(strcmp(got, "xa") == 0);
    CHECK_EQ_INT(hl_stop_matched(&st), 1);
    /* same end: the longest wins */
    const char *s3[] = {"bc", "abc", "zzz"};
    st = mkstop(3, s3);
    CHECK_EQ_INT(run_stop(&st, "xabcy", NULL, got, &n), 1);
    CHECK(strcmp(got, "x") == 0);
    CHECK_EQ_INT(hl_stop_matched(&st), 1);
    /* a later stop in the list is found too */
    st = mkstop(3, s3);
    int cuts[] = {2, 2, 0};
    CHECK_EQ_INT(run_stop(&st, "q zzz bc", cuts, got, &n), 1);
    CHECK(strcmp(got, "q ") == 0);
    CHECK_EQ_INT(hl_stop_matched(&st), 2);
    /* stop at the very start */
    const char *s4[] = {"STOP"};
    st = mkstop(1, s4);
    CHECK_EQ_INT(run_stop(&st, "STOPxyz", NULL, got, &n), 1);
    CHECK_EQ_INT(n, 0);
    /* UTF-8 stop split inside a character across chunks */
    const char *s5[] = {"\xC3\xA9t\xC3\xA9"}; /* "été" */
    st = mkstop(1, s5);
    int c5[] = {3, 1, 1, 1, 0};
    CHECK_EQ_INT(run_stop(&st, "un \xC3\xA9t\xC3\xA9 chaud", c5, got, &n), 1);
    CHECK(strcmp(got, "un ") == 0);
}

TEST(stop_flush_and_no_stops) {
    char got[256];
    size_t n;
    const char *s[] = {"END", "\n\nUser:"};
    hl_stop st = mkstop(2, s);
    /* text ending in a partial stop: flush gives it back, nothing is lost */
    CHECK_EQ_INT(run_stop(&st, "hello\n\nUse", NULL, got, &n), 0);
    CHECK(strcmp(got, "hello\n\nUse") == 0);
    st = mkstop(2, s);
    CHECK_EQ_INT(run_stop(&st, "the EN", NULL, got, &n), 0);
    CHECK(strcmp(got, "the EN") == 0);
    /* no stop strings: everything passes at once, nothing held */
    st = mkstop(0, NULL);
    char out[300];
    size_t n_out;
    hl_err e = {0};
    CHECK_EQ_INT(hl_stop_feed(&st, "END", 3, out, sizeof out, &n_out, &e), 0);
    CHECK_EQ_INT(n_out, 3);
    CHECK_EQ_INT(hl_stop_feed(&st, NULL, 0, out, sizeof out, &n_out, &e), 0);
    CHECK_EQ_INT(n_out, 0);
}

/* Any chunking gives the result of a naive scan of the whole text: the cut
 * is at the stop that completes first (longest on the same end). */
TEST(stop_chunking_independent) {
    const char *s[] = {"abc", "cab", "bb", "acacb"};
    uint64_t x = 5;
    for (int iter = 0; iter < 2000; iter++) {
        char text[64];
        int len = 1 + (int)(lcg(&x) % 40);
        for (int i = 0; i < len; i++) text[i] = "abc"[lcg(&x) % 3];
        text[len] = 0;
        /* naive */
        int want_cut = len, want_k = -1;
        for (int end = 1; end <= len && want_k < 0; end++)
            for (int k = 0; k < 4; k++) {
                int l = (int)strlen(s[k]);
                if (l <= end && memcmp(text + end - l, s[k], (size_t)l) == 0 &&
                    (want_k < 0 || l > (int)strlen(s[want_k]))) {
                    want_k = k;
                    want_cut = end - l;
                }
            }
        int cuts[64];
        for (int i = 0; i < 63; i++) cuts[i] = 1 + (int)(lcg(&x) % 5);
        cuts[63] = 0;
        hl_stop st = mkstop(4, s);
        char got[128];
        size_t n;
        int r = run_stop(&st, text, cuts, got, &n);
        CHECK_EQ_INT(r, want_k >= 0);
        CHECK_EQ_INT(hl_stop_matched(&st), want_k);
        CHECK(n == (size_t)want_cut && memcmp(got, text, n) == 0);
    }
}

TEST(stop_errors) {
    hl_stop st;
    hl_err e = {0};
    const char *many[17];
    size_t lens[17];
    for (int i = 0; i < 17; i++) many[i] = "x", lens[i] = 1;
    CHECK_EQ_INT(hl_stop_init(&st, many, lens, 17, &e), -1);
    CHECK_STR_CONTAINS(e.msg, "at most 16");
    lens[2] = 0;
    CHECK_EQ_INT(hl_stop_init(&st, many, lens, 3, &e), -1);
    CHECK_STR_CONTAINS(e.msg, "stop string 2 is empty");
    static char big[300];
    memset(big, 'a', sizeof big);
    const char *one[1] = {big};
    size_t l1[1] = {257};
    CHECK_EQ_INT(hl_stop_init(&st, one, l1, 1, &e), -1);
    CHECK_STR_CONTAINS(e.msg, "at most 256");
    l1[0] = 256; /* the limit itself is fine and works */
    CHECK_EQ_INT(hl_stop_init(&st, one, l1, 1, &e), 0);
    char out[600];
    size_t n_out;
    CHECK_EQ_INT(hl_stop_feed(&st, big, 255, out, sizeof out, &n_out, &e), 0);
    CHECK_EQ_INT(n_out, 0);
    CHECK_EQ_INT(hl_stop_feed(&st, "b", 1, out, 10, &n_out, &e), -1);
    CHECK_STR_CONTAINS(e.msg, "too small");
    CHECK_EQ_INT(hl_stop_feed(&st, big, 1, out, sizeof out, &n_out, &e), 1);
    CHECK_EQ_INT(n_out, 0);
}
