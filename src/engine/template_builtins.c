/* template_builtins.c - the methods of str, list, dict, the loop variable
 * and cyclers; the global functions (range, dict, namespace, cycler,
 * joiner, raise_exception, strftime_now); Python's binary operators; and
 * the argument binding every filter, test and method uses.
 *
 * Contract. Each function takes borrowed arguments and returns a new
 * reference (or -1 with the render's error set). Semantics are Python's,
 * in transformers' immutable sandbox: list.append, dict.update and the
 * other methods that modify an object are "unsafe" (reading them gives an
 * undefined value, calling them fails). range() is capped at 100,000 items
 * as in the sandbox. Single-threaded: state lives in the render's tctx.
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

static const char *const METHODS[M_COUNT_] = {
    "capitalize", "casefold",  "center",     "count",      "endswith",     "find",
    "format",     "index",     "isalnum",    "isalpha",    "isdecimal",    "isdigit",
    "islower",    "isnumeric", "isspace",    "istitle",    "isupper",      "join",
    "ljust",      "lower",     "lstrip",     "partition",  "removeprefix", "removesuffix",
    "replace",    "rfind",     "rindex",     "rjust",      "rpartition",   "rsplit",
    "rstrip",     "split",     "splitlines", "startswith", "strip",        "swapcase",
    "title",      "upper",     "zfill",      "get",        "items",        "keys",
    "values",     "copy",      "append",     "clear",      "extend",       "insert",
    "pop",        "popitem",   "remove",     "reverse",    "setdefault",   "sort",
    "update",     "cycle",     "changed",    "next",       "reset"};

int tpl_name_index(const char *const *names, int n, const char *s, size_t len) {
    for (int i = 0; i < n; i++)
        if (strlen(names[i]) == len && memcmp(names[i], s, len) == 0) return i;
    return -1;
}

const char *tpl_method_name(int id) {
    return METHODS[id];
}

int tpl_method_id(const char *name, size_t len) {
    return tpl_name_index(METHODS, M_COUNT_, name, len);
}

/* ---- arguments ---- */

int tpl_bind_args(tctx *c, const char *fname, const char *const *params, int n, const targs *a,
                  tval *slots) {
    for (int i = 0; i < n; i++) slots[i] = tv_absent();
    if ((int)a->npos > n)
        return tpl_fail(c, "%s() takes at most %d argument%s (%u given)", fname, n,
                        n == 1 ? "" : "s", a->npos);
    for (uint32_t i = 0; i < a->npos; i++) slots[i] = a->pos[i];
    for (uint32_t k = 0; k < a->nkw; k++) {
        int i = 0;
        while (i < n && strcmp(params[i], a->kwn[k]->p) != 0) i++;
        if (i == n)
            return tpl_fail(c, "%s() got an unexpected keyword argument '%s'", fname, a->kwn[k]->p);
        if (slots[i].t != TV_ABSENT)
            return tpl_fail(c, "%s() got multiple values for argument '%s'", fname, a->kwn[k]->p);
        slots[i] = a->kwv[k];
    }
    return 0;
}

int tpl_want_int(tctx *c, tval v, const char *what, int64_t *out) {
    if (v.t == TV_INT)
        *out = v.u.i;
    else if (v.t == TV_BOOL)
        *out = v.u.b;
    else if (v.t == TV_UNDEF)
        return tpl_fail_undef(c, v);
    else
        return tpl_fail(c, "%s must be an integer, not %s", what, tpl_type_name(v.t));
    return 0;
}

int tpl_want_str(tctx *c, tval v, const char *what) {
    if (v.t == TV_STR) return 0;
    if (v.t == TV_UNDEF) return tpl_fail_undef(c, v);
    return tpl_fail(c, "%s must be str, not %s", what, tpl_type_name(v.t));
}

int tpl_new_list(tctx *c, uint8_t type, size_t cap, tlist **out) {
    return (*out = tpl_list(c, type, cap)) ? 0 : -1;
}

