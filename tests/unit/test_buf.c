/* test_buf.c - the growable buffer (src/util/buf.h): appends, growth, the
 * oom latch, JSON strings and numbers (re-read with json-c), UTF-8 checks. */
#include <json-c/json.h>
#include <math.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "../../src/util/buf.h"
#include "test.h"

/* What hl_buf_json_str writes for s[0, n), as a C string (static). */
static const char *jstr(const char *s, size_t n) {
    static hl_buf b;
    hl_buf_reset(&b);
    hl_buf_json_str(&b, s, n);
    return b.p;
}

TEST(buf_append_and_grow) {
    hl_buf b = {0};
    CHECK(b.p == NULL && b.len == 0);
    hl_buf_puts(&b, "ab");
    hl_buf_putc(&b, 'c');
    hl_buf_put(&b, "dxx", 1);
    hl_buf_put(&b, NULL, 0);
    CHECK_EQ_INT(b.len, 4);
    CHECK(strcmp(b.p, "abcd") == 0);
    for (int i = 0; i < 1000; i++) hl_buf_putc(&b, (char)('a' + i % 26));
    CHECK_EQ_INT(b.len, 1004);
    CHECK(b.cap > b.len && b.p[b.len] == 0);
    CHECK(b.p[4] == 'a' && b.p[1003] == 'a' + 999 % 26);
    CHECK(!b.oom);
    hl_buf_free(&b);
    CHECK(b.p == NULL && b.len == 0 && b.cap == 0);
}

TEST(buf_reserve_terminates_and_reset_keeps_memory) {
    hl_buf b = {0};
    CHECK(hl_buf_reserve(&b, 0));
    CHECK(b.p != NULL && b.p[0] == 0 && b.len == 0); /* a fresh buffer reads as "" */
    CHECK(hl_buf_reserve(&b, 5000));
    CHECK(b.cap >= 5001);
    size_t cap = b.cap;
    char *p = b.p;
    hl_buf_puts(&b, "hello");
    hl_buf_reset(&b);
    CHECK(b.len == 0 && b.cap == cap && b.p == p && b.p[0] == 0);
    hl_buf_reset(&(hl_buf){0}); /* an empty buffer resets too */
    hl_buf_free(&b);
}

TEST(buf_oom_latch) {
    hl_buf b = {0};
    hl_buf_puts(&b, "keep");
    CHECK(!hl_buf_reserve(&b, SIZE_MAX / 2)); /* too large: refused, not attempted */
    CHECK(b.oom);
    hl_buf_puts(&b, "lost");
    hl_buf_printf(&b, "%d", 42);
    hl_buf_json_str(&b, "x", 1);
    CHECK_EQ_INT(b.len, 4);
    CHECK(strcmp(b.p, "keep") == 0);
    hl_buf_reset(&b);
    CHECK(!b.oom);
    hl_buf_puts(&b, "ok");
    CHECK(strcmp(b.p, "ok") == 0);
    hl_buf_free(&b);
}

TEST(buf_printf_short_and_long) {
    hl_buf b = {0};
    hl_buf_printf(&b, "%s-%d", "x", 7);
    CHECK(strcmp(b.p, "x-7") == 0);
    char big[1000];
    memset(big, 'z', sizeof big - 1);
    big[sizeof big - 1] = 0;
    hl_buf_printf(&b, "[%s]", big); /* past the 256-byte stack buffer */
    CHECK_EQ_INT(b.len, 3 + 1001);
    CHECK(b.p[3] == '[' && b.p[4] == 'z' && b.p[1002] == 'z' && b.p[1003] == ']' && !b.p[1004]);
    hl_buf_free(&b);
}

