/* api_parse.c - request bodies into hl_api_request (see api.h).
 *
 * The body is checked as UTF-8 first (RFC 8259 requires it; json-c's own
 * JSON_TOKENER_VALIDATE_UTF8 lets overlong forms, surrogates and code points
 * past U+10FFFF through, so it is not used: this check is stricter and makes
 * every string below valid UTF-8), then tokenized by json-c in strict mode
 * with a bounded depth and the whole length consumed (a NUL byte ends
 * json-c's parse early: that counts as trailing garbage). json-c's strict
 * mode still takes NaN, Infinity and 1e999; every number read here must be
 * finite. Integers past 64 bits saturate in json-c (99999999999999999999
 * reads as UINT64_MAX); every integer field has a range far inside that, so
 * only `seed` can see it, and a saturated seed is still a seed.
 *
 * Then fields are read by name (unknown ones ignored). Null means absent for
 * every optional field. Errors follow OpenAI's wording and codes:
 * missing_required_parameter, invalid_type, invalid_value, empty_array,
 * array_above_max_length, integer_{above_max,below_min}_value,
 * unsupported_parameter; sampling ranges come from hl_sampler_params_check and
 * stop strings from hl_stop_init, so each range lives in one place.
 *
 * Fields the server cannot honour and what happens to them (a field that
 * would change what is generated is refused rather than silently dropped):
 *   tools (non-empty), tool_choice other than "none", functions (non-empty),
 *   function_call other than "none", response_format other than text, audio,
 *   modalities other than text, prediction, web_search_options, moderation,
 *   reasoning_effort, verbosity: 400 unsupported_parameter (OpenAI answers the
 *   same for its models that lack reasoning_effort or verbosity).
 *   parallel_tool_calls, store, metadata, service_tier, prompt_cache_key,
 *   prompt_cache_retention, prompt_cache_options, safety_identifier,
 *   stream_options.include_obfuscation: type-checked where simple, then
 *   ignored; none of them changes the generated text (storage, billing
 *   tier, cache hints, abuse tracking, stream padding).
 *   Messages: assistant tool_calls (non-empty), function_call and audio,
 *   role "function", and image_url / input_audio / file parts: 400
 *   unsupported_parameter. A tool message is accepted with its content; its
 *   tool_call_id is type-checked and not kept (no tool calls can precede it,
 *   since those are refused). An assistant's refusal field is ignored; a
 *   "refusal" part of an assistant message counts as text.
 *   Completions: suffix (non-empty), best_of other than 1 or n, and prompts
 *   that are token ids or more than one string: 400 unsupported_parameter.
 */
#include <json-c/json.h>
#include <limits.h>
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "../engine/stop.h"
#include "api.h"

#define MAX_DEPTH 64 /* a request is 5 deep; tools' JSON schemas go deeper (then refused) */
#define INVALID "invalid_request_error"

int hl_api_errorf(hl_api_error *err, int status, const char *type, const char *param,
                  const char *code, const char *fmt, ...) {
    if (!err) return -1;
    err->status = status;
    snprintf(err->type, sizeof err->type, "%s", type ? type : INVALID);
    snprintf(err->param, sizeof err->param, "%s", param ? param : "");
    snprintf(err->code, sizeof err->code, "%s", code ? code : "");
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(err->message, sizeof err->message, fmt, ap);
    va_end(ap);
    return -1;
}

void hl_api_request_free(hl_api_request *r) {
    if (!r) return;
    free(r->model);
    for (int i = 0; i < r->n_messages; i++) {
        free(r->messages[i].role);
        free(r->messages[i].content);
        free(r->messages[i].name);
    }
    free(r->messages);
    free(r->messages_json);
    free(r->prompt);
    for (int i = 0; i < r->n_stop; i++) free(r->stop[i]);
    free(r->user);
    free((void *)r->sampling.logit_bias);
    memset(r, 0, sizeof *r);
}

/* ---- typed field access; each returns 0 or -1 with *err filled ---- */

static int oom(hl_api_error *err) {
    return hl_api_errorf(err, 500, "server_error", NULL, NULL,
                         "The server ran out of memory while reading the request; retry later "
                         "or send a smaller request.");
}

/* The value of key in o, or NULL when absent or null. */
static json_object *field(json_object *o, const char *key) {
    json_object *v = NULL;
    if (!json_object_object_get_ex(o, key, &v)) return NULL;
    return v; /* a JSON null is a NULL json_object */
}

static const char *type_name(json_object *v) {
    switch (json_object_get_type(v)) {
    case json_type_null:
        return "null";
    case json_type_boolean:
        return "a boolean";
    case json_type_double:
    case json_type_int:
        return "a number";
    case json_type_object:
        return "an object";
    case json_type_array:
        return "an array";
    case json_type_string:
        return "a string";
    }
    return "a value";
}

