/* template_filters.c - jinja2's filters (with transformers' tojson) and
 * tests, including the generators that map, select, reject, unique, items,
 * batch and slice return.
 *
 * Contract. A filter or test takes its value and arguments borrowed and
 * returns a new reference (or -1 with the render's error set), with
 * jinja2's semantics: sort is stable and case-insensitive by default,
 * tojson is json.dumps(ensure_ascii=False) with Python's separators, the
 * generator filters run only when something consumes them (so a filter
 * that is never read never fails). Filters jinja2 has but chat templates do
 * not use (urlize, wordwrap, pprint, random, xmlattr) fail with a message
 * saying so rather than render something different.
 */
#include <errno.h>
#include <inttypes.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "template_internal.h"

/* ---- names ---- */

enum {
    F_ABS,
    F_ATTR,
    F_BATCH,
    F_CAPITALIZE,
    F_CENTER,
    F_COUNT,
    F_D,
    F_DEFAULT,
    F_DICTSORT,
    F_E,
    F_ESCAPE,
    F_FILESIZEFORMAT,
    F_FIRST,
    F_FLOAT,
    F_FORCEESCAPE,
    F_FORMAT,
    F_GROUPBY,
    F_INDENT,
    F_INT,
    F_JOIN,
    F_LAST,
    F_LENGTH,
    F_LIST,
    F_LOWER,
    F_ITEMS,
    F_MAP,
    F_MIN,
    F_MAX,
    F_PPRINT,
    F_RANDOM,
    F_REJECT,
    F_REJECTATTR,
    F_REPLACE,
    F_REVERSE,
    F_ROUND,
    F_SAFE,
    F_SELECT,
    F_SELECTATTR,
    F_SLICE,
    F_SORT,
    F_STRING,
    F_STRIPTAGS,
    F_SUM,
    F_TITLE,
    F_TRIM,
    F_TRUNCATE,
    F_UNIQUE,
    F_UPPER,
    F_URLENCODE,
    F_URLIZE,
    F_WORDCOUNT,
    F_WORDWRAP,
    F_XMLATTR,
    F_TOJSON,
    F_COUNT_
};
static const char *const FILTERS[F_COUNT_] = {
    "abs",       "attr",       "batch",       "capitalize", "center",  "count",
    "d",         "default",    "dictsort",    "e",          "escape",  "filesizeformat",
    "first",     "float",      "forceescape", "format",     "groupby", "indent",
    "int",       "join",       "last",        "length",     "list",    "lower",
    "items",     "map",        "min",         "max",        "pprint",  "random",
    "reject",    "rejectattr", "replace",     "reverse",    "round",   "safe",
    "select",    "selectattr", "slice",       "sort",       "string",  "striptags",
    "sum",       "title",      "trim",        "truncate",   "unique",  "upper",
    "urlencode", "urlize",     "wordcount",   "wordwrap",   "xmlattr", "tojson"};

enum {
    T_ODD,
    T_EVEN,
    T_DIVISIBLEBY,
    T_DEFINED,
    T_UNDEFINED,
    T_FILTER,
    T_TEST,
    T_NONE,
    T_BOOLEAN,
    T_FALSE,
    T_TRUE,
    T_INTEGER,
    T_FLOAT,
    T_LOWER,
    T_UPPER,
    T_STRING,
    T_MAPPING,
    T_NUMBER,
    T_SEQUENCE,
    T_ITERABLE,
    T_CALLABLE,
    T_SAMEAS,
    T_ESCAPED,
    T_IN,
    T_EQ,
    T_EQ2,
    T_EQUALTO,
    T_NE,
    T_NE2,
    T_GT,
    T_GT2,
    T_GREATERTHAN,
    T_GE,
    T_GE2,
    T_LT,
    T_LT2,
    T_LESSTHAN,
    T_LE,
    T_LE2,
    T_COUNT_
};
static const char *const TESTS[T_COUNT_] = {
    "odd",     "even",   "divisibleby", "defined",  "undefined", "filter", "test",    "none",
    "boolean", "false",  "true",        "integer",  "float",     "lower",  "upper",   "string",
    "mapping", "number", "sequence",    "iterable", "callable",  "sameas", "escaped", "in",
    "==",      "eq",     "equalto",     "!=",       "ne",        ">",      "gt",      "greaterthan",
    "ge",      ">=",     "<",           "lt",       "lessthan",  "<=",     "le"};

int tpl_filter_id(const char *name, size_t len) {
    return tpl_name_index(FILTERS, F_COUNT_, name, len);
}
int tpl_test_id(const char *name, size_t len) {
    return tpl_name_index(TESTS, T_COUNT_, name, len);
}

/* ---- sorting ---- */

typedef struct skey {
    tval key;
    size_t idx;
} skey;

/* Stable merge sort of keys by Python's <; reverse keeps ties in order. */
static int sort_keys(tctx *c, skey *v, size_t n, bool reverse) {
    skey *tmp = malloc((n ? n : 1) * sizeof *tmp);
    if (!tmp) return tpl_fail(c, "out of memory");
    for (size_t w = 1; w < n; w *= 2) {
        for (size_t lo = 0; lo < n; lo += 2 * w) {
            size_t mid = lo + w < n ? lo + w : n, hi = lo + 2 * w < n ? lo + 2 * w : n;
            size_t i = lo, j = mid, k = lo;
            while (i < mid && j < hi) {
                int lt = reverse ? tpl_lt(c, v[i].key, v[j].key) : tpl_lt(c, v[j].key, v[i].key);
                if (lt < 0) {
                    free(tmp);
                    return -1;
                }
                tmp[k++] = lt ? v[j++] : v[i++];
            }
            while (i < mid) tmp[k++] = v[i++];
            while (j < hi) tmp[k++] = v[j++];
            memcpy(v + lo, tmp + lo, (hi - lo) * sizeof *v);
        }
        if (tpl_step(c) < 0) {
            free(tmp);
            return -1;
        }
    }
    free(tmp);
    return 0;
}

static int lower_if_str(tctx *c, tval v, bool case_sensitive, tval *out) {
    if (v.t == TV_STR && !case_sensitive) return tpl_str_case(c, v, CASE_LOWER, out);
    tpl_incref(*out = v);
    return 0;
}

/* jinja2's make_attrgetter: "a.b.0" looked up item by item. */
static int attr_lookup(tctx *c, tval item, tval attr, tval dflt, tval *out) {
    tpl_incref(item);
    if (attr.t != TV_STR) {
        int rc = tpl_getitem(c, item, attr, out);
        tpl_decref(c, item);
        if (rc == 0 && tv_given(dflt) && dflt.t != TV_NONE && out->t == TV_UNDEF)
            tpl_incref(*out = dflt);
        return rc;
    }
    const char *p = attr.u.s->p;
    size_t n = attr.u.s->len, i = 0;
    tval cur = item;
    for (;;) {
        size_t j = i;
        while (j < n && p[j] != '.') j++;
        bool digits = j > i;
        for (size_t k = i; k < j; k++) digits = digits && p[k] >= '0' && p[k] <= '9';
        tval key, next;
        if (digits)
            key = tv_int(strtoll(p + i, NULL, 10));
        else if (tpl_str_val(c, p + i, j - i, &key) < 0)
            return -1;
        int rc = tpl_getitem(c, cur, key, &next);
        tpl_decref(c, key);
        tpl_decref(c, cur);
        if (rc < 0) return -1;
        cur = next;
        if (tv_given(dflt) && dflt.t != TV_NONE && cur.t == TV_UNDEF) tpl_incref(cur = dflt);
        if (j >= n) break;
        i = j + 1;
    }
    *out = cur;
    return 0;
}

/* sort / dictsort / min / max key: attribute(s), then lower-casing. */
static int sort_key(tctx *c, tval item, tval attr, bool multi, bool case_sensitive, tval *out) {
    if (!tv_given(attr) || attr.t == TV_NONE) return lower_if_str(c, item, case_sensitive, out);
    if (!multi || attr.t != TV_STR) {
        tval v;
        if (attr_lookup(c, item, attr, tv_absent(), &v) < 0) return -1;
        int rc = lower_if_str(c, v, case_sensitive, out);
        tpl_decref(c, v);
        return rc;
    }
    tlist *l = tpl_list(c, TV_LIST, 0);
    if (!l) return -1;
    *out = tv_obj(TV_LIST, l);
    const char *p = attr.u.s->p;
    size_t n = attr.u.s->len, i = 0;
    for (;;) {
        size_t j = i;
        while (j < n && p[j] != ',') j++;
        tval part, v, lv;
        if (tpl_str_val(c, p + i, j - i, &part) < 0) return -1;
        int rc = attr_lookup(c, item, part, tv_absent(), &v);
        tpl_decref(c, part);
        if (rc < 0 || lower_if_str(c, v, case_sensitive, &lv) < 0) return -1;
        tpl_decref(c, v);
        if (tpl_push(c, l, lv) < 0) return -1;
        if (j >= n) break;
        i = j + 1;
    }
    return 0;
}

static void free_keys(tctx *c, skey *k, size_t n) {
    for (size_t i = 0; i < n; i++) tpl_decref(c, k[i].key);
    free(k);
}

