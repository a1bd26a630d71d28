/* test_template.c - the chat template engine (src/engine/template.h).
 *
 * The rendering table was produced by Python's jinja2 in transformers'
 * environment (tests/template/reference.py); regenerate it with a script
 * that renders each template there, the messages of MESSAGES and, where
 * marked, the variables of EXTRA, with add_generation_prompt, bos "<s>" and
 * eos "</s>". The rest checks errors (line numbers, kinds), raise_exception,
 * the limits that keep hostile templates from hanging or exhausting memory,
 * and that one parsed template renders on many threads at once.
 */
#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "../../src/engine/template.h"
#include "test.h"

static const char MESSAGES[] = "[{\"role\":\"system\",\"content\":\"Be brief.\"},"
                               "{\"role\":\"user\",\"content\":\"Hi\"},"
                               "{\"role\":\"assistant\",\"content\":\"Hello!\"},"
                               "{\"role\":\"user\",\"content\":\"2+2?\"}]";

static const char EXTRA[] =
    "{\"d\":{\"b\":1,\"a\":2},\"l\":[3,1,2],\"s\":\" Hello World "
    "\",\"f\":2.5,\"u\":\"h\xc3\xa9llo\","
    "\"objs\":[{\"name\":\"x\",\"v\":2},{\"name\":\"Y\",\"v\":1},{\"name\":\"z\",\"v\":3}],"
    "\"html\":\"<a href='x'>&</a>\"}";