/* Whether the JSON string v is exactly lit (NUL bytes inside count). */
static bool str_is(json_object *v, const char *lit) {
    return json_object_is_type(v, json_type_string) &&
           (size_t)json_object_get_string_len(v) == strlen(lit) &&
           !memcmp(json_object_get_string(v), lit, strlen(lit));
}

static int bad_type(hl_api_error *err, const char *path, const char *expected, json_object *v) {
    return hl_api_errorf(err, 400, INVALID, path, "invalid_type",
                         "Invalid type for '%s': expected %s, but got %s instead.", path, expected,
                         type_name(v));
}

static int missing(hl_api_error *err, const char *path) {
    return hl_api_errorf(err, 400, INVALID, path, "missing_required_parameter",
                         "Missing required parameter: '%s'.", path);
}

static int unsupported(hl_api_error *err, const char *path, const char *what) {
    return hl_api_errorf(err, 400, INVALID, path, "unsupported_parameter",
                         "Unsupported parameter: '%s': %s.", path, what);
}

static int get_bool(json_object *o, const char *key, bool *out, hl_api_error *err) {
    json_object *v = field(o, key);
    if (!v) return 0;
    if (!json_object_is_type(v, json_type_boolean)) return bad_type(err, key, "a boolean", v);
    *out = json_object_get_boolean(v);
    return 0;
}

/* A finite number (integer or not); *given tells whether it was there. */
static int get_num(json_object *o, const char *key, double *out, bool *given, hl_api_error *err) {
    json_object *v = field(o, key);
    *given = v != NULL;
    if (!v) return 0;
    if (!json_object_is_type(v, json_type_double) && !json_object_is_type(v, json_type_int))
        return bad_type(err, key, "a number", v);
    double d = json_object_get_double(v);
    if (!isfinite(d))
        return hl_api_errorf(err, 400, INVALID, key, "invalid_value",
                             "Invalid '%s': expected a finite number, but got %s.", key,
                             json_object_to_json_string(v));
    *out = d;
    return 0;
}

/* An integer in [min, max] (a number with no fraction, like 2.0, counts). */
static int get_int(json_object *v, const char *path, int64_t min, int64_t max, int64_t *out,
                   hl_api_error *err) {
    int64_t x;
    bool above = false;
    if (json_object_is_type(v, json_type_int)) {
        x = json_object_get_int64(v);
        /* json-c keeps integers past INT64_MAX as unsigned; get_int64 saturates */
        above = x == INT64_MAX && json_object_get_uint64(v) > (uint64_t)INT64_MAX;
    } else if (json_object_is_type(v, json_type_double)) {
        double d = json_object_get_double(v);
        if (!(d == floor(d) && fabs(d) < 9.2e18)) return bad_type(err, path, "an integer", v);
        x = (int64_t)d;
    } else {
        return bad_type(err, path, "an integer", v);
    }
    if (above || x > max)
        return hl_api_errorf(err, 400, INVALID, path, "integer_above_max_value",
                             "Invalid '%s': integer above maximum value. Expected a value <= %lld, "
                             "but got %s instead.",
                             path, (long long)max, json_object_to_json_string(v));
    if (x < min)
        return hl_api_errorf(err, 400, INVALID, path, "integer_below_min_value",
                             "Invalid '%s': integer below minimum value. Expected a value >= %lld, "
                             "but got %s instead.",
                             path, (long long)min, json_object_to_json_string(v));
    *out = x;
    return 0;
}

static int get_int_field(json_object *o, const char *key, int64_t min, int64_t max, int64_t *out,
                         bool *given, hl_api_error *err) {
    json_object *v = field(o, key);
    *given = v != NULL;
    return v ? get_int(v, key, min, max, out, err) : 0;
}

/* A string (pointing into the json-c tree); *s stays NULL when absent. */
static int get_str(json_object *o, const char *key, const char *path, const char **s, size_t *len,
                   hl_api_error *err) {
    json_object *v = field(o, key);
    if (!v) return 0;
    if (!json_object_is_type(v, json_type_string)) return bad_type(err, path, "a string", v);
    *s = json_object_get_string(v);
    *len = (size_t)json_object_get_string_len(v);
    return 0;
}

/* A copy of a string that is kept as a C string (no NUL inside). */
static int dup_cstr(const char *s, size_t len, const char *path, char **out, hl_api_error *err) {
    if (memchr(s, 0, len))
        return hl_api_errorf(err, 400, INVALID, path, "invalid_value",
                             "Invalid '%s': the string contains a NUL character (\\u0000).", path);
    if (!(*out = strndup(s, len))) return oom(err);
    return 0;
}

