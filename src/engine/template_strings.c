/* template_strings.c - Python's str: the methods templates call on strings
 * (strip, split, replace, find, startswith, format ...), case mapping, the
 * two formatting languages (str % args and str.format), and markupsafe's
 * HTML escaping for Markup strings (what |safe and |e produce).
 *
 * Contract. Strings are indexed by code point; every function takes
 * borrowed arguments and returns a new reference (or -1 with the render's
 * error set). A Markup operand stays Markup where markupsafe keeps it, and
 * the other operand is escaped where markupsafe escapes it. Scans count
 * against the render's work limit. Single-threaded, like the render.
 */
#include <errno.h>
#include <inttypes.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "template_internal.h"

/* ---- strings ---- */

static bool cp_in(uint32_t cp, const tstr *set) {
    if (!set) return tpl_cp_isspace(cp);
    size_t i = 0;
    while (i < set->len)
        if (tpl_utf8_next(set->p, set->len, &i) == cp) return true;
    return false;
}

/* strip / lstrip / rstrip with Python's chars argument (NULL: whitespace). */
void tpl_strip_range(const tstr *s, const tstr *chars, bool left, bool right, size_t *a,
                     size_t *b) {
    size_t lo = 0, hi = s->len;
    if (left) {
        while (lo < hi) {
            size_t j = lo;
            if (!cp_in(tpl_utf8_next(s->p, hi, &j), chars)) break;
            lo = j;
        }
    }
    if (right) {
        while (hi > lo) {
            size_t st = hi - 1;
            while (st > lo && ((unsigned char)s->p[st] & 0xc0) == 0x80 && hi - st < 4) st--;
            size_t j = st;
            uint32_t cp = tpl_utf8_next(s->p, hi, &j);
            if (j != hi) {
                st = hi - 1;
                j = st;
                cp = tpl_utf8_next(s->p, hi, &j);
            }
            if (!cp_in(cp, chars)) break;
            hi = st;
        }
    }
    *a = lo;
    *b = hi;
}

static int sub_str(tctx *c, tval s, size_t a, size_t b, tval *out) {
    if (a == 0 && b == s.u.s->len) {
        tpl_incref(*out = s);
        return 0;
    }
    if (tpl_str_val(c, s.u.s->p + a, b - a, out) < 0) return -1;
    out->markup = s.markup;
    return 0;
}

int tpl_str_strip(tctx *c, tval s, tval chars, bool left, bool right, tval *out) {
    if (tpl_work(c, s.u.s->len / 64) < 0) return -1;
    if (tv_given(chars) && chars.t != TV_NONE && tpl_want_str(c, chars, "strip arg") < 0) return -1;
    size_t a, b;
    tpl_strip_range(s.u.s, tv_given(chars) && chars.t == TV_STR ? chars.u.s : NULL, left, right, &a,
                    &b);
    return sub_str(c, s, a, b, out);
}

/* Appends cp mapped to upper case (Python's str.upper: the sharp s becomes
 * "SS", or "Ss" as the first letter of a title-cased word). */
static bool put_upper(tctx *c, tbuf *b, uint32_t cp, bool title, const char *orig, size_t olen) {
    if (cp == 0xdf) return tbuf_put(c, b, title ? "Ss" : "SS", 2);
    uint32_t r = tpl_cp_upper(cp);
    if (r == cp) return tbuf_put(c, b, orig, olen);
    char enc[4];
    return tbuf_put(c, b, enc, tpl_utf8_put(enc, r));
}

static bool put_lower(tctx *c, tbuf *b, uint32_t cp, const char *orig, size_t olen) {
    uint32_t r = tpl_cp_lower(cp);
    if (r == cp) return tbuf_put(c, b, orig, olen);
    char enc[4];
    return tbuf_put(c, b, enc, tpl_utf8_put(enc, r));
}

int tpl_str_case(tctx *c, tval s, int mode, tval *out) {
    if (tpl_work(c, s.u.s->len / 16) < 0) return -1;
    tbuf b = {0};
    const char *p = s.u.s->p;
    size_t n = s.u.s->len, i = 0;
    bool prev_cased = false, first = true, ok = true;
    while (i < n && ok) {
        size_t at = i;
        uint32_t cp = tpl_utf8_next(p, n, &i);
        bool up = tpl_cp_isupper(cp), cased = up || tpl_cp_islower(cp);
        switch (mode) {
        case CASE_UPPER:
            ok = put_upper(c, &b, cp, false, p + at, i - at);
            break;
        case CASE_LOWER:
            ok = put_lower(c, &b, cp, p + at, i - at);
            break;
        case CASE_SWAP:
            ok = up ? put_lower(c, &b, cp, p + at, i - at)
                    : put_upper(c, &b, cp, false, p + at, i - at);
            break;
        case CASE_CAPITALIZE:
            ok = first ? put_upper(c, &b, cp, true, p + at, i - at)
                       : put_lower(c, &b, cp, p + at, i - at);
            break;
        case CASE_TITLE:
            ok = prev_cased ? put_lower(c, &b, cp, p + at, i - at)
                            : put_upper(c, &b, cp, true, p + at, i - at);
            break;
        }
        prev_cased = cased;
        first = false;
    }
    if (!ok) {
        tbuf_free(c, &b);
        return -1;
    }
    if (tpl_str_from_buf(c, &b, out) < 0) return -1;
    out->markup = s.markup;
    return 0;
}

/* jinja2's title filter: words start after runs of -, whitespace, ( { [ <. */
int tpl_str_title_words(tctx *c, tval s, tval *out) {
    tbuf b = {0};
    const char *p = s.u.s->p;
    size_t n = s.u.s->len, i = 0;
    bool at_start = true, ok = true;
    while (i < n && ok) {
        size_t at = i;
        uint32_t cp = tpl_utf8_next(p, n, &i);
        bool sep =
            cp == '-' || cp == '(' || cp == '{' || cp == '[' || cp == '<' || tpl_cp_isspace(cp);
        if (sep)
            ok = tbuf_put(c, &b, p + at, i - at);
        else if (at_start)
            ok = put_upper(c, &b, cp, false, p + at, i - at);
        else
            ok = put_lower(c, &b, cp, p + at, i - at);
        at_start = sep;
    }
    if (!ok) {
        tbuf_free(c, &b);
        return -1;
    }
    return tpl_str_from_buf(c, &b, out);
}

/* Byte offset -> code point index. */
static size_t cp_index(const char *s, size_t byte_off) {
    return tpl_utf8_count(s, byte_off);
}

/* Python's [start:end] bounds for find/count/startswith, in bytes. */
static int str_bounds(tctx *c, const tstr *s, tval start, tval end, size_t *a, size_t *b) {
    int64_t n = (int64_t)s->ncp, lo = 0, hi = n;
    if (tv_given(start) && start.t != TV_NONE && tpl_want_int(c, start, "slice index", &lo) < 0)
        return -1;
    if (tv_given(end) && end.t != TV_NONE && tpl_want_int(c, end, "slice index", &hi) < 0)
        return -1;
    if (lo < 0) lo = lo + n < 0 ? 0 : lo + n;
    if (hi < 0) hi = hi + n < 0 ? 0 : hi + n;
    if (lo > n) lo = n + 1; /* empty, and "".find("", 5) is -1 */
    if (hi > n) hi = n;
    if (lo > n) {
        *a = s->len + 1;
        *b = s->len;
        return 0;
    }
    *a = tpl_utf8_offset(s->p, s->len, (size_t)lo);
    *b = hi < lo ? *a : tpl_utf8_offset(s->p, s->len, (size_t)hi);
    return 0;
}

