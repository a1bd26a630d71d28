/* sched.c - the per-model worker: a bounded FIFO of jobs, n_seq sequence
 * slots, and a loop that admits queued jobs into free slots (prefilling their
 * prompts), then decodes one token of every running, unpaused slot in one
 * batch. See sched.h for the contract.
 *
 * Locks: s->mu guards the queue and the stopping flag; each job's mu guards
 * its output (choices, waiting, notify). The worker never holds both. Slots
 * and the context belong to the worker thread alone.
 */
#include "sched.h"

#include <errno.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>

#include "../engine/template.h"
#include "../util/clock.h"

/* Used when the model carries no chat template (llama.cpp does the same). */
static const char CHATML[] =
    "{% for message in messages %}{{ '<|im_start|>' + message['role'] + '\\n' + message['content'] + "
    "'<|im_end|>\\n' }}{% endfor %}{% if add_generation_prompt %}{{ '<|im_start|>assistant\\n' }}"
    "{% endif %}";

struct hl_job {
    pthread_mutex_t mu;
    atomic_int refs;
    atomic_bool cancel;
    hl_job *next; /* queue link (s->mu) */
    /* request, fixed at submit */
    int32_t *prompt;
    int n_prompt;
    hl_sampler_params sp;
    hl_logit_bias *bias;
    int n, max_tokens, top_logprobs;
    bool logprobs, notify_each;
    hl_stop stop; /* initialized once; each slot starts from a copy */
    void (*notify)(void *);
    void *notify_arg;
    int client_fd;
    const hl_tokenizer *tok;
    /* output (mu) */
    bool waiting;
    hl_job_choice *choices;
    int n_done;
    char err[HL_ERR_MSG_MAX];
    double t_submit, t_admit, t_first;
};

typedef struct slot {
    hl_job *job; /* NULL when free */
    int choice;
    hl_sampler *smp;
    hl_stop stop;
    hl_detok dt;
    int32_t next; /* the last sampled token, decoded next at position n_pos - 1 */
    int n_pos;    /* positions the sequence holds once `next` is decoded */
    size_t stream_off; /* bytes of text produced before stop matching */
    int n_fed;         /* prompt tokens already in the cache (< n_prompt: still prefilling) */
    int pending;       /* prompt tokens in the batch being run */
    uint64_t admit_no; /* admission order: older prompts are fed first */
    bool fresh;        /* admitted, not yet set up */
    /* the tokens whose keys and values the sequence holds, kept after the
     * job ends so a later prompt with the same prefix skips recomputing it */
    int32_t *kv_toks;  /* [n_ctx] */
    int n_kv;
} slot;

struct hl_sched {
    hl_sched_params p;
    const hl_model *m;
    const hl_tokenizer *tok;
    int n_vocab, n_ctx;
    bool on_gpu; /* the model runs on the CUDA backend */
    hl_ctx *c;
    hl_template *tmpl;
    const char *tmpl_origin;
    char bos[64], eos[64];
    pthread_t thread;
    bool thread_started;
    pthread_mutex_t mu;
    pthread_cond_t cv;
    hl_job *q_head, *q_tail;
    int n_queued;
    uint64_t n_admitted;
    bool stopping;
    slot *slots;
    /* worker-only scratch, sized at start */
    int32_t *b_tok, *b_pos, *b_seq;
    bool *b_want;
    int *b_slot;
};

/* ---- jobs ---- */

static void job_free(hl_job *j) {
    for (int i = 0; i < j->n; i++) {
        hl_buf_free(&j->choices[i].text);
        free(j->choices[i].lp);
    }
    free(j->choices);
    free(j->prompt);
    free(j->bias);
    pthread_mutex_destroy(&j->mu);
    free(j);
}

static void job_unref(hl_job *j) {
    if (atomic_fetch_sub(&j->refs, 1) == 1) job_free(j);
}

void hl_job_release(hl_job *j) {
    if (!j) return;
    pthread_mutex_lock(&j->mu);
    j->notify = NULL; /* the submitter is going away: never call it again */
    j->client_fd = -1;
    pthread_mutex_unlock(&j->mu);
    atomic_store(&j->cancel, true);
    job_unref(j);
}

