/* template_parse.c - the parser: tokens to syntax tree, following jinja2's
 * grammar (its parser.py) production for production, so that precedence
 * and the odd corners (filters bind tighter than unary minus's operand,
 * ** is left-associative, tests take one argument without parentheses)
 * come out the same. Also hl_template_parse and hl_template_free.
 *
 * Contract. Every node, array and constant string of a template lives in
 * its arena, freed in one go by hl_template_free. Nesting is bounded
 * (TPL_MAX_PARSE_DEPTH), for recursion in the parser and for the tree
 * walkers and evaluator after it, so no input can exhaust the stack. After
 * parsing, a check pass does what jinja2's compiler does at compile time:
 * an unknown filter or test is an error unless it sits where jinja2 defers
 * the check to the render (inside an {% if %} or an inline if of the same
 * scope); break and continue must be inside a loop of the same function.
 * Errors name the line and column. Thread-safe: all state is per call.
 */
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "template_internal.h"

/* ---- arena ---- */

struct tarena_chunk {
    tarena_chunk *next;
    size_t used, cap;
    _Alignas(16) unsigned char data[];
};

static void *arena_alloc(hl_template *t, size_t n) {
    n = (n + 15) & ~(size_t)15;
    tarena_chunk *c = t->chunks;
    if (!c || c->cap - c->used < n) {
        size_t cap = n > 65536 ? n : 65536;
        c = malloc(sizeof *c + cap);
        if (!c) return NULL;
        c->used = 0;
        c->cap = cap;
        c->next = t->chunks;
        t->chunks = c;
    }
    void *p = c->data + c->used;
    c->used += n;
    memset(p, 0, n);
    return p;
}

/* ---- parser state ---- */

typedef struct nvec {
    tnode **v;
    uint32_t n, cap;
} nvec;

typedef struct symtab {
    const char **names;
    uint32_t n, cap;
    uint32_t *idx; /* open addressing: id + 1 */
    uint32_t icap;
} symtab;

typedef struct parser {
    const ttoks *tk;
    size_t i;
    hl_template *t;
    hl_err *e;
    int depth;
    symtab syms;
    /* for messages about unclosed tags */
    const char *tags[TPL_MAX_PARSE_DEPTH + 8];
    int ntags;
    const char *const *ends[TPL_MAX_PARSE_DEPTH + 8];
    int nends;
} parser;

#define OOM(p) (hl_errf((p)->e, "out of memory while parsing the template"), (void *)NULL)

static const ttok *cur(parser *p) {
    return &p->tk->v[p->i];
}
static const ttok *look(parser *p) {
    return p->i + 1 < p->tk->n ? &p->tk->v[p->i + 1] : &p->tk->v[p->tk->n - 1];
}
static const ttok *next(parser *p) {
    const ttok *t = cur(p);
    if (t->type != TK_EOF) p->i++;
    return t;
}

static bool tok_is_name(const ttok *t, const char *name) {
    return t->type == TK_NAME && t->len == strlen(name) && memcmp(t->p, name, t->len) == 0;
}

static void *fail_at(parser *p, const ttok *t, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
static void *fail_at(parser *p, const ttok *t, const char *fmt, ...) {
    char msg[400];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);
    hl_errf(p->e, "template syntax error at line %d, column %d: %s", t->line, t->col, msg);
    return NULL;
}

static bool enter(parser *p) {
    if (++p->depth > TPL_MAX_PARSE_DEPTH) {
        fail_at(p, cur(p), "the template is nested more than %d levels deep", TPL_MAX_PARSE_DEPTH);
        return false;
    }
    return true;
}

static tnode *node(parser *p, uint8_t kind, const ttok *at) {
    tnode *n = arena_alloc(p->t, sizeof *n);
    if (!n) return OOM(p);
    n->kind = kind;
    n->line = at->line;
    n->id = -1;
    return n;
}

static bool vpush(parser *p, nvec *v, tnode *n) {
    if (v->n == v->cap) {
        uint32_t cap = v->cap ? v->cap * 2 : 4;
        tnode **nv = arena_alloc(p->t, cap * sizeof *nv);
        if (!nv) return OOM(p), false;
        if (v->n) memcpy(nv, v->v, v->n * sizeof *nv);
        v->v = nv;
        v->cap = cap;
    }
    v->v[v->n++] = n;
    return true;
}

static tstr *mkstr(parser *p, const char *s, size_t len) {
    tstr *str = arena_alloc(p->t, sizeof(tstr) + len + 1);
    if (!str) return OOM(p);
    str->h.rc = TOBJ_IMMORTAL;
    str->h.type = TV_STR;
    if (len) memcpy(str->p, s, len);
    str->p[len] = 0;
    str->len = len;
    str->ncp = tpl_utf8_count(s, len);
    tpl_str_hash(str);
    return str;
}

static uint32_t name_hash(const char *s, size_t n) {
    uint32_t h = 2166136261u;
    for (size_t i = 0; i < n; i++) h = (h ^ (unsigned char)s[i]) * 16777619u;
    return h;
}

/* The symbol id of a name, interning it. -1 on out-of-memory. */
static int32_t intern(parser *p, const char *s, size_t n) {
    symtab *st = &p->syms;
    if (st->icap) {
        uint32_t h = name_hash(s, n) & (st->icap - 1);
        while (st->idx[h]) {
            const char *nm = st->names[st->idx[h] - 1];
            if (strlen(nm) == n && memcmp(nm, s, n) == 0) return (int32_t)st->idx[h] - 1;
            h = (h + 1) & (st->icap - 1);
        }
    }
    if (st->n == st->cap) {
        uint32_t cap = st->cap ? st->cap * 2 : 64;
        const char **nn = realloc(st->names, cap * sizeof *nn);
        if (!nn) return OOM(p), -1;
        st->names = nn;
        st->cap = cap;
    }
    if ((st->n + 1) * 2 > st->icap) {
        uint32_t icap = st->icap ? st->icap * 2 : 128;
        uint32_t *idx = calloc(icap, sizeof *idx);
        if (!idx) return OOM(p), -1;
        for (uint32_t k = 0; k < st->n; k++) {
            const char *nm = st->names[k];
            uint32_t h = name_hash(nm, strlen(nm)) & (icap - 1);
            while (idx[h]) h = (h + 1) & (icap - 1);
            idx[h] = k + 1;
        }
        free(st->idx);
        st->idx = idx;
        st->icap = icap;
    }
    char *copy = arena_alloc(p->t, n + 1);
    if (!copy) return OOM(p), -1;
    memcpy(copy, s, n);
    copy[n] = 0;
    st->names[st->n] = copy;
    uint32_t h = name_hash(s, n) & (st->icap - 1);
    while (st->idx[h]) h = (h + 1) & (st->icap - 1);
    st->idx[h] = st->n + 1;
    return (int32_t)st->n++;
}

static const ttok *expect(parser *p, uint8_t type) {
    const ttok *t = cur(p);
    if (t->type == type) return next(p);
    ttok want = {.type = type};
    char b1[80], b2[80];
    const char *w = tpl_tok_describe(&want, b1, sizeof b1);
    if (t->type == TK_EOF) return fail_at(p, t, "unexpected end of template, expected '%s'.", w);
    return fail_at(p, t, "expected token '%s', got '%s'", w, tpl_tok_describe(t, b2, sizeof b2));
}

