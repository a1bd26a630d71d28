/* sampler.c - see sampler.h for the contract and the order of operations.
 *
 * Layout. cand[n_vocab] holds (value, id) pairs: hl_sampler_dist copies the
 * logits into it (cand[i].id == i until the first filter runs), applies bias
 * and penalties by index, then filters by moving the kept candidates to the
 * front and shrinking n, and finally turns the values into probabilities in
 * place. Top-k and top-p bucket the candidates (see bucket_of) and then use
 * a deterministic quickselect / quicksort inside one bucket, under one total
 * order (logit descending, then id ascending), so ties and results never
 * depend on the platform's qsort (which may also allocate).
 *
 * The repetition window is a ring of the last repetition_context_size
 * accepted ids; a byte per vocab entry marks the ids already penalized while
 * the ring is walked, and is cleared again after. Presence/frequency keep a
 * count per vocab entry and the list of distinct generated ids, so applying
 * them costs the number of distinct generated tokens, not n_vocab.
 */
#include "sampler.h"

#include <math.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>
#include <time.h>

#define N_BUCKETS 1024
#define BUCKETS_PER_LOGIT 32

/* cand.p holds the (biased, penalized) logit until the final softmax. */
typedef hl_token_prob cand;

struct hl_sampler {
    hl_sampler_params p; /* p.logit_bias points at bias below */
    int32_t n_vocab;
    cand *cand;          /* [n_vocab] */
    hl_logit_bias *bias; /* [p.n_logit_bias] */
    int32_t *ring;       /* [p.repetition_context_size], NULL when the penalty is off */
    int32_t ring_pos;    /* next slot to write */
    int32_t ring_fill;   /* slots in use */
    uint8_t *mark;       /* [n_vocab], all zero between calls */
    int32_t *gen_count;  /* [n_vocab], NULL when presence/frequency are off */
    int32_t *gen_list;   /* [n_vocab] distinct generated ids, first-seen order */
    int32_t n_gen_list;
    uint64_t rng[4];           /* xoshiro256** state */
    uint32_t count[N_BUCKETS]; /* top-k / top-p scratch, see bucket_of */
    double mass[N_BUCKETS];
};

/* ---- random numbers: splitmix64 seeds xoshiro256** ---- */

static uint64_t splitmix64(uint64_t *x) {
    uint64_t z = (*x += 0x9E3779B97F4A7C15ull);
    z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
    z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
    return z ^ (z >> 31);
}

static uint64_t rotl(uint64_t x, int k) {
    return (x << k) | (x >> (64 - k));
}

static uint64_t xoshiro_next(uint64_t s[4]) {
    uint64_t r = rotl(s[1] * 5, 7) * 9;
    uint64_t t = s[1] << 17;
    s[2] ^= s[0];
    s[3] ^= s[1];
    s[1] ^= s[2];
    s[0] ^= s[3];
    s[2] ^= t;
    s[3] = rotl(s[3], 45);
    return r;
}

/* Uniform in [0, 1) with 53 random bits. */
static double rng_uniform(uint64_t s[4]) {
    return (double)(xoshiro_next(s) >> 11) * 0x1.0p-53;
}

/* ---- ordering, selection and sorting of candidates ---- */

/* The one total order: larger logit first, then lower id. */
static inline bool before(const cand *a, const cand *b) {
    return a->p > b->p || (a->p == b->p && a->id < b->id);
}

static inline void swap_cand(cand *a, cand *b) {
    cand t = *a;
    *a = *b;
    *b = t;
}

/* Pivot positions come from a fixed-seed LCG: deterministic, and no input
 * pattern (sorted, reversed, flat) can make it quadratic by construction. */
static size_t pick(uint64_t *r, size_t lo, size_t hi) {
    *r = *r * 6364136223846793005ull + 1442695040888963407ull;
    return lo + (size_t)((*r >> 33) % (hi - lo));
}