int tpl_push(tctx *c, tlist *l, tval v) {
    return tpl_list_push(c, l, v) ? 0 : -1;
}

int tpl_pair(tctx *c, tval a, tval b, tval *out) { /* takes a and b */
    tlist *t = tpl_list(c, TV_TUPLE, 2);
    if (!t) {
        tpl_decref(c, a);
        tpl_decref(c, b);
        return -1;
    }
    t->v[0] = a;
    t->v[1] = b;
    t->n = 2;
    *out = tv_obj(TV_TUPLE, t);
    return 0;
}

/* ---- operators ---- */

static int op_unsupported(tctx *c, const char *op, tval a, tval b) {
    if (a.t == TV_UNDEF) return tpl_fail_undef(c, a);
    if (b.t == TV_UNDEF) return tpl_fail_undef(c, b);
    return tpl_fail(c, "unsupported operand type(s) for %s: '%s' and '%s'", op,
                    a.t == TV_STR && a.markup ? "Markup" : tpl_type_name(a.t),
                    b.t == TV_STR && b.markup ? "Markup" : tpl_type_name(b.t));
}

static int concat_seq(tctx *c, tval a, tval b, tval *out) {
    if (tpl_work(c, a.u.l->n + b.u.l->n) < 0) return -1;
    tlist *l = tpl_list(c, a.t, a.u.l->n + b.u.l->n);
    if (!l) return -1;
    for (size_t i = 0; i < a.u.l->n; i++) tpl_incref(l->v[l->n++] = a.u.l->v[i]);
    for (size_t i = 0; i < b.u.l->n; i++) tpl_incref(l->v[l->n++] = b.u.l->v[i]);
    *out = tv_obj(a.t, l);
    return 0;
}

static int repeat(tctx *c, tval s, int64_t times, tval *out) {
    if (times < 0) times = 0;
    if (s.t == TV_STR) {
        if (times && s.u.s->len > TPL_MAX_OUTPUT / (uint64_t)times)
            return tpl_fail(c, "a string of more than %u MiB", TPL_MAX_OUTPUT >> 20);
        tbuf b = {0};
        for (int64_t i = 0; i < times; i++)
            if (!tbuf_put(c, &b, s.u.s->p, s.u.s->len)) {
                tbuf_free(c, &b);
                return -1;
            }
        if (tpl_str_from_buf(c, &b, out) < 0) return -1;
        out->markup = s.markup;
        return 0;
    }
    if (times && s.u.l->n > (TPL_MAX_LIVE_BYTES / sizeof(tval)) / (uint64_t)times)
        return tpl_fail(c, "a list that long does not fit in memory");
    if (tpl_work(c, s.u.l->n * (uint64_t)times) < 0) return -1;
    tlist *l = tpl_list(c, s.t, s.u.l->n * (size_t)times);
    if (!l) return -1;
    for (int64_t t = 0; t < times; t++)
        for (size_t i = 0; i < s.u.l->n; i++) tpl_incref(l->v[l->n++] = s.u.l->v[i]);
    *out = tv_obj(s.t, l);
    return 0;
}

int tpl_int_overflow(tctx *c) {
    return tpl_fail(c, "integer overflow: the result does not fit in 64 bits");
}