static const struct {
    const char *src;
    bool extra;
    const char *want;
} CASES[] = {
    {"  {% if true %}\nA\n  {% endif %}\nB\n", false, "A\nB"},
    {"a  {%- if true %} b {% endif -%}  c", false, "a b c"},
    {"a  {%+ if true %}b{% endif +%}\nc", false, "a  b\nc"},
    {"x {#- c -#} y {# c #}\nz", false, "xy z"},
    {"{% raw %}{{ not }}{% endraw %}|{%- raw -%}  r  {%- endraw -%}  |", false, "{{ not }}|r|"},
    {"{{ 'a' -}}   \n  {{- 'b' }}  {{ 'c' }}\n", false, "ab  c"},
    {"line\n\n", false, "line\n"},
    {"a\r\nb\r\n{% if true %}\r\nc\r\n{% endif %}\r\n", false, "a\nb\nc\n"},
    {"{{ 1.0 }} {{ 1e20 }} {{ 0.1 + 0.2 }} {{ 1e16 }} {{ 1e-5 }} {{ -0.0 }} {{ 1/3 }}", false,
     "1.0 1e+20 0.30000000000000004 1e+16 1e-05 -0.0 0.3333333333333333"},
    {"{{ [1, 'a', none, true, 2.5] }} {{ {'k': ('t',)} }} {{ \"it's\" }} {{ ['it\\'s'] }}", false,
     "[1, 'a', None, True, 2.5] {'k': ('t',)} it's [\"it's\"]"},
    {"{{ none }}|{{ true }}|{{ missing }}|{{ messages[0] }}", false,
     "None|True||{'role': 'system', 'content': 'Be brief.'}"},
    {"{{ 7 // 2 }} {{ -7 // 2 }} {{ -7 % 3 }} {{ 7 % -3 }} {{ -7.5 % 2 }} {{ 2 ** 10 }} {{ 2 ** 3 "
     "** 2 }} {{ 10 / 4 }}",
     false, "3 -4 2 -2 0.5 1024 64 2.5"},
    {"{{ 1 < 2 < 3 }} {{ 'b' in 'abc' }} {{ 3 not in l }} {{ 1 == 1.0 }} {{ [1, 2] == (1, 2) }} {{ "
     "'a' ~ 1 ~ none }}",
     true, "True True False True False a1None"},
    {"{{ none or 'x' }} {{ 0 and 1 }} {{ 'y' if false }}|{{ 'a' * 3 }} {{ -l[0] }} {{ not 0 }}",
     true, "x 0 |aaa -3 True"},
    {"{{ '%s-%03d|%.2f|%-4s|%x' % ('a', 7, 3.14159, 'b', 255) }} {{ '%(k)s' % {'k': 1} }}", false,
     "a-007|3.14|b   |ff 1"},
    {"{{ '{} {:>5}|{:.1f}|{:,}'.format(1, 'r', 2.25, 1234567) }}", false, "1     r|2.2|1,234,567"},
    {"{% set x = 0 %}{% for i in range(3) %}{{ x }}{% set x = i %}{% endfor %}{{ x }}", false,
     "0000"},
    {"{% set ns = namespace(n=0) %}{% for i in range(4) %}{% set ns.n = ns.n + i %}{% endfor %}{{ "
     "ns.n }}",
     false, "6"},
    {"{% if true %}{% set y = 1 %}{% endif %}{{ y }}|{% for i in [1] %}{% set z = 2 %}{% endfor "
     "%}{{ z }}",
     false, "1|"},
    {"{% macro m(a, b=a ~ '!') %}[{{ a }}{{ b }}{{ varargs }}{{ kwargs }}]{% endmacro %}{{ m(1) "
     "}}{{ m(1, 2, 3) }}{{ m(1, k=5) }}",
     false, "[11!(){}][12(3,){}][11!(){'k': 5}]"},
    {"{% set x = 'outer' %}{% macro m() %}{{ x }}{% endmacro %}{% for x in ['loop'] %}{{ m() }}{% "
     "endfor %}",
     false, "outer"},
    {"{% macro w() %}<{{ caller(1) }}>{% endmacro %}{% call(n) w() %}n={{ n }}{% endcall %}", false,
     "<n=1>"},
    {"{% macro k() %}{{ kwargs }}{% endmacro %}{% call k() %}b{% endcall %}|{% macro "
     "e(caller=none) %}{{ caller is none }}{% endmacro %}{% call e() %}b{% endcall %}{{ e() }}",
     false, "{'caller': <Macro anonymous>}|FalseTrue"},
    {"{% set c %}A{{ 1 + 1 }}{% endset %}{{ c }}|{% set d | upper %}b{% endset %}{{ d }}|{% filter "
     "trim %}  f  {% endfilter %}",
     false, "A2|B|f"},
    {"{% with a = 1, b = 2 %}{{ a + b }}{% endwith %}{{ a }}|{% set p, q = 1, 2 %}{{ q }}{{ p }}",
     false, "3|21"},
    {"{% for x in l %}{{ loop.index }}{{ loop.index0 }}{{ loop.revindex }}{{ loop.first }}{{ "
     "loop.last }}{{ loop.length }}{{ loop.previtem }}{{ loop.nextitem }}{{ loop.cycle('a', 'b') "
     "}};{% endfor %}",
     true, "103TrueFalse31a;212FalseFalse332b;321FalseTrue31a;"},
    {"{% for i in range(10) if i is odd %}{{ i }}{% if i > 4 %}{% break %}{% endif %}{% else "
     "%}none{% endfor %}|{% for i in [] %}x{% else %}empty{% endfor %}",
     false, "135|empty"},
    {"{% for i in range(5) %}{% if i == 1 %}{% continue %}{% endif %}{{ i }}{% endfor %}|{% for k, "
     "v in d|dictsort %}{{ k }}={{ v }};{% endfor %}",
     true, "0234|a=2;b=1;"},
    {"{% for x in [[1, [2]], [3]] recursive %}<{% if x is iterable %}{{ loop(x) }}{% else %}{{ x "
     "}}{% endif %}>{% endfor %}",
     false, "<<1><<2>>><<3>>"},
    {"{% for x in [1, 1, 2] %}{{ loop.changed(x) }}{% endfor %}", false, "TrueFalseTrue"},
    {"{% for x in [1, 2] %}{% break %}{% else %}E{% endfor %}|{% for x in [1, 2] %}{% if x == 1 "
     "%}{% continue %}{% endif %}{% else %}E{% endfor %}|{% for x in [1, 2] %}{% continue %}{% "
     "else %}F{% endfor %}",
     false, "E||F"},
    {"{{ d|tojson }}|{{ d|tojson(indent=2) }}|{{ u|tojson }}|{{ u|tojson(ensure_ascii=true) }}|{{ "
     "d|tojson(sort_keys=true) }}|{{ [1.0, none]|tojson(separators=(',', ':')) }}",
     true,
     "{\"b\": 1, \"a\": 2}|{\n  \"b\": 1,\n  \"a\": 2\n}|\"h\xc3"
     "\xa9"
     "llo\"|\"h\\u00e9llo\"|{\"a\": 2, \"b\": 1}|[1.0,null]"},
    {"{{ objs|map(attribute='name')|join(',') }}|{{ objs|selectattr('v', 'gt', "
     "1)|map(attribute='name')|list }}|{{ objs|sort(attribute='name')|map(attribute='v')|list "
     "}}|{{ objs|sort(attribute='v', reverse=true)|first }}",
     true, "x,Y,z|['x', 'z']|[2, 1, 3]|{'name': 'z', 'v': 3}"},
    {"{{ l|sort }}|{{ l|sum }}|{{ l|min }}|{{ l|max }}|{{ l|reverse|list }}|{{ "
     "l|select('odd')|list }}|{{ ['b', 'A', 'a']|unique|list }}|{{ l|batch(2)|list }}",
     true, "[1, 2, 3]|6|1|3|[2, 1, 3]|[3, 1]|['b', 'A']|[[3, 1], [2]]"},
    {"{{ d|dictsort(by='value') }}|{{ d|items|list }}|{{ d.items()|list }}|{{ d.get('zz', 0) }}|{{ "
     "d.keys()|list }}",
     true, "[('b', 1), ('a', 2)]|[('b', 1), ('a', 2)]|[('b', 1), ('a', 2)]|0|['b', 'a']"},
    {"[{{ s|trim }}]|[{{ s|upper }}]|{{ s|length }}|{{ s|replace('l', 'L', 2) }}|{{ s|title }}|{{ "
     "'hELLO'|capitalize }}|{{ s|wordcount }}|{{ s|center(15) }}",
     true, "[Hello World]|[ HELLO WORLD ]|13| HeLLo World | Hello World |Hello|2|  Hello World  "},
    {"{{ missing|default('d') }}|{{ ''|default('e', true) }}|{{ '42'|int + 1 }}|{{ 'x'|int(7) "
     "}}|{{ '2.5'|float }}|{{ 2.5|round }}|{{ 3.5|round }}|{{ 2.675|round(2) }}|{{ -3|abs }}",
     false, "d|e|43|7|2.5|2.0|4.0|2.67|3"},
    {"{{ 'a\nb\n\nc'|indent(2) }}|{{ 'a\nb'|indent(2, true) }}|{{ 'foo bar baz'|truncate(9) }}|{{ "
     "html|e }}|{{ '<p>a</p>'|striptags }}",
     true, "a\n  b\n\n  c|  a\n  b|foo bar baz|&lt;a href=&#39;x&#39;&gt;&amp;&lt;/a&gt;|a"},
    {"{{ objs|groupby('v')|map(attribute='grouper')|list }}|{{ [1, 2, 3, 4, 5]|slice(2)|list }}|{{ "
     "'a b'|urlencode }}|{{ '%s!'|format('x') }}",
     true, "[1, 2, 3]|[[1, 2, 3], [4, 5]]|a%20b|x!"},
    {"{{ s.strip() }}|{{ s.split() }}|{{ 'a,b,,c'.split(',') }}|{{ 'a b c'.split(None, 1) }}|{{ "
     "'a.b.c'.rsplit('.', 1) }}|{{ 'x\ny'.splitlines() }}",
     true,
     "Hello World|['Hello', 'World']|['a', 'b', '', 'c']|['a', 'b c']|['a.b', 'c']|['x', 'y']"},
    {"{{ 'abc'.startswith(('x', 'a')) }}|{{ 'abc'.endswith('bc') }}|{{ 'abcb'.find('b') }}|{{ "
     "'abcb'.rfind('b') }}|{{ 'aaa'.count('a') }}|{{ 'AbC'.lower() }}|{{ 'ab'.replace('a', 'x') "
     "}}|{{ '-'.join(['a', 'b']) }}",
     false, "True|True|1|3|3|abc|xb|a-b"},
    {"{{ u|upper }}|{{ u[1] }}|{{ u[::-1] }}|{{ u|length }}|{{ '\xc3"
     "\x9f"
     "'|upper }}|{{ 'Stra\xc3"
     "\x9f"
     "e'.title() }}",
     true,
     "H\xc3"
     "\x89"
     "LLO|\xc3"
     "\xa9"
     "|oll\xc3"
     "\xa9"
     "h|5|SS|Stra\xc3"
     "\x9f"
     "e"},
    {"{{ x is defined }}|{{ none is none }}|{{ 'a' is string }}|{{ d is mapping }}|{{ d is "
     "iterable }}|{{ 'a' is sequence }}|{{ 1 is number }}|{{ true is boolean }}|{{ 3 is odd }}|{{ "
     "9 is divisibleby 3 }}|{{ 1 is in [1] }}|{{ 'A' is upper }}",
     true, "False|True|True|True|True|True|True|True|True|True|True|True"},
    {"{{ ('<b>'|safe) + '<i>' }}|{{ '<i>' ~ ('<b>'|safe) }}|{{ (html|e)|length }}|{{ "
     "(l|map('string')) is iterable }}|{{ (l|select) is sequence }}|{{ 'y' if []|select else 'n' "
     "}}",
     true, "<b>&lt;i&gt;|<i><b>|41|True|False|y"},
    {"{% set g = l|map('string') %}{{ g|join }}-{{ g|join }}", true, "312-"},
    {"{{ 'y' if 5|select else 'n' }}|{{ ('ab'|safe)|list }}|{{ '\\\xc3"
     "\xa9"
     "' }}|{{ '%s' is even }}|{{ 'a' % l }}",
     true, "y|['a', 'b']|\\xe9|False|a"},
    {"{{ range(3)|list }}|{{ range(1, 10, 4)|list }}|{{ range(3) }}|{{ dict(a=1) }}|{{ "
     "namespace(a=1).a }}|{{ tools is none }}|{{ documents }}|[{{ bos_token }}]",
     false, "[0, 1, 2]|[1, 5, 9]|range(0, 3)|{'a': 1}|1|True|None|[<s>]"},
    {"{% set c = cycler('a', 'b') %}{{ c.next() }}{{ c.next() }}{{ c.next() }}{% set j = "
     "joiner('|') %}{{ j() }}x{{ j() }}y",
     false, "abax|y"},
    {"{{ bos_token }}{% for m in messages %}{% if m.role == 'system' %}<<SYS>>{{ m.content "
     "}}<</SYS>>{% elif m.role == 'user' %}[INST] {{ m.content|trim }} [/INST]{% else %} {{ "
     "m.content }}{{ eos_token }}{% endif %}{% endfor %}",
     false, "<s><<SYS>>Be brief.<</SYS>>[INST] Hi [/INST] Hello!</s>[INST] 2+2? [/INST]"},
};

