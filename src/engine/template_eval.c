/* template_eval.c - the evaluator: runs a parsed template over the render's
 * variables, with jinja2's semantics as compiled by its code generator, in
 * the sandbox transformers uses (ImmutableSandboxedEnvironment).
 *
 * Scopes follow jinja2's frames: the template body is the root scope; a
 * for loop's body gets a scope that starts empty on every iteration (what
 * the loop body sets never survives the iteration, nor leaks out), as do
 * macro bodies, call blocks, set blocks, filter blocks, with blocks and
 * {% generation %}; if blocks share their enclosing scope. A name is looked
 * up through the scope chain (a macro's chain is where it was defined), then
 * the render's variables, then the globals; a name found nowhere is
 * Undefined. namespace() objects are the one way to carry values out of a
 * loop.
 *
 * Contract. hl_template_render keeps every bit of state in its tctx, so any
 * number of renders may share one template. Each limit (output size,
 * memory, loop iterations, work, nesting depth) is checked where it is
 * consumed and fails the render with a message naming the template line.
 * An error found where it cannot be returned (inside ==, say) sets the
 * status, which the next expression or statement sees and unwinds. Returns
 * 0, HL_TEMPLATE_ERROR or HL_TEMPLATE_RAISED; out gets the text only on
 * success.
 */
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "template_internal.h"

enum { X_OK = 0, X_BREAK = 1, X_CONTINUE = 2 }; /* exec results besides -1 */

/* ---- errors ---- */

int tpl_fail(tctx *c, const char *fmt, ...) {
    if (c->status) return -1; /* the first error wins */
    char msg[HL_ERR_MSG_MAX];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);
    c->status = HL_TEMPLATE_ERROR;
    hl_errf(c->e, "template error at line %d: %s", c->line, msg);
    return -1;
}

static const char *obj_type_repr(uint8_t t) {
    switch (t) {
    case TV_NONE:
        return "None";
    case TV_STR:
        return "str object";
    case TV_INT:
        return "int object";
    case TV_FLOAT:
        return "float object";
    case TV_BOOL:
        return "bool object";
    case TV_LIST:
        return "list object";
    case TV_TUPLE:
        return "tuple object";
    case TV_DICT:
        return "dict object";
    case TV_NS:
        return "jinja2.utils.Namespace object";
    case TV_LOOP:
        return "jinja2.runtime.LoopContext object";
    case TV_MACRO:
        return "jinja2.runtime.Macro object";
    default:
        return "object";
    }
}

int tpl_fail_undef(tctx *c, tval v) {
    const char *nm = v.u.name;
    switch (v.ukind) {
    case UD_NAME:
        return tpl_fail(c, "'%s' is undefined", nm ? nm : "?");
    case UD_ATTR:
        return tpl_fail(c, "'%s' has no attribute '%s'", obj_type_repr(v.otype), nm ? nm : "?");
    case UD_ITEM:
        return tpl_fail(c, "%s has no element %s", obj_type_repr(v.otype), nm ? nm : "?");
    case UD_UNSAFE:
        return tpl_fail(c, "access to attribute '%s' of '%s' object is unsafe.", nm ? nm : "?",
                        tpl_type_name(v.otype));
    default:
        return tpl_fail(c, "%s", nm ? nm : "undefined value");
    }
}

int tpl_step(tctx *c) {
    if (++c->iterations > TPL_MAX_ITERATIONS)
        return tpl_fail(c, "the template ran more than %d loop iterations (a runaway loop?)",
                        TPL_MAX_ITERATIONS);
    return 0;
}

int tpl_work(tctx *c, uint64_t units) {
    c->work += units;
    if (c->work > TPL_MAX_WORK)
        return tpl_fail(
            c, "the template does more than %d units of work (a runaway loop over large values?)",
            TPL_MAX_WORK);
    return 0;
}

static int enter(tctx *c) {
    if (c->status) return -1; /* an error raised where it could not be returned */
    if (++c->depth > TPL_MAX_DEPTH) {
        c->depth--;
        return tpl_fail(c, "the template nests more than %d levels deep (runaway recursion?)",
                        TPL_MAX_DEPTH);
    }
    return 0;
}

/* An undefined value naming a key: a key computed at run time is kept
 * alive until the render ends (the undefined value may outlive it). */
tval tpl_undef_key(tctx *c, uint8_t ukind, uint8_t otype, tval key) {
    if (key.t == TV_STR && key.u.o->rc == TOBJ_IMMORTAL)
        return tv_undef_named(ukind, otype, key.u.s->p);
    if (key.t == TV_STR && (c->keep || (c->keep = tpl_list(c, TV_LIST, 0)))) {
        tpl_incref(key);
        if (tpl_list_push(c, c->keep, key)) return tv_undef_named(ukind, otype, key.u.s->p);
    }
    return tv_undef_named(ukind, otype, NULL);
}

/* ---- lookups ---- */

static void lookup(tctx *c, tframe *f, const tnode *n, tval *out) {
    for (; f; f = f->parent) {
        tval *v = tpl_frame_find(f, n->sym);
        if (v) {
            tpl_incref(*v);
            *out = *v;
            return;
        }
    }
    tval g = c->globals[n->sym];
    if (g.t != TV_ABSENT) {
        tpl_incref(g);
        *out = g;
        return;
    }
    *out = tv_undef_named(UD_NAME, 0, n->str->p);
}

static int loop_attr(tctx *c, tval obj, tstr *name, int method_id, tval *out) {
    tloop *l = (tloop *)obj.u.o;
    const char *a = name->p;
    size_t n = l->items->n, i = l->index0;
    if (!strcmp(a, "index"))
        *out = tv_int((int64_t)i + 1);
    else if (!strcmp(a, "index0"))
        *out = tv_int((int64_t)i);
    else if (!strcmp(a, "revindex"))
        *out = tv_int((int64_t)(n - i));
    else if (!strcmp(a, "revindex0"))
        *out = tv_int((int64_t)(n - i - 1));
    else if (!strcmp(a, "first"))
        *out = tv_bool(i == 0);
    else if (!strcmp(a, "last"))
        *out = tv_bool(i + 1 == n);
    else if (!strcmp(a, "length"))
        *out = tv_int((int64_t)n);
    else if (!strcmp(a, "depth"))
        *out = tv_int(l->depth0 + 1);
    else if (!strcmp(a, "depth0"))
        *out = tv_int(l->depth0);
    else if (!strcmp(a, "previtem")) {
        if (i == 0)
            *out = tv_undef_named(UD_HINT, 0, "there is no previous item");
        else
            tpl_incref(*out = l->items->v[i - 1]);
    } else if (!strcmp(a, "nextitem")) {
        if (i + 1 >= n)
            *out = tv_undef_named(UD_HINT, 0, "there is no next item");
        else
            tpl_incref(*out = l->items->v[i + 1]);
    } else {
        int r = tpl_bind_method(c, obj, method_id, out);
        if (r < 0) return -1;
        if (r == 0) *out = tpl_undef_key(c, UD_ATTR, TV_LOOP, tv_obj(TV_STR, name));
    }
    return 0;
}

