/* config.c - the models.yaml loader (see config.h).
 *
 * Two passes. read_doc() pulls libyaml's parser events into a small tree of
 * nodes (scalar / list / mapping, each with its 1-based line), refusing what
 * we do not support (anchors, aliases, tags, a second document) and anything
 * past the bounds below. The walk then checks the tree against three key
 * tables (top level, model entry, config): each entry names a key, its type,
 * where it is stored and its range, so every key is checked in one place and
 * the unknown-key suggestion draws from the same table.
 *
 * Scalar types follow YAML 1.1 as PyYAML (the reference system's reader)
 * resolves them, for unquoted scalars only; a quoted scalar is always a
 * string. Booleans: true/false, yes/no, on/off, each in lower, Capitalized or
 * UPPER case. Null: empty, ~, null/Null/NULL; a null value counts as the key
 * not given. Integers: decimal with an optional sign and `_` separators
 * (4_096); octal 0755, hex and sexagesimal forms are refused. Numbers
 * (float keys): an integer or a decimal with an optional exponent (0.7, .5,
 * 1e-3; PyYAML would read 1e-3 as a string); .inf and .nan are refused. A
 * string key takes numbers as their text (tags: [2024]) but refuses a bare
 * boolean (id: no), which the reference would have read as False.
 *
 * Ownership: the tree is freed before return; the hl_config owns copies of
 * every string, and a failed load frees everything it built. No globals:
 * any thread may load its own config.
 */
#include "config.h"

#include <errno.h>
#include <limits.h>
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>
#include <yaml.h>

#define MAX_FILE_BYTES (4u << 20) /* a models.yaml of 1024 models is ~300 KiB */
#define MAX_DEPTH 16              /* the schema needs 4 levels */
#define MAX_NODES 200000
#define MAX_MODELS 1024

/* ---- the YAML tree ---- */

enum { N_SCALAR, N_SEQ, N_MAP };

typedef struct node {
    int kind, line;
    bool plain; /* an unquoted scalar (YAML 1.1 types apply) */
    char *s;    /* scalar text, NUL-terminated (a quoted one may hold NULs: see len) */
    size_t len;
    struct node **kid; /* list: the items; mapping: key0, value0, key1, value1, ... */
    int nk;            /* entries of kid (a mapping has nk / 2 pairs) */
} node;

static void node_free(node *x) {
    if (!x) return;
    for (int i = 0; i < x->nk; i++) node_free(x->kid[i]);
    free(x->kid);
    free(x->s);
    free(x);
}

typedef struct loader {
    const char *name; /* the file name messages start with ("": none) */
    const char *text; /* the input (reader errors give a byte offset: lines are counted here) */
    size_t len;
    char *base; /* absolute folder relative paths resolve against; NULL until needed */
    long n_nodes;
    hl_err *e;
} loader;

/* Sets e to "name:line: message" ("name: message" when line is 0, just the
 * message when name is empty). */
__attribute__((format(printf, 3, 4))) static int fail(loader *L, int line, const char *fmt, ...) {
    char msg[HL_ERR_MSG_MAX];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);
    if (!L->name[0]) return hl_errf(L->e, "%s", msg);
    if (line > 0) return hl_errf(L->e, "%s:%d: %s", L->name, line, msg);
    return hl_errf(L->e, "%s: %s", L->name, msg);
}

/* Copies user text for a message: at most 48 bytes (cut at a UTF-8
 * character boundary, "..." appended), control characters as '?'. */
static const char *show(const char *s, size_t n, char out[64]) {
    size_t k = n > 48 ? 48 : n;
    if (k < n)
        while (k > 0 && ((unsigned char)s[k] & 0xC0) == 0x80) k--;
    for (size_t i = 0; i < k; i++) out[i] = (unsigned char)s[i] < 0x20 || s[i] == 0x7f ? '?' : s[i];
    strcpy(out + k, k < n ? "..." : "");
    return out;
}

static int syntax_error(loader *L, yaml_parser_t *p) {
    if (p->error == YAML_MEMORY_ERROR) return fail(L, 0, "out of memory reading the YAML");
    if (p->error == YAML_READER_ERROR) {
        int line = 1;
        for (size_t i = 0; i < p->problem_offset && i < L->len; i++) line += L->text[i] == '\n';
        return fail(L, line, "not a readable YAML text: %s (byte %zu); save the file as UTF-8",
                    p->problem ? p->problem : "bad input", p->problem_offset);
    }
    int line = (int)p->problem_mark.line + 1;
    if (p->context)
        return fail(L, line,
                    "YAML syntax error: %s, %s at line %d; check the indentation and quoting there",
                    p->problem ? p->problem : "unexpected input", p->context,
                    (int)p->context_mark.line + 1);
    return fail(L, line, "YAML syntax error: %s; check the indentation and quoting there",
                p->problem ? p->problem : "unexpected input");
}

static int next_event(loader *L, yaml_parser_t *p, yaml_event_t *ev) {
    if (!yaml_parser_parse(p, ev)) return syntax_error(L, p);
    return 0;
}