void hl_job_cancel(hl_job *j) { atomic_store(&j->cancel, true); }
void hl_job_lock(hl_job *j) { pthread_mutex_lock(&j->mu); }
void hl_job_unlock(hl_job *j) { pthread_mutex_unlock(&j->mu); }
int hl_job_n_choices(const hl_job *j) { return j->n; }
hl_job_choice *hl_job_choice_at(hl_job *j, int i) { return &j->choices[i]; }
int hl_job_n_prompt(const hl_job *j) { return j->n_prompt; }
bool hl_job_done(const hl_job *j) { return j->n_done == j->n; }
const char *hl_job_error(const hl_job *j) { return j->err[0] ? j->err : NULL; }
void hl_job_set_waiting(hl_job *j, bool waiting) { j->waiting = waiting; }
double hl_job_ttft(const hl_job *j) { return j->t_first > 0 ? j->t_first - j->t_submit : -1; }

/* Under j->mu: wake the reader if it waits for this kind of event. */
static void job_wake(hl_job *j, bool finished) {
    if (j->waiting && j->notify && (finished || j->notify_each)) {
        j->waiting = false;
        j->notify(j->notify_arg);
    }
}

/* Ends choice i (under j->mu); returns true when that ended the whole job. */
static bool job_finish_locked(hl_job *j, int i, hl_finish why, const char *err) {
    hl_job_choice *ch = &j->choices[i];
    if (ch->finish != HL_FINISH_NONE) return false;
    ch->finish = why;
    if (err && !j->err[0]) snprintf(j->err, sizeof j->err, "%s", err);
    j->n_done++;
    bool all = j->n_done == j->n;
    job_wake(j, all);
    return all;
}

static void log_job(const hl_sched *s, const hl_job *j) {
    int gen = 0;
    const char *why = "stop";
    for (int i = 0; i < j->n; i++) {
        gen += j->choices[i].n_tokens;
        hl_finish f = j->choices[i].finish;
        if (f == HL_FINISH_ERROR) why = "error";
        else if (f == HL_FINISH_CANCELLED && strcmp(why, "error")) why = "cancelled";
        else if (f == HL_FINISH_LENGTH && !strcmp(why, "stop")) why = "length";
    }
    double t = hl_now_s() - j->t_submit;
    double ttft = j->t_first > 0 ? j->t_first - j->t_submit : -1;
    double gen_t = j->t_first > 0 ? hl_now_s() - j->t_first : 0;
    if (s->p.stats)
        hl_stats_job(s->p.stats, !strcmp(why, "error") ? 1 : !strcmp(why, "cancelled") ? 2 : 0,
                     (j->t_admit > 0 ? j->t_admit : hl_now_s()) - j->t_submit, ttft);
    fprintf(stderr,
            "heylookllm: %s: prompt %d tokens, generated %d, ttft %.0f ms, %.1f tok/s, total %.2f s, %s%s%s\n",
            s->p.name ? s->p.name : "model", j->n_prompt, gen, ttft * 1e3,
            gen > 1 && gen_t > 0 ? (gen - j->n) / gen_t : 0.0, t, why, j->err[0] ? ": " : "", j->err);
}

/* ---- the worker ---- */

/* Frees the slot's sequence; the job's last slot logs it and drops the
 * worker's reference. */
static void slot_free(hl_sched *s, slot *sl) {
    hl_sampler_free(sl->smp); /* the cache keeps kv_toks for the next prompt that shares them */
    sl->smp = NULL;
    hl_job *j = sl->job;
    sl->job = NULL;
    bool done;
    pthread_mutex_lock(&j->mu);
    done = j->n_done == j->n;
    pthread_mutex_unlock(&j->mu);
    if (done) {
        /* the last slot of this job: log and drop the worker's reference */
        bool last = true;
        for (int i = 0; i < s->p.n_seq; i++)
            if (s->slots[i].job == j) last = false;
        if (last) {
            log_job(s, j);
            job_unref(j);
        }
    }
}

static void slot_end(hl_sched *s, slot *sl, hl_finish why, const char *err) {
    hl_job *j = sl->job;
    if (why == HL_FINISH_ERROR) { /* trust nothing the failed sequence left */
        hl_ctx_seq_truncate(s->c, (int)(sl - s->slots), 0);
        sl->n_kv = 0;
    }
    pthread_mutex_lock(&j->mu);
    job_finish_locked(j, sl->choice, why, err);
    pthread_mutex_unlock(&j->mu);
    slot_free(s, sl);
}