static int dup_bytes(const char *s, size_t len, char **out, hl_api_error *err) {
    char *p = malloc(len + 1);
    if (!p) return oom(err);
    memcpy(p, s, len);
    p[len] = 0;
    *out = p;
    return 0;
}

/* An optional string field kept as a C string; NULL when absent. */
static int get_cstr(json_object *o, const char *key, char **out, hl_api_error *err) {
    const char *s = NULL;
    size_t len = 0;
    if (get_str(o, key, key, &s, &len, err) < 0) return -1;
    return s ? dup_cstr(s, len, key, out, err) : 0;
}

/* Optional fields that are accepted and ignored must still have their type. */
static int check_type(json_object *o, const char *key, json_type t, const char *expected,
                      hl_api_error *err) {
    json_object *v = field(o, key);
    if (v && !json_object_is_type(v, t)) return bad_type(err, key, expected, v);
    return 0;
}

/* ---- chat messages ---- */

static const char *const ROLES[] = {"system", "developer", "user", "assistant", "tool"};

/* Appends the text of one content part to *b (joined with "\n"). */
static int read_part(json_object *part, bool assistant, const char *path, hl_buf *b, int j,
                     hl_api_error *err) {
    if (!json_object_is_type(part, json_type_object)) return bad_type(err, path, "an object", part);
    char p2[128];
    snprintf(p2, sizeof p2, "%s.type", path);
    json_object *type = field(part, "type");
    if (!type) return missing(err, p2);
    if (!json_object_is_type(type, json_type_string)) return bad_type(err, p2, "a string", type);
    const char *key = NULL;
    if (str_is(type, "text"))
        key = "text";
    else if (assistant && str_is(type, "refusal"))
        key = "refusal";
    else if (str_is(type, "image_url"))
        return unsupported(err, path, "image inputs are not supported yet by this server");
    else if (str_is(type, "input_audio"))
        return unsupported(err, path, "audio inputs are not supported yet by this server");
    else if (str_is(type, "file"))
        return unsupported(err, path, "file inputs are not supported yet by this server");
    else
        return hl_api_errorf(err, 400, INVALID, p2, "invalid_value",
                             "Invalid value: '%.64s'. Supported values are: 'text'%s, "
                             "'image_url', 'input_audio' and 'file'.",
                             json_object_get_string(type), assistant ? ", 'refusal'" : "");
    const char *text = NULL;
    size_t len = 0;
    snprintf(p2, sizeof p2, "%s.%s", path, key);
    if (get_str(part, key, p2, &text, &len, err) < 0) return -1;
    if (!text) return missing(err, p2);
    if (j > 0) hl_buf_putc(b, '\n');
    hl_buf_put(b, text, len);
    return b->oom ? oom(err) : 0;
}

static int read_content(json_object *c, bool assistant, const char *path, hl_api_message *m,
                        hl_api_error *err) {
    if (json_object_is_type(c, json_type_string)) {
        m->content_len = (size_t)json_object_get_string_len(c);
        return dup_bytes(json_object_get_string(c), m->content_len, &m->content, err);
    }
    if (!json_object_is_type(c, json_type_array))
        return bad_type(err, path, "one of a string or array of objects", c);
    hl_buf b = {0};
    size_t n = json_object_array_length(c), total = n;
    for (size_t j = 0; j < n; j++) { /* room for all the text at once (a part may be 10 MB) */
        json_object *part = json_object_array_get_idx(c, j), *t = NULL;
        if (json_object_is_type(part, json_type_object)) t = field(part, "text");
        if (json_object_is_type(t, json_type_string))
            total += (size_t)json_object_get_string_len(t);
    }
    if (n && !hl_buf_reserve(&b, total)) return oom(err);
    for (size_t j = 0; j < n; j++) {
        char p2[96];
        snprintf(p2, sizeof p2, "%.63s[%zu]", path, j);
        if (read_part(json_object_array_get_idx(c, j), assistant, p2, &b, (int)j, err) < 0) {
            hl_buf_free(&b);
            return -1;
        }
    }
    if (!b.p) return dup_bytes("", 0, &m->content, err); /* [] : empty text */
    m->content = b.p;
    m->content_len = b.len;
    return 0;
}