/* Builds the node that starts with ev (taking ev over); NULL on error. */
static node *build(loader *L, yaml_parser_t *p, yaml_event_t *ev, int depth) {
    int line = (int)ev->start_mark.line + 1;
    const yaml_char_t *anchor = NULL, *tag = NULL;
    int kind;
    switch (ev->type) {
    case YAML_SCALAR_EVENT:
        kind = N_SCALAR, anchor = ev->data.scalar.anchor, tag = ev->data.scalar.tag;
        break;
    case YAML_SEQUENCE_START_EVENT:
        kind = N_SEQ, anchor = ev->data.sequence_start.anchor, tag = ev->data.sequence_start.tag;
        break;
    case YAML_MAPPING_START_EVENT:
        kind = N_MAP, anchor = ev->data.mapping_start.anchor, tag = ev->data.mapping_start.tag;
        break;
    case YAML_ALIAS_EVENT:
        yaml_event_delete(ev);
        fail(L, line, "YAML aliases (*name) are not supported: write the value out in full");
        return NULL;
    default: /* the parser gives no other event where a node may start */
        yaml_event_delete(ev);
        fail(L, line, "unexpected YAML structure");
        return NULL;
    }
    if (anchor || tag) {
        yaml_event_delete(ev);
        fail(L, line,
             anchor ? "YAML anchors (&name) are not supported: write the value out in full"
                    : "YAML tags (!name, !!type) are not supported: remove the tag");
        return NULL;
    }
    if (++L->n_nodes > MAX_NODES || depth > MAX_DEPTH) {
        yaml_event_delete(ev);
        fail(L, line,
             L->n_nodes > MAX_NODES ? "the file has more than %d YAML values"
                                    : "nested deeper than %d levels",
             L->n_nodes > MAX_NODES ? MAX_NODES : MAX_DEPTH);
        return NULL;
    }
    node *x = calloc(1, sizeof *x);
    if (!x) {
        yaml_event_delete(ev);
        fail(L, line, "out of memory");
        return NULL;
    }
    x->kind = kind;
    x->line = line;
    if (kind == N_SCALAR) {
        x->plain = ev->data.scalar.style == YAML_PLAIN_SCALAR_STYLE;
        x->len = ev->data.scalar.length;
        x->s = malloc(x->len + 1);
        if (x->s) {
            memcpy(x->s, ev->data.scalar.value, x->len);
            x->s[x->len] = 0;
        }
        yaml_event_delete(ev);
        if (!x->s) {
            node_free(x);
            fail(L, line, "out of memory");
            return NULL;
        }
        return x;
    }
    yaml_event_delete(ev);
    yaml_event_type_t end = kind == N_SEQ ? YAML_SEQUENCE_END_EVENT : YAML_MAPPING_END_EVENT;
    int cap = 0;
    for (;;) {
        yaml_event_t c;
        if (next_event(L, p, &c) < 0) break;
        if (c.type == end) {
            yaml_event_delete(&c);
            return x;
        }
        if (x->nk == cap) {
            cap = cap ? 2 * cap : 8;
            node **r = realloc(x->kid, (size_t)cap * sizeof *r);
            if (!r) {
                yaml_event_delete(&c);
                fail(L, line, "out of memory");
                break;
            }
            x->kid = r;
        }
        node *child = build(L, p, &c, depth + 1);
        if (!child) break;
        x->kid[x->nk++] = child;
    }
    node_free(x);
    return NULL;
}

/* Reads the one YAML document of the text; NULL on error. */
static node *read_doc(loader *L) {
    yaml_parser_t p;
    if (!yaml_parser_initialize(&p)) {
        fail(L, 0, "out of memory");
        return NULL;
    }
    yaml_parser_set_input_string(&p, (const unsigned char *)L->text, L->len);
    node *root = NULL;
    yaml_event_t ev;
    if (next_event(L, &p, &ev) < 0) goto out; /* stream start */
    yaml_event_delete(&ev);
    if (next_event(L, &p, &ev) < 0) goto out;
    if (ev.type != YAML_DOCUMENT_START_EVENT) {
        yaml_event_delete(&ev);
        fail(L, 0, "the file is empty: it needs a top-level 'models:' list");
        goto out;
    }
    yaml_event_delete(&ev);
    if (next_event(L, &p, &ev) < 0) goto out;
    if (!(root = build(L, &p, &ev, 0))) goto out;
    if (next_event(L, &p, &ev) < 0) goto bad; /* document end */
    yaml_event_delete(&ev);
    if (next_event(L, &p, &ev) < 0) goto bad;
    if (ev.type != YAML_STREAM_END_EVENT) {
        fail(L, (int)ev.start_mark.line + 1,
             "a second YAML document ('---') starts here: put every model in one document");
        yaml_event_delete(&ev);
        goto bad;
    }
    yaml_event_delete(&ev);
    goto out;
bad:
    node_free(root);
    root = NULL;
out:
    yaml_parser_delete(&p);
    return root;
}

/* ---- YAML 1.1 scalar types ---- */

static bool is_null(const node *x) {
    return x->kind == N_SCALAR && x->plain &&
           (!x->len || !strcmp(x->s, "~") || !strcmp(x->s, "null") || !strcmp(x->s, "Null") ||
            !strcmp(x->s, "NULL"));
}

/* 1 true, 0 false, -1 not a boolean. */
static int as_bool(const node *x) {
    static const char *const T[] = {"true", "True", "TRUE", "yes", "Yes", "YES", "on", "On", "ON"};
    static const char *const F[] = {"false", "False", "FALSE", "no", "No",
                                    "NO",    "off",   "Off",   "OFF"};
    if (x->kind != N_SCALAR || !x->plain) return -1;
    for (size_t i = 0; i < sizeof T / sizeof T[0]; i++) {
        if (!strcmp(x->s, T[i])) return 1;
        if (!strcmp(x->s, F[i])) return 0;
    }
    return -1;
}

/* A decimal integer, [-+]?(0|[1-9][0-9_]*); saturates far outside int range
 * (the range check then refuses it). */