/* Renders src; returns the status and fills out (caller frees) and e. */
static int render(const char *src, const char *extra, bool gen, hl_buf *out, hl_err *e) {
    hl_template *t = NULL;
    if (hl_template_parse(&t, src, strlen(src), e) < 0) return 1;
    hl_template_vars v = {.messages_json = MESSAGES,
                          .add_generation_prompt = gen,
                          .bos_token = "<s>",
                          .eos_token = "</s>",
                          .extra_json = extra};
    int rc = hl_template_render(t, &v, out, e);
    hl_template_free(t);
    return rc;
}

static void check_render(const char *file, int line, const char *src, const char *extra,
                         const char *want) {
    hl_buf out = {0};
    hl_err e = {{0}};
    hl_test_checks++;
    int rc = render(src, extra, true, &out, &e);
    if (rc != 0)
        hl_test_fail(file, line, "template %s failed (%d): %s", src, rc, e.msg);
    else if (out.len != strlen(want) || memcmp(out.p, want, out.len) != 0)
        hl_test_fail(file, line, "template %s\n  want [%s]\n  got  [%.*s]", src, want, (int)out.len,
                     out.p ? out.p : "");
    hl_buf_free(&out);
}

/* A render that must fail with `want_rc`, its message containing `needle`. */
static void check_fails(const char *file, int line, const char *src, int want_rc,
                        const char *needle) {
    hl_buf out = {0};
    hl_err e = {{0}};
    hl_test_checks++;
    int rc = render(src, EXTRA, false, &out, &e);
    if (rc != want_rc)
        hl_test_fail(file, line, "template %s: status %d, want %d (%s)", src, rc, want_rc, e.msg);
    else if (!strstr(e.msg, needle))
        hl_test_fail(file, line, "template %s: message \"%s\" lacks \"%s\"", src, e.msg, needle);
    hl_buf_free(&out);
}