static int read_message(json_object *o, int i, hl_api_message *m, hl_api_error *err) {
    char path[32], p2[64]; /* sized so no snprintf below can truncate */
    snprintf(path, sizeof path, "messages[%d]", i);
    if (!json_object_is_type(o, json_type_object)) return bad_type(err, path, "an object", o);

    const char *role = NULL;
    size_t role_len = 0;
    snprintf(p2, sizeof p2, "%s.role", path);
    if (get_str(o, "role", p2, &role, &role_len, err) < 0) return -1;
    if (!role) return missing(err, p2);
    int r = -1;
    for (int k = 0; k < (int)(sizeof ROLES / sizeof *ROLES); k++)
        if (strlen(ROLES[k]) == role_len && !memcmp(role, ROLES[k], role_len)) r = k;
    if (r < 0 && role_len == 8 && !memcmp(role, "function", 8))
        return unsupported(err, p2,
                           "function messages (deprecated function calling) are not "
                           "supported by this server");
    if (r < 0)
        return hl_api_errorf(err, 400, INVALID, p2, "invalid_value",
                             "Invalid value: '%.64s'. Supported values are: 'system', "
                             "'developer', 'user', 'assistant' and 'tool'.",
                             role);
    bool assistant = !strcmp(ROLES[r], "assistant");
    if (!(m->role = strdup(ROLES[r]))) return oom(err);

    if (assistant) {
        json_object *tc = field(o, "tool_calls");
        snprintf(p2, sizeof p2, "%s.tool_calls", path);
        if (tc && !json_object_is_type(tc, json_type_array))
            return bad_type(err, p2, "an array", tc);
        if (tc && json_object_array_length(tc) > 0)
            return unsupported(err, p2, "tool calls are not supported yet by this server");
        snprintf(p2, sizeof p2, "%s.function_call", path);
        if (field(o, "function_call"))
            return unsupported(err, p2, "function calling is not supported by this server");
        snprintf(p2, sizeof p2, "%s.audio", path);
        if (field(o, "audio"))
            return unsupported(err, p2, "audio outputs are not supported by this server");
    }
    if (!strcmp(ROLES[r], "tool")) {
        const char *id = NULL;
        size_t id_len = 0;
        snprintf(p2, sizeof p2, "%s.tool_call_id", path);
        if (get_str(o, "tool_call_id", p2, &id, &id_len, err) < 0) return -1;
    }

    const char *name = NULL;
    size_t name_len = 0;
    snprintf(p2, sizeof p2, "%s.name", path);
    if (get_str(o, "name", p2, &name, &name_len, err) < 0) return -1;
    if (name && dup_cstr(name, name_len, p2, &m->name, err) < 0) return -1;

    json_object *c = field(o, "content");
    snprintf(p2, sizeof p2, "%s.content", path);
    if (!c) {
        if (!assistant) return missing(err, p2);
        return dup_bytes("", 0, &m->content, err);
    }
    return read_content(c, assistant, p2, m, err);
}

/* [{"role":..,"content":..[,"name":..]}, ...] for the template engine.
 * "developer" is OpenAI's newer name for "system" (the API treats them
 * alike for models without a separate developer role), and chat templates
 * only know "system", so the template sees "system". */
static int write_messages_json(hl_api_request *r, hl_api_error *err) {
    hl_buf b = {0};
    size_t total = 2;
    for (int i = 0; i < r->n_messages; i++) total += r->messages[i].content_len + 40;
    hl_buf_reserve(&b, total + total / 16);
    hl_buf_putc(&b, '[');
    for (int i = 0; i < r->n_messages; i++) {
        const hl_api_message *m = &r->messages[i];
        const char *role = strcmp(m->role, "developer") ? m->role : "system";
        hl_buf_puts(&b, i ? ",{\"role\":" : "{\"role\":");
        hl_buf_json_str(&b, role, strlen(role));
        hl_buf_puts(&b, ",\"content\":");
        hl_buf_json_str(&b, m->content, m->content_len);
        if (m->name) {
            hl_buf_puts(&b, ",\"name\":");
            hl_buf_json_str(&b, m->name, strlen(m->name));
        }
        hl_buf_putc(&b, '}');
    }
    hl_buf_putc(&b, ']');
    if (b.oom) {
        hl_buf_free(&b);
        return oom(err);
    }
    r->messages_json = b.p;
    return 0;
}

static int read_messages(json_object *root, hl_api_request *r, hl_api_error *err) {
    json_object *a = field(root, "messages");
    if (!a) return missing(err, "messages");
    if (!json_object_is_type(a, json_type_array)) return bad_type(err, "messages", "an array", a);
    size_t n = json_object_array_length(a);
    if (n == 0)
        return hl_api_errorf(err, 400, INVALID, "messages", "empty_array",
                             "Invalid 'messages': empty array. Expected an array with minimum "
                             "length 1, but got an empty array instead.");
    if (n > HL_API_MAX_MESSAGES)
        return hl_api_errorf(err, 400, INVALID, "messages", "array_above_max_length",
                             "Invalid 'messages': array too long. Expected an array with maximum "
                             "length %d, but got an array with length %zu instead.",
                             HL_API_MAX_MESSAGES, n);
    if (!(r->messages = calloc(n, sizeof *r->messages))) return oom(err);
    for (size_t i = 0; i < n; i++) {
        r->n_messages = (int)i + 1; /* so a failure frees what this message holds */
        if (read_message(json_object_array_get_idx(a, i), (int)i, &r->messages[i], err) < 0)
            return -1;
    }
    return write_messages_json(r, err);
}