static bool as_int(const node *x, long long *out) {
    if (x->kind != N_SCALAR || !x->plain || x->len == 0) return false;
    const char *s = x->s;
    bool neg = *s == '-';
    if (*s == '-' || *s == '+') s++;
    if (*s < '0' || *s > '9' || (s[0] == '0' && s[1])) return false;
    long long v = 0;
    for (; *s; s++) {
        if (*s == '_') continue;
        if (*s < '0' || *s > '9') return false;
        if (v < (1LL << 50)) v = v * 10 + (*s - '0');
    }
    *out = neg ? -v : v;
    return true;
}

/* An integer, or [-+]?digits?.?digits?([eE][-+]?digits)? with a digit
 * before the exponent; finite. */
static bool as_number(const node *x, double *out) {
    long long i;
    if (as_int(x, &i)) {
        *out = (double)i;
        return true;
    }
    if (x->kind != N_SCALAR || !x->plain || x->len == 0) return false;
    const char *s = x->s;
    if (*s == '-' || *s == '+') s++;
    int digits = 0;
    for (; *s >= '0' && *s <= '9'; s++) digits++;
    bool dot = *s == '.';
    if (dot)
        for (s++; *s >= '0' && *s <= '9'; s++) digits++;
    if (!digits || (!dot && *s != 'e' && *s != 'E')) return false; /* 0755: not an integer above */
    if (*s == 'e' || *s == 'E') {
        s++;
        if (*s == '-' || *s == '+') s++;
        if (*s < '0' || *s > '9') return false;
        while (*s >= '0' && *s <= '9') s++;
    }
    if (*s) return false;
    *out = strtod(x->s, NULL);
    return isfinite(*out);
}

/* What a value is, for "must be X, got Y" messages. */
static const char *describe(const node *x, char out[96]) {
    char t[64];
    double d;
    if (x->kind == N_SEQ) return "a list";
    if (x->kind == N_MAP) return "a mapping";
    if (is_null(x)) return "nothing (null)";
    if (as_bool(x) >= 0)
        snprintf(out, 96, "the boolean %s", x->s);
    else if (as_number(x, &d))
        snprintf(out, 96, "the number %s", show(x->s, x->len, t));
    else
        snprintf(out, 96, "the string \"%s\"", show(x->s, x->len, t));
    return out;
}

/* ---- key tables ---- */

typedef enum ktype {
    K_STR,    /* char * */
    K_ID,     /* char *: non-empty, no control characters */
    K_PATH,   /* char *: ~/ expanded, relative -> the file's folder */
    K_ENUM,   /* char *: one of `choices` */
    K_BOOL,   /* bool */
    K_INT,    /* int in [lo, hi] (and one of `choices` if given) */
    K_FLOAT,  /* float in [lo, hi] ((lo, hi] with lo_open) */
    K_TAGS,   /* hl_model_config.tags / n_tags */
    K_MODELS, /* hl_config.models */
    K_CONFIG, /* the nested config mapping of a model */
} ktype;

typedef struct key_def {
    const char *name;
    ktype type;
    size_t off;   /* of the field, in hl_config (top level) or hl_model_config */
    uint32_t bit; /* HL_CFG_* recorded in `set` when given; 0: none */
    double lo, hi;
    bool lo_open;
    const char *choices; /* "a|b|c" */
} key_def;

#define TOP(f) offsetof(hl_config, f)
#define MOD(f) offsetof(hl_model_config, f)

static const key_def TOP_KEYS[] = {
    {"models", K_MODELS, 0, 0, 0, 0, false, NULL},
    {"default_model", K_STR, TOP(default_model), 0, 0, 0, false, NULL},
    {"max_loaded_models", K_INT, TOP(max_loaded_models), 0, 1, 1024, false, NULL},
};

static const key_def MODEL_KEYS[] = {
    {"id", K_ID, MOD(id), 0, 0, 0, false, NULL},
    {"provider", K_ENUM, MOD(provider), 0, 0, 0, false, "gguf|llama_cpp|mlx"},
    {"enabled", K_BOOL, MOD(enabled), 0, 0, 0, false, NULL},
    {"description", K_STR, MOD(description), 0, 0, 0, false, NULL},
    {"tags", K_TAGS, 0, 0, 0, 0, false, NULL},
    {"config", K_CONFIG, 0, 0, 0, 0, false, NULL},
};