static const char *find_bytes(const char *h, size_t hn, const char *nd, size_t nn, bool last) {
    if (nn > hn) return NULL;
    if (!last) return nn ? memmem(h, hn, nd, nn) : h;
    for (size_t i = hn - nn + 1; i-- > 0;)
        if (memcmp(h + i, nd, nn) == 0) return h + i;
    return NULL;
}

static int do_find(tctx *c, tval s, const targs *a, bool last, bool raise, tval *out) {
    if (tpl_work(c, s.u.s->len / 64) < 0) return -1;
    static const char *const P[] = {"sub", "start", "end"};
    tval v[3];
    if (tpl_bind_args(c, last ? "rfind" : "find", P, 3, a, v) < 0) return -1;
    if (!tv_given(v[0])) return tpl_fail(c, "find() takes at least 1 argument (0 given)");
    if (tpl_want_str(c, v[0], "find arg") < 0) return -1;
    size_t lo, hi;
    if (str_bounds(c, s.u.s, v[1], v[2], &lo, &hi) < 0) return -1;
    const char *hit =
        lo > hi ? NULL : find_bytes(s.u.s->p + lo, hi - lo, v[0].u.s->p, v[0].u.s->len, last);
    if (!hit) {
        if (raise) return tpl_fail(c, "substring not found");
        *out = tv_int(-1);
        return 0;
    }
    *out = tv_int((int64_t)cp_index(s.u.s->p, (size_t)(hit - s.u.s->p)));
    return 0;
}

static int do_str_count(tctx *c, tval s, const targs *a, tval *out) {
    if (tpl_work(c, s.u.s->len / 64) < 0) return -1;
    static const char *const P[] = {"sub", "start", "end"};
    tval v[3];
    if (tpl_bind_args(c, "count", P, 3, a, v) < 0) return -1;
    if (!tv_given(v[0]) || tpl_want_str(c, v[0], "count arg") < 0)
        return !tv_given(v[0]) ? tpl_fail(c, "count() takes at least 1 argument (0 given)") : -1;
    size_t lo, hi;
    if (str_bounds(c, s.u.s, v[1], v[2], &lo, &hi) < 0) return -1;
    int64_t count = 0;
    if (lo <= hi) {
        size_t nn = v[0].u.s->len;
        if (nn == 0)
            count = (int64_t)tpl_utf8_count(s.u.s->p + lo, hi - lo) + 1;
        else
            for (size_t i = lo; i + nn <= hi;) {
                const char *h = memmem(s.u.s->p + i, hi - i, v[0].u.s->p, nn);
                if (!h) break;
                count++;
                i = (size_t)(h - s.u.s->p) + nn;
            }
    }
    *out = tv_int(count);
    return 0;
}

static int do_startswith(tctx *c, tval s, const targs *a, bool ends, tval *out) {
    static const char *const P[] = {"prefix", "start", "end"};
    tval v[3];
    if (tpl_bind_args(c, ends ? "endswith" : "startswith", P, 3, a, v) < 0) return -1;
    if (!tv_given(v[0]))
        return tpl_fail(c, "%s() takes at least 1 argument (0 given)",
                        ends ? "endswith" : "startswith");
    size_t lo, hi;
    if (str_bounds(c, s.u.s, v[1], v[2], &lo, &hi) < 0) return -1;
    const tval *opts = &v[0];
    size_t nopt = 1;
    if (v[0].t == TV_TUPLE) {
        opts = v[0].u.l->v;
        nopt = v[0].u.l->n;
    }
    bool res = false;
    for (size_t k = 0; k < nopt && !res; k++) {
        if (opts[k].t != TV_STR)
            return tpl_fail(c, "%s first arg must be str or a tuple of str, not %s",
                            ends ? "endswith" : "startswith", tpl_type_name(opts[k].t));
        size_t pn = opts[k].u.s->len;
        if (lo > hi || hi - lo < pn) continue;
        res = memcmp(s.u.s->p + (ends ? hi - pn : lo), opts[k].u.s->p, pn) == 0;
    }
    *out = tv_bool(res);
    return 0;
}

int tpl_str_replace(tctx *c, tval s, tval old, tval new, int64_t count, tval *out) {
    if (tpl_work(c, s.u.s->len / 64) < 0) return -1;
    const char *p = s.u.s->p, *o = old.u.s->p, *w = new.u.s->p;
    size_t n = s.u.s->len, on = old.u.s->len, wn = new.u.s->len;
    tbuf b = {0};
    int64_t done = 0;
    bool ok = true;
    if (on == 0) { /* insert between every character */
        size_t i = 0;
        if (count != 0) ok = tbuf_put(c, &b, w, wn), done++;
        while (ok && i < n) {
            size_t at = i;
            tpl_utf8_next(p, n, &i);
            ok = tbuf_put(c, &b, p + at, i - at);
            if (ok && (count < 0 || done < count)) ok = tbuf_put(c, &b, w, wn), done++;
        }
    } else {
        size_t i = 0;
        while (ok && i < n) {
            const char *h = (count < 0 || done < count) ? memmem(p + i, n - i, o, on) : NULL;
            if (!h) {
                ok = tbuf_put(c, &b, p + i, n - i);
                break;
            }
            ok = tbuf_put(c, &b, p + i, (size_t)(h - p) - i) && tbuf_put(c, &b, w, wn);
            done++;
            i = (size_t)(h - p) + on;
            if (ok && tpl_step(c) < 0) ok = false;
        }
    }
    if (!ok) {
        tbuf_free(c, &b);
        return -1;
    }
    if (tpl_str_from_buf(c, &b, out) < 0) return -1;
    out->markup = s.markup;
    return 0;
}