TEST(buf_json_str_escapes) {
    CHECK(strcmp(jstr("", 0), "\"\"") == 0);
    CHECK(strcmp(jstr(NULL, 0), "\"\"") == 0);
    CHECK(strcmp(jstr("a\"b\\c", 5), "\"a\\\"b\\\\c\"") == 0);
    CHECK(strcmp(jstr("\n\r\t\b\f", 5), "\"\\n\\r\\t\\b\\f\"") == 0);
    CHECK(strcmp(jstr("\x01\x1f\x7f", 3), "\"\\u0001\\u001f\x7f\"") == 0);
    CHECK(strcmp(jstr("a\0b", 3), "\"a\\u0000b\"") == 0);
    CHECK(strcmp(jstr("/<>&'", 5), "\"/<>&'\"") == 0);
    /* UTF-8 kept as is: 2, 3 and 4 byte forms, the largest code point */
    const char *u = "\xc3\xa9\xe2\x82\xac\xf0\x9f\x98\x80\xf4\x8f\xbf\xbf";
    char want[64];
    snprintf(want, sizeof want, "\"%s\"", u);
    CHECK(strcmp(jstr(u, strlen(u)), want) == 0);
}

TEST(buf_json_str_invalid_utf8_becomes_replacement) {
#define FFFD "\xef\xbf\xbd"
    CHECK(strcmp(jstr("\x80", 1), "\"" FFFD "\"") == 0);
    CHECK(strcmp(jstr("a\xff"
                      "b",
                      3),
                 "\"a" FFFD "b\"") == 0);
    CHECK(strcmp(jstr("\xc3", 1), "\"" FFFD "\"") == 0);                   /* cut at the end */
    CHECK(strcmp(jstr("\xe2\x82", 2), "\"" FFFD FFFD "\"") == 0);          /* one per byte */
    CHECK(strcmp(jstr("\xc0\x80", 2), "\"" FFFD FFFD "\"") == 0);          /* overlong */
    CHECK(strcmp(jstr("\xed\xa0\x80", 3), "\"" FFFD FFFD FFFD "\"") == 0); /* surrogate */
    CHECK(strcmp(jstr("\xf4\x90\x80\x80", 4), "\"" FFFD FFFD FFFD FFFD "\"") == 0);
    CHECK(strcmp(jstr("\xc3\xa9\xc3", 3), "\"\xc3\xa9" FFFD "\"") == 0);
#undef FFFD
}

TEST(buf_json_str_round_trips_through_json_c) {
    /* every byte value, in runs, re-read by a JSON parser: valid JSON, and
     * the same bytes wherever the input was valid UTF-8 */
    char s[512];
    for (int i = 0; i < 256; i++) s[i] = (char)i;
    const char *utf = "caf\xc3\xa9 \xe2\x82\xac \xf0\x9f\x98\x80 \"q\" \\ \n";
    size_t ul = strlen(utf);
    memcpy(s + 256, utf, ul);
    hl_buf b = {0};
    hl_buf_json_str(&b, s, 256 + ul);
    json_object *o = json_tokener_parse(b.p);
    CHECK(o != NULL && json_object_is_type(o, json_type_string));
    if (o) {
        const char *r = json_object_get_string(o);
        int rl = json_object_get_string_len(o);
        CHECK(rl > (int)ul && memcmp(r, s, 128) == 0); /* ASCII incl. controls and NUL */
        CHECK(memcmp(r + rl - ul, utf, ul) == 0);
        json_object_put(o);
    }
    hl_buf_free(&b);
}

TEST(buf_json_float) {
    hl_buf b = {0};
    const double v[] = {0.1, -0.5, 1.0, 3.141592653589793, 1e300, -2.5e-300, 123456789.125, 0.0};
    const char *want[] = {"0.1",       "-0.5",          "1", "3.14159265358979", "1e+300",
                          "-2.5e-300", "123456789.125", "0"};
    for (int i = 0; i < 8; i++) {
        hl_buf_reset(&b);
        hl_buf_json_float(&b, v[i], "null");
        CHECK(strtod(b.p, NULL) == v[i]);
        if (i != 3) CHECK(strcmp(b.p, want[i]) == 0);
    }
    hl_buf_reset(&b);
    hl_buf_json_float(&b, NAN, "null");
    hl_buf_putc(&b, ' ');
    hl_buf_json_float(&b, -INFINITY, "-1e999");
    CHECK(strcmp(b.p, "null -1e999") == 0);
    uint64_t x = 88172645463325252ull;
    for (int i = 0; i < 2000; i++) { /* random bit patterns round-trip */
        x ^= x << 13, x ^= x >> 7, x ^= x << 17;
        double d;
        memcpy(&d, &x, sizeof d);
        if (!isfinite(d)) continue;
        hl_buf_reset(&b);
        hl_buf_json_float(&b, d, "null");
        if (strtod(b.p, NULL) != d) {
            CHECK(strtod(b.p, NULL) == d);
            break;
        }
    }
    hl_buf_free(&b);
}

