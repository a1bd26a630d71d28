/* server.c - routes, request lifecycle and SSE streaming on libmicrohttpd.
 * See server.h for the contract.
 *
 * One `req` per HTTP request, created on the first access-handler call and
 * freed in the request-completed callback (never inside a write path).
 * Lifecycle of a generation request:
 *   body chunks -> parse (api) -> submit (sched) ->
 *     stream: queue a callback response; its reader turns the job's output
 *       into SSE events and, when there is nothing new, marks the job
 *       waiting and suspends the connection; the worker's notify resumes it.
 *     whole:  mark the job waiting and suspend; the worker notifies when the
 *       job is done, the handler runs again and queues the response.
 * The job's lock orders everything shared with the worker: waiting is set
 * and the connection suspended under it, and the worker resumes under it,
 * so no wake-up is lost. Releasing the job (request completed) clears its
 * notify under the same lock, so the worker never touches a freed req.
 */
#include "server.h"

#include <arpa/inet.h>
#include <pthread.h>
#include <microhttpd.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/random.h>
#include <time.h>
#include <unistd.h>

#include "../api/api.h"
#include "../backend/cpu/kernels.h"
#include "../engine/model.h"
#include "../util/pool.h"
#include "../util/version.h"
#include "../util/clock.h"

struct hl_server {
    hl_server_params p;
    struct MHD_Daemon *d;
    hl_router *router;
    double t_start;
    atomic_int active;
    int port;
};

typedef enum route {
    R_NONE,
    R_HEALTH,
    R_MODELS,
    R_MODEL, /* /v1/models/{id} */
    R_CHAT,
    R_COMPLETION,
    R_PERFORMANCE,
    R_CAPABILITIES,
    R_METRICS,
} route;

typedef struct req {
    hl_server *srv;
    struct MHD_Connection *conn;
    route rt;
    const char *url_tail; /* the model id of R_MODEL */
    hl_buf body;
    bool too_large, started;
    hl_api_request api;
    hl_sched *sched;      /* acquired from the router; released when the request ends */
    hl_job *job;
    /* parked while the model loads: the router's waiter resumes the connection */
    hl_router_waiter waiter;
    pthread_mutex_t mu;   /* parked, woken */
    bool waiting_load, parked, woken, parsed;
    char id[48];
    hl_api_head head;
    /* streaming */
    hl_buf out;
    size_t out_off;
    bool role_sent[HL_API_MAX_N], finish_sent[HL_API_MAX_N];
    bool stream_over; /* [DONE] (or the error event) is in out */
    bool cancelled;   /* the job was cancelled: end the stream with an error (close) */
} req;

/* ---- small helpers ---- */

static int64_t unix_now(void) { return (int64_t)time(NULL); }

static enum MHD_Result queue_buf(req *r, unsigned status, hl_buf *b, const char *ctype) {
    struct MHD_Response *resp;
    if (b->oom) {
        static const char oom[] = "{\"error\":{\"message\":\"out of memory\",\"type\":\"server_error\","
                                  "\"param\":null,\"code\":null}}";
        resp = MHD_create_response_from_buffer(sizeof oom - 1, (void *)oom, MHD_RESPMEM_PERSISTENT);
        status = 500;
    } else {
        resp = MHD_create_response_from_buffer(b->len, b->p ? b->p : "", MHD_RESPMEM_MUST_COPY);
    }
    hl_buf_free(b);
    if (!resp) return MHD_NO;
    MHD_add_response_header(resp, "Content-Type", ctype);
    if (r->srv->p.cors_origin) {
        MHD_add_response_header(resp, "Access-Control-Allow-Origin", r->srv->p.cors_origin);
        MHD_add_response_header(resp, "Vary", "Origin");
    }
    if (status == 503) MHD_add_response_header(resp, "Retry-After", "1");
    if (status == 401) MHD_add_response_header(resp, "WWW-Authenticate", "Bearer");
    enum MHD_Result rc = MHD_queue_response(r->conn, status, resp);
    MHD_destroy_response(resp);
    return rc;
}

static enum MHD_Result queue_json(req *r, unsigned status, hl_buf *b) {
    return queue_buf(r, status, b, "application/json");
}

static enum MHD_Result queue_error(req *r, const hl_api_error *err) {
    hl_buf b = {0};
    hl_api_write_error(&b, err);
    return queue_json(r, (unsigned)err->status, &b);
}

static enum MHD_Result fail(req *r, int status, const char *type, const char *param, const char *code,
                            const char *msg) {
    hl_api_error err;
    hl_api_errorf(&err, status, type, param, code, "%s", msg);
    return queue_error(r, &err);
}

/* Constant-time comparison: the time depends on the lengths only. */
static bool key_equal(const char *given, size_t n_given, const char *want) {
    size_t n_want = strlen(want);
    unsigned char diff = n_given != n_want;
    for (size_t i = 0; i < n_want; i++) diff |= (unsigned char)(want[i] ^ (i < n_given ? given[i] : 0));
    return diff == 0;
}

static bool authorized(req *r) {
    const char *key = r->srv->p.api_key;
    if (!key) return true;
    const char *h = MHD_lookup_connection_value(r->conn, MHD_HEADER_KIND, "Authorization");
    if (!h || strncasecmp(h, "Bearer ", 7)) return false;
    h += 7;
    while (*h == ' ') h++;
    return key_equal(h, strlen(h), key);
}

static void new_id(char *out, size_t cap, const char *prefix) {
    unsigned char rnd[12];
    if (getrandom(rnd, sizeof rnd, 0) != (ssize_t)sizeof rnd) {
        uint64_t t = (uint64_t)clock();
        memcpy(rnd, &t, sizeof t);
    }
    static const char hex[] = "0123456789abcdef";
    size_t k = (size_t)snprintf(out, cap, "%s", prefix);
    for (size_t i = 0; i < sizeof rnd && k + 2 < cap; i++) {
        out[k++] = hex[rnd[i] >> 4];
        out[k++] = hex[rnd[i] & 15];
    }
    out[k] = 0;
}

/* ---- GET routes ---- */

static const char *status_name(hl_model_status st) {
    return st == HL_STATUS_LOADED ? "loaded" : st == HL_STATUS_LOADING ? "loading" : "unloaded";
}

/* "loading" until the default model's first load has ended, then "ok"
 * ("error" if that load failed; the server still serves the others);
 * every model's status alongside. */