static int do_split(tctx *c, tval s, const targs *a, bool from_right, tval *out) {
    if (tpl_work(c, s.u.s->len / 64) < 0) return -1;
    static const char *const P[] = {"sep", "maxsplit"};
    tval v[2];
    if (tpl_bind_args(c, from_right ? "rsplit" : "split", P, 2, a, v) < 0) return -1;
    int64_t maxsplit = -1;
    if (tv_given(v[1]) && tpl_want_int(c, v[1], "maxsplit", &maxsplit) < 0) return -1;
    bool ws = !tv_given(v[0]) || v[0].t == TV_NONE;
    if (!ws && tpl_want_str(c, v[0], "sep") < 0) return -1;
    if (!ws && v[0].u.s->len == 0) return tpl_fail(c, "empty separator");
    const char *p = s.u.s->p;
    size_t n = s.u.s->len;
    tlist *l;
    if (tpl_new_list(c, TV_LIST, 0, &l) < 0) return -1;
    *out = tv_obj(TV_LIST, l);
    /* pieces collected as (start, end) byte ranges, in order */
    size_t cap = 16, np = 0;
    size_t(*ranges)[2] = malloc(cap * sizeof *ranges);
    if (!ranges) return tpl_fail(c, "out of memory");
    int64_t splits = 0;
#define ADD_RANGE(x, y)                                                                            \
    do {                                                                                           \
        if (np == cap) {                                                                           \
            cap *= 2;                                                                              \
            void *r2 = realloc(ranges, cap * sizeof *ranges);                                      \
            if (!r2) {                                                                             \
                free(ranges);                                                                      \
                return tpl_fail(c, "out of memory");                                               \
            }                                                                                      \
            ranges = r2;                                                                           \
        }                                                                                          \
        ranges[np][0] = (x);                                                                       \
        ranges[np][1] = (y);                                                                       \
        np++;                                                                                      \
    } while (0)
    if (ws) {
        if (!from_right) {
            size_t i = 0;
            for (;;) {
                while (i < n) { /* skip whitespace */
                    size_t j = i;
                    if (!tpl_cp_isspace(tpl_utf8_next(p, n, &j))) break;
                    i = j;
                }
                if (i >= n) break;
                if (maxsplit >= 0 && splits >= maxsplit) { /* the rest, as it is */
                    ADD_RANGE(i, n);
                    break;
                }
                size_t st = i;
                while (i < n) {
                    size_t j = i;
                    if (tpl_cp_isspace(tpl_utf8_next(p, n, &j))) break;
                    i = j;
                }
                ADD_RANGE(st, i);
                splits++;
            }
        } else {
            size_t i = n;
            for (;;) {
                /* skip trailing whitespace of p[0:i] */
                while (i > 0) {
                    size_t st = i - 1;
                    while (st > 0 && ((unsigned char)p[st] & 0xc0) == 0x80 && i - st < 4) st--;
                    size_t j = st;
                    uint32_t cp = tpl_utf8_next(p, i, &j);
                    if (j != i) st = i - 1, j = st, cp = tpl_utf8_next(p, i, &j);
                    if (!tpl_cp_isspace(cp)) break;
                    i = st;
                }
                if (i == 0) break;
                if (maxsplit >= 0 && splits >= maxsplit) { /* the rest, as it is */
                    ADD_RANGE(0, i);
                    break;
                }
                size_t end = i;
                while (i > 0) {
                    size_t st = i - 1;
                    while (st > 0 && ((unsigned char)p[st] & 0xc0) == 0x80 && i - st < 4) st--;
                    size_t j = st;
                    uint32_t cp = tpl_utf8_next(p, i, &j);
                    if (j != i) st = i - 1, j = st, cp = tpl_utf8_next(p, i, &j);
                    if (tpl_cp_isspace(cp)) break;
                    i = st;
                }
                ADD_RANGE(i, end);
                splits++;
            }
        }
    } else {
        const char *sp = v[0].u.s->p;
        size_t sn = v[0].u.s->len;
        if (!from_right) {
            size_t i = 0;
            for (;;) {
                const char *h =
                    (maxsplit < 0 || splits < maxsplit) ? memmem(p + i, n - i, sp, sn) : NULL;
                if (!h) {
                    ADD_RANGE(i, n);
                    break;
                }
                ADD_RANGE(i, (size_t)(h - p));
                i = (size_t)(h - p) + sn;
                splits++;
            }
        } else {
            size_t end = n;
            for (;;) {
                const char *h =
                    (maxsplit < 0 || splits < maxsplit) ? find_bytes(p, end, sp, sn, true) : NULL;
                if (!h) {
                    ADD_RANGE(0, end);
                    break;
                }
                ADD_RANGE((size_t)(h - p) + sn, end);
                end = (size_t)(h - p);
                splits++;
            }
        }
    }
#undef ADD_RANGE
    for (size_t k = 0; k < np; k++) {
        size_t idx = from_right ? np - 1 - k : k;
        tval piece;
        if (tpl_str_val(c, p + ranges[idx][0], ranges[idx][1] - ranges[idx][0], &piece) < 0 ||
            tpl_push(c, l, piece) < 0) {
            free(ranges);
            return -1;
        }
        l->v[l->n - 1].markup = s.markup;
    }
    free(ranges);
    return 0;
}

int tpl_str_splitlines(tctx *c, tval s, const targs *a, tval *out) {
    static const char *const P[] = {"keepends"};
    tval v[1];
    if (tpl_bind_args(c, "splitlines", P, 1, a, v) < 0) return -1;
    bool keep = tv_given(v[0]) && tpl_truthy(v[0]);
    tlist *l;
    if (tpl_new_list(c, TV_LIST, 0, &l) < 0) return -1;
    *out = tv_obj(TV_LIST, l);
    const char *p = s.u.s->p;
    size_t n = s.u.s->len, i = 0, st = 0;
    while (i < n) {
        size_t at = i;
        uint32_t cp = tpl_utf8_next(p, n, &i);
        bool brk = cp == '\n' || cp == '\r' || cp == 0x0b || cp == 0x0c || cp == 0x1c ||
                   cp == 0x1d || cp == 0x1e || cp == 0x85 || cp == 0x2028 || cp == 0x2029;
        if (!brk) continue;
        if (cp == '\r' && i < n && p[i] == '\n') i++;
        tval piece;
        if (tpl_str_val(c, p + st, (keep ? i : at) - st, &piece) < 0 || tpl_push(c, l, piece) < 0)
            return -1;
        st = i;
    }
    if (st < n) {
        tval piece;
        if (tpl_str_val(c, p + st, n - st, &piece) < 0 || tpl_push(c, l, piece) < 0) return -1;
    }
    return 0;
}

static int do_join_str(tctx *c, tval sep, tval seq, tval *out) {
    tlist *items;
    if (tpl_iterate(c, seq, &items) < 0) return -1;
    tbuf b = {0};
    int rc = 0;
    for (size_t i = 0; i < items->n && rc == 0; i++) {
        tval it = items->v[i];
        if (it.t != TV_STR) {
            rc = tpl_fail(c, "sequence item %zu: expected str instance, %s found", i,
                          tpl_type_name(it.t));
            break;
        }
        if ((i && !tbuf_put(c, &b, sep.u.s->p, sep.u.s->len)) ||
            !tbuf_put(c, &b, it.u.s->p, it.u.s->len))
            rc = -1;
    }
    tpl_obj_decref(c, &items->h);
    if (rc < 0) {
        tbuf_free(c, &b);
        return -1;
    }
    if (tpl_str_from_buf(c, &b, out) < 0) return -1;
    out->markup = sep.markup;
    return 0;
}