#define CHECK_FAILS(src, rc, needle) check_fails(__FILE__, __LINE__, src, rc, needle)
#define PARSE_ERROR 1 /* render() reports a failed parse as 1 */

TEST(template_matches_jinja2) {
    for (size_t i = 0; i < sizeof CASES / sizeof CASES[0]; i++)
        check_render(__FILE__, __LINE__, CASES[i].src, CASES[i].extra ? EXTRA : NULL,
                     CASES[i].want);
}

TEST(template_variables) {
    /* tools and documents default to None as in transformers; extra keys override */
    check_render(__FILE__, __LINE__, "{{ tools }}|{{ documents }}|{{ add_generation_prompt }}",
                 NULL, "None|None|True");
    check_render(__FILE__, __LINE__,
                 "{{ tools|length }}|{{ enable_thinking }}|{{ bos_token }}|{{ nope is defined }}",
                 "{\"tools\":[1,2],\"enable_thinking\":false,\"bos_token\":\"B\"}",
                 "2|False|B|False");
    hl_template *t;
    hl_err e = {{0}};
    hl_buf out = {0};
    const char *src = "[{{ bos_token }}{{ eos_token }}]";
    CHECK(hl_template_parse(&t, src, strlen(src), &e) == 0);
    hl_template_vars v = {.messages_json = "[]"}; /* NULL tokens are "" */
    CHECK(hl_template_render(t, &v, &out, &e) == 0);
    CHECK(out.len == 2 && memcmp(out.p, "[]", 2) == 0);
    v.messages_json = "{\"not\":\"an array\"}";
    CHECK(hl_template_render(t, &v, &out, &e) == HL_TEMPLATE_ERROR);
    CHECK_STR_CONTAINS(e.msg, "array");
    v.messages_json = "[";
    CHECK(hl_template_render(t, &v, &out, &e) == HL_TEMPLATE_ERROR);
    CHECK_STR_CONTAINS(e.msg, "JSON");
    hl_buf_free(&out);
    hl_template_free(t);
}