static enum MHD_Result serve_health(req *r) {
    hl_server *s = r->srv;
    hl_buf b = {0};
    const char *status = "ok";
    hl_buf_puts(&b, "{\"models\":{");
    for (int i = 0, n = hl_router_count(s->router); i < n; i++) {
        hl_router_info in;
        hl_router_info_at(s->router, i, &in);
        if (s->p.default_model && !strcmp(in.id, s->p.default_model) && in.loads == 0) /* before its first load */
            status = in.status == HL_STATUS_UNLOADED && in.error[0] ? "error" : "loading";
        if (i) hl_buf_putc(&b, ',');
        hl_buf_json_str(&b, in.id, strlen(in.id));
        hl_buf_printf(&b, ":\"%s\"", in.error[0] && in.status == HL_STATUS_UNLOADED ? "failed" : status_name(in.status));
    }
    hl_buf_printf(&b, "},\"status\":\"%s\"}", status);
    return queue_json(r, strcmp(status, "ok") ? 503 : 200, &b);
}

static enum MHD_Result serve_models(req *r) {
    hl_server *s = r->srv;
    int n_all = hl_router_count(s->router);
    hl_api_model_entry *m = calloc((size_t)n_all + 1, sizeof *m);
    hl_router_info *info = calloc((size_t)n_all + 1, sizeof *info);
    if (!m || !info) {
        free(m);
        free(info);
        return fail(r, 500, "server_error", NULL, NULL, "out of memory");
    }
    int n = 0;
    for (int i = 0; i < n_all; i++) {
        hl_router_info_at(s->router, i, &info[n]);
        if (r->rt == R_MODEL && strcmp(info[n].id, r->url_tail)) continue;
        m[n] = (hl_api_model_entry){.id = info[n].id, .created = info[n].created, .owned_by = "heylook",
                                    .status = status_name(info[n].status)};
        n++;
    }
    hl_buf b = {0};
    if (r->rt == R_MODEL && n == 0) {
        free(m);
        free(info);
        char msg[300];
        snprintf(msg, sizeof msg, "The model '%.200s' does not exist", r->url_tail);
        return fail(r, 404, "invalid_request_error", "model", "model_not_found", msg);
    }
    if (r->rt == R_MODEL) hl_api_write_model(&b, &m[0]);
    else hl_api_write_models(&b, m, n);
    free(m);
    free(info);
    return queue_json(r, 200, &b);
}

/* ---- observability ---- */

/* Seconds as JSON milliseconds; null for "no sample yet" (negative). */
static void put_ms(hl_buf *b, const char *key, double sec) {
    hl_buf_printf(b, "\"%s\":", key);
    if (sec < 0) hl_buf_puts(b, "null");
    else hl_buf_printf(b, "%.2f", sec * 1e3);
}

static void put_view(hl_buf *b, const hl_stats_view *v) {
    hl_buf_printf(b,
                  "\"requests\":%llu,\"failed\":%llu,\"cancelled\":%llu,\"prompt_tokens\":%llu,"
                  "\"generation_tokens\":%llu,\"prompt_tokens_per_s\":%.1f,\"generation_tokens_per_s\":%.1f,",
                  (unsigned long long)v->requests, (unsigned long long)v->failed, (unsigned long long)v->cancelled,
                  (unsigned long long)v->prompt_tokens, (unsigned long long)v->gen_tokens, v->prompt_tps, v->gen_tps);
    put_ms(b, "ttft_p50_ms", v->ttft_p50);
    hl_buf_putc(b, ',');
    put_ms(b, "ttft_p95_ms", v->ttft_p95);
    hl_buf_putc(b, ',');
    put_ms(b, "queue_wait_p50_ms", v->queue_p50);
    hl_buf_putc(b, ',');
    put_ms(b, "queue_wait_p95_ms", v->queue_p95);
}

/* The GPUs the CUDA backend sees, as a JSON array (empty without CUDA or
 * without a GPU); memory figures are the driver's, read now. `full` adds
 * what does not change (compute capability, multiprocessors, bandwidth). */
static void put_gpus(hl_buf *b, int n_gpus, bool full) {
    hl_buf_putc(b, '[');
    int k = 0;
    for (int i = 0; i < n_gpus; i++) {
        hl_gpu_desc g;
        if (hl_gpu_info(i, &g) < 0) continue;
        if (k++) hl_buf_putc(b, ',');
        hl_buf_printf(b, "{\"index\":%d,\"name\":", i);
        hl_buf_json_str(b, g.name, strnlen(g.name, sizeof g.name));
        if (full)
            hl_buf_printf(b, ",\"compute_capability\":\"%d.%d\",\"multiprocessors\":%d,\"bandwidth_bytes_per_s\":%.0f",
                          g.cc_major, g.cc_minor, g.n_sm, g.bandwidth);
        hl_buf_printf(b,
                      ",\"memory_total_bytes\":%llu,\"memory_free_bytes\":%llu,\"memory_used_by_heylook_bytes\":%llu}",
                      (unsigned long long)g.mem_total, (unsigned long long)g.mem_free,
                      (unsigned long long)g.mem_used_by_us);
    }
    hl_buf_putc(b, ']');
}

/* A model's backend fields: where it runs when loaded, else where it is
 * configured to ("auto" resolves to "cpu" when no GPU is seen, as the
 * engine would); the configured one; the CUDA device (null on the CPU). */
static void put_backend(hl_buf *b, const hl_router_info *in, int n_gpus) {
    hl_backend now = in->backend;
    if (now == HL_BACKEND_AUTO && n_gpus == 0) now = HL_BACKEND_CPU;
    hl_buf_printf(b, ",\"backend\":\"%s\",\"backend_configured\":\"%s\",\"device\":", hl_backend_name(now),
                  hl_backend_name(in->backend_configured));
    if (now == HL_BACKEND_CPU) hl_buf_puts(b, "null");
    else hl_buf_printf(b, "%d", in->device);
}

/* GET /v1/performance: real counters, per model and overall. Token rates
 * are tokens per second of forward-pass time; percentiles cover each
 * model's last HL_STATS_WINDOW requests. */