/* Text at the end of generation: the detokenizer's and the stop matcher's held tails. */
static void slot_flush(slot *sl, hl_buf *out) {
    char piece[16], held[16 + HL_STOP_MAX_LEN];
    if (hl_stop_matched(&sl->stop) >= 0) return;
    int n = hl_detok_flush(&sl->dt, piece, sizeof piece);
    size_t n_out = 0;
    hl_err e;
    if (n > 0 && hl_stop_feed(&sl->stop, piece, (size_t)n, held, sizeof held, &n_out, &e) >= 0)
        hl_buf_put(out, held, n_out);
    if (hl_stop_matched(&sl->stop) < 0) {
        char tail[HL_STOP_MAX_LEN];
        size_t k = hl_stop_flush(&sl->stop, tail);
        hl_buf_put(out, tail, k);
    }
}

/* Samples the slot's next token from the li-th logits row of the last
 * decode and delivers its text. Returns true when the slot goes on (its
 * next token must be decoded). On the GPU a plain greedy request without
 * logprobs takes the argmax computed there, and its logits never cross to
 * the host. */
static bool slot_step(hl_sched *s, slot *sl, int li) {
    hl_job *j = sl->job;
    hl_err e = {0};
    const float *logits = NULL;
    int32_t id;
    if (s->on_gpu && !j->logprobs && hl_sampler_plain_greedy(sl->smp)) {
        id = hl_ctx_argmax(s->c, li);
    } else {
        logits = hl_ctx_logits(s->c, li);
        id = logits ? hl_sampler_sample(sl->smp, logits, &e) : -1;
    }
    if (id < 0) {
        slot_end(s, sl, HL_FINISH_ERROR, "the model produced invalid logits (NaN or infinity)");
        return false;
    }
    hl_job_logprob lp = {.id = id};
    if (j->logprobs)
        lp.n_top = hl_sampler_logprobs(logits, s->n_vocab, id, j->top_logprobs, lp.top, &lp.logprob, &e);
    if (lp.n_top < 0) lp.n_top = 0;
    bool eog = hl_tokenizer_is_eog(s->tok, id);
    char piece[512], out[512 + 16 + 2 * HL_STOP_MAX_LEN];
    size_t n_out = 0;
    int st = 0;
    hl_finish why = HL_FINISH_NONE;
    hl_buf tail = {0};
    if (eog) {
        why = HL_FINISH_STOP;
        slot_flush(sl, &tail);
    } else {
        hl_sampler_accept(sl->smp, id, &e);
        int n = hl_detok_push(s->tok, &sl->dt, id, piece, sizeof piece);
        lp.text_offset = sl->stream_off;
        if (n > 0) {
            sl->stream_off += (size_t)n;
            st = hl_stop_feed(&sl->stop, piece, (size_t)n, out, sizeof out, &n_out, &e);
        }
        sl->n_pos++;
        if (st == 1) why = HL_FINISH_STOP;
        else if ((j->max_tokens >= 0 && j->choices[sl->choice].n_tokens + 1 >= j->max_tokens) ||
                 sl->n_pos > s->n_ctx) { /* no room left to decode it */
            why = HL_FINISH_LENGTH;
            slot_flush(sl, &tail);
        }
    }
    pthread_mutex_lock(&j->mu);
    hl_job_choice *ch = &j->choices[sl->choice];
    if (j->t_first == 0) j->t_first = hl_now_s();
    if (!eog) {
        ch->n_tokens++;
        if (j->logprobs) ch->lp[ch->n_lp++] = lp;
    }
    hl_buf_put(&ch->text, out, n_out);
    if (tail.len) hl_buf_put(&ch->text, tail.p, tail.len);
    bool oom = ch->text.oom;
    if (why == HL_FINISH_NONE && !oom) job_wake(j, false);
    else job_finish_locked(j, sl->choice, oom ? HL_FINISH_ERROR : why, oom ? "out of memory" : NULL);
    pthread_mutex_unlock(&j->mu);
    hl_buf_free(&tail);
    if (why != HL_FINISH_NONE || oom) {
        slot_free(s, sl);
        return false;
    }
    sl->next = id;
    return true;
}