static const ttok *expect_name(parser *p, const char *name) {
    const ttok *t = cur(p);
    if (tok_is_name(t, name)) return next(p);
    char b[80];
    if (t->type == TK_EOF) return fail_at(p, t, "unexpected end of template, expected '%s'.", name);
    return fail_at(p, t, "expected token '%s', got '%s'", name, tpl_tok_describe(t, b, sizeof b));
}

/* ---- expressions ---- */

static tnode *parse_expression(parser *p, bool with_condexpr);
static tnode *parse_tuple(parser *p, bool simplified, bool with_condexpr, const char *extra_end,
                          bool explicit_parens, bool with_namespace);
static tnode *parse_unary(parser *p, bool with_filter);
static tnode *parse_primary(parser *p, bool with_namespace);
static tnode *parse_postfix(parser *p, tnode *n);
static tnode *parse_filter(parser *p, tnode *n, bool start_inline);

static tnode *parse_or(parser *p);

static tnode *parse_condexpr(parser *p) {
    if (!enter(p)) return NULL;
    int extra = 0;
    tnode *e1 = parse_or(p);
    while (e1 && tok_is_name(cur(p), "if")) {
        const ttok *at = next(p);
        if (!enter(p)) return NULL;
        extra++;
        tnode *n = node(p, N_CONDEX, at);
        if (!n) return NULL;
        n->b = e1;
        n->a = parse_or(p);
        if (!n->a) return NULL;
        if (tok_is_name(cur(p), "else")) {
            next(p);
            n->c = parse_condexpr(p);
            if (!n->c) return NULL;
        }
        e1 = n;
    }
    p->depth -= 1 + extra;
    return e1;
}

static tnode *parse_expression(parser *p, bool with_condexpr) {
    return with_condexpr ? parse_condexpr(p) : parse_or(p);
}

typedef tnode *(*sub_fn)(parser *);

/* left op right op right ... as a left-deep tree of `kind` nodes. */
static tnode *binary_chain(parser *p, sub_fn sub, uint8_t kind, const char *kw) {
    tnode *left = sub(p);
    int extra = 0;
    while (left && tok_is_name(cur(p), kw)) {
        const ttok *at = next(p);
        if (!enter(p)) return NULL;
        extra++;
        tnode *n = node(p, kind, at);
        if (!n) return NULL;
        n->a = left;
        n->b = sub(p);
        if (!n->b) return NULL;
        left = n;
    }
    p->depth -= extra;
    return left;
}

static tnode *parse_compare(parser *p);

static tnode *parse_not(parser *p) {
    if (tok_is_name(cur(p), "not")) {
        const ttok *at = next(p);
        if (!enter(p)) return NULL;
        tnode *n = node(p, N_NOT, at);
        if (!n || !(n->a = parse_not(p))) return NULL;
        p->depth--;
        return n;
    }
    return parse_compare(p);
}

static tnode *parse_and(parser *p) {
    return binary_chain(p, parse_not, N_AND, "and");
}
static tnode *parse_or(parser *p) {
    return binary_chain(p, parse_and, N_OR, "or");
}

static tnode *parse_math1(parser *p);

static tnode *parse_compare(parser *p) {
    const ttok *start = cur(p);
    tnode *e = parse_math1(p);
    if (!e) return NULL;
    nvec ops = {0};
    uint8_t opcodes[64];
    uint8_t *opv = opcodes;
    uint32_t opcap = 64;
    for (;;) {
        const ttok *t = cur(p);
        int op = -1;
        switch (t->type) {
        case TK_EQ:
            op = CMP_EQ;
            break;
        case TK_NE:
            op = CMP_NE;
            break;
        case TK_LT:
            op = CMP_LT;
            break;
        case TK_LTEQ:
            op = CMP_LE;
            break;
        case TK_GT:
            op = CMP_GT;
            break;
        case TK_GTEQ:
            op = CMP_GE;
            break;
        default:
            if (tok_is_name(t, "in"))
                op = CMP_IN;
            else if (tok_is_name(t, "not") && tok_is_name(look(p), "in"))
                op = CMP_NOTIN;
        }
        if (op < 0) break;
        next(p);
        if (op == CMP_NOTIN) next(p);
        tnode *r = parse_math1(p);
        if (!r || !vpush(p, &ops, r)) return NULL;
        if (ops.n > opcap) {
            uint8_t *nv = arena_alloc(p->t, opcap * 2);
            if (!nv) return OOM(p);
            memcpy(nv, opv, opcap);
            opv = nv;
            opcap *= 2;
        }
        opv[ops.n - 1] = (uint8_t)op;
    }
    if (!ops.n) return e;
    tnode *n = node(p, N_COMPARE, start);
    if (!n) return NULL;
    n->a = e;
    n->kids = ops.v;
    n->nkids = ops.n;
    n->ops = arena_alloc(p->t, ops.n);
    if (!n->ops) return OOM(p);
    memcpy(n->ops, opv, ops.n);
    return n;
}

static tnode *parse_concat(parser *p);
static tnode *parse_math2(parser *p);
static tnode *parse_pow(parser *p);

static tnode *math_chain(parser *p, sub_fn sub, const uint8_t *toks, const uint8_t *opsv, int nt) {
    tnode *left = sub(p);
    int extra = 0;
    while (left) {
        int k = 0;
        while (k < nt && cur(p)->type != toks[k]) k++;
        if (k == nt) break;
        const ttok *at = next(p);
        if (!enter(p)) return NULL;
        extra++;
        tnode *n = node(p, N_BINOP, at);
        if (!n) return NULL;
        n->op = opsv[k];
        n->a = left;
        n->b = sub(p);
        if (!n->b) return NULL;
        left = n;
    }
    p->depth -= extra;
    return left;
}

static tnode *parse_math1(parser *p) {
    static const uint8_t t[] = {TK_ADD, TK_SUB}, o[] = {OP_ADD, OP_SUB};
    return math_chain(p, parse_concat, t, o, 2);
}

static tnode *parse_concat(parser *p) {
    const ttok *start = cur(p);
    tnode *first = parse_math2(p);
    if (!first || cur(p)->type != TK_TILDE) return first;
    nvec args = {0};
    if (!vpush(p, &args, first)) return NULL;
    while (cur(p)->type == TK_TILDE) {
        next(p);
        tnode *n = parse_math2(p);
        if (!n || !vpush(p, &args, n)) return NULL;
    }
    tnode *n = node(p, N_CONCAT, start);
    if (!n) return NULL;
    n->kids = args.v;
    n->nkids = args.n;
    return n;
}

static tnode *parse_math2(parser *p) {
    static const uint8_t t[] = {TK_MUL, TK_DIV, TK_FLOORDIV, TK_MOD},
                         o[] = {OP_MUL, OP_DIV, OP_FLOORDIV, OP_MOD};
    return math_chain(p, parse_pow, t, o, 4);
}

static tnode *parse_unary_f(parser *p) {
    return parse_unary(p, true);
}