static enum MHD_Result serve_performance(req *r) {
    hl_server *s = r->srv;
    int n = hl_router_count(s->router);
    hl_stats **all = calloc((size_t)n + 1, sizeof *all);
    if (!all) return fail(r, 500, "server_error", NULL, NULL, "out of memory");
    hl_buf b = {0};
    uint64_t hits = 0, misses = 0, evictions = 0, loads = 0;
    int loaded = 0, n_gpus = hl_gpu_count();
    hl_buf_printf(&b, "{\"object\":\"performance\",\"uptime_s\":%.1f,\"models\":[", hl_now_s() - s->t_start);
    for (int i = 0; i < n; i++) {
        hl_router_info in;
        hl_stats_view v;
        hl_router_info_at(s->router, i, &in);
        all[i] = hl_router_stats(s->router, i);
        hl_stats_read(all[i], &v);
        hits += in.hits, misses += in.misses, evictions += in.evictions, loads += in.loads;
        loaded += in.status == HL_STATUS_LOADED;
        if (i) hl_buf_putc(&b, ',');
        hl_buf_puts(&b, "{\"id\":");
        hl_buf_json_str(&b, in.id, strlen(in.id));
        put_backend(&b, &in, n_gpus);
        hl_buf_printf(&b, ",\"status\":\"%s\",\"in_flight\":%d,\"memory_bytes\":%llu,", status_name(in.status),
                      in.in_flight, (unsigned long long)(in.status == HL_STATUS_LOADED ? in.bytes : 0));
        put_view(&b, &v);
        hl_buf_printf(&b, ",\"router_hits\":%llu,\"router_misses\":%llu,\"evictions\":%llu,\"loads\":%llu,",
                      (unsigned long long)in.hits, (unsigned long long)in.misses, (unsigned long long)in.evictions,
                      (unsigned long long)in.loads);
        if (in.load_s < 0) hl_buf_puts(&b, "\"last_load_s\":null}");
        else hl_buf_printf(&b, "\"last_load_s\":%.3f}", in.load_s);
    }
    hl_stats_view all_v;
    hl_stats_merge(all, n, &all_v);
    free(all);
    hl_buf_puts(&b, "],\"overall\":{");
    put_view(&b, &all_v);
    hl_buf_printf(&b,
                  "},\"router\":{\"hits\":%llu,\"misses\":%llu,\"evictions\":%llu,\"loads\":%llu,"
                  "\"loaded_models\":%d,\"max_loaded_models\":%d,\"memory_used_bytes\":%llu,"
                  "\"memory_budget_bytes\":%llu},\"http\":{\"active_requests\":%d},\"gpus\":",
                  (unsigned long long)hits, (unsigned long long)misses, (unsigned long long)evictions,
                  (unsigned long long)loads, loaded, hl_router_max_loaded(s->router),
                  (unsigned long long)hl_router_used(s->router), (unsigned long long)hl_router_budget(s->router),
                  atomic_load(&s->active));
    put_gpus(&b, n_gpus, false);
    hl_buf_putc(&b, '}');
    return queue_json(r, 200, &b);
}

/* GET /v1/capabilities: what this server is and the limits it enforces. */
static enum MHD_Result serve_capabilities(req *r) {
    hl_server *s = r->srv;
    const hl_kernels *k = hl_kernels_best();
    int n_gpus = hl_gpu_count();
    hl_buf b = {0};
    hl_buf_printf(&b,
                  "{\"object\":\"capabilities\",\"name\":\"heylookllm\",\"version\":\"%s\","
                  "\"backends\":[\"cpu\"%s],\"cpu\":{\"kernels\":\"%s\",\"threads\":%d},\"gpus\":",
                  HL_VERSION, n_gpus > 0 ? ",\"cuda\"" : "", k->name, hl_cpu_count());
    put_gpus(&b, n_gpus, true);
    hl_buf_putc(&b, ',');
    hl_buf_puts(&b,
                "\"endpoints\":[{\"path\":\"/v1/chat/completions\",\"method\":\"POST\",\"stream\":true},"
                "{\"path\":\"/v1/completions\",\"method\":\"POST\",\"stream\":true},"
                "{\"path\":\"/v1/models\",\"method\":\"GET\"},{\"path\":\"/v1/models/{id}\",\"method\":\"GET\"},"
                "{\"path\":\"/v1/performance\",\"method\":\"GET\"},{\"path\":\"/v1/capabilities\",\"method\":\"GET\"},"
                "{\"path\":\"/metrics\",\"method\":\"GET\"},{\"path\":\"/health\",\"method\":\"GET\"}],"
                "\"model_formats\":[\"gguf\"],\"weight_types\":[\"F32\",\"F16\",\"BF16\",\"Q8_0\",\"Q4_0\","
                "\"Q4_1\",\"Q5_0\",\"Q5_1\",\"Q2_K\",\"Q3_K\",\"Q4_K\",\"Q5_K\",\"Q6_K\"],"
                "\"architectures\":[\"llama\",\"qwen2\",\"gemma3\"],\"image_formats\":[],"
                "\"processing_modes\":[\"conversation\"],");
    hl_buf_printf(&b,
                  "\"limits\":{\"max_body_bytes\":%zu,\"idle_timeout_s\":%d,\"max_connections\":%d,"
                  "\"max_tokens\":%d,\"max_n\":%d,\"max_stop\":%d,\"max_messages\":%d,\"max_top_logprobs\":%d,"
                  "\"max_loaded_models\":%d,\"memory_budget_bytes\":%llu,\"auth\":%s},\"models\":[",
                  s->p.max_body, s->p.timeout_s, s->p.max_connections, s->p.max_tokens, HL_API_MAX_N, HL_API_MAX_STOP,
                  HL_API_MAX_MESSAGES, HL_SAMPLER_MAX_TOP_LOGPROBS, hl_router_max_loaded(s->router),
                  (unsigned long long)hl_router_budget(s->router), s->p.api_key ? "true" : "false");
    for (int i = 0, n = hl_router_count(s->router); i < n; i++) {
        hl_router_info in;
        hl_router_info_at(s->router, i, &in);
        if (i) hl_buf_putc(&b, ',');
        hl_buf_puts(&b, "{\"id\":");
        hl_buf_json_str(&b, in.id, strlen(in.id));
        put_backend(&b, &in, n_gpus);
        hl_buf_printf(&b, ",\"status\":\"%s\",\"pinned\":%s,\"parallel\":%d,\"context\":%d,\"queue\":%d}",
                      status_name(in.status), in.pinned ? "true" : "false", in.n_seq, in.n_ctx, in.max_queue);
    }
    hl_buf_puts(&b, "]}");
    return queue_json(r, 200, &b);
}