/* Sets up a freshly admitted slot; its prompt is fed by the steps that follow. */
static void slot_start(hl_sched *s, slot *sl) {
    hl_job *j = sl->job;
    hl_err e = {0};
    sl->fresh = false;
    hl_sampler_params sp = j->sp;
    sp.seed += (uint64_t)sl->choice; /* n choices from one seed must differ */
    if (hl_sampler_init(&sl->smp, s->n_vocab, &sp, &e) < 0 ||
        hl_sampler_accept_prompt(sl->smp, j->prompt, j->n_prompt, &e) < 0) {
        slot_end(s, sl, HL_FINISH_ERROR, e.msg);
        return;
    }
    /* the cached prefix this prompt shares; at least its last token is fed again, for logits */
    int keep = 0;
    while (keep < sl->n_kv && keep < j->n_prompt - 1 && sl->kv_toks[keep] == j->prompt[keep]) keep++;
    hl_ctx_seq_truncate(s->c, (int)(sl - s->slots), keep);
    sl->n_kv = keep;
    sl->n_fed = keep;
    sl->n_pos = 0;
    sl->stop = j->stop;
    sl->dt = (hl_detok){0};
    sl->stream_off = 0;
}

/* A peer that closed its socket: recv peeks 0 bytes (EOF) or fails hard. */
static bool peer_closed(int fd) {
    char c;
    ssize_t r = recv(fd, &c, 1, MSG_PEEK | MSG_DONTWAIT);
    if (r == 0) return true;
    return r < 0 && errno != EAGAIN && errno != EWOULDBLOCK && errno != EINTR;
}

/* Cancelled jobs end their slots; a waiting job whose client left is cancelled. */
static void sweep(hl_sched *s) {
    for (int i = 0; i < s->p.n_seq; i++) {
        slot *sl = &s->slots[i];
        hl_job *j = sl->job;
        if (!j) continue;
        if (!atomic_load(&j->cancel)) {
            pthread_mutex_lock(&j->mu);
            if (j->waiting && j->client_fd >= 0 && peer_closed(j->client_fd)) atomic_store(&j->cancel, true);
            pthread_mutex_unlock(&j->mu);
        }
        if (atomic_load(&j->cancel)) slot_end(s, sl, HL_FINISH_CANCELLED, NULL);
    }
}

static bool slot_paused(const hl_sched *s, slot *sl) {
    hl_job *j = sl->job;
    if (!j->notify_each) return false;
    pthread_mutex_lock(&j->mu);
    hl_job_choice *ch = &j->choices[sl->choice];
    bool paused = ch->text.len - ch->sent > s->p.max_unsent;
    pthread_mutex_unlock(&j->mu);
    return paused;
}

/* Moves queued jobs into free slots while whole jobs fit (FIFO: the head
 * waits for room rather than being overtaken). Under s->mu. */
static void admit_locked(hl_sched *s) {
    /* first drop queued jobs that were cancelled or whose client left */
    for (hl_job **pp = &s->q_head, *prev = NULL; *pp;) {
        hl_job *j = *pp;
        pthread_mutex_lock(&j->mu);
        bool gone = atomic_load(&j->cancel) || (j->waiting && j->client_fd >= 0 && peer_closed(j->client_fd));
        if (gone)
            for (int c = 0; c < j->n; c++) job_finish_locked(j, c, HL_FINISH_CANCELLED, NULL);
        pthread_mutex_unlock(&j->mu);
        if (!gone) {
            prev = j;
            pp = &j->next;
            continue;
        }
        *pp = j->next;
        if (s->q_tail == j) s->q_tail = prev;
        s->n_queued--;
        log_job(s, j);
        job_unref(j);
    }
    while (s->q_head) {
        hl_job *j = s->q_head;
        int n_free = 0;
        for (int i = 0; i < s->p.n_seq; i++) n_free += !s->slots[i].job;
        if (n_free < j->n || (s->p.generation_lock && n_free < s->p.n_seq)) return;
        j->t_admit = hl_now_s();
        s->q_head = j->next;
        if (!s->q_head) s->q_tail = NULL;
        s->n_queued--;
        s->n_admitted++;
        for (int c = 0; c < j->n; c++) {
            slot *best = NULL;
            int best_len = -1;
            for (int i = 0; i < s->p.n_seq; i++) {
                slot *sl = &s->slots[i];
                if (sl->job) continue;
                int k = 0;
                while (k < sl->n_kv && k < j->n_prompt && sl->kv_toks[k] == j->prompt[k]) k++;
                if (k > best_len) best = sl, best_len = k;
            }
            *best = (slot){.job = j, .choice = c, .fresh = true, .admit_no = s->n_admitted,
                           .kv_toks = best->kv_toks, .n_kv = best->n_kv};
        }
    }
}