/* Partitions c[lo, hi) around c[piv]; returns the pivot's final index. */
static size_t partition(cand *c, size_t lo, size_t hi, size_t piv) {
    swap_cand(&c[piv], &c[hi - 1]);
    cand pv = c[hi - 1];
    size_t st = lo;
    for (size_t i = lo; i < hi - 1; i++)
        if (before(&c[i], &pv)) swap_cand(&c[i], &c[st++]);
    swap_cand(&c[st], &c[hi - 1]);
    return st;
}

/* Moves the k first candidates in the total order to c[0, k), in no
 * particular order. 0 < k < n. */
static void select_top(cand *c, size_t n, size_t k) {
    uint64_t r = 0x2545F4914F6CDD1Dull;
    size_t lo = 0, hi = n;
    while (hi - lo > 1) {
        size_t p = partition(c, lo, hi, pick(&r, lo, hi));
        if (p == k) return;
        if (p < k)
            lo = p + 1;
        else
            hi = p;
    }
}

static void sort_range(cand *c, size_t lo, size_t hi, uint64_t *r) {
    while (hi - lo > 16) {
        size_t p = partition(c, lo, hi, pick(r, lo, hi));
        /* recurse into the smaller side: stack depth stays O(log n) */
        if (p - lo < hi - p - 1) {
            sort_range(c, lo, p, r);
            lo = p + 1;
        } else {
            sort_range(c, p + 1, hi, r);
            hi = p;
        }
    }
    for (size_t i = lo + 1; i < hi; i++) {
        cand x = c[i];
        size_t j = i;
        while (j > lo && before(&x, &c[j - 1])) {
            c[j] = c[j - 1];
            j--;
        }
        c[j] = x;
    }
}

static void sort_cands(cand *c, size_t n) {
    uint64_t r = 0x9E3779B97F4A7C15ull;
    if (n > 1) sort_range(c, 0, n, &r);
}

/* ---- parameters ---- */

void hl_sampler_params_default(hl_sampler_params *p) {
    uint64_t seed = 0;
    if (getrandom(&seed, sizeof seed, GRND_NONBLOCK) != (ssize_t)sizeof seed) {
        /* no entropy source: mix the clock and an address, good enough for
         * a seed nobody asked to reproduce */
        struct timespec ts;
        clock_gettime(CLOCK_MONOTONIC, &ts);
        uint64_t x = (uint64_t)ts.tv_sec * 1000000000ull + (uint64_t)ts.tv_nsec;
        x ^= (uint64_t)(uintptr_t)p;
        seed = splitmix64(&x);
    }
    *p = (hl_sampler_params){
        .temperature = 1.0f,
        .top_k = 0,
        .top_p = 1.0f,
        .min_p = 0.0f,
        .repetition_penalty = 1.0f,
        .repetition_context_size = 20,
        .presence_penalty = 0.0f,
        .frequency_penalty = 0.0f,
        .seed = seed,
        .logit_bias = NULL,
        .n_logit_bias = 0,
    };
}

