/* template_internal.h - shared declarations of the chat template engine
 * (template.h). Not a public header.
 *
 *   template_lex.c      source text -> tokens (jinja2's lexer rules, with
 *                       trim_blocks and lstrip_blocks)
 *   template_parse.c    tokens -> syntax tree; hl_template_parse / _free
 *   template_value.c    the value model: allocation, strings, lists, dicts,
 *                       Python's str()/repr(), equality, ordering, JSON
 *   template_text.c     UTF-8 and per-character Unicode properties
 *                       (whitespace, case, letters, digits, printable)
 *   template_eval.c     statements, expressions, scopes, macros, loops;
 *                       hl_template_render
 *   template_builtins.c argument binding, operators, methods of list/dict/loop,
 *                       global functions
 *   template_strings.c  Python's str: methods, case, % and str.format, Markup
 *   template_filters.c  jinja2's filters and tests
 *
 * Contract. A parsed template (struct hl_template) is immutable: its syntax
 * tree and its constant strings are never written after hl_template_parse,
 * so renders on many threads may share it. Constant strings are "immortal"
 * objects (rc == TOBJ_IMMORTAL): reference counting skips them. Everything a
 * render creates belongs to its tctx: every heap object is linked into the
 * context's list, freed when its count drops to zero, and whatever is left
 * (reference cycles, values held when an error unwound the stack) is freed
 * when the render ends. So error paths may simply return -1 without
 * releasing what they hold. All functions that produce a tval return a new
 * reference the caller owns; functions taking a tval borrow it. Pointers a
 * value keeps to text (an undefined value's name, a generator's keyword
 * names) point to immortal strings or to strings the render keeps alive
 * to its end (tctx.keep).
 */
#ifndef HL_TEMPLATE_INTERNAL_H
#define HL_TEMPLATE_INTERNAL_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "template.h"

/* ---- limits: passing one is an error, never a hang ---- */
#define TPL_MAX_OUTPUT (64u << 20)       /* rendered bytes; also the longest string */
#define TPL_MAX_LIVE_BYTES (512u << 20)  /* memory one render may hold at once */
#define TPL_MAX_ALLOC_TOTAL (2ull << 30) /* bytes one render may allocate in all */
#define TPL_MAX_WORK 100000000           /* elements compared or copied, 64-byte blocks scanned */
#define TPL_MAX_ITERATIONS 5000000       /* loop iterations and per-item filter steps */
#define TPL_MAX_DEPTH 500                /* nested evaluation: expressions, macro calls */
#define TPL_MAX_RANGE 100000             /* range() length, as jinja2's sandbox */
#define TPL_MAX_PARSE_DEPTH 256          /* nesting of the syntax tree */
#define TPL_MAX_SOURCE (16u << 20)       /* template text */

/* ---- values ---- */

typedef enum tv_type {
    TV_UNDEF, /* jinja2's Undefined */
    TV_NONE,
    TV_BOOL,
    TV_INT,
    TV_FLOAT,
    TV_BUILTIN, /* a global function: u.i is a BI_* id */
    /* heap objects from here on */
    TV_STR,
    TV_LIST,
    TV_TUPLE,
    TV_DICT,
    TV_NS,     /* namespace(): a dict whose keys are attributes */
    TV_MACRO,  /* a macro, or the caller of a call block */
    TV_METHOD, /* a bound method: "abc".upper */
    TV_LOOP,   /* the loop variable */
    TV_CYCLER,
    TV_JOINER,
    TV_ITER,        /* an iterator or a dict view: what map, select, items() ... return */
    TV_FRAME,       /* internal: a scope (never in a tval) */
    TV_ABSENT = 255 /* internal: an argument that was not passed */
} tv_type;

#define TV_IS_HEAP(t) ((t) >= TV_STR && (t) != TV_ABSENT)

/* How an undefined value came about (for the error when it is used). */
enum { UD_NAME, UD_ATTR, UD_ITEM, UD_HINT, UD_UNSAFE };

typedef struct tobj tobj;
typedef struct tstr tstr;
typedef struct tlist tlist;
typedef struct tdict tdict;
typedef struct tframe tframe;
typedef struct tnode tnode;