int tpl_binop(tctx *c, int op, tval a, tval b, tval *out) {
    static const char *const NAMES[] = {"+", "-", "*", "/", "//", "%", "** or pow()"};
    bool ints = (a.t == TV_INT || a.t == TV_BOOL) && (b.t == TV_INT || b.t == TV_BOOL);
    bool nums = tv_is_num(a) && tv_is_num(b);
    switch (op) {
    case OP_ADD:
        if (ints) {
            int64_t r;
            if (__builtin_add_overflow(tv_num_i(a), tv_num_i(b), &r)) return tpl_int_overflow(c);
            *out = tv_int(r);
            return 0;
        }
        if (nums) {
            *out = tv_float(tv_num_f(a) + tv_num_f(b));
            return 0;
        }
        if (a.t == TV_STR && b.t == TV_STR) {
            tval l = a, r = b, el = tv_none(), er = tv_none();
            if (a.markup && !b.markup) {
                if (tpl_html_escape(c, b, &er) < 0) return -1;
                r = er;
            } else if (b.markup && !a.markup) {
                if (tpl_html_escape(c, a, &el) < 0) return -1;
                l = el;
            }
            int rc = 0;
            tstr *res = tpl_str_cat(c, l.u.s, r.u.s);
            if (!res)
                rc = -1;
            else {
                *out = tv_obj(TV_STR, res);
                out->markup = a.markup || b.markup;
            }
            tpl_decref(c, el);
            tpl_decref(c, er);
            return rc;
        }
        if ((a.t == TV_LIST || a.t == TV_TUPLE) && a.t == b.t) return concat_seq(c, a, b, out);
        if ((a.t == TV_STR || a.t == TV_LIST || a.t == TV_TUPLE) && b.t != TV_UNDEF &&
            !(a.t == TV_STR && a.markup))
            return tpl_fail(c, "can only concatenate %s (not \"%s\") to %s", tpl_type_name(a.t),
                            tpl_type_name(b.t), tpl_type_name(a.t));
        return op_unsupported(c, NAMES[op], a, b);
    case OP_SUB:
        if (ints) {
            int64_t r;
            if (__builtin_sub_overflow(tv_num_i(a), tv_num_i(b), &r)) return tpl_int_overflow(c);
            *out = tv_int(r);
            return 0;
        }
        if (nums) {
            *out = tv_float(tv_num_f(a) - tv_num_f(b));
            return 0;
        }
        return op_unsupported(c, NAMES[op], a, b);
    case OP_MUL:
        if (ints) {
            int64_t r;
            if (__builtin_mul_overflow(tv_num_i(a), tv_num_i(b), &r)) return tpl_int_overflow(c);
            *out = tv_int(r);
            return 0;
        }
        if (nums) {
            *out = tv_float(tv_num_f(a) * tv_num_f(b));
            return 0;
        }
        if ((a.t == TV_STR || a.t == TV_LIST || a.t == TV_TUPLE) &&
            (b.t == TV_INT || b.t == TV_BOOL))
            return repeat(c, a, tv_num_i(b), out);
        if ((b.t == TV_STR || b.t == TV_LIST || b.t == TV_TUPLE) &&
            (a.t == TV_INT || a.t == TV_BOOL))
            return repeat(c, b, tv_num_i(a), out);
        if ((a.t == TV_STR || a.t == TV_LIST || a.t == TV_TUPLE) && b.t != TV_UNDEF)
            return tpl_fail(c, "can't multiply sequence by non-int of type '%s'",
                            tpl_type_name(b.t));
        return op_unsupported(c, NAMES[op], a, b);
    case OP_DIV:
        if (!nums) return op_unsupported(c, NAMES[op], a, b);
        if (tv_num_f(b) == 0) return tpl_fail(c, "division by zero");
        *out = tv_float(tv_num_f(a) / tv_num_f(b));
        return 0;
    case OP_FLOORDIV:
    case OP_MOD:
        if (op == OP_MOD && a.t == TV_STR) return tpl_percent_format(c, a, b, out);
        if (!nums) return op_unsupported(c, NAMES[op], a, b);
        if (ints) {
            int64_t x = tv_num_i(a), y = tv_num_i(b);
            if (y == 0)
                return tpl_fail(c, op == OP_MOD ? "integer modulo by zero"
                                                : "integer division or modulo by zero");
            if (x == INT64_MIN && y == -1) {
                if (op == OP_MOD)
                    *out = tv_int(0);
                else
                    return tpl_int_overflow(c);
                return 0;
            }
            int64_t q = x / y, r = x % y;
            if (r != 0 && ((r < 0) != (y < 0))) q--, r += y;
            *out = tv_int(op == OP_MOD ? r : q);
            return 0;
        }
        {
            double x = tv_num_f(a), y = tv_num_f(b);
            if (y == 0)
                return tpl_fail(c, op == OP_MOD ? "float modulo" : "float floor division by zero");
            double m = fmod(x, y);
            if (m != 0 && ((m < 0) != (y < 0))) m += y;
            if (op == OP_MOD) {
                *out = tv_float(m == 0 ? copysign(0.0, y) : m);
            } else {
                double q = (x - m) / y;
                double fq = floor(q);
                if (q - fq > 0.5) fq += 1;
                *out = tv_float(q == 0 ? copysign(0.0, x / y) : fq);
            }
            return 0;
        }
    case OP_POW:
        if (!nums) return op_unsupported(c, NAMES[op], a, b);
        if (ints && tv_num_i(b) >= 0) {
            int64_t base = tv_num_i(a), e = tv_num_i(b), r = 1;
            while (e > 0) {
                if (e & 1 && __builtin_mul_overflow(r, base, &r)) return tpl_int_overflow(c);
                e >>= 1;
                if (e && __builtin_mul_overflow(base, base, &base)) return tpl_int_overflow(c);
            }
            *out = tv_int(r);
            return 0;
        }
        if (tv_num_f(a) == 0 && tv_num_f(b) < 0)
            return tpl_fail(c, "0.0 cannot be raised to a negative power");
        if (tv_num_f(a) < 0 && tv_num_f(b) != floor(tv_num_f(b)))
            return tpl_fail(c, "complex results are not supported");
        *out = tv_float(pow(tv_num_f(a), tv_num_f(b)));
        return 0;
    }
    return tpl_fail(c, "unknown operator");
}