int tpl_str_pad(tctx *c, tval s, int64_t width, tval fill, int how, tval *out) {
    /* how: 0 center, 1 ljust, 2 rjust */
    const char *fp = " ";
    size_t fl = 1;
    if (tv_given(fill)) {
        if (fill.t != TV_STR || fill.u.s->ncp != 1)
            return tpl_fail(c, "The fill character must be exactly one character long");
        fp = fill.u.s->p;
        fl = fill.u.s->len;
    }
    int64_t len = (int64_t)s.u.s->ncp;
    if (width <= len) {
        tpl_incref(*out = s);
        return 0;
    }
    if (width > (int64_t)TPL_MAX_OUTPUT) return tpl_fail(c, "the padded string would be too long");
    int64_t marg = width - len, left;
    if (how == 0)
        left = marg / 2 + (marg & width & 1);
    else if (how == 1)
        left = 0;
    else
        left = marg;
    tbuf b = {0};
    bool ok = true;
    for (int64_t i = 0; i < left && ok; i++) ok = tbuf_put(c, &b, fp, fl);
    ok = ok && tbuf_put(c, &b, s.u.s->p, s.u.s->len);
    for (int64_t i = 0; i < marg - left && ok; i++) ok = tbuf_put(c, &b, fp, fl);
    if (!ok) {
        tbuf_free(c, &b);
        return -1;
    }
    if (tpl_str_from_buf(c, &b, out) < 0) return -1;
    out->markup = s.markup;
    return 0;
}

int tpl_str_is(tval s, int m) { /* callers count the work */
    const char *p = s.u.s->p;
    size_t n = s.u.s->len, i = 0;
    if (n == 0) return 0;
    bool any_cased = false, prev_cased = false, title_ok = true;
    while (i < n) {
        uint32_t cp = tpl_utf8_next(p, n, &i);
        bool up = tpl_cp_isupper(cp), lo = tpl_cp_islower(cp);
        switch (m) {
        case M_ISALNUM:
            if (!tpl_cp_isalpha(cp) && !tpl_cp_isdigit(cp)) return 0;
            break;
        case M_ISALPHA:
            if (!tpl_cp_isalpha(cp)) return 0;
            break;
        case M_ISDECIMAL:
        case M_ISDIGIT:
        case M_ISNUMERIC:
            if (!tpl_cp_isdigit(cp) ||
                (m == M_ISDECIMAL && (cp == 0xb2 || cp == 0xb3 || cp == 0xb9)))
                return 0;
            break;
        case M_ISSPACE:
            if (!tpl_cp_isspace(cp)) return 0;
            break;
        case M_ISLOWER:
            if (up) return 0;
            any_cased |= lo;
            break;
        case M_ISUPPER:
            if (lo) return 0;
            any_cased |= up;
            break;
        case M_ISTITLE:
            if (up) {
                if (prev_cased) title_ok = false;
                prev_cased = any_cased = true;
            } else if (lo) {
                if (!prev_cased) title_ok = false;
                prev_cased = any_cased = true;
            } else {
                prev_cased = false;
            }
            break;
        }
    }
    if (m == M_ISLOWER || m == M_ISUPPER) return any_cased;
    if (m == M_ISTITLE) return any_cased && title_ok;
    return 1;
}

/* &, <, >, ', " escaped as markupsafe does. */
int tpl_html_escape(tctx *c, tval v, tval *out) {
    if (v.t == TV_STR && v.markup) {
        tpl_incref(*out = v);
        return 0;
    }
    tval s;
    if (tpl_to_str(c, v, &s) < 0) return -1;
    tbuf b = {0};
    bool ok = true;
    for (size_t i = 0; i < s.u.s->len && ok; i++) {
        char ch = s.u.s->p[i];
        switch (ch) {
        case '&':
            ok = tbuf_puts(c, &b, "&amp;");
            break;
        case '<':
            ok = tbuf_puts(c, &b, "&lt;");
            break;
        case '>':
            ok = tbuf_puts(c, &b, "&gt;");
            break;
        case '\'':
            ok = tbuf_puts(c, &b, "&#39;");
            break;
        case '"':
            ok = tbuf_puts(c, &b, "&#34;");
            break;
        default:
            ok = tbuf_putc(c, &b, ch);
        }
    }
    tpl_decref(c, s);
    if (!ok) {
        tbuf_free(c, &b);
        return -1;
    }
    if (tpl_str_from_buf(c, &b, out) < 0) return -1;
    out->markup = 1;
    return 0;
}

/* ---- Python's str % args ---- */

static int fmt_number(tctx *c, tbuf *b, char conv, const char *flags, int width, int prec, tval v) {
    char tmp[700];
    if (width > 512) width = 512;
    if (prec > 100) prec = 100;
    if (strchr("diuxXo", conv)) {
        int64_t i;
        if (v.t == TV_FLOAT) {
            if (!isfinite(v.u.f) || fabs(v.u.f) >= 9.2e18)
                return tpl_fail(c, "cannot convert float %s to integer",
                                isnan(v.u.f) ? "NaN" : "infinity");
            i = (int64_t)v.u.f;
        } else if (v.t == TV_INT || v.t == TV_BOOL) {
            i = tv_num_i(v);
        } else {
            return tpl_fail(c, "%%%c format: %s is required, not %s", conv,
                            strchr("diu", conv) ? "a real number" : "an integer",
                            tpl_type_name(v.t));
        }
        int base = conv == 'x' || conv == 'X' ? 16 : conv == 'o' ? 8 : 10;
        const char *dg = conv == 'X' ? "0123456789ABCDEF" : "0123456789abcdef";
        uint64_t mag = i < 0 ? -(uint64_t)i : (uint64_t)i;
        char rev[80];
        int nd = 0;
        do {
            rev[nd++] = dg[mag % (uint64_t)base];
            mag /= (uint64_t)base;
        } while (mag);
        char prefix[4];
        int np = 0;
        if (i < 0)
            prefix[np++] = '-';
        else if (strchr(flags, '+'))
            prefix[np++] = '+';
        else if (strchr(flags, ' '))
            prefix[np++] = ' ';
        if (strchr(flags, '#') && base != 10) {
            prefix[np++] = '0';
            prefix[np++] = conv == 'o' ? 'o' : conv;
        }
        int zeros = prec > nd ? prec - nd : 0, len = np + zeros + nd;
        int pad = width > len ? width - len : 0;
        bool left = strchr(flags, '-') != NULL, zero = strchr(flags, '0') && !left;
        int k = 0;
        for (int q = 0; !left && !zero && q < pad; q++) tmp[k++] = ' ';
        memcpy(tmp + k, prefix, (size_t)np);
        k += np;
        for (int q = 0; zero && q < pad; q++) tmp[k++] = '0';
        for (int q = 0; q < zeros; q++) tmp[k++] = '0';
        while (nd) tmp[k++] = rev[--nd];
        for (int q = 0; left && q < pad; q++) tmp[k++] = ' ';
        return tbuf_put(c, b, tmp, (size_t)k) ? 0 : -1;
    }
    double f;
    if (tv_is_num(v))
        f = tv_num_f(v);
    else
        return tpl_fail(c, "must be real number, not %s", tpl_type_name(v.t));
    char spec[40];
    int k = 0;
    spec[k++] = '%';
    for (const char *fl = flags; *fl; fl++) spec[k++] = *fl;
    if (width >= 0) k += snprintf(spec + k, sizeof spec - (size_t)k, "%d", width);
    if (prec >= 0) k += snprintf(spec + k, sizeof spec - (size_t)k, ".%d", prec);
    spec[k++] = conv;
    spec[k] = 0;
    snprintf(tmp, sizeof tmp, spec, f);
    return tbuf_puts(c, b, tmp) ? 0 : -1;
}