static tnode *parse_pow(parser *p) {
    static const uint8_t t[] = {TK_POW}, o[] = {OP_POW};
    return math_chain(p, parse_unary_f, t, o, 1);
}

static tnode *parse_filter_expr(parser *p, tnode *n);

static tnode *parse_unary(parser *p, bool with_filter) {
    const ttok *t = cur(p);
    if (!enter(p)) return NULL;
    tnode *n;
    if (t->type == TK_SUB || t->type == TK_ADD) {
        next(p);
        n = node(p, t->type == TK_SUB ? N_NEG : N_POS, t);
        if (!n || !(n->a = parse_unary(p, false))) return NULL;
    } else {
        n = parse_primary(p, false);
    }
    if (n) n = parse_postfix(p, n);
    if (n && with_filter) n = parse_filter_expr(p, n);
    p->depth--;
    return n;
}

static tnode *parse_list(parser *p) {
    const ttok *start = expect(p, TK_LBRACKET);
    nvec items = {0};
    while (cur(p)->type != TK_RBRACKET) {
        if (items.n && !expect(p, TK_COMMA)) return NULL;
        if (cur(p)->type == TK_RBRACKET) break;
        tnode *e = parse_expression(p, true);
        if (!e || !vpush(p, &items, e)) return NULL;
    }
    if (!expect(p, TK_RBRACKET)) return NULL;
    tnode *n = node(p, N_LIST, start);
    if (!n) return NULL;
    n->kids = items.v;
    n->nkids = items.n;
    return n;
}

static tnode *parse_dict(parser *p) {
    const ttok *start = expect(p, TK_LBRACE);
    nvec keys = {0}, vals = {0};
    while (cur(p)->type != TK_RBRACE) {
        if (keys.n && !expect(p, TK_COMMA)) return NULL;
        if (cur(p)->type == TK_RBRACE) break;
        tnode *k = parse_expression(p, true);
        if (!k || !expect(p, TK_COLON)) return NULL;
        tnode *v = parse_expression(p, true);
        if (!v || !vpush(p, &keys, k) || !vpush(p, &vals, v)) return NULL;
    }
    if (!expect(p, TK_RBRACE)) return NULL;
    tnode *n = node(p, N_DICT, start);
    if (!n) return NULL;
    n->kids = keys.v;
    n->nkids = keys.n;
    n->kids2 = vals.v;
    n->nkids2 = vals.n;
    return n;
}

static tnode *parse_primary(parser *p, bool with_namespace) {
    const ttok *t = cur(p);
    char b[80];
    if (!enter(p)) return NULL;
    tnode *n = NULL;
    switch (t->type) {
    case TK_NAME:
        next(p);
        n = node(p, N_CONST, t);
        if (!n) return NULL;
        if (tok_is_name(t, "true") || tok_is_name(t, "True"))
            n->cval = tv_bool(true);
        else if (tok_is_name(t, "false") || tok_is_name(t, "False"))
            n->cval = tv_bool(false);
        else if (tok_is_name(t, "none") || tok_is_name(t, "None"))
            n->cval = tv_none();
        else if (with_namespace && cur(p)->type == TK_DOT) {
            next(p);
            const ttok *attr = expect(p, TK_NAME);
            if (!attr) return NULL;
            n->kind = N_NSREF;
            if ((n->sym = intern(p, t->p, t->len)) < 0 || !(n->str = mkstr(p, attr->p, attr->len)))
                return NULL;
        } else {
            n->kind = N_NAME;
            if ((n->sym = intern(p, t->p, t->len)) < 0 || !(n->str = mkstr(p, t->p, t->len)))
                return NULL;
        }
        break;
    case TK_STRING: {
        size_t total = 0;
        for (size_t k = p->i; p->tk->v[k].type == TK_STRING; k++) total += p->tk->v[k].len;
        char *buf = malloc(total + 1);
        if (!buf) return OOM(p);
        size_t w = 0;
        while (cur(p)->type == TK_STRING) {
            memcpy(buf + w, cur(p)->p, cur(p)->len);
            w += cur(p)->len;
            next(p);
        }
        n = node(p, N_CONST, t);
        tstr *s = n ? mkstr(p, buf, w) : NULL;
        free(buf);
        if (!s) return NULL;
        n->cval = tv_obj(TV_STR, s);
        break;
    }
    case TK_INT:
    case TK_FLOAT:
        next(p);
        n = node(p, N_CONST, t);
        if (!n) return NULL;
        n->cval = t->type == TK_INT ? tv_int(t->i) : tv_float(t->f);
        break;
    case TK_LPAREN:
        next(p);
        n = parse_tuple(p, false, true, NULL, true, false);
        if (!n || !expect(p, TK_RPAREN)) return NULL;
        break;
    case TK_LBRACKET:
        n = parse_list(p);
        break;
    case TK_LBRACE:
        n = parse_dict(p);
        break;
    default:
        if (t->type == TK_EOF) return fail_at(p, t, "unexpected end of template");
        return fail_at(p, t, "unexpected '%s'", tpl_tok_describe(t, b, sizeof b));
    }
    p->depth--;
    return n;
}

static bool is_tuple_end(parser *p, const char *extra_end) {
    const ttok *t = cur(p);
    if (t->type == TK_VAR_END || t->type == TK_BLOCK_END || t->type == TK_RPAREN) return true;
    return extra_end && tok_is_name(t, extra_end);
}

static tnode *parse_tuple(parser *p, bool simplified, bool with_condexpr, const char *extra_end,
                          bool explicit_parens, bool with_namespace) {
    const ttok *start = cur(p);
    nvec args = {0};
    bool is_tuple = false;
    for (;;) {
        if (args.n && !expect(p, TK_COMMA)) return NULL;
        if (is_tuple_end(p, extra_end)) break;
        tnode *e =
            simplified ? parse_primary(p, with_namespace) : parse_expression(p, with_condexpr);
        if (!e || !vpush(p, &args, e)) return NULL;
        if (cur(p)->type == TK_COMMA)
            is_tuple = true;
        else
            break;
    }
    if (!is_tuple) {
        if (args.n) return args.v[0];
        if (!explicit_parens) {
            char b[80];
            return fail_at(p, cur(p), "Expected an expression, got '%s'",
                           tpl_tok_describe(cur(p), b, sizeof b));
        }
    }
    tnode *n = node(p, N_TUPLE, start);
    if (!n) return NULL;
    n->kids = args.v;
    n->nkids = args.n;
    return n;
}

/* Arguments of a call, filter or test: positional kids, keywords kids2
 * (names in kwnames), *c, **d. */