TEST(buf_json_f32_shortest) {
    hl_buf b = {0};
    hl_buf_json_f32(&b, -0.31725305f, "x");
    CHECK(strcmp(b.p, "-0.31725305") == 0); /* not the double's 17 digits */
    hl_buf_reset(&b);
    hl_buf_json_f32(&b, 0.1f, "x");
    CHECK(strcmp(b.p, "0.1") == 0);
    hl_buf_reset(&b);
    hl_buf_json_f32(&b, -INFINITY, "-9999.0");
    hl_buf_json_f32(&b, NAN, ",n");
    CHECK(strcmp(b.p, "-9999.0,n") == 0);
    uint32_t x = 2463534242u;
    int bad = 0;
    for (int i = 0; i < 5000; i++) {
        x ^= x << 13, x ^= x >> 17, x ^= x << 5;
        float f;
        memcpy(&f, &x, sizeof f);
        if (!isfinite(f)) continue;
        hl_buf_reset(&b);
        hl_buf_json_f32(&b, f, "x");
        bad += strtof(b.p, NULL) != f || b.len > 16;
    }
    CHECK_EQ_INT(bad, 0);
    hl_buf_free(&b);
}

TEST(buf_utf8_valid_len) {
    CHECK_EQ_INT(hl_utf8_valid_len("", 0), 0);
    CHECK_EQ_INT(hl_utf8_valid_len("hello", 5), 5);
    const char *u = "\xc3\xa9\xe2\x82\xac\xf0\x9f\x98\x80";
    CHECK_EQ_INT(hl_utf8_valid_len(u, 9), 9);
    CHECK_EQ_INT(hl_utf8_valid_len(u, 8), 5);            /* cut inside the emoji */
    CHECK_EQ_INT(hl_utf8_valid_len("ab\xc0\x80", 4), 2); /* overlong */
    CHECK_EQ_INT(hl_utf8_valid_len("ab\xed\xa0\x80", 5), 2);
    CHECK_EQ_INT(hl_utf8_valid_len("\xf4\x90\x80\x80", 4), 0);
    CHECK_EQ_INT(hl_utf8_valid_len("a\0b", 3), 3); /* NUL is valid UTF-8 */
    /* a bad byte at every offset of a long ASCII run (the 8-byte path) */
    char s[100];
    for (int at = 0; at < 100; at++) {
        memset(s, 'x', sizeof s);
        s[at] = (char)0xff;
        if (hl_utf8_valid_len(s, sizeof s) != (size_t)at) {
            CHECK_EQ_INT(hl_utf8_valid_len(s, sizeof s), at);
            break;
        }
    }
    memset(s, 'x', sizeof s);
    memcpy(s + 61, "\xe2\x82\xac", 3);
    CHECK_EQ_INT(hl_utf8_valid_len(s, sizeof s), 100);
}

TEST(buf_read_file) {
    const char *path = hl_test_tmp("buf_read_file.txt");
    FILE *f = fopen(path, "wb");
    CHECK(f != NULL);
    if (!f) return;
    fputs("line one\nline two\n", f);
    fclose(f);
    hl_buf b = {0};
    hl_buf_puts(&b, ">");
    CHECK(hl_buf_read_file(&b, path) == 0);
    CHECK(b.len == 19 && strcmp(b.p, ">line one\nline two\n") == 0);
    CHECK(hl_buf_read_file(&b, "/nonexistent/heylook/file") == -1);
    CHECK(b.len == 19); /* nothing of a failed read is kept */
    hl_buf_free(&b);
    f = fopen(path, "wb");
    if (f) fclose(f);
    CHECK(hl_buf_read_file(&b, path) == 0 && b.len == 0 && b.p && b.p[0] == 0); /* empty file: "" */
    hl_buf_free(&b);
}
