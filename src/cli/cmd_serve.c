/* cmd_serve.c - `heylookllm serve`: starts the HTTP server at once (so
 * /health and /v1/models answer while models load), loads each model on a
 * loader thread and starts its scheduler, then waits for SIGINT/SIGTERM.
 * Shutdown is graceful: stop accepting, let requests in flight finish for up
 * to --grace seconds, then cancel the rest (their streams end with an error
 * event), and free everything.
 *
 * Threads: the main thread only waits for signals (blocked everywhere else);
 * the loader thread owns model loading; schedulers and the HTTP library have
 * their own threads.
 */
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>

#include "../router/config.h"
#include "../router/router.h"
#include "../server/server.h"
#include "catalog.h"
#include "cli.h"
#include "../util/clock.h"

#define MAX_MODELS 32

typedef struct served {
    char path[4096];
    char id[128];
    const char *template_file;
} served;

static void usage(void) {
    fprintf(stderr,
            "usage: heylookllm serve [--config FILE | --model NAME|PATH [--chat-template FILE]...] [options]\n"
            "  --config FILE         models.yaml (default: ./models.yaml, else ~/.config/heylook/models.yaml,\n"
            "                        else the default model)\n"
            "  --model-id ID         the model to pre-warm (default: default_model, or the first)\n"
            "  --model NAME|PATH     a catalog model or a GGUF file (repeatable; default: the default model);\n"
            "                        its id is the catalog name or the file name without .gguf\n"
            "  --chat-template FILE  a Jinja chat template overriding the preceding model's own\n"
            "  --host H              address to listen on (default 127.0.0.1)\n"
            "  --port P              port (default 8080; 0 = any free port, printed at start)\n"
            "  --api-key KEY         require 'Authorization: Bearer KEY' (or set HEYLOOK_API_KEY)\n"
            "  --cors ORIGIN         send CORS headers for ORIGIN ('*' for any)\n"
            "  --max-body BYTES      request body limit (default 64 MiB; suffixes K, M)\n"
            "  --timeout S           idle connection timeout in seconds (default 300)\n"
            "  --parallel N          sequences per model generating at once (default 4)\n"
            "  --queue N             requests per model waiting beyond those (default 64; then 503)\n"
            "  --generation-lock     each model serves one request at a time\n"
            "  --max-unsent BYTES    generated text a slow streaming client may leave unread before its\n"
            "                        sequence pauses (default 256K)\n"
            "  -c, --ctx-size N      context per sequence (default 4096 or the model's, if smaller)\n"
            "  -t, --threads N       compute threads per model (default: all CPUs)\n"
            "  --backend B           auto, cpu or cuda: where the --model models run (default: $HL_BACKEND,\n"
            "                        else auto = CUDA when built with it and a GPU can run the model, else\n"
            "                        the CPU); a models.yaml entry has its own 'backend' key\n"
            "  --http-threads N      HTTP threads (default 4)\n"
            "  --max-loaded N        models kept loaded at once (default: all the --model ones)\n"
            "  --memory-budget MIB   memory for loaded models' weights and KV caches (default: 90%% of\n"
            "                        the memory available at start)\n"
            "  --grace S             seconds in-flight requests get at shutdown (default 10)\n");
}

/* The model id: the catalog name, or the file name without directories and .gguf. */
static void model_id(const char *arg, char *out, size_t cap) {
    const char *base = strrchr(arg, '/');
    base = base ? base + 1 : arg;
    size_t n = strlen(base);
    if (n > 5 && !strcmp(base + n - 5, ".gguf")) n -= 5;
    if (n >= cap) n = cap - 1;
    memcpy(out, base, n);
    out[n] = 0;
}

