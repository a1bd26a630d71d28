/* api.h - the OpenAI wire format: request bodies parsed and validated into C
 * structs, responses and stream chunks serialized. Pure functions: no I/O, no
 * model, no threads; every input is untrusted bytes (fuzz/fuzz_request.c).
 *
 *   hl_api_request r; hl_api_error err;
 *   if (hl_api_parse_request(HL_API_CHAT, body, len, &limits, &r, &err) < 0) reply(err.status, ...);
 *   ... hl_api_write_chat_chunk(&buf, &head, &delta); ... hl_api_request_free(&r);
 *
 * Contract. hl_api_parse_request fills *r with copies of everything it needs
 * (the body may be freed right after); hl_api_request_free frees them, and is
 * safe on a zeroed or failed request (a failed parse leaves *r zeroed). The
 * request owns only heap memory, never pointers into itself, so it may be
 * moved (copied bytewise) to another owner that frees it once. On failure
 * *err holds the HTTP status and an OpenAI error object's fields, with
 * OpenAI's wording and codes: a body that is not UTF-8 JSON is 400 with code
 * "invalid_json"; a missing, mistyped or out-of-range field is 400 naming the
 * field in `param` (JSON path: "messages[2].content", "temperature") with code
 * "missing_required_parameter", "invalid_type", "invalid_value",
 * "integer_above_max_value", ...; a field the server cannot honour yet
 * (tools, response_format other than text, audio, an image part, ...) is 400
 * with code "unsupported_parameter" and a message saying so; out of memory is
 * 500. api_parse.c's top comment lists every such field and decision. Null
 * means absent for every optional field. Unknown fields are ignored.
 * Model-dependent checks (logit_bias ids against the vocabulary, prompt length
 * against the context) are the scheduler's.
 *
 * Writers append to an hl_buf (util/buf.h) and never fail by themselves; the
 * buffer's oom flag says if memory ran out. Stream writers emit one whole SSE
 * event each: "data: {...}\n\n".
 */
#ifndef HL_API_H
#define HL_API_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "../engine/sampler.h"
#include "../util/buf.h"

typedef enum hl_api_kind { HL_API_CHAT, HL_API_COMPLETION } hl_api_kind;

typedef struct hl_api_error {
    int status;       /* HTTP status: 400, 401, 404, 405, 413, 500, 503 */
    char type[40];    /* "invalid_request_error", "authentication_error", "server_error", ... */
    char param[96];   /* the offending field's path, "" when none (JSON null) */
    char code[48];    /* "invalid_json", "model_not_found", "unsupported_parameter", ... "" = null */
    char message[512];
} hl_api_error;

/* Fills err and returns -1: hl_api_errorf(err, 400, "invalid_request_error", "temperature", NULL,
 * "...%g...", t). param and code may be NULL (JSON null); type NULL is
 * "invalid_request_error". Fields too long for err are cut. */
int hl_api_errorf(hl_api_error *err, int status, const char *type, const char *param,
                  const char *code, const char *fmt, ...) __attribute__((format(printf, 6, 7)));

/* One chat message. content is the text: a string, or the text parts of a
 * part list joined with "\n" (non-text parts are refused at parse time; an
 * assistant's "refusal" parts count as text). Null or absent content (an
 * assistant message) is the empty string. All strings are valid UTF-8;
 * content may hold NUL bytes (JSON "\u0000"), role and name never do. */
typedef struct hl_api_message {
    char *role;    /* "system", "developer", "user", "assistant" or "tool", as sent
                      ("developer" is not mapped to "system": templates that know it,
                      like gpt-oss's, treat it apart) */
    char *content; /* NUL-terminated; content_len bytes */
    size_t content_len;
    char *name;    /* optional, NULL when absent */
} hl_api_message;

#define HL_API_MAX_STOP 16    /* OpenAI allows 4; we allow HL_STOP_MAX, as hl_stop does */
#define HL_API_MAX_N 16       /* most choices per request */
#define HL_API_MAX_MESSAGES 4096

/* lim may be NULL: HL_API_MAX_N and no max_tokens limit. */
typedef struct hl_api_limits {
    int max_n;       /* 1..HL_API_MAX_N; anything else means HL_API_MAX_N */
    int max_tokens;  /* largest max_tokens accepted (the scheduler also clamps to the context);
                        <= 0: no limit */
} hl_api_limits;

typedef struct hl_api_request {
    hl_api_kind kind;
    char *model;                 /* required */
    /* chat */
    hl_api_message *messages;    /* n_messages >= 1 */
    int n_messages;
    char *messages_json;         /* the messages re-serialized for the template engine, compact:
                                    [{"role":..,"content":"<text>"[,"name":..]}, ...],
                                    non-ASCII as UTF-8, NUL as \u0000 */
    /* completions: prompt is a string, or a list holding exactly one string */
    char *prompt;
    size_t prompt_len;
    bool echo;                   /* completions: prepend the prompt to the text */
    /* both */
    hl_sampler_params sampling;  /* ranges checked (ids against INT32_MAX only); logit_bias is
                                    a heap array owned by the request, in the body's order;
                                    seed random when not given, else the int64's bits */
    bool seed_given;
    int n;                       /* choices, 1..max_n */
    int max_tokens;              /* -1: until the context is full or end of generation;
                                    max_completion_tokens wins over max_tokens */
    char *stop[HL_API_MAX_STOP]; /* stop strings, each 1..HL_STOP_MAX_LEN bytes (hl_stop_init
                                    accepts them), NUL-terminated, may hold NUL bytes */
    size_t stop_len[HL_API_MAX_STOP];
    int n_stop;
    bool stream;
    bool include_usage;          /* stream_options.include_usage */
    bool logprobs;               /* chat: logprobs true; completions: logprobs given (int) */
    int top_logprobs;            /* 0..20 (chat top_logprobs; completions: the logprobs int) */
    char *user;                  /* optional */
    uint32_t given;              /* HL_API_GIVEN_*: fields the request set itself, so a model's
                                    configured defaults apply to the others */
} hl_api_request;