static bool parse_call_args(parser *p, tnode *n) {
    const ttok *lp = expect(p, TK_LPAREN);
    if (!lp) return false;
    nvec args = {0}, kwv = {0};
    tstr **kwn = NULL;
    uint32_t kwcap = 0;
    bool need_comma = false;
    while (cur(p)->type != TK_RPAREN) {
        if (need_comma) {
            if (!expect(p, TK_COMMA)) return false;
            if (cur(p)->type == TK_RPAREN) break;
        }
        bool ok = true;
        if (cur(p)->type == TK_MUL) {
            ok = !n->c && !n->d;
            next(p);
            if (ok && !(n->c = parse_expression(p, true))) return false;
        } else if (cur(p)->type == TK_POW) {
            ok = !n->d;
            next(p);
            if (ok && !(n->d = parse_expression(p, true))) return false;
        } else if (cur(p)->type == TK_NAME && look(p)->type == TK_ASSIGN) {
            ok = !n->d;
            const ttok *key = next(p);
            next(p);
            tnode *v = ok ? parse_expression(p, true) : NULL;
            if (ok) {
                if (!v || !vpush(p, &kwv, v)) return false;
                if (kwv.n > kwcap) {
                    uint32_t cap = kwcap ? kwcap * 2 : 4;
                    tstr **nk = arena_alloc(p->t, cap * sizeof *nk);
                    if (!nk) return OOM(p), false;
                    if (kwcap) memcpy(nk, kwn, kwcap * sizeof *nk);
                    kwn = nk;
                    kwcap = cap;
                }
                if (!(kwn[kwv.n - 1] = mkstr(p, key->p, key->len))) return false;
            }
        } else {
            ok = !n->c && !n->d && !kwv.n;
            tnode *v = ok ? parse_expression(p, true) : NULL;
            if (ok && (!v || !vpush(p, &args, v))) return false;
        }
        if (!ok) return fail_at(p, lp, "invalid syntax for function call expression"), false;
        need_comma = true;
    }
    if (!expect(p, TK_RPAREN)) return false;
    n->kids = args.v;
    n->nkids = args.n;
    n->kids2 = kwv.v;
    n->nkids2 = kwv.n;
    n->kwnames = kwn;
    return true;
}

static tnode *parse_subscribed(parser *p) {
    const ttok *start = cur(p);
    tnode *parts[3] = {NULL, NULL, NULL};
    if (cur(p)->type == TK_COLON) {
        next(p);
    } else {
        tnode *e = parse_expression(p, true);
        if (!e) return NULL;
        if (cur(p)->type != TK_COLON) return e;
        next(p);
        parts[0] = e;
    }
    if (cur(p)->type != TK_COLON && cur(p)->type != TK_RBRACKET && cur(p)->type != TK_COMMA) {
        if (!(parts[1] = parse_expression(p, true))) return NULL;
    }
    if (cur(p)->type == TK_COLON) {
        next(p);
        if (cur(p)->type != TK_RBRACKET && cur(p)->type != TK_COMMA) {
            if (!(parts[2] = parse_expression(p, true))) return NULL;
        }
    }
    tnode *n = node(p, N_SLICE, start);
    if (!n) return NULL;
    n->b = parts[0];
    n->c = parts[1];
    n->d = parts[2];
    return n;
}

static tnode *parse_subscript(parser *p, tnode *obj) {
    const ttok *t = next(p);
    if (t->type == TK_DOT) {
        const ttok *a = next(p);
        if (a->type == TK_NAME) {
            tnode *n = node(p, N_GETATTR, t);
            if (!n || !(n->str = mkstr(p, a->p, a->len))) return NULL;
            n->a = obj;
            n->id = tpl_method_id(a->p, a->len);
            return n;
        }
        if (a->type != TK_INT) return fail_at(p, a, "expected name or number");
        tnode *k = node(p, N_CONST, a), *n = node(p, N_GETITEM, t);
        if (!k || !n) return NULL;
        k->cval = tv_int(a->i);
        n->a = obj;
        n->b = k;
        return n;
    }
    /* '[' */
    nvec args = {0};
    while (cur(p)->type != TK_RBRACKET) {
        if (args.n && !expect(p, TK_COMMA)) return NULL;
        tnode *s = parse_subscribed(p);
        if (!s || !vpush(p, &args, s)) return NULL;
    }
    if (!expect(p, TK_RBRACKET)) return NULL;
    if (args.n == 1 && args.v[0]->kind == N_SLICE) {
        args.v[0]->a = obj;
        return args.v[0];
    }
    tnode *n = node(p, N_GETITEM, t);
    if (!n) return NULL;
    n->a = obj;
    if (args.n == 1) {
        n->b = args.v[0];
    } else {
        for (uint32_t k = 0; k < args.n; k++)
            if (args.v[k]->kind == N_SLICE)
                return fail_at(p, t, "slices inside a tuple subscript are not supported");
        tnode *tup = node(p, N_TUPLE, t);
        if (!tup) return NULL;
        tup->kids = args.v;
        tup->nkids = args.n;
        n->b = tup;
    }
    return n;
}

static tnode *parse_call(parser *p, tnode *callee) {
    tnode *n = node(p, N_CALL, cur(p));
    if (!n) return NULL;
    n->a = callee;
    return parse_call_args(p, n) ? n : NULL;
}

static tnode *parse_postfix(parser *p, tnode *n) {
    int extra = 0;
    for (;;) {
        uint8_t t = cur(p)->type;
        if (t != TK_DOT && t != TK_LBRACKET && t != TK_LPAREN) break;
        if (!enter(p)) return NULL;
        extra++;
        n = t == TK_LPAREN ? parse_call(p, n) : parse_subscript(p, n);
        if (!n) return NULL;
    }
    p->depth -= extra;
    return n;
}

/* filter or test name: name(.name)* */
static tstr *dotted_name(parser *p) {
    const ttok *t = expect(p, TK_NAME);
    if (!t) return NULL;
    const char *start = t->p;
    size_t len = t->len;
    bool dotted = false;
    char buf[256];
    if (len < sizeof buf) memcpy(buf, start, len);
    while (cur(p)->type == TK_DOT) {
        next(p);
        const ttok *k = expect(p, TK_NAME);
        if (!k) return NULL;
        if (len + 1 + k->len < sizeof buf) {
            buf[len] = '.';
            memcpy(buf + len + 1, k->p, k->len);
        }
        len += 1 + k->len;
        dotted = true;
    }
    if (dotted && len >= sizeof buf) len = sizeof buf - 1;
    return mkstr(p, dotted ? buf : start, len);
}

static tnode *parse_filter(parser *p, tnode *n, bool start_inline) {
    int extra = 0;
    while (cur(p)->type == TK_PIPE || start_inline) {
        if (!start_inline) next(p);
        start_inline = false;
        if (!enter(p)) return NULL;
        extra++;
        const ttok *at = cur(p);
        tnode *f = node(p, N_FILTER, at);
        if (!f || !(f->str = dotted_name(p))) return NULL;
        f->id = tpl_filter_id(f->str->p, f->str->len);
        f->a = n;
        if (cur(p)->type == TK_LPAREN && !parse_call_args(p, f)) return NULL;
        n = f;
    }
    p->depth -= extra;
    return n;
}