typedef struct tval {
    uint8_t t;      /* tv_type */
    uint8_t markup; /* TV_STR: a markupsafe.Markup (its + and % escape the other side);
                       TV_TUPLE: a groupby result, whose items are also .grouper and .list */
    uint8_t ukind;  /* TV_UNDEF: UD_* */
    uint8_t otype;  /* TV_UNDEF: type of the object looked into (UD_ATTR, UD_ITEM, UD_UNSAFE) */
    union {
        bool b;
        int64_t i;
        double f;
        tobj *o;
        tstr *s;
        tlist *l;
        tdict *d;
        const char *name; /* TV_UNDEF: the name, key or hint (NUL-terminated, immortal) or NULL */
    } u;
} tval;

#define TOBJ_IMMORTAL UINT32_MAX

struct tobj {
    tobj *prev, *next; /* the render's list of live objects (NULL for immortal ones) */
    uint32_t rc;
    uint8_t type;
    size_t bytes; /* accounted size */
};

struct tstr {
    tobj h;
    uint32_t hash; /* 0 = not computed yet */
    size_t len;    /* bytes */
    size_t ncp;    /* code points (UTF-8 lead bytes) */
    char p[];      /* NUL-terminated */
};

struct tlist { /* TV_LIST, TV_TUPLE */
    tobj h;
    size_t n, cap;
    tval *v;
};

struct tdict { /* TV_DICT, TV_NS: insertion-ordered */
    tobj h;
    uint32_t n, cap;
    tval *k, *v;
    uint32_t *idx; /* open-addressing index of entry+1, once n > TDICT_LINEAR */
    uint32_t icap;
};
#define TDICT_LINEAR 8

struct tframe {
    tobj h;
    tframe *parent;
    uint32_t n, cap;
    int32_t *syms;
    tval *vals;
};

typedef struct tmacro {
    tobj h;
    const tnode *def; /* S_MACRO, or S_CALLBLOCK for the caller a call block passes */
    tframe *closure;
} tmacro;

typedef struct tmethod {
    tobj h;
    tval self;
    int id; /* M_* */
} tmethod;

typedef struct tloop {
    tobj h;
    tlist *items;
    size_t index0;
    tval changed;      /* last value given to loop.changed(), TV_ABSENT at first */
    const tnode *node; /* the S_FOR, for loop(...) in recursive loops */
    tframe *frame;     /* the scope the loop runs in */
    int depth0;
} tloop;

typedef struct tcycler {
    tobj h;
    tlist *items;
    size_t pos;
} tcycler;

/* Python's lazy results, computed eagerly: a generator (map, select,
 * unique ...) or a reverse iterator is exhausted by one pass, has no len()
 * and is always true; a dict view (items(), keys(), values()) has a len and
 * can be iterated again. None of them is JSON serializable. */
enum {
    IT_GENERATOR,
    IT_LIST_REVERSE,
    IT_DICT_REVERSE,
    IT_RANGE_REVERSE,
    IT_DICT_ITEMS, /* views from here on */
    IT_DICT_KEYS,
    IT_DICT_VALUES,
    IT_RANGE, /* range(): a view that also indexes and slices */
};
#define IT_IS_VIEW(k) ((k) >= IT_DICT_ITEMS)

typedef struct titer {
    tobj h;
    tlist *items; /* NULL while a generator has not run yet */
    size_t pos;
    uint8_t kind;
    int64_t start, stop, step; /* IT_RANGE, for its repr */
    /* A generator runs when first consumed, as Python's do: until then it
     * holds its filter, operand and arguments. */
    int filter;
    tval src;
    tval *args; /* positional, then keyword values */
    tstr **kwn;
    uint32_t npos, nkw;
} titer;

typedef struct tjoiner {
    tobj h;
    tval sep;
    bool used;
} tjoiner;

/* ---- syntax tree ---- */