static const key_def CONFIG_KEYS[] = {
    {"model_path", K_PATH, MOD(model_path), 0, 0, 0, false, NULL},
    {"vision", K_BOOL, MOD(vision), HL_CFG_VISION, 0, 0, false, NULL},
    {"mmproj_path", K_PATH, MOD(mmproj_path), HL_CFG_MMPROJ_PATH, 0, 0, false, NULL},
    {"temperature", K_FLOAT, MOD(temperature), HL_CFG_TEMPERATURE, 0, 2, false, NULL},
    {"top_p", K_FLOAT, MOD(top_p), HL_CFG_TOP_P, 0, 1, true, NULL},
    {"top_k", K_INT, MOD(top_k), HL_CFG_TOP_K, 0, INT_MAX, false, NULL},
    {"min_p", K_FLOAT, MOD(min_p), HL_CFG_MIN_P, 0, 1, false, NULL},
    {"max_tokens", K_INT, MOD(max_tokens), HL_CFG_MAX_TOKENS, 1, INT_MAX, false, NULL},
    {"repetition_penalty", K_FLOAT, MOD(repetition_penalty), HL_CFG_REPETITION_PENALTY, 0, INT_MAX,
     true, NULL},
    {"repetition_context_size", K_INT, MOD(repetition_context_size), HL_CFG_REPETITION_CONTEXT_SIZE,
     1, 65536, false, NULL},
    {"cache_type", K_ENUM, MOD(cache_type), HL_CFG_CACHE_TYPE, 0, 0, false,
     "standard|rotating|quantized"},
    {"kv_bits", K_INT, MOD(kv_bits), HL_CFG_KV_BITS, 4, 8, false, "4|8"},
    {"kv_group_size", K_INT, MOD(kv_group_size), HL_CFG_KV_GROUP_SIZE, 32, 128, false, "32|64|128"},
    {"quantized_kv_start", K_INT, MOD(quantized_kv_start), HL_CFG_QUANTIZED_KV_START, 0, INT_MAX,
     false, NULL},
    {"max_kv_size", K_INT, MOD(max_kv_size), HL_CFG_MAX_KV_SIZE, 1, INT_MAX, false, NULL},
    {"draft_model_path", K_PATH, MOD(draft_model_path), HL_CFG_DRAFT_MODEL_PATH, 0, 0, false, NULL},
    {"num_draft_tokens", K_INT, MOD(num_draft_tokens), HL_CFG_NUM_DRAFT_TOKENS, 1, 32, false, NULL},
    {"use_generation_lock", K_BOOL, MOD(use_generation_lock), 0, 0, 0, false, NULL},
    {"n_ctx", K_INT, MOD(n_ctx), 0, 0, INT_MAX, false, NULL},
    {"n_gpu_layers", K_INT, MOD(n_gpu_layers), HL_CFG_N_GPU_LAYERS, -1, INT_MAX, false, NULL},
    {"n_batch", K_INT, MOD(n_batch), 0, 0, INT_MAX, false, NULL},
    {"n_threads", K_INT, MOD(n_threads), 0, 0, 4096, false, NULL},
    {"use_mmap", K_BOOL, MOD(use_mmap), 0, 0, 0, false, NULL},
    {"use_mlock", K_BOOL, MOD(use_mlock), 0, 0, 0, false, NULL},
    {"chat_format", K_STR, MOD(chat_format), HL_CFG_CHAT_FORMAT, 0, 0, false, NULL},
    {"chat_format_template", K_PATH, MOD(chat_format_template), 0, 0, 0, false, NULL},
    {"parallel", K_INT, MOD(parallel), 0, 1, 64, false, NULL},
    {"backend", K_ENUM, MOD(backend), 0, 0, 0, false, "auto|cpu|cuda"},
    {"device", K_INT, MOD(device), 0, 0, INT_MAX, false, NULL},
    {"pinned", K_BOOL, MOD(pinned), 0, 0, 0, false, NULL},
    {"idle_unload_s", K_INT, MOD(idle_unload_s), 0, 0, INT_MAX, false, NULL},
};

#define N_OF(a) (int)(sizeof(a) / sizeof((a)[0]))

typedef struct level {
    const char *name; /* for "it belongs ..." hints */
    const key_def *keys;
    int n;
} level;

static const level TOP_LEVEL = {"at the top level", TOP_KEYS, N_OF(TOP_KEYS)};
static const level MODEL_LEVEL = {"in a model entry, beside 'config:'", MODEL_KEYS,
                                  N_OF(MODEL_KEYS)};
static const level CONFIG_LEVEL = {"under a model's 'config:'", CONFIG_KEYS, N_OF(CONFIG_KEYS)};

/* load_map remembers where each key of a level was given. */
#define MAX_LEVEL_KEYS 48
_Static_assert(N_OF(CONFIG_KEYS) <= MAX_LEVEL_KEYS && N_OF(MODEL_KEYS) <= MAX_LEVEL_KEYS &&
                   N_OF(TOP_KEYS) <= MAX_LEVEL_KEYS,
               "raise MAX_LEVEL_KEYS");

static const key_def *find_key(const level *lv, const char *name) {
    for (int i = 0; i < lv->n; i++)
        if (!strcmp(lv->keys[i].name, name)) return &lv->keys[i];
    return NULL;
}

/* Optimal-string-alignment (Damerau) distance, ASCII case folded; INT_MAX
 * for strings past 64 bytes. */
static int edit_distance(const char *a0, const char *b0) {
    size_t n = strlen(a0), m = strlen(b0);
    if (n > 64 || m > 64) return INT_MAX;
    char a[64], b[64];
    for (size_t i = 0; i < n; i++) a[i] = a0[i] >= 'A' && a0[i] <= 'Z' ? a0[i] + 32 : a0[i];
    for (size_t j = 0; j < m; j++) b[j] = b0[j] >= 'A' && b0[j] <= 'Z' ? b0[j] + 32 : b0[j];
    int d[65][65];
    for (size_t i = 0; i <= n; i++) d[i][0] = (int)i;
    for (size_t j = 0; j <= m; j++) d[0][j] = (int)j;
    for (size_t i = 1; i <= n; i++)
        for (size_t j = 1; j <= m; j++) {
            int v = d[i - 1][j - 1] + (a[i - 1] != b[j - 1]);
            if (d[i - 1][j] + 1 < v) v = d[i - 1][j] + 1;
            if (d[i][j - 1] + 1 < v) v = d[i][j - 1] + 1;
            if (i > 1 && j > 1 && a[i - 1] == b[j - 2] && a[i - 2] == b[j - 1] &&
                d[i - 2][j - 2] + 1 < v)
                v = d[i - 2][j - 2] + 1;
            d[i][j] = v;
        }
    return d[n][m];
}