enum {
    HL_API_GIVEN_TEMPERATURE = 1u << 0,
    HL_API_GIVEN_TOP_P = 1u << 1,
    HL_API_GIVEN_TOP_K = 1u << 2,
    HL_API_GIVEN_MIN_P = 1u << 3,
    HL_API_GIVEN_MAX_TOKENS = 1u << 4,
    HL_API_GIVEN_REPETITION_PENALTY = 1u << 5,
    HL_API_GIVEN_REPETITION_CONTEXT_SIZE = 1u << 6,
};

int hl_api_parse_request(hl_api_kind kind, const char *body, size_t len, const hl_api_limits *lim,
                         hl_api_request *r, hl_api_error *err);
void hl_api_request_free(hl_api_request *r);

/* ---- responses ---- */

/* {"error":{"message":..,"type":..,"param":..,"code":..}} */
void hl_api_write_error(hl_buf *b, const hl_api_error *err);
/* The same as one SSE event (a failure in the middle of a stream). */
void hl_api_write_error_event(hl_buf *b, const hl_api_error *err);
/* "data: [DONE]\n\n" */
void hl_api_write_done(hl_buf *b);

/* What every response and chunk of one request carries. */
typedef struct hl_api_head {
    hl_api_kind kind;
    const char *id;       /* "chatcmpl-..." / "cmpl-..." */
    int64_t created;      /* unix seconds */
    const char *model;
    const char *fingerprint; /* system_fingerprint, NULL = omitted */
} hl_api_head;

typedef struct hl_api_usage {
    int prompt_tokens, completion_tokens;
} hl_api_usage;

/* One token's log-probabilities (token text as bytes; may be part of a
 * UTF-8 character: written as JSON with U+FFFD and as a "bytes" array).
 * A logprob of -inf or NaN is written as -9999.0 (JSON has no infinity). */
typedef struct hl_api_top {
    const char *tok;
    size_t tok_len;
    float logprob;
} hl_api_top;

typedef struct hl_api_logprob {
    const char *tok;
    size_t tok_len;
    float logprob;
    int n_top;
    hl_api_top top[HL_SAMPLER_MAX_TOP_LOGPROBS];
    size_t text_offset;   /* completions: byte offset of the token in the choice's text */
} hl_api_logprob;

/* One choice of a whole (non-streaming) response. finish_reason: "stop" or
 * "length". logprobs: n_logprobs entries when the request asked for them
 * (NULL otherwise: "logprobs": null). */
typedef struct hl_api_choice {
    int index;
    const char *text;
    size_t text_len;
    const char *finish_reason;
    const hl_api_logprob *logprobs;
    int n_logprobs;
} hl_api_choice;

/* chat.completion / text_completion object with n choices and usage. */
void hl_api_write_response(hl_buf *b, const hl_api_head *h, const hl_api_choice *c, int n,
                           const hl_api_usage *u);

/* One stream chunk for one choice (chat.completion.chunk / text_completion):
 *   role_first: the chat delta {"role":"assistant","content":""} (text ignored;
 *   completions ignore role_first);
 *   otherwise a content delta of text (may be empty when finish_reason is set:
 *   the chat delta is then {}, as OpenAI's last chunk), with logprobs for the
 *   tokens it covers (NULL: "logprobs": null; non-NULL with n_logprobs 0: an
 *   empty list), and finish_reason NULL (JSON null) or "stop"/"length".
 * include_usage adds "usage": null to every chunk, as OpenAI does. */
typedef struct hl_api_delta {
    int index;
    bool role_first;
    const char *text;
    size_t text_len;
    const char *finish_reason;
    const hl_api_logprob *logprobs;
    int n_logprobs;
} hl_api_delta;
void hl_api_write_chunk(hl_buf *b, const hl_api_head *h, const hl_api_delta *d, bool include_usage);
/* The final usage chunk: "choices": [] and usage. */
void hl_api_write_usage_chunk(hl_buf *b, const hl_api_head *h, const hl_api_usage *u);

/* GET /v1/models: {"object":"list","data":[{"id","object":"model","created","owned_by"[,"status"]}]};
 * hl_api_write_model writes one entry (GET /v1/models/{id}). */
typedef struct hl_api_model_entry {
    const char *id;
    int64_t created;
    const char *owned_by;
    const char *status; /* "loaded", "loading", "unloaded"; NULL = omitted */
} hl_api_model_entry;
void hl_api_write_model(hl_buf *b, const hl_api_model_entry *m);
void hl_api_write_models(hl_buf *b, const hl_api_model_entry *m, int n);

#endif