int hl_sampler_params_check(const hl_sampler_params *p, int32_t n_vocab, hl_err *e) {
    /* written as !(in range) so NaN fails every check */
    if (!(p->temperature >= 0.0f && p->temperature <= 2.0f))
        return hl_errf(e, "temperature is %g; it must be between 0 and 2 (0 = greedy)",
                       (double)p->temperature);
    if (p->top_k < 0) return hl_errf(e, "top_k is %d; it must be >= 0 (0 = off)", p->top_k);
    if (!(p->top_p > 0.0f && p->top_p <= 1.0f))
        return hl_errf(e, "top_p is %g; it must be in (0, 1] (1 = off)", (double)p->top_p);
    if (!(p->min_p >= 0.0f && p->min_p <= 1.0f))
        return hl_errf(e, "min_p is %g; it must be in [0, 1] (0 = off)", (double)p->min_p);
    if (!(p->repetition_penalty > 0.0f && isfinite(p->repetition_penalty)))
        return hl_errf(e, "repetition_penalty is %g; it must be a finite number > 0 (1 = off)",
                       (double)p->repetition_penalty);
    if (p->repetition_context_size < 1 || p->repetition_context_size > HL_SAMPLER_MAX_REP_CONTEXT)
        return hl_errf(e, "repetition_context_size is %d; it must be between 1 and %d",
                       p->repetition_context_size, HL_SAMPLER_MAX_REP_CONTEXT);
    if (!(p->presence_penalty >= -2.0f && p->presence_penalty <= 2.0f))
        return hl_errf(e, "presence_penalty is %g; it must be between -2 and 2",
                       (double)p->presence_penalty);
    if (!(p->frequency_penalty >= -2.0f && p->frequency_penalty <= 2.0f))
        return hl_errf(e, "frequency_penalty is %g; it must be between -2 and 2",
                       (double)p->frequency_penalty);
    if (p->n_logit_bias < 0 || p->n_logit_bias > HL_SAMPLER_MAX_LOGIT_BIAS)
        return hl_errf(e, "logit_bias has %d entries; at most %d are allowed", p->n_logit_bias,
                       HL_SAMPLER_MAX_LOGIT_BIAS);
    if (p->n_logit_bias > 0 && !p->logit_bias)
        return hl_errf(e, "logit_bias is NULL but n_logit_bias is %d", p->n_logit_bias);
    for (int32_t i = 0; i < p->n_logit_bias; i++) {
        const hl_logit_bias *b = &p->logit_bias[i];
        if (b->id < 0 || b->id >= n_vocab)
            return hl_errf(e, "logit_bias token id %d is out of range; it must be in [0, %d)",
                           b->id, n_vocab);
        if (!(b->bias >= -100.0f && b->bias <= 100.0f))
            return hl_errf(e, "logit_bias for token %d is %g; it must be between -100 and 100",
                           b->id, (double)b->bias);
    }
    return 0;
}

/* ---- lifetime ---- */

int hl_sampler_init(hl_sampler **out, int32_t n_vocab, const hl_sampler_params *p, hl_err *e) {
    *out = NULL;
    if (n_vocab <= 0) return hl_errf(e, "sampler: n_vocab is %d; it must be > 0", n_vocab);
    if (hl_sampler_params_check(p, n_vocab, e) < 0) return -1;

    hl_sampler *s = calloc(1, sizeof *s);
    if (!s) return hl_errf(e, "sampler: out of memory");
    s->p = *p;
    s->n_vocab = n_vocab;
    size_t nv = (size_t)n_vocab;
    bool ok = (s->cand = malloc(nv * sizeof *s->cand)) != NULL;
    if (ok && p->n_logit_bias > 0) {
        ok = (s->bias = malloc((size_t)p->n_logit_bias * sizeof *s->bias)) != NULL;
        if (ok) memcpy(s->bias, p->logit_bias, (size_t)p->n_logit_bias * sizeof *s->bias);
    }
    s->p.logit_bias = s->bias;
    if (ok && p->repetition_penalty != 1.0f) {
        ok = (s->ring = malloc((size_t)p->repetition_context_size * sizeof *s->ring)) != NULL &&
             (s->mark = calloc(nv, 1)) != NULL;
    }
    if (ok && (p->presence_penalty != 0.0f || p->frequency_penalty != 0.0f)) {
        ok = (s->gen_count = calloc(nv, sizeof *s->gen_count)) != NULL &&
             (s->gen_list = malloc(nv * sizeof *s->gen_list)) != NULL;
    }
    if (!ok) {
        hl_sampler_free(s);
        return hl_errf(e, "sampler: out of memory allocating scratch for %d vocab entries",
                       n_vocab);
    }
    uint64_t x = p->seed;
    for (int i = 0; i < 4; i++) s->rng[i] = splitmix64(&x);
    *out = s;
    return 0;
}