/* The first configured feature that is not built yet, named with its keys; NULL if none. */
static const char *unsupported(const hl_model_config *m) {
    if (m->provider && !strcmp(m->provider, "mlx")) return "the MLX model format (provider: mlx)";
    if ((m->set & (HL_CFG_CACHE_TYPE)) && strcmp(m->cache_type, "standard"))
        return "a quantized or rotating KV cache (cache_type)";
    if (m->set & (HL_CFG_KV_BITS | HL_CFG_KV_GROUP_SIZE | HL_CFG_QUANTIZED_KV_START))
        return "a quantized KV cache (kv_bits, kv_group_size, quantized_kv_start)";
    if (m->set & HL_CFG_MAX_KV_SIZE) return "a rotating KV cache (max_kv_size)";
    if (m->set & (HL_CFG_DRAFT_MODEL_PATH | HL_CFG_NUM_DRAFT_TOKENS))
        return "speculative decoding (draft_model_path, num_draft_tokens)";
    if (m->vision || (m->set & HL_CFG_MMPROJ_PATH)) return "vision (vision, mmproj_path)";
    /* n_gpu_layers (the reference's key): -1 (all) and 0 (none) map onto the backend */
    if ((m->set & HL_CFG_N_GPU_LAYERS) && m->n_gpu_layers > 0)
        return "offloading only some layers to the GPU (n_gpu_layers; use -1 for all, 0 for none)";
    if ((m->set & HL_CFG_N_GPU_LAYERS) && m->n_gpu_layers == 0 && !strcmp(m->backend, "cuda"))
        return "the CUDA backend with no layers on the GPU (backend: cuda with n_gpu_layers: 0)";
    if (!m->use_mmap) return "loading without mmap (use_mmap: false)";
    if (m->use_mlock) return "locking weights in memory (use_mlock)";
    if ((m->set & HL_CFG_CHAT_FORMAT) && strcmp(m->chat_format, "jinja"))
        return "named chat formats (chat_format; use chat_format_template or the model's own template)";
    return NULL;
}

/* The backend of a models.yaml entry: its 'backend' key, except that
 * n_gpu_layers: 0 keeps an auto model on the CPU. */
static hl_backend config_backend(const hl_model_config *m) {
    int b = hl_backend_from_name(m->backend); /* the loader admits only valid names */
    if (b < 0) b = HL_BACKEND_AUTO;
    if (b == HL_BACKEND_AUTO && (m->set & HL_CFG_N_GPU_LAYERS) && m->n_gpu_layers == 0) b = HL_BACKEND_CPU;
    return (hl_backend)b;
}

/* A models.yaml entry as the router wants it; CLI options give defaults
 * for the engine keys the entry leaves unset (--backend is not one: the
 * entry's own backend key, default auto, applies). */
static hl_router_model from_config(const hl_model_config *m, const hl_sched_params *cli) {
    hl_router_model r = {.id = m->id, .path = m->model_path, .template_file = m->chat_format_template,
                         .pinned = m->pinned, .idle_unload_s = m->idle_unload_s, .sched = *cli,
                         .backend = config_backend(m), .device = m->device, .unsupported = unsupported(m)};
    if (m->parallel) r.sched.n_seq = m->parallel;
    if (m->n_ctx) r.sched.n_ctx = m->n_ctx;
    if (m->n_threads) r.sched.n_threads = m->n_threads;
    if (m->n_batch) r.sched.n_batch = m->n_batch;
    r.sched.generation_lock = m->use_generation_lock || cli->generation_lock;
    hl_model_defaults *d = &r.defaults;
    static const struct {
        uint32_t cfg, def;
    } bits[] = {{HL_CFG_TEMPERATURE, HL_DEF_TEMPERATURE}, {HL_CFG_TOP_P, HL_DEF_TOP_P},
                {HL_CFG_TOP_K, HL_DEF_TOP_K}, {HL_CFG_MIN_P, HL_DEF_MIN_P},
                {HL_CFG_MAX_TOKENS, HL_DEF_MAX_TOKENS}, {HL_CFG_REPETITION_PENALTY, HL_DEF_REPETITION_PENALTY},
                {HL_CFG_REPETITION_CONTEXT_SIZE, HL_DEF_REPETITION_CONTEXT_SIZE}};
    for (size_t i = 0; i < sizeof bits / sizeof bits[0]; i++)
        if (m->set & bits[i].cfg) d->set |= bits[i].def;
    d->temperature = m->temperature;
    d->top_p = m->top_p;
    d->top_k = m->top_k;
    d->min_p = m->min_p;
    d->max_tokens = m->max_tokens;
    d->repetition_penalty = m->repetition_penalty;
    d->repetition_context_size = m->repetition_context_size;
    return r;
}

static long parse_size(const char *v) {
    char *end;
    double x = strtod(v, &end);
    if (*end == 'K' || *end == 'k') x *= 1024, end++;
    else if (*end == 'M' || *end == 'm') x *= 1024 * 1024, end++;
    else if (*end == 'G' || *end == 'g') x *= 1024.0 * 1024 * 1024, end++;
    return *end || x < 1 ? -1 : (long)x;
}