static int filter_sort(tctx *c, tval v, bool reverse, bool cs, tval attr, tval *out) {
    tlist *items;
    if (tpl_iterate(c, v, &items) < 0) return -1;
    skey *keys = calloc(items->n + 1, sizeof *keys);
    int rc = keys ? 0 : tpl_fail(c, "out of memory");
    size_t nk = 0;
    for (; rc == 0 && nk < items->n; nk++) {
        keys[nk].idx = nk;
        if (sort_key(c, items->v[nk], attr, true, cs, &keys[nk].key) < 0) rc = -1;
    }
    if (rc == 0) rc = sort_keys(c, keys, items->n, reverse);
    tlist *l = rc == 0 ? tpl_list(c, TV_LIST, items->n) : NULL;
    if (l) {
        for (size_t i = 0; i < items->n; i++) tpl_incref(l->v[l->n++] = items->v[keys[i].idx]);
        *out = tv_obj(TV_LIST, l);
    } else {
        rc = -1;
    }
    if (keys) free_keys(c, keys, nk);
    tpl_obj_decref(c, &items->h);
    return rc;
}

/* ---- filters ---- */

static int unsupported_filter(tctx *c, const char *name) {
    return tpl_fail(c, "the '%s' filter is not supported in chat templates", name);
}

static int select_reject(tctx *c, tval v, const targs *a, bool attr_mode, bool reject, tval *out) {
    tlist *l;
    if (tpl_new_list(c, TV_LIST, 0, &l) < 0) return -1;
    *out = tv_obj(TV_LIST, l);
    if (!tpl_truthy(v)) return 0;
    uint32_t off = attr_mode ? 1 : 0;
    if (attr_mode && a->npos < 1) return tpl_fail(c, "Missing parameter for attribute name");
    const char *test = NULL;
    int tid = -1;
    if (a->npos > off) {
        if (tpl_want_str(c, a->pos[off], "test name") < 0) return -1;
        test = a->pos[off].u.s->p;
        tid = tpl_test_id(test, a->pos[off].u.s->len);
    }
    targs ta = {.pos = a->npos > off + 1 ? a->pos + off + 1 : NULL,
                .npos = a->npos > off + 1 ? a->npos - off - 1 : 0,
                .kwn = a->kwn,
                .kwv = a->kwv,
                .nkw = a->nkw};
    tlist *items;
    if (tpl_iterate(c, v, &items) < 0) return -1;
    int rc = 0;
    for (size_t i = 0; i < items->n && rc == 0; i++) {
        if ((rc = tpl_step(c)) < 0) break;
        tval x = items->v[i], got;
        if (attr_mode) {
            if ((rc = attr_lookup(c, x, a->pos[0], tv_absent(), &got)) < 0) break;
        } else {
            tpl_incref(got = x);
        }
        bool ok;
        if (test) {
            if (tid < 0)
                rc = tpl_fail(c, "No test named '%s'.", test);
            else
                rc = tpl_apply_test(c, tid, test, got, &ta, &ok);
        } else {
            ok = tpl_truthy(got);
        }
        tpl_decref(c, got);
        if (rc < 0) break;
        if (ok != reject) {
            tpl_incref(x);
            rc = tpl_push(c, l, x);
        }
    }
    tpl_obj_decref(c, &items->h);
    return rc;
}

static int filter_map(tctx *c, tval v, const targs *a, tval *out) {
    tlist *l;
    if (tpl_new_list(c, TV_LIST, 0, &l) < 0) return -1;
    *out = tv_obj(TV_LIST, l);
    if (!tpl_truthy(v)) return 0;
    tval attr = tv_absent(), dflt = tv_absent();
    const char *fname = NULL;
    int fid = -1;
    targs fa = {0};
    if (a->npos == 0) {
        for (uint32_t k = 0; k < a->nkw; k++) {
            if (!strcmp(a->kwn[k]->p, "attribute"))
                attr = a->kwv[k];
            else if (!strcmp(a->kwn[k]->p, "default"))
                dflt = a->kwv[k];
            else
                return tpl_fail(c, "Unexpected keyword argument '%s'", a->kwn[k]->p);
        }
        if (!tv_given(attr)) return tpl_fail(c, "map requires a filter argument");
    } else {
        if (tpl_want_str(c, a->pos[0], "filter name") < 0) return -1;
        fname = a->pos[0].u.s->p;
        fid = tpl_filter_id(fname, a->pos[0].u.s->len);
        fa = (targs){
            .pos = a->pos + 1, .npos = a->npos - 1, .kwn = a->kwn, .kwv = a->kwv, .nkw = a->nkw};
    }
    tlist *items;
    if (tpl_iterate(c, v, &items) < 0) return -1;
    int rc = 0;
    for (size_t i = 0; i < items->n && rc == 0; i++) {
        tval r;
        if ((rc = tpl_step(c)) < 0) break;
        if (fname) {
            if (fid < 0)
                rc = tpl_fail(c, "No filter named '%s'.", fname);
            else
                rc = tpl_apply_filter(c, fid, fname, items->v[i], &fa, &r);
        } else {
            rc = attr_lookup(c, items->v[i], attr, dflt, &r);
        }
        if (rc == 0) rc = tpl_push(c, l, r);
    }
    tpl_obj_decref(c, &items->h);
    return rc;
}

static int filter_minmax(tctx *c, tval v, const targs *a, bool is_max, tval *out) {
    static const char *const P[] = {"case_sensitive", "attribute"};
    tval s[2];
    if (tpl_bind_args(c, is_max ? "max" : "min", P, 2, a, s) < 0) return -1;
    tlist *items;
    if (tpl_iterate(c, v, &items) < 0) return -1;
    if (!items->n) {
        tpl_obj_decref(c, &items->h);
        *out = tv_undef_named(UD_HINT, 0, "No aggregated item, sequence was empty.");
        return 0;
    }
    bool cs = tv_given(s[0]) && tpl_truthy(s[0]);
    size_t best = 0;
    tval bk;
    int rc = sort_key(c, items->v[0], s[1], false, cs, &bk);
    for (size_t i = 1; i < items->n && rc == 0; i++) {
        tval k;
        if ((rc = sort_key(c, items->v[i], s[1], false, cs, &k)) < 0) break;
        int lt = is_max ? tpl_lt(c, bk, k) : tpl_lt(c, k, bk);
        if (lt < 0)
            rc = -1;
        else if (lt) {
            tpl_decref(c, bk);
            bk = k;
            best = i;
            continue;
        }
        tpl_decref(c, k);
    }
    if (rc == 0) {
        tpl_decref(c, bk);
        tpl_incref(*out = items->v[best]);
    }
    tpl_obj_decref(c, &items->h);
    return rc;
}

static int filter_unique(tctx *c, tval v, const targs *a, tval *out) {
    static const char *const P[] = {"case_sensitive", "attribute"};
    tval s[2];
    if (tpl_bind_args(c, "unique", P, 2, a, s) < 0) return -1;
    bool cs = tv_given(s[0]) && tpl_truthy(s[0]);
    tlist *items, *l;
    if (tpl_iterate(c, v, &items) < 0) return -1;
    tdict *seen = tpl_dict(c, TV_DICT);
    int rc = seen && tpl_new_list(c, TV_LIST, 0, &l) == 0 ? 0 : -1;
    if (rc == 0) *out = tv_obj(TV_LIST, l);
    for (size_t i = 0; i < items->n && rc == 0; i++) {
        tval k;
        if ((rc = sort_key(c, items->v[i], s[1], false, cs, &k)) < 0) break;
        int err = 0;
        if (tpl_dict_get(c, seen, k, &err)) {
            tpl_decref(c, k);
            continue;
        }
        if (err < 0 || tpl_dict_set(c, seen, k, tv_none()) < 0) {
            rc = -1;
            break;
        }
        tpl_incref(items->v[i]);
        rc = tpl_push(c, l, items->v[i]);
    }
    if (seen) tpl_obj_decref(c, &seen->h);
    tpl_obj_decref(c, &items->h);
    return rc;
}

static int filter_dictsort(tctx *c, tval v, const targs *a, tval *out) {
    static const char *const P[] = {"case_sensitive", "by", "reverse"};
    tval s[3];
    if (tpl_bind_args(c, "dictsort", P, 3, a, s) < 0) return -1;
    int pos = 0;
    if (tv_given(s[1])) {
        if (s[1].t == TV_STR && !strcmp(s[1].u.s->p, "value"))
            pos = 1;
        else if (!(s[1].t == TV_STR && !strcmp(s[1].u.s->p, "key")))
            return tpl_fail(c, "You can only sort by either \"key\" or \"value\"");
    }
    if (v.t != TV_DICT) {
        if (v.t == TV_UNDEF) return tpl_fail_undef(c, v);
        return tpl_fail(c, "'%s' object has no attribute 'items'", tpl_type_name(v.t));
    }
    bool cs = tv_given(s[0]) && tpl_truthy(s[0]);
    tdict *d = v.u.d;
    skey *keys = calloc(d->n + 1, sizeof *keys);
    if (!keys) return tpl_fail(c, "out of memory");
    int rc = 0;
    size_t nk = 0;
    for (; nk < d->n && rc == 0; nk++) {
        keys[nk].idx = nk;
        rc = lower_if_str(c, pos ? d->v[nk] : d->k[nk], cs, &keys[nk].key);
    }
    if (rc == 0) rc = sort_keys(c, keys, d->n, tv_given(s[2]) && tpl_truthy(s[2]));
    tlist *l = rc == 0 ? tpl_list(c, TV_LIST, d->n) : NULL;
    if (!l)
        rc = -1;
    else
        *out = tv_obj(TV_LIST, l);
    for (size_t i = 0; i < d->n && rc == 0; i++) {
        tval p;
        tpl_incref(d->k[keys[i].idx]);
        tpl_incref(d->v[keys[i].idx]);
        if ((rc = tpl_pair(c, d->k[keys[i].idx], d->v[keys[i].idx], &p)) == 0)
            rc = tpl_push(c, l, p);
    }
    free_keys(c, keys, nk);
    return rc;
}

