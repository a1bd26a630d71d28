/* template_lex.c - the template lexer: jinja2's rules with trim_blocks and
 * lstrip_blocks on, byte for byte.
 *
 * Contract. tpl_lex normalizes the source first (\r\n and \r become \n; one
 * trailing newline is dropped, as jinja2 does without keep_trailing_newline),
 * then splits it into template data and the tokens inside {{ }} and {% %}
 * tags ({# #} comments vanish; {% raw %} bodies become data). Whitespace
 * control is applied here: "-" on a tag strips the whitespace on that side,
 * "+" on a block tag keeps it, trim_blocks drops the first newline after a
 * block or comment tag, lstrip_blocks drops the spaces and tabs between a
 * line's start and a block or comment tag. String literals are decoded like
 * Python's (\n, \xNN, \uNNNN, octal ...). The token array owns the
 * normalized source and the decoded strings; tpl_toks_free releases them.
 * Errors name the line and column. Pure function of its input; thread-safe.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "template_internal.h"

typedef struct lexer {
    const char *s;
    size_t n, pos;
    int32_t line;
    size_t line_start;  /* offset of the current line's first byte */
    bool line_starting; /* the last match ended with a newline */
    ttoks *out;
    hl_err *e;
    char bal[TPL_MAX_PARSE_DEPTH]; /* expected closing brackets */
    int nbal;
} lexer;

static int lex_fail(lexer *lx, size_t at, const char *fmt, const char *arg) {
    int32_t line = lx->line;
    size_t ls = lx->line_start;
    /* at may lie past the current line when a construct spans lines */
    for (size_t i = lx->pos; i < at && i < lx->n; i++)
        if (lx->s[i] == '\n') line++, ls = i + 1;
    char msg[256];
    snprintf(msg, sizeof msg, fmt, arg);
    return hl_errf(lx->e, "template syntax error at line %d, column %zu: %s", line, at - ls + 1,
                   msg);
}

/* Moves to `to`, counting lines. */
static void advance(lexer *lx, size_t to) {
    for (size_t i = lx->pos; i < to; i++)
        if (lx->s[i] == '\n') lx->line++, lx->line_start = i + 1;
    lx->pos = to;
}

static ttok *push(lexer *lx, uint8_t type, size_t at) {
    ttoks *t = lx->out;
    if (t->n == t->cap) {
        size_t cap = t->cap ? t->cap * 2 : 256;
        ttok *v = realloc(t->v, cap * sizeof *v);
        if (!v) {
            hl_errf(lx->e, "out of memory while reading the template");
            return NULL;
        }
        t->v = v;
        t->cap = cap;
    }
    ttok *k = &t->v[t->n++];
    memset(k, 0, sizeof *k);
    k->type = type;
    k->line = lx->line;
    k->col = (int32_t)(at - lx->line_start + 1);
    return k;
}

/* Length of the whitespace run (Python's \s, Unicode) at s[i]. */
static size_t ws_run(const char *s, size_t n, size_t i) {
    size_t j = i;
    while (j < n) {
        size_t k = j;
        uint32_t cp = tpl_utf8_next(s, n, &k);
        if (!tpl_cp_isspace(cp)) break;
        j = k;
    }
    return j - i;
}

/* Emits the text before a tag, after "-" stripping or lstrip_blocks. */
static int emit_data(lexer *lx, size_t from, size_t to, char sign, bool lstrip_ok) {
    size_t end = to;
    if (sign == '-') {
        end = from + (to - from) - tpl_rstrip_ws_len(lx->s + from, to - from);
    } else if (sign != '+' && lstrip_ok) {
        size_t l = to;
        while (l > from && lx->s[l - 1] != '\n') l--;
        if ((l > from || lx->line_starting) && l < to && ws_run(lx->s, to, l) == to - l) end = l;
    }
    if (end > from) {
        ttok *k = push(lx, TK_DATA, from);
        if (!k) return -1;
        k->p = lx->s + from;
        k->len = end - from;
    }
    advance(lx, to);
    return 0;
}