typedef enum tn_kind {
    /* expressions */
    N_CONST,   /* cval */
    N_NAME,    /* sym */
    N_NSREF,   /* sym . str (assignment target only) */
    N_GETATTR, /* a . str (id: M_* method id or -1) */
    N_GETITEM, /* a [ b ] */
    N_SLICE,   /* a [ b : c : d ] (any of b, c, d may be NULL) */
    N_LIST,    /* kids */
    N_TUPLE,   /* kids */
    N_DICT,    /* kids = keys, kids2 = values */
    N_BINOP,   /* a op b */
    N_CONCAT,  /* kids joined with ~ */
    N_AND,
    N_OR,
    N_NOT,
    N_NEG,
    N_POS,
    N_COMPARE, /* a, then ops[i] kids[i] */
    N_CONDEX,  /* b if a else c (c may be NULL) */
    N_CALL,    /* a(kids, kwnames=kids2, *c, **d) */
    N_FILTER,  /* a | str(kids, kwnames=kids2, *c, **d); a NULL in filter blocks; id F_* or -1 */
    N_TEST,    /* a is str(kids, ...); id T_* or -1 */
    /* statements */
    S_OUTPUT,      /* kids: N_CONST data or expressions */
    S_IF,          /* kids: S_BRANCH (if, elif...); kids2: the else body */
    S_BRANCH,      /* a: the test; kids: the body */
    S_FOR,         /* for a in b [if c]: kids else: kids2; flags TN_RECURSIVE */
    S_SET,         /* a = b */
    S_SETBLOCK,    /* a = body kids, through filter c (NULL-based N_FILTER chain) */
    S_MACRO,       /* sym(params = defaults kids2 aligned to the end): kids */
    S_CALLBLOCK,   /* a (an N_CALL) with caller(params): kids */
    S_FILTERBLOCK, /* kids through filter a */
    S_WITH,        /* kids2 targets = kwvals values: kids */
    S_SCOPE,       /* kids in an inner scope ({% generation %}, {% block %} with TN_BLOCK,
                      {% autoescape a %}) */
    S_BREAK,
    S_CONTINUE,
    S_FAIL, /* an {% include %}, {% extends %} or {% import %}: fails when reached */
} tn_kind;

enum { OP_ADD, OP_SUB, OP_MUL, OP_DIV, OP_FLOORDIV, OP_MOD, OP_POW };
enum { CMP_EQ, CMP_NE, CMP_LT, CMP_LE, CMP_GT, CMP_GE, CMP_IN, CMP_NOTIN };

/* node flags */
#define TN_RECURSIVE 1   /* S_FOR */
#define TN_USES_CALLER 2 /* S_MACRO, S_CALLBLOCK: the body names these */
#define TN_USES_VARARGS 4
#define TN_USES_KWARGS 8
#define TN_BLOCK 16 /* S_SCOPE: a {% block %}: sees only top-level variables */

struct tnode {
    uint8_t kind, op, flags;
    int32_t line;
    int32_t sym; /* N_NAME, N_NSREF, S_MACRO */
    int32_t id;  /* N_GETATTR method, N_FILTER filter, N_TEST test */
    tstr *str;   /* attribute, filter, test or tag name; S_FAIL message */
    tval cval;   /* N_CONST */
    tnode *a, *b, *c, *d;
    tnode **kids;
    uint32_t nkids;
    tnode **kids2;
    uint32_t nkids2;
    tstr **kwnames;  /* N_CALL, N_FILTER, N_TEST: names of the keyword arguments in kids2 */
    uint8_t *ops;    /* N_COMPARE */
    int32_t *params; /* S_MACRO, S_CALLBLOCK: parameter symbols */
    uint32_t nparams;
};

/* Symbols every template has, interned first, in this order. */
enum {
    SYM_LOOP,
    SYM_CALLER,
    SYM_VARARGS,
    SYM_KWARGS,
    SYM_MESSAGES,
    SYM_ADD_GENERATION_PROMPT,
    SYM_BOS_TOKEN,
    SYM_EOS_TOKEN,
    SYM_TOOLS,
    SYM_DOCUMENTS,
    SYM_RANGE,
    SYM_DICT,
    SYM_NAMESPACE,
    SYM_CYCLER,
    SYM_JOINER,
    SYM_LIPSUM,
    SYM_RAISE_EXCEPTION,
    SYM_STRFTIME_NOW,
    SYM_FIXED_COUNT
};