static int filter_tojson(tctx *c, tval v, const targs *a, tval *out) {
    static const char *const P[] = {"ensure_ascii", "indent", "separators", "sort_keys"};
    tval s[4];
    if (tpl_bind_args(c, "tojson", P, 4, a, s) < 0) return -1;
    tjson_opts o = {.ensure_ascii = tv_given(s[0]) && tpl_truthy(s[0]),
                    .sort_keys = tv_given(s[3]) && tpl_truthy(s[3])};
    char spaces[64];
    if (tv_given(s[1]) && s[1].t != TV_NONE) {
        if (s[1].t == TV_STR) {
            o.indent = s[1].u.s->p;
            o.indent_len = s[1].u.s->len;
        } else if (s[1].t == TV_INT || s[1].t == TV_BOOL) {
            int64_t k = s[1].t == TV_INT ? s[1].u.i : s[1].u.b;
            if (k > 63) k = 63;
            if (k < 0) k = 0;
            memset(spaces, ' ', (size_t)k);
            spaces[k] = 0;
            o.indent = spaces;
            o.indent_len = (size_t)k;
        } else {
            return tpl_fail(c, "indent must be an int or a str, not %s", tpl_type_name(s[1].t));
        }
    }
    o.item_sep = o.indent ? "," : ", ";
    o.item_sep_len = strlen(o.item_sep);
    o.key_sep = ": ";
    o.key_sep_len = 2;
    if (tv_given(s[2]) && s[2].t != TV_NONE) {
        if ((s[2].t != TV_TUPLE && s[2].t != TV_LIST) || s[2].u.l->n != 2 ||
            s[2].u.l->v[0].t != TV_STR || s[2].u.l->v[1].t != TV_STR)
            return tpl_fail(c, "separators must be a pair of strings");
        o.item_sep = s[2].u.l->v[0].u.s->p;
        o.item_sep_len = s[2].u.l->v[0].u.s->len;
        o.key_sep = s[2].u.l->v[1].u.s->p;
        o.key_sep_len = s[2].u.l->v[1].u.s->len;
    }
    tbuf b = {0};
    if (tpl_to_json(c, &b, v, &o, 0) < 0) {
        tbuf_free(c, &b);
        return -1;
    }
    return tpl_str_from_buf(c, &b, out);
}

static int filter_indent(tctx *c, tval v, const targs *a, tval *out) {
    static const char *const P[] = {"width", "first", "blank"};
    tval s[3];
    if (tpl_bind_args(c, "indent", P, 3, a, s) < 0) return -1;
    tval ind;
    if (tv_given(s[0]) && s[0].t == TV_STR) {
        tpl_incref(ind = s[0]);
    } else {
        int64_t w = 4;
        if (tv_given(s[0]) && tpl_want_int(c, s[0], "indent width", &w) < 0) return -1;
        if (w < 0) w = 0;
        if (w > 4096) return tpl_fail(c, "indent width %lld is too large", (long long)w);
        char sp[4097];
        memset(sp, ' ', (size_t)w);
        if (tpl_str_val(c, sp, (size_t)w, &ind) < 0) return -1;
    }
    bool first = tv_given(s[1]) && tpl_truthy(s[1]), blank = tv_given(s[2]) && tpl_truthy(s[2]);
    tval str;
    if (v.t != TV_STR) { /* indent does s += "\n": only a str works */
        tpl_decref(c, ind);
        if (v.t == TV_UNDEF) return tpl_fail_undef(c, v);
        if (v.t == TV_LIST) return tpl_fail(c, "'list' object has no attribute 'splitlines'");
        return tpl_fail(c, "unsupported operand type(s) for +=: '%s' and 'str'",
                        tpl_val_type_name(v));
    }
    tpl_incref(str = v);
    /* s += "\n"; lines = s.splitlines(); ... */
    tval withnl, lines;
    tbuf b = {0};
    int rc = tbuf_put(c, &b, str.u.s->p, str.u.s->len) && tbuf_putc(c, &b, '\n') ? 0 : -1;
    if (rc == 0)
        rc = tpl_str_from_buf(c, &b, &withnl);
    else
        tbuf_free(c, &b);
    if (rc == 0) {
        targs none = {0};
        rc = tpl_str_splitlines(c, withnl, &none, &lines);
        tpl_decref(c, withnl);
    }
    if (rc == 0) {
        tlist *l = lines.u.l;
        tbuf o = {0};
        bool ok = true;
        if (first) ok = tbuf_put(c, &o, ind.u.s->p, ind.u.s->len);
        for (size_t i = 0; i < l->n && ok; i++) {
            if (i) {
                ok = tbuf_putc(c, &o, '\n');
                if (ok && (blank || l->v[i].u.s->len))
                    ok = tbuf_put(c, &o, ind.u.s->p, ind.u.s->len);
            }
            if (ok) ok = tbuf_put(c, &o, l->v[i].u.s->p, l->v[i].u.s->len);
        }
        tpl_decref(c, lines);
        if (!ok) {
            tbuf_free(c, &o);
            rc = -1;
        } else {
            rc = tpl_str_from_buf(c, &o, out);
            out->markup = str.markup;
        }
    }
    tpl_decref(c, str);
    tpl_decref(c, ind);
    return rc;
}

static int filter_truncate(tctx *c, tval v, const targs *a, tval *out) {
    static const char *const P[] = {"length", "killwords", "end", "leeway"};
    tval s[4];
    if (tpl_bind_args(c, "truncate", P, 4, a, s) < 0) return -1;
    int64_t length = 255, leeway = 5;
    if (tv_given(s[0]) && tpl_want_int(c, s[0], "length", &length) < 0) return -1;
    if (tv_given(s[3]) && s[3].t != TV_NONE && tpl_want_int(c, s[3], "leeway", &leeway) < 0)
        return -1;
    tval end = tv_given(s[2]) ? s[2] : tv_none();
    const char *ep = "...";
    size_t en = 3, encp = 3;
    if (end.t == TV_STR) ep = end.u.s->p, en = end.u.s->len, encp = end.u.s->ncp;
    if (length < (int64_t)encp)
        return tpl_fail(c, "expected length >= %zu, got %lld", encp, (long long)length);
    if (leeway < 0) return tpl_fail(c, "expected leeway >= 0, got %lld", (long long)leeway);
    int64_t len = tpl_len(v);
    if (len < 0) return tpl_fail(c, "object of type '%s' has no len()", tpl_val_type_name(v));
    if (len <= length + leeway) {
        tpl_incref(*out = v);
        return 0;
    }
    if (tpl_want_str(c, v, "truncate value") < 0) return -1;
    size_t cut = tpl_utf8_offset(v.u.s->p, v.u.s->len, (size_t)(length - (int64_t)encp));
    if (!(tv_given(s[1]) && tpl_truthy(s[1]))) {
        /* rsplit(' ', 1)[0] */
        size_t k = cut;
        while (k > 0 && v.u.s->p[k - 1] != ' ') k--;
        if (k > 0) cut = k - 1;
    }
    tbuf b = {0};
    if (!tbuf_put(c, &b, v.u.s->p, cut) || !tbuf_put(c, &b, ep, en)) {
        tbuf_free(c, &b);
        return -1;
    }
    return tpl_str_from_buf(c, &b, out);
}

static int parse_py_float(const tstr *s, double *out) {
    size_t a, b;
    tpl_strip_range(s, NULL, true, true, &a, &b);
    size_t n = b - a;
    char buf[128];
    if (n == 0 || n >= sizeof buf) return -1;
    size_t w = 0;
    const char *p = s->p + a;
    for (size_t i = 0; i < n; i++) {
        if (p[i] == '_') {
            if (i == 0 || i + 1 == n || !(p[i - 1] >= '0' && p[i - 1] <= '9') ||
                !(p[i + 1] >= '0' && p[i + 1] <= '9'))
                return -1;
            continue;
        }
        if ((p[i] | 32) == 'x' || (p[i] | 32) == 'p') return -1;
        buf[w++] = p[i];
    }
    buf[w] = 0;
    const char *q = buf + (buf[0] == '+' || buf[0] == '-');
    bool word = !strcasecmp(q, "inf") || !strcasecmp(q, "infinity") || !strcasecmp(q, "nan");
    if (!word && ((*q | 32) == 'i' || (*q | 32) == 'n')) return -1;
    char *end;
    double f = strtod(buf, &end);
    if (*end || end == buf) return -1;
    *out = f;
    return 0;
}