/* The closest of the candidates ("a|b|c" tokens or a key table) when it is
 * close enough to be a likely typo: distance <= max(2, len/3) and below
 * the word's own length. */
static bool close_enough(const char *word, const char *cand, int *best) {
    int d = edit_distance(word, cand), len = (int)strlen(word);
    int lim = len / 3 > 2 ? len / 3 : 2;
    if (d <= lim && d < len && d < *best) {
        *best = d;
        return true;
    }
    return false;
}

static const char *closest_key(const level *lv, const char *word) {
    const char *r = NULL;
    int best = INT_MAX;
    for (int i = 0; i < lv->n; i++)
        if (close_enough(word, lv->keys[i].name, &best)) r = lv->keys[i].name;
    return r;
}

/* Same over "a|b|c"; the match is copied into out. */
static const char *closest_choice(const char *choices, const char *word, char out[32]) {
    const char *r = NULL;
    int best = INT_MAX;
    for (const char *s = choices; *s;) {
        size_t k = strcspn(s, "|");
        char c[32];
        snprintf(c, sizeof c, "%.*s", (int)k, s);
        if (close_enough(word, c, &best)) r = strcpy(out, c);
        s += k + (s[k] == '|');
    }
    return r;
}

static bool in_choices(const char *choices, const char *s, size_t n) {
    for (const char *c = choices; *c;) {
        size_t k = strcspn(c, "|");
        if (k == n && !memcmp(c, s, n)) return true;
        c += k + (c[k] == '|');
    }
    return false;
}

/* "one of a, b, c" into out. */
static const char *list_choices(const char *choices, char out[128]) {
    size_t o = (size_t)snprintf(out, 128, "one of ");
    for (const char *c = choices; *c && o < 128;) {
        size_t k = strcspn(c, "|");
        o += (size_t)snprintf(out + o, 128 - o, "%s%.*s", c == choices ? "" : ", ", (int)k, c);
        c += k + (c[k] == '|');
    }
    return out;
}

/* ---- applying values ---- */

typedef struct walk {
    loader *L;
    hl_config *c;
    const char *where; /* "at the top level", "in model 'x'", "in the config of model 'x'" */
    char model[80];    /* "model 'x'" or "model #3": the entry being loaded */
} walk;

static int type_error(walk *w, const key_def *d, const node *v, const char *want) {
    char got[96];
    return fail(w->L, v->line, "'%s' %s must be %s, got %s", d->name, w->where, want,
                describe(v, got));
}

/* Copies a string value; refuses an embedded NUL. */
static int dup_str(walk *w, const key_def *d, const node *v, char **out) {
    if (strlen(v->s) != v->len)
        return fail(w->L, v->line, "'%s' %s contains a NUL character", d->name, w->where);
    if (!(*out = strdup(v->s))) return fail(w->L, v->line, "out of memory");
    return 0;
}

/* A string-typed scalar: any scalar but a bare boolean. */
static int want_string(walk *w, const key_def *d, const node *v) {
    char got[96];
    if (v->kind != N_SCALAR) return type_error(w, d, v, "a string");
    if (as_bool(v) >= 0)
        return fail(w->L, v->line, "'%s' %s must be a string, got %s (quote it: \"%s\")", d->name,
                    w->where, describe(v, got), v->s);
    return 0;
}

/* The folder relative paths resolve against: the file's own, made absolute. */
static const char *base_dir(walk *w) {
    loader *L = w->L;
    if (L->base) return L->base;
    const char *slash = strrchr(L->name, '/');
    size_t dn = slash ? (size_t)(slash - L->name) : 0;
    char cwd[4096];
    if (slash == L->name) dn = 1; /* "/models.yaml" */
    if (L->name[0] == '/') {
        L->base = strndup(L->name, dn);
    } else if (getcwd(cwd, sizeof cwd)) {
        size_t cn = strlen(cwd);
        if ((L->base = malloc(cn + dn + 2))) {
            memcpy(L->base, cwd, cn);
            if (dn) L->base[cn++] = '/';
            memcpy(L->base + cn, L->name, dn);
            L->base[cn + dn] = 0;
        }
    } else {
        fail(L, 0, "cannot find the current folder (%s) to resolve relative paths",
             strerror(errno));
        return NULL;
    }
    if (!L->base) fail(L, 0, "out of memory");
    return L->base;
}

static int set_path(walk *w, const key_def *d, const node *v, char **out) {
    if (want_string(w, d, v) < 0) return -1;
    if (v->len == 0)
        return fail(w->L, v->line, "'%s' %s is empty: give a file path", d->name, w->where);
    if (strlen(v->s) != v->len)
        return fail(w->L, v->line, "'%s' %s contains a NUL character", d->name, w->where);
    const char *s = v->s, *pre;
    if (s[0] == '~' && (s[1] == '/' || !s[1])) {
        pre = getenv("HOME");
        if (!pre || !*pre)
            return fail(w->L, v->line,
                        "'%s' %s starts with ~ but $HOME is not set: give the full path", d->name,
                        w->where);
        s++;
    } else if (s[0] == '/') {
        pre = "";
    } else {
        if (!(pre = base_dir(w))) return -1;
        if (s[0] == '.' && s[1] == '/') s += 2;
    }
    size_t pn = strlen(pre), sn = strlen(s);
    bool sep = pn && pre[pn - 1] != '/' && s[0] != '/' && sn;
    if (!(*out = malloc(pn + sep + sn + 1))) return fail(w->L, v->line, "out of memory");
    memcpy(*out, pre, pn);
    if (sep) (*out)[pn] = '/';
    memcpy(*out + pn + sep, s, sn + 1);
    return 0;
}