/* Global functions (TV_BUILTIN). */
enum { BI_RANGE, BI_DICT, BI_NAMESPACE, BI_CYCLER, BI_JOINER, BI_LIPSUM, BI_RAISE, BI_STRFTIME };

typedef struct tarena_chunk tarena_chunk;

struct hl_template {
    tarena_chunk *chunks; /* every node, array and constant lives here */
    tnode *root;          /* S_SCOPE-like: kids is the template body */
    const char **syms;    /* symbol names by id */
    uint32_t nsyms;
    uint32_t *sym_idx; /* open-addressing index of the names: id + 1 */
    uint32_t sym_icap;
};

/* The symbol id of a name the template uses, or -1. */
int32_t tpl_sym_find(const hl_template *t, const char *s, size_t n);

/* ---- template_lex.c ---- */

typedef enum ttok_type {
    TK_EOF,
    TK_DATA,
    TK_BLOCK_BEGIN,
    TK_BLOCK_END,
    TK_VAR_BEGIN,
    TK_VAR_END,
    TK_NAME,
    TK_STRING,
    TK_INT,
    TK_FLOAT,
    /* operators */
    TK_ADD,
    TK_SUB,
    TK_DIV,
    TK_FLOORDIV,
    TK_MUL,
    TK_MOD,
    TK_POW,
    TK_TILDE,
    TK_LBRACKET,
    TK_RBRACKET,
    TK_LPAREN,
    TK_RPAREN,
    TK_LBRACE,
    TK_RBRACE,
    TK_EQ,
    TK_NE,
    TK_GT,
    TK_GTEQ,
    TK_LT,
    TK_LTEQ,
    TK_ASSIGN,
    TK_DOT,
    TK_COLON,
    TK_PIPE,
    TK_COMMA,
    TK_SEMICOLON,
} ttok_type;

typedef struct ttok {
    uint8_t type;
    int32_t line, col;
    const char *p; /* TK_DATA, TK_NAME: the text; TK_STRING: the decoded value (malloc'd) */
    size_t len;
    int64_t i; /* TK_INT */
    double f;  /* TK_FLOAT */
} ttok;

typedef struct ttoks {
    ttok *v;
    size_t n, cap;
    char *src; /* the normalized source the tokens point into */
} ttoks;

/* Tokenizes len bytes of src. 0, or -1 with e naming line and column. */
int tpl_lex(const char *src, size_t len, ttoks *out, hl_err *e);
void tpl_toks_free(ttoks *t);
const char *tpl_tok_describe(const ttok *t, char *buf, size_t n);

/* ---- template_text.c: UTF-8 and Python's str algorithms ---- */

/* Decodes the code point at s[*i] (n bytes), advancing *i by at least one;
 * a malformed byte decodes as itself. */
uint32_t tpl_utf8_next(const char *s, size_t n, size_t *i);
/* Appends cp as UTF-8 to dst (4 bytes of room); returns bytes written. */
size_t tpl_utf8_put(char *dst, uint32_t cp);
size_t tpl_utf8_count(const char *s, size_t n);
/* Byte offset of code point k (k <= count). */
size_t tpl_utf8_offset(const char *s, size_t n, size_t k);
bool tpl_cp_isspace(uint32_t cp); /* Python's str.isspace for one code point */
uint32_t tpl_cp_lower(uint32_t cp);
uint32_t tpl_cp_upper(uint32_t cp);
bool tpl_cp_isupper(uint32_t cp);
bool tpl_cp_islower(uint32_t cp);
bool tpl_cp_isalpha(uint32_t cp);
bool tpl_cp_isdigit(uint32_t cp);
bool tpl_cp_isprintable(uint32_t cp);
/* Length of the trailing whitespace of s (Python's rstrip()). */
size_t tpl_rstrip_ws_len(const char *s, size_t n);

/* ---- template_value.c ---- */

typedef struct tbuf { /* a growable string under the render's limits */
    char *p;
    size_t len, cap;
} tbuf;

typedef struct tctx tctx;

void *tpl_alloc(tctx *c, uint8_t type, size_t bytes); /* a heap object, rc 1; NULL + error */
bool tpl_account(tctx *c, size_t add, size_t sub);    /* for owned arrays; false + error */
void tpl_incref(tval v);
void tpl_decref(tctx *c, tval v);
void tpl_obj_decref(tctx *c, tobj *o);
void tpl_free_all(tctx *c);

