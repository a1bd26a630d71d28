/* cmd_import.c - `heylookllm import --folder PATH [--output FILE] [--force]
 * [--profile fast|balanced|quality|memory|interactive] [--override KEY=VALUE]...`:
 * scans PATH for GGUF models and writes a models.yaml for them.
 *
 * The scan walks PATH recursively in name order, a folder's files before its
 * subfolders (symlinks to files are followed, symlinks to folders are not, so
 * a loop cannot trap it; at most 16 levels deep), and opens
 * each *.gguf with the GGUF reader: files that do not parse, hold no tensors
 * (vocab-only), are a vision projector (general.type mmproj, or the older
 * architecture "clip"), a LoRA adapter or one part of a split model are
 * skipped with a line on stderr. Each model gets an entry: id = the file
 * name, lowercased, without ".gguf" (made unique with -2, -3, ...); an
 * absolute model_path; n_ctx and parallel by file size (SIZES); sampling
 * defaults from the profile (PROFILES); then every --override, checked
 * against the loader's schema (config.h). default_model is the smallest
 * model. The text is loaded with hl_config_parse before it is written, so a
 * written file always loads; an existing file is replaced only with --force.
 *
 * Exit status: 0 written, 1 failed (nothing written), 2 usage. Main thread;
 * owns nothing past the call.
 */
#include <ctype.h>
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/stat.h>
#include <unistd.h>

#include "../gguf/gguf.h"
#include "../router/config.h"
#include "../util/buf.h"
#include "cli.h"

#define GIB (1024.0 * 1024.0 * 1024.0)
#define MAX_DEPTH 16
#define MAX_FOUND 1024 /* the loader's limit on models */

/* Context and concurrency by file size: positions per sequence (n_ctx) and
 * sequences at once (parallel). Bigger weights leave less memory for the KV
 * cache, whose size grows with n_ctx * parallel. */
static const struct {
    double below_gib;
    int n_ctx, parallel;
} SIZES[] = {
    {1, 8192, 4},     /* < 1 GiB: 0.5B-1B models at 4-8 bits */
    {8, 4096, 2},     /* < 8 GiB: up to ~13B at 4 bits */
    {1e300, 2048, 1}, /* larger */
};

/* Sampling defaults per --profile. max_tokens is also capped at half the
 * n_ctx chosen here (an --override of n_ctx does not move it) so a prompt
 * keeps room. memory halves the size-based n_ctx and runs one
 * sequence; interactive serves 4 at once with moderate answers. */
static const struct profile {
    const char *name;
    float temperature, top_p, min_p, repetition_penalty;
    int top_k, max_tokens;
    int ctx_div;  /* the size-based n_ctx is divided by this */
    int parallel; /* 0: by size */
    const char *what;
} PROFILES[] = {
    {"fast", 0.1f, 0.9f, 0.0f, 1.0f, 10, 256, 1, 0, "short answers, near-greedy sampling"},
    {"balanced", 0.7f, 0.9f, 0.05f, 1.0f, 40, 1024, 1, 0, "general use (the default)"},
    {"quality", 0.7f, 0.95f, 0.05f, 1.05f, 0, 4096, 1, 0,
     "long answers, full-vocabulary nucleus sampling"},
    {"memory", 0.7f, 0.9f, 0.05f, 1.0f, 40, 512, 2, 1, "half the context, one sequence at a time"},
    {"interactive", 0.7f, 0.9f, 0.05f, 1.0f, 40, 512, 1, 4,
     "4 sequences at once, moderate answers"},
};

typedef struct found {
    char *path;
    char *id;
    uint64_t size;
    char arch[32];
    char name[96]; /* general.name, valid UTF-8 (may be empty) */
} found;

typedef struct scan {
    found *v;
    int n;
    int skipped;
    hl_err e;
} scan;

static void usage(FILE *out) {
    fprintf(out,
            "usage: heylookllm import --folder PATH [--output FILE] [--force]\n"
            "         [--profile NAME] [--override KEY=VALUE]...\n\n"
            "Scans PATH (recursively) for GGUF models and writes a models.yaml (default\n"
            "./models.yaml; an existing file is replaced only with --force). Vision\n"
            "projectors, vocab-only files, adapters and split parts are skipped.\n"
            "n_ctx / parallel by file size: < 1 GiB 8192 / 4, < 8 GiB 4096 / 2, else 2048 / 1.\n"
            "profiles:\n");
    for (size_t i = 0; i < sizeof PROFILES / sizeof PROFILES[0]; i++)
        fprintf(out, "  %-12s %s\n", PROFILES[i].name, PROFILES[i].what);
    fprintf(
        out,
        "--override KEY=VALUE sets a config key on every model (e.g. backend=cuda, n_ctx=2048).\n");
}