/* GET /metrics: the same figures in Prometheus' text format. */
static enum MHD_Result serve_metrics(req *r) {
    hl_server *s = r->srv;
    hl_buf b = {0};
    int n = hl_router_count(s->router);
    static const struct {
        const char *name, *type, *help;
    } M[] = {
        {"heylook_requests_total", "counter", "Finished generation requests by outcome."},
        {"heylook_prompt_tokens_total", "counter", "Prompt tokens processed."},
        {"heylook_generation_tokens_total", "counter", "Tokens generated."},
        {"heylook_prompt_seconds_total", "counter", "Forward-pass seconds spent on prompt tokens."},
        {"heylook_generation_seconds_total", "counter", "Forward-pass seconds spent on generated tokens."},
        {"heylook_time_to_first_token_seconds", "summary", "Time from request to first token (last 1024)."},
        {"heylook_queue_wait_seconds", "summary", "Time requests waited for a sequence (last 1024)."},
        {"heylook_model_loaded", "gauge", "1 when the model is loaded."},
        {"heylook_model_in_flight", "gauge", "Requests the model is serving."},
        {"heylook_model_memory_bytes", "gauge", "Weights and KV cache of the loaded model."},
        {"heylook_model_load_seconds", "gauge", "Duration of the model's last load."},
        {"heylook_router_hits_total", "counter", "Requests that found their model loaded."},
        {"heylook_router_misses_total", "counter", "Loads started for a request or a pre-warm."},
        {"heylook_router_evictions_total", "counter", "Times the model was evicted to make room."},
    };
    for (size_t m = 0; m < sizeof M / sizeof M[0]; m++) {
        hl_buf_printf(&b, "# HELP %s %s\n# TYPE %s %s\n", M[m].name, M[m].help, M[m].name, M[m].type);
        for (int i = 0; i < n; i++) {
            hl_router_info in;
            hl_stats_view v;
            hl_router_info_at(s->router, i, &in);
            hl_stats_read(hl_router_stats(s->router, i), &v);
            const char *id = in.id; /* ids come from the config or file names: no quotes or backslashes */
            switch (m) {
            case 0:
                hl_buf_printf(&b, "%s{model=\"%s\",outcome=\"ok\"} %llu\n", M[m].name, id,
                              (unsigned long long)(v.requests - v.failed - v.cancelled));
                hl_buf_printf(&b, "%s{model=\"%s\",outcome=\"failed\"} %llu\n", M[m].name, id,
                              (unsigned long long)v.failed);
                hl_buf_printf(&b, "%s{model=\"%s\",outcome=\"cancelled\"} %llu\n", M[m].name, id,
                              (unsigned long long)v.cancelled);
                break;
            case 1: hl_buf_printf(&b, "%s{model=\"%s\"} %llu\n", M[m].name, id, (unsigned long long)v.prompt_tokens); break;
            case 2: hl_buf_printf(&b, "%s{model=\"%s\"} %llu\n", M[m].name, id, (unsigned long long)v.gen_tokens); break;
            case 3: hl_buf_printf(&b, "%s{model=\"%s\"} %.6f\n", M[m].name, id, v.prompt_s); break;
            case 4: hl_buf_printf(&b, "%s{model=\"%s\"} %.6f\n", M[m].name, id, v.gen_s); break;
            case 5:
            case 6: {
                double p50 = m == 5 ? v.ttft_p50 : v.queue_p50, p95 = m == 5 ? v.ttft_p95 : v.queue_p95;
                if (p50 >= 0) {
                    hl_buf_printf(&b, "%s{model=\"%s\",quantile=\"0.5\"} %.6f\n", M[m].name, id, p50);
                    hl_buf_printf(&b, "%s{model=\"%s\",quantile=\"0.95\"} %.6f\n", M[m].name, id, p95);
                }
                hl_buf_printf(&b, "%s_count{model=\"%s\"} %llu\n", M[m].name, id, (unsigned long long)v.requests);
                break;
            }
            case 7: hl_buf_printf(&b, "%s{model=\"%s\"} %d\n", M[m].name, id, in.status == HL_STATUS_LOADED); break;
            case 8: hl_buf_printf(&b, "%s{model=\"%s\"} %d\n", M[m].name, id, in.in_flight); break;
            case 9:
                hl_buf_printf(&b, "%s{model=\"%s\"} %llu\n", M[m].name, id,
                              (unsigned long long)(in.status == HL_STATUS_LOADED ? in.bytes : 0));
                break;
            case 10:
                if (in.load_s >= 0) hl_buf_printf(&b, "%s{model=\"%s\"} %.3f\n", M[m].name, id, in.load_s);
                break;
            case 11: hl_buf_printf(&b, "%s{model=\"%s\"} %llu\n", M[m].name, id, (unsigned long long)in.hits); break;
            case 12: hl_buf_printf(&b, "%s{model=\"%s\"} %llu\n", M[m].name, id, (unsigned long long)in.misses); break;
            case 13: hl_buf_printf(&b, "%s{model=\"%s\"} %llu\n", M[m].name, id, (unsigned long long)in.evictions); break;
            }
        }
    }
    hl_buf_printf(&b,
                  "# HELP heylook_memory_used_bytes Weights and KV caches of the loaded models.\n"
                  "# TYPE heylook_memory_used_bytes gauge\nheylook_memory_used_bytes %llu\n"
                  "# HELP heylook_memory_budget_bytes The router's memory budget.\n"
                  "# TYPE heylook_memory_budget_bytes gauge\nheylook_memory_budget_bytes %llu\n"
                  "# HELP heylook_http_active_requests HTTP requests being served.\n"
                  "# TYPE heylook_http_active_requests gauge\nheylook_http_active_requests %d\n",
                  (unsigned long long)hl_router_used(s->router), (unsigned long long)hl_router_budget(s->router),
                  atomic_load(&s->active));
    return queue_buf(r, 200, &b, "text/plain; version=0.0.4; charset=utf-8");
}

/* ---- generation ---- */

/* Worker thread, job lock held: the reader parked; wake its connection. */
static void on_job_output(void *arg) {
    req *r = arg;
    MHD_resume_connection(r->conn);
}

static const char *finish_name(hl_finish f) {
    return f == HL_FINISH_LENGTH ? "length" : "stop";
}