/* ---- methods ---- */

static bool is_mutator(int id) {
    return id >= M_APPEND && id <= M_UPDATE;
}

static bool has_method(uint8_t t, int id) {
    if (id < 0) return false;
    switch (t) {
    case TV_STR:
        return id <= M_ZFILL;
    case TV_LIST:
        return id == M_COUNT || id == M_INDEX || id == M_COPY ||
               (is_mutator(id) && id != M_POPITEM && id != M_SETDEFAULT && id != M_UPDATE);
    case TV_TUPLE:
        return id == M_COUNT || id == M_INDEX;
    case TV_DICT:
        return (id >= M_GET && id <= M_COPY) || id == M_CLEAR || id == M_POP || id == M_POPITEM ||
               id == M_SETDEFAULT || id == M_UPDATE;
    case TV_LOOP:
        return id == M_CYCLE || id == M_CHANGED;
    case TV_CYCLER:
        return id == M_NEXT || id == M_RESET;
    default:
        return false;
    }
}

int tpl_bind_method(tctx *c, tval obj, int id, tval *out) {
    if (!has_method(obj.t, id)) return 0;
    if (is_mutator(id)) {
        /* the immutable sandbox refuses methods that modify the object */
        *out = tv_undef_named(UD_UNSAFE, obj.t, METHODS[id]);
        return 1;
    }
    tmethod *m = tpl_alloc(c, TV_METHOD, sizeof(tmethod));
    if (!m) return -1;
    tpl_incref(m->self = obj);
    m->id = id;
    *out = tv_obj(TV_METHOD, m);
    return 1;
}

int tpl_no_args(tctx *c, const char *name, const targs *a) {
    if (a->npos || a->nkw) return tpl_fail(c, "%s() takes no arguments", name);
    return 0;
}

static int seq_method(tctx *c, tval l, int id, const targs *a, tval *out) {
    if (id == M_COPY) {
        if (tpl_no_args(c, "copy", a) < 0) return -1;
        tlist *n = tpl_list(c, TV_LIST, l.u.l->n);
        if (!n) return -1;
        for (size_t i = 0; i < l.u.l->n; i++) tpl_incref(n->v[n->n++] = l.u.l->v[i]);
        *out = tv_obj(TV_LIST, n);
        return 0;
    }
    if (a->npos < 1 || a->nkw) return tpl_fail(c, "%s() takes at least one argument", METHODS[id]);
    int64_t count = 0, found = -1;
    for (size_t i = 0; i < l.u.l->n; i++) {
        if (!tpl_eq(c, l.u.l->v[i], a->pos[0])) continue;
        count++;
        if (found < 0) found = (int64_t)i;
    }
    if (id == M_COUNT) {
        *out = tv_int(count);
        return 0;
    }
    if (found < 0) return tpl_fail(c, "value is not in %s", tpl_type_name(l.t));
    *out = tv_int(found);
    return 0;
}