static bool has_gguf_suffix(const char *name) {
    size_t n = strlen(name);
    return n > 5 && !strcasecmp(name + n - 5, ".gguf");
}

/* Why a GGUF file is not a model to serve, or NULL when it is one. */
static const char *not_a_model(const gguf_file *f, char why[96]) {
    hl_str s;
    uint32_t split = 0;
    if (gguf_tensor_count(f) == 0) return "vocabulary only (no tensors)";
    if (gguf_get_str(f, "general.type", &s) == 0 && !hl_str_eq(s, "model")) {
        snprintf(why, 96, "general.type is '%.*s', not a model", (int)(s.len > 32 ? 32 : s.len),
                 s.ptr);
        return why;
    }
    if (gguf_get_str(f, "general.architecture", &s) == 0 && hl_str_eq(s, "clip"))
        return "a vision projector (clip)";
    if (gguf_get_u32(f, "split.count", &split) == 0 && split > 1) {
        snprintf(why, 96, "one part of a model split in %u files (not supported yet)", split);
        return why;
    }
    return NULL;
}

/* Copies a GGUF string view if it is valid UTF-8, cut to fit cap. */
static void copy_utf8(char *dst, size_t cap, hl_str s) {
    size_t n = s.len < cap - 1 ? (size_t)s.len : cap - 1;
    dst[0] = 0;
    if (hl_utf8_valid_len(s.ptr, (size_t)s.len) != s.len) return;
    while (n > 0 && n < s.len && ((unsigned char)s.ptr[n] & 0xC0) == 0x80) n--;
    for (size_t i = 0; i < n; i++)
        if ((unsigned char)s.ptr[i] < 0x20) return;
    memcpy(dst, s.ptr, n);
    dst[n] = 0;
}

static int consider(scan *sc, const char *path, uint64_t size) {
    gguf_file *f = NULL;
    hl_err e = {{0}};
    char why[96];
    const char *no = NULL;
    if (hl_utf8_valid_len(path, strlen(path)) != strlen(path))
        no = "its path is not valid UTF-8";
    else if (gguf_open(&f, path, &e) < 0)
        no = e.msg;
    else
        no = not_a_model(f, why);
    if (no) {
        fprintf(stderr, "heylookllm import: skipping %s: %s\n", path, no);
        sc->skipped++;
        gguf_close(f);
        return 0;
    }
    if (sc->n == MAX_FOUND) {
        gguf_close(f);
        return hl_errf(&sc->e, "more than %d models found: import a smaller folder", MAX_FOUND);
    }
    found *r = realloc(sc->v, (size_t)(sc->n + 1) * sizeof *r);
    if (!r) {
        gguf_close(f);
        return hl_errf(&sc->e, "out of memory");
    }
    sc->v = r;
    found *m = &sc->v[sc->n];
    *m = (found){.size = size};
    hl_str s;
    if (gguf_get_str(f, "general.architecture", &s) == 0) copy_utf8(m->arch, sizeof m->arch, s);
    if (gguf_get_str(f, "general.name", &s) == 0) copy_utf8(m->name, sizeof m->name, s);
    gguf_close(f);
    if (!(m->path = strdup(path))) return hl_errf(&sc->e, "out of memory");
    sc->n++;
    return 0;
}

static int walk(scan *sc, const char *dir, int depth) {
    struct dirent **list;
    int n = scandir(dir, &list, NULL, alphasort);
    if (n < 0 && depth > 0) {
        fprintf(stderr, "heylookllm import: skipping folder %s: %s\n", dir, strerror(errno));
        return 0;
    }
    if (n < 0) return hl_errf(&sc->e, "cannot read folder %s: %s", dir, strerror(errno));
    int rc = 0;
    for (int pass = 0; pass < 2; pass++) /* files first, then subfolders */
        for (int i = 0; i < n && rc == 0; i++) {
            const char *name = list[i]->d_name;
            char path[PATH_MAX];
            struct stat st;
            if (!strcmp(name, ".") || !strcmp(name, "..")) continue;
            if (snprintf(path, sizeof path, "%s%s%s", dir, dir[strlen(dir) - 1] == '/' ? "" : "/",
                         name) >= (int)sizeof path) {
                if (pass == 0)
                    fprintf(stderr, "heylookllm import: skipping %s/%s: path too long\n", dir,
                            name);
                continue;
            }
            if (lstat(path, &st) < 0) continue;
            if (S_ISDIR(st.st_mode) && pass == 1) {
                if (depth < MAX_DEPTH)
                    rc = walk(sc, path, depth + 1);
                else
                    fprintf(stderr,
                            "heylookllm import: not descending into %s: deeper than %d levels\n",
                            path, MAX_DEPTH);
            } else if (!S_ISDIR(st.st_mode) && pass == 0 && has_gguf_suffix(name) &&
                       stat(path, &st) == 0 && S_ISREG(st.st_mode)) {
                rc = consider(sc, path, (uint64_t)st.st_size);
            }
        }
    for (int i = 0; i < n; i++) free(list[i]);
    free(list);
    return rc;
}