TEST(template_strftime_now) {
    setenv("HL_TEMPLATE_NOW", "1720094400", 1); /* 2024-07-04 12:00:00 UTC */
    const char *tz = getenv("TZ");
    char *saved = tz ? strdup(tz) : NULL;
    setenv("TZ", "UTC", 1);
    tzset();
    check_render(__FILE__, __LINE__, "{{ strftime_now('%Y-%m-%d %H:%M %a %-d %B') }}", NULL,
                 "2024-07-04 12:00 Thu 4 July");
    if (saved)
        setenv("TZ", saved, 1);
    else
        unsetenv("TZ");
    tzset();
    free(saved);
    unsetenv("HL_TEMPLATE_NOW");
}

TEST(template_syntax_errors_name_the_line) {
    CHECK_FAILS("line1\n{% if true %}\n{{ 1 + }}\n{% endif %}", PARSE_ERROR, "line 3");
    CHECK_FAILS("line1\n{% if true %}\n{{ 1 + }}\n{% endif %}", PARSE_ERROR,
                "unexpected 'end of print statement'");
    CHECK_FAILS("a\n{% for x in y %}\nb", PARSE_ERROR,
                "looking for the following tags: 'endfor' or 'else'");
    CHECK_FAILS("{% endif %}", PARSE_ERROR, "Encountered unknown tag 'endif'");
    CHECK_FAILS("{{ 'unterminated }}", PARSE_ERROR, "line 1, column 4");
    CHECK_FAILS("x\n\n  {{ ) }}", PARSE_ERROR, "line 3, column 6: unexpected ')'");
    CHECK_FAILS("{# open comment", PARSE_ERROR, "Missing end of comment tag");
    CHECK_FAILS("{{ x|nosuch }}", PARSE_ERROR, "No filter named 'nosuch'");
    CHECK_FAILS("{{ x is nosuch }}", PARSE_ERROR, "No test named 'nosuch'");
    CHECK_FAILS("{% break %}", PARSE_ERROR, "'break' outside loop");
    CHECK_FAILS("{% for loop in l %}{% endfor %}", PARSE_ERROR, "special loop variable");
    CHECK_FAILS("{% macro m(a=1, b) %}{% endmacro %}", PARSE_ERROR, "non-default argument");
    CHECK_FAILS("{{ '{} {0}'.format(1, 2) }}", HL_TEMPLATE_ERROR, "field numbering");
    /* an unknown filter inside an if is only an error when reached, as in jinja2 */
    check_render(__FILE__, __LINE__, "{% if false %}{{ x|nosuch }}{% endif %}ok", NULL, "ok");
    CHECK_FAILS("\n{% if true %}{{ x|nosuch }}{% endif %}", HL_TEMPLATE_ERROR,
                "line 2: No filter named");
}