static int dict_method(tctx *c, tval d, int id, const targs *a, tval *out) {
    tdict *dd = d.u.d;
    switch (id) {
    case M_GET: {
        if (a->npos < 1 || a->npos > 2 || a->nkw)
            return tpl_fail(c, "get expected 1 or 2 arguments, got %u", a->npos);
        int err = 0;
        tval *v = tpl_dict_get(c, dd, a->pos[0], &err);
        if (err < 0) return -1;
        if (v)
            tpl_incref(*out = *v);
        else if (a->npos == 2)
            tpl_incref(*out = a->pos[1]);
        else
            *out = tv_none();
        return 0;
    }
    case M_COPY: {
        if (tpl_no_args(c, "copy", a) < 0) return -1;
        tdict *n = tpl_dict(c, TV_DICT);
        if (!n) return -1;
        *out = tv_obj(TV_DICT, n);
        for (uint32_t i = 0; i < dd->n; i++) {
            tpl_incref(dd->k[i]);
            tpl_incref(dd->v[i]);
            if (tpl_dict_set(c, n, dd->k[i], dd->v[i]) < 0) return -1;
        }
        return 0;
    }
    default: { /* items, keys, values: views */
        if (tpl_no_args(c, METHODS[id], a) < 0) return -1;
        tlist *l = tpl_list(c, TV_LIST, dd->n);
        if (!l) return -1;
        if (tpl_make_iter(c, l,
                          id == M_ITEMS  ? IT_DICT_ITEMS
                          : id == M_KEYS ? IT_DICT_KEYS
                                         : IT_DICT_VALUES,
                          out) < 0)
            return -1;
        for (uint32_t i = 0; i < dd->n; i++) {
            tval x;
            if (id == M_ITEMS) {
                tpl_incref(dd->k[i]);
                tpl_incref(dd->v[i]);
                if (tpl_pair(c, dd->k[i], dd->v[i], &x) < 0) return -1;
            } else {
                tpl_incref(x = id == M_KEYS ? dd->k[i] : dd->v[i]);
            }
            l->v[l->n++] = x;
        }
        return 0;
    }
    }
}

int tpl_call_method(tctx *c, const tmethod *m, const targs *a, tval *out) {
    tval self = m->self;
    switch (self.t) {
    case TV_STR:
        return tpl_str_method(c, self, m->id, a, out);
    case TV_LIST:
    case TV_TUPLE:
        return seq_method(c, self, m->id, a, out);
    case TV_DICT:
        return dict_method(c, self, m->id, a, out);
    case TV_LOOP: {
        tloop *l = (tloop *)self.u.o;
        if (a->nkw) return tpl_fail(c, "%s() takes no keyword arguments", METHODS[m->id]);
        if (m->id == M_CYCLE) {
            if (!a->npos) return tpl_fail(c, "no items for cycling given");
            tpl_incref(*out = a->pos[l->index0 % a->npos]);
            return 0;
        }
        /* changed(*values): compares the tuple of values with the last call's */
        tlist *t = tpl_list(c, TV_TUPLE, a->npos);
        if (!t) return -1;
        for (uint32_t i = 0; i < a->npos; i++) tpl_incref(t->v[t->n++] = a->pos[i]);
        tval now = tv_obj(TV_TUPLE, t);
        if (l->changed.t != TV_ABSENT && tpl_eq(c, l->changed, now)) {
            tpl_decref(c, now);
            *out = tv_bool(false);
            return 0;
        }
        tpl_decref(c, l->changed);
        l->changed = now;
        *out = tv_bool(true);
        return 0;
    }
    case TV_CYCLER: {
        tcycler *cy = (tcycler *)self.u.o;
        if (tpl_no_args(c, METHODS[m->id], a) < 0) return -1;
        if (m->id == M_RESET) {
            cy->pos = 0;
            *out = tv_none();
            return 0;
        }
        tpl_incref(*out = cy->items->v[cy->pos]);
        cy->pos = (cy->pos + 1) % cy->items->n;
        return 0;
    }
    default:
        return tpl_fail(c, "'%s' object has no such method", tpl_type_name(self.t));
    }
}