/* The entry id: the file name, lowercased, without .gguf, unique. */
static int make_id(scan *sc, int k) {
    const char *base = strrchr(sc->v[k].path, '/');
    base = base ? base + 1 : sc->v[k].path;
    size_t n = strlen(base) - 5;
    char id[300];
    for (int suffix = 1;; suffix++) {
        int len = snprintf(id, sizeof id, "%.*s", (int)(n > 255 ? 255 : n), base);
        for (int i = 0; i < len; i++) id[i] = (char)tolower((unsigned char)id[i]);
        if (suffix > 1) snprintf(id + len, sizeof id - (size_t)len, "-%d", suffix);
        int j = 0;
        while (j < k && strcmp(sc->v[j].id, id)) j++;
        if (j == k) break;
    }
    if (!(sc->v[k].id = strdup(id))) return hl_errf(&sc->e, "out of memory");
    return 0;
}

/* A YAML double-quoted scalar. */
static void put_quoted(hl_buf *b, const char *s) {
    hl_buf_putc(b, '"');
    for (; *s; s++) {
        unsigned char c = (unsigned char)*s;
        if (c == '"' || c == '\\')
            hl_buf_printf(b, "\\%c", c);
        else if (c < 0x20 || c == 0x7f)
            hl_buf_printf(b, "\\x%02x", c);
        else
            hl_buf_putc(b, (char)c);
    }
    hl_buf_putc(b, '"');
}

typedef struct setting {
    const char *key;
    const char *val;
    hl_cfg_value_kind kind;
} setting;

/* Sets key in the list (replacing an earlier value), keeping first-set order. */
static void put_setting(setting *s, int *n, const char *key, const char *val,
                        hl_cfg_value_kind kind) {
    int i = 0;
    while (i < *n && strcmp(s[i].key, key)) i++;
    s[i] = (setting){key, val, kind};
    if (i == *n) (*n)++;
}

static void write_model(hl_buf *b, const found *m, const struct profile *p, const setting *over,
                        int n_over) {
    int si = 0;
    while (m->size >= SIZES[si].below_gib * GIB) si++;
    int n_ctx = SIZES[si].n_ctx / p->ctx_div,
        parallel = p->parallel ? p->parallel : SIZES[si].parallel;
    int max_tokens = p->max_tokens < n_ctx / 2 ? p->max_tokens : n_ctx / 2;
    char num[8][32];
    setting s[64];
    int n = 0;
    put_setting(s, &n, "model_path", m->path, HL_CFG_VALUE_PATH);
    snprintf(num[0], 32, "%d", n_ctx);
    put_setting(s, &n, "n_ctx", num[0], HL_CFG_VALUE_PLAIN);
    snprintf(num[1], 32, "%d", parallel);
    put_setting(s, &n, "parallel", num[1], HL_CFG_VALUE_PLAIN);
    snprintf(num[2], 32, "%g", p->temperature);
    put_setting(s, &n, "temperature", num[2], HL_CFG_VALUE_PLAIN);
    snprintf(num[3], 32, "%g", p->top_p);
    put_setting(s, &n, "top_p", num[3], HL_CFG_VALUE_PLAIN);
    snprintf(num[4], 32, "%d", p->top_k);
    put_setting(s, &n, "top_k", num[4], HL_CFG_VALUE_PLAIN);
    snprintf(num[5], 32, "%g", p->min_p);
    put_setting(s, &n, "min_p", num[5], HL_CFG_VALUE_PLAIN);
    snprintf(num[6], 32, "%g", p->repetition_penalty);
    put_setting(s, &n, "repetition_penalty", num[6], HL_CFG_VALUE_PLAIN);
    snprintf(num[7], 32, "%d", max_tokens);
    put_setting(s, &n, "max_tokens", num[7], HL_CFG_VALUE_PLAIN);
    for (int i = 0; i < n_over; i++) put_setting(s, &n, over[i].key, over[i].val, over[i].kind);

    hl_buf_puts(b, "  - id: ");
    put_quoted(b, m->id);
    hl_buf_puts(b, "\n    provider: gguf\n    enabled: true\n    description: ");
    char desc[256];
    snprintf(desc, sizeof desc, "%s%s%s, %.2f GiB", m->name, m->name[0] ? ": " : "",
             m->arch[0] ? m->arch : "gguf", (double)m->size / GIB);
    put_quoted(b, desc);
    hl_buf_puts(b, "\n    tags: [\"gguf\"");
    if (m->arch[0]) {
        hl_buf_puts(b, ", ");
        put_quoted(b, m->arch);
    }
    hl_buf_puts(b, "]\n    config:\n");
    for (int i = 0; i < n; i++) {
        hl_buf_printf(b, "      %s: ", s[i].key);
        if (s[i].kind == HL_CFG_VALUE_PLAIN)
            hl_buf_puts(b, s[i].val);
        else
            put_quoted(b, s[i].val);
        hl_buf_putc(b, '\n');
    }
}