TEST(template_runtime_errors) {
    CHECK_FAILS("{{ messages[0].content.nope.deeper }}", HL_TEMPLATE_ERROR,
                "'str object' has no attribute 'nope'");
    CHECK_FAILS("{{ missing.attr }}", HL_TEMPLATE_ERROR, "'missing' is undefined");
    CHECK_FAILS("\n\n{{ 1 + 'a' }}", HL_TEMPLATE_ERROR,
                "line 3: unsupported operand type(s) for +");
    CHECK_FAILS("{% for x in 1 %}{% endfor %}", HL_TEMPLATE_ERROR, "'int' object is not iterable");
    CHECK_FAILS("{{ 1 // 0 }}", HL_TEMPLATE_ERROR, "division or modulo by zero");
    CHECK_FAILS("{{ l|map('string')|tojson }}", HL_TEMPLATE_ERROR,
                "generator is not JSON serializable");
    CHECK_FAILS("{{ l|select|length }}", HL_TEMPLATE_ERROR, "has no len()");
    CHECK_FAILS("{% set l2 = [] %}{{ l2.append(1) }}", HL_TEMPLATE_ERROR, "unsafe");
    CHECK_FAILS("{% set n = 1 %}{% set n.x = 2 %}", HL_TEMPLATE_ERROR, "non-namespace");
    CHECK_FAILS("{% macro m(a) %}{% endmacro %}{{ m(1, 2) }}", HL_TEMPLATE_ERROR,
                "takes not more than 1");
    CHECK_FAILS("{% include 'x' %}", HL_TEMPLATE_ERROR, "loader");
    CHECK_FAILS("{% macro m() %}x{% endmacro %}{% call m() %}b{% endcall %}", HL_TEMPLATE_ERROR,
                "two values for the special caller argument");
    /* the undefined value outlives the computed name it carries (fuzzer find) */
    CHECK_FAILS("{{ '{0.nope[1]}'.format('a') }}", HL_TEMPLATE_ERROR,
                "'str object' has no attribute 'nope'");
    CHECK_FAILS("{% set x = 'a'|attr('no' ~ 'pe') %}{{ x.y }}", HL_TEMPLATE_ERROR, "no attribute");
}

TEST(template_raise_exception) {
    CHECK_FAILS(
        "{% if messages[0].role == 'system' %}{{ raise_exception('no system role, please') }}"
        "{% endif %}",
        HL_TEMPLATE_RAISED, "no system role, please");
    /* the raise wins even deep inside macros and loops */
    CHECK_FAILS(
        "{% macro m() %}{% for i in l %}{{ raise_exception('r' ~ i) }}{% endfor %}{% endmacro %}"
        "{{ m() }}",
        HL_TEMPLATE_RAISED, "r3");
}

/* A limit must turn a runaway template into an error quickly. */
static void check_limit(const char *file, int line, const char *src, const char *needle) {
    struct timespec a, b;
    clock_gettime(CLOCK_MONOTONIC, &a);
    check_fails(file, line, src, HL_TEMPLATE_ERROR, needle);
    clock_gettime(CLOCK_MONOTONIC, &b);
    double s = (double)(b.tv_sec - a.tv_sec) + (double)(b.tv_nsec - a.tv_nsec) / 1e9;
    hl_test_checks++;
    if (s > 10) hl_test_fail(file, line, "template %s took %.1f s to fail", src, s);
}

