/* test.h - the unit-test harness: self-registering tests, checks that
 * report file:line and keep going, one summary line at the end.
 *
 *   TEST(gguf_rejects_bad_magic) {
 *       CHECK(gguf_parse(&f, buf, 4, &e) < 0);
 *       CHECK_STR_CONTAINS(e.msg, "magic");
 *   }
 *
 * The runner (test_main.c) runs every registered test, or those whose name
 * contains argv[1], and ends with the line
 *   "unit: N tests, M checks, K failed"
 * which CI reads. Exit status is 0 only when nothing failed.
 */
#ifndef HL_TEST_H
#define HL_TEST_H

#include <math.h>
#include <stdio.h>
#include <string.h>

typedef void (*hl_test_fn)(void);
void hl_test_register(const char *name, hl_test_fn fn);
void hl_test_fail(const char *file, int line, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
extern long hl_test_checks;

#define TEST(name)                                                                                 \
    static void test_##name(void);                                                                 \
    __attribute__((constructor)) static void reg_##name(void) {                                    \
        hl_test_register(#name, test_##name);                                                      \
    }                                                                                              \
    static void test_##name(void)

#define CHECK(cond)                                                                                \
    do {                                                                                           \
        hl_test_checks++;                                                                          \
        if (!(cond)) hl_test_fail(__FILE__, __LINE__, "CHECK(%s)", #cond);                         \
    } while (0)

#define CHECK_EQ_INT(a, b)                                                                         \
    do {                                                                                           \
        long long a_ = (long long)(a), b_ = (long long)(b);                                        \
        hl_test_checks++;                                                                          \
        if (a_ != b_) hl_test_fail(__FILE__, __LINE__, "%s == %s: %lld != %lld", #a, #b, a_, b_); \
    } while (0)

#define CHECK_NEAR(a, b, tol)                                                                      \
    do {                                                                                           \
        double a_ = (double)(a), b_ = (double)(b);                                                 \
        hl_test_checks++;                                                                          \
        if (!(fabs(a_ - b_) <= (tol)))                                                             \
            hl_test_fail(__FILE__, __LINE__, "%s ~ %s: %g vs %g (tol %g)", #a, #b, a_, b_,         \
                         (double)(tol));                                                           \
    } while (0)

#define CHECK_STR_CONTAINS(hay, needle)                                                            \
    do {                                                                                           \
        hl_test_checks++;                                                                          \
        if (!strstr((hay), (needle)))                                                              \
            hl_test_fail(__FILE__, __LINE__, "\"%s\" does not contain \"%s\"", (hay), (needle));   \
    } while (0)

/* A scratch path under the test temp dir (created by the runner). */
const char *hl_test_tmp(const char *name);

#endif
