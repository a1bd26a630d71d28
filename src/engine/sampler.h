/* sampler.h - picks the next token from the logits of one sequence.
 *
 *   hl_sampler_params p; hl_sampler_params_default(&p); p.temperature = 0.7f; p.seed = 42;
 *   hl_sampler *s; if (hl_sampler_init(&s, n_vocab, &p, &e) < 0) ...;
 *   hl_sampler_accept_prompt(s, prompt, n_prompt, &e); id = hl_sampler_sample(s, logits, &e);
 *   hl_sampler_accept(s, id, &e); ... hl_sampler_free(s);
 *
 * Contract. One hl_sampler per sequence, created at sequence start; it owns a
 * copy of the parameters (logit_bias included: the caller's array may go away
 * after init) and every scratch buffer, sized from n_vocab at init.
 * hl_sampler_sample, hl_sampler_dist, hl_sampler_accept and
 * hl_sampler_accept_prompt never allocate. Not thread-safe: one thread at a time per sampler;
 * different samplers are independent. hl_sampler_logprobs keeps no state and may be called from any
 * thread.
 *
 * Pipeline of hl_sampler_sample, in this order (llama.cpp's default order,
 * temperature last):
 *   1. logit bias: logit += bias; a bias of exactly -100 bans the token
 *      (logit = -inf), so a ban holds whatever the model's logits are.
 *      Entries apply in order; duplicate ids add up.
 *   2. repetition penalty (CTRL / llama.cpp / mlx-lm): for each distinct token
 *      among the last repetition_context_size accepted tokens, prompt tokens
 *      included, a positive logit is divided by the penalty and a negative one
 *      multiplied by it.
 *   3. presence and frequency penalties (OpenAI): logit -= count * frequency +
 *      (count > 0) * presence, where count is how many times the token was
 *      *generated* so far in this sequence (hl_sampler_accept; prompt tokens
 *      do not count), as OpenAI defines them.
 *   4. temperature 0: greedy, argmax of the result (ties -> lowest id); the
 *      steps below are skipped and no random number is drawn.
 *   5. top-k (0 = off): keep the k largest logits (ties -> lower ids).
 *   6. top-p (1 = off): keep the smallest set of most likely tokens whose
 *      probability, softmax at temperature 1 over the top-k set, reaches p.
 *   7. min-p (0 = off): keep tokens whose probability is at least min_p times
 *      the most likely token's.
 *   8. temperature: softmax(logit / T) over what is left, one draw from a
 *      xoshiro256** generator seeded with splitmix64(seed).
 * (min-p runs before top-p internally, with top-p's mass still taken over the
 * top-k set: that gives exactly the set of the order above, cheaper.)
 * The same seed, logits and accepted tokens give the same tokens on every run
 * (and across machines whose libm expf/logf agree; no platform qsort or
 * rand is involved).
 *
 * Costs per token: a few passes over n_vocab. top-k and top-p histogram the
 * logits by distance from the max (1/32-logit buckets) and then select or
 * sort only the one bucket the cut falls in; nothing sorts the vocabulary.
 */
#ifndef HL_SAMPLER_H
#define HL_SAMPLER_H

#include <stdbool.h>
#include <stdint.h>

#include "../util/err.h"

typedef struct hl_logit_bias {
    int32_t id;
    float bias; /* [-100, 100]; -100 bans the token */
} hl_logit_bias;

typedef struct hl_sampler_params {
    float temperature;               /* [0, 2]; 0 = greedy. default 1 (OpenAI) */
    int32_t top_k;                   /* >= 0; 0 = off. default 0 */
    float top_p;                     /* (0, 1]; 1 = off. default 1 */
    float min_p;                     /* [0, 1]; 0 = off. default 0 */
    float repetition_penalty;        /* > 0, finite; 1 = off. default 1 */
    int32_t repetition_context_size; /* [1, 65536]. default 20, the reference
                                        server's (mlx-lm); llama.cpp uses 64 */
    float presence_penalty;          /* [-2, 2]. default 0 */
    float frequency_penalty;         /* [-2, 2]. default 0 */
    uint64_t seed;                   /* default: random, drawn by _default */
    const hl_logit_bias *logit_bias; /* n_logit_bias entries, ids in [0, n_vocab) */
    int32_t n_logit_bias;            /* [0, 1024]. default 0 */
} hl_sampler_params;

