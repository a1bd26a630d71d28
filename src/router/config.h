/* config.h - models.yaml: the reference system's schema (models, default_model,
 * max_loaded_models, per-model id/enabled/description/tags/config) plus our
 * engine's keys, loaded with every key checked.
 *
 *   hl_config *c; hl_err e;
 *   if (hl_config_load(&c, "models.yaml", &e) < 0) die(e.msg);  // "models.yaml:12: unknown key 'tempreature' in the config of model 'qwen' (did you mean 'temperature'?)"
 *   for (int i = 0; i < c->n_models; i++) use(&c->models[i]); ... hl_config_free(c);
 *
 * Contract. Loading is all or nothing: any error (YAML syntax, an unknown or
 * misspelled key, a wrong type, a value out of range, a duplicate id or key,
 * default_model naming no enabled model) fails with one message that names
 * the file, the line, the key and, for an unknown key, the closest valid key.
 * The result owns all its strings; free it with hl_config_free. Pure data:
 * no model is touched here and no path is checked for existence. Keys whose
 * feature is not built yet are loaded and kept (`set` says which were given),
 * so the router can refuse that model's load with "not supported yet"
 * instead of ignoring them. Any thread may load; a loaded hl_config is
 * read-only and may be shared.
 *
 * YAML: one document, no anchors/aliases/tags. Unquoted scalars are typed as
 * PyYAML (YAML 1.1) types them: booleans true/false, yes/no, on/off (lower,
 * Capitalized or UPPER); null is empty, ~ or null, and a null value counts as
 * the key not given. Integers are decimal (4_096 allowed, 0755 and 0x10
 * refused); numbers also take 0.7, .5, 1e-3. A quoted scalar is a string, so
 * `temperature: "0.7"` is a type error; a bare boolean is refused where a
 * string is expected (`id: no`). Bounds: 4 MiB of text, 16 levels of
 * nesting, 200000 values, 1024 models.
 *
 * Paths (model_path, mmproj_path, draft_model_path, chat_format_template):
 * `~` or `~/...` expands $HOME; a relative path is made absolute against the
 * folder of the yaml file (for hl_config_parse: the folder of `name`,
 * against the current folder when `name` has none).
 *
 * Unset fields: 0 / false / NULL, except those whose default is named
 * below; check `set` before using an optional sampling or cache value.
 */
#ifndef HL_CONFIG_H
#define HL_CONFIG_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "../util/err.h"

/* Bits of hl_model_config.set: which optional keys the file gave. */
enum {
    HL_CFG_TEMPERATURE = 1u << 0,
    HL_CFG_TOP_P = 1u << 1,
    HL_CFG_TOP_K = 1u << 2,
    HL_CFG_MIN_P = 1u << 3,
    HL_CFG_MAX_TOKENS = 1u << 4,
    HL_CFG_REPETITION_PENALTY = 1u << 5,
    HL_CFG_REPETITION_CONTEXT_SIZE = 1u << 6,
    HL_CFG_CACHE_TYPE = 1u << 7,
    HL_CFG_KV_BITS = 1u << 8,
    HL_CFG_KV_GROUP_SIZE = 1u << 9,
    HL_CFG_QUANTIZED_KV_START = 1u << 10,
    HL_CFG_MAX_KV_SIZE = 1u << 11,
    HL_CFG_DRAFT_MODEL_PATH = 1u << 12,
    HL_CFG_NUM_DRAFT_TOKENS = 1u << 13,
    HL_CFG_VISION = 1u << 14,
    HL_CFG_MMPROJ_PATH = 1u << 15,
    HL_CFG_N_GPU_LAYERS = 1u << 16,
    HL_CFG_CHAT_FORMAT = 1u << 17,
};