static int pad_text(tctx *c, tbuf *b, const char *s, size_t n, size_t ncp, int width, bool left) {
    size_t pad = width > 0 && (size_t)width > ncp ? (size_t)width - ncp : 0;
    if (!left)
        for (size_t i = 0; i < pad; i++)
            if (!tbuf_putc(c, b, ' ')) return -1;
    if (!tbuf_put(c, b, s, n)) return -1;
    if (left)
        for (size_t i = 0; i < pad; i++)
            if (!tbuf_putc(c, b, ' ')) return -1;
    return 0;
}

int tpl_percent_format(tctx *c, tval fmt, tval args, tval *out) {
    const char *p = fmt.u.s->p;
    size_t n = fmt.u.s->len;
    const tval *argv = &args;
    size_t argc = 1, next = 0;
    /* Python treats any non-tuple, non-str argument with __getitem__ as a
     * mapping: no "not all arguments converted" error for it */
    bool mapping = args.t == TV_DICT || args.t == TV_LIST || args.t == TV_UNDEF ||
                   (args.t == TV_ITER && ((titer *)args.u.o)->kind == IT_RANGE);
    if (args.t == TV_TUPLE) {
        argv = args.u.l->v;
        argc = args.u.l->n;
    }
    tbuf b = {0};
    int rc = 0;
    for (size_t i = 0; i < n && rc == 0;) {
        if (p[i] != '%') {
            size_t j = i;
            while (j < n && p[j] != '%') j++;
            if (!tbuf_put(c, &b, p + i, j - i)) rc = -1;
            i = j;
            continue;
        }
        i++;
        if (i >= n) {
            rc = tpl_fail(c, "incomplete format");
            break;
        }
        tval arg = tv_absent();
        if (p[i] == '(') {
            size_t j = i + 1;
            int depth = 1;
            while (j < n && depth) {
                if (p[j] == '(')
                    depth++;
                else if (p[j] == ')')
                    depth--;
                if (depth) j++;
            }
            if (j >= n) {
                rc = tpl_fail(c, "incomplete format key");
                break;
            }
            if (args.t == TV_UNDEF) {
                rc = tpl_fail_undef(c, args);
                break;
            }
            if (args.t != TV_DICT) {
                rc = mapping ? tpl_fail(c, "%s indices must be integers or slices, not str",
                                        tpl_val_type_name(args))
                             : tpl_fail(c, "format requires a mapping");
                break;
            }
            tval *v = tpl_dict_get_str(args.u.d, p + i + 1, j - i - 1);
            if (!v) {
                rc = tpl_fail(c, "KeyError: '%.*s'", (int)(j - i - 1), p + i + 1);
                break;
            }
            arg = *v;
            i = j + 1;
        }
        char flags[8] = {0};
        int nf = 0;
        while (i < n && strchr("-+ #0", p[i])) {
            if (nf < 7 && !strchr(flags, p[i])) flags[nf++] = p[i];
            i++;
        }
        int width = -1, prec = -1;
        if (i < n && p[i] == '*') {
            rc = tpl_fail(c, "* widths are not supported in %% formatting");
            break;
        }
        while (i < n && p[i] >= '0' && p[i] <= '9')
            width = (width < 0 ? 0 : width) * 10 + (p[i++] - '0'),
            width = width > 100000 ? 100000 : width;
        if (i < n && p[i] == '.') {
            i++;
            prec = 0;
            while (i < n && p[i] >= '0' && p[i] <= '9')
                prec = prec * 10 + (p[i++] - '0'), prec = prec > 100000 ? 100000 : prec;
        }
        while (i < n && (p[i] == 'l' || p[i] == 'h' || p[i] == 'L')) i++;
        if (i >= n) {
            rc = tpl_fail(c, "incomplete format");
            break;
        }
        char conv = p[i++];
        if (conv == '%') {
            if (!tbuf_putc(c, &b, '%')) rc = -1;
            continue;
        }
        if (arg.t == TV_ABSENT) {
            if (next >= argc) {
                rc = tpl_fail(c, "not enough arguments for format string");
                break;
            } else {
                arg = argv[next++];
            }
        }
        tval conv_arg = arg;
        tval escaped = tv_none();
        if (fmt.markup && (conv == 's' || conv == 'r' || conv == 'a')) {
            /* Markup % args escapes each argument's text */
            tval s;
            if (conv == 's')
                rc = tpl_to_str(c, arg, &s);
            else {
                tbuf rb = {0};
                rc = tpl_append_repr(c, &rb, arg) ? tpl_str_from_buf(c, &rb, &s)
                                                  : (tbuf_free(c, &rb), -1);
            }
            if (rc < 0) break;
            rc = tpl_html_escape(c, s, &escaped);
            tpl_decref(c, s);
            if (rc < 0) break;
            conv_arg = escaped;
            conv = 's';
        }
        switch (conv) {
        case 's':
        case 'r':
        case 'a': {
            tbuf sb = {0};
            bool ok =
                conv == 's' ? tpl_append_str(c, &sb, conv_arg) : tpl_append_repr(c, &sb, conv_arg);
            if (!ok) {
                tbuf_free(c, &sb);
                rc = -1;
                break;
            }
            size_t len = sb.len;
            if (prec >= 0) len = tpl_utf8_offset(sb.p ? sb.p : "", sb.len, (size_t)prec);
            rc = pad_text(c, &b, sb.p ? sb.p : "", len, tpl_utf8_count(sb.p ? sb.p : "", len),
                          width, strchr(flags, '-') != NULL);
            tbuf_free(c, &sb);
            break;
        }
        case 'c': {
            char enc[4];
            size_t m;
            if (conv_arg.t == TV_STR && conv_arg.u.s->ncp == 1) {
                rc = pad_text(c, &b, conv_arg.u.s->p, conv_arg.u.s->len, 1, width,
                              strchr(flags, '-') != NULL);
                break;
            }
            if (conv_arg.t != TV_INT || conv_arg.u.i < 0 || conv_arg.u.i > 0x10ffff) {
                rc = tpl_fail(c, "%%c requires an int or a unicode character");
                break;
            }
            m = tpl_utf8_put(enc, (uint32_t)conv_arg.u.i);
            rc = pad_text(c, &b, enc, m, 1, width, strchr(flags, '-') != NULL);
            break;
        }
        case 'd':
        case 'i':
        case 'u':
        case 'o':
        case 'x':
        case 'X':
        case 'e':
        case 'E':
        case 'f':
        case 'F':
        case 'g':
        case 'G':
            if (conv_arg.t == TV_UNDEF) {
                rc = tpl_fail_undef(c, conv_arg);
                break;
            }
            rc = fmt_number(c, &b, conv, flags, width, prec, conv_arg);
            break;
        default:
            rc = tpl_fail(c, "unsupported format character '%c' (0x%x)", conv, (unsigned char)conv);
        }
        tpl_decref(c, escaped);
    }
    if (rc == 0 && !mapping && next < argc)
        rc = tpl_fail(c, "not all arguments converted during string formatting");
    if (rc < 0) {
        tbuf_free(c, &b);
        return -1;
    }
    if (tpl_str_from_buf(c, &b, out) < 0) return -1;
    out->markup = fmt.markup;
    return 0;
}

/* ---- str.format ---- */