/* Chat fields this server cannot honour; see the top of the file. */
static int refuse_chat_features(json_object *root, hl_api_error *err) {
    json_object *v;
    static const char *const arrays[][2] = {
        {"tools", "tools (function calling) are not supported yet by this server"},
        {"functions", "function calling is not supported by this server"},
    };
    for (int k = 0; k < 2; k++) {
        if (!(v = field(root, arrays[k][0]))) continue;
        if (!json_object_is_type(v, json_type_array))
            return bad_type(err, arrays[k][0], "an array", v);
        if (json_object_array_length(v) > 0) return unsupported(err, arrays[k][0], arrays[k][1]);
    }
    static const char *const choices[2] = {"tool_choice", "function_call"};
    for (int k = 0; k < 2; k++) {
        if (!(v = field(root, choices[k]))) continue;
        if (!str_is(v, "none"))
            return unsupported(err, choices[k],
                               "function calling is not supported yet by this server; "
                               "only \"none\" is accepted");
    }
    if (check_type(root, "parallel_tool_calls", json_type_boolean, "a boolean", err) < 0) return -1;

    if ((v = field(root, "response_format"))) {
        if (!json_object_is_type(v, json_type_object))
            return bad_type(err, "response_format", "an object", v);
        json_object *t = field(v, "type");
        if (!t) return missing(err, "response_format.type");
        if (!json_object_is_type(t, json_type_string))
            return bad_type(err, "response_format.type", "a string", t);
        if (str_is(t, "json_object") || str_is(t, "json_schema"))
            return unsupported(err, "response_format",
                               "JSON mode and structured outputs are not supported yet by this "
                               "server; only {\"type\": \"text\"} is accepted");
        if (!str_is(t, "text"))
            return hl_api_errorf(err, 400, INVALID, "response_format.type", "invalid_value",
                                 "Invalid value: '%.64s'. Supported values are: 'text', "
                                 "'json_object' and 'json_schema'.",
                                 json_object_get_string(t));
    }
    if ((v = field(root, "modalities"))) {
        if (!json_object_is_type(v, json_type_array))
            return bad_type(err, "modalities", "an array", v);
        for (size_t j = 0; j < json_object_array_length(v); j++) {
            json_object *m = json_object_array_get_idx(v, j);
            if (str_is(m, "text")) continue;
            if (str_is(m, "audio"))
                return unsupported(err, "modalities",
                                   "audio outputs are not supported by this server");
            return hl_api_errorf(err, 400, INVALID, "modalities", "invalid_value",
                                 "Invalid value in 'modalities': %s. Supported values are: "
                                 "'text' and 'audio'.",
                                 json_object_to_json_string(m));
        }
    }
    static const char *const refused[][2] = {
        {"audio", "audio outputs are not supported by this server"},
        {"prediction", "predicted outputs are not supported by this server"},
        {"web_search_options", "web search is not supported by this server"},
        {"moderation", "moderation is not supported by this server"},
        {"reasoning_effort", "reasoning effort cannot be set for this server's models"},
        {"verbosity", "verbosity cannot be set for this server's models"},
    };
    for (size_t k = 0; k < sizeof refused / sizeof *refused; k++)
        if (field(root, refused[k][0])) return unsupported(err, refused[k][0], refused[k][1]);

    /* accepted and ignored: they change nothing in the generated text */
    if (check_type(root, "store", json_type_boolean, "a boolean", err) < 0 ||
        check_type(root, "metadata", json_type_object, "an object", err) < 0 ||
        check_type(root, "service_tier", json_type_string, "a string", err) < 0 ||
        check_type(root, "prompt_cache_key", json_type_string, "a string", err) < 0 ||
        check_type(root, "safety_identifier", json_type_string, "a string", err) < 0)
        return -1;
    return 0;
}

/* ---- completions ---- */

static int read_prompt(json_object *root, hl_api_request *r, hl_api_error *err) {
    json_object *p = field(root, "prompt");
    if (!p) return missing(err, "prompt");
    if (json_object_is_type(p, json_type_array)) {
        size_t n = json_object_array_length(p);
        if (n == 0)
            return hl_api_errorf(err, 400, INVALID, "prompt", "empty_array",
                                 "Invalid 'prompt': empty array. Send the prompt as a string.");
        json_object *e = json_object_array_get_idx(p, 0);
        if (!json_object_is_type(e, json_type_string))
            return unsupported(err, "prompt",
                               "prompts given as token ids are not supported yet by this server; "
                               "send the prompt as a string");
        if (n > 1)
            return unsupported(err, "prompt",
                               "several prompts in one request are not supported yet by this "
                               "server; send one request per prompt");
        p = e;
    }
    if (!json_object_is_type(p, json_type_string))
        return bad_type(err, "prompt", "a string or an array of strings", p);
    r->prompt_len = (size_t)json_object_get_string_len(p);
    if (dup_bytes(json_object_get_string(p), r->prompt_len, &r->prompt, err) < 0) return -1;

    if (get_bool(root, "echo", &r->echo, err) < 0) return -1;
    const char *suffix = NULL;
    size_t suffix_len = 0;
    if (get_str(root, "suffix", "suffix", &suffix, &suffix_len, err) < 0) return -1;
    if (suffix_len > 0)
        return unsupported(err, "suffix", "insertion (suffix) is not supported by this server");
    return 0;
}