typedef struct hl_model_config {
    char *id;                 /* required, unique */
    char *provider;           /* "gguf" (default), or the reference's "llama_cpp" / "mlx" (mlx: not
                                 supported yet); never NULL */
    bool enabled;             /* default true */
    char *description;        /* may be NULL */
    char **tags;              /* n_tags strings */
    int n_tags;
    uint32_t set;             /* HL_CFG_* bits of the optional keys given */
    /* config: */
    char *model_path;         /* required; a GGUF file, absolute after loading */
    /* sampling defaults a request's own fields override: temperature [0, 2],
       top_p (0, 1], min_p [0, 1], repetition_penalty > 0, top_k >= 0 (0 = off),
       max_tokens >= 1, repetition_context_size 1..65536 */
    float temperature, top_p, min_p, repetition_penalty;
    int top_k, max_tokens, repetition_context_size;
    /* KV cache */
    char *cache_type;         /* "standard" (default), "rotating", "quantized"; never NULL */
    int kv_bits;              /* 4 or 8 */
    int kv_group_size;        /* 32, 64 or 128 */
    int quantized_kv_start;   /* >= 0 */
    int max_kv_size;          /* >= 1 */
    /* speculative decoding */
    char *draft_model_path;
    int num_draft_tokens;     /* 1..32 */
    /* vision */
    bool vision;
    char *mmproj_path;
    /* engine */
    int n_ctx;                /* positions per sequence; 0 = min(model's, 4096) */
    int n_batch;              /* 0 = 512 */
    int n_threads;            /* 0..4096; 0 = all CPUs */
    int n_gpu_layers;         /* reference key; >= -1, default -1 = all */
    int parallel;             /* sequences at once, 1..64; 0 (not given) = 4 */
    char *backend;            /* "auto" (default: CUDA when this build has it, a GPU is present
                                 and the model's weight types run there; else the CPU), "cpu" or
                                 "cuda" (fails to load when CUDA cannot be had); never NULL */
    int device;               /* CUDA device index, >= 0; default 0 */
    bool use_mmap;            /* default true */
    bool use_mlock;           /* default false */
    bool use_generation_lock; /* default false */
    bool pinned;              /* never evicted; default false */
    int idle_unload_s;        /* unload after this many idle seconds; 0 = never */
    char *chat_format;        /* reference key: a named chat format (only "jinja"/unset supported) */
    char *chat_format_template; /* a Jinja template file overriding the model's own */
    int line;                 /* where the entry starts in the file (for later errors) */
} hl_model_config;

typedef struct hl_config {
    char *path;               /* the file loaded */
    hl_model_config *models;
    int n_models;
    char *default_model;      /* NULL when not given: the first enabled model */
    int max_loaded_models;    /* 1..1024, default 2 */
} hl_config;

/* Loads and validates a models.yaml. Returns 0, or -1 with e as above. */
int hl_config_load(hl_config **out, const char *path, hl_err *e);
/* The same from memory (tests and the fuzzer); name is used in messages. */
int hl_config_parse(hl_config **out, const char *name, const char *text, size_t len, hl_err *e);
void hl_config_free(hl_config *c);

/* How a value that hl_config_check_setting accepted is written to a file. */
typedef enum hl_cfg_value_kind {
    HL_CFG_VALUE_PLAIN,  /* a number or boolean: as given, unquoted */
    HL_CFG_VALUE_STRING, /* a quoted string */
    HL_CFG_VALUE_PATH,   /* a quoted string that is a path */
} hl_cfg_value_kind;

/* Checks one `config:` key and its value as text (`import --override
 * KEY=VALUE`) against the same rules as the loader: an unknown key fails
 * naming the closest one; a number or boolean key reads VALUE as an unquoted
 * YAML scalar, a string or path key takes it as it is. */
int hl_config_check_setting(const char *key, const char *value, hl_cfg_value_kind *kind, hl_err *e);

/* The file `serve` uses when --config is not given: ./models.yaml, else
 * ~/.config/heylook/models.yaml; NULL when neither exists. */
const char *hl_config_default_path(char *buf, size_t cap);

/* Finds an enabled model by id; NULL if none. */
const hl_model_config *hl_config_find(const hl_config *c, const char *id);

#endif