int cmd_serve(int argc, char **argv) {
    static served models[MAX_MODELS];
    int n_models = 0;
    hl_server_params hp = {.port = 8080, .api_key = getenv("HEYLOOK_API_KEY")};
    if (hp.api_key && !*hp.api_key) hp.api_key = NULL;
    hl_sched_params sp = {0};
    hl_router_params rp = {0};
    const char *model_args[MAX_MODELS];
    int grace_s = 10;
    long budget_mib = 0;
    const char *config_path = NULL, *model_id_arg = NULL;
    const char *backend_arg = getenv("HL_BACKEND"), *backend_from = "HL_BACKEND";
    if (backend_arg && !*backend_arg) backend_arg = NULL;
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i], *v = i + 1 < argc ? argv[i + 1] : NULL;
        if (!strcmp(a, "--help") || !strcmp(a, "-h")) {
            usage();
            return 0;
        }
        if (!strcmp(a, "--generation-lock")) {
            sp.generation_lock = true;
            continue;
        }
        if (!v) {
            fprintf(stderr, "heylookllm serve: option '%s' needs a value (or is unknown)\n", a);
            return 2;
        }
        i++;
        if (!strcmp(a, "--model") || !strcmp(a, "-m")) {
            if (n_models == MAX_MODELS) {
                fprintf(stderr, "heylookllm serve: at most %d models\n", MAX_MODELS);
                return 2;
            }
            model_args[n_models++] = v;
        } else if (!strcmp(a, "--chat-template")) {
            if (!n_models) {
                fprintf(stderr, "heylookllm serve: --chat-template applies to the --model before it\n");
                return 2;
            }
            models[n_models - 1].template_file = v;
        } else if (!strcmp(a, "--host")) hp.host = v;
        else if (!strcmp(a, "--port")) hp.port = atoi(v);
        else if (!strcmp(a, "--api-key")) hp.api_key = v;
        else if (!strcmp(a, "--cors")) hp.cors_origin = v;
        else if (!strcmp(a, "--max-body")) hp.max_body = (size_t)parse_size(v);
        else if (!strcmp(a, "--timeout")) hp.timeout_s = atoi(v);
        else if (!strcmp(a, "--http-threads")) hp.n_threads = atoi(v);
        else if (!strcmp(a, "--parallel")) sp.n_seq = atoi(v);
        else if (!strcmp(a, "--queue")) sp.max_queue = atoi(v);
        else if (!strcmp(a, "--max-unsent")) sp.max_unsent = (size_t)parse_size(v);
        else if (!strcmp(a, "-c") || !strcmp(a, "--ctx-size")) sp.n_ctx = atoi(v);
        else if (!strcmp(a, "-t") || !strcmp(a, "--threads")) sp.n_threads = atoi(v);
        else if (!strcmp(a, "--max-loaded")) rp.max_loaded = atoi(v);
        else if (!strcmp(a, "--memory-budget")) budget_mib = atol(v);
        else if (!strcmp(a, "--grace")) grace_s = atoi(v);
        else if (!strcmp(a, "--config")) config_path = v;
        else if (!strcmp(a, "--model-id")) model_id_arg = v;
        else if (!strcmp(a, "--backend")) backend_arg = v, backend_from = "--backend";
        else {
            fprintf(stderr, "heylookllm serve: unknown option '%s'\n", a);
            usage();
            return 2;
        }
    }
    if (hp.port < 0 || hp.port > 65535 || hp.max_body == (size_t)-1 || sp.max_unsent == (size_t)-1 ||
        hp.timeout_s < 0 || hp.n_threads < 0 ||
        sp.n_seq < 0 || sp.n_seq > 64 || sp.max_queue < 0 || sp.n_ctx < 0 || grace_s < 0 || rp.max_loaded < 0 ||
        budget_mib < 0) {
        fprintf(stderr, "heylookllm serve: a numeric option is out of range (see --help)\n");
        return 2;
    }
    hl_backend backend = HL_BACKEND_AUTO;
    if (backend_arg && hl_cli_backend("serve", backend_from, backend_arg, &backend)) return 2;
    hl_err e = {0};
    hl_router_model rm[MAX_MODELS];
    hl_config *cfg = NULL;
    char cfg_buf[4096];
    if (!config_path && !n_models) config_path = hl_config_default_path(cfg_buf, sizeof cfg_buf);
    if (config_path && n_models) {
        fprintf(stderr, "heylookllm serve: give models with --config or with --model, not both\n");
        return 2;
    }
    if (config_path && !strcmp(backend_from, "--backend")) {
        fprintf(stderr, "heylookllm serve: --backend applies to --model models; with %s, set 'backend:' "
                        "(auto, cpu or cuda) in each model's config\n", config_path);
        return 2;
    }
    const char *default_id = NULL;
    int n_rm = 0;
    if (config_path) {
        if (hl_config_load(&cfg, config_path, &e) < 0) {
            fprintf(stderr, "heylookllm serve: %s\n", e.msg);
            return 2;
        }
        for (int i = 0; i < cfg->n_models && n_rm < MAX_MODELS; i++)
            if (cfg->models[i].enabled) rm[n_rm++] = from_config(&cfg->models[i], &sp);
        if (!n_rm) {
            fprintf(stderr, "heylookllm serve: %s enables no model\n", config_path);
            hl_config_free(cfg);
            return 2;
        }
        if (!rp.max_loaded) rp.max_loaded = cfg->max_loaded_models;
        default_id = cfg->default_model ? cfg->default_model : rm[0].id;
        fprintf(stderr, "heylookllm: %s: %d model(s)\n", config_path, n_rm);
    }
    if (!config_path && !n_models) model_args[n_models++] = HL_DEFAULT_MODEL;
    if (!rp.max_loaded) rp.max_loaded = n_models; /* models named on the command line all stay loaded */
    rp.mem_budget = (uint64_t)budget_mib << 20;
    for (int i = 0; i < n_models; i++) {
        if (hl_model_resolve(model_args[i], models[i].path, sizeof models[i].path, &e) < 0) {
            fprintf(stderr, "heylookllm serve: %s\n", e.msg);
            return 1;
        }
        model_id(model_args[i], models[i].id, sizeof models[i].id);
        for (int k = 0; k < i; k++)
            if (!strcmp(models[k].id, models[i].id)) {
                fprintf(stderr, "heylookllm serve: two models would both be called '%s'\n", models[i].id);
                return 2;
            }
        rm[n_rm++] = (hl_router_model){.id = models[i].id, .path = models[i].path,
                                       .template_file = models[i].template_file, .sched = sp,
                                       .backend = backend};
    }
    if (!default_id) default_id = rm[0].id;
    if (model_id_arg) {
        bool known = false;
        for (int i = 0; i < n_rm; i++) known |= !strcmp(rm[i].id, model_id_arg);
        if (!known) {
            fprintf(stderr, "heylookllm serve: --model-id '%s' names no model served\n", model_id_arg);
            hl_config_free(cfg);
            return 2;
        }
        default_id = model_id_arg;
    }

    /* Signals go to the main thread only: block them before any thread starts. */
    sigset_t sigs;
    sigemptyset(&sigs);
    sigaddset(&sigs, SIGINT);
    sigaddset(&sigs, SIGTERM);
    pthread_sigmask(SIG_BLOCK, &sigs, NULL);
    signal(SIGPIPE, SIG_IGN);

    hl_router *router;
    if (hl_router_new(&router, rm, n_rm, &rp, &e) < 0) {
        fprintf(stderr, "heylookllm serve: %s\n", e.msg);
        hl_config_free(cfg);
        return 1;
    }
    hp.default_model = default_id;
    hl_server *srv;
    if (hl_server_start(&srv, &hp, router, &e) < 0) {
        fprintf(stderr, "heylookllm serve: %s\n", e.msg);
        hl_router_free(router);
        hl_config_free(cfg);
        return 1;
    }
    fprintf(stderr, "heylookllm: listening on http://%s:%d%s; memory budget %.1f GiB, at most %d model(s) loaded\n",
            hp.host ? hp.host : "127.0.0.1", hl_server_port(srv), hp.api_key ? " (API key required)" : "",
            hl_router_budget(router) / 1073741824.0, hl_router_max_loaded(router));
    hl_router_prewarm(router, default_id); /* the default model; the others load on first use */
    int sig = 0;
    sigwait(&sigs, &sig);
    fprintf(stderr, "heylookllm: %s: no new connections; waiting up to %d s for %d request(s) in flight\n",
            sig == SIGINT ? "SIGINT" : "SIGTERM", grace_s, hl_server_active(srv));
    hl_server_quiesce(srv);
    double deadline = hl_now_s() + grace_s;
    struct timespec tick = {0, 50 * 1000 * 1000};
    while (hl_server_active(srv) > 0 && hl_now_s() < deadline) nanosleep(&tick, NULL);
    /* Cancel what is left (streams end with an error event, every parked
     * connection is resumed), let the connections finish, then stop. */
    hl_router_shutdown(router);
    deadline = hl_now_s() + 2;
    while (hl_server_active(srv) > 0 && hl_now_s() < deadline) nanosleep(&tick, NULL);
    hl_server_stop(srv);
    hl_router_free(router);
    hl_config_free(cfg);
    fprintf(stderr, "heylookllm: stopped\n");
    return 0;
}