static void fail_all(hl_sched *s, const char *why) {
    for (int i = 0; i < s->p.n_seq; i++)
        if (s->slots[i].job) slot_end(s, &s->slots[i], HL_FINISH_ERROR, why);
    pthread_mutex_lock(&s->mu);
    hl_job *q = s->q_head;
    s->q_head = s->q_tail = NULL;
    s->n_queued = 0;
    pthread_mutex_unlock(&s->mu);
    while (q) {
        hl_job *next = q->next;
        pthread_mutex_lock(&q->mu);
        for (int c = 0; c < q->n; c++) job_finish_locked(q, c, HL_FINISH_ERROR, why);
        pthread_mutex_unlock(&q->mu);
        job_unref(q);
        q = next;
    }
}

/* The oldest admitted slot still feeding its prompt, other than those
 * already in this batch (pending > 0); NULL when none. */
static slot *next_prefill(hl_sched *s) {
    slot *best = NULL;
    for (int i = 0; i < s->p.n_seq; i++) {
        slot *sl = &s->slots[i];
        if (sl->job && sl->n_fed < sl->job->n_prompt && !sl->pending && (!best || sl->admit_no < best->admit_no))
            best = sl;
    }
    return best;
}

/* One forward pass: the next token of every generating, unpaused slot,
 * then as many prompt tokens of prefilling slots (oldest first) as fit in
 * n_batch, so a long prompt is fed in chunks between the others' tokens.
 * Returns false when there was nothing to run. */
static bool step(hl_sched *s) {
    int n = 0, n_batch = hl_ctx_params_get(s->c)->n_batch;
    for (int i = 0; i < s->p.n_seq; i++) {
        slot *sl = &s->slots[i];
        sl->pending = 0;
        if (!sl->job || sl->n_fed < sl->job->n_prompt || slot_paused(s, sl)) continue;
        s->b_tok[n] = sl->next;
        s->b_pos[n] = sl->n_pos - 1; /* where the sampled token goes */
        s->b_seq[n] = i;
        s->b_want[n] = true;
        s->b_slot[n] = i;
        n++;
    }
    int n_gen = n;
    slot *sl;
    while (n < n_batch && (sl = next_prefill(s))) {
        hl_job *j = sl->job;
        int k = j->n_prompt - sl->n_fed;
        if (k > n_batch - n) k = n_batch - n;
        for (int t = 0; t < k; t++, n++) {
            s->b_tok[n] = j->prompt[sl->n_fed + t];
            s->b_pos[n] = sl->n_fed + t;
            s->b_seq[n] = (int)(sl - s->slots);
            s->b_want[n] = sl->n_fed + t == j->n_prompt - 1; /* logits of the last prompt token */
            s->b_slot[n] = (int)(sl - s->slots);
        }
        sl->pending = k;
    }
    if (n == 0) return false;
    hl_batch b = {.n = n, .token = s->b_tok, .pos = s->b_pos, .seq = s->b_seq, .want_logits = s->b_want};
    hl_err e = {0};
    double t0 = hl_now_s();
    int rc = hl_ctx_decode(s->c, &b, &e);
    if (s->p.stats && rc == 0) hl_stats_pass(s->p.stats, hl_now_s() - t0, n - n_gen, n_gen);
    if (rc < 0) {
        for (int k = 0; k < n; k++)
            if (s->slots[s->b_slot[k]].job) slot_end(s, &s->slots[s->b_slot[k]], HL_FINISH_ERROR, e.msg);
        return true;
    }
    for (int k = 0; k < n; k++) { /* what the cache now holds */
        slot *t = &s->slots[s->b_slot[k]];
        t->kv_toks[t->n_kv++] = s->b_tok[k];
    }
    for (int i = 0; i < s->p.n_seq; i++) {
        sl = &s->slots[i];
        if (!sl->pending) continue;
        sl->n_fed += sl->pending;
        sl->pending = 0;
        if (sl->n_fed == sl->job->n_prompt) sl->n_pos = sl->n_fed;
    }
    for (int k = 0, li = 0; k < n; k++)
        if (s->b_want[k]) slot_step(s, &s->slots[s->b_slot[k]], li++);
    return true;
}