#define CHECK_LIMIT(src, needle) check_limit(__FILE__, __LINE__, src, needle)

TEST(template_limits) {
    CHECK_LIMIT("{% for i in range(100000000) %}{% endfor %}", "Range too big");
    CHECK_LIMIT("{% for i in range(100000) %}{% for j in range(100000) %}{% endfor %}{% endfor %}",
                "loop iterations");
    CHECK_LIMIT(
        "{% set ns = namespace(s='x') %}{% for i in range(64) %}{% set ns.s = ns.s ~ ns.s %}"
        "{% endfor %}",
        "MiB");
    CHECK_LIMIT("{{ 'x' * 100000000 }}", "MiB");
    CHECK_LIMIT("{% macro r(n) %}{{ r(n + 1) }}{% endmacro %}{{ r(0) }}", "levels deep");
    CHECK_LIMIT(
        "{% set r = range(100000)|list %}{% for i in range(100000) %}{% if -1 in r %}{% endif %}"
        "{% endfor %}",
        "units of work");
    CHECK_LIMIT(
        "{% set ns = namespace(l=[]) %}{% for i in range(100000) %}{% set ns.l = ns.l + [i] %}"
        "{% endfor %}",
        "units of work");
    /* the parser bounds nesting too */
    char deep[4096];
    size_t k = 0;
    k += (size_t)snprintf(deep, sizeof deep, "{{ ");
    for (int i = 0; i < 1000; i++) deep[k++] = '(';
    deep[k] = 0;
    check_fails(__FILE__, __LINE__, deep, PARSE_ERROR, "nested");
    for (k = 0; k < 3000; k += 3) memcpy(deep + k, "-+-", 3);
    strcpy(deep + k, "1 }}");
    memcpy(deep, "{{ ", 3);
    check_fails(__FILE__, __LINE__, deep, PARSE_ERROR, "nested");
}

TEST(template_failure_leaves_output_alone) {
    hl_template *t;
    hl_err e = {{0}};
    hl_buf out = {0};
    hl_buf_puts(&out, "kept");
    const char *src = "partial output {{ 1 / 0 }}";
    CHECK(hl_template_parse(&t, src, strlen(src), &e) == 0);
    hl_template_vars v = {.messages_json = MESSAGES};
    CHECK(hl_template_render(t, &v, &out, &e) == HL_TEMPLATE_ERROR);
    CHECK(out.len == 4 && strcmp(out.p, "kept") == 0);
    hl_template_free(t);
    hl_buf_free(&out);
}

typedef struct shared_render {
    const hl_template *t;
    const char *want;
    int bad;
} shared_render;

static void *render_many(void *arg) {
    shared_render *s = arg;
    hl_template_vars v = {
        .messages_json = MESSAGES, .add_generation_prompt = true, .extra_json = EXTRA};
    for (int i = 0; i < 200; i++) {
        hl_buf out = {0};
        hl_err e = {{0}};
        if (hl_template_render(s->t, &v, &out, &e) != 0 || strcmp(out.p, s->want) != 0) s->bad++;
        hl_buf_free(&out);
    }
    return NULL;
}

TEST(template_renders_on_many_threads) {
    const char *src = "{% for m in messages %}{{ m.role|upper }}:{{ m.content }}|{% endfor %}"
                      "{{ objs|map(attribute='name')|join(',') }}{{ u|tojson }}";
    hl_template *t;
    hl_err e = {{0}};
    CHECK(hl_template_parse(&t, src, strlen(src), &e) == 0);
    shared_render s[4];
    pthread_t th[4];
    for (int i = 0; i < 4; i++) {
        s[i] = (shared_render){.t = t,
                               .want = "SYSTEM:Be brief.|USER:Hi|ASSISTANT:Hello!|USER:2+2?|x,Y,z"
                                       "\"h\xc3\xa9llo\""};
        CHECK(pthread_create(&th[i], NULL, render_many, &s[i]) == 0);
    }
    for (int i = 0; i < 4; i++) {
        pthread_join(th[i], NULL);
        CHECK_EQ_INT(s[i].bad, 0);
    }
    hl_template_free(t);
}