/* Converts n job logprobs into api logprobs (token texts in `texts`). */
static hl_api_logprob *convert_logprobs(const hl_job *j, const hl_job_logprob *lp, int n, size_t base,
                                        hl_buf *texts) {
    if (n <= 0) return NULL;
    hl_api_logprob *out = calloc((size_t)n, sizeof *out);
    if (!out) return NULL;
    /* texts grows while we fill: record offsets first, pointers after */
    size_t (*off)[1 + HL_SAMPLER_MAX_TOP_LOGPROBS] = calloc((size_t)n, sizeof *off);
    if (!off) {
        free(out);
        return NULL;
    }
    char piece[256];
    for (int i = 0; i < n; i++) {
        int k = hl_job_token_piece(j, lp[i].id, piece, sizeof piece);
        off[i][0] = texts->len;
        hl_buf_put(texts, piece, k > 0 ? (size_t)k : 0);
        out[i].tok_len = k > 0 ? (size_t)k : 0;
        out[i].logprob = lp[i].logprob;
        out[i].text_offset = base + lp[i].text_offset;
        out[i].n_top = lp[i].n_top;
        for (int t = 0; t < lp[i].n_top; t++) {
            k = hl_job_token_piece(j, lp[i].top[t].id, piece, sizeof piece);
            off[i][1 + t] = texts->len;
            hl_buf_put(texts, piece, k > 0 ? (size_t)k : 0);
            out[i].top[t].tok_len = k > 0 ? (size_t)k : 0;
            out[i].top[t].logprob = lp[i].top[t].logprob;
        }
    }
    const char *base_p = texts->p ? texts->p : "";
    for (int i = 0; i < n; i++) {
        out[i].tok = base_p + off[i][0];
        for (int t = 0; t < out[i].n_top; t++) out[i].top[t].tok = base_p + off[i][1 + t];
    }
    free(off);
    return out;
}

static size_t echo_len(const req *r) { return r->api.kind == HL_API_COMPLETION && r->api.echo ? r->api.prompt_len : 0; }

/* Under the job lock: appends to r->out every SSE event the job's new
 * output calls for. Returns true if it appended anything. */
static bool stream_collect(req *r) {
    size_t before = r->out.len;
    hl_job *j = r->job;
    int n = hl_job_n_choices(j);
    const char *err = hl_job_error(j);
    for (int i = 0; i < n && !err; i++) {
        hl_job_choice *ch = hl_job_choice_at(j, i);
        if (r->api.kind == HL_API_CHAT && !r->role_sent[i]) {
            hl_api_delta d = {.index = i, .role_first = true};
            hl_api_write_chunk(&r->out, &r->head, &d, r->api.include_usage);
            r->role_sent[i] = true;
        }
        bool finished = ch->finish == HL_FINISH_STOP || ch->finish == HL_FINISH_LENGTH;
        bool news = ch->text.len > ch->sent || ch->n_lp > ch->lp_sent;
        if (r->api.kind == HL_API_COMPLETION && r->api.echo && !r->role_sent[i]) {
            hl_api_delta d = {.index = i, .text = r->api.prompt, .text_len = r->api.prompt_len};
            hl_api_write_chunk(&r->out, &r->head, &d, r->api.include_usage);
            r->role_sent[i] = true;
        }
        if (news || (finished && !r->finish_sent[i])) {
            hl_buf texts = {0};
            int n_lp = ch->n_lp - ch->lp_sent;
            hl_api_logprob *lp = convert_logprobs(r->job, ch->lp + ch->lp_sent, n_lp, echo_len(r),
                                                  &texts);
            hl_api_delta d = {.index = i,
                              .text = ch->text.p ? ch->text.p + ch->sent : "",
                              .text_len = ch->text.len - ch->sent,
                              .finish_reason = finished ? finish_name(ch->finish) : NULL,
                              .logprobs = lp,
                              .n_logprobs = lp ? n_lp : 0};
            hl_api_write_chunk(&r->out, &r->head, &d, r->api.include_usage);
            free(lp);
            hl_buf_free(&texts);
            ch->sent = ch->text.len;
            ch->lp_sent = ch->n_lp;
            if (finished) r->finish_sent[i] = true;
        }
    }
    for (int i = 0; i < n; i++)
        if (hl_job_choice_at(j, i)->finish == HL_FINISH_CANCELLED) { /* the client left: just close */
            r->stream_over = r->cancelled = true;
            return r->out.len > before;
        }
    if (err) {
        hl_api_error e;
        hl_api_errorf(&e, 500, "server_error", NULL, NULL, "generation failed: %s", err);
        hl_api_write_error_event(&r->out, &e);
        hl_api_write_done(&r->out);
        r->stream_over = true;
    } else if (hl_job_done(j)) {
        bool all = true;
        for (int i = 0; i < n; i++) all &= r->finish_sent[i];
        if (all) {
            if (r->api.include_usage) {
                hl_api_usage u = {.prompt_tokens = hl_job_n_prompt(j)};
                for (int i = 0; i < n; i++) u.completion_tokens += hl_job_choice_at(j, i)->n_tokens;
                hl_api_write_usage_chunk(&r->out, &r->head, &u);
            }
            hl_api_write_done(&r->out);
            r->stream_over = true;
        }
    }
    return r->out.len > before;
}

static ssize_t stream_read(void *cls, uint64_t pos, char *buf, size_t max) {
    (void)pos;
    req *r = cls;
    for (;;) {
        if (r->out.oom) return MHD_CONTENT_READER_END_WITH_ERROR;
        if (r->out_off < r->out.len) {
            size_t n = r->out.len - r->out_off;
            if (n > max) n = max;
            memcpy(buf, r->out.p + r->out_off, n);
            r->out_off += n;
            if (r->out_off == r->out.len) {
                hl_buf_reset(&r->out);
                r->out_off = 0;
            }
            return (ssize_t)n;
        }
        if (r->stream_over) return r->cancelled ? MHD_CONTENT_READER_END_WITH_ERROR : MHD_CONTENT_READER_END_OF_STREAM;
        hl_job_lock(r->job);
        bool got = stream_collect(r) || r->stream_over;
        if (!got) {
            hl_job_set_waiting(r->job, true);
            MHD_suspend_connection(r->conn);
        }
        hl_job_unlock(r->job);
        if (!got) return 0;
    }
}