static int range_error(walk *w, const key_def *d, const node *v) {
    char want[128];
    if (d->choices)
        list_choices(d->choices, want);
    else if (d->hi >= INT_MAX)
        snprintf(want, sizeof want, "%s %g", d->lo_open ? "greater than" : "at least", d->lo);
    else if (d->lo_open)
        snprintf(want, sizeof want, "greater than %g and at most %g", d->lo, d->hi);
    else
        snprintf(want, sizeof want, "from %g to %g", d->lo, d->hi);
    char t[64];
    return fail(w->L, v->line, "'%s' %s is %s: it must be %s", d->name, w->where,
                show(v->s, v->len, t), want);
}

static int load_map(walk *w, const node *map, const level *lv, void *base, uint32_t *set);
static int load_models(walk *w, const node *list);

/* Checks v against d and stores it into base. A null value is "not given". */
static int apply(walk *w, const key_def *d, const node *v, void *base, uint32_t *set) {
    char *p = (char *)base + d->off;
    if (is_null(v)) return 0;
    switch (d->type) {
    case K_STR:
        if (want_string(w, d, v) < 0 || dup_str(w, d, v, (char **)p) < 0) return -1;
        break;
    case K_ID:
        if (want_string(w, d, v) < 0) return -1;
        if (v->len == 0) return fail(w->L, v->line, "'%s' %s is empty", d->name, w->where);
        for (size_t i = 0; i < v->len; i++)
            if ((unsigned char)v->s[i] < 0x20 || v->s[i] == 0x7f)
                return fail(w->L, v->line, "'%s' %s contains a control character", d->name,
                            w->where);
        if (dup_str(w, d, v, (char **)p) < 0) return -1;
        break;
    case K_PATH:
        if (set_path(w, d, v, (char **)p) < 0) return -1;
        break;
    case K_ENUM: {
        char want[128], sug[32];
        if (want_string(w, d, v) < 0) return -1;
        if (!in_choices(d->choices, v->s, v->len)) {
            const char *c = closest_choice(d->choices, v->s, sug);
            char t[64];
            return fail(w->L, v->line, "'%s' %s is '%s': it must be %s%s%s%s", d->name, w->where,
                        show(v->s, v->len, t), list_choices(d->choices, want),
                        c ? " (did you mean '" : "", c ? c : "", c ? "'?)" : "");
        }
        if (dup_str(w, d, v, (char **)p) < 0) return -1;
        break;
    }
    case K_BOOL: {
        int b = as_bool(v);
        if (b < 0) return type_error(w, d, v, "true or false");
        *(bool *)p = b;
        break;
    }
    case K_INT: {
        long long i;
        char txt[24];
        if (!as_int(v, &i)) return type_error(w, d, v, "an integer");
        int tn = snprintf(txt, sizeof txt, "%lld", i);
        if (i < d->lo || i > d->hi || (d->choices && !in_choices(d->choices, txt, (size_t)tn)))
            return range_error(w, d, v);
        *(int *)p = (int)i;
        break;
    }
    case K_FLOAT: {
        double x;
        if (!as_number(v, &x)) return type_error(w, d, v, "a number");
        float f = (float)x; /* checked as stored: 1e-50 is 0 as a float */
        if (f < d->lo || f > d->hi || (d->lo_open && f == d->lo)) return range_error(w, d, v);
        *(float *)p = f;
        break;
    }
    case K_TAGS: {
        hl_model_config *m = base;
        if (v->kind != N_SEQ) return type_error(w, d, v, "a list of strings");
        if (v->nk && !(m->tags = calloc((size_t)v->nk, sizeof *m->tags)))
            return fail(w->L, v->line, "out of memory");
        for (int i = 0; i < v->nk; i++) {
            if (v->kid[i]->kind != N_SCALAR || is_null(v->kid[i]))
                return type_error(w, d, v->kid[i], "a string");
            if (want_string(w, d, v->kid[i]) < 0 || dup_str(w, d, v->kid[i], &m->tags[i]) < 0)
                return -1;
            m->n_tags = i + 1;
        }
        break;
    }
    case K_MODELS:
        if (load_models(w, v) < 0) return -1;
        break;
    case K_CONFIG: {
        if (v->kind != N_MAP) return type_error(w, d, v, "a mapping of settings (model_path: ...)");
        char where[100];
        const char *outer = w->where;
        snprintf(where, sizeof where, "in the config of %s", w->model);
        w->where = where;
        int rc = load_map(w, v, &CONFIG_LEVEL, base, set);
        w->where = outer;
        return rc;
    }
    }
    *set |= d->bit;
    return 0;
}

static int unknown_key(walk *w, const level *lv, const node *k) {
    char t[64], hint[HL_ERR_MSG_MAX];
    const char *sug = closest_key(lv, k->s);
    const level *all[] = {&TOP_LEVEL, &MODEL_LEVEL, &CONFIG_LEVEL};
    if (sug) {
        snprintf(hint, sizeof hint, " (did you mean '%s'?)", sug);
    } else {
        int o = snprintf(hint, sizeof hint, " (valid keys here: ");
        for (int i = 0; i < lv->n && o < (int)sizeof hint; i++)
            o += snprintf(hint + o, sizeof hint - (size_t)o, "%s%s", i ? ", " : "",
                          lv->keys[i].name);
        if (o < (int)sizeof hint) snprintf(hint + o, sizeof hint - (size_t)o, ")");
        for (int i = 0; i < 3; i++)
            if (all[i] != lv && find_key(all[i], k->s))
                snprintf(hint, sizeof hint, " (it belongs %s)", all[i]->name);
    }
    return fail(w->L, k->line, "unknown key '%s' %s%s", show(k->s, k->len, t), w->where, hint);
}