int tpl_getattr(tctx *c, tval obj, tstr *name, int method_id, tval *out) {
    switch (obj.t) {
    case TV_UNDEF:
        return tpl_fail_undef(c, obj);
    case TV_LOOP:
        return loop_attr(c, obj, name, method_id, out);
    case TV_NS: {
        tval *v = tpl_dict_get_str(obj.u.d, name->p, name->len);
        if (v)
            tpl_incref(*out = *v);
        else
            *out = tpl_undef_key(c, UD_ATTR, TV_NS, tv_obj(TV_STR, name));
        return 0;
    }
    case TV_TUPLE:
        if (obj.markup && obj.u.l->n == 2 &&
            (!strcmp(name->p, "grouper") || !strcmp(name->p, "list"))) {
            tpl_incref(*out = obj.u.l->v[name->p[0] == 'l']);
            return 0;
        }
        break;
    case TV_CYCLER:
        if (!strcmp(name->p, "current")) {
            tcycler *cy = (tcycler *)obj.u.o;
            tpl_incref(*out = cy->items->v[cy->pos]);
            return 0;
        }
        break;
    default:
        break;
    }
    int r = tpl_bind_method(c, obj, method_id, out);
    if (r) return r < 0 ? -1 : 0;
    if (obj.t == TV_DICT) {
        tval *v = tpl_dict_get_str(obj.u.d, name->p, name->len);
        if (v) {
            tpl_incref(*out = *v);
            return 0;
        }
    }
    *out = tpl_undef_key(c, UD_ATTR, obj.t, tv_obj(TV_STR, name));
    return 0;
}

/* Python's index into a sequence of n: -1 if out of range. */
static int64_t seq_index(int64_t i, size_t n) {
    if (i < 0) i += (int64_t)n;
    return i < 0 || i >= (int64_t)n ? -1 : i;
}

int tpl_getitem(tctx *c, tval obj, tval key, tval *out) {
    bool int_key = key.t == TV_INT || key.t == TV_BOOL;
    int64_t k = key.t == TV_INT ? key.u.i : key.t == TV_BOOL ? key.u.b : 0;
    switch (obj.t) {
    case TV_UNDEF:
        return tpl_fail_undef(c, obj);
    case TV_LIST:
    case TV_TUPLE:
        if (int_key) {
            int64_t i = seq_index(k, obj.u.l->n);
            if (i >= 0) {
                tpl_incref(*out = obj.u.l->v[i]);
                return 0;
            }
        }
        break;
    case TV_ITER:
        if (int_key && ((titer *)obj.u.o)->kind == IT_RANGE) {
            tlist *items = ((titer *)obj.u.o)->items;
            int64_t i = seq_index(k, items->n);
            if (i < 0) return tpl_fail(c, "range object index out of range");
            *out = items->v[i];
            return 0;
        }
        break;
    case TV_STR:
        if (int_key) {
            int64_t i = seq_index(k, obj.u.s->ncp);
            if (i >= 0) {
                bool ascii = obj.u.s->ncp == obj.u.s->len;
                if (!ascii && tpl_work(c, obj.u.s->len / 64) < 0) return -1;
                size_t a = ascii ? (size_t)i : tpl_utf8_offset(obj.u.s->p, obj.u.s->len, (size_t)i);
                size_t b = ascii ? a + 1 : tpl_utf8_offset(obj.u.s->p + a, obj.u.s->len - a, 1) + a;
                if (tpl_str_val(c, obj.u.s->p + a, b - a, out) < 0) return -1;
                out->markup = obj.markup;
                return 0;
            }
        }
        break;
    case TV_DICT:
        if (tpl_hashable(key)) {
            tval *v = tpl_dict_get(c, obj.u.d, key, NULL);
            if (v) {
                tpl_incref(*out = *v);
                return 0;
            }
        }
        break;
    default:
        break;
    }
    if (key.t == TV_STR) {
        int id = tpl_method_id(key.u.s->p, key.u.s->len);
        if (obj.t == TV_NS || obj.t == TV_LOOP || obj.t == TV_CYCLER ||
            (obj.t == TV_TUPLE && obj.markup)) {
            if (tpl_getattr(c, obj, key.u.s, id, out) < 0) return -1;
            if (out->t == TV_UNDEF && out->ukind == UD_ATTR)
                *out = tpl_undef_key(c, UD_ATTR, obj.t, key);
            return 0;
        }
        int r = tpl_bind_method(c, obj, id, out);
        if (r) return r < 0 ? -1 : 0;
        *out = tpl_undef_key(c, UD_ATTR, obj.t, key);
        return 0;
    }
    tbuf b = {0};
    tval ks = tv_none();
    if (tpl_append_repr(c, &b, key) && tpl_str_from_buf(c, &b, &ks) == 0) {
        *out = tpl_undef_key(c, UD_ITEM, obj.t, ks);
        tpl_decref(c, ks);
    } else {
        tbuf_free(c, &b);
        *out = tv_undef_named(UD_ITEM, obj.t, NULL);
    }
    return 0;
}

int tpl_iterate(tctx *c, tval v, tlist **out) {
    switch (v.t) {
    case TV_LIST:
    case TV_TUPLE:
        tpl_incref(v);
        *out = v.u.l;
        return 0;
    case TV_UNDEF:
        return (*out = tpl_list(c, TV_LIST, 0)) ? 0 : -1;
    case TV_ITER: {
        titer *it = (titer *)v.u.o;
        if (tpl_iter_force(c, it) < 0) return -1;
        if (IT_IS_VIEW(it->kind) || it->pos == 0) {
            tpl_incref(tv_obj(TV_LIST, it->items));
            *out = it->items;
        } else {
            tlist *l = tpl_work(c, it->items->n - it->pos) < 0
                           ? NULL
                           : tpl_list(c, TV_LIST, it->items->n - it->pos);
            if (!l) return -1;
            for (size_t i = it->pos; i < it->items->n; i++)
                tpl_incref(l->v[l->n++] = it->items->v[i]);
            *out = l;
        }
        if (!IT_IS_VIEW(it->kind)) it->pos = it->items->n; /* consumed */
        return 0;
    }
    case TV_DICT: {
        tlist *l = tpl_work(c, v.u.d->n) < 0 ? NULL : tpl_list(c, TV_LIST, v.u.d->n);
        if (!l) return -1;
        for (uint32_t i = 0; i < v.u.d->n; i++) {
            tpl_incref(v.u.d->k[i]);
            l->v[l->n++] = v.u.d->k[i];
        }
        *out = l;
        return 0;
    }
    case TV_STR: {
        tlist *l = tpl_work(c, v.u.s->ncp) < 0 ? NULL : tpl_list(c, TV_LIST, v.u.s->ncp);
        if (!l) return -1;
        const char *s = v.u.s->p;
        size_t n = v.u.s->len, i = 0;
        while (i < n) {
            size_t at = i;
            tpl_utf8_next(s, n, &i);
            tval ch;
            if (tpl_str_val(c, s + at, i - at, &ch) < 0 || !tpl_list_push(c, l, ch)) {
                tpl_obj_decref(c, &l->h);
                return -1;
            }
        }
        *out = l;
        return 0;
    }
    default:
        return tpl_fail(c, "'%s' object is not iterable", tpl_val_type_name(v));
    }
}