static enum MHD_Result respond_whole(req *r) {
    hl_job *j = r->job;
    int n = hl_job_n_choices(j);
    const char *err = hl_job_error(j);
    if (err) {
        char msg[HL_ERR_MSG_MAX + 32];
        snprintf(msg, sizeof msg, "generation failed: %s", err);
        return fail(r, 500, "server_error", NULL, NULL, msg);
    }
    hl_api_choice *c = calloc((size_t)n, sizeof *c);
    hl_api_logprob **lps = calloc((size_t)n, sizeof *lps);
    hl_buf *texts = calloc((size_t)n, sizeof *texts);
    hl_buf *full = calloc((size_t)n, sizeof *full); /* echo: prompt + text */
    hl_api_usage u = {.prompt_tokens = hl_job_n_prompt(j)};
    hl_buf b = {0};
    if (!c || !lps || !texts || !full) b.oom = true;
    for (int i = 0; i < n && !b.oom; i++) {
        hl_job_choice *ch = hl_job_choice_at(j, i);
        u.completion_tokens += ch->n_tokens;
        lps[i] = r->api.logprobs ? convert_logprobs(r->job, ch->lp, ch->n_lp, echo_len(r), &texts[i])
                                 : NULL;
        const char *text = ch->text.p ? ch->text.p : "";
        size_t len = ch->text.len;
        if (echo_len(r)) {
            hl_buf_put(&full[i], r->api.prompt, r->api.prompt_len);
            hl_buf_put(&full[i], text, len);
            text = full[i].p ? full[i].p : "";
            len = full[i].len;
        }
        c[i] = (hl_api_choice){.index = i, .text = text, .text_len = len,
                               .finish_reason = finish_name(ch->finish), .logprobs = lps[i],
                               .n_logprobs = lps[i] ? ch->n_lp : 0};
    }
    if (!b.oom) hl_api_write_response(&b, &r->head, c, n, &u);
    for (int i = 0; lps && texts && full && i < n; i++) {
        free(lps[i]);
        hl_buf_free(&texts[i]);
        hl_buf_free(&full[i]);
    }
    free(c);
    free(lps);
    free(texts);
    free(full);
    return queue_json(r, 200, &b);
}

/* The job of a whole response finished (or the handler ran again early). */
static enum MHD_Result resume_whole(req *r) {
    hl_job_lock(r->job);
    bool done = hl_job_done(r->job);
    if (!done) {
        hl_job_set_waiting(r->job, true);
        MHD_suspend_connection(r->conn);
    }
    hl_job_unlock(r->job);
    if (!done) return MHD_YES;
    return respond_whole(r);
}

/* The model's configured sampling defaults, for the fields the request left out. */
static void apply_defaults(hl_api_request *a, const hl_model_defaults *d) {
    if (!d) return;
    hl_sampler_params *p = &a->sampling;
#define DEF(bit, req_bit, field, value)                                                            \
    if ((d->set & (bit)) && !(a->given & (req_bit))) field = value
    DEF(HL_DEF_TEMPERATURE, HL_API_GIVEN_TEMPERATURE, p->temperature, d->temperature);
    DEF(HL_DEF_TOP_P, HL_API_GIVEN_TOP_P, p->top_p, d->top_p);
    DEF(HL_DEF_TOP_K, HL_API_GIVEN_TOP_K, p->top_k, d->top_k);
    DEF(HL_DEF_MIN_P, HL_API_GIVEN_MIN_P, p->min_p, d->min_p);
    DEF(HL_DEF_REPETITION_PENALTY, HL_API_GIVEN_REPETITION_PENALTY, p->repetition_penalty, d->repetition_penalty);
    DEF(HL_DEF_REPETITION_CONTEXT_SIZE, HL_API_GIVEN_REPETITION_CONTEXT_SIZE, p->repetition_context_size,
        d->repetition_context_size);
    DEF(HL_DEF_MAX_TOKENS, HL_API_GIVEN_MAX_TOKENS, a->max_tokens, d->max_tokens);
#undef DEF
}

/* Router thread, router lock held: the model this request waits for has
 * loaded (or failed). Resume the connection if it is parked. */
static void on_model_ready(void *arg) {
    req *r = arg;
    pthread_mutex_lock(&r->mu);
    if (r->parked) {
        r->parked = false;
        MHD_resume_connection(r->conn);
    } else {
        r->woken = true;
    }
    pthread_mutex_unlock(&r->mu);
}

static enum MHD_Result start_generation(req *r) {
    hl_server *s = r->srv;
    if (!r->parsed) {
        hl_api_error err;
        hl_api_limits lim = {.max_n = HL_API_MAX_N, .max_tokens = s->p.max_tokens};
        if (hl_api_parse_request(r->rt == R_CHAT ? HL_API_CHAT : HL_API_COMPLETION, r->body.p ? r->body.p : "",
                                 r->body.len, &lim, &r->api, &err) < 0)
            return queue_error(r, &err);
        hl_buf_free(&r->body);
        r->parsed = true;
    }
    hl_err e = {0};
    int rc;
    for (;;) {
        r->waiting_load = false;
        r->waiter = (hl_router_waiter){.fn = on_model_ready, .arg = r};
        rc = hl_router_acquire(s->router, r->api.model, &r->sched, &r->waiter, &e);
        if (rc != HL_ROUTER_WAIT) break;
        /* park until the load ends, unless it already has */
        pthread_mutex_lock(&r->mu);
        if (r->woken) {
            r->woken = false;
            pthread_mutex_unlock(&r->mu);
            continue;
        }
        r->waiting_load = r->parked = true;
        MHD_suspend_connection(r->conn);
        pthread_mutex_unlock(&r->mu);
        return MHD_YES;
    }
    if (rc == HL_ROUTER_UNKNOWN) return fail(r, 404, "invalid_request_error", "model", "model_not_found", e.msg);
    if (rc == HL_ROUTER_FAILED) return fail(r, 500, "server_error", "model", "model_load_failed", e.msg);
    if (rc == HL_ROUTER_NO_ROOM) return fail(r, 503, "server_error", "model", "no_room", e.msg);
    if (rc < 0) return fail(r, 503, "server_error", NULL, "shutting_down", e.msg);
    apply_defaults(&r->api, hl_router_defaults(s->router, r->api.model));
    const union MHD_ConnectionInfo *ci = MHD_get_connection_info(r->conn, MHD_CONNECTION_INFO_CONNECTION_FD);
    hl_job_params jp = {
        .messages_json = r->api.kind == HL_API_CHAT ? r->api.messages_json : NULL,
        .prompt = r->api.prompt,
        .prompt_len = r->api.prompt_len,
        .sampling = r->api.sampling,
        .n = r->api.n,
        .max_tokens = r->api.max_tokens,
        .stop = (const char *const *)r->api.stop,
        .stop_len = r->api.stop_len,
        .n_stop = r->api.n_stop,
        .top_logprobs = r->api.top_logprobs,
        .logprobs = r->api.logprobs,
        .notify_each_token = r->api.stream,
        .notify = on_job_output,
        .notify_arg = r,
        .client_fd = ci ? ci->connect_fd : -1,
    };
    rc = hl_sched_submit(r->sched, &jp, &r->job, &e);
    if (rc == HL_SUBMIT_BAD_REQUEST) {
        const char *code = strstr(e.msg, "context") ? "context_length_exceeded" : NULL;
        return fail(r, 400, "invalid_request_error", NULL, code, e.msg);
    }
    if (rc == HL_SUBMIT_BUSY) return fail(r, 503, "server_error", NULL, "overloaded", e.msg);
    if (rc < 0) return fail(r, 500, "server_error", NULL, NULL, e.msg);
    new_id(r->id, sizeof r->id, r->api.kind == HL_API_CHAT ? "chatcmpl-" : "cmpl-");
    r->head = (hl_api_head){.kind = r->api.kind, .id = r->id, .created = unix_now(), .model = r->api.model,
                            .fingerprint = "heylook"};
    if (!r->api.stream) return resume_whole(r);
    struct MHD_Response *resp = MHD_create_response_from_callback(MHD_SIZE_UNKNOWN, 16 * 1024, stream_read, r, NULL);
    if (!resp) return MHD_NO;
    MHD_add_response_header(resp, "Content-Type", "text/event-stream");
    MHD_add_response_header(resp, "Cache-Control", "no-cache");
    MHD_add_response_header(resp, "X-Accel-Buffering", "no");
    if (s->p.cors_origin) {
        MHD_add_response_header(resp, "Access-Control-Allow-Origin", s->p.cors_origin);
        MHD_add_response_header(resp, "Vary", "Origin");
    }
    enum MHD_Result q = MHD_queue_response(r->conn, 200, resp);
    MHD_destroy_response(resp);
    return q;
}