/* Applies every pair of a mapping: unknown and repeated keys are errors. */
static int load_map(walk *w, const node *map, const level *lv, void *base, uint32_t *set) {
    int seen[MAX_LEVEL_KEYS] = {0}; /* line of each key of the level, once given */
    for (int i = 0; i < map->nk / 2; i++) {
        const node *k = map->kid[2 * i], *v = map->kid[2 * i + 1];
        if (k->kind != N_SCALAR)
            return fail(w->L, k->line, "a key %s is a %s: keys must be plain names", w->where,
                        k->kind == N_SEQ ? "list" : "mapping");
        const key_def *d = strlen(k->s) == k->len ? find_key(lv, k->s) : NULL;
        if (!d) return unknown_key(w, lv, k);
        int idx = (int)(d - lv->keys);
        if (seen[idx])
            return fail(w->L, k->line, "duplicate key '%s' %s (first given at line %d)", d->name,
                        w->where, seen[idx]);
        seen[idx] = k->line;
        if (apply(w, d, v, base, set) < 0) return -1;
    }
    return 0;
}

static void model_free(hl_model_config *m) {
    free(m->id);
    free(m->provider);
    free(m->description);
    for (int i = 0; i < m->n_tags; i++) free(m->tags[i]);
    free(m->tags);
    free(m->model_path);
    free(m->cache_type);
    free(m->draft_model_path);
    free(m->mmproj_path);
    free(m->backend);
    free(m->chat_format);
    free(m->chat_format_template);
}

static const node *map_get(const node *map, const char *key) {
    for (int i = 0; i < map->nk / 2; i++)
        if (map->kid[2 * i]->kind == N_SCALAR && !strcmp(map->kid[2 * i]->s, key))
            return map->kid[2 * i + 1];
    return NULL;
}

static int set_default(walk *w, char **field, const char *v) {
    if (!*field && !(*field = strdup(v))) return fail(w->L, 0, "out of memory");
    return 0;
}

static int load_model(walk *w, const node *x, int idx, hl_model_config *m) {
    char where[100], t[64], got[96];
    m->enabled = true;
    m->use_mmap = true;
    m->n_gpu_layers = -1;
    m->line = x->line;
    if (x->kind != N_MAP)
        return fail(w->L, x->line, "model #%d must be a mapping (id: ..., config: ...), got %s",
                    idx + 1, describe(x, got));
    /* Name the model in messages by its id when it has a usable one. */
    const node *id = map_get(x, "id");
    if (id && id->kind == N_SCALAR && !is_null(id) && as_bool(id) < 0 && id->len)
        snprintf(w->model, sizeof w->model, "model '%s'", show(id->s, id->len, t));
    else
        snprintf(w->model, sizeof w->model, "model #%d", idx + 1);
    snprintf(where, sizeof where, "in %s", w->model);
    w->where = where;
    if (load_map(w, x, &MODEL_LEVEL, m, &m->set) < 0) return -1;
    if (!m->id) return fail(w->L, x->line, "model #%d has no 'id': give it a unique name", idx + 1);
    if (!m->model_path)
        return fail(w->L, x->line,
                    "model '%s' has no 'model_path': add `config: {model_path: FILE.gguf}`",
                    show(m->id, strlen(m->id), t));
    if (set_default(w, &m->provider, "gguf") < 0 ||
        set_default(w, &m->cache_type, "standard") < 0 || set_default(w, &m->backend, "auto") < 0)
        return -1;
    for (int j = 0; j < idx; j++)
        if (!strcmp(w->c->models[j].id, m->id))
            return fail(w->L, id->line,
                        "duplicate model id '%s' (first used at line %d): ids must be unique",
                        show(m->id, strlen(m->id), t), w->c->models[j].line);
    return 0;
}

static int load_models(walk *w, const node *list) {
    if (list->kind != N_SEQ)
        return type_error(w, &TOP_KEYS[0], list, "a list of models (- id: ...)");
    if (list->nk == 0) return fail(w->L, list->line, "'models' is empty: add at least one model");
    if (list->nk > MAX_MODELS)
        return fail(w->L, list->line, "'models' has %d entries; at most %d are supported", list->nk,
                    MAX_MODELS);
    hl_config *c = w->c;
    if (!(c->models = calloc((size_t)list->nk, sizeof *c->models)))
        return fail(w->L, list->line, "out of memory");
    c->n_models = list->nk; /* zeroed entries free cleanly if a later one fails */
    const char *outer = w->where;
    for (int i = 0; i < list->nk; i++)
        if (load_model(w, list->kid[i], i, &c->models[i]) < 0) return -1;
    w->where = outer;
    return 0;
}

/* ---- public ---- */

void hl_config_free(hl_config *c) {
    if (!c) return;
    for (int i = 0; i < c->n_models; i++) model_free(&c->models[i]);
    free(c->models);
    free(c->path);
    free(c->default_model);
    free(c);
}

const hl_model_config *hl_config_find(const hl_config *c, const char *id) {
    for (int i = 0; i < c->n_models; i++)
        if (c->models[i].enabled && !strcmp(c->models[i].id, id)) return &c->models[i];
    return NULL;
}