static void *worker_main(void *arg) {
    hl_sched *s = arg;
    for (;;) {
        pthread_mutex_lock(&s->mu);
        for (;;) {
            bool busy = false;
            for (int i = 0; i < s->p.n_seq; i++) busy |= s->slots[i].job != NULL;
            if (s->stopping || busy || s->q_head) break;
            pthread_cond_wait(&s->cv, &s->mu);
        }
        if (s->stopping) {
            pthread_mutex_unlock(&s->mu);
            break;
        }
        admit_locked(s);
        pthread_mutex_unlock(&s->mu);

        for (int i = 0; i < s->p.n_seq; i++)
            if (s->slots[i].job && s->slots[i].fresh) slot_start(s, &s->slots[i]);
        sweep(s);

        if (!step(s)) { /* nothing could run: only slow readers; look again shortly */
            struct timespec ts = {0, 2 * 1000 * 1000};
            nanosleep(&ts, NULL);
        }
    }
    fail_all(s, "the server is shutting down");
    return NULL;
}

/* ---- construction ---- */

static int load_template(hl_sched *s, hl_err *e) {
    const char *src = s->p.chat_template;
    size_t len = src ? strlen(src) : 0;
    s->tmpl_origin = "file";
    if (!src) {
        hl_str str;
        if (gguf_get_str(hl_model_gguf(s->m), "tokenizer.chat_template", &str) == 0 && str.len) {
            src = str.ptr;
            len = (size_t)str.len;
            s->tmpl_origin = "gguf";
        } else {
            src = CHATML;
            len = sizeof CHATML - 1;
            s->tmpl_origin = "chatml (the model has none)";
        }
    }
    hl_err te = {0};
    if (hl_template_parse(&s->tmpl, src, len, &te) < 0)
        return hl_errf(e, "the chat template (%s) does not parse: %s", s->tmpl_origin, te.msg);
    return 0;
}

static void special_text(const hl_tokenizer *t, int32_t id, char *out, size_t cap) {
    out[0] = 0;
    if (id < 0) return;
    int n = hl_token_piece(t, id, true, out, cap - 1);
    out[n > 0 && (size_t)n < cap ? n : 0] = 0;
}

int hl_sched_new(hl_sched **out, const hl_model *m, const hl_sched_params *p, hl_err *e) {
    *out = NULL;
    hl_sched *s = calloc(1, sizeof *s);
    if (!s) return hl_errf(e, "out of memory");
    s->p = *p;
    if (s->p.n_seq <= 0) s->p.n_seq = 4;
    if (s->p.max_queue <= 0) s->p.max_queue = 64;
    if (s->p.max_unsent == 0) s->p.max_unsent = 256 * 1024;
    s->m = m;
    s->tok = hl_model_tokenizer(m);
    s->n_vocab = hl_model_hparams(m)->n_vocab;
    s->on_gpu = hl_model_backend(m) == HL_BACKEND_CUDA;
    pthread_mutex_init(&s->mu, NULL);
    pthread_cond_init(&s->cv, NULL);
    special_text(s->tok, hl_tokenizer_bos(s->tok), s->bos, sizeof s->bos);
    special_text(s->tok, hl_tokenizer_eos(s->tok), s->eos, sizeof s->eos);
    hl_ctx_params cp = {.n_ctx = s->p.n_ctx, .n_seq = s->p.n_seq, .n_threads = s->p.n_threads,
                        .n_batch = s->p.n_batch, .n_logits = s->p.n_seq};
    if (load_template(s, e) < 0 || hl_ctx_new(&s->c, m, &cp, e) < 0) goto fail;
    s->n_ctx = hl_ctx_params_get(s->c)->n_ctx;
    s->p.n_ctx = s->n_ctx;
    int n = s->p.n_seq;
    s->slots = calloc((size_t)n, sizeof *s->slots);
    size_t nb = (size_t)hl_ctx_params_get(s->c)->n_batch;
    s->b_tok = calloc(nb, sizeof *s->b_tok);
    s->b_pos = calloc(nb, sizeof *s->b_pos);
    s->b_seq = calloc(nb, sizeof *s->b_seq);
    s->b_want = calloc(nb, sizeof *s->b_want);
    s->b_slot = calloc(nb, sizeof *s->b_slot);
    bool ok = s->slots != NULL;
    for (int i = 0; ok && i < n; i++) ok = (s->slots[i].kv_toks = malloc(sizeof(int32_t) * (size_t)s->n_ctx)) != NULL;
    if (!ok || !s->b_tok || !s->b_pos || !s->b_seq || !s->b_want || !s->b_slot) {
        hl_errf(e, "out of memory");
        goto fail;
    }
    if (pthread_create(&s->thread, NULL, worker_main, s) != 0) {
        hl_errf(e, "cannot start the model's worker thread");
        goto fail;
    }
    s->thread_started = true;
    *out = s;
    return 0;
fail:
    hl_sched_free(s);
    return -1;
}