static tnode *parse_test(parser *p, tnode *subject) {
    const ttok *is = next(p);
    bool negated = false;
    if (tok_is_name(cur(p), "not")) {
        next(p);
        negated = true;
    }
    tnode *n = node(p, N_TEST, is);
    if (!n || !(n->str = dotted_name(p))) return NULL;
    n->id = tpl_test_id(n->str->p, n->str->len);
    n->a = subject;
    const ttok *t = cur(p);
    if (t->type == TK_LPAREN) {
        if (!parse_call_args(p, n)) return NULL;
    } else if ((t->type == TK_NAME || t->type == TK_STRING || t->type == TK_INT ||
                t->type == TK_FLOAT || t->type == TK_LPAREN || t->type == TK_LBRACKET ||
                t->type == TK_LBRACE) &&
               !tok_is_name(t, "else") && !tok_is_name(t, "or") && !tok_is_name(t, "and")) {
        if (tok_is_name(t, "is")) return fail_at(p, t, "You cannot chain multiple tests with is");
        tnode *arg = parse_primary(p, false);
        if (!arg || !(arg = parse_postfix(p, arg))) return NULL;
        n->kids = arena_alloc(p->t, sizeof *n->kids);
        if (!n->kids) return OOM(p);
        n->kids[0] = arg;
        n->nkids = 1;
    }
    if (negated) {
        tnode *no = node(p, N_NOT, is);
        if (!no) return NULL;
        no->a = n;
        return no;
    }
    return n;
}

static tnode *parse_filter_expr(parser *p, tnode *n) {
    int extra = 0;
    for (;;) {
        const ttok *t = cur(p);
        if (t->type != TK_PIPE && !tok_is_name(t, "is") && t->type != TK_LPAREN) break;
        if (!enter(p)) return NULL;
        extra++;
        if (t->type == TK_PIPE)
            n = parse_filter(p, n, false);
        else if (t->type == TK_LPAREN)
            n = parse_call(p, n);
        else
            n = parse_test(p, n);
        if (!n) return NULL;
    }
    p->depth -= extra;
    return n;
}

/* ---- statements ---- */

static bool can_assign(const tnode *n) {
    if (n->kind == N_NAME || n->kind == N_NSREF) return true;
    if (n->kind != N_TUPLE) return false;
    for (uint32_t i = 0; i < n->nkids; i++)
        if (!can_assign(n->kids[i])) return false;
    return true;
}

static const char *node_kind_name(const tnode *n) {
    switch (n->kind) {
    case N_CONST:
        return "const";
    case N_LIST:
        return "list";
    case N_DICT:
        return "dict";
    case N_TUPLE:
        return "tuple";
    case N_CALL:
        return "call";
    case N_GETATTR:
        return "getattr";
    case N_GETITEM:
        return "getitem";
    default:
        return "expression";
    }
}

static tnode *parse_assign_target(parser *p, bool name_only, const char *extra_end, bool with_ns) {
    const ttok *start = cur(p);
    tnode *n;
    if (name_only) {
        const ttok *t = expect(p, TK_NAME);
        if (!t || !(n = node(p, N_NAME, t))) return NULL;
        if ((n->sym = intern(p, t->p, t->len)) < 0 || !(n->str = mkstr(p, t->p, t->len)))
            return NULL;
        return n;
    }
    n = parse_tuple(p, true, true, extra_end, false, with_ns);
    if (!n) return NULL;
    if (!can_assign(n)) return fail_at(p, start, "can't assign to '%s'", node_kind_name(n));
    return n;
}

static tnode *parse_statement(parser *p);

static bool at_end_token(parser *p, const char *const *ends) {
    for (int k = 0; ends[k]; k++)
        if (tok_is_name(cur(p), ends[k])) return true;
    return false;
}

static void *fail_unknown(parser *p, const ttok *at, const char *name) {
    char msg[400];
    int m;
    if (name)
        m = snprintf(msg, sizeof msg, "Encountered unknown tag '%s'.", name);
    else
        m = snprintf(msg, sizeof msg, "Unexpected end of template.");
    if (p->nends) {
        const char *const *want = p->ends[p->nends - 1];
        bool nesting = false;
        for (int k = 0; name && k < p->nends; k++)
            for (int j = 0; p->ends[k][j]; j++)
                if (!strcmp(p->ends[k][j], name)) nesting = true;
        m += snprintf(msg + m, sizeof msg - (size_t)m,
                      nesting ? " You probably made a nesting mistake. Jinja is expecting this "
                                "tag, but currently looking for "
                              : " Jinja was looking for the following tags: ");
        for (int j = 0; want[j] && (size_t)m < sizeof msg; j++)
            m += snprintf(msg + m, sizeof msg - (size_t)m, "%s'%s'", j ? " or " : "", want[j]);
        if ((size_t)m < sizeof msg) m += snprintf(msg + m, sizeof msg - (size_t)m, ".");
    }
    if (p->ntags && (size_t)m < sizeof msg)
        snprintf(msg + m, sizeof msg - (size_t)m,
                 " The innermost block that needs to be closed is '%s'.", p->tags[p->ntags - 1]);
    return fail_at(p, at, "%s", msg);
}

static bool flush_data(parser *p, nvec *body, nvec *data, const ttok *at) {
    if (!data->n) return true;
    tnode *n = node(p, S_OUTPUT, at);
    if (!n) return false;
    n->kids = data->v;
    n->nkids = data->n;
    n->line = data->v[0]->line;
    *data = (nvec){0};
    return vpush(p, body, n);
}

/* Statements and data until one of `ends` (NULL-terminated) or the end. */
static bool subparse(parser *p, const char *const *ends, nvec *body) {
    nvec data = {0};
    if (ends) p->ends[p->nends++] = ends;
    bool ok = false;
    for (;;) {
        const ttok *t = cur(p);
        if (t->type == TK_EOF) break;
        if (t->type == TK_DATA) {
            tnode *n = node(p, N_CONST, t);
            tstr *s = n ? mkstr(p, t->p, t->len) : NULL;
            if (!s) goto out;
            n->cval = tv_obj(TV_STR, s);
            if (!vpush(p, &data, n)) goto out;
            next(p);
        } else if (t->type == TK_VAR_BEGIN) {
            next(p);
            tnode *e = parse_tuple(p, false, true, NULL, false, false);
            if (!e || !vpush(p, &data, e) || !expect(p, TK_VAR_END)) goto out;
        } else if (t->type == TK_BLOCK_BEGIN) {
            if (!flush_data(p, body, &data, t)) goto out;
            next(p);
            if (ends && at_end_token(p, ends)) {
                ok = true;
                goto out;
            }
            tnode *s = parse_statement(p);
            if (!s || !vpush(p, body, s) || !expect(p, TK_BLOCK_END)) goto out;
        } else {
            char b[80];
            fail_at(p, t, "unexpected '%s'", tpl_tok_describe(t, b, sizeof b));
            goto out;
        }
    }
    ok = flush_data(p, body, &data, cur(p));
out:
    if (ends) p->nends--;
    return ok;
}

/* Skips an optional ':', expects the tag's end, then parses the body. */
static bool parse_statements(parser *p, const char *const *ends, bool drop_needle, nvec *body) {
    if (cur(p)->type == TK_COLON) next(p);
    if (!expect(p, TK_BLOCK_END) || !subparse(p, ends, body)) return false;
    if (cur(p)->type == TK_EOF) {
        p->ends[p->nends++] = ends;
        fail_unknown(p, cur(p), NULL);
        p->nends--;
        return false;
    }
    if (drop_needle) next(p);
    return true;
}