/* Does "{% raw %}" (any sign, spacing) start at i? Sets *end past it. */
static bool match_raw_begin(const char *s, size_t n, size_t i, size_t *end) {
    size_t p = i + 2;
    if (p < n && (s[p] == '-' || s[p] == '+')) p++;
    p += ws_run(s, n, p);
    if (n - p < 3 || memcmp(s + p, "raw", 3) != 0) return false;
    p += 3;
    p += ws_run(s, n, p);
    if (n - p >= 3 && memcmp(s + p, "-%}", 3) == 0) {
        p += 3;
        *end = p + ws_run(s, n, p);
        return true;
    }
    if (n - p >= 2 && memcmp(s + p, "%}", 2) == 0) {
        *end = p + 2;
        return true;
    }
    return false;
}

/* Matches the end of a block tag at p ("+%}", "-%}" + whitespace, "%}" +
 * one newline); returns its end or 0. */
static size_t match_block_end(const char *s, size_t n, size_t p) {
    if (n - p >= 3 && s[p] == '+' && s[p + 1] == '%' && s[p + 2] == '}') return p + 3;
    if (n - p >= 3 && s[p] == '-' && s[p + 1] == '%' && s[p + 2] == '}')
        return p + 3 + ws_run(s, n, p + 3);
    if (n - p >= 2 && s[p] == '%' && s[p + 1] == '}')
        return p + 2 + (p + 2 < n && s[p + 2] == '\n');
    return 0;
}

static int lex_raw(lexer *lx) {
    const char *s = lx->s;
    size_t n = lx->n;
    for (size_t k = lx->pos; k + 1 < n; k++) {
        if (s[k] != '{' || s[k + 1] != '%') continue;
        size_t p = k + 2;
        char sign = 0;
        if (p < n && (s[p] == '-' || s[p] == '+')) sign = s[p++];
        p += ws_run(s, n, p);
        if (n - p < 6 || memcmp(s + p, "endraw", 6) != 0) continue;
        p += 6;
        p += ws_run(s, n, p);
        size_t end = match_block_end(s, n, p);
        if (!end) continue;
        if (emit_data(lx, lx->pos, k, sign, true) < 0) return -1;
        advance(lx, end);
        lx->line_starting = s[end - 1] == '\n';
        return 0;
    }
    return lex_fail(lx, lx->pos, "%s", "Missing end of raw directive");
}

static int lex_comment(lexer *lx) {
    const char *s = lx->s;
    size_t n = lx->n;
    for (size_t k = lx->pos; k + 1 < n; k++) {
        if (s[k] != '#' || s[k + 1] != '}') continue;
        size_t end;
        if (k > lx->pos && s[k - 1] == '-')
            end = k + 2 + ws_run(s, n, k + 2);
        else if (k > lx->pos && s[k - 1] == '+')
            end = k + 2;
        else
            end = k + 2 + (k + 2 < n && s[k + 2] == '\n');
        advance(lx, end);
        lx->line_starting = s[end - 1] == '\n';
        return 0;
    }
    return lex_fail(lx, lx->pos, "%s", "Missing end of comment tag");
}

/* (\d+_)*\d+ at p: its end, or p. */
static size_t scan_digits(const char *s, size_t n, size_t p) {
    size_t q = p;
    if (q >= n || s[q] < '0' || s[q] > '9') return p;
    for (;;) {
        while (q < n && s[q] >= '0' && s[q] <= '9') q++;
        if (q + 1 < n && s[q] == '_' && s[q + 1] >= '0' && s[q + 1] <= '9')
            q++;
        else
            return q;
    }
}