static int format_value(tctx *c, tbuf *b, tval v, const char *spec, size_t sn) {
    if (sn == 0) return tpl_append_str(c, b, v) ? 0 : -1;
    /* [[fill]align][sign][#][0][width][,_][.precision][type] */
    size_t i = 0;
    uint32_t fill = ' ';
    char align = 0;
    size_t j = 0;
    uint32_t first = tpl_utf8_next(spec, sn, &j);
    if (j < sn && strchr("<>=^", spec[j])) {
        fill = first;
        align = spec[j];
        i = j + 1;
    } else if (strchr("<>=^", spec[0])) {
        align = spec[0];
        i = 1;
    }
    char sign = 0;
    if (i < sn && strchr("+- ", spec[i])) sign = spec[i++];
    bool alt = false;
    if (i < sn && spec[i] == '#') alt = true, i++;
    if (i < sn && spec[i] == '0') { /* zero padding: fill '0' after the sign */
        if (!align) fill = '0', align = '=';
        i++;
    }
    int width = 0, prec = -1;
    while (i < sn && spec[i] >= '0' && spec[i] <= '9')
        width = width * 10 + (spec[i++] - '0'), width = width > 100000 ? 100000 : width;
    char group = 0;
    if (i < sn && (spec[i] == ',' || spec[i] == '_')) group = spec[i++];
    if (i < sn && spec[i] == '.') {
        i++;
        prec = 0;
        while (i < sn && spec[i] >= '0' && spec[i] <= '9')
            prec = prec * 10 + (spec[i++] - '0'), prec = prec > 100 ? 100 : prec;
    }
    char type = i < sn ? spec[i++] : 0;
    if (i < sn) return tpl_fail(c, "Invalid format specifier '%.*s'", (int)sn, spec);
    tbuf body = {0};
    int rc = 0;
    bool numeric = v.t == TV_INT || v.t == TV_FLOAT || v.t == TV_BOOL;
    if (v.t == TV_STR) {
        if (type && type != 's')
            return tpl_fail(c, "Unknown format code '%c' for object of type 'str'", type);
        size_t len = prec >= 0 ? tpl_utf8_offset(v.u.s->p, v.u.s->len, (size_t)prec) : v.u.s->len;
        if (!tbuf_put(c, &body, v.u.s->p, len)) rc = -1;
        if (!align) align = '<';
    } else if (numeric) {
        char tmp[1024];
        bool is_float = v.t == TV_FLOAT || (type && strchr("eEfFgG%", type));
        if (!is_float) {
            int64_t x = v.t == TV_INT ? v.u.i : v.u.b;
            if (type && !strchr("dbcoxXn", type))
                return tpl_fail(c, "Unknown format code '%c' for object of type 'int'", type);
            uint64_t mag = x < 0 ? -(uint64_t)x : (uint64_t)x;
            char digits[80];
            int nd = 0;
            if (type == 'c') {
                nd = (int)tpl_utf8_put(digits, (uint32_t)x);
            } else {
                int base = type == 'b'                    ? 2
                           : type == 'o'                  ? 8
                           : (type == 'x' || type == 'X') ? 16
                                                          : 10;
                const char *dg = type == 'X' ? "0123456789ABCDEF" : "0123456789abcdef";
                char rev[80];
                int nr = 0, cnt = 0;
                do {
                    if (group && cnt && cnt % (base == 10 ? 3 : 4) == 0) rev[nr++] = group;
                    rev[nr++] = dg[mag % (uint64_t)base];
                    mag /= (uint64_t)base;
                    cnt++;
                } while (mag && nr < 78);
                while (nr) digits[nd++] = rev[--nr];
            }
            int k = 0;
            if (x < 0)
                tmp[k++] = '-';
            else if (sign == '+')
                tmp[k++] = '+';
            else if (sign == ' ')
                tmp[k++] = ' ';
            if (alt && type && strchr("boxX", type)) {
                tmp[k++] = '0';
                tmp[k++] = type == 'X' ? 'X' : type;
            }
            memcpy(tmp + k, digits, (size_t)nd);
            tmp[k + nd] = 0;
        } else {
            double f = v.t == TV_FLOAT ? v.u.f : v.t == TV_INT ? (double)v.u.i : v.u.b;
            char t = type ? type : 0;
            char cfmt[32];
            if (t == '%') {
                f *= 100;
                snprintf(cfmt, sizeof cfmt, "%%%s%s.%df%%%%",
                         sign == '+'   ? "+"
                         : sign == ' ' ? " "
                                       : "",
                         alt ? "#" : "", prec < 0 ? 6 : prec);
                snprintf(tmp, sizeof tmp, cfmt, f);
            } else if (!t && prec < 0) {
                tpl_float_repr(f, tmp);
                if (sign && f >= 0) {
                    memmove(tmp + 1, tmp, strlen(tmp) + 1);
                    tmp[0] = sign == '+' ? '+' : ' ';
                }
            } else {
                char ct = t ? t : 'g';
                int pr = prec < 0 ? 6 : prec;
                if (!t && pr == 0) pr = 1;
                snprintf(cfmt, sizeof cfmt, "%%%s%s.%d%c",
                         sign == '+'   ? "+"
                         : sign == ' ' ? " "
                                       : "",
                         alt ? "#" : "", pr, ct == 'n' ? 'g' : ct);
                snprintf(tmp, sizeof tmp, cfmt, f);
                if (!t && !strpbrk(tmp, ".eEn")) strcat(tmp, ".0"); /* format(1.0, ".3") is "1.0" */
            }
            if (group && !strpbrk(tmp, "eE")) {
                /* insert separators into the integer part */
                char *d0 = tmp;
                while (*d0 && (*d0 < '0' || *d0 > '9')) d0++;
                char *d1 = d0;
                while (*d1 >= '0' && *d1 <= '9') d1++;
                int nd = (int)(d1 - d0);
                char out2[1024];
                int w = (int)(d0 - tmp);
                memcpy(out2, tmp, (size_t)w);
                for (int q = 0; q < nd; q++) {
                    if (q && (nd - q) % 3 == 0) out2[w++] = group;
                    out2[w++] = d0[q];
                }
                snprintf(out2 + w, sizeof out2 - (size_t)w, "%s", d1);
                snprintf(tmp, sizeof tmp, "%s", out2);
            }
        }
        if (!tbuf_puts(c, &body, tmp)) rc = -1;
        if (!align) align = '>';
    } else {
        return tpl_fail(c, "unsupported format string passed to %s.__format__", tpl_type_name(v.t));
    }
    if (rc < 0) {
        tbuf_free(c, &body);
        return -1;
    }
    size_t ncp = tpl_utf8_count(body.p ? body.p : "", body.len);
    size_t pad = (size_t)width > ncp ? (size_t)width - ncp : 0;
    size_t left = align == '<' ? 0 : align == '^' ? pad / 2 : align == '=' ? 0 : pad;
    char fe[4];
    size_t fl = tpl_utf8_put(fe, fill);
    size_t signlen = 0;
    if (align == '=' && body.len && strchr("+- ", body.p[0])) signlen = 1;
    if (align == '=' && body.len > signlen + 1 && body.p[signlen] == '0' &&
        strchr("bBoxX", body.p[signlen + 1]))
        signlen += 2;
    bool ok = tbuf_put(c, b, body.p ? body.p : "", signlen);
    for (size_t k = 0; k < (align == '=' ? pad : left) && ok; k++) ok = tbuf_put(c, b, fe, fl);
    ok = ok && tbuf_put(c, b, body.p ? body.p + signlen : "", body.len - signlen);
    for (size_t k = 0; align != '=' && k < pad - left && ok; k++) ok = tbuf_put(c, b, fe, fl);
    tbuf_free(c, &body);
    return ok ? 0 : -1;
}