/* ---- both ---- */

/* Checks the sampling parameters set so far; the fields before this one
 * passed already, so a failure is this field's. */
static int check_sampling(const hl_api_request *r, const char *param, hl_api_error *err) {
    hl_err e;
    if (hl_sampler_params_check(&r->sampling, INT32_MAX, &e) < 0)
        return hl_api_errorf(err, 400, INVALID, param, "invalid_value", "%s.", e.msg);
    return 0;
}

static int read_logit_bias(json_object *root, hl_api_request *r, hl_api_error *err) {
    json_object *o = field(root, "logit_bias");
    if (!o) return 0;
    if (!json_object_is_type(o, json_type_object))
        return bad_type(err, "logit_bias", "an object", o);
    int n = json_object_object_length(o);
    if (n > HL_SAMPLER_MAX_LOGIT_BIAS)
        return hl_api_errorf(err, 400, INVALID, "logit_bias", "invalid_value",
                             "Invalid 'logit_bias': %d entries; at most %d are allowed.", n,
                             HL_SAMPLER_MAX_LOGIT_BIAS);
    if (n == 0) return 0;
    hl_logit_bias *lb = calloc((size_t)n, sizeof *lb);
    if (!lb) return oom(err);
    r->sampling.logit_bias = lb; /* owned by r from here */
    int i = 0;
    json_object_object_foreach(o, key, val) {
        int64_t id = 0;
        const char *k = key;
        for (; *k >= '0' && *k <= '9' && id <= INT32_MAX; k++) id = id * 10 + (*k - '0');
        if (k == key || *k || id > INT32_MAX)
            return hl_api_errorf(err, 400, INVALID, "logit_bias", "invalid_value",
                                 "Invalid key in 'logit_bias': '%.64s'. Keys must be token ids "
                                 "(non-negative integers written as strings).",
                                 key);
        if (!json_object_is_type(val, json_type_double) && !json_object_is_type(val, json_type_int))
            return bad_type(err, "logit_bias", "numbers as values", val);
        lb[i].id = (int32_t)id;
        lb[i].bias = (float)json_object_get_double(val);
        r->sampling.n_logit_bias = ++i;
    }
    return check_sampling(r, "logit_bias", err);
}

static int read_stop(json_object *root, hl_api_request *r, hl_api_error *err) {
    json_object *s = field(root, "stop");
    if (!s) return 0;
    const char *strs[HL_API_MAX_STOP];
    size_t lens[HL_API_MAX_STOP];
    int n = 0;
    if (json_object_is_type(s, json_type_string)) {
        strs[0] = json_object_get_string(s);
        lens[0] = (size_t)json_object_get_string_len(s);
        n = 1;
    } else if (json_object_is_type(s, json_type_array)) {
        size_t len = json_object_array_length(s);
        if (len > HL_API_MAX_STOP)
            return hl_api_errorf(err, 400, INVALID, "stop", "array_above_max_length",
                                 "Invalid 'stop': array too long. Expected an array with maximum "
                                 "length %d, but got an array with length %zu instead.",
                                 HL_API_MAX_STOP, len);
        for (; n < (int)len; n++) {
            json_object *e = json_object_array_get_idx(s, (size_t)n);
            char path[32];
            snprintf(path, sizeof path, "stop[%d]", n);
            if (!json_object_is_type(e, json_type_string))
                return bad_type(err, path, "a string", e);
            strs[n] = json_object_get_string(e);
            lens[n] = (size_t)json_object_get_string_len(e);
        }
    } else {
        return bad_type(err, "stop", "a string or an array of strings", s);
    }
    hl_stop st;
    hl_err e;
    if (hl_stop_init(&st, strs, lens, n, &e) < 0)
        return hl_api_errorf(err, 400, INVALID, "stop", "invalid_value", "Invalid 'stop': %s.",
                             e.msg);
    for (int i = 0; i < n; i++) {
        if (dup_bytes(strs[i], lens[i], &r->stop[i], err) < 0) return -1;
        r->stop_len[i] = lens[i];
        r->n_stop = i + 1;
    }
    return 0;
}