static size_t scan_float(const char *s, size_t n, size_t p) {
    if (p > 0 && s[p - 1] == '.') return 0;
    size_t d = scan_digits(s, n, p);
    if (d == p) return 0;
    size_t frac = d;
    if (d < n && s[d] == '.') {
        size_t f = scan_digits(s, n, d + 1);
        if (f > d + 1) frac = f;
    }
    if (frac < n && (s[frac] == 'e' || s[frac] == 'E')) {
        size_t e = frac + 1;
        if (e < n && (s[e] == '+' || s[e] == '-')) e++;
        size_t ed = scan_digits(s, n, e);
        if (ed > e) return ed;
    }
    return frac > d ? frac : 0;
}

static bool is_digit_in(char ch, int base) {
    if (ch >= '0' && ch <= '9') return ch - '0' < base;
    if (base == 16) return (ch >= 'a' && ch <= 'f') || (ch >= 'A' && ch <= 'F');
    return false;
}

/* Python's integer literal at p: its end, or 0. */
static size_t scan_int(const char *s, size_t n, size_t p) {
    if (p >= n || s[p] < '0' || s[p] > '9') return 0;
    if (s[p] == '0' && p + 1 < n) {
        char x = s[p + 1] | 0x20;
        int base = x == 'b' ? 2 : x == 'o' ? 8 : x == 'x' ? 16 : 0;
        if (base) {
            size_t q = p + 2, last = 0;
            for (;;) {
                size_t r = q;
                if (r < n && s[r] == '_') r++;
                if (r < n && is_digit_in(s[r], base))
                    q = last = r + 1;
                else
                    break;
            }
            if (last) return last;
        }
    }
    size_t q = p + 1;
    char first = s[p];
    for (;;) {
        size_t r = q;
        if (r < n && s[r] == '_') r++;
        if (r < n && s[r] >= '0' && s[r] <= '9' && (first != '0' || s[r] == '0'))
            q = r + 1;
        else
            break;
    }
    return q;
}

static int int_value(lexer *lx, size_t p, size_t end, int64_t *out) {
    int base = 10;
    size_t q = p;
    if (end - p > 2 && lx->s[p] == '0') {
        char x = lx->s[p + 1] | 0x20;
        base = x == 'b' ? 2 : x == 'o' ? 8 : x == 'x' ? 16 : 10;
        if (base != 10) q += 2;
    }
    uint64_t v = 0;
    for (; q < end; q++) {
        char ch = lx->s[q];
        if (ch == '_') continue;
        int d = ch <= '9' ? ch - '0' : (ch | 0x20) - 'a' + 10;
        if (v > (UINT64_MAX - (uint64_t)d) / (uint64_t)base) goto big;
        v = v * (uint64_t)base + (uint64_t)d;
    }
    if (v > INT64_MAX) goto big;
    *out = (int64_t)v;
    return 0;
big:
    return lex_fail(lx, p, "%s", "integer literal too large (more than 64 bits)");
}

static int hexval(char ch) {
    if (ch >= '0' && ch <= '9') return ch - '0';
    ch |= 0x20;
    if (ch >= 'a' && ch <= 'f') return ch - 'a' + 10;
    return -1;
}

/* Decodes the body of a string literal like Python's unicode-escape codec
 * after backslashreplace, which is what jinja2 does. */