static void set_body(tnode *n, nvec *v) {
    n->kids = v->v;
    n->nkids = v->n;
}

static bool target_names_loop(const tnode *n) {
    if (n->kind == N_NAME) return n->sym == SYM_LOOP;
    if (n->kind == N_TUPLE)
        for (uint32_t i = 0; i < n->nkids; i++)
            if (target_names_loop(n->kids[i])) return true;
    return false;
}

static tnode *parse_for(parser *p, const ttok *at) {
    static const char *const body_end[] = {"endfor", "else", NULL}, *const else_end[] = {"endfor",
                                                                                         NULL};
    tnode *n = node(p, S_FOR, at);
    if (!n || !(n->a = parse_assign_target(p, false, "in", false))) return NULL;
    if (target_names_loop(n->a))
        return fail_at(p, at, "Can't assign to special loop variable in for-loop target");
    if (!expect_name(p, "in") || !(n->b = parse_tuple(p, false, false, "recursive", false, false)))
        return NULL;
    if (tok_is_name(cur(p), "if")) {
        next(p);
        if (!(n->c = parse_expression(p, true))) return NULL;
    }
    if (tok_is_name(cur(p), "recursive")) {
        next(p);
        n->flags |= TN_RECURSIVE;
    }
    nvec body = {0}, els = {0};
    if (!parse_statements(p, body_end, false, &body)) return NULL;
    set_body(n, &body);
    if (tok_is_name(next(p), "else")) {
        if (!parse_statements(p, else_end, true, &els)) return NULL;
        n->kids2 = els.v;
        n->nkids2 = els.n;
    }
    return n;
}

static tnode *parse_if(parser *p, const ttok *at) {
    static const char *const ends[] = {"elif", "else", "endif", NULL}, *const else_end[] = {"endif",
                                                                                            NULL};
    tnode *n = node(p, S_IF, at);
    if (!n) return NULL;
    nvec branches = {0};
    const ttok *bt = at;
    for (;;) {
        tnode *br = node(p, S_BRANCH, bt);
        if (!br || !(br->a = parse_tuple(p, false, false, NULL, false, false))) return NULL;
        nvec body = {0};
        if (!parse_statements(p, ends, false, &body)) return NULL;
        set_body(br, &body);
        if (!vpush(p, &branches, br)) return NULL;
        const ttok *t = next(p);
        if (tok_is_name(t, "elif")) {
            bt = cur(p);
            continue;
        }
        if (tok_is_name(t, "else")) {
            nvec els = {0};
            if (!parse_statements(p, else_end, true, &els)) return NULL;
            n->kids2 = els.v;
            n->nkids2 = els.n;
        }
        break;
    }
    set_body(n, &branches);
    return n;
}

static tnode *parse_set(parser *p, const ttok *at) {
    static const char *const ends[] = {"endset", NULL};
    tnode *target = parse_assign_target(p, false, NULL, true);
    if (!target) return NULL;
    if (cur(p)->type == TK_ASSIGN) {
        next(p);
        tnode *n = node(p, S_SET, at);
        if (!n || !(n->b = parse_tuple(p, false, true, NULL, false, false))) return NULL;
        n->a = target;
        return n;
    }
    tnode *n = node(p, S_SETBLOCK, at);
    if (!n) return NULL;
    n->a = target;
    if (cur(p)->type == TK_PIPE && !(n->c = parse_filter(p, NULL, false))) return NULL;
    nvec body = {0};
    if (!parse_statements(p, ends, true, &body)) return NULL;
    set_body(n, &body);
    return n;
}

static bool parse_signature(parser *p, tnode *n) {
    if (!expect(p, TK_LPAREN)) return false;
    nvec defaults = {0};
    int32_t params[256];
    uint32_t np = 0;
    while (cur(p)->type != TK_RPAREN) {
        if (np && !expect(p, TK_COMMA)) return false;
        const ttok *t = expect(p, TK_NAME);
        if (!t) return false;
        if (np == 256) return fail_at(p, t, "too many macro parameters"), false;
        if ((params[np++] = intern(p, t->p, t->len)) < 0) return false;
        if (cur(p)->type == TK_ASSIGN) {
            next(p);
            tnode *d = parse_expression(p, true);
            if (!d || !vpush(p, &defaults, d)) return false;
        } else if (defaults.n) {
            return fail_at(p, t, "non-default argument follows default argument"), false;
        }
    }
    if (!expect(p, TK_RPAREN)) return false;
    n->params = arena_alloc(p->t, (np ? np : 1) * sizeof *n->params);
    if (!n->params) return OOM(p), false;
    memcpy(n->params, params, np * sizeof *params);
    n->nparams = np;
    n->kids2 = defaults.v;
    n->nkids2 = defaults.n;
    return true;
}

static tnode *parse_macro(parser *p, const ttok *at) {
    static const char *const ends[] = {"endmacro", NULL};
    tnode *n = node(p, S_MACRO, at);
    const ttok *name = expect(p, TK_NAME);
    if (!n || !name) return NULL;
    if ((n->sym = intern(p, name->p, name->len)) < 0 || !(n->str = mkstr(p, name->p, name->len)) ||
        !parse_signature(p, n))
        return NULL;
    nvec body = {0};
    if (!parse_statements(p, ends, true, &body)) return NULL;
    set_body(n, &body);
    return n;
}

static tnode *parse_call_block(parser *p, const ttok *at) {
    static const char *const ends[] = {"endcall", NULL};
    tnode *n = node(p, S_CALLBLOCK, at);
    if (!n) return NULL;
    if (cur(p)->type == TK_LPAREN && !parse_signature(p, n)) return NULL;
    if (!n->params && !(n->params = arena_alloc(p->t, sizeof *n->params))) return OOM(p);
    if (!(n->a = parse_expression(p, true))) return NULL;
    if (n->a->kind != N_CALL) return fail_at(p, at, "expected call");
    if (!(n->str = mkstr(p, "caller", 6))) return NULL; /* the keyword the call passes */
    nvec body = {0};
    if (!parse_statements(p, ends, true, &body)) return NULL;
    set_body(n, &body);
    return n;
}

static tnode *parse_with(parser *p, const ttok *at) {
    static const char *const ends[] = {"endwith", NULL};
    tnode *n = node(p, S_WITH, at);
    if (!n) return NULL;
    nvec targets = {0}, values = {0};
    while (cur(p)->type != TK_BLOCK_END) {
        if (targets.n && !expect(p, TK_COMMA)) return NULL;
        tnode *t = parse_assign_target(p, false, NULL, false);
        if (!t || !expect(p, TK_ASSIGN)) return NULL;
        tnode *v = parse_expression(p, true);
        if (!v || !vpush(p, &targets, t) || !vpush(p, &values, v)) return NULL;
    }
    n->kids2 = targets.v;
    n->nkids2 = targets.n;
    n->d = NULL;
    /* values ride in a tuple node so that kids stays the body */
    tnode *vals = node(p, N_TUPLE, at);
    if (!vals) return NULL;
    vals->kids = values.v;
    vals->nkids = values.n;
    n->b = vals;
    nvec body = {0};
    if (!parse_statements(p, ends, true, &body)) return NULL;
    set_body(n, &body);
    return n;
}