/* Parses the --override arguments into over[], whose strings live in
 * owned[2i] (a copy of the argument) and owned[2i + 1] (a path made absolute). */
static int parse_overrides(char **args, int n, setting *over, char **owned, hl_err *e) {
    for (int i = 0; i < n; i++) {
        char *eq = strchr(args[i], '=');
        if (!eq || eq == args[i])
            return hl_errf(e, "--override takes KEY=VALUE, got '%s'", args[i]);
        if (!(owned[2 * i] = strdup(args[i]))) return hl_errf(e, "out of memory");
        char *key = owned[2 * i], *val = key + (eq - args[i]) + 1;
        val[-1] = 0;
        if (!strcmp(key, "model_path"))
            return hl_errf(e, "--override model_path: each model's path comes from the scan");
        hl_cfg_value_kind kind;
        if (hl_config_check_setting(key, val, &kind, e) < 0) return -1;
        if (kind == HL_CFG_VALUE_PATH && val[0] != '/' && val[0] != '~') {
            /* relative to where the command runs, not to the output file */
            char cwd[PATH_MAX];
            if (!getcwd(cwd, sizeof cwd))
                return hl_errf(e, "cannot read the current folder: %s", strerror(errno));
            size_t len = strlen(cwd) + strlen(val) + 2;
            if (!(owned[2 * i + 1] = malloc(len))) return hl_errf(e, "out of memory");
            snprintf(owned[2 * i + 1], len, "%s/%s", cwd, val);
            val = owned[2 * i + 1];
        }
        over[i] = (setting){key, val, kind};
    }
    return 0;
}

static int write_file(const char *path, const hl_buf *b, bool force, hl_err *e) {
    int fd = open(path, O_WRONLY | O_CREAT | (force ? O_TRUNC : O_EXCL), 0644);
    if (fd < 0 && errno == EEXIST)
        return hl_errf(e, "%s exists: pass --force to replace it, or --output another file", path);
    if (fd < 0) return hl_errf(e, "cannot create %s: %s", path, strerror(errno));
    size_t off = 0;
    while (off < b->len) {
        ssize_t k = write(fd, b->p + off, b->len - off);
        if (k < 0 && errno == EINTR) continue;
        if (k <= 0) {
            int err = errno;
            close(fd);
            return hl_errf(e, "cannot write %s: %s", path, strerror(err));
        }
        off += (size_t)k;
    }
    if (close(fd) < 0) return hl_errf(e, "cannot write %s: %s", path, strerror(errno));
    return 0;
}