static int decode_string(lexer *lx, size_t from, size_t to, ttok *k) {
    const char *s = lx->s;
    /* decoding shrinks the text, except that "\" before a non-ASCII
     * character of n bytes becomes an escape of at most 2n bytes */
    char *o = malloc(2 * (to - from) + 16);
    if (!o) return hl_errf(lx->e, "out of memory while reading the template");
    size_t w = 0;
    for (size_t i = from; i < to;) {
        if (s[i] != '\\') {
            o[w++] = s[i++];
            continue;
        }
        size_t at = i;
        i++; /* the string regex guarantees a character after a backslash */
        char ch = s[i];
        uint32_t cp = 0;
        int want = 0;
        switch (ch) {
        case '\n':
            i++;
            continue;
        case '\\':
            o[w++] = '\\';
            i++;
            continue;
        case '\'':
            o[w++] = '\'';
            i++;
            continue;
        case '"':
            o[w++] = '"';
            i++;
            continue;
        case 'a':
            o[w++] = '\a';
            i++;
            continue;
        case 'b':
            o[w++] = '\b';
            i++;
            continue;
        case 'f':
            o[w++] = '\f';
            i++;
            continue;
        case 'n':
            o[w++] = '\n';
            i++;
            continue;
        case 'r':
            o[w++] = '\r';
            i++;
            continue;
        case 't':
            o[w++] = '\t';
            i++;
            continue;
        case 'v':
            o[w++] = '\v';
            i++;
            continue;
        case 'x':
            want = 2;
            break;
        case 'u':
            want = 4;
            break;
        case 'U':
            want = 8;
            break;
        case 'N':
            free(o);
            return lex_fail(lx, at, "%s",
                            "\\N{...} escapes are not supported; write the character itself");
        default:
            if (ch >= '0' && ch <= '7') {
                int nd = 0;
                while (nd < 3 && i < to && s[i] >= '0' && s[i] <= '7')
                    cp = cp * 8 + (uint32_t)(s[i++] - '0'), nd++;
                w += tpl_utf8_put(o + w, cp);
                continue;
            }
            if ((unsigned char)ch >= 0x80) {
                /* backslashreplace turned the character into \xNN, \uNNNN or
                 * \UNNNNNNNN, whose backslash the escape then consumed */
                size_t j = i;
                uint32_t c2 = tpl_utf8_next(s, to, &j);
                char tmp[16];
                if (c2 >= 0xdc80 && c2 <= 0xdcff) c2 -= 0xdc00; /* a malformed byte: \xNN */
                int m = c2 < 0x100     ? snprintf(tmp, sizeof tmp, "\\x%02x", c2)
                        : c2 < 0x10000 ? snprintf(tmp, sizeof tmp, "\\u%04x", c2)
                                       : snprintf(tmp, sizeof tmp, "\\U%08x", c2);
                memcpy(o + w, tmp, (size_t)m);
                w += (size_t)m;
                i = j;
                continue;
            }
            o[w++] = '\\'; /* an unknown escape stays as written */
            continue;
        }
        i++;
        for (int d = 0; d < want; d++, i++) {
            int h = i < to ? hexval(s[i]) : -1;
            if (h < 0) {
                free(o);
                return lex_fail(lx, at, "(unicode error) truncated \\%s escape",
                                want == 2   ? "xXX"
                                : want == 4 ? "uXXXX"
                                            : "UXXXXXXXX");
            }
            cp = cp * 16 + (uint32_t)h;
        }
        if (cp > 0x10FFFF) {
            free(o);
            return lex_fail(lx, at, "%s", "(unicode error) illegal Unicode character");
        }
        w += tpl_utf8_put(o + w, cp);
    }
    o[w] = 0;
    k->p = o;
    k->len = w;
    return 0;
}

static const struct {
    const char *s;
    uint8_t type;
} OPS[] = {
    {"//", TK_FLOORDIV}, {"**", TK_POW},   {"==", TK_EQ},      {"!=", TK_NE},      {">=", TK_GTEQ},
    {"<=", TK_LTEQ},     {"+", TK_ADD},    {"-", TK_SUB},      {"/", TK_DIV},      {"*", TK_MUL},
    {"%", TK_MOD},       {"~", TK_TILDE},  {"[", TK_LBRACKET}, {"]", TK_RBRACKET}, {"(", TK_LPAREN},
    {")", TK_RPAREN},    {"{", TK_LBRACE}, {"}", TK_RBRACE},   {">", TK_GT},       {"<", TK_LT},
    {"=", TK_ASSIGN},    {".", TK_DOT},    {":", TK_COLON},    {"|", TK_PIPE},     {",", TK_COMMA},
    {";", TK_SEMICOLON},
};

