/* buf.h - a growable byte buffer for building responses (JSON, SSE frames).
 *
 *   hl_buf b = {0};
 *   hl_buf_puts(&b, "{\"text\":"); hl_buf_json_str(&b, s, n); hl_buf_putc(&b, '}');
 *   if (b.oom) ...; send(b.p, b.len); hl_buf_free(&b);
 *
 * Contract. An hl_buf is a plain value; zero-initialized it is empty and
 * owns nothing. Appends grow it (doubling); on allocation failure the buffer
 * keeps what it had, sets `oom` and ignores every later append, so a caller
 * may append many pieces and check once. p is always NUL-terminated once
 * anything was reserved or appended (p may be NULL while len is 0). Not
 * thread-safe.
 */
#ifndef HL_BUF_H
#define HL_BUF_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

typedef struct hl_buf {
    char *p;
    size_t len, cap;
    bool oom;
} hl_buf;

void hl_buf_free(hl_buf *b);
/* Empties b, keeping its memory (and clearing oom). */
void hl_buf_reset(hl_buf *b);
/* Makes room for n more bytes; false (and oom) when that fails. */
bool hl_buf_reserve(hl_buf *b, size_t n);
void hl_buf_put(hl_buf *b, const void *p, size_t n);
void hl_buf_puts(hl_buf *b, const char *s);
void hl_buf_putc(hl_buf *b, char c);
void hl_buf_printf(hl_buf *b, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
/* Appends the whole content of the file at path. Returns 0, or -1 when it
 * cannot be opened or read (errno says why) or memory runs out; the buffer
 * then holds nothing of the file. */
int hl_buf_read_file(hl_buf *b, const char *path);
/* Appends n bytes as a JSON string literal, quotes included: ", \ and
 * control characters escaped (\n \r \t \b \f, others \u00XX), UTF-8 kept
 * as is. Invalid UTF-8 (a token piece that ends inside a character) becomes
 * U+FFFD, so the output is always valid JSON. */
void hl_buf_json_str(hl_buf *b, const char *s, size_t n);
/* A JSON number for a double: the shortest "%.Ng" form that reads back as
 * the same double; NaN and infinities, which JSON lacks, as the given
 * fallback literal. */
void hl_buf_json_float(hl_buf *b, double v, const char *nonfinite);
/* The same for a float: the shortest form that reads back as the same float
 * (-0.31725305, not the double's -0.31725305318832397). */
void hl_buf_json_f32(hl_buf *b, float v, const char *nonfinite);

/* Length of the longest prefix of s[0, n) that is valid UTF-8 (n when all of
 * it is): no overlong forms, UTF-16 surrogates or code points past U+10FFFF. */
size_t hl_utf8_valid_len(const char *s, size_t n);

#endif