/* ---- evaluation ---- */

static int eval(tctx *c, tframe *f, const tnode *n, tval *out);
static int exec_body(tctx *c, tframe *f, tnode *const *body, uint32_t n);

static int assign(tctx *c, tframe *f, const tnode *target, tval v) {
    switch (target->kind) {
    case N_NAME:
        return tpl_frame_set(c, f, target->sym, v) ? 0 : -1;
    case N_NSREF: {
        tval ns;
        lookup(c, f, target, &ns);
        if (ns.t != TV_NS) {
            tpl_decref(c, ns);
            tpl_decref(c, v);
            c->line = target->line;
            return tpl_fail(c, "cannot assign attribute on non-namespace object");
        }
        tpl_incref(tv_obj(TV_STR, target->str));
        int rc = tpl_dict_set(c, ns.u.d, tv_obj(TV_STR, target->str), v);
        tpl_decref(c, ns);
        return rc;
    }
    case N_TUPLE: {
        tlist *items;
        if (v.t == TV_UNDEF) {
            tpl_decref(c, v);
            return tpl_fail(c, "not enough values to unpack (expected %u, got 0)", target->nkids);
        }
        int rc = tpl_iterate(c, v, &items);
        tpl_decref(c, v);
        if (rc < 0) return -1;
        if (items->n != target->nkids) {
            size_t got = items->n;
            tpl_obj_decref(c, &items->h);
            if (got < target->nkids)
                return tpl_fail(c, "not enough values to unpack (expected %u, got %zu)",
                                target->nkids, got);
            return tpl_fail(c, "too many values to unpack (expected %u)", target->nkids);
        }
        for (uint32_t i = 0; i < target->nkids && rc == 0; i++) {
            tpl_incref(items->v[i]);
            rc = assign(c, f, target->kids[i], items->v[i]);
        }
        tpl_obj_decref(c, &items->h);
        return rc;
    }
    default:
        return tpl_fail(c, "cannot assign to this expression");
    }
}

/* Evaluates a call's arguments into a (positional values, keyword names and
 * values); frees with args_free. */
typedef struct argbuf {
    targs a;
    tval posv[8], kwvv[8];
    tstr *kwnv[8];
    tstr **kwn_heap;
    size_t cap_pos, cap_kw;
} argbuf;

static void args_free(tctx *c, argbuf *ab) {
    for (uint32_t i = 0; i < ab->a.npos; i++) tpl_decref(c, ab->a.pos[i]);
    for (uint32_t i = 0; i < ab->a.nkw; i++) tpl_decref(c, ab->a.kwv[i]);
    if (ab->a.pos != ab->posv) free(ab->a.pos);
    if (ab->a.kwv != ab->kwvv) free(ab->a.kwv);
    if (ab->kwn_heap) free(ab->kwn_heap);
}

static bool args_room(tctx *c, argbuf *ab, bool kw) {
    size_t *cap = kw ? &ab->cap_kw : &ab->cap_pos;
    uint32_t n = kw ? ab->a.nkw : ab->a.npos;
    if (n < *cap) return true;
    size_t ncap = *cap * 2;
    if (ncap > 100000) return tpl_fail(c, "too many arguments"), false;
    if (!kw) {
        tval *p = malloc(ncap * sizeof *p);
        if (!p) return tpl_fail(c, "out of memory"), false;
        memcpy(p, ab->a.pos, n * sizeof *p);
        if (ab->a.pos != ab->posv) free(ab->a.pos);
        ab->a.pos = p;
    } else {
        tval *p = malloc(ncap * sizeof *p);
        tstr **q = malloc(ncap * sizeof *q);
        if (!p || !q) {
            free(p);
            free(q);
            return tpl_fail(c, "out of memory"), false;
        }
        memcpy(p, ab->a.kwv, n * sizeof *p);
        memcpy(q, ab->a.kwn, n * sizeof *q);
        if (ab->a.kwv != ab->kwvv) free(ab->a.kwv);
        free(ab->kwn_heap);
        ab->a.kwv = p;
        ab->a.kwn = ab->kwn_heap = q;
    }
    *cap = ncap;
    return true;
}

static int eval_args(tctx *c, tframe *f, const tnode *n, argbuf *ab) {
    memset(ab, 0, sizeof *ab);
    ab->a.pos = ab->posv;
    ab->a.kwv = ab->kwvv;
    ab->a.kwn = ab->kwnv;
    ab->cap_pos = ab->cap_kw = 8;
    for (uint32_t i = 0; i < n->nkids; i++) {
        if (!args_room(c, ab, false) || eval(c, f, n->kids[i], &ab->a.pos[ab->a.npos]) < 0)
            return -1;
        ab->a.npos++;
    }
    if (n->c) { /* *args */
        tval v;
        tlist *l;
        if (eval(c, f, n->c, &v) < 0) return -1;
        int rc = tpl_iterate(c, v, &l);
        tpl_decref(c, v);
        if (rc < 0) return -1;
        for (size_t i = 0; i < l->n; i++) {
            if (!args_room(c, ab, false)) {
                tpl_obj_decref(c, &l->h);
                return -1;
            }
            tpl_incref(ab->a.pos[ab->a.npos++] = l->v[i]);
        }
        tpl_obj_decref(c, &l->h);
    }
    for (uint32_t i = 0; i < n->nkids2; i++) {
        if (!args_room(c, ab, true) || eval(c, f, n->kids2[i], &ab->a.kwv[ab->a.nkw]) < 0)
            return -1;
        ((tstr **)ab->a.kwn)[ab->a.nkw++] = n->kwnames[i];
    }
    if (n->d) { /* **kwargs */
        tval v;
        if (eval(c, f, n->d, &v) < 0) return -1;
        if (v.t != TV_DICT) {
            tpl_decref(c, v);
            return tpl_fail(c, "argument after ** must be a mapping, not %s", tpl_type_name(v.t));
        }
        for (uint32_t i = 0; i < v.u.d->n; i++) {
            if (v.u.d->k[i].t != TV_STR) {
                tpl_decref(c, v);
                return tpl_fail(c, "keywords must be strings");
            }
            if (!args_room(c, ab, true)) {
                tpl_decref(c, v);
                return -1;
            }
            tpl_incref(ab->a.kwv[ab->a.nkw] = v.u.d->v[i]);
            ((tstr **)ab->a.kwn)[ab->a.nkw++] = v.u.d->k[i].u.s;
        }
        /* the keyword names point into the dict: keep it alive */
        if (!c->keep && !(c->keep = tpl_list(c, TV_LIST, 0))) return -1;
        if (!tpl_list_push(c, c->keep, v)) return -1;
    }
    return 0;
}