/* Tokens inside a {% %} (block) or {{ }} tag, through its end. */
static int lex_tag(lexer *lx, bool block) {
    const char *s = lx->s;
    size_t n = lx->n;
    lx->nbal = 0;
    for (;;) {
        size_t p = lx->pos;
        if (p >= n) return 0; /* the parser reports the missing end */
        if (lx->nbal == 0) {
            size_t end = 0;
            if (block)
                end = match_block_end(s, n, p);
            else if (n - p >= 3 && s[p] == '-' && s[p + 1] == '}' && s[p + 2] == '}')
                end = p + 3 + ws_run(s, n, p + 3);
            else if (n - p >= 2 && s[p] == '}' && s[p + 1] == '}')
                end = p + 2;
            if (end) {
                if (!push(lx, block ? TK_BLOCK_END : TK_VAR_END, p)) return -1;
                advance(lx, end);
                lx->line_starting = s[end - 1] == '\n';
                return 0;
            }
        }
        size_t w = ws_run(s, n, p);
        if (w) {
            advance(lx, p + w);
            continue;
        }
        size_t end = scan_float(s, n, p);
        if (end) {
            ttok *k = push(lx, TK_FLOAT, p);
            if (!k) return -1;
            char tmp[64];
            size_t m = 0;
            for (size_t i = p; i < end && m < sizeof tmp - 1; i++)
                if (s[i] != '_') tmp[m++] = s[i];
            tmp[m] = 0;
            k->f = strtod(tmp, NULL);
            advance(lx, end);
            continue;
        }
        end = scan_int(s, n, p);
        if (end) {
            ttok *k = push(lx, TK_INT, p);
            if (!k || int_value(lx, p, end, &k->i) < 0) return -1;
            advance(lx, end);
            continue;
        }
        char ch = s[p];
        if ((ch >= 'a' && ch <= 'z') || (ch >= 'A' && ch <= 'Z') || ch == '_') {
            end = p + 1;
            while (end < n &&
                   ((s[end] >= 'a' && s[end] <= 'z') || (s[end] >= 'A' && s[end] <= 'Z') ||
                    (s[end] >= '0' && s[end] <= '9') || s[end] == '_'))
                end++;
            ttok *k = push(lx, TK_NAME, p);
            if (!k) return -1;
            k->p = s + p;
            k->len = end - p;
            advance(lx, end);
            continue;
        }
        if (ch == '\'' || ch == '"') {
            size_t i = p + 1;
            while (i < n && s[i] != ch) i += s[i] == '\\' ? 2 : 1;
            if (i < n) {
                ttok *k = push(lx, TK_STRING, p);
                if (!k || decode_string(lx, p + 1, i, k) < 0) return -1;
                advance(lx, i + 1);
                continue;
            }
        }
        for (size_t o = 0; o < sizeof OPS / sizeof OPS[0]; o++) {
            size_t m = strlen(OPS[o].s);
            if (n - p < m || memcmp(s + p, OPS[o].s, m) != 0) continue;
            if (ch == '{' || ch == '(' || ch == '[') {
                if (lx->nbal == TPL_MAX_PARSE_DEPTH)
                    return lex_fail(lx, p, "%s", "brackets nested too deeply");
                lx->bal[lx->nbal++] = ch == '{' ? '}' : ch == '(' ? ')' : ']';
            } else if (ch == '}' || ch == ')' || ch == ']') {
                char one[2] = {ch, 0};
                if (!lx->nbal) return lex_fail(lx, p, "unexpected '%s'", one);
                char want = lx->bal[--lx->nbal];
                if (want != ch) {
                    char msg[32];
                    snprintf(msg, sizeof msg, "'%c', expected '%c'", ch, want);
                    return lex_fail(lx, p, "unexpected %s", msg);
                }
            }
            if (!push(lx, OPS[o].type, p)) return -1;
            advance(lx, p + m);
            goto next;
        }
        {
            char what[16];
            if ((unsigned char)ch < 0x20 || (unsigned char)ch >= 0x7f)
                snprintf(what, sizeof what, "\\x%02x", (unsigned char)ch);
            else
                snprintf(what, sizeof what, "%c", ch);
            return lex_fail(lx, p, "unexpected char '%s'", what);
        }
    next:;
    }
}