void hl_sched_shutdown(hl_sched *s) {
    if (!s || !s->thread_started) return;
    pthread_mutex_lock(&s->mu);
    s->stopping = true;
    pthread_cond_signal(&s->cv);
    pthread_mutex_unlock(&s->mu);
    pthread_join(s->thread, NULL);
    s->thread_started = false;
}

void hl_sched_free(hl_sched *s) {
    if (!s) return;
    hl_sched_shutdown(s);
    hl_ctx_free(s->c);
    hl_template_free(s->tmpl);
    for (int i = 0; s->slots && i < s->p.n_seq; i++) free(s->slots[i].kv_toks);
    free(s->slots);
    free(s->b_tok);
    free(s->b_pos);
    free(s->b_seq);
    free(s->b_want);
    free(s->b_slot);
    pthread_cond_destroy(&s->cv);
    pthread_mutex_destroy(&s->mu);
    free(s);
}

const hl_sched_params *hl_sched_params_get(const hl_sched *s) { return &s->p; }
uint64_t hl_sched_ctx_bytes(const hl_sched *s) { return hl_ctx_bytes(s->c); }
const char *hl_sched_template_origin(const hl_sched *s) { return s->tmpl_origin; }

int hl_job_token_piece(const hl_job *j, int32_t id, char *buf, size_t cap) {
    return hl_token_piece(j->tok, id, true, buf, cap);
}

/* ---- submit ---- */

/* Renders (chat) or takes (completion) the prompt text and tokenizes it:
 * special-token text is parsed, and BOS is added when the model wants one
 * and the text does not already begin with it (templates usually write it). */
static int make_prompt(hl_sched *s, const hl_job_params *p, hl_job *j, hl_err *e) {
    hl_buf text = {0};
    const char *t = p->prompt;
    size_t len = p->prompt_len;
    if (p->messages_json) {
        hl_template_vars v = {.messages_json = p->messages_json, .add_generation_prompt = true,
                              .bos_token = s->bos, .eos_token = s->eos};
        hl_err te = {0};
        int rc = hl_template_render(s->tmpl, &v, &text, &te);
        if (rc == HL_TEMPLATE_RAISED) {
            hl_errf(e, "the model's chat template refused these messages: %s", te.msg);
            hl_buf_free(&text);
            return HL_SUBMIT_BAD_REQUEST;
        }
        if (rc < 0 || text.oom) {
            hl_errf(e, "the chat template failed: %s", text.oom ? "out of memory" : te.msg);
            hl_buf_free(&text);
            return HL_SUBMIT_ERROR;
        }
        t = text.p ? text.p : "";
        len = text.len;
    }
    int64_t n = hl_tokenize(s->tok, t, len, false, true, NULL, 0);
    int32_t bos = hl_tokenizer_bos(s->tok);
    int add = 0;
    int rc = 0;
    if (n < 0) {
        rc = HL_SUBMIT_ERROR;
        hl_errf(e, "cannot tokenize the prompt");
        goto out;
    }
    j->prompt = malloc(sizeof(int32_t) * (size_t)(n + 1));
    if (!j->prompt) {
        rc = HL_SUBMIT_ERROR;
        hl_errf(e, "out of memory");
        goto out;
    }
    hl_tokenize(s->tok, t, len, false, true, j->prompt + 1, n);
    if (bos >= 0 && hl_tokenizer_add_bos(s->tok) && (n == 0 || j->prompt[1] != bos)) {
        j->prompt[0] = bos;
        add = 1;
    } else {
        memmove(j->prompt, j->prompt + 1, sizeof(int32_t) * (size_t)n);
    }
    j->n_prompt = (int)n + add;
    if (j->n_prompt == 0) {
        rc = HL_SUBMIT_BAD_REQUEST;
        hl_errf(e, "the prompt is empty");
    } else if (j->n_prompt >= s->n_ctx) {
        rc = HL_SUBMIT_BAD_REQUEST;
        hl_errf(e, "the prompt is %d tokens; this model's context holds %d per sequence, and at least one "
                   "token must be generated: shorten the prompt",
                j->n_prompt, s->n_ctx);
    }
out:
    hl_buf_free(&text);
    return rc;
}