static int str_format(tctx *c, tval fmt, const targs *a, tval *out) {
    const char *p = fmt.u.s->p;
    size_t n = fmt.u.s->len;
    tbuf b = {0};
    int rc = 0, autonum = 0; /* autonum: 0 unknown, 1 auto, 2 manual */
    uint32_t next = 0;
    for (size_t i = 0; i < n && rc == 0;) {
        char ch = p[i];
        if (ch == '}') {
            if (i + 1 < n && p[i + 1] == '}') {
                rc = tbuf_putc(c, &b, '}') ? 0 : -1;
                i += 2;
                continue;
            }
            rc = tpl_fail(c, "Single '}' encountered in format string");
            break;
        }
        if (ch != '{') {
            size_t j = i;
            while (j < n && p[j] != '{' && p[j] != '}') j++;
            rc = tbuf_put(c, &b, p + i, j - i) ? 0 : -1;
            i = j;
            continue;
        }
        if (i + 1 < n && p[i + 1] == '{') {
            rc = tbuf_putc(c, &b, '{') ? 0 : -1;
            i += 2;
            continue;
        }
        /* a field: find its end, allowing one level of nested {} in the spec */
        size_t j = i + 1;
        int depth = 1;
        while (j < n && depth) {
            if (p[j] == '{')
                depth++;
            else if (p[j] == '}')
                depth--;
            if (depth) j++;
        }
        if (j >= n) {
            rc = tpl_fail(c, "expected '}' before end of string");
            break;
        }
        const char *f = p + i + 1;
        size_t fn = j - i - 1;
        i = j + 1;
        size_t k = 0;
        while (k < fn && f[k] != '.' && f[k] != '[' && f[k] != '!' && f[k] != ':') k++;
        tval v;
        if (k == 0) {
            if (autonum == 2) {
                rc = tpl_fail(
                    c,
                    "cannot switch from manual field specification to automatic field numbering");
                break;
            }
            autonum = 1;
            if (next >= a->npos) {
                rc = tpl_fail(c, "Replacement index %u out of range for positional args tuple",
                              next);
                break;
            }
            v = a->pos[next++];
        } else if (f[0] >= '0' && f[0] <= '9') {
            if (autonum == 1) {
                rc = tpl_fail(
                    c,
                    "cannot switch from automatic field numbering to manual field specification");
                break;
            }
            autonum = 2;
            uint32_t idx = 0;
            for (size_t q = 0; q < k; q++) idx = idx * 10 + (uint32_t)(f[q] - '0');
            if (idx >= a->npos) {
                rc =
                    tpl_fail(c, "Replacement index %u out of range for positional args tuple", idx);
                break;
            }
            v = a->pos[idx];
        } else {
            uint32_t q = 0;
            while (q < a->nkw && !(a->kwn[q]->len == k && memcmp(a->kwn[q]->p, f, k) == 0)) q++;
            if (q == a->nkw) {
                rc = tpl_fail(c, "KeyError: '%.*s'", (int)k, f);
                break;
            }
            v = a->kwv[q];
        }
        tpl_incref(v);
        while (k < fn && (f[k] == '.' || f[k] == '[') && rc == 0) {
            tval nv;
            if (f[k] == '.') {
                size_t e = k + 1;
                while (e < fn && f[e] != '.' && f[e] != '[' && f[e] != '!' && f[e] != ':') e++;
                tval key;
                if ((rc = tpl_str_val(c, f + k + 1, e - k - 1, &key)) < 0) break;
                rc = tpl_getattr(c, v, key.u.s, tpl_method_id(key.u.s->p, key.u.s->len), &nv);
                tpl_decref(c, key);
                k = e;
            } else {
                size_t e = k + 1;
                while (e < fn && f[e] != ']') e++;
                tval key;
                bool digits = e > k + 1;
                for (size_t q = k + 1; q < e; q++) digits = digits && f[q] >= '0' && f[q] <= '9';
                if (digits)
                    key = tv_int(strtoll(f + k + 1, NULL, 10));
                else if ((rc = tpl_str_val(c, f + k + 1, e - k - 1, &key)) < 0)
                    break;
                rc = tpl_getitem(c, v, key, &nv);
                tpl_decref(c, key);
                k = e + 1;
            }
            tpl_decref(c, v);
            v = nv;
        }
        if (rc < 0) break;
        char conv = 0;
        if (k < fn && f[k] == '!') {
            conv = k + 1 < fn ? f[k + 1] : 0;
            k += 2;
        }
        const char *spec = k < fn && f[k] == ':' ? f + k + 1 : "";
        size_t sn = k < fn && f[k] == ':' ? fn - k - 1 : 0;
        tval shown = v;
        tval made = tv_none();
        if (conv == 'r' || conv == 'a' || conv == 's') {
            tbuf rb = {0};
            bool ok = conv == 's' ? tpl_append_str(c, &rb, v) : tpl_append_repr(c, &rb, v);
            if (!ok || tpl_str_from_buf(c, &rb, &made) < 0) {
                tbuf_free(c, &rb);
                tpl_decref(c, v);
                rc = -1;
                break;
            }
            shown = made;
        }
        if (fmt.markup) {
            tval esc;
            tval src = shown;
            tbuf sb = {0};
            if (format_value(c, &sb, src, spec, sn) < 0 || tpl_str_from_buf(c, &sb, &esc) < 0)
                rc = -1;
            else {
                tval e2;
                if (tpl_html_escape(c, esc, &e2) < 0)
                    rc = -1;
                else {
                    rc = tbuf_put(c, &b, e2.u.s->p, e2.u.s->len) ? 0 : -1;
                    tpl_decref(c, e2);
                }
                tpl_decref(c, esc);
            }
        } else {
            rc = format_value(c, &b, shown, spec, sn);
        }
        tpl_decref(c, made);
        tpl_decref(c, v);
    }
    if (rc < 0) {
        tbuf_free(c, &b);
        return -1;
    }
    if (tpl_str_from_buf(c, &b, out) < 0) return -1;
    out->markup = fmt.markup;
    return 0;
}

/* ---- str methods ---- */