/* default_model must name an enabled model. */
static int check_default(walk *w, const node *root) {
    hl_config *c = w->c;
    if (!c->default_model) return 0;
    const node *v = map_get(root, "default_model");
    char t[64];
    const char *id = show(c->default_model, strlen(c->default_model), t);
    if (hl_config_find(c, c->default_model)) return 0;
    for (int i = 0; i < c->n_models; i++)
        if (!strcmp(c->models[i].id, c->default_model))
            return fail(w->L, v->line,
                        "default_model '%s' is disabled (enabled: false, line %d): enable it or "
                        "name another model",
                        id, c->models[i].line);
    const char *best = NULL;
    int bd = INT_MAX;
    for (int i = 0; i < c->n_models; i++)
        if (c->models[i].enabled && close_enough(c->default_model, c->models[i].id, &bd))
            best = c->models[i].id;
    char sug[128] = "";
    if (best) snprintf(sug, sizeof sug, " (did you mean '%.64s'?)", best);
    return fail(w->L, v->line, "default_model '%s' names no model in this file%s", id, sug);
}

int hl_config_parse(hl_config **out, const char *name, const char *text, size_t len, hl_err *e) {
    *out = NULL;
    loader L = {.name = name, .text = text, .len = len, .e = e};
    if (len > MAX_FILE_BYTES)
        return fail(&L, 0, "the file is %zu bytes; a models.yaml may be at most %u MiB", len,
                    MAX_FILE_BYTES >> 20);
    node *root = read_doc(&L);
    if (!root) return -1;
    hl_config *c = calloc(1, sizeof *c);
    walk w = {.L = &L, .c = c, .where = "at the top level"};
    int rc = -1;
    if (!c) {
        fail(&L, 0, "out of memory");
        goto done;
    }
    c->max_loaded_models = 2;
    if (root->kind != N_MAP) {
        char got[96];
        fail(&L, root->line, "the top level must be a mapping with a 'models:' list, got %s",
             describe(root, got));
        goto done;
    }
    uint32_t unused = 0;
    if (load_map(&w, root, &TOP_LEVEL, c, &unused) < 0) goto done;
    if (!c->models) {
        fail(&L, 0,
             "no 'models:' list: add one, e.g. `models: [{id: m, config: {model_path: m.gguf}}]`");
        goto done;
    }
    if (check_default(&w, root) < 0) goto done;
    if (!(c->path = strdup(name))) {
        fail(&L, 0, "out of memory");
        goto done;
    }
    *out = c;
    c = NULL;
    rc = 0;
done:
    hl_config_free(c);
    node_free(root);
    free(L.base);
    return rc;
}

int hl_config_load(hl_config **out, const char *path, hl_err *e) {
    *out = NULL;
    FILE *f = fopen(path, "rb");
    if (!f)
        return hl_errf(e,
                       "cannot open %s: %s; pass another file or write one with `heylookllm import "
                       "--folder DIR`",
                       path, strerror(errno));
    struct stat st;
    if (fstat(fileno(f), &st) < 0 || !S_ISREG(st.st_mode)) {
        fclose(f);
        return hl_errf(e, "%s is not a regular file", path);
    }
    if (st.st_size > (off_t)MAX_FILE_BYTES) {
        fclose(f);
        return hl_errf(e, "%s: the file is %lld bytes; a models.yaml may be at most %u MiB", path,
                       (long long)st.st_size, MAX_FILE_BYTES >> 20);
    }
    char *buf = malloc((size_t)st.st_size + 1);
    size_t n = buf ? fread(buf, 1, (size_t)st.st_size + 1, f) : 0;
    const char *why = !buf ? "out of memory" : ferror(f) ? strerror(errno) : NULL;
    fclose(f);
    if (why) {
        free(buf);
        return hl_errf(e, "cannot read %s: %s", path, why);
    }
    int rc = hl_config_parse(out, path, buf, n, e);
    free(buf);
    return rc;
}

int hl_config_check_setting(const char *key, const char *value, hl_cfg_value_kind *kind,
                            hl_err *e) {
    loader L = {.name = "", .e = e};
    walk w = {.L = &L, .where = "in --override"};
    const key_def *d = find_key(&CONFIG_LEVEL, key);
    if (!d) {
        const char *sug = closest_key(&CONFIG_LEVEL, key);
        char t[64];
        return fail(&L, 0, "unknown config key '%s'%s%s%s", show(key, strlen(key), t),
                    sug ? " (did you mean '" : "", sug ? sug : "", sug ? "'?)" : "");
    }
    bool text = d->type == K_STR || d->type == K_PATH || d->type == K_ENUM;
    node v = {
        .kind = N_SCALAR, .line = 0, .plain = !text, .s = (char *)value, .len = strlen(value)};
    if (is_null(&v)) return fail(&L, 0, "'%s' needs a value: --override %s=VALUE", key, key);
    hl_model_config m = {0};
    int rc = apply(&w, d, &v, &m, &m.set);
    model_free(&m);
    free(L.base);
    *kind = d->type == K_PATH ? HL_CFG_VALUE_PATH : text ? HL_CFG_VALUE_STRING : HL_CFG_VALUE_PLAIN;
    return rc;
}

const char *hl_config_default_path(char *buf, size_t cap) {
    struct stat st;
    if (stat("models.yaml", &st) == 0 && S_ISREG(st.st_mode)) {
        if (cap < sizeof "models.yaml") return NULL;
        return strcpy(buf, "models.yaml");
    }
    const char *home = getenv("HOME");
    if (!home || !*home) return NULL;
    int n = snprintf(buf, cap, "%s/.config/heylook/models.yaml", home);
    if (n < 0 || (size_t)n >= cap) return NULL;
    return stat(buf, &st) == 0 && S_ISREG(st.st_mode) ? buf : NULL;
}