void hl_sampler_free(hl_sampler *s) {
    if (!s) return;
    free(s->cand);
    free(s->bias);
    free(s->ring);
    free(s->mark);
    free(s->gen_count);
    free(s->gen_list);
    free(s);
}

/* ---- history ---- */

static void ring_push(hl_sampler *s, int32_t id) {
    s->ring[s->ring_pos] = id;
    s->ring_pos = (s->ring_pos + 1) % s->p.repetition_context_size;
    if (s->ring_fill < s->p.repetition_context_size) s->ring_fill++;
}

int hl_sampler_accept_prompt(hl_sampler *s, const int32_t *ids, int32_t n, hl_err *e) {
    if (n < 0 || (n > 0 && !ids)) return hl_errf(e, "sampler: bad prompt (%d ids)", n);
    for (int32_t i = 0; i < n; i++)
        if (ids[i] < 0 || ids[i] >= s->n_vocab)
            return hl_errf(e, "prompt token %d at position %d is out of range [0, %d)", ids[i], i,
                           s->n_vocab);
    if (!s->ring) return 0;
    /* only the last window's worth can still matter */
    int32_t from = n > s->p.repetition_context_size ? n - s->p.repetition_context_size : 0;
    for (int32_t i = from; i < n; i++) ring_push(s, ids[i]);
    return 0;
}

int hl_sampler_accept(hl_sampler *s, int32_t id, hl_err *e) {
    if (id < 0 || id >= s->n_vocab)
        return hl_errf(e, "accepted token %d is out of range [0, %d)", id, s->n_vocab);
    if (s->ring) ring_push(s, id);
    if (s->gen_count) {
        if (s->gen_count[id]++ == 0) s->gen_list[s->n_gen_list++] = id;
    }
    return 0;
}

/* ---- sampling ---- */

static void apply_bias_and_penalties(hl_sampler *s) {
    cand *c = s->cand; /* indexed by id: no filter has run yet */
    for (int32_t i = 0; i < s->p.n_logit_bias; i++) {
        const hl_logit_bias *b = &s->bias[i];
        if (b->bias == -100.0f)
            c[b->id].p = -INFINITY;
        else
            c[b->id].p += b->bias;
    }
    if (s->ring) {
        float rp = s->p.repetition_penalty;
        for (int32_t i = 0; i < s->ring_fill; i++) {
            int32_t id = s->ring[i];
            if (s->mark[id]) continue;
            s->mark[id] = 1;
            float l = c[id].p;
            c[id].p = l > 0.0f ? l / rp : l * rp;
        }
        for (int32_t i = 0; i < s->ring_fill; i++) s->mark[s->ring[i]] = 0;
    }
    if (s->gen_count) {
        float fp = s->p.frequency_penalty, pp = s->p.presence_penalty;
        for (int32_t i = 0; i < s->n_gen_list; i++) {
            int32_t id = s->gen_list[i];
            c[id].p -= (float)s->gen_count[id] * fp + pp;
        }
    }
}

/* Buckets by distance below the max logit m: bucket b holds logits in
 * (m - (b+1)/32, m - b/32], the last one everything further down (and
 * -inf). The bucket index never decreases as the logit decreases, so every
 * candidate of a lower bucket comes before every candidate of a higher one
 * in the total order: top-k and top-p find their cut bucket from per-bucket
 * counts or masses in one pass, and only that bucket is selected or sorted. */
static inline uint32_t bucket_of(float l, float m) {
    float d = (m - l) * (float)BUCKETS_PER_LOGIT;
    return d < (float)(N_BUCKETS - 1) ? (uint32_t)d : N_BUCKETS - 1;
}

/* Moves the candidates of buckets below b to the front, then those of
 * bucket b. Returns how many are below b; *n_eq gets how many are in b. */