int tpl_str_method(tctx *c, tval s, int id, const targs *a, tval *out) {
    tval v[3];
    const char *mn = tpl_method_name(id);
    switch (id) {
    case M_UPPER:
    case M_LOWER:
    case M_CASEFOLD:
    case M_SWAPCASE:
    case M_CAPITALIZE:
    case M_TITLE:
        if (tpl_no_args(c, mn, a) < 0) return -1;
        return tpl_str_case(c, s,
                            id == M_UPPER        ? CASE_UPPER
                            : id == M_SWAPCASE   ? CASE_SWAP
                            : id == M_CAPITALIZE ? CASE_CAPITALIZE
                            : id == M_TITLE      ? CASE_TITLE
                                                 : CASE_LOWER,
                            out);
    case M_STRIP:
    case M_LSTRIP:
    case M_RSTRIP: {
        static const char *const P[] = {"chars"};
        if (tpl_bind_args(c, mn, P, 1, a, v) < 0) return -1;
        return tpl_str_strip(c, s, v[0], id != M_RSTRIP, id != M_LSTRIP, out);
    }
    case M_SPLIT:
        return do_split(c, s, a, false, out);
    case M_RSPLIT:
        return do_split(c, s, a, true, out);
    case M_SPLITLINES:
        return tpl_str_splitlines(c, s, a, out);
    case M_STARTSWITH:
        return do_startswith(c, s, a, false, out);
    case M_ENDSWITH:
        return do_startswith(c, s, a, true, out);
    case M_FIND:
        return do_find(c, s, a, false, false, out);
    case M_RFIND:
        return do_find(c, s, a, true, false, out);
    case M_INDEX:
        return do_find(c, s, a, false, true, out);
    case M_RINDEX:
        return do_find(c, s, a, true, true, out);
    case M_COUNT:
        return do_str_count(c, s, a, out);
    case M_REPLACE: {
        static const char *const P[] = {"old", "new", "count"};
        if (tpl_bind_args(c, mn, P, 3, a, v) < 0) return -1;
        if (!tv_given(v[0]) || !tv_given(v[1]))
            return tpl_fail(c, "replace expected at least 2 arguments");
        if (tpl_want_str(c, v[0], "replace() argument 1") < 0 ||
            tpl_want_str(c, v[1], "replace() argument 2") < 0)
            return -1;
        int64_t count = -1;
        if (tv_given(v[2]) && tpl_want_int(c, v[2], "count", &count) < 0) return -1;
        tval nw = v[1], esc = tv_none();
        if (s.markup && !v[1].markup) {
            if (tpl_html_escape(c, v[1], &esc) < 0) return -1;
            nw = esc;
        }
        int rc = tpl_str_replace(c, s, v[0], nw, count, out);
        tpl_decref(c, esc);
        return rc;
    }
    case M_JOIN:
        if (a->npos != 1 || a->nkw) return tpl_fail(c, "join() takes exactly one argument");
        if (s.markup) {
            /* Markup.join escapes the items */
            tlist *items, *esc;
            if (tpl_iterate(c, a->pos[0], &items) < 0) return -1;
            int rc = tpl_new_list(c, TV_LIST, items->n, &esc);
            for (size_t i = 0; i < items->n && rc == 0; i++) {
                tval e;
                if ((rc = tpl_html_escape(c, items->v[i], &e)) == 0) rc = tpl_push(c, esc, e);
            }
            tpl_obj_decref(c, &items->h);
            if (rc < 0) return -1;
            tval ev = tv_obj(TV_LIST, esc);
            rc = do_join_str(c, s, ev, out);
            tpl_decref(c, ev);
            return rc;
        }
        return do_join_str(c, s, a->pos[0], out);
    case M_FORMAT:
        return str_format(c, s, a, out);
    case M_CENTER:
    case M_LJUST:
    case M_RJUST: {
        static const char *const P[] = {"width", "fillchar"};
        if (tpl_bind_args(c, mn, P, 2, a, v) < 0) return -1;
        int64_t w = 0;
        if (!tv_given(v[0])) return tpl_fail(c, "%s expected at least 1 argument, got 0", mn);
        if (tpl_want_int(c, v[0], "width", &w) < 0) return -1;
        return tpl_str_pad(c, s, w, v[1], id == M_CENTER ? 0 : id == M_LJUST ? 1 : 2, out);
    }
    case M_ZFILL: {
        int64_t w = 0;
        if (a->npos != 1 || tpl_want_int(c, a->pos[0], "width", &w) < 0)
            return a->npos != 1 ? tpl_fail(c, "zfill() takes exactly one argument") : -1;
        int64_t len = (int64_t)s.u.s->ncp;
        if (w <= len) {
            tpl_incref(*out = s);
            return 0;
        }
        if (w > (int64_t)TPL_MAX_OUTPUT) return tpl_fail(c, "the padded string would be too long");
        tbuf b = {0};
        bool sign = s.u.s->len && (s.u.s->p[0] == '+' || s.u.s->p[0] == '-');
        bool ok = !sign || tbuf_putc(c, &b, s.u.s->p[0]);
        for (int64_t i = 0; i < w - len && ok; i++) ok = tbuf_putc(c, &b, '0');
        ok = ok && tbuf_put(c, &b, s.u.s->p + sign, s.u.s->len - sign);
        if (!ok) {
            tbuf_free(c, &b);
            return -1;
        }
        return tpl_str_from_buf(c, &b, out);
    }
    case M_PARTITION:
    case M_RPARTITION: {
        if (a->npos != 1 || a->nkw) return tpl_fail(c, "%s() takes exactly one argument", mn);
        if (tpl_want_str(c, a->pos[0], "separator") < 0) return -1;
        if (!a->pos[0].u.s->len) return tpl_fail(c, "empty separator");
        const char *h = find_bytes(s.u.s->p, s.u.s->len, a->pos[0].u.s->p, a->pos[0].u.s->len,
                                   id == M_RPARTITION);
        tlist *t = tpl_list(c, TV_TUPLE, 3);
        if (!t) return -1;
        *out = tv_obj(TV_TUPLE, t);
        size_t sl = a->pos[0].u.s->len;
        size_t cut = h ? (size_t)(h - s.u.s->p) : (id == M_RPARTITION ? 0 : s.u.s->len);
        size_t r0a = 0, r0b = h ? cut : (id == M_RPARTITION ? 0 : s.u.s->len);
        size_t r2a = h ? cut + sl : (id == M_RPARTITION ? 0 : s.u.s->len), r2b = s.u.s->len;
        if (sub_str(c, s, r0a, r0b, &t->v[0]) < 0) return -1;
        t->n++;
        if (h)
            tpl_incref(t->v[1] = a->pos[0]);
        else if (tpl_str_val(c, "", 0, &t->v[1]) < 0)
            return -1;
        t->n++;
        if (sub_str(c, s, r2a, r2b, &t->v[2]) < 0) return -1;
        t->n++;
        return 0;
    }
    case M_REMOVEPREFIX:
    case M_REMOVESUFFIX: {
        if (a->npos != 1 || a->nkw) return tpl_fail(c, "%s() takes exactly one argument", mn);
        if (tpl_want_str(c, a->pos[0], mn) < 0) return -1;
        size_t pl = a->pos[0].u.s->len, n = s.u.s->len;
        bool pre = id == M_REMOVEPREFIX;
        if (pl <= n && memcmp(s.u.s->p + (pre ? 0 : n - pl), a->pos[0].u.s->p, pl) == 0)
            return sub_str(c, s, pre ? pl : 0, pre ? n : n - pl, out);
        tpl_incref(*out = s);
        return 0;
    }
    default:
        if (tpl_no_args(c, mn, a) < 0 || tpl_work(c, s.u.s->len / 16) < 0) return -1;
        *out = tv_bool(tpl_str_is(s, id));
        return 0;
    }
}