static inline tval tv_undef(void) {
    return (tval){.t = TV_UNDEF};
}
static inline tval tv_none(void) {
    return (tval){.t = TV_NONE};
}
static inline tval tv_bool(bool b) {
    return (tval){.t = TV_BOOL, .u.b = b};
}
static inline tval tv_int(int64_t i) {
    return (tval){.t = TV_INT, .u.i = i};
}
static inline tval tv_float(double f) {
    return (tval){.t = TV_FLOAT, .u.f = f};
}
static inline tval tv_absent(void) {
    return (tval){.t = TV_ABSENT};
}
static inline tval tv_obj(uint8_t t, void *o) {
    return (tval){.t = t, .u.o = (tobj *)o};
}
tval tv_undef_named(uint8_t ukind, uint8_t otype, const char *name);

/* Strings. tpl_str returns NULL (error set) past the size limit. */
tstr *tpl_str(tctx *c, const char *p, size_t len);
tstr *tpl_str_ncp(tctx *c, const char *p, size_t len, size_t ncp);
tstr *tpl_str_cat(tctx *c, const tstr *a, const tstr *b);
int tpl_str_val(tctx *c, const char *p, size_t len, tval *out);
int tpl_str_from_buf(tctx *c, tbuf *b, tval *out); /* takes b's text; b is emptied */
uint32_t tpl_str_hash(tstr *s);

/* Growable text under the render's size limit. */
bool tbuf_put(tctx *c, tbuf *b, const char *p, size_t n);
bool tbuf_putc(tctx *c, tbuf *b, char ch);
bool tbuf_puts(tctx *c, tbuf *b, const char *s);
void tbuf_free(tctx *c, tbuf *b);

/* Lists and tuples. */
tlist *tpl_list(tctx *c, uint8_t type, size_t cap);
bool tpl_list_push(tctx *c, tlist *l, tval v); /* takes v */
/* Dicts and namespaces. */
tdict *tpl_dict(tctx *c, uint8_t type);
/* Takes k and v. -1 (error) on an unhashable key. */
int tpl_dict_set(tctx *c, tdict *d, tval k, tval v);
/* Borrowed value or NULL; -1 in *err on an unhashable key when err is given. */
tval *tpl_dict_get(tctx *c, tdict *d, tval k, int *err);
tval *tpl_dict_get_str(tdict *d, const char *p, size_t n);
int tpl_dict_del(tctx *c, tdict *d, tval k, tval *out); /* 1 found (value moved to out), 0 not */
/* Frames. */
tframe *tpl_frame(tctx *c, tframe *parent);
tval *tpl_frame_find(tframe *f, int32_t sym);
bool tpl_frame_set(tctx *c, tframe *f, int32_t sym, tval v); /* takes v */
void tpl_frame_clear(tctx *c, tframe *f);

/* Python semantics. */
bool tpl_truthy(tval v);
const char *tpl_type_name(uint8_t t);  /* Python's type name: "str", "int", "dict" ... */
const char *tpl_val_type_name(tval v); /* the same, telling generators from dict views */
/* Wraps list l (taken) as an iterator or view of the given IT_* kind. */
int tpl_make_iter(tctx *c, tlist *l, uint8_t kind, tval *out);
/* Runs a generator that has not run yet (template_filters.c). */
int tpl_iter_force(tctx *c, titer *it);
/* The Python function a generator filter runs in ("sync_do_map" ...). */
const char *tpl_generator_name(int filter);
/* str(v) and repr(v) appended to b. */
bool tpl_append_str(tctx *c, tbuf *b, tval v);
bool tpl_append_repr(tctx *c, tbuf *b, tval v);
void tpl_float_repr(double f, char out[32]);
int tpl_to_str(tctx *c, tval v, tval *out); /* str(v) as a TV_STR */
bool tpl_eq(tctx *c, tval a, tval b);       /* c may be NULL: no work accounting */
/* Python's a < b: 1 true, 0 false, -1 TypeError (error set). */
int tpl_lt(tctx *c, tval a, tval b);
bool tpl_hashable(tval v);
int64_t tpl_len(tval v); /* -1: has no len() */
/* JSON: json.dumps(v, ensure_ascii, indent (NULL = none), separators, sort_keys). */
typedef struct tjson_opts {
    bool ensure_ascii, sort_keys;
    const char *indent; /* NULL: no newlines */
    size_t indent_len;
    const char *item_sep, *key_sep;
    size_t item_sep_len, key_sep_len;
} tjson_opts;
int tpl_to_json(tctx *c, tbuf *b, tval v, const tjson_opts *o, int depth);
/* Parses JSON text (json-c) into a value. */
int tpl_from_json(tctx *c, const char *text, size_t len, tval *out, const char *what);