/* ---- global functions ---- */

static int builtin_range(tctx *c, const targs *a, tval *out) {
    if (a->nkw) return tpl_fail(c, "range() takes no keyword arguments");
    if (a->npos < 1 || a->npos > 3)
        return tpl_fail(c, "range expected 1 to 3 arguments, got %u", a->npos);
    int64_t v[3] = {0, 0, 1};
    for (uint32_t i = 0; i < a->npos; i++) {
        if (a->pos[i].t != TV_INT && a->pos[i].t != TV_BOOL) {
            if (a->pos[i].t == TV_UNDEF) return tpl_fail_undef(c, a->pos[i]);
            return tpl_fail(c, "'%s' object cannot be interpreted as an integer",
                            tpl_type_name(a->pos[i].t));
        }
        v[a->npos == 1 ? 1 : i] = tv_num_i(a->pos[i]);
    }
    int64_t start = v[0], stop = v[1], step = v[2];
    if (step == 0) return tpl_fail(c, "range() arg 3 must not be zero");
    long double count = 0;
    if (step > 0 && stop > start) count = ((long double)stop - start + step - 1) / step;
    if (step < 0 && start > stop) count = ((long double)start - stop - step - 1) / -step;
    if (count > TPL_MAX_RANGE)
        return tpl_fail(c, "Range too big. The sandbox blocks ranges larger than MAX_RANGE (%d).",
                        TPL_MAX_RANGE);
    size_t n = (size_t)count;
    tlist *l = tpl_list(c, TV_LIST, n);
    if (!l) return -1;
    for (size_t i = 0; i < n; i++) l->v[l->n++] = tv_int(start + (int64_t)i * step);
    if (tpl_make_iter(c, l, IT_RANGE, out) < 0) return -1;
    titer *r = (titer *)out->u.o;
    r->start = start;
    r->stop = stop;
    r->step = step;
    return 0;
}

static int kwargs_dict(tctx *c, uint8_t type, const targs *a, tval *out) {
    tdict *d = tpl_dict(c, type);
    if (!d) return -1;
    *out = tv_obj(type, d);
    if (a->npos > 1)
        return tpl_fail(c, "%s expected at most 1 argument, got %u",
                        type == TV_NS ? "namespace" : "dict", a->npos);
    if (a->npos == 1) {
        tval src = a->pos[0];
        if (src.t == TV_DICT || src.t == TV_NS) {
            for (uint32_t i = 0; i < src.u.d->n; i++) {
                tpl_incref(src.u.d->k[i]);
                tpl_incref(src.u.d->v[i]);
                if (tpl_dict_set(c, d, src.u.d->k[i], src.u.d->v[i]) < 0) return -1;
            }
        } else {
            tlist *items;
            if (tpl_iterate(c, src, &items) < 0) return -1;
            int rc = 0;
            for (size_t i = 0; i < items->n && rc == 0; i++) {
                tval it = items->v[i];
                if ((it.t != TV_LIST && it.t != TV_TUPLE) || it.u.l->n != 2) {
                    rc = tpl_fail(c, "dictionary update sequence element #%zu has the wrong length",
                                  i);
                    break;
                }
                tpl_incref(it.u.l->v[0]);
                tpl_incref(it.u.l->v[1]);
                rc = tpl_dict_set(c, d, it.u.l->v[0], it.u.l->v[1]);
            }
            tpl_obj_decref(c, &items->h);
            if (rc < 0) return -1;
        }
    }
    for (uint32_t k = 0; k < a->nkw; k++) {
        tpl_incref(tv_obj(TV_STR, a->kwn[k]));
        tpl_incref(a->kwv[k]);
        if (tpl_dict_set(c, d, tv_obj(TV_STR, a->kwn[k]), a->kwv[k]) < 0) return -1;
    }
    return 0;
}