/* Python's int(str, base): whitespace, a sign, digits with single
 * underscores between them, a 0x/0o/0b prefix when base is 0 or matches. */
static int parse_py_int(const tstr *s, int64_t base, int64_t *out) {
    size_t a, b;
    tpl_strip_range(s, NULL, true, true, &a, &b);
    const char *p = s->p + a, *e = s->p + b;
    bool neg = false;
    if (p < e && (*p == '+' || *p == '-')) neg = *p++ == '-';
    if (e - p >= 2 && p[0] == '0') {
        char x = p[1] | 32;
        int pb = x == 'x' ? 16 : x == 'o' ? 8 : x == 'b' ? 2 : 0;
        if (pb && (base == 0 || base == pb)) {
            base = pb;
            p += 2;
            if (p < e && *p == '_') p++;
        }
    }
    if (base == 0) {
        base = 10;
        if (e - p > 1 && p[0] == '0') { /* base 0 allows no leading zeros but "0..0" */
            for (const char *q = p; q < e; q++)
                if (*q != '0' && *q != '_') return -1;
        }
    }
    if (base < 2 || base > 36 || p >= e) return -1;
    uint64_t m = 0;
    bool prev_digit = false;
    for (; p < e; p++) {
        if (*p == '_') {
            if (!prev_digit || p + 1 >= e || p[1] == '_') return -1;
            prev_digit = false;
            continue;
        }
        int d = *p >= '0' && *p <= '9'                   ? *p - '0'
                : ((*p | 32) >= 'a' && (*p | 32) <= 'z') ? (*p | 32) - 'a' + 10
                                                         : 99;
        if (d >= base) return -1;
        if (m > (UINT64_MAX - (uint64_t)d) / (uint64_t)base) return -1;
        m = m * (uint64_t)base + (uint64_t)d;
        prev_digit = true;
    }
    if (m > (uint64_t)INT64_MAX + neg) return -1;
    *out = neg ? (int64_t)(0 - m) : (int64_t)m;
    return 0;
}

static int filter_int(tctx *c, tval v, const targs *a, tval *out) {
    static const char *const P[] = {"default", "base"};
    tval s[2];
    if (tpl_bind_args(c, "int", P, 2, a, s) < 0) return -1;
    int64_t base = 10, i;
    double f;
    if (tv_given(s[1]) && tpl_want_int(c, s[1], "base", &base) < 0) return -1;
    switch (v.t) {
    case TV_UNDEF:
        return tpl_fail_undef(c, v); /* int(Undefined) raises */
    case TV_INT:
        *out = v;
        return 0;
    case TV_BOOL:
        *out = tv_int(v.u.b);
        return 0;
    case TV_FLOAT:
        if (isnan(v.u.f)) break;
        if (isinf(v.u.f) || fabs(v.u.f) >= 9.2e18)
            return tpl_fail(c, "cannot convert float infinity to integer");
        *out = tv_int((int64_t)v.u.f);
        return 0;
    case TV_STR:
        if (parse_py_int(v.u.s, base, &i) == 0) {
            *out = tv_int(i);
            return 0;
        }
        if (parse_py_float(v.u.s, &f) == 0 && isfinite(f) && fabs(f) < 9.2e18) {
            *out = tv_int((int64_t)f);
            return 0;
        }
        break;
    default:
        break;
    }
    if (tv_given(s[0]))
        tpl_incref(*out = s[0]);
    else
        *out = tv_int(0);
    return 0;
}

static int filter_float(tctx *c, tval v, const targs *a, tval *out) {
    static const char *const P[] = {"default"};
    tval s[1];
    if (tpl_bind_args(c, "float", P, 1, a, s) < 0) return -1;
    double f;
    switch (v.t) {
    case TV_UNDEF:
        return tpl_fail_undef(c, v); /* float(Undefined) raises */
    case TV_FLOAT:
        *out = v;
        return 0;
    case TV_INT:
        *out = tv_float((double)v.u.i);
        return 0;
    case TV_BOOL:
        *out = tv_float(v.u.b);
        return 0;
    case TV_STR:
        if (parse_py_float(v.u.s, &f) == 0) {
            *out = tv_float(f);
            return 0;
        }
        break;
    default:
        break;
    }
    if (tv_given(s[0]))
        tpl_incref(*out = s[0]);
    else
        *out = tv_float(0.0);
    return 0;
}

static int filter_round(tctx *c, tval v, const targs *a, tval *out) {
    static const char *const P[] = {"precision", "method"};
    tval s[2];
    if (tpl_bind_args(c, "round", P, 2, a, s) < 0) return -1;
    int64_t prec = 0;
    if (tv_given(s[0]) && tpl_want_int(c, s[0], "precision", &prec) < 0) return -1;
    const char *method = "common";
    if (tv_given(s[1])) {
        if (s[1].t != TV_STR) return tpl_fail(c, "method must be common, ceil or floor");
        method = s[1].u.s->p;
    }
    if (strcmp(method, "common") && strcmp(method, "ceil") && strcmp(method, "floor"))
        return tpl_fail(c, "method must be common, ceil or floor");
    if (!tv_is_num(v)) {
        if (v.t == TV_UNDEF) return tpl_fail_undef(c, v);
        return tpl_fail(c, "type %s doesn't define __round__ method", tpl_type_name(v.t));
    }
    if (!strcmp(method, "common")) {
        if (v.t != TV_FLOAT) { /* round(int, n) stays an int */
            int64_t x = tv_num_i(v);
            if (prec < 0) {
                int64_t p10 = 1;
                for (int64_t k = 0; k < -prec && p10 <= INT64_MAX / 10; k++) p10 *= 10;
                int64_t q = x / p10, r = x % p10;
                if (r < 0) q--, r += p10;
                if (2 * r > p10 || (2 * r == p10 && (q & 1))) q++;
                x = q * p10;
            }
            *out = tv_int(x);
            return 0;
        }
        double f = v.u.f;
        if (!isfinite(f)) {
            *out = v;
            return 0;
        }
        if (prec >= 0) {
            char buf[400];
            snprintf(buf, sizeof buf, "%.*f", (int)(prec > 300 ? 300 : prec), f);
            *out = tv_float(strtod(buf, NULL));
        } else {
            double p10 = pow(10.0, (double)-prec);
            *out = tv_float(nearbyint(f / p10) * p10);
        }
        return 0;
    }
    double p10 = pow(10.0, (double)prec), f = tv_num_f(v) * p10;
    *out = tv_float((!strcmp(method, "ceil") ? ceil(f) : floor(f)) / p10);
    return 0;
}

static int filter_batch_slice(tctx *c, tval v, const targs *a, bool is_slice, tval *out) {
    static const char *const PB[] = {"linecount", "fill_with"}, *const PS[] = {"slices",
                                                                               "fill_with"};
    tval s[2];
    if (tpl_bind_args(c, is_slice ? "slice" : "batch", is_slice ? PS : PB, 2, a, s) < 0) return -1;
    int64_t k = 0;
    if (!tv_given(s[0]))
        return tpl_fail(c, "%s() missing a required argument", is_slice ? "slice" : "batch");
    if (tpl_want_int(c, s[0], is_slice ? "slices" : "linecount", &k) < 0) return -1;
    bool fill = tv_given(s[1]) && s[1].t != TV_NONE;
    tlist *items, *res;
    if (tpl_iterate(c, v, &items) < 0) return -1;
    int rc = tpl_new_list(c, TV_LIST, 0, &res);
    if (rc == 0) *out = tv_obj(TV_LIST, res);
    size_t n = items->n;
    if (rc == 0 && !is_slice) {
        if (k <= 0 && n) rc = tpl_fail(c, "batch size must be positive");
        for (size_t i = 0; i < n && rc == 0; i += (size_t)k) {
            tlist *row;
            if ((rc = tpl_new_list(c, TV_LIST, 0, &row)) < 0) break;
            if ((rc = tpl_push(c, res, tv_obj(TV_LIST, row))) < 0) break;
            for (size_t j = i; j < n && j < i + (size_t)k && rc == 0; j++)
                tpl_incref(items->v[j]), rc = tpl_push(c, row, items->v[j]);
            for (int64_t j = (int64_t)row->n; fill && j < k && rc == 0; j++)
                tpl_incref(s[1]), rc = tpl_push(c, row, s[1]);
            if (rc == 0) rc = tpl_step(c);
        }
    } else if (rc == 0) {
        if (k <= 0)
            rc = tpl_fail(c, k == 0 ? "integer division or modulo by zero"
                                    : "slices must be positive");
        else if (k > TPL_MAX_RANGE)
            rc = tpl_fail(c, "too many slices");
        size_t per = rc == 0 ? n / (size_t)k : 0, extra = rc == 0 ? n % (size_t)k : 0, offset = 0;
        for (int64_t sn = 0; sn < k && rc == 0; sn++) {
            size_t start = offset + (size_t)sn * per;
            if ((size_t)sn < extra) offset++;
            size_t end = offset + (size_t)(sn + 1) * per;
            tlist *row;
            if ((rc = tpl_new_list(c, TV_LIST, 0, &row)) < 0 ||
                (rc = tpl_push(c, res, tv_obj(TV_LIST, row))) < 0)
                break;
            for (size_t j = start; j < end && rc == 0; j++)
                tpl_incref(items->v[j]), rc = tpl_push(c, row, items->v[j]);
            if (fill && (size_t)sn >= extra && rc == 0)
                tpl_incref(s[1]), rc = tpl_push(c, row, s[1]);
        }
    }
    tpl_obj_decref(c, &items->h);
    return rc;
}