int cmd_import(int argc, char **argv) {
    const char *folder = NULL, *output = "models.yaml", *pname = "balanced";
    bool force = false;
    char **over_args = calloc((size_t)argc, sizeof *over_args);
    int n_over = 0;
    if (!over_args) {
        fprintf(stderr, "heylookllm import: out of memory\n");
        return 1;
    }
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i];
        bool val = i + 1 < argc;
        if (!strcmp(a, "-h") || !strcmp(a, "--help")) {
            usage(stdout);
            free(over_args);
            return 0;
        } else if (!strcmp(a, "--folder") && val) {
            folder = argv[++i];
        } else if ((!strcmp(a, "--output") || !strcmp(a, "-o")) && val) {
            output = argv[++i];
        } else if (!strcmp(a, "--profile") && val) {
            pname = argv[++i];
        } else if (!strcmp(a, "--override") && val) {
            over_args[n_over++] = argv[++i];
        } else if (!strcmp(a, "--force")) {
            force = true;
        } else {
            fprintf(stderr, "heylookllm import: unknown or incomplete argument '%s'\n", a);
            usage(stderr);
            free(over_args);
            return 2;
        }
    }
    const struct profile *prof = NULL;
    for (size_t i = 0; i < sizeof PROFILES / sizeof PROFILES[0]; i++)
        if (!strcmp(PROFILES[i].name, pname)) prof = &PROFILES[i];
    if (!folder || !prof) {
        fprintf(stderr, "heylookllm import: %s\n",
                !folder ? "--folder PATH is required"
                        : "unknown --profile: use fast, balanced, quality, memory or interactive");
        usage(stderr);
        free(over_args);
        return 2;
    }

    hl_err e = {{0}};
    scan sc = {0};
    hl_buf b = {0};
    setting *over = calloc((size_t)n_over + 1, sizeof *over);
    char **owned = calloc(2 * (size_t)n_over + 1, sizeof *owned);
    char *root = NULL;
    hl_config *check = NULL;
    struct stat st;
    int rc = 1;
    if (!over || !owned) {
        hl_errf(&e, "out of memory");
        goto done;
    }
    if (parse_overrides(over_args, n_over, over, owned, &e) < 0) goto done;
    if (!(root = realpath(folder, NULL))) {
        hl_errf(&e, "cannot read folder %s: %s", folder, strerror(errno));
        goto done;
    }
    if (stat(root, &st) < 0 || !S_ISDIR(st.st_mode)) {
        hl_errf(&e, "%s is not a folder: give --folder the directory that holds the .gguf files",
                folder);
        goto done;
    }
    if (!force && stat(output, &st) == 0) {
        hl_errf(&e, "%s exists: pass --force to replace it, or --output another file", output);
        goto done;
    }
    if (walk(&sc, root, 0) < 0) {
        e = sc.e;
        goto done;
    }
    if (sc.n == 0) {
        hl_errf(&e, "no GGUF models found under %s%s", root,
                sc.skipped ? " (only files skipped above)" : "");
        goto done;
    }
    int smallest = 0;
    for (int i = 0; i < sc.n; i++) {
        if (make_id(&sc, i) < 0) {
            e = sc.e;
            goto done;
        }
        if (sc.v[i].size < sc.v[smallest].size) smallest = i;
    }

    hl_buf_printf(&b, "# models.yaml written by `heylookllm import` (profile %s).\n", prof->name);
    hl_buf_puts(&b, "# n_ctx and parallel follow each file's size, sampling values the profile.\n"
                    "# Every key is checked when the file is loaded; see src/router/config.h.\n");
    hl_buf_puts(&b, "max_loaded_models: 2\ndefault_model: ");
    put_quoted(&b, sc.v[smallest].id);
    hl_buf_puts(&b, "\nmodels:\n");
    for (int i = 0; i < sc.n; i++) write_model(&b, &sc.v[i], prof, over, n_over);
    if (b.oom) {
        hl_errf(&e, "out of memory");
        goto done;
    }
    if (hl_config_parse(&check, output, b.p, b.len, &e) < 0) {
        char msg[HL_ERR_MSG_MAX];
        snprintf(msg, sizeof msg, "%s", e.msg);
        hl_errf(&e, "internal error: the generated file does not load: %s", msg);
        goto done;
    }
    if (write_file(output, &b, force, &e) < 0) goto done;
    printf("%-40s %9s %6s %8s\n", "ID", "SIZE", "N_CTX", "PARALLEL");
    for (int i = 0; i < sc.n; i++)
        printf("%-40s %5.2f GiB %6d %8d\n", check->models[i].id, (double)sc.v[i].size / GIB,
               check->models[i].n_ctx, check->models[i].parallel);
    printf("wrote %s: %d models (default %s)%s\n", output, sc.n, sc.v[smallest].id,
           sc.skipped ? ", some files skipped (see above)" : "");
    rc = 0;
done:
    if (rc) fprintf(stderr, "heylookllm import: %s\n", e.msg);
    hl_config_free(check);
    for (int i = 0; i < sc.n; i++) free(sc.v[i].path), free(sc.v[i].id);
    free(sc.v);
    for (int i = 0; owned && i < 2 * n_over; i++) free(owned[i]);
    free(owned);
    free(over);
    free(over_args);
    free(root);
    hl_buf_free(&b);
    return rc;
}