/* Renders a body into a fresh string, in scope f. */
static int capture(tctx *c, tframe *f, tnode *const *body, uint32_t n, tval *out) {
    tbuf b = {0}, *saved = c->out;
    c->out = &b;
    int rc = exec_body(c, f, body, n);
    c->out = saved;
    if (rc < 0) {
        tbuf_free(c, &b);
        return -1;
    }
    if (tpl_str_from_buf(c, &b, out) < 0) return -1;
    return rc; /* X_OK, or X_BREAK / X_CONTINUE from a set block inside a loop */
}

static int call_macro(tctx *c, tmacro *m, const targs *a, tval *out) {
    const tnode *d = m->def;
    const char *name = d->kind == S_MACRO ? d->str->p : "caller";
    uint32_t np = d->nparams;
    if (a->npos > np && !(d->flags & TN_USES_VARARGS))
        return tpl_fail(c, "macro '%s' takes not more than %u argument(s)", name, np);
    if (enter(c) < 0) return -1;
    tframe *mf = tpl_frame(c, m->closure);
    if (!mf) {
        c->depth--;
        return -1;
    }
    int rc = 0;
    bool *used = calloc(a->nkw + 1, sizeof *used);
    bool *have = calloc(np + 1, sizeof *have);
    if (!used || !have) {
        rc = tpl_fail(c, "out of memory");
        goto done;
    }
    for (uint32_t i = 0; i < np && i < a->npos; i++) {
        tpl_incref(a->pos[i]);
        if (!tpl_frame_set(c, mf, d->params[i], a->pos[i])) goto fail;
        have[i] = true;
    }
    for (uint32_t i = a->npos; i < np; i++) {
        const char *pn = c->t->syms[d->params[i]];
        for (uint32_t k = 0; k < a->nkw; k++) {
            if (used[k] || strcmp(a->kwn[k]->p, pn) != 0) continue;
            used[k] = true;
            tpl_incref(a->kwv[k]);
            if (!tpl_frame_set(c, mf, d->params[i], a->kwv[k])) goto fail;
            have[i] = true;
            break;
        }
    }
    /* defaults, in order, in the macro's scope (they may name earlier parameters) */
    for (uint32_t i = 0; i < np; i++) {
        if (have[i]) continue;
        uint32_t first_default = np - d->nkids2;
        tval v;
        if (i >= first_default) {
            if (eval(c, mf, d->kids2[i - first_default], &v) < 0) goto fail;
        } else {
            char msg[128];
            snprintf(msg, sizeof msg, "parameter '%s' was not provided", c->t->syms[d->params[i]]);
            tval s;
            if (tpl_str_val(c, msg, strlen(msg), &s) < 0) goto fail;
            v = tpl_undef_key(c, UD_HINT, 0, s);
            tpl_decref(c, s);
        }
        if (!tpl_frame_set(c, mf, d->params[i], v)) goto fail;
    }
    if (d->flags & TN_USES_CALLER) { /* the caller keyword: a call block's body, or none */
        tval cv = tv_undef_named(UD_HINT, 0, "No caller defined");
        for (uint32_t k = 0; k < a->nkw; k++)
            if (!used[k] && !strcmp(a->kwn[k]->p, "caller")) {
                used[k] = true;
                cv = a->kwv[k];
            }
        tpl_incref(cv);
        if (!tpl_frame_set(c, mf, SYM_CALLER, cv)) goto fail;
    }
    if (d->flags & TN_USES_KWARGS) {
        tdict *kw = tpl_dict(c, TV_DICT);
        if (!kw) goto fail;
        if (!tpl_frame_set(c, mf, SYM_KWARGS, tv_obj(TV_DICT, kw))) goto fail;
        for (uint32_t k = 0; k < a->nkw; k++) {
            if (used[k]) continue;
            used[k] = true;
            tpl_incref(tv_obj(TV_STR, a->kwn[k]));
            tpl_incref(a->kwv[k]);
            if (tpl_dict_set(c, kw, tv_obj(TV_STR, a->kwn[k]), a->kwv[k]) < 0) goto fail;
        }
    }
    for (uint32_t k = 0; k < a->nkw; k++) {
        if (used[k]) continue;
        if (!strcmp(a->kwn[k]->p, "caller"))
            rc = tpl_fail(c,
                          "macro '%s' was invoked with two values for the special caller argument. "
                          "This is most likely a bug.",
                          name);
        else
            rc = tpl_fail(c, "macro '%s' takes no keyword argument '%s'", name, a->kwn[k]->p);
        goto done;
    }
    if (d->flags & TN_USES_VARARGS) {
        size_t extra = a->npos > np ? a->npos - np : 0;
        tlist *va = tpl_list(c, TV_TUPLE, extra);
        if (!va) goto fail;
        for (size_t i = 0; i < extra; i++) tpl_incref(va->v[va->n++] = a->pos[np + i]);
        if (!tpl_frame_set(c, mf, SYM_VARARGS, tv_obj(TV_TUPLE, va))) goto fail;
    }
    rc = capture(c, mf, d->kids, d->nkids, out);
    if (rc > 0) rc = 0;
    goto done;
fail:
    rc = -1;
done:
    free(used);
    free(have);
    tpl_obj_decref(c, &mf->h);
    c->depth--;
    return rc < 0 ? -1 : 0;
}

static int run_for(tctx *c, tframe *f, const tnode *n, tval iterable, int depth0, tval *captured);

int tpl_call(tctx *c, tval fn, const targs *a, tval *out) {
    switch (fn.t) {
    case TV_MACRO:
        return call_macro(c, (tmacro *)fn.u.o, a, out);
    case TV_BUILTIN:
        return tpl_call_builtin(c, (int)fn.u.i, a, out);
    case TV_METHOD:
        return tpl_call_method(c, (tmethod *)fn.u.o, a, out);
    case TV_JOINER: {
        tjoiner *j = (tjoiner *)fn.u.o;
        if (a->npos || a->nkw) return tpl_fail(c, "joiner takes no arguments");
        if (!j->used) {
            j->used = true;
            return tpl_str_val(c, "", 0, out);
        }
        tpl_incref(*out = j->sep);
        return 0;
    }
    case TV_LOOP: {
        tloop *l = (tloop *)fn.u.o;
        if (!(l->node->flags & TN_RECURSIVE))
            return tpl_fail(c,
                            "The loop must have the 'recursive' marker to be called recursively.");
        if (a->npos != 1 || a->nkw) return tpl_fail(c, "loop() takes exactly one argument");
        if (enter(c) < 0) return -1;
        int rc = run_for(c, l->frame, l->node, a->pos[0], l->depth0 + 1, out);
        c->depth--;
        return rc;
    }
    case TV_UNDEF:
        return tpl_fail_undef(c, fn);
    default:
        return tpl_fail(c, "'%s' object is not callable", tpl_type_name(fn.t));
    }
}