static int filter_sum(tctx *c, tval v, const targs *a, tval *out) {
    static const char *const P[] = {"attribute", "start"};
    tval s[2];
    if (tpl_bind_args(c, "sum", P, 2, a, s) < 0) return -1;
    tval acc = tv_given(s[1]) ? s[1] : tv_int(0);
    if (acc.t == TV_STR) return tpl_fail(c, "sum() can't sum strings [use ''.join(seq) instead]");
    tpl_incref(acc);
    tlist *items;
    if (tpl_iterate(c, v, &items) < 0) return -1;
    int rc = 0;
    for (size_t i = 0; i < items->n && rc == 0; i++) {
        tval x, r;
        if (tv_given(s[0]) && s[0].t != TV_NONE)
            rc = attr_lookup(c, items->v[i], s[0], tv_absent(), &x);
        else
            tpl_incref(x = items->v[i]);
        if (rc < 0) break;
        rc = tpl_binop(c, OP_ADD, acc, x, &r);
        tpl_decref(c, x);
        if (rc == 0) {
            tpl_decref(c, acc);
            acc = r;
        }
    }
    tpl_obj_decref(c, &items->h);
    if (rc < 0) return -1;
    *out = acc;
    return 0;
}

static int filter_wordcount(tctx *c, tval v, tval *out) {
    tval s;
    if (tpl_to_str(c, v, &s) < 0) return -1;
    int64_t words = 0;
    bool in = false;
    size_t i = 0;
    while (i < s.u.s->len) {
        uint32_t cp = tpl_utf8_next(s.u.s->p, s.u.s->len, &i);
        bool w = cp == '_' || tpl_cp_isalpha(cp) || tpl_cp_isdigit(cp);
        if (w && !in) words++;
        in = w;
    }
    tpl_decref(c, s);
    *out = tv_int(words);
    return 0;
}

static int filter_striptags(tctx *c, tval v, tval *out) {
    tval s;
    if (tpl_to_str(c, v, &s) < 0) return -1;
    const char *p = s.u.s->p;
    size_t n = s.u.s->len, pos = 0;
    tbuf b = {0};
    bool ok = true;
    while (ok) {
        const char *lt = memchr(p + pos, '<', n - pos);
        if (!lt) break;
        size_t start = (size_t)(lt - p), end;
        if (n - start >= 4 && !memcmp(lt, "<!--", 4)) {
            const char *e = memmem(p + start + 4, n - start - 4, "-->", 3);
            if (!e) break;
            end = (size_t)(e - p) + 3;
        } else {
            const char *e = memchr(p + start, '>', n - start);
            if (!e) break;
            end = (size_t)(e - p) + 1;
        }
        ok = tbuf_put(c, &b, p + pos, start - pos);
        pos = end;
    }
    if (ok) ok = tbuf_put(c, &b, p + pos, n - pos);
    tpl_decref(c, s);
    if (!ok) {
        tbuf_free(c, &b);
        return -1;
    }
    /* " ".join(value.split()), then unescape the common entities */
    tbuf o = {0};
    size_t i = 0;
    const char *q = b.p ? b.p : "";
    bool pending_space = false, any = false;
    while (i < b.len && ok) {
        size_t at = i;
        uint32_t cp = tpl_utf8_next(q, b.len, &i);
        if (tpl_cp_isspace(cp)) {
            pending_space = any;
            continue;
        }
        if (pending_space) ok = tbuf_putc(c, &o, ' ');
        pending_space = false;
        any = true;
        static const char *const ENT[][2] = {
            {"&amp;", "&"},  {"&lt;", "<"},    {"&gt;", ">"},   {"&#39;", "'"},
            {"&#34;", "\""}, {"&quot;", "\""}, {"&apos;", "'"}, {"&nbsp;", "\xc2\xa0"}};
        bool ent = false;
        if (cp == '&')
            for (size_t e = 0; e < sizeof ENT / sizeof ENT[0] && !ent; e++) {
                size_t el = strlen(ENT[e][0]);
                if (b.len - at >= el && !memcmp(q + at, ENT[e][0], el)) {
                    ok = ok && tbuf_puts(c, &o, ENT[e][1]);
                    i = at + el;
                    ent = true;
                }
            }
        if (!ent && ok) ok = tbuf_put(c, &o, q + at, i - at);
    }
    tbuf_free(c, &b);
    if (!ok) {
        tbuf_free(c, &o);
        return -1;
    }
    return tpl_str_from_buf(c, &o, out);
}

static int filter_filesizeformat(tctx *c, tval v, const targs *a, tval *out) {
    static const char *const P[] = {"binary"};
    tval s[1];
    if (tpl_bind_args(c, "filesizeformat", P, 1, a, s) < 0) return -1;
    double bytes;
    if (tv_is_num(v))
        bytes = tv_num_f(v);
    else if (v.t == TV_STR && parse_py_float(v.u.s, &bytes) == 0) {
    } else
        return tpl_fail(c, "could not convert %s to float", tpl_type_name(v.t));
    bool bin = tv_given(s[0]) && tpl_truthy(s[0]);
    double base = bin ? 1024 : 1000;
    static const char *const DEC[] = {"kB", "MB", "GB", "TB", "PB", "EB", "ZB", "YB"},
                             *const BIN[] = {"KiB", "MiB", "GiB", "TiB",
                                             "PiB", "EiB", "ZiB", "YiB"};
    char buf[64];
    if (bytes == 1)
        snprintf(buf, sizeof buf, "1 Byte");
    else if (bytes < base)
        snprintf(buf, sizeof buf, "%lld Bytes", (long long)bytes);
    else {
        int i = 0;
        double unit = base * base;
        while (i < 7 && bytes >= unit) i++, unit *= base;
        snprintf(buf, sizeof buf, "%.1f %s", base * bytes / unit, bin ? BIN[i] : DEC[i]);
    }
    return tpl_str_val(c, buf, strlen(buf), out);
}

static int filter_items(tctx *c, tval v, tval *out) {
    tlist *l;
    if (v.t == TV_UNDEF)
        return tpl_new_list(c, TV_LIST, 0, &l) < 0 ? -1 : (*out = tv_obj(TV_LIST, l), 0);
    if (v.t != TV_DICT) return tpl_fail(c, "Can only get item pairs from a mapping.");
    if (tpl_new_list(c, TV_LIST, v.u.d->n, &l) < 0) return -1;
    *out = tv_obj(TV_LIST, l);
    for (uint32_t i = 0; i < v.u.d->n; i++) {
        tval p;
        tpl_incref(v.u.d->k[i]);
        tpl_incref(v.u.d->v[i]);
        if (tpl_pair(c, v.u.d->k[i], v.u.d->v[i], &p) < 0 || tpl_push(c, l, p) < 0) return -1;
    }
    return 0;
}

static int filter_groupby(tctx *c, tval v, const targs *a, tval *out) {
    static const char *const P[] = {"attribute", "default", "case_sensitive"};
    tval s[3];
    if (tpl_bind_args(c, "groupby", P, 3, a, s) < 0) return -1;
    if (!tv_given(s[0]))
        return tpl_fail(c, "groupby() missing 1 required positional argument: 'attribute'");
    bool cs = tv_given(s[2]) && tpl_truthy(s[2]);
    tval dflt = tv_given(s[1]) ? s[1] : tv_none();
    tlist *items;
    if (tpl_iterate(c, v, &items) < 0) return -1;
    skey *keys = calloc(items->n + 1, sizeof *keys);
    int rc = keys ? 0 : tpl_fail(c, "out of memory");
    size_t nk = 0;
    for (; rc == 0 && nk < items->n; nk++) {
        tval k;
        keys[nk].idx = nk;
        keys[nk].key = tv_none();
        if ((rc = attr_lookup(c, items->v[nk], s[0], dflt, &k)) < 0) break;
        rc = lower_if_str(c, k, cs, &keys[nk].key);
        tpl_decref(c, k);
    }
    if (rc == 0) rc = sort_keys(c, keys, items->n, false);
    tlist *res = rc == 0 ? tpl_list(c, TV_LIST, 0) : NULL;
    if (!res)
        rc = -1;
    else
        *out = tv_obj(TV_LIST, res);
    for (size_t i = 0; rc == 0 && i < items->n;) {
        size_t j = i + 1;
        while (j < items->n && tpl_eq(c, keys[j].key, keys[i].key)) j++;
        tlist *group = tpl_list(c, TV_LIST, j - i);
        tval grouper, tup;
        if (!group) {
            rc = -1;
            break;
        }
        for (size_t k = i; k < j; k++) tpl_incref(group->v[group->n++] = items->v[keys[k].idx]);
        if (cs)
            tpl_incref(grouper = keys[i].key);
        else if (attr_lookup(c, group->v[0], s[0], dflt, &grouper) < 0) {
            tpl_obj_decref(c, &group->h);
            rc = -1;
            break;
        }
        if ((rc = tpl_pair(c, grouper, tv_obj(TV_LIST, group), &tup)) < 0) break;
        tup.markup = 1; /* a _GroupTuple: .grouper and .list */
        rc = tpl_push(c, res, tup);
        i = j;
    }
    if (keys) free_keys(c, keys, nk);
    tpl_obj_decref(c, &items->h);
    return rc;
}