static size_t partition_buckets(cand *c, size_t n, float m, uint32_t b, size_t *n_eq) {
    size_t lt = 0;
    for (size_t i = 0; i < n; i++)
        if (bucket_of(c[i].p, m) < b) swap_cand(&c[i], &c[lt++]);
    size_t eq = lt;
    for (size_t i = lt; i < n; i++)
        if (bucket_of(c[i].p, m) == b) swap_cand(&c[i], &c[eq++]);
    *n_eq = eq - lt;
    return lt;
}

/* Keeps the k first of c[0, n) in the total order at c[0, k). 0 < k < n. */
static void top_k(hl_sampler *s, size_t n, float m, size_t k) {
    cand *c = s->cand;
    memset(s->count, 0, sizeof s->count);
    for (size_t i = 0; i < n; i++) s->count[bucket_of(c[i].p, m)]++;
    uint32_t b = 0;
    size_t below = 0;
    while (below + s->count[b] < k) below += s->count[b++];
    size_t n_eq, n_lt = partition_buckets(c, n, m, b, &n_eq);
    if (k - n_lt < n_eq) select_top(c + n_lt, n_eq, k - n_lt);
}

/* Fills s->mass with each bucket's sum of exp(logit - m) over c[0, n) and
 * returns the total. */
static double bucket_masses(hl_sampler *s, size_t n, float m) {
    double z = 0.0;
    memset(s->mass, 0, sizeof s->mass);
    for (size_t i = 0; i < n; i++) {
        float w = expf(s->cand[i].p - m);
        s->mass[bucket_of(s->cand[i].p, m)] += w;
        z += w;
    }
    return z;
}

/* Top-p over c[0, n), with s->mass from the set top-p is defined on (which
 * may be larger than c[0, n): min-p may have removed its tail already).
 * Keeps the sorted prefix whose mass first reaches target; only the cut
 * bucket is sorted. Returns the number kept. */
static size_t top_p_cut(hl_sampler *s, size_t n, float m, double target) {
    cand *c = s->cand;
    uint32_t b = 0;
    double cum = 0.0;
    while (b < N_BUCKETS - 1 && cum + s->mass[b] < target) cum += s->mass[b++];
    size_t n_eq, n_lt = partition_buckets(c, n, m, b, &n_eq);
    sort_cands(c + n_lt, n_eq);
    for (size_t i = n_lt; i < n_lt + n_eq; i++) {
        cum += expf(c[i].p - m);
        if (cum >= target) return i + 1;
    }
    return n_lt + n_eq; /* rounding kept the sum just under p: keep the bucket */
}

int32_t hl_sampler_dist(hl_sampler *s, const float *logits, const hl_token_prob **dist, hl_err *e) {
    cand *c = s->cand;
    size_t n = (size_t)s->n_vocab;
    *dist = c;
    for (size_t i = 0; i < n; i++) {
        if (!(logits[i] < INFINITY)) /* NaN or +inf */
            return hl_errf(e, "sampler: logit of token %zu is %g; the forward pass is broken", i,
                           (double)logits[i]);
        c[i].p = logits[i];
        c[i].id = (int32_t)i;
    }
    apply_bias_and_penalties(s);

    /* the max in the total order: greedy's answer, and softmax's shift */
    size_t best = 0;
    for (size_t i = 1; i < n; i++)
        if (c[i].p > c[best].p) best = i;
    float m = c[best].p;
    if (m == -INFINITY)
        return hl_errf(e, "sampler: every token is banned (all logits are -inf after logit_bias)");
    if (s->p.temperature == 0.0f) {
        c[0] = (cand){.p = 1.0f, .id = c[best].id};
        return 1;
    }

    if (s->p.top_k > 0 && (size_t)s->p.top_k < n) {
        top_k(s, n, m, (size_t)s->p.top_k);
        n = (size_t)s->p.top_k;
    }
    double target = 0.0;
    if (s->p.top_p < 1.0f) target = (double)s->p.top_p * bucket_masses(s, n, m);
    if (s->p.min_p > 0.0f) {
        float thr = m + logf(s->p.min_p);
        size_t k = 0;
        for (size_t i = 0; i < n; i++)
            if (c[i].p >= thr) swap_cand(&c[i], &c[k++]);
        n = k; /* >= 1: the max passes */
    }
    if (s->p.top_p < 1.0f) n = top_p_cut(s, n, m, target);

    /* softmax at temperature T over what is left, in place */
    float inv_t = 1.0f / s->p.temperature;
    double sum = 0.0;
    for (size_t i = 0; i < n; i++) {
        c[i].p = expf((c[i].p - m) * inv_t);
        sum += c[i].p;
    }
    float inv_sum = (float)(1.0 / sum);
    for (size_t i = 0; i < n; i++) c[i].p *= inv_sum;
    return (int32_t)n;
}