/* ---- dispatch ---- */

static route match(const char *url, const char **tail) {
    if (!strcmp(url, "/health")) return R_HEALTH;
    if (!strcmp(url, "/v1/models")) return R_MODELS;
    if (!strncmp(url, "/v1/models/", 11) && url[11]) {
        *tail = url + 11;
        return R_MODEL;
    }
    if (!strcmp(url, "/v1/chat/completions")) return R_CHAT;
    if (!strcmp(url, "/v1/completions")) return R_COMPLETION;
    if (!strcmp(url, "/v1/performance")) return R_PERFORMANCE;
    if (!strcmp(url, "/v1/capabilities")) return R_CAPABILITIES;
    if (!strcmp(url, "/metrics")) return R_METRICS;
    return R_NONE;
}

static enum MHD_Result on_access(void *cls, struct MHD_Connection *conn, const char *url, const char *method,
                                 const char *version, const char *upload_data, size_t *upload_size,
                                 void **con_cls) {
    (void)version;
    hl_server *s = cls;
    req *r = *con_cls;
    if (!r) {
        r = calloc(1, sizeof *r);
        if (!r) return MHD_NO;
        pthread_mutex_init(&r->mu, NULL);
        r->srv = s;
        r->conn = conn;
        r->rt = match(url, &r->url_tail);
        *con_cls = r;
        atomic_fetch_add(&s->active, 1);
        /* everything that can be answered before the body arrives */
        bool post = !strcmp(method, "POST");
        if (!strcmp(method, "OPTIONS") && s->p.cors_origin) {
            struct MHD_Response *resp = MHD_create_response_from_buffer(0, "", MHD_RESPMEM_PERSISTENT);
            if (!resp) return MHD_NO;
            MHD_add_response_header(resp, "Access-Control-Allow-Origin", s->p.cors_origin);
            MHD_add_response_header(resp, "Access-Control-Allow-Methods", "GET, POST, OPTIONS");
            MHD_add_response_header(resp, "Access-Control-Allow-Headers",
                                    "Authorization, Content-Type, OpenAI-Organization, OpenAI-Project");
            MHD_add_response_header(resp, "Access-Control-Max-Age", "86400");
            MHD_add_response_header(resp, "Vary", "Origin");
            enum MHD_Result q = MHD_queue_response(conn, 204, resp);
            MHD_destroy_response(resp);
            return q;
        }
        if (r->rt == R_NONE) {
            char msg[300];
            snprintf(msg, sizeof msg, "Unknown endpoint %.8s %.200s", method, url);
            return fail(r, 404, "invalid_request_error", NULL, "unknown_url", msg);
        }
        bool want_post = r->rt == R_CHAT || r->rt == R_COMPLETION;
        if (want_post != post || (!post && strcmp(method, "GET") && strcmp(method, "HEAD"))) {
            char msg[200];
            snprintf(msg, sizeof msg, "%.8s is not allowed on %.100s; use %s", method, url, want_post ? "POST" : "GET");
            return fail(r, 405, "invalid_request_error", NULL, "method_not_allowed", msg);
        }
        if (r->rt != R_HEALTH && !authorized(r))
            return fail(r, 401, "invalid_request_error", NULL, "invalid_api_key",
                        "Incorrect or missing API key: send 'Authorization: Bearer <key>'");
        if (r->rt == R_HEALTH) return serve_health(r);
        if (r->rt == R_MODELS || r->rt == R_MODEL) return serve_models(r);
        if (r->rt == R_PERFORMANCE) return serve_performance(r);
        if (r->rt == R_CAPABILITIES) return serve_capabilities(r);
        if (r->rt == R_METRICS) return serve_metrics(r);
        const char *cl = MHD_lookup_connection_value(conn, MHD_HEADER_KIND, "Content-Length");
        if (cl && strtoull(cl, NULL, 10) > s->p.max_body) {
            char msg[200];
            snprintf(msg, sizeof msg, "The request body is %s bytes; this server accepts at most %zu (--max-body)",
                     cl, s->p.max_body);
            return fail(r, 413, "invalid_request_error", NULL, "request_too_large", msg);
        }
        return MHD_YES; /* the body follows */
    }
    if (*upload_size) { /* a body chunk */
        if (!r->too_large) {
            if (r->body.len + *upload_size > r->srv->p.max_body) {
                r->too_large = true;
                hl_buf_free(&r->body);
            } else {
                hl_buf_put(&r->body, upload_data, *upload_size);
            }
        }
        *upload_size = 0;
        return MHD_YES;
    }
    if (r->job) return resume_whole(r); /* resumed: the whole response is ready */
    if (r->waiting_load) return start_generation(r); /* resumed: the model's load ended */
    if (r->started) return MHD_YES;
    r->started = true;
    if (r->too_large) {
        char msg[160];
        snprintf(msg, sizeof msg, "The request body exceeds %zu bytes (--max-body)", s->p.max_body);
        return fail(r, 413, "invalid_request_error", NULL, "request_too_large", msg);
    }
    if (r->body.oom) return fail(r, 500, "server_error", NULL, NULL, "out of memory reading the request");
    return start_generation(r);
}