/* urllib.parse.quote of the UTF-8 text; `safe` bytes stay. */
static bool url_quote(tctx *c, tbuf *b, tval v, bool for_qs) {
    tval s;
    if (tpl_to_str(c, v, &s) < 0) return false;
    bool ok = true;
    for (size_t i = 0; i < s.u.s->len && ok; i++) {
        unsigned char ch = (unsigned char)s.u.s->p[i];
        bool keep = (ch >= 'a' && ch <= 'z') || (ch >= 'A' && ch <= 'Z') ||
                    (ch >= '0' && ch <= '9') || ch == '_' || ch == '.' || ch == '-' || ch == '~' ||
                    (ch == '/' && !for_qs);
        if (keep)
            ok = tbuf_putc(c, b, (char)ch);
        else if (ch == ' ' && for_qs)
            ok = tbuf_putc(c, b, '+');
        else {
            char hex[4];
            snprintf(hex, sizeof hex, "%%%02X", ch);
            ok = tbuf_put(c, b, hex, 3);
        }
    }
    tpl_decref(c, s);
    return ok;
}

static int filter_urlencode(tctx *c, tval v, tval *out) {
    tbuf b = {0};
    bool ok = true;
    if (v.t != TV_LIST && v.t != TV_TUPLE && v.t != TV_DICT && v.t != TV_ITER) {
        ok = url_quote(c, &b, v, false);
    } else {
        tlist *items;
        if (v.t == TV_DICT) {
            targs none = {0};
            tmethod m = {.self = v, .id = M_ITEMS};
            tval it;
            if (tpl_call_method(c, &m, &none, &it) < 0) return -1;
            int rc = tpl_iterate(c, it, &items);
            tpl_decref(c, it);
            if (rc < 0) return -1;
        } else if (tpl_iterate(c, v, &items) < 0) {
            return -1;
        }
        for (size_t i = 0; i < items->n && ok; i++) {
            tval kv = items->v[i];
            if ((kv.t != TV_TUPLE && kv.t != TV_LIST) || kv.u.l->n != 2) {
                tpl_obj_decref(c, &items->h);
                tbuf_free(c, &b);
                return tpl_fail(c, "urlencode needs (key, value) pairs");
            }
            ok = (!i || tbuf_putc(c, &b, '&')) && url_quote(c, &b, kv.u.l->v[0], true) &&
                 tbuf_putc(c, &b, '=') && url_quote(c, &b, kv.u.l->v[1], true);
        }
        tpl_obj_decref(c, &items->h);
    }
    if (!ok) {
        tbuf_free(c, &b);
        return -1;
    }
    return tpl_str_from_buf(c, &b, out);
}

/* jinja2's map, select, unique, items, batch and slice are generators:
 * nothing runs (and nothing fails) until something consumes them. */
static int lazy_generator(tctx *c, int id, tval v, const targs *a, tval *out) {
    titer *it = tpl_alloc(c, TV_ITER, sizeof(titer));
    if (!it) return -1;
    *out = tv_obj(TV_ITER, it);
    it->kind = IT_GENERATOR;
    it->filter = id;
    tpl_incref(it->src = v);
    uint32_t n = a->npos + a->nkw;
    if (!n) return 0;
    if (!tpl_account(c, n * (sizeof(tval) + sizeof(tstr *)), 0)) return -1;
    it->args = malloc(n * sizeof *it->args);
    it->kwn = malloc(n * sizeof *it->kwn);
    if (!it->args || !it->kwn) {
        free(it->args);
        free(it->kwn);
        it->args = NULL;
        it->kwn = NULL;
        return tpl_fail(c, "out of memory");
    }
    for (uint32_t i = 0; i < a->npos; i++) tpl_incref(it->args[it->npos++] = a->pos[i]);
    for (uint32_t k = 0; k < a->nkw; k++) {
        tpl_incref(it->args[a->npos + k] = a->kwv[k]);
        it->kwn[k] = a->kwn[k]; /* names live in the template or in the render's keep list */
        it->nkw++;
    }
    return 0;
}

const char *tpl_generator_name(int filter) {
    switch (filter) {
    case F_MAP:
        return "sync_do_map";
    case F_SELECT:
    case F_REJECT:
    case F_SELECTATTR:
    case F_REJECTATTR:
        return "select_or_reject";
    case F_UNIQUE:
        return "sync_do_unique";
    case F_BATCH:
        return "do_batch";
    case F_SLICE:
        return "sync_do_slice";
    default:
        return "do_items";
    }
}

int tpl_iter_force(tctx *c, titer *it) {
    if (it->items) return 0;
    targs a = {.pos = it->args,
               .npos = it->npos,
               .kwn = it->kwn,
               .kwv = it->args ? it->args + it->npos : NULL,
               .nkw = it->nkw};
    tval res;
    int rc;
    switch (it->filter) {
    case F_MAP:
        rc = filter_map(c, it->src, &a, &res);
        break;
    case F_SELECT:
        rc = select_reject(c, it->src, &a, false, false, &res);
        break;
    case F_REJECT:
        rc = select_reject(c, it->src, &a, false, true, &res);
        break;
    case F_SELECTATTR:
        rc = select_reject(c, it->src, &a, true, false, &res);
        break;
    case F_REJECTATTR:
        rc = select_reject(c, it->src, &a, true, true, &res);
        break;
    case F_UNIQUE:
        rc = filter_unique(c, it->src, &a, &res);
        break;
    case F_BATCH:
        rc = filter_batch_slice(c, it->src, &a, false, &res);
        break;
    case F_SLICE:
        rc = filter_batch_slice(c, it->src, &a, true, &res);
        break;
    default:
        rc = filter_items(c, it->src, &res);
        break;
    }
    if (rc < 0) return -1;
    it->items = res.u.l;
    return 0;
}