/* A call; a call block adds its caller as the keyword argument `caller`. */
static int eval_call(tctx *c, tframe *f, const tnode *n, tstr *caller_kw, tval caller, tval *out) {
    tval fn;
    if (eval(c, f, n->a, &fn) < 0) return -1;
    argbuf ab;
    int rc = eval_args(c, f, n, &ab);
    if (rc == 0 && caller_kw) {
        if (!args_room(c, &ab, true)) {
            rc = -1;
        } else {
            tpl_incref(ab.a.kwv[ab.a.nkw] = caller);
            ((tstr **)ab.a.kwn)[ab.a.nkw++] = caller_kw;
        }
    }
    c->line = n->line;
    if (rc == 0) rc = tpl_call(c, fn, &ab.a, out);
    args_free(c, &ab);
    tpl_decref(c, fn);
    return rc;
}

/* A filter chain; `hole` stands for the missing operand of filter blocks
 * and filtered set blocks. */
static int eval_filter(tctx *c, tframe *f, const tnode *n, const tval *hole, tval *out) {
    tval v;
    int rc;
    if (!n->a)
        tpl_incref(v = *hole), rc = 0;
    else if (n->a->kind == N_FILTER && hole)
        rc = eval_filter(c, f, n->a, hole, &v);
    else
        rc = eval(c, f, n->a, &v);
    if (rc < 0) return -1;
    argbuf ab;
    rc = eval_args(c, f, n, &ab);
    c->line = n->line;
    if (rc == 0) {
        if (n->id < 0)
            rc = tpl_fail(c, "No filter named '%s'.", n->str->p);
        else
            rc = tpl_apply_filter(c, n->id, n->str->p, v, &ab.a, out);
    }
    args_free(c, &ab);
    tpl_decref(c, v);
    return rc;
}

static int contains(tctx *c, tval hay, tval needle, bool *res) {
    switch (hay.t) {
    case TV_STR:
        if (needle.t != TV_STR)
            return tpl_fail(c, "'in <string>' requires string as left operand, not %s",
                            tpl_type_name(needle.t));
        if (tpl_work(c, hay.u.s->len / 64) < 0) return -1;
        *res = needle.u.s->len == 0 ||
               memmem(hay.u.s->p, hay.u.s->len, needle.u.s->p, needle.u.s->len) != NULL;
        return 0;
    case TV_LIST:
    case TV_TUPLE:
        *res = false;
        for (size_t i = 0; i < hay.u.l->n && !*res; i++) *res = tpl_eq(c, hay.u.l->v[i], needle);
        return 0;
    case TV_DICT: {
        int err = 0;
        *res = tpl_dict_get(c, hay.u.d, needle, &err) != NULL;
        return err;
    }
    case TV_UNDEF:
        *res = false;
        return 0;
    case TV_ITER: { /* consumes a generator up to the match */
        titer *it = (titer *)hay.u.o;
        *res = false;
        if (tpl_iter_force(c, it) < 0) return -1;
        for (size_t i = IT_IS_VIEW(it->kind) ? 0 : it->pos; i < it->items->n && !*res; i++) {
            *res = tpl_eq(c, it->items->v[i], needle);
            if (!IT_IS_VIEW(it->kind)) it->pos = i + 1;
        }
        return 0;
    }
    default:
        return tpl_fail(c, "argument of type '%s' is not iterable", tpl_type_name(hay.t));
    }
}

static int compare(tctx *c, int op, tval a, tval b, bool *res) {
    int r;
    switch (op) {
    case CMP_EQ:
        *res = tpl_eq(c, a, b);
        return 0;
    case CMP_NE:
        *res = !tpl_eq(c, a, b);
        return 0;
    case CMP_LT:
        r = tpl_lt(c, a, b);
        break;
    case CMP_GT:
        r = tpl_lt(c, b, a);
        break;
    case CMP_LE:
        if ((r = tpl_lt(c, a, b)) == 0) r = tpl_eq(c, a, b);
        break;
    case CMP_GE:
        if ((r = tpl_lt(c, b, a)) == 0) r = tpl_eq(c, a, b);
        break;
    case CMP_IN:
        return contains(c, b, a, res);
    default:
        if (contains(c, b, a, res) < 0) return -1;
        *res = !*res;
        return 0;
    }
    if (r < 0) return -1;
    *res = r != 0;
    return 0;
}

static int slice_index(tctx *c, const tnode *n, tframe *f, bool *given, int64_t *out) {
    *given = false;
    if (!n) return 0;
    tval v;
    if (eval(c, f, n, &v) < 0) return -1;
    if (v.t == TV_NONE) return 0;
    if (v.t != TV_INT && v.t != TV_BOOL) {
        if (v.t == TV_UNDEF) return tpl_fail_undef(c, v);
        tpl_decref(c, v);
        return tpl_fail(c, "slice indices must be integers or None or have an __index__ method");
    }
    *given = true;
    *out = v.t == TV_INT ? v.u.i : v.u.b;
    return 0;
}