int32_t hl_sampler_sample(hl_sampler *s, const float *logits, hl_err *e) {
    const hl_token_prob *d;
    int32_t n = hl_sampler_dist(s, logits, &d, e);
    if (n < 0) return -1;
    if (s->p.temperature == 0.0f) return d[0].id;
    double u = rng_uniform(s->rng), acc = 0.0;
    int32_t last = 0;
    for (int32_t i = 0; i < n; i++) {
        if (d[i].p <= 0.0f) continue;
        acc += d[i].p;
        last = i;
        if (u < acc) return d[i].id;
    }
    return d[last].id; /* u landed past the sum by rounding */
}

/* ---- log-probabilities ---- */

int hl_sampler_logprobs(const float *logits, int32_t n_vocab, int32_t token, int32_t n_top,
                        hl_logprob *top, float *token_logprob, hl_err *e) {
    if (!logits || n_vocab <= 0) return hl_errf(e, "logprobs: no logits");
    if (token < 0 || token >= n_vocab)
        return hl_errf(e, "logprobs: token %d is out of range [0, %d)", token, n_vocab);
    if (n_top < 0 || n_top > HL_SAMPLER_MAX_TOP_LOGPROBS || (n_top > 0 && !top))
        return hl_errf(e, "top_logprobs is %d; it must be between 0 and %d", n_top,
                       HL_SAMPLER_MAX_TOP_LOGPROBS);
    if (n_top > n_vocab) n_top = n_vocab;

    /* one pass: running max, and the n_top best kept sorted by insertion */
    float m = -INFINITY;
    int32_t k = 0;
    for (int32_t i = 0; i < n_vocab; i++) {
        float l = logits[i];
        if (!(l < INFINITY)) return hl_errf(e, "logprobs: logit of token %d is %g", i, (double)l);
        if (l > m) m = l;
        if (n_top == 0 || (k == n_top && !(l > top[k - 1].logprob))) continue;
        int32_t j = k < n_top ? k++ : n_top - 1;
        while (j > 0 && l > top[j - 1].logprob) { /* strict: earlier (lower) ids win ties */
            top[j] = top[j - 1];
            j--;
        }
        top[j] = (hl_logprob){.id = i, .logprob = l};
    }
    if (m == -INFINITY) return hl_errf(e, "logprobs: every logit is -inf");
    double sum = 0.0;
    for (int32_t i = 0; i < n_vocab; i++) sum += expf(logits[i] - m);
    double lse = (double)m + log(sum);
    *token_logprob = (float)((double)logits[token] - lse);
    for (int32_t i = 0; i < k; i++) top[i].logprob = (float)((double)top[i].logprob - lse);
    return k;
}

bool hl_sampler_plain_greedy(const hl_sampler *s) {
    return s->p.temperature == 0.0f && s->p.n_logit_bias == 0 && s->p.repetition_penalty == 1.0f &&
           s->p.presence_penalty == 0.0f && s->p.frequency_penalty == 0.0f;
}