int hl_sched_submit(hl_sched *s, const hl_job_params *p, hl_job **out, hl_err *e) {
    *out = NULL;
    if (p->n < 1 || p->n > s->p.n_seq) {
        hl_errf(e, "n must be between 1 and %d (this model runs %d sequences at once)", s->p.n_seq, s->p.n_seq);
        return HL_SUBMIT_BAD_REQUEST;
    }
    if (hl_sampler_params_check(&p->sampling, s->n_vocab, e) < 0) return HL_SUBMIT_BAD_REQUEST;
    hl_job *j = calloc(1, sizeof *j);
    if (!j) return hl_errf(e, "out of memory"), HL_SUBMIT_ERROR;
    pthread_mutex_init(&j->mu, NULL);
    atomic_init(&j->refs, 2); /* the submitter's and the worker's */
    atomic_init(&j->cancel, false);
    j->n = p->n;
    j->max_tokens = p->max_tokens;
    j->logprobs = p->logprobs;
    j->top_logprobs = p->logprobs ? p->top_logprobs : 0;
    j->notify_each = p->notify_each_token;
    j->notify = p->notify;
    j->notify_arg = p->notify_arg;
    j->client_fd = p->client_fd;
    j->tok = s->tok;
    j->sp = p->sampling;
    j->t_submit = hl_now_s();
    int rc = HL_SUBMIT_ERROR;
    if (p->sampling.n_logit_bias > 0) {
        j->bias = malloc(sizeof *j->bias * (size_t)p->sampling.n_logit_bias);
        if (!j->bias) goto oom;
        memcpy(j->bias, p->sampling.logit_bias, sizeof *j->bias * (size_t)p->sampling.n_logit_bias);
        j->sp.logit_bias = j->bias;
    }
    if (hl_stop_init(&j->stop, p->stop, p->stop_len, p->n_stop, e) < 0) {
        rc = HL_SUBMIT_BAD_REQUEST;
        goto fail;
    }
    j->choices = calloc((size_t)j->n, sizeof *j->choices);
    if (!j->choices) goto oom;
    if ((rc = make_prompt(s, p, j, e)) < 0) goto fail;
    if (j->logprobs) {
        int cap = s->n_ctx - j->n_prompt + 1;
        if (j->max_tokens >= 0 && j->max_tokens < cap) cap = j->max_tokens + 1;
        for (int i = 0; i < j->n; i++)
            if (!(j->choices[i].lp = calloc((size_t)cap, sizeof(hl_job_logprob)))) goto oom;
    }
    pthread_mutex_lock(&s->mu);
    if (s->stopping) {
        pthread_mutex_unlock(&s->mu);
        hl_errf(e, "the server is shutting down");
        rc = HL_SUBMIT_ERROR;
        goto fail;
    }
    if (s->n_queued >= s->p.max_queue) {
        pthread_mutex_unlock(&s->mu);
        hl_errf(e, "the model '%s' is busy: %d requests are already waiting; retry shortly",
                s->p.name ? s->p.name : "", s->n_queued);
        rc = HL_SUBMIT_BUSY;
        goto fail;
    }
    if (s->q_tail) s->q_tail->next = j;
    else s->q_head = j;
    s->q_tail = j;
    s->n_queued++;
    pthread_cond_signal(&s->cv);
    pthread_mutex_unlock(&s->mu);
    *out = j;
    return 0;
oom:
    hl_errf(e, "out of memory");
    rc = HL_SUBMIT_ERROR;
fail:
    job_free(j);
    return rc;
}