static int read_sampling(json_object *root, hl_api_request *r, hl_api_error *err) {
    hl_sampler_params *p = &r->sampling;
    static const struct {
        const char *key;
        size_t off;
        uint32_t bit;
    } floats[] = {
        {"temperature", offsetof(hl_sampler_params, temperature), HL_API_GIVEN_TEMPERATURE},
        {"top_p", offsetof(hl_sampler_params, top_p), HL_API_GIVEN_TOP_P},
        {"min_p", offsetof(hl_sampler_params, min_p), HL_API_GIVEN_MIN_P},
        {"repetition_penalty", offsetof(hl_sampler_params, repetition_penalty), HL_API_GIVEN_REPETITION_PENALTY},
        {"presence_penalty", offsetof(hl_sampler_params, presence_penalty), 0},
        {"frequency_penalty", offsetof(hl_sampler_params, frequency_penalty), 0},
    };
    for (size_t k = 0; k < sizeof floats / sizeof *floats; k++) {
        double d = 0;
        bool given;
        if (get_num(root, floats[k].key, &d, &given, err) < 0) return -1;
        if (!given) continue;
        r->given |= floats[k].bit;
        *(float *)((char *)p + floats[k].off) = (float)d;
        if (check_sampling(r, floats[k].key, err) < 0) return -1;
    }
    static const struct {
        const char *key;
        size_t off;
        uint32_t bit;
    } ints[] = {
        {"top_k", offsetof(hl_sampler_params, top_k), HL_API_GIVEN_TOP_K},
        {"repetition_context_size", offsetof(hl_sampler_params, repetition_context_size),
         HL_API_GIVEN_REPETITION_CONTEXT_SIZE},
    };
    int64_t v;
    bool given;
    for (size_t k = 0; k < sizeof ints / sizeof *ints; k++) {
        if (get_int_field(root, ints[k].key, INT32_MIN, INT32_MAX, &v, &given, err) < 0) return -1;
        if (!given) continue;
        r->given |= ints[k].bit;
        *(int32_t *)((char *)p + ints[k].off) = (int32_t)v;
        if (check_sampling(r, ints[k].key, err) < 0) return -1;
    }
    if (get_int_field(root, "seed", INT64_MIN, INT64_MAX, &v, &given, err) < 0) return -1;
    if (given) p->seed = (uint64_t)v;
    r->seed_given = given;
    return read_logit_bias(root, r, err);
}

static int read_lengths(json_object *root, hl_api_request *r, const hl_api_limits *lim,
                        hl_api_error *err) {
    int max_n = lim && lim->max_n >= 1 && lim->max_n <= HL_API_MAX_N ? lim->max_n : HL_API_MAX_N;
    int max_tokens = lim && lim->max_tokens >= 1 ? lim->max_tokens : INT_MAX;
    int64_t v;
    bool given;
    if (get_int_field(root, "n", 1, max_n, &v, &given, err) < 0) return -1;
    if (given) r->n = (int)v;
    if (get_int_field(root, "max_tokens", 1, max_tokens, &v, &given, err) < 0) return -1;
    if (given) r->max_tokens = (int)v, r->given |= HL_API_GIVEN_MAX_TOKENS;
    if (get_int_field(root, "max_completion_tokens", 1, max_tokens, &v, &given, err) < 0) return -1;
    if (given) r->max_tokens = (int)v, r->given |= HL_API_GIVEN_MAX_TOKENS;
    return read_stop(root, r, err);
}

static int read_stream(json_object *root, hl_api_request *r, hl_api_error *err) {
    if (get_bool(root, "stream", &r->stream, err) < 0) return -1;
    json_object *so = field(root, "stream_options");
    if (!so) return 0;
    if (!r->stream)
        return hl_api_errorf(err, 400, INVALID, "stream_options", NULL,
                             "The 'stream_options' parameter is only allowed when 'stream' is "
                             "enabled.");
    if (!json_object_is_type(so, json_type_object))
        return bad_type(err, "stream_options", "an object", so);
    json_object *u = field(so, "include_usage");
    if (u && !json_object_is_type(u, json_type_boolean))
        return bad_type(err, "stream_options.include_usage", "a boolean", u);
    json_object *ob = field(so, "include_obfuscation");
    if (ob && !json_object_is_type(ob, json_type_boolean))
        return bad_type(err, "stream_options.include_obfuscation", "a boolean", ob);
    r->include_usage = u && json_object_get_boolean(u);
    return 0;
}