#define HL_SAMPLER_MAX_REP_CONTEXT 65536
#define HL_SAMPLER_MAX_LOGIT_BIAS 1024
#define HL_SAMPLER_MAX_TOP_LOGPROBS 20

typedef struct hl_sampler hl_sampler;

/* Fills p with the defaults above. The seed is drawn from the OS random
 * source on each call, so a request that gives no seed gets a fresh one and
 * the caller can still report which seed was used. */
void hl_sampler_params_default(hl_sampler_params *p);

/* Checks every field against its range (logit bias ids against n_vocab).
 * Returns 0, or -1 with a message naming the field, its value and the valid
 * range. */
int hl_sampler_params_check(const hl_sampler_params *p, int32_t n_vocab, hl_err *e);

/* Checks p, then allocates the sampler and all its scratch for n_vocab
 * tokens (about 8 bytes per vocab entry, plus 8 more when presence/frequency
 * penalties are on and 1 more when the repetition penalty is on). */
int hl_sampler_init(hl_sampler **out, int32_t n_vocab, const hl_sampler_params *p, hl_err *e);
void hl_sampler_free(hl_sampler *s);

/* Records n prompt tokens (for the repetition penalty window only). */
int hl_sampler_accept_prompt(hl_sampler *s, const int32_t *ids, int32_t n, hl_err *e);
/* Records one generated token (repetition window and presence/frequency
 * counts). Call it with every token the sequence keeps, sampled or forced. */
int hl_sampler_accept(hl_sampler *s, int32_t id, hl_err *e);
/* Whether sampling is plain greedy: temperature 0, no logit bias and no
 * penalty, so the token is the logits' argmax (lowest id on ties) and a
 * caller that has that argmax (hl_ctx_argmax) need not read the logits. */
bool hl_sampler_plain_greedy(const hl_sampler *s);

/* Returns the chosen token id from logits[n_vocab] (not modified), or -1
 * when the logits hold a NaN or +inf, or every token is banned (-inf). Draws exactly
 * one random number per call when temperature > 0, none when greedy. Does
 * not record the token: call hl_sampler_accept. */
int32_t hl_sampler_sample(hl_sampler *s, const float *logits, hl_err *e);

typedef struct hl_token_prob {
    float p;
    int32_t id;
} hl_token_prob;

/* Steps 1-8 without the draw: the distribution hl_sampler_sample draws
 * from (for speculative decoding's acceptance test, and tests). Returns the
 * number n >= 1 of tokens left, with *dist pointing at n (p, id) pairs in
 * the sampler's scratch, valid until the next call, in no particular order,
 * p summing to 1 (tokens with p = 0, banned ones, may be among them; greedy:
 * just the argmax, p = 1). -1 as hl_sampler_sample. */
int32_t hl_sampler_dist(hl_sampler *s, const float *logits, const hl_token_prob **dist, hl_err *e);

typedef struct hl_logprob {
    int32_t id;
    float logprob;
} hl_logprob;

/* Log-probabilities of the model's own distribution: log-softmax of the raw
 * logits, before bias, penalties, filters and temperature (what OpenAI-style
 * servers such as vLLM and llama.cpp report by default). Writes the logprob
 * of `token` to *token_logprob and the n_top (<= 20) most likely tokens,
 * most likely first (ties -> lower id), to top. Returns the number written
 * (min(n_top, n_vocab)), or -1 on bad arguments. A -inf logit gives a -inf
 * logprob; JSON writers must clamp it. */
int hl_sampler_logprobs(const float *logits, int32_t n_vocab, int32_t token, int32_t n_top,
                        hl_logprob *top, float *token_logprob, hl_err *e);

#endif
