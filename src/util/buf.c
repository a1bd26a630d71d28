/* buf.c - see buf.h. */
#include "buf.h"

#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

void hl_buf_free(hl_buf *b) {
    free(b->p);
    *b = (hl_buf){0};
}

void hl_buf_reset(hl_buf *b) {
    b->len = 0;
    b->oom = false;
    if (b->p) b->p[0] = 0;
}

bool hl_buf_reserve(hl_buf *b, size_t n) {
    if (b->oom) return false;
    if (n < b->cap - b->len) return true; /* room for n bytes and the NUL */
    if (n > SIZE_MAX / 2 - b->len) {
        b->oom = true;
        return false;
    }
    size_t cap = b->cap ? b->cap : 256;
    while (cap - b->len <= n) cap *= 2;
    char *p = realloc(b->p, cap);
    if (!p) {
        b->oom = true;
        return false;
    }
    p[b->len] = 0;
    b->p = p;
    b->cap = cap;
    return true;
}

void hl_buf_put(hl_buf *b, const void *p, size_t n) {
    if (!hl_buf_reserve(b, n)) return;
    if (n) memcpy(b->p + b->len, p, n);
    b->len += n;
    b->p[b->len] = 0;
}

void hl_buf_puts(hl_buf *b, const char *s) { hl_buf_put(b, s, strlen(s)); }

void hl_buf_putc(hl_buf *b, char c) { hl_buf_put(b, &c, 1); }

void hl_buf_printf(hl_buf *b, const char *fmt, ...) {
    va_list ap;
    va_start(ap, fmt);
    char tmp[256];
    int n = vsnprintf(tmp, sizeof tmp, fmt, ap);
    va_end(ap);
    if (n < 0) return;
    if ((size_t)n < sizeof tmp) {
        hl_buf_put(b, tmp, (size_t)n);
        return;
    }
    if (!hl_buf_reserve(b, (size_t)n)) return;
    va_start(ap, fmt);
    vsnprintf(b->p + b->len, (size_t)n + 1, fmt, ap);
    va_end(ap);
    b->len += (size_t)n;
}

/* Length of the valid UTF-8 sequence at s (n bytes left), 0 if invalid. */
static size_t utf8_len(const unsigned char *s, size_t n) {
    unsigned c = s[0];
    size_t k;
    unsigned min;
    if (c < 0x80) return 1;
    if (c >= 0xc2 && c <= 0xdf) k = 2, min = 0x80;
    else if (c >= 0xe0 && c <= 0xef) k = 3, min = 0x800;
    else if (c >= 0xf0 && c <= 0xf4) k = 4, min = 0x10000;
    else return 0;
    if (n < k) return 0;
    unsigned cp = c & (0xff >> (k + 1));
    for (size_t i = 1; i < k; i++) {
        if ((s[i] & 0xc0) != 0x80) return 0;
        cp = cp << 6 | (s[i] & 0x3f);
    }
    if (cp < min || cp > 0x10ffff || (cp >= 0xd800 && cp <= 0xdfff)) return 0;
    return k;
}

/* Whether none of the 8 bytes in w needs a look in hl_buf_json_str: no
 * control character, '"', '\\' or non-ASCII byte (exact for the word as a
 * whole; the usual has-zero-byte tricks). */
static bool plain8(uint64_t w) {
    const uint64_t ones = 0x0101010101010101ull, high = 0x8080808080808080ull;
    uint64_t q = w ^ (ones * '"'), bs = w ^ (ones * '\\');
    uint64_t ctl = (w - ones * 0x20) & ~w;
    uint64_t quote = (q - ones) & ~q, slash = (bs - ones) & ~bs;
    return !((ctl | quote | slash | w) & high);
}

void hl_buf_json_str(hl_buf *b, const char *s, size_t n) {
    if (n == 0) { /* s may be NULL */
        hl_buf_put(b, "\"\"", 2);
        return;
    }
    const unsigned char *u = (const unsigned char *)s;
    if (!hl_buf_reserve(b, n + 2)) return;
    hl_buf_putc(b, '"');
    size_t run = 0; /* bytes at u[i - run, i) to copy as they are */
    for (size_t i = 0; i < n;) {
        uint64_t w;
        if (n - i >= 8 && (memcpy(&w, u + i, 8), plain8(w))) { /* ASCII text, 8 at a time */
            i += 8, run += 8;
            continue;
        }
        unsigned c = u[i];
        if (c >= 0x20 && c != '"' && c != '\\' && c < 0x80) {
            i++, run++;
            continue;
        }
        size_t k = c < 0x80 ? 1 : utf8_len(u + i, n - i);
        if (k > 1) {
            i += k, run += k;
            continue;
        }
        hl_buf_put(b, u + i - run, run);
        run = 0;
        char esc[8];
        const char *e = esc;
        switch (c) {
        case '"': e = "\\\""; break;
        case '\\': e = "\\\\"; break;
        case '\n': e = "\\n"; break;
        case '\r': e = "\\r"; break;
        case '\t': e = "\\t"; break;
        case '\b': e = "\\b"; break;
        case '\f': e = "\\f"; break;
        default:
            if (c < 0x20) snprintf(esc, sizeof esc, "\\u%04x", c);
            else e = "\xef\xbf\xbd"; /* k == 0: invalid UTF-8 byte */
        }
        hl_buf_puts(b, e);
        i++;
    }
    hl_buf_put(b, u + n - run, run);
    hl_buf_putc(b, '"');
}

void hl_buf_json_float(hl_buf *b, double v, const char *nonfinite) {
    if (!isfinite(v)) {
        hl_buf_puts(b, nonfinite);
        return;
    }
    char tmp[32];
    for (int prec = 6; prec <= 17; prec++) {
        snprintf(tmp, sizeof tmp, "%.*g", prec, v);
        if (strtod(tmp, NULL) == v) break;
    }
    hl_buf_puts(b, tmp);
}

void hl_buf_json_f32(hl_buf *b, float v, const char *nonfinite) {
    if (!isfinite(v)) {
        hl_buf_puts(b, nonfinite);
        return;
    }
    char tmp[32];
    for (int prec = 6; prec <= 9; prec++) { /* 9 digits always round-trip a float */
        snprintf(tmp, sizeof tmp, "%.*g", prec, (double)v);
        if (strtof(tmp, NULL) == v) break;
    }
    hl_buf_puts(b, tmp);
}

size_t hl_utf8_valid_len(const char *s, size_t n) {
    const unsigned char *u = (const unsigned char *)s;
    size_t i = 0;
    while (i < n) {
        /* ASCII runs, 8 bytes at a time: most of a request body */
        while (n - i >= 8) {
            uint64_t w;
            memcpy(&w, u + i, 8);
            if (w & 0x8080808080808080ull) break;
            i += 8;
        }
        if (i == n) break;
        if (u[i] < 0x80) {
            i++;
            continue;
        }
        size_t k = utf8_len(u + i, n - i);
        if (!k) break;
        i += k;
    }
    return i;
}

int hl_buf_read_file(hl_buf *b, const char *path) {
    FILE *f = fopen(path, "rb");
    if (!f) return -1;
    size_t start = b->len;
    char tmp[65536];
    size_t k;
    while ((k = fread(tmp, 1, sizeof tmp, f)) > 0) hl_buf_put(b, tmp, k);
    bool bad = ferror(f) || b->oom;
    fclose(f);
    if (bad) {
        b->len = start;
        if (b->p) b->p[start] = 0;
        return -1;
    }
    hl_buf_reserve(b, 0); /* a NUL even for an empty file */
    return b->oom ? -1 : 0;
}