int tpl_apply_filter(tctx *c, int id, const char *name, tval v, const targs *a, tval *out) {
    tval s[4];
    switch (id) { /* the filters that take no argument but the value */
    case F_ABS:
    case F_CAPITALIZE:
    case F_COUNT:
    case F_E:
    case F_ESCAPE:
    case F_FIRST:
    case F_FORCEESCAPE:
    case F_LAST:
    case F_LENGTH:
    case F_LIST:
    case F_LOWER:
    case F_ITEMS:
    case F_REVERSE:
    case F_SAFE:
    case F_STRING:
    case F_STRIPTAGS:
    case F_TITLE:
    case F_UPPER:
    case F_URLENCODE:
    case F_WORDCOUNT:
        if (a->npos || a->nkw)
            return tpl_fail(c, "%s() takes exactly one argument (%u given)", name,
                            1 + a->npos + a->nkw);
        break;
    default:
        break;
    }
    switch (id) {
    case F_ABS:
        if (v.t == TV_INT) {
            if (v.u.i == INT64_MIN) return tpl_int_overflow(c);
            *out = tv_int(v.u.i < 0 ? -v.u.i : v.u.i);
        } else if (v.t == TV_BOOL)
            *out = tv_int(v.u.b);
        else if (v.t == TV_FLOAT)
            *out = tv_float(fabs(v.u.f));
        else if (v.t == TV_UNDEF)
            return tpl_fail_undef(c, v);
        else
            return tpl_fail(c, "bad operand type for abs(): '%s'", tpl_type_name(v.t));
        return 0;
    case F_ATTR: {
        static const char *const P[] = {"name"};
        if (tpl_bind_args(c, "attr", P, 1, a, s) < 0) return -1;
        if (!tv_given(s[0]) || tpl_want_str(c, s[0], "attribute name") < 0)
            return tv_given(s[0]) ? -1 : tpl_fail(c, "attr() missing 'name'");
        int mid = tpl_method_id(s[0].u.s->p, s[0].u.s->len);
        if (v.t != TV_DICT) return tpl_getattr(c, v, s[0].u.s, mid, out);
        /* a dict's attributes are its methods, not its keys */
        int r = tpl_bind_method(c, v, mid, out);
        if (r == 0) *out = tpl_undef_key(c, UD_ATTR, v.t, s[0]);
        return r < 0 ? -1 : 0;
    }
    case F_BATCH:
    case F_SLICE:
    case F_MAP:
    case F_SELECT:
    case F_REJECT:
    case F_SELECTATTR:
    case F_REJECTATTR:
    case F_UNIQUE:
    case F_ITEMS:
        return lazy_generator(c, id, v, a, out);
    case F_CAPITALIZE:
    case F_LOWER:
    case F_UPPER: {
        tval str;
        if (tpl_bind_args(c, name, NULL, 0, a, s) < 0 || tpl_to_str(c, v, &str) < 0) return -1;
        int rc = tpl_str_case(c, str,
                              id == F_LOWER   ? CASE_LOWER
                              : id == F_UPPER ? CASE_UPPER
                                              : CASE_CAPITALIZE,
                              out);
        tpl_decref(c, str);
        return rc;
    }
    case F_TITLE: {
        tval str;
        if (tpl_bind_args(c, name, NULL, 0, a, s) < 0 || tpl_to_str(c, v, &str) < 0) return -1;
        int rc = tpl_str_title_words(c, str, out);
        tpl_decref(c, str);
        return rc;
    }
    case F_CENTER: {
        static const char *const P[] = {"width"};
        int64_t w = 80;
        tval str;
        if (tpl_bind_args(c, "center", P, 1, a, s) < 0 ||
            (tv_given(s[0]) && tpl_want_int(c, s[0], "width", &w) < 0) ||
            tpl_to_str(c, v, &str) < 0)
            return -1;
        int rc = tpl_str_pad(c, str, w, tv_absent(), 0, out);
        tpl_decref(c, str);
        return rc;
    }
    case F_COUNT:
    case F_LENGTH: {
        int64_t n = tpl_len(v);
        if (n < 0) return tpl_fail(c, "object of type '%s' has no len()", tpl_val_type_name(v));
        *out = tv_int(n);
        return 0;
    }
    case F_D:
    case F_DEFAULT: {
        static const char *const P[] = {"default_value", "boolean"};
        if (tpl_bind_args(c, "default", P, 2, a, s) < 0) return -1;
        bool boolean = tv_given(s[1]) && tpl_truthy(s[1]);
        if (v.t == TV_UNDEF || (boolean && !tpl_truthy(v))) {
            if (tv_given(s[0]))
                tpl_incref(*out = s[0]);
            else
                return tpl_str_val(c, "", 0, out);
            return 0;
        }
        tpl_incref(*out = v);
        return 0;
    }
    case F_DICTSORT:
        return filter_dictsort(c, v, a, out);
    case F_E:
    case F_ESCAPE:
        return tpl_html_escape(c, v, out);
    case F_FORCEESCAPE: {
        tval str;
        if (tpl_to_str(c, v, &str) < 0) return -1;
        str.markup = 0;
        int rc = tpl_html_escape(c, str, out);
        tpl_decref(c, str);
        return rc;
    }
    case F_FILESIZEFORMAT:
        return filter_filesizeformat(c, v, a, out);
    case F_FIRST:
    case F_LAST: {
        if (v.t == TV_ITER && !IT_IS_VIEW(((titer *)v.u.o)->kind)) {
            titer *it = (titer *)v.u.o;
            if (id == F_LAST)
                return tpl_fail(c, "'%s' object is not reversible", tpl_val_type_name(v));
            if (tpl_iter_force(c, it) < 0) return -1;
            if (it->pos >= it->items->n)
                *out = tv_undef_named(UD_HINT, 0, "No first item, sequence was empty.");
            else
                tpl_incref(*out = it->items->v[it->pos++]);
            return 0;
        }
        tlist *items;
        if (tpl_iterate(c, v, &items) < 0) return -1;
        if (!items->n)
            *out = tv_undef_named(UD_HINT, 0,
                                  id == F_FIRST ? "No first item, sequence was empty."
                                                : "No last item, sequence was empty.");
        else
            tpl_incref(*out = items->v[id == F_FIRST ? 0 : items->n - 1]);
        tpl_obj_decref(c, &items->h);
        return 0;
    }
    case F_FLOAT:
        return filter_float(c, v, a, out);
    case F_INT:
        return filter_int(c, v, a, out);
    case F_FORMAT: {
        if (a->npos && a->nkw)
            return tpl_fail(c, "can't handle positional and keyword arguments at the same time");
        tval str, args;
        if (tpl_to_str(c, v, &str) < 0) return -1;
        int rc;
        if (a->nkw) {
            tdict *d = tpl_dict(c, TV_DICT);
            rc = d ? 0 : -1;
            for (uint32_t k = 0; k < a->nkw && rc == 0; k++) {
                tpl_incref(tv_obj(TV_STR, a->kwn[k]));
                tpl_incref(a->kwv[k]);
                rc = tpl_dict_set(c, d, tv_obj(TV_STR, a->kwn[k]), a->kwv[k]);
            }
            args = d ? tv_obj(TV_DICT, d) : tv_none();
        } else {
            tlist *t = tpl_list(c, TV_TUPLE, a->npos);
            rc = t ? 0 : -1;
            for (uint32_t k = 0; t && k < a->npos; k++) tpl_incref(t->v[t->n++] = a->pos[k]);
            args = t ? tv_obj(TV_TUPLE, t) : tv_none();
        }
        if (rc == 0) rc = tpl_percent_format(c, str, args, out);
        tpl_decref(c, args);
        tpl_decref(c, str);
        return rc;
    }
    case F_INDENT:
        return filter_indent(c, v, a, out);
    case F_JOIN: {
        static const char *const P[] = {"d", "attribute"};
        if (tpl_bind_args(c, "join", P, 2, a, s) < 0) return -1;
        tval sep;
        if (tv_given(s[0])) {
            if (tpl_to_str(c, s[0], &sep) < 0) return -1;
        } else if (tpl_str_val(c, "", 0, &sep) < 0)
            return -1;
        tlist *items;
        if (tpl_iterate(c, v, &items) < 0) {
            tpl_decref(c, sep);
            return -1;
        }
        tbuf b = {0};
        int rc = 0;
        for (size_t i = 0; i < items->n && rc == 0; i++) {
            tval x;
            if (tv_given(s[1]) && s[1].t != TV_NONE)
                rc = attr_lookup(c, items->v[i], s[1], tv_absent(), &x);
            else
                tpl_incref(x = items->v[i]);
            if (rc < 0) break;
            if ((i && !tbuf_put(c, &b, sep.u.s->p, sep.u.s->len)) || !tpl_append_str(c, &b, x))
                rc = -1;
            tpl_decref(c, x);
        }
        tpl_obj_decref(c, &items->h);
        tpl_decref(c, sep);
        if (rc < 0) {
            tbuf_free(c, &b);
            return -1;
        }
        return tpl_str_from_buf(c, &b, out);
    }
    case F_LIST: {
        tlist *items, *l;
        if (tpl_iterate(c, v, &items) < 0) return -1;
        l = tpl_list(c, TV_LIST, items->n);
        if (l) {
            for (size_t i = 0; i < items->n; i++) tpl_incref(l->v[l->n++] = items->v[i]);
            *out = tv_obj(TV_LIST, l);
        }
        tpl_obj_decref(c, &items->h);
        return l ? 0 : -1;
    }
    case F_MIN:
        return filter_minmax(c, v, a, false, out);
    case F_MAX:
        return filter_minmax(c, v, a, true, out);
    case F_REPLACE: {
        static const char *const P[] = {"old", "new", "count"};
        if (tpl_bind_args(c, "replace", P, 3, a, s) < 0) return -1;
        if (!tv_given(s[0]) || !tv_given(s[1]))
            return tpl_fail(c, "replace() missing required arguments 'old' and 'new'");
        int64_t count = -1;
        if (tv_given(s[2]) && s[2].t != TV_NONE && tpl_want_int(c, s[2], "count", &count) < 0)
            return -1;
        tval str, o, w;
        if (tpl_to_str(c, v, &str) < 0) return -1;
        str.markup = 0; /* str(s).replace(...): autoescape is off */
        if (tpl_to_str(c, s[0], &o) < 0 || tpl_to_str(c, s[1], &w) < 0) return -1;
        int rc = tpl_str_replace(c, str, o, w, count, out);
        out->markup = 0;
        tpl_decref(c, str);
        tpl_decref(c, o);
        tpl_decref(c, w);
        return rc;
    }
    case F_REVERSE: {
        if (v.t == TV_STR) {
            tbuf b = {0};
            const char *p = v.u.s->p;
            size_t e = v.u.s->len;
            while (e > 0) {
                size_t st = e - 1;
                while (st > 0 && ((unsigned char)p[st] & 0xc0) == 0x80 && e - st < 4) st--;
                size_t j = st;
                tpl_utf8_next(p, e, &j);
                if (j != e) st = e - 1;
                if (!tbuf_put(c, &b, p + st, e - st)) {
                    tbuf_free(c, &b);
                    return -1;
                }
                e = st;
            }
            if (tpl_str_from_buf(c, &b, out) < 0) return -1;
            out->markup = v.markup;
            return 0;
        }
        if (v.t != TV_LIST && v.t != TV_TUPLE && v.t != TV_DICT && v.t != TV_UNDEF &&
            v.t != TV_ITER)
            return tpl_fail(c, "argument must be iterable");
        tlist *items, *l;
        if (tpl_iterate(c, v, &items) < 0) return -1;
        l = tpl_list(c, TV_LIST, items->n);
        if (l)
            for (size_t i = items->n; i-- > 0;) tpl_incref(l->v[l->n++] = items->v[i]);
        tpl_obj_decref(c, &items->h);
        if (!l) return -1;
        /* reversed() of a sequence is an iterator; of a generator, list() then reverse() */
        if (v.t == TV_ITER && !IT_IS_VIEW(((titer *)v.u.o)->kind)) {
            *out = tv_obj(TV_LIST, l);
            return 0;
        }
        uint8_t kind = v.t == TV_DICT                                         ? IT_DICT_REVERSE
                       : v.t == TV_ITER && ((titer *)v.u.o)->kind == IT_RANGE ? IT_RANGE_REVERSE
                                                                              : IT_LIST_REVERSE;
        return tpl_make_iter(c, l, kind, out);
    }
    case F_ROUND:
        return filter_round(c, v, a, out);
    case F_SAFE: {
        if (tpl_to_str(c, v, out) < 0) return -1;
        out->markup = 1;
        return 0;
    }
    case F_SORT: {
        static const char *const P[] = {"reverse", "case_sensitive", "attribute"};
        if (tpl_bind_args(c, "sort", P, 3, a, s) < 0) return -1;
        return filter_sort(c, v, tv_given(s[0]) && tpl_truthy(s[0]),
                           tv_given(s[1]) && tpl_truthy(s[1]), s[2], out);
    }
    case F_STRING:
        return tpl_to_str(c, v, out);
    case F_STRIPTAGS:
        return filter_striptags(c, v, out);
    case F_SUM:
        return filter_sum(c, v, a, out);
    case F_TRIM: {
        static const char *const P[] = {"chars"};
        tval str;
        if (tpl_bind_args(c, "trim", P, 1, a, s) < 0 || tpl_to_str(c, v, &str) < 0) return -1;
        int rc = tpl_str_strip(c, str, s[0], true, true, out);
        tpl_decref(c, str);
        return rc;
    }
    case F_TRUNCATE:
        return filter_truncate(c, v, a, out);
    case F_WORDCOUNT:
        return filter_wordcount(c, v, out);
    case F_TOJSON:
        return filter_tojson(c, v, a, out);
    case F_GROUPBY:
        return filter_groupby(c, v, a, out);
    case F_URLENCODE:
        return filter_urlencode(c, v, out);
    default:
        return unsupported_filter(c, name);
    }
}

