/* test_main.c - runs the registered unit tests; see test.h. */
#include <stdarg.h>
#include <stdlib.h>
#include <unistd.h>

#include "test.h"

#define MAX_TESTS 1024

static struct {
    const char *name;
    hl_test_fn fn;
} tests[MAX_TESTS];
static int n_tests;
static int cur_failed;
static const char *cur_name;
static char tmpdir[256];
long hl_test_checks;

void hl_test_register(const char *name, hl_test_fn fn) {
    if (n_tests == MAX_TESTS) {
        fprintf(stderr, "too many tests; raise MAX_TESTS\n");
        abort();
    }
    tests[n_tests].name = name;
    tests[n_tests].fn = fn;
    n_tests++;
}

void hl_test_fail(const char *file, int line, const char *fmt, ...) {
    va_list ap;
    fprintf(stderr, "FAIL %s (%s:%d): ", cur_name, file, line);
    va_start(ap, fmt);
    vfprintf(stderr, fmt, ap);
    va_end(ap);
    fputc('\n', stderr);
    cur_failed++;
}

const char *hl_test_tmp(const char *name) {
    static char buf[8][512];
    static int k;
    char *p = buf[k++ % 8];
    snprintf(p, 512, "%s/%s", tmpdir, name);
    return p;
}

static int by_name(const void *a, const void *b) {
    return strcmp(((const __typeof__(tests[0]) *)a)->name, ((const __typeof__(tests[0]) *)b)->name);
}

int main(int argc, char **argv) {
    const char *filter = argc > 1 ? argv[1] : NULL;
    snprintf(tmpdir, sizeof tmpdir, "/tmp/hl_test_XXXXXX");
    if (!mkdtemp(tmpdir)) {
        perror("mkdtemp");
        return 2;
    }
    qsort(tests, n_tests, sizeof tests[0], by_name);
    int ran = 0, failed = 0;
    for (int i = 0; i < n_tests; i++) {
        if (filter && !strstr(tests[i].name, filter)) continue;
        cur_name = tests[i].name;
        cur_failed = 0;
        tests[i].fn();
        ran++;
        if (cur_failed) failed++;
        fprintf(stderr, "%s %s\n", cur_failed ? "FAILED" : "ok    ", tests[i].name);
    }
    char cmd[300];
    snprintf(cmd, sizeof cmd, "rm -rf '%s'", tmpdir);
    if (system(cmd) != 0) fprintf(stderr, "warning: could not remove %s\n", tmpdir);
    printf("unit: %d tests, %ld checks, %d failed\n", ran, hl_test_checks, failed);
    return failed ? 1 : 0;
}