/* Python's slice.indices + the selected positions. */
static int eval_slice(tctx *c, tframe *f, const tnode *n, tval *out) {
    tval obj;
    if (eval(c, f, n->a, &obj) < 0) return -1;
    bool hs, he, hp;
    int64_t start = 0, stop = 0, step = 1;
    if (slice_index(c, n->b, f, &hs, &start) < 0 || slice_index(c, n->c, f, &he, &stop) < 0 ||
        slice_index(c, n->d, f, &hp, &step) < 0)
        return -1;
    c->line = n->line;
    if (!hp) step = 1;
    if (step == 0) return tpl_fail(c, "slice step cannot be zero");
    if (obj.t == TV_UNDEF) return tpl_fail_undef(c, obj);
    bool is_range = obj.t == TV_ITER && ((titer *)obj.u.o)->kind == IT_RANGE;
    if (obj.t != TV_STR && obj.t != TV_LIST && obj.t != TV_TUPLE && !is_range) {
        tpl_decref(c, obj);
        return tpl_fail(c, "'%s' object is not subscriptable", tpl_type_name(obj.t));
    }
    const tlist *seq = is_range ? ((titer *)obj.u.o)->items : obj.t == TV_STR ? NULL : obj.u.l;
    int64_t len = obj.t == TV_STR ? (int64_t)obj.u.s->ncp : (int64_t)seq->n;
    int64_t lo = step < 0 ? -1 : 0, hi = step < 0 ? len - 1 : len;
    if (!hs)
        start = step < 0 ? hi : lo;
    else {
        if (start < 0) start += len;
        start = start < lo ? lo : start > hi ? hi : start;
    }
    if (!he)
        stop = step < 0 ? lo : hi;
    else {
        if (stop < 0) stop += len;
        stop = stop < lo ? lo : stop > hi ? hi : stop;
    }
    int64_t count = 0;
    if (step > 0 && stop > start) count = (stop - start + step - 1) / step;
    if (step < 0 && start > stop) count = (start - stop + (-step) - 1) / (-step);
    int rc = 0;
    if (tpl_work(c, (uint64_t)count + (obj.t == TV_STR ? obj.u.s->len / 64 : 0)) < 0) return -1;
    if (obj.t == TV_STR) {
        const char *s = obj.u.s->p;
        size_t n_b = obj.u.s->len;
        if (step == 1) {
            size_t a = tpl_utf8_offset(s, n_b, (size_t)start);
            size_t b = count ? tpl_utf8_offset(s + a, n_b - a, (size_t)count) + a : a;
            rc = tpl_str_val(c, s + a, b - a, out);
        } else {
            /* decode the code points once, then pick */
            size_t *offs = malloc(((size_t)len + 1) * sizeof *offs);
            tbuf b = {0};
            if (!offs)
                rc = tpl_fail(c, "out of memory");
            else {
                size_t i = 0;
                for (int64_t k = 0; k < len; k++) {
                    offs[k] = i;
                    if (i < n_b) tpl_utf8_next(s, n_b, &i);
                }
                offs[len] = n_b;
                for (int64_t k = 0, at = start; k < count && rc == 0; k++, at += step)
                    if (!tbuf_put(c, &b, s + offs[at], offs[at + 1] - offs[at])) rc = -1;
                free(offs);
                if (rc == 0)
                    rc = tpl_str_from_buf(c, &b, out);
                else
                    tbuf_free(c, &b);
            }
        }
        if (rc == 0) out->markup = obj.markup;
    } else {
        tlist *l = tpl_list(c, is_range ? TV_LIST : obj.t, (size_t)count);
        if (!l)
            rc = -1;
        else {
            for (int64_t k = 0, at = start; k < count; k++, at += step)
                tpl_incref(l->v[l->n++] = seq->v[at]);
            *out = tv_obj(l->h.type, l);
            if (is_range) { /* range(...)[a:b:c] is a range */
                const titer *r = (const titer *)obj.u.o;
                if ((rc = tpl_make_iter(c, l, IT_RANGE, out)) == 0) {
                    titer *nr = (titer *)out->u.o;
                    nr->start = r->start + start * r->step;
                    nr->stop = r->start + stop * r->step;
                    nr->step = r->step * step;
                }
            }
        }
    }
    tpl_decref(c, obj);
    return rc;
}

static int eval(tctx *c, tframe *f, const tnode *n, tval *out) {
    if (enter(c) < 0) return -1;
    c->line = n->line;
    int rc = 0;
    tval a, b;
    switch (n->kind) {
    case N_CONST:
        *out = n->cval;
        break;
    case N_NAME:
        lookup(c, f, n, out);
        break;
    case N_GETATTR:
        if ((rc = eval(c, f, n->a, &a)) < 0) break;
        c->line = n->line;
        rc = tpl_getattr(c, a, n->str, n->id, out);
        tpl_decref(c, a);
        break;
    case N_GETITEM:
        if ((rc = eval(c, f, n->a, &a)) < 0) break;
        if ((rc = eval(c, f, n->b, &b)) < 0) break;
        c->line = n->line;
        rc = tpl_getitem(c, a, b, out);
        tpl_decref(c, a);
        tpl_decref(c, b);
        break;
    case N_SLICE:
        rc = eval_slice(c, f, n, out);
        break;
    case N_LIST:
    case N_TUPLE: {
        tlist *l = tpl_list(c, n->kind == N_LIST ? TV_LIST : TV_TUPLE, n->nkids);
        if (!l) {
            rc = -1;
            break;
        }
        for (uint32_t i = 0; i < n->nkids && rc == 0; i++)
            if ((rc = eval(c, f, n->kids[i], &l->v[i])) == 0) l->n++;
        *out = tv_obj(l->h.type, l);
        break;
    }
    case N_DICT: {
        tdict *d = tpl_dict(c, TV_DICT);
        if (!d) {
            rc = -1;
            break;
        }
        *out = tv_obj(TV_DICT, d);
        for (uint32_t i = 0; i < n->nkids && rc == 0; i++) {
            if ((rc = eval(c, f, n->kids[i], &a)) < 0) break;
            if ((rc = eval(c, f, n->kids2[i], &b)) < 0) break;
            c->line = n->line;
            rc = tpl_dict_set(c, d, a, b);
        }
        break;
    }
    case N_BINOP:
        if ((rc = eval(c, f, n->a, &a)) < 0 || (rc = eval(c, f, n->b, &b)) < 0) break;
        c->line = n->line;
        rc = tpl_binop(c, n->op, a, b, out);
        tpl_decref(c, a);
        tpl_decref(c, b);
        break;
    case N_CONCAT: {
        tbuf buf = {0};
        for (uint32_t i = 0; i < n->nkids && rc == 0; i++) {
            if ((rc = eval(c, f, n->kids[i], &a)) < 0) break;
            if (!tpl_append_str(c, &buf, a)) rc = -1;
            tpl_decref(c, a);
        }
        if (rc == 0)
            rc = tpl_str_from_buf(c, &buf, out);
        else
            tbuf_free(c, &buf);
        break;
    }
    case N_AND:
    case N_OR:
        if ((rc = eval(c, f, n->a, &a)) < 0) break;
        if (tpl_truthy(a) == (n->kind == N_OR)) {
            *out = a;
            break;
        }
        tpl_decref(c, a);
        rc = eval(c, f, n->b, out);
        break;
    case N_NOT:
        if ((rc = eval(c, f, n->a, &a)) < 0) break;
        *out = tv_bool(!tpl_truthy(a));
        tpl_decref(c, a);
        break;
    case N_NEG:
    case N_POS:
        if ((rc = eval(c, f, n->a, &a)) < 0) break;
        c->line = n->line;
        if (a.t == TV_INT || a.t == TV_BOOL) {
            int64_t i = a.t == TV_INT ? a.u.i : a.u.b;
            if (n->kind == N_NEG && i == INT64_MIN)
                rc = tpl_fail(c, "integer overflow");
            else
                *out = tv_int(n->kind == N_NEG ? -i : i);
        } else if (a.t == TV_FLOAT) {
            *out = tv_float(n->kind == N_NEG ? -a.u.f : a.u.f);
        } else if (a.t == TV_UNDEF) {
            rc = tpl_fail_undef(c, a);
        } else {
            rc = tpl_fail(c, "bad operand type for unary %c: '%s'", n->kind == N_NEG ? '-' : '+',
                          tpl_type_name(a.t));
        }
        tpl_decref(c, a);
        break;
    case N_COMPARE: {
        if ((rc = eval(c, f, n->a, &a)) < 0) break;
        bool res = true;
        for (uint32_t i = 0; i < n->nkids && res; i++) {
            if ((rc = eval(c, f, n->kids[i], &b)) < 0) break;
            c->line = n->line;
            rc = compare(c, n->ops[i], a, b, &res);
            tpl_decref(c, a);
            a = b;
            if (rc < 0) break;
        }
        tpl_decref(c, a);
        *out = tv_bool(res);
        break;
    }
    case N_CONDEX:
        if ((rc = eval(c, f, n->a, &a)) < 0) break;
        bool t = tpl_truthy(a);
        tpl_decref(c, a);
        if (t)
            rc = eval(c, f, n->b, out);
        else if (n->c)
            rc = eval(c, f, n->c, out);
        else
            *out = tv_undef_named(
                UD_HINT, 0,
                "the inline if-expression evaluated to false and no else section was defined.");
        break;
    case N_CALL:
        rc = eval_call(c, f, n, NULL, tv_none(), out);
        break;
    case N_FILTER:
        rc = eval_filter(c, f, n, NULL, out);
        break;
    case N_TEST: {
        if ((rc = eval(c, f, n->a, &a)) < 0) break;
        argbuf ab;
        rc = eval_args(c, f, n, &ab);
        c->line = n->line;
        bool res = false;
        if (rc == 0) {
            if (n->id < 0)
                rc = tpl_fail(c, "No test named '%s'.", n->str->p);
            else
                rc = tpl_apply_test(c, n->id, n->str->p, a, &ab.a, &res);
        }
        args_free(c, &ab);
        tpl_decref(c, a);
        *out = tv_bool(res);
        break;
    }
    default:
        rc = tpl_fail(c, "this expression cannot be evaluated here");
    }
    c->depth--;
    return rc < 0 ? -1 : 0;
}