static void on_completed(void *cls, struct MHD_Connection *conn, void **con_cls,
                         enum MHD_RequestTerminationCode toe) {
    (void)conn;
    (void)toe;
    hl_server *s = cls;
    req *r = *con_cls;
    if (!r) return;
    *con_cls = NULL;
    if (r->waiting_load) hl_router_cancel_wait(s->router, &r->waiter); /* no call of it runs after this */
    hl_job_release(r->job); /* cancels it if the client left early */
    hl_router_release(s->router, r->sched);
    pthread_mutex_destroy(&r->mu);
    hl_api_request_free(&r->api);
    hl_buf_free(&r->body);
    hl_buf_free(&r->out);
    free(r);
    atomic_fetch_sub(&s->active, 1);
}

/* Streams are many small writes: send each at once instead of letting
 * Nagle's algorithm hold it for the client's delayed ACK (up to 40 ms).
 * The send buffer is fixed at 128 KiB (the kernel would otherwise grow it
 * to megabytes for a client that stops reading): past it, a slow client's
 * stream stops being drained and its sequence pauses (--max-unsent). */
static void on_connection(void *cls, struct MHD_Connection *conn, void **socket_context,
                          enum MHD_ConnectionNotificationCode toe) {
    (void)cls;
    (void)socket_context;
    if (toe != MHD_CONNECTION_NOTIFY_STARTED) return;
    const union MHD_ConnectionInfo *ci = MHD_get_connection_info(conn, MHD_CONNECTION_INFO_CONNECTION_FD);
    int one = 1;
    int sndbuf = 128 * 1024;
    if (ci) {
        setsockopt(ci->connect_fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
        setsockopt(ci->connect_fd, SOL_SOCKET, SO_SNDBUF, &sndbuf, sizeof sndbuf);
    }
}

static void on_mhd_log(void *cls, const char *fmt, va_list ap) {
    (void)cls;
    fprintf(stderr, "heylookllm: http: ");
    vfprintf(stderr, fmt, ap);
}

int hl_server_start(hl_server **out, const hl_server_params *p, hl_router *router, hl_err *e) {
    *out = NULL;
    hl_server *s = calloc(1, sizeof *s);
    if (!s) return hl_errf(e, "out of memory");
    s->p = *p;
    if (!s->p.host) s->p.host = "127.0.0.1";
    if (!s->p.max_body) s->p.max_body = 64u << 20;
    if (!s->p.timeout_s) s->p.timeout_s = 300;
    if (!s->p.n_threads) s->p.n_threads = 4;
    if (!s->p.max_connections) s->p.max_connections = 1024;
    if (!s->p.max_tokens) s->p.max_tokens = 1 << 20;
    s->router = router;
    s->t_start = hl_now_s();
    struct sockaddr_storage ss = {0};
    int port = s->p.port < 0 ? 0 : s->p.port;
    unsigned flags = MHD_USE_INTERNAL_POLLING_THREAD | MHD_USE_EPOLL | MHD_ALLOW_SUSPEND_RESUME | MHD_USE_ERROR_LOG;
    struct sockaddr_in *a4 = (struct sockaddr_in *)&ss;
    struct sockaddr_in6 *a6 = (struct sockaddr_in6 *)&ss;
    if (inet_pton(AF_INET, s->p.host, &a4->sin_addr) == 1) {
        a4->sin_family = AF_INET;
        a4->sin_port = htons((uint16_t)port);
    } else if (inet_pton(AF_INET6, s->p.host, &a6->sin6_addr) == 1) {
        a6->sin6_family = AF_INET6;
        a6->sin6_port = htons((uint16_t)port);
        flags |= MHD_USE_IPv6;
    } else if (!strcmp(s->p.host, "localhost")) {
        a4->sin_family = AF_INET;
        a4->sin_port = htons((uint16_t)port);
        a4->sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    } else {
        free(s);
        return hl_errf(e, "--host '%s' is not an IP address (use 127.0.0.1, 0.0.0.0, ::1, or localhost)", p->host);
    }
    s->d = MHD_start_daemon(flags, (uint16_t)port, NULL, NULL, on_access, s,
                            MHD_OPTION_EXTERNAL_LOGGER, on_mhd_log, NULL,
                            MHD_OPTION_SOCK_ADDR, (struct sockaddr *)&ss,
                            MHD_OPTION_NOTIFY_COMPLETED, on_completed, s,
                            MHD_OPTION_NOTIFY_CONNECTION, on_connection, NULL,
                            MHD_OPTION_THREAD_POOL_SIZE, (unsigned)s->p.n_threads,
                            MHD_OPTION_CONNECTION_TIMEOUT, (unsigned)s->p.timeout_s,
                            MHD_OPTION_CONNECTION_LIMIT, (unsigned)s->p.max_connections,
                            MHD_OPTION_END);
    if (!s->d) {
        free(s);
        return hl_errf(e, "cannot listen on %s:%d (is the port in use? try --port)", p->host ? p->host : "127.0.0.1",
                       port);
    }
    const union MHD_DaemonInfo *di = MHD_get_daemon_info(s->d, MHD_DAEMON_INFO_BIND_PORT);
    s->port = di ? di->port : port;
    *out = s;
    return 0;
}

int hl_server_port(const hl_server *s) { return s->port; }

void hl_server_quiesce(hl_server *s) {
    MHD_socket fd = MHD_quiesce_daemon(s->d);
    if (fd != MHD_INVALID_SOCKET) close(fd);
}

int hl_server_active(const hl_server *s) { return atomic_load(&s->active); }

void hl_server_stop(hl_server *s) {
    if (!s) return;
    MHD_stop_daemon(s->d);
    free(s);
}