static int builtin_strftime(tctx *c, const targs *a, tval *out) {
    if (a->npos != 1 || a->nkw) return tpl_fail(c, "strftime_now() takes exactly one argument");
    if (tpl_want_str(c, a->pos[0], "format") < 0) return -1;
    if (!a->pos[0].u.s->len) return tpl_str_val(c, "", 0, out);
    time_t t = (time_t)c->now;
    struct tm tm;
    localtime_r(&t, &tm);
    size_t cap = 256 + a->pos[0].u.s->len * 16;
    if (cap > 65536) return tpl_fail(c, "strftime_now() format is too long");
    char *buf = malloc(cap);
    if (!buf) return tpl_fail(c, "out of memory");
    /* a leading byte tells an empty result from a failed one */
    char *fmt = malloc(a->pos[0].u.s->len + 2);
    if (!fmt) {
        free(buf);
        return tpl_fail(c, "out of memory");
    }
    fmt[0] = 'x';
    memcpy(fmt + 1, a->pos[0].u.s->p, a->pos[0].u.s->len + 1);
    size_t n = strftime(buf, cap, fmt, &tm);
    free(fmt);
    int rc =
        n ? tpl_str_val(c, buf + 1, n - 1, out) : tpl_fail(c, "strftime_now() result too long");
    free(buf);
    return rc;
}

int tpl_call_builtin(tctx *c, int id, const targs *a, tval *out) {
    switch (id) {
    case BI_RANGE:
        return builtin_range(c, a, out);
    case BI_DICT:
        return kwargs_dict(c, TV_DICT, a, out);
    case BI_NAMESPACE:
        return kwargs_dict(c, TV_NS, a, out);
    case BI_RAISE: {
        tval msg;
        if (a->npos != 1 || a->nkw)
            return tpl_fail(c, "raise_exception() takes exactly one argument");
        if (tpl_to_str(c, a->pos[0], &msg) < 0) return -1;
        if (!c->status) {
            c->status = HL_TEMPLATE_RAISED;
            hl_errf(c->e, "%s", msg.u.s->p);
        }
        tpl_decref(c, msg);
        return -1;
    }
    case BI_STRFTIME:
        return builtin_strftime(c, a, out);
    case BI_CYCLER: {
        if (a->nkw) return tpl_fail(c, "cycler() takes no keyword arguments");
        if (!a->npos) return tpl_fail(c, "at least one item has to be provided");
        tcycler *cy = tpl_alloc(c, TV_CYCLER, sizeof(tcycler));
        if (!cy) return -1;
        *out = tv_obj(TV_CYCLER, cy);
        if (!(cy->items = tpl_list(c, TV_LIST, a->npos))) return -1;
        for (uint32_t i = 0; i < a->npos; i++) tpl_incref(cy->items->v[cy->items->n++] = a->pos[i]);
        return 0;
    }
    case BI_JOINER: {
        static const char *const P[] = {"sep"};
        tval s[1];
        if (tpl_bind_args(c, "joiner", P, 1, a, s) < 0) return -1;
        tjoiner *j = tpl_alloc(c, TV_JOINER, sizeof(tjoiner));
        if (!j) return -1;
        *out = tv_obj(TV_JOINER, j);
        if (tv_given(s[0]))
            tpl_incref(j->sep = s[0]);
        else if (tpl_str_val(c, ", ", 2, &j->sep) < 0)
            return -1;
        return 0;
    }
    default:
        return tpl_fail(c, "lipsum() is not supported in chat templates");
    }
}