/* ---- statements ---- */

static int output(tctx *c, tframe *f, const tnode *n) {
    for (uint32_t i = 0; i < n->nkids; i++) {
        const tnode *k = n->kids[i];
        if (k->kind == N_CONST && k->cval.t == TV_STR) {
            if (!tbuf_put(c, c->out, k->cval.u.s->p, k->cval.u.s->len)) return -1;
            continue;
        }
        tval v;
        if (eval(c, f, k, &v) < 0) return -1;
        bool ok = tpl_append_str(c, c->out, v);
        tpl_decref(c, v);
        if (!ok) return -1;
    }
    return 0;
}

/* Runs a for loop over `iterable`; with `captured`, renders into a string
 * (a recursive loop(...) call). */
static int run_for(tctx *c, tframe *f, const tnode *n, tval iterable, int depth0, tval *captured) {
    tlist *items;
    if (tpl_iterate(c, iterable, &items) < 0) return -1;
    tframe *lf = NULL;
    tloop *lp = NULL;
    tbuf cap = {0}, *saved = c->out;
    int rc = 0;
    if (captured) c->out = &cap;
    if (n->c) { /* the loop filter: items for which the test holds */
        tlist *kept = tpl_list(c, TV_LIST, 0);
        tframe *tf = kept ? tpl_frame(c, f) : NULL;
        if (!tf) {
            rc = -1;
            goto done;
        }
        for (size_t i = 0; i < items->n && rc == 0; i++) {
            tval t;
            tpl_frame_clear(c, tf);
            tpl_incref(items->v[i]);
            if ((rc = tpl_step(c)) < 0 || (rc = assign(c, tf, n->a, items->v[i])) < 0 ||
                (rc = eval(c, tf, n->c, &t)) < 0)
                break;
            bool keep = tpl_truthy(t);
            tpl_decref(c, t);
            if (keep) {
                tpl_incref(items->v[i]);
                if (!tpl_list_push(c, kept, items->v[i])) rc = -1;
            }
        }
        tpl_obj_decref(c, &tf->h);
        tpl_obj_decref(c, &items->h);
        items = kept;
        if (rc < 0) goto done;
    }
    /* jinja2 runs the else block unless some iteration reached the end of
     * the body: an empty loop, and also one whose every iteration left by
     * break or continue */
    bool completed = false;
    if (items->n) {
        lf = tpl_frame(c, f);
        lp = lf ? tpl_alloc(c, TV_LOOP, sizeof(tloop)) : NULL;
        if (!lp) {
            rc = -1;
            goto done;
        }
        lp->items = items;
        tpl_incref(tv_obj(TV_LIST, items));
        lp->changed = tv_absent();
        lp->node = n;
        lp->frame = f;
        f->h.rc++;
        lp->depth0 = depth0;
    }
    for (size_t i = 0; i < items->n; i++) {
        if ((rc = tpl_step(c)) < 0) break;
        tpl_frame_clear(c, lf);
        lp->index0 = i;
        lp->h.rc++;
        if (!tpl_frame_set(c, lf, SYM_LOOP, tv_obj(TV_LOOP, lp))) {
            rc = -1;
            break;
        }
        tpl_incref(items->v[i]);
        if ((rc = assign(c, lf, n->a, items->v[i])) < 0) break;
        rc = exec_body(c, lf, n->kids, n->nkids);
        if (rc < 0) break;
        completed |= rc == X_OK;
        if (rc == X_BREAK) {
            rc = 0;
            break;
        }
        rc = 0;
    }
    if (rc == 0 && !completed && n->nkids2) {
        tframe *ef = tpl_frame(c, f);
        if (!ef) {
            rc = -1;
            goto done;
        }
        rc = exec_body(c, ef, n->kids2, n->nkids2);
        tpl_obj_decref(c, &ef->h);
    }
done:
    if (lf) tpl_obj_decref(c, &lf->h);
    if (lp) tpl_obj_decref(c, &lp->h);
    tpl_obj_decref(c, &items->h);
    if (captured) {
        c->out = saved;
        if (rc < 0)
            tbuf_free(c, &cap);
        else
            rc = tpl_str_from_buf(c, &cap, captured);
    }
    return rc < 0 ? -1 : rc;
}