/* ---- tests ---- */

static int mod_test(tctx *c, tval v, tval m, bool *res) {
    tval r;
    if (tpl_binop(c, OP_MOD, v, m, &r) < 0) return -1;
    tval zero = tv_int(0);
    *res = tpl_eq(c, r, zero);
    tpl_decref(c, r);
    return 0;
}

int tpl_apply_test(tctx *c, int id, const char *name, tval v, const targs *a, bool *out) {
    tval s[1];
    tval other = a->npos ? a->pos[0] : a->nkw ? a->kwv[0] : tv_absent();
    bool takes_arg = id == T_DIVISIBLEBY || id == T_SAMEAS || id == T_IN || id >= T_EQ;
    if (!takes_arg && (a->npos || a->nkw))
        return tpl_fail(c, "test_%s() takes 1 positional argument but %u were given", name,
                        1 + a->npos + a->nkw);
    if (takes_arg && a->npos + a->nkw > 1)
        return tpl_fail(c, "test_%s() takes 2 positional arguments but %u were given", name,
                        1 + a->npos + a->nkw);
    switch (id) {
    case T_ODD:
    case T_EVEN: {
        tval r;
        if (tpl_binop(c, OP_MOD, v, tv_int(2), &r) < 0) return -1;
        *out = tpl_eq(c, r, tv_int(id == T_ODD ? 1 : 0));
        tpl_decref(c, r);
        return 0;
    }
    case T_DIVISIBLEBY: {
        static const char *const P[] = {"num"};
        if (tpl_bind_args(c, "divisibleby", P, 1, a, s) < 0) return -1;
        if (!tv_given(s[0]))
            return tpl_fail(c, "divisibleby() missing 1 required positional argument: 'num'");
        return mod_test(c, v, s[0], out);
    }
    case T_DEFINED:
        *out = v.t != TV_UNDEF;
        return 0;
    case T_UNDEFINED:
        *out = v.t == TV_UNDEF;
        return 0;
    case T_FILTER:
        *out = v.t == TV_STR && tpl_filter_id(v.u.s->p, v.u.s->len) >= 0;
        return 0;
    case T_TEST:
        *out = v.t == TV_STR && tpl_test_id(v.u.s->p, v.u.s->len) >= 0;
        return 0;
    case T_NONE:
        *out = v.t == TV_NONE;
        return 0;
    case T_BOOLEAN:
        *out = v.t == TV_BOOL;
        return 0;
    case T_FALSE:
        *out = v.t == TV_BOOL && !v.u.b;
        return 0;
    case T_TRUE:
        *out = v.t == TV_BOOL && v.u.b;
        return 0;
    case T_INTEGER:
        *out = v.t == TV_INT;
        return 0;
    case T_FLOAT:
        *out = v.t == TV_FLOAT;
        return 0;
    case T_NUMBER:
        *out = tv_is_num(v);
        return 0;
    case T_STRING:
        *out = v.t == TV_STR;
        return 0;
    case T_MAPPING:
        *out = v.t == TV_DICT;
        return 0;
    case T_SEQUENCE:
        *out = v.t == TV_STR || v.t == TV_LIST || v.t == TV_TUPLE || v.t == TV_DICT ||
               v.t == TV_UNDEF || (v.t == TV_ITER && ((titer *)v.u.o)->kind == IT_RANGE);
        return 0;
    case T_ITERABLE:
        *out = v.t == TV_STR || v.t == TV_LIST || v.t == TV_TUPLE || v.t == TV_DICT ||
               v.t == TV_UNDEF || v.t == TV_LOOP || v.t == TV_ITER;
        return 0;
    case T_CALLABLE:
        *out = v.t == TV_MACRO || v.t == TV_BUILTIN || v.t == TV_METHOD || v.t == TV_JOINER ||
               v.t == TV_LOOP || v.t == TV_UNDEF;
        return 0;
    case T_ESCAPED:
        *out = v.t == TV_STR && v.markup;
        return 0;
    case T_LOWER:
    case T_UPPER: {
        tval str;
        if (tpl_to_str(c, v, &str) < 0) return -1;
        *out = tpl_str_is(str, id == T_LOWER ? M_ISLOWER : M_ISUPPER);
        tpl_decref(c, str);
        return 0;
    }
    case T_SAMEAS:
        if (!tv_given(other))
            return tpl_fail(c, "sameas() missing 1 required positional argument: 'other'");
        if (v.t != other.t)
            *out = false;
        else if (TV_IS_HEAP(v.t))
            *out = v.u.o == other.u.o || (v.t == TV_STR && tpl_eq(c, v, other));
        else
            *out = tpl_eq(c, v, other);
        return 0;
    case T_IN: {
        if (!tv_given(other))
            return tpl_fail(c, "in() missing 1 required positional argument: 'seq'");
        switch (other.t) {
        case TV_STR:
            if (v.t != TV_STR)
                return tpl_fail(c, "'in <string>' requires string as left operand, not %s",
                                tpl_type_name(v.t));
            *out = v.u.s->len == 0 || memmem(other.u.s->p, other.u.s->len, v.u.s->p, v.u.s->len);
            return 0;
        case TV_LIST:
        case TV_TUPLE:
            *out = false;
            for (size_t i = 0; i < other.u.l->n && !*out; i++) *out = tpl_eq(c, other.u.l->v[i], v);
            return 0;
        case TV_DICT: {
            int err = 0;
            *out = tpl_dict_get(c, other.u.d, v, &err) != NULL;
            return err;
        }
        case TV_UNDEF:
            *out = false;
            return 0;
        default:
            return tpl_fail(c, "argument of type '%s' is not iterable", tpl_type_name(other.t));
        }
    }
    default: {
        if (!tv_given(other))
            return tpl_fail(c, "%s() missing 1 required positional argument", name);
        int r;
        switch (id) {
        case T_EQ:
        case T_EQ2:
        case T_EQUALTO:
            *out = tpl_eq(c, v, other);
            return 0;
        case T_NE:
        case T_NE2:
            *out = !tpl_eq(c, v, other);
            return 0;
        case T_GT:
        case T_GT2:
        case T_GREATERTHAN:
            r = tpl_lt(c, other, v);
            break;
        case T_LT:
        case T_LT2:
        case T_LESSTHAN:
            r = tpl_lt(c, v, other);
            break;
        case T_GE:
        case T_GE2:
            if ((r = tpl_lt(c, other, v)) == 0) r = tpl_eq(c, v, other);
            break;
        default:
            if ((r = tpl_lt(c, v, other)) == 0) r = tpl_eq(c, v, other);
        }
        if (r < 0) return -1;
        *out = r != 0;
        return 0;
    }
    }
}