static int read_logprobs(json_object *root, hl_api_request *r, hl_api_error *err) {
    int64_t v;
    bool given;
    if (r->kind == HL_API_COMPLETION) {
        /* an integer: how many top tokens (OpenAI allows up to 5) */
        if (get_int_field(root, "logprobs", 0, HL_SAMPLER_MAX_TOP_LOGPROBS, &v, &given, err) < 0)
            return -1;
        r->logprobs = given;
        r->top_logprobs = given ? (int)v : 0;
        json_object *b = field(root, "best_of");
        if (b && get_int(b, "best_of", 1, INT32_MAX, &v, err) < 0) return -1;
        if (b && v != 1 && v != r->n)
            return unsupported(err, "best_of",
                               "best_of other than n is not supported by this server; use n");
        return 0;
    }
    if (get_bool(root, "logprobs", &r->logprobs, err) < 0) return -1;
    if (get_int_field(root, "top_logprobs", 0, HL_SAMPLER_MAX_TOP_LOGPROBS, &v, &given, err) < 0)
        return -1;
    if (given && !r->logprobs)
        return hl_api_errorf(err, 400, INVALID, "top_logprobs", "invalid_value",
                             "'top_logprobs' requires 'logprobs' to be true; add "
                             "\"logprobs\": true or remove 'top_logprobs'.");
    r->top_logprobs = given ? (int)v : 0;
    return 0;
}

static int read_request(json_object *root, hl_api_kind kind, const hl_api_limits *lim,
                        hl_api_request *r, hl_api_error *err) {
    const char *model = NULL;
    size_t model_len = 0;
    if (get_str(root, "model", "model", &model, &model_len, err) < 0) return -1;
    if (!model || model_len == 0)
        return hl_api_errorf(err, 400, INVALID, "model", "missing_required_parameter",
                             "You must provide a model parameter (GET /v1/models lists them).");
    if (dup_cstr(model, model_len, "model", &r->model, err) < 0) return -1;
    if (kind == HL_API_CHAT) {
        if (read_messages(root, r, err) < 0 || refuse_chat_features(root, err) < 0) return -1;
    } else if (read_prompt(root, r, err) < 0) {
        return -1;
    }
    if (read_sampling(root, r, err) < 0 || read_lengths(root, r, lim, err) < 0 ||
        read_stream(root, r, err) < 0 || read_logprobs(root, r, err) < 0)
        return -1;
    return get_cstr(root, "user", &r->user, err);
}

int hl_api_parse_request(hl_api_kind kind, const char *body, size_t len, const hl_api_limits *lim,
                         hl_api_request *r, hl_api_error *err) {
    memset(r, 0, sizeof *r);
    r->kind = kind;
    if (len > INT_MAX - 1)
        return hl_api_errorf(err, 413, INVALID, NULL, "request_too_large",
                             "The request body is %zu bytes; at most %d are accepted.", len,
                             INT_MAX - 1);
    size_t ok = hl_utf8_valid_len(body, len);
    if (ok < len)
        return hl_api_errorf(err, 400, INVALID, NULL, "invalid_json",
                             "We could not parse the JSON body of your request: invalid UTF-8 at "
                             "byte %zu. JSON must be UTF-8 encoded.",
                             ok);
    json_tokener *tok = json_tokener_new_ex(MAX_DEPTH);
    if (!tok) return oom(err);
    json_tokener_set_flags(tok, JSON_TOKENER_STRICT);
    json_object *root = json_tokener_parse_ex(tok, body, (int)len);
    enum json_tokener_error je = json_tokener_get_error(tok);
    size_t end = json_tokener_get_parse_end(tok);
    if (je == json_tokener_continue) {
        /* a top-level scalar ("null", "1") waits for a delimiter, and an
         * object cut short waits for more: end the input with a NUL, as
         * json_tokener_parse does */
        root = json_tokener_parse_ex(tok, "", 1);
        je = json_tokener_get_error(tok);
        end = len;
    }
    json_tokener_free(tok);
    if (je != json_tokener_success || end != len) {
        json_object_put(root);
        const char *why = je == json_tokener_error_parse_eof
                              ? "the body ends before the JSON value does"
                          : je != json_tokener_success ? json_tokener_error_desc(je)
                                                       : "unexpected data after the JSON value";
        return hl_api_errorf(err, 400, INVALID, NULL, "invalid_json",
                             "We could not parse the JSON body of your request: %s (at byte %zu). "
                             "Send one JSON object with Content-Type: application/json.",
                             why, end);
    }
    if (!json_object_is_type(root, json_type_object)) {
        int rc = hl_api_errorf(err, 400, INVALID, NULL, "invalid_type",
                               "The request body must be a JSON object, not %s.", type_name(root));
        json_object_put(root);
        return rc;
    }
    hl_sampler_params_default(&r->sampling);
    r->n = 1;
    r->max_tokens = -1;
    int rc = read_request(root, kind, lim, r, err);
    json_object_put(root);
    if (rc < 0) hl_api_request_free(r);
    return rc;
}