static int exec_stmt(tctx *c, tframe *f, const tnode *n) {
    c->line = n->line;
    tval v;
    int rc = 0;
    switch (n->kind) {
    case S_OUTPUT:
        return output(c, f, n);
    case S_IF:
        for (uint32_t i = 0; i < n->nkids; i++) {
            const tnode *br = n->kids[i];
            if (eval(c, f, br->a, &v) < 0) return -1;
            bool t = tpl_truthy(v);
            tpl_decref(c, v);
            if (t) return exec_body(c, f, br->kids, br->nkids);
        }
        return exec_body(c, f, n->kids2, n->nkids2);
    case S_FOR:
        if (eval(c, f, n->b, &v) < 0) return -1;
        rc = run_for(c, f, n, v, 0, NULL);
        tpl_decref(c, v);
        return rc;
    case S_SET:
        if (eval(c, f, n->b, &v) < 0) return -1;
        return assign(c, f, n->a, v);
    case S_SETBLOCK:
    case S_FILTERBLOCK: {
        tframe *bf = tpl_frame(c, f);
        if (!bf) return -1;
        rc = capture(c, bf, n->kids, n->nkids, &v);
        tpl_obj_decref(c, &bf->h);
        if (rc < 0) return -1;
        if (rc != X_OK) { /* a break or continue left the block before its end */
            tpl_decref(c, v);
            return rc;
        }
        const tnode *filt = n->kind == S_SETBLOCK ? n->c : n->a;
        if (filt) {
            tval r;
            rc = eval_filter(c, f, filt, &v, &r);
            tpl_decref(c, v);
            if (rc < 0) return -1;
            v = r;
        }
        if (n->kind == S_SETBLOCK) return assign(c, f, n->a, v);
        rc = tpl_append_str(c, c->out, v) ? 0 : -1;
        tpl_decref(c, v);
        return rc;
    }
    case S_MACRO:
    case S_CALLBLOCK: {
        tmacro *m = tpl_alloc(c, TV_MACRO, sizeof(tmacro));
        if (!m) return -1;
        m->def = n;
        m->closure = f;
        f->h.rc++;
        if (n->kind == S_MACRO) return tpl_frame_set(c, f, n->sym, tv_obj(TV_MACRO, m)) ? 0 : -1;
        rc = eval_call(c, f, n->a, n->str, tv_obj(TV_MACRO, m), &v);
        tpl_obj_decref(c, &m->h);
        if (rc < 0) return -1;
        rc = tpl_append_str(c, c->out, v) ? 0 : -1;
        tpl_decref(c, v);
        return rc;
    }
    case S_WITH: {
        tframe *wf = tpl_frame(c, f);
        if (!wf) return -1;
        for (uint32_t i = 0; i < n->nkids2 && rc == 0; i++) {
            if ((rc = eval(c, f, n->b->kids[i], &v)) < 0) break;
            rc = assign(c, wf, n->kids2[i], v);
        }
        if (rc == 0) rc = exec_body(c, wf, n->kids, n->nkids);
        tpl_obj_decref(c, &wf->h);
        return rc;
    }
    case S_SCOPE: {
        if (n->a) {
            if (eval(c, f, n->a, &v) < 0) return -1;
            bool on = tpl_truthy(v);
            tpl_decref(c, v);
            if (on) return tpl_fail(c, "autoescaping is not supported in chat templates");
        }
        tframe *sf = tpl_frame(c, (n->flags & TN_BLOCK) ? c->root : f);
        if (!sf) return -1;
        rc = exec_body(c, sf, n->kids, n->nkids);
        tpl_obj_decref(c, &sf->h);
        return rc;
    }
    case S_BREAK:
        return X_BREAK;
    case S_CONTINUE:
        return X_CONTINUE;
    case S_FAIL:
        return tpl_fail(c, "%s", n->str->p);
    default:
        return tpl_fail(c, "unknown statement");
    }
}

static int exec_body(tctx *c, tframe *f, tnode *const *body, uint32_t n) {
    if (enter(c) < 0) return -1;
    int rc = 0;
    for (uint32_t i = 0; i < n && rc == 0; i++) {
        rc = exec_stmt(c, f, body[i]);
        if (c->status) rc = -1;
    }
    c->depth--;
    return rc;
}

/* ---- the render ---- */

static int set_global_str(tctx *c, int32_t sym, const char *s) {
    tval v;
    if (tpl_str_val(c, s ? s : "", s ? strlen(s) : 0, &v) < 0) return -1;
    tpl_decref(c, c->globals[sym]);
    c->globals[sym] = v;
    return 0;
}

static int setup(tctx *c, const hl_template_vars *v) {
    const hl_template *t = c->t;
    static const int BUILTINS[][2] = {
        {SYM_RANGE, BI_RANGE},           {SYM_DICT, BI_DICT},
        {SYM_NAMESPACE, BI_NAMESPACE},   {SYM_CYCLER, BI_CYCLER},
        {SYM_JOINER, BI_JOINER},         {SYM_LIPSUM, BI_LIPSUM},
        {SYM_RAISE_EXCEPTION, BI_RAISE}, {SYM_STRFTIME_NOW, BI_STRFTIME}};
    for (size_t i = 0; i < sizeof BUILTINS / sizeof BUILTINS[0]; i++)
        c->globals[BUILTINS[i][0]] = (tval){.t = TV_BUILTIN, .u.i = BUILTINS[i][1]};
    c->globals[SYM_TOOLS] = tv_none();
    c->globals[SYM_DOCUMENTS] = tv_none();
    c->globals[SYM_ADD_GENERATION_PROMPT] = tv_bool(v->add_generation_prompt);
    if (set_global_str(c, SYM_BOS_TOKEN, v->bos_token) < 0 ||
        set_global_str(c, SYM_EOS_TOKEN, v->eos_token) < 0)
        return -1;
    if (!v->messages_json) return tpl_fail(c, "no messages given");
    tval m;
    if (tpl_from_json(c, v->messages_json, strlen(v->messages_json), &m, "the messages") < 0)
        return -1;
    c->globals[SYM_MESSAGES] = m;
    if (m.t != TV_LIST) return tpl_fail(c, "the messages must be a JSON array");
    if (v->extra_json) {
        tval x;
        if (tpl_from_json(c, v->extra_json, strlen(v->extra_json), &x, "the extra variables") < 0)
            return -1;
        if (x.t != TV_DICT) {
            tpl_decref(c, x);
            return tpl_fail(c, "the extra variables must be a JSON object");
        }
        for (uint32_t i = 0; i < x.u.d->n; i++) {
            tstr *k = x.u.d->k[i].u.s;
            int32_t sym = tpl_sym_find(t, k->p, k->len);
            if (sym < 0) continue; /* the template never names it */
            tpl_decref(c, c->globals[sym]);
            tpl_incref(c->globals[sym] = x.u.d->v[i]);
        }
        tpl_decref(c, x);
    }
    const char *now = getenv("HL_TEMPLATE_NOW");
    c->now = now && *now ? strtoll(now, NULL, 10) : (int64_t)time(NULL);
    c->root = tpl_frame(c, NULL);
    return c->root ? 0 : -1;
}

int hl_template_render(const hl_template *t, const hl_template_vars *v, hl_buf *out, hl_err *e) {
    tctx c = {.t = t, .e = e, .line = 1};
    c.live.next = c.live.prev = &c.live;
    c.globals = malloc((t->nsyms ? t->nsyms : 1) * sizeof *c.globals);
    if (!c.globals) return hl_errf(e, "out of memory"), HL_TEMPLATE_ERROR;
    for (uint32_t i = 0; i < t->nsyms; i++) c.globals[i] = tv_absent();
    tbuf text = {0};
    c.out = &text;
    int rc = setup(&c, v);
    if (rc == 0) rc = exec_body(&c, c.root, t->root->kids, t->root->nkids);
    if (rc == 0 && !c.status) {
        size_t before = out->len;
        hl_buf_put(out, text.p ? text.p : "", text.len);
        if (out->oom) {
            out->len = before;
            out->oom = false;
            if (out->p) out->p[before] = 0;
            c.status = HL_TEMPLATE_ERROR;
            hl_errf(e, "out of memory while rendering the template");
        }
    } else if (!c.status) {
        c.status = HL_TEMPLATE_ERROR;
        hl_errf(e, "template error at line %d: unexpected failure", c.line);
    }
    tbuf_free(&c, &text);
    tpl_free_all(&c);
    free(c.globals);
    return c.status ? c.status : 0;
}