/* ---- the render ---- */

struct tctx {
    const hl_template *t;
    tobj live; /* sentinel of the list of live objects */
    size_t live_bytes;
    uint64_t total_bytes;
    uint64_t iterations;
    uint64_t work;
    int depth;
    int status; /* 0, HL_TEMPLATE_ERROR or HL_TEMPLATE_RAISED once failed */
    hl_err *e;
    tbuf *out;     /* where output goes now (the render, a macro, a set block) */
    tval *globals; /* by symbol: the render's variables and the global functions */
    tframe *root;
    tlist *keep; /* strings that undefined values name */
    int line;    /* line of the node being evaluated, for messages */
    int64_t now; /* unix seconds for strftime_now */
};

/* Sets the render's error ("line N: ...") and returns -1. */
int tpl_fail(tctx *c, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
/* The error for using an undefined value. */
int tpl_fail_undef(tctx *c, tval v);
/* An undefined value naming a key or attribute; a key computed at run time
 * is kept alive to the render's end (the undefined value may outlive it). */
tval tpl_undef_key(tctx *c, uint8_t ukind, uint8_t otype, tval key);
/* Counts one step against TPL_MAX_ITERATIONS. */
int tpl_step(tctx *c);
/* Counts units of work (elements compared or copied, 64-byte blocks of
 * text scanned) against TPL_MAX_WORK, so no loop of cheap-looking
 * operations on huge values can run for minutes. */
int tpl_work(tctx *c, uint64_t units);

/* ---- template_eval.c, used by the builtins ---- */

typedef struct targs {
    tval *pos;
    uint32_t npos;
    tstr *const *kwn;
    tval *kwv;
    uint32_t nkw;
} targs;

int tpl_call(tctx *c, tval fn, const targs *a, tval *out);
int tpl_getattr(tctx *c, tval obj, tstr *name, int method_id, tval *out);
int tpl_getitem(tctx *c, tval obj, tval key, tval *out);
/* Iterates v into a fresh list (dict: its keys; str: its characters). */
int tpl_iterate(tctx *c, tval v, tlist **out);

/* ---- the builtins ---- */

int tpl_filter_id(const char *name, size_t len); /* -1 if jinja2 has no such filter */
int tpl_test_id(const char *name, size_t len);
int tpl_method_id(const char *name, size_t len);
int tpl_apply_filter(tctx *c, int id, const char *name, tval v, const targs *a, tval *out);
int tpl_apply_test(tctx *c, int id, const char *name, tval v, const targs *a, bool *out);
/* obj.name for a method of obj's type: 1 bound method made, 0 not a method, -1 error. */
int tpl_bind_method(tctx *c, tval obj, int id, tval *out);
int tpl_call_method(tctx *c, const tmethod *m, const targs *a, tval *out);
int tpl_call_builtin(tctx *c, int id, const targs *a, tval *out);
/* Binds a call's arguments to named parameters (slots start TV_ABSENT). */
int tpl_bind_args(tctx *c, const char *fname, const char *const *params, int n, const targs *a,
                  tval *slots);
/* Python binary operators on values. */
int tpl_binop(tctx *c, int op, tval a, tval b, tval *out);
/* Python's str % args. */
int tpl_percent_format(tctx *c, tval fmt, tval args, tval *out);

/* ---- shared by the builtins (template_builtins.c, template_strings.c,
 * template_filters.c) ---- */

/* Method ids (tpl_method_id), one namespace over str, list, dict, loop, cycler. */
enum {
    /* str */
    M_CAPITALIZE,
    M_CASEFOLD,
    M_CENTER,
    M_COUNT,
    M_ENDSWITH,
    M_FIND,
    M_FORMAT,
    M_INDEX,
    M_ISALNUM,
    M_ISALPHA,
    M_ISDECIMAL,
    M_ISDIGIT,
    M_ISLOWER,
    M_ISNUMERIC,
    M_ISSPACE,
    M_ISTITLE,
    M_ISUPPER,
    M_JOIN,
    M_LJUST,
    M_LOWER,
    M_LSTRIP,
    M_PARTITION,
    M_REMOVEPREFIX,
    M_REMOVESUFFIX,
    M_REPLACE,
    M_RFIND,
    M_RINDEX,
    M_RJUST,
    M_RPARTITION,
    M_RSPLIT,
    M_RSTRIP,
    M_SPLIT,
    M_SPLITLINES,
    M_STARTSWITH,
    M_STRIP,
    M_SWAPCASE,
    M_TITLE,
    M_UPPER,
    M_ZFILL,
    /* dict (and copy for lists) */
    M_GET,
    M_ITEMS,
    M_KEYS,
    M_VALUES,
    M_COPY,
    /* mutators: unsafe in the immutable sandbox */
    M_APPEND,
    M_CLEAR,
    M_EXTEND,
    M_INSERT,
    M_POP,
    M_POPITEM,
    M_REMOVE,
    M_REVERSE,
    M_SETDEFAULT,
    M_SORT,
    M_UPDATE,
    /* loop, cycler */
    M_CYCLE,
    M_CHANGED,
    M_NEXT,
    M_RESET,
    M_COUNT_
};

enum { CASE_UPPER, CASE_LOWER, CASE_SWAP, CASE_CAPITALIZE, CASE_TITLE };

static inline bool tv_given(tval v) {
    return v.t != TV_ABSENT;
}
static inline bool tv_is_num(tval v) {
    return v.t == TV_INT || v.t == TV_FLOAT || v.t == TV_BOOL;
}
static inline double tv_num_f(tval v) {
    return v.t == TV_FLOAT ? v.u.f : v.t == TV_INT ? (double)v.u.i : (double)v.u.b;
}
static inline int64_t tv_num_i(tval v) {
    return v.t == TV_INT ? v.u.i : (int64_t)v.u.b;
}

int tpl_name_index(const char *const *names, int n, const char *s, size_t len); /* -1 if absent */
const char *tpl_method_name(int id);
int tpl_want_int(tctx *c, tval v, const char *what, int64_t *out);
int tpl_want_str(tctx *c, tval v, const char *what);
int tpl_new_list(tctx *c, uint8_t type, size_t cap, tlist **out);
int tpl_push(tctx *c, tlist *l, tval v);          /* takes v */
int tpl_pair(tctx *c, tval a, tval b, tval *out); /* a 2-tuple; takes a and b */
int tpl_no_args(tctx *c, const char *name, const targs *a);
int tpl_int_overflow(tctx *c);
/* Python's str: strip bounds (chars NULL = whitespace), strip, case, jinja2's
 * title filter, replace, splitlines, center/ljust/rjust (how 0/1/2), the
 * is*() predicates (by method id), markupsafe's escape, and str methods. */
void tpl_strip_range(const tstr *s, const tstr *chars, bool left, bool right, size_t *a, size_t *b);
int tpl_str_strip(tctx *c, tval s, tval chars, bool left, bool right, tval *out);
int tpl_str_case(tctx *c, tval s, int mode, tval *out);
int tpl_str_title_words(tctx *c, tval s, tval *out);
int tpl_str_replace(tctx *c, tval s, tval old, tval new, int64_t count, tval *out);
int tpl_str_splitlines(tctx *c, tval s, const targs *a, tval *out);
int tpl_str_pad(tctx *c, tval s, int64_t width, tval fill, int how, tval *out);
int tpl_str_is(tval s, int method_id);
int tpl_html_escape(tctx *c, tval v, tval *out);
int tpl_str_method(tctx *c, tval s, int id, const targs *a, tval *out);

#endif