static tnode *parse_scope(parser *p, const ttok *at, const char *end) {
    const char *const ends[] = {end, NULL};
    tnode *n = node(p, S_SCOPE, at);
    nvec body = {0};
    if (!n || !parse_statements(p, ends, true, &body)) return NULL;
    set_body(n, &body);
    return n;
}

/* {% include %}, {% extends %}, {% import %}, {% from %}: parsed, and
 * failing when reached (there is no template loader). */
static tnode *parse_loader_tag(parser *p, const ttok *at, const char *tag) {
    tnode *n = node(p, S_FAIL, at);
    char msg[160];
    snprintf(msg, sizeof msg, "{%% %s %%} needs a template loader, and chat templates have none",
             tag);
    if (!n || !(n->str = mkstr(p, msg, strlen(msg))) || !parse_expression(p, true)) return NULL;
    if (!strcmp(tag, "include") && tok_is_name(cur(p), "ignore") && tok_is_name(look(p), "missing"))
        next(p), next(p);
    if (!strcmp(tag, "import")) {
        if (!expect_name(p, "as") || !expect(p, TK_NAME)) return NULL;
    } else if (!strcmp(tag, "from")) {
        if (!expect_name(p, "import")) return NULL;
        for (int k = 0;; k++) {
            if (k && !expect(p, TK_COMMA)) return NULL;
            if ((tok_is_name(cur(p), "with") || tok_is_name(cur(p), "without")) &&
                tok_is_name(look(p), "context"))
                break;
            if (!expect(p, TK_NAME)) return NULL;
            if (tok_is_name(cur(p), "as") && (next(p), !expect(p, TK_NAME))) return NULL;
            if (cur(p)->type != TK_COMMA) break;
        }
    }
    if ((tok_is_name(cur(p), "with") || tok_is_name(cur(p), "without")) &&
        tok_is_name(look(p), "context"))
        next(p), next(p);
    return n;
}

static tnode *parse_statement(parser *p) {
    const ttok *t = cur(p);
    if (t->type != TK_NAME) return fail_at(p, t, "tag name expected");
    if (!enter(p)) return NULL;
    char name[32];
    snprintf(name, sizeof name, "%.*s", (int)(t->len < 31 ? t->len : 31), t->p);
    static const char *const known[] = {"for",   "if",         "block", "extends", "print",
                                        "macro", "include",    "from",  "import",  "set",
                                        "with",  "autoescape", "call",  "filter",  "generation"};
    const char *tag = NULL;
    for (size_t k = 0; k < sizeof known / sizeof known[0]; k++)
        if (tok_is_name(t, known[k])) tag = known[k];
    if (tok_is_name(t, "break") || tok_is_name(t, "continue")) {
        next(p);
        p->depth--;
        return node(p, tok_is_name(t, "break") ? S_BREAK : S_CONTINUE, t);
    }
    if (!tag) return fail_unknown(p, t, name);
    p->tags[p->ntags++] = tag;
    next(p);
    tnode *n = NULL;
    if (!strcmp(tag, "for"))
        n = parse_for(p, t);
    else if (!strcmp(tag, "if"))
        n = parse_if(p, t);
    else if (!strcmp(tag, "set"))
        n = parse_set(p, t);
    else if (!strcmp(tag, "macro"))
        n = parse_macro(p, t);
    else if (!strcmp(tag, "call"))
        n = parse_call_block(p, t);
    else if (!strcmp(tag, "with"))
        n = parse_with(p, t);
    else if (!strcmp(tag, "generation"))
        n = parse_scope(p, t, "endgeneration");
    else if (!strcmp(tag, "filter")) {
        static const char *const ends[] = {"endfilter", NULL};
        n = node(p, S_FILTERBLOCK, t);
        nvec body = {0};
        if (n && (n->a = parse_filter(p, NULL, true)) && parse_statements(p, ends, true, &body))
            set_body(n, &body);
        else
            n = NULL;
    } else if (!strcmp(tag, "print")) {
        n = node(p, S_OUTPUT, t);
        nvec items = {0};
        while (n && cur(p)->type != TK_BLOCK_END) {
            if (items.n && !expect(p, TK_COMMA)) return NULL;
            tnode *e = parse_expression(p, true);
            if (!e || !vpush(p, &items, e)) return NULL;
        }
        if (n) set_body(n, &items);
    } else if (!strcmp(tag, "block")) {
        const ttok *bn = expect(p, TK_NAME);
        if (!bn) return NULL;
        if (tok_is_name(cur(p), "scoped")) next(p);
        if (tok_is_name(cur(p), "required")) next(p);
        if (cur(p)->type == TK_SUB)
            return fail_at(p, cur(p),
                           "Block names in Jinja have to be valid Python identifiers and may "
                           "not contain hyphens, use an underscore instead.");
        n = parse_scope(p, t, "endblock");
        if (n) {
            n->flags |= TN_BLOCK;
            if (cur(p)->type == TK_NAME && cur(p)->len == bn->len &&
                !memcmp(cur(p)->p, bn->p, bn->len))
                next(p);
        }
    } else if (!strcmp(tag, "autoescape")) {
        tnode *e = parse_expression(p, true);
        if (e && (n = parse_scope(p, t, "endautoescape"))) n->a = e;
    } else {
        n = parse_loader_tag(p, t, tag);
    }
    p->ntags--;
    p->depth--;
    return n;
}

/* ---- checks jinja2 makes when it compiles ---- */

static bool names_sym(const tnode *n, int32_t sym);

typedef struct checker {
    parser *p;
    int loops; /* enclosing loops within the current function */
} checker;

static bool check_node(checker *k, const tnode *n, bool soft);

static bool check_list(checker *k, tnode *const *v, uint32_t n, bool soft) {
    for (uint32_t i = 0; i < n; i++)
        if (v[i] && !check_node(k, v[i], soft)) return false;
    return true;
}

static bool fail_node(checker *k, const tnode *n, const char *fmt, const char *arg) {
    hl_errf(k->p->e, "template error at line %d: ", n->line);
    size_t m = strlen(k->p->e->msg);
    snprintf(k->p->e->msg + m, sizeof k->p->e->msg - m, fmt, arg);
    return false;
}

/* The body of a function (macro, call block, generation): loops outside
 * it do not count for break and continue. */
static bool check_function(checker *k, tnode *const *body, uint32_t n) {
    int saved = k->loops;
    k->loops = 0;
    bool ok = check_list(k, body, n, false);
    k->loops = saved;
    return ok;
}