static int lex_root(lexer *lx) {
    const char *s = lx->s;
    size_t n = lx->n;
    while (lx->pos < n) {
        size_t q = lx->pos;
        char kind = 0;
        for (; q + 1 < n; q++) {
            if (s[q] == '{' && (s[q + 1] == '{' || s[q + 1] == '%' || s[q + 1] == '#')) {
                kind = s[q + 1];
                break;
            }
        }
        if (!kind) {
            ttok *k = push(lx, TK_DATA, lx->pos);
            if (!k) return -1;
            k->p = s + lx->pos;
            k->len = n - lx->pos;
            advance(lx, n);
            break;
        }
        char sign = q + 2 < n && (s[q + 2] == '-' || s[q + 2] == '+') ? s[q + 2] : 0;
        size_t raw_end;
        if (kind == '%' && match_raw_begin(s, n, q, &raw_end)) {
            if (emit_data(lx, lx->pos, q, sign, true) < 0) return -1;
            advance(lx, raw_end);
            lx->line_starting = s[raw_end - 1] == '\n';
            if (lex_raw(lx) < 0) return -1;
            continue;
        }
        if (emit_data(lx, lx->pos, q, sign, kind != '{') < 0) return -1;
        size_t body = q + 2 + (sign != 0);
        lx->line_starting = false;
        if (kind == '#') {
            advance(lx, body);
            if (lex_comment(lx) < 0) return -1;
            continue;
        }
        if (!push(lx, kind == '%' ? TK_BLOCK_BEGIN : TK_VAR_BEGIN, q)) return -1;
        advance(lx, body);
        if (lex_tag(lx, kind == '%') < 0) return -1;
    }
    return push(lx, TK_EOF, lx->pos) ? 0 : -1;
}

int tpl_lex(const char *src, size_t len, ttoks *out, hl_err *e) {
    memset(out, 0, sizeof *out);
    if (len > TPL_MAX_SOURCE)
        return hl_errf(e, "template is %zu bytes, more than the %u allowed", len, TPL_MAX_SOURCE);
    char *s = malloc(len + 1);
    if (!s) return hl_errf(e, "out of memory while reading the template");
    size_t n = 0;
    for (size_t i = 0; i < len; i++) {
        if (src[i] == '\r') {
            s[n++] = '\n';
            if (i + 1 < len && src[i + 1] == '\n') i++;
        } else {
            s[n++] = src[i];
        }
    }
    if (n && s[n - 1] == '\n') n--;
    s[n] = 0;
    out->src = s;
    lexer lx = {.s = s, .n = n, .line = 1, .line_starting = true, .out = out, .e = e};
    if (lex_root(&lx) < 0) {
        tpl_toks_free(out);
        return -1;
    }
    return 0;
}

void tpl_toks_free(ttoks *t) {
    for (size_t i = 0; i < t->n; i++)
        if (t->v[i].type == TK_STRING) free((char *)t->v[i].p);
    free(t->v);
    free(t->src);
    memset(t, 0, sizeof *t);
}

const char *tpl_tok_describe(const ttok *t, char *buf, size_t n) {
    switch (t->type) {
    case TK_EOF:
        return "end of template";
    case TK_DATA:
        return "template data / text";
    case TK_BLOCK_BEGIN:
        return "begin of statement block";
    case TK_BLOCK_END:
        return "end of statement block";
    case TK_VAR_BEGIN:
        return "begin of print statement";
    case TK_VAR_END:
        return "end of print statement";
    case TK_NAME:
        snprintf(buf, n, "%.*s", (int)(t->len > 64 ? 64 : t->len), t->p);
        return buf;
    case TK_STRING:
        return "string";
    case TK_INT:
        return "integer";
    case TK_FLOAT:
        return "float";
    default:
        for (size_t o = 0; o < sizeof OPS / sizeof OPS[0]; o++)
            if (OPS[o].type == t->type) return OPS[o].s;
        return "?";
    }
}