static bool check_node(checker *k, const tnode *n, bool soft) {
    switch (n->kind) {
    case N_FILTER:
        if (n->id < 0 && !soft) return fail_node(k, n, "No filter named '%s'.", n->str->p);
        break;
    case N_TEST:
        if (n->id < 0 && !soft) return fail_node(k, n, "No test named '%s'.", n->str->p);
        break;
    case N_CONDEX:
        return check_node(k, n->a, true) && check_node(k, n->b, true) &&
               (!n->c || check_node(k, n->c, true));
    case S_IF:
        for (uint32_t i = 0; i < n->nkids; i++)
            if (!check_node(k, n->kids[i]->a, true) ||
                !check_list(k, n->kids[i]->kids, n->kids[i]->nkids, true))
                return false;
        return check_list(k, n->kids2, n->nkids2, true);
    case S_FOR: {
        if (!check_node(k, n->b, soft) || (n->c && !check_node(k, n->c, false))) return false;
        k->loops++;
        bool ok = check_list(k, n->kids, n->nkids, false);
        k->loops--;
        return ok && check_list(k, n->kids2, n->nkids2, false);
    }
    case S_BREAK:
    case S_CONTINUE:
        if (!k->loops)
            return fail_node(k, n, "'%s' outside loop", n->kind == S_BREAK ? "break" : "continue");
        return true;
    case S_MACRO:
        for (uint32_t i = 0; i < n->nparams; i++) {
            if (n->params[i] != SYM_CALLER || i >= n->nparams - n->nkids2) continue;
            for (uint32_t j = 0; j < n->nkids; j++)
                if (names_sym(n->kids[j], SYM_CALLER))
                    return fail_node(k, n, "%s",
                                     "When defining macros or call blocks the special \"caller\" "
                                     "argument must be omitted or be given a default.");
        }
        return check_list(k, n->kids2, n->nkids2, false) && check_function(k, n->kids, n->nkids);
    case S_CALLBLOCK:
        return check_list(k, n->kids2, n->nkids2, false) && check_node(k, n->a, soft) &&
               check_function(k, n->kids, n->nkids);
    case S_SETBLOCK:
        return (!n->c || check_node(k, n->c, false)) && check_list(k, n->kids, n->nkids, false);
    case S_FILTERBLOCK:
        return check_node(k, n->a, false) && check_list(k, n->kids, n->nkids, false);
    case S_WITH:
        return check_node(k, n->b, soft) && check_list(k, n->kids, n->nkids, false);
    case S_SCOPE: /* {% generation %} and {% block %} are functions; {% autoescape %} is not */
        if (n->a) return check_node(k, n->a, soft) && check_list(k, n->kids, n->nkids, false);
        return check_function(k, n->kids, n->nkids);
    default:
        break;
    }
    if (n->a && !check_node(k, n->a, soft)) return false;
    if (n->b && !check_node(k, n->b, soft)) return false;
    if (n->c && !check_node(k, n->c, soft)) return false;
    if (n->d && !check_node(k, n->d, soft)) return false;
    return check_list(k, n->kids, n->nkids, soft) && check_list(k, n->kids2, n->nkids2, soft);
}

/* Does the subtree load the name `sym` (find_undeclared)? */
static bool names_sym(const tnode *n, int32_t sym) {
    if (!n) return false;
    if (n->kind == N_NAME) return n->sym == sym;
    if (n->kind == N_NSREF) return false;
    bool skip_a = n->kind == S_SET || n->kind == S_FOR || n->kind == S_SETBLOCK;
    if ((!skip_a && names_sym(n->a, sym)) || names_sym(n->b, sym) || names_sym(n->c, sym) ||
        names_sym(n->d, sym))
        return true;
    for (uint32_t i = 0; i < n->nkids; i++)
        if (names_sym(n->kids[i], sym)) return true;
    if (n->kind != S_WITH)
        for (uint32_t i = 0; i < n->nkids2; i++)
            if (names_sym(n->kids2[i], sym)) return true;
    return false;
}

static void mark_macros(tnode *n) {
    if (!n) return;
    if (n->kind == S_MACRO || n->kind == S_CALLBLOCK) {
        for (uint32_t i = 0; i < n->nkids; i++) {
            if (names_sym(n->kids[i], SYM_CALLER)) n->flags |= TN_USES_CALLER;
            if (names_sym(n->kids[i], SYM_VARARGS)) n->flags |= TN_USES_VARARGS;
            if (names_sym(n->kids[i], SYM_KWARGS)) n->flags |= TN_USES_KWARGS;
        }
        for (uint32_t i = 0; i < n->nparams; i++) {
            if (n->params[i] == SYM_CALLER) n->flags &= (uint8_t)~TN_USES_CALLER;
            if (n->params[i] == SYM_VARARGS) n->flags &= (uint8_t)~TN_USES_VARARGS;
            if (n->params[i] == SYM_KWARGS) n->flags &= (uint8_t)~TN_USES_KWARGS;
        }
    }
    mark_macros(n->a);
    mark_macros(n->b);
    mark_macros(n->c);
    mark_macros(n->d);
    for (uint32_t i = 0; i < n->nkids; i++) mark_macros(n->kids[i]);
    for (uint32_t i = 0; i < n->nkids2; i++) mark_macros(n->kids2[i]);
}

/* ---- API ---- */

static const char *const FIXED_SYMS[SYM_FIXED_COUNT] = {
    "loop",      "caller",    "varargs", "kwargs",    "messages",        "add_generation_prompt",
    "bos_token", "eos_token", "tools",   "documents", "range",           "dict",
    "namespace", "cycler",    "joiner",  "lipsum",    "raise_exception", "strftime_now"};

int32_t tpl_sym_find(const hl_template *t, const char *s, size_t n) {
    if (!t->sym_icap) return -1;
    uint32_t h = name_hash(s, n) & (t->sym_icap - 1);
    while (t->sym_idx[h]) {
        const char *nm = t->syms[t->sym_idx[h] - 1];
        if (strlen(nm) == n && memcmp(nm, s, n) == 0) return (int32_t)t->sym_idx[h] - 1;
        h = (h + 1) & (t->sym_icap - 1);
    }
    return -1;
}

void hl_template_free(hl_template *t) {
    if (!t) return;
    free(t->syms);
    free(t->sym_idx);
    tarena_chunk *c = t->chunks;
    while (c) {
        tarena_chunk *next_chunk = c->next;
        free(c);
        c = next_chunk;
    }
    free(t);
}

int hl_template_parse(hl_template **out, const char *src, size_t len, hl_err *e) {
    *out = NULL;
    hl_template *t = calloc(1, sizeof *t);
    if (!t) return hl_errf(e, "out of memory while parsing the template");
    ttoks toks;
    if (tpl_lex(src, len, &toks, e) < 0) {
        free(t);
        return -1;
    }
    parser p = {.tk = &toks, .t = t, .e = e};
    bool ok = true;
    for (int k = 0; k < SYM_FIXED_COUNT && ok; k++)
        ok = intern(&p, FIXED_SYMS[k], strlen(FIXED_SYMS[k])) == k;
    nvec body = {0};
    if (ok) ok = (t->root = node(&p, S_SCOPE, cur(&p))) != NULL && subparse(&p, NULL, &body);
    if (ok) {
        set_body(t->root, &body);
        checker k = {.p = &p};
        ok = check_list(&k, t->root->kids, t->root->nkids, false);
        mark_macros(t->root);
    }
    tpl_toks_free(&toks);
    t->syms = p.syms.names;
    t->nsyms = p.syms.n;
    t->sym_idx = p.syms.idx;
    t->sym_icap = p.syms.icap;
    if (!ok) {
        hl_template_free(t);
        return -1;
    }
    *out = t;
    return 0;
}
