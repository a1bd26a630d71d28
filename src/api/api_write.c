/* api_write.c - responses, stream chunks and errors as OpenAI's JSON (see
 * api.h). Everything is appended to an hl_buf; strings go through
 * hl_buf_json_str, so the output is valid JSON whatever bytes a token holds.
 * Field order follows OpenAI's responses. A log-probability of -inf (a
 * banned token) or NaN is written as -9999.0, since JSON has no infinity.
 */
#include <inttypes.h>
#include <string.h>

#include "api.h"

#define NONFINITE_LOGPROB "-9999.0"

static void put_str(hl_buf *b, const char *s) {
    if (s)
        hl_buf_json_str(b, s, strlen(s));
    else
        hl_buf_puts(b, "null");
}

/* `"key":"value"` (or null) after a comma. */
static void put_kv(hl_buf *b, const char *key, const char *s) {
    hl_buf_printf(b, ",\"%s\":", key);
    put_str(b, s);
}

static void put_error_obj(hl_buf *b, const hl_api_error *err) {
    hl_buf_puts(b, "{\"error\":{\"message\":");
    put_str(b, err->message);
    put_kv(b, "type", err->type[0] ? err->type : "invalid_request_error");
    put_kv(b, "param", err->param[0] ? err->param : NULL);
    put_kv(b, "code", err->code[0] ? err->code : NULL);
    hl_buf_puts(b, "}}");
}

void hl_api_write_error(hl_buf *b, const hl_api_error *err) {
    put_error_obj(b, err);
}

void hl_api_write_error_event(hl_buf *b, const hl_api_error *err) {
    hl_buf_puts(b, "data: ");
    put_error_obj(b, err);
    hl_buf_puts(b, "\n\n");
}

void hl_api_write_done(hl_buf *b) {
    hl_buf_puts(b, "data: [DONE]\n\n");
}

static bool is_chat(const hl_api_head *h) {
    return h->kind == HL_API_CHAT;
}

/* {"id":..,"object":..,"created":..,"model":..[,"system_fingerprint":..] (no closing brace) */
static void put_head(hl_buf *b, const hl_api_head *h, const char *object) {
    hl_buf_puts(b, "{\"id\":");
    put_str(b, h->id);
    put_kv(b, "object", object);
    hl_buf_printf(b, ",\"created\":%" PRId64, h->created);
    put_kv(b, "model", h->model);
    if (h->fingerprint) put_kv(b, "system_fingerprint", h->fingerprint);
}

static void put_usage(hl_buf *b, const hl_api_usage *u) {
    hl_buf_printf(b, "{\"prompt_tokens\":%d,\"completion_tokens\":%d,\"total_tokens\":%lld}",
                  u->prompt_tokens, u->completion_tokens,
                  (long long)u->prompt_tokens + u->completion_tokens);
}

static void put_token(hl_buf *b, const char *tok, size_t len, float logprob) {
    hl_buf_puts(b, "{\"token\":");
    hl_buf_json_str(b, tok, len);
    hl_buf_puts(b, ",\"logprob\":");
    hl_buf_json_f32(b, logprob, NONFINITE_LOGPROB);
    hl_buf_puts(b, ",\"bytes\":[");
    for (size_t i = 0; i < len; i++)
        hl_buf_printf(b, i ? ",%u" : "%u", (unsigned)(unsigned char)tok[i]);
    hl_buf_putc(b, ']');
}

/* Chat: {"content":[{token,logprob,bytes,top_logprobs:[..]}..],"refusal":null} */
static void put_chat_logprobs(hl_buf *b, const hl_api_logprob *lp, int n) {
    hl_buf_puts(b, "{\"content\":[");
    for (int i = 0; i < n; i++) {
        if (i) hl_buf_putc(b, ',');
        put_token(b, lp[i].tok, lp[i].tok_len, lp[i].logprob);
        hl_buf_puts(b, ",\"top_logprobs\":[");
        for (int j = 0; j < lp[i].n_top; j++) {
            if (j) hl_buf_putc(b, ',');
            put_token(b, lp[i].top[j].tok, lp[i].top[j].tok_len, lp[i].top[j].logprob);
            hl_buf_putc(b, '}');
        }
        hl_buf_puts(b, "]}");
    }
    hl_buf_puts(b, "],\"refusal\":null}");
}

/* Completions: {"tokens":[..],"token_logprobs":[..],"top_logprobs":[{tok:lp}..],
 * "text_offset":[..]} */
static void put_text_logprobs(hl_buf *b, const hl_api_logprob *lp, int n) {
    hl_buf_puts(b, "{\"tokens\":[");
    for (int i = 0; i < n; i++) {
        if (i) hl_buf_putc(b, ',');
        hl_buf_json_str(b, lp[i].tok, lp[i].tok_len);
    }
    hl_buf_puts(b, "],\"token_logprobs\":[");
    for (int i = 0; i < n; i++) {
        if (i) hl_buf_putc(b, ',');
        hl_buf_json_f32(b, lp[i].logprob, NONFINITE_LOGPROB);
    }
    hl_buf_puts(b, "],\"top_logprobs\":[");
    for (int i = 0; i < n; i++) {
        hl_buf_puts(b, i ? ",{" : "{");
        for (int j = 0; j < lp[i].n_top; j++) {
            if (j) hl_buf_putc(b, ',');
            hl_buf_json_str(b, lp[i].top[j].tok, lp[i].top[j].tok_len);
            hl_buf_putc(b, ':');
            hl_buf_json_f32(b, lp[i].top[j].logprob, NONFINITE_LOGPROB);
        }
        hl_buf_putc(b, '}');
    }
    hl_buf_puts(b, "],\"text_offset\":[");
    for (int i = 0; i < n; i++) hl_buf_printf(b, i ? ",%zu" : "%zu", lp[i].text_offset);
    hl_buf_puts(b, "]}");
}

static void put_logprobs(hl_buf *b, bool chat, const hl_api_logprob *lp, int n) {
    if (!lp)
        hl_buf_puts(b, "null");
    else if (chat)
        put_chat_logprobs(b, lp, n);
    else
        put_text_logprobs(b, lp, n);
}

void hl_api_write_response(hl_buf *b, const hl_api_head *h, const hl_api_choice *c, int n,
                           const hl_api_usage *u) {
    bool chat = is_chat(h);
    put_head(b, h, chat ? "chat.completion" : "text_completion");
    hl_buf_puts(b, ",\"choices\":[");
    for (int i = 0; i < n; i++) {
        hl_buf_printf(b, "%s{\"index\":%d,", i ? "," : "", c[i].index);
        if (chat) {
            hl_buf_puts(b, "\"message\":{\"role\":\"assistant\",\"content\":");
            hl_buf_json_str(b, c[i].text, c[i].text_len);
            hl_buf_puts(b, ",\"refusal\":null}");
        } else {
            hl_buf_puts(b, "\"text\":");
            hl_buf_json_str(b, c[i].text, c[i].text_len);
        }
        hl_buf_puts(b, ",\"logprobs\":");
        put_logprobs(b, chat, c[i].logprobs, c[i].n_logprobs);
        put_kv(b, "finish_reason", c[i].finish_reason);
        hl_buf_putc(b, '}');
    }
    hl_buf_puts(b, "],\"usage\":");
    put_usage(b, u);
    hl_buf_putc(b, '}');
}

void hl_api_write_chunk(hl_buf *b, const hl_api_head *h, const hl_api_delta *d,
                        bool include_usage) {
    bool chat = is_chat(h);
    hl_buf_puts(b, "data: ");
    put_head(b, h, chat ? "chat.completion.chunk" : "text_completion");
    hl_buf_printf(b, ",\"choices\":[{\"index\":%d,", d->index);
    if (!chat) {
        hl_buf_puts(b, "\"text\":");
        hl_buf_json_str(b, d->text, d->text_len);
    } else if (d->role_first) {
        hl_buf_puts(b, "\"delta\":{\"role\":\"assistant\",\"content\":\"\"}");
    } else if (d->text_len == 0 && d->finish_reason) {
        hl_buf_puts(b, "\"delta\":{}"); /* the closing chunk, as OpenAI sends it */
    } else {
        hl_buf_puts(b, "\"delta\":{\"content\":");
        hl_buf_json_str(b, d->text, d->text_len);
        hl_buf_putc(b, '}');
    }
    hl_buf_puts(b, ",\"logprobs\":");
    put_logprobs(b, chat, d->logprobs, d->n_logprobs);
    put_kv(b, "finish_reason", d->finish_reason);
    hl_buf_puts(b, "}]");
    if (include_usage) hl_buf_puts(b, ",\"usage\":null");
    hl_buf_puts(b, "}\n\n");
}

void hl_api_write_usage_chunk(hl_buf *b, const hl_api_head *h, const hl_api_usage *u) {
    hl_buf_puts(b, "data: ");
    put_head(b, h, is_chat(h) ? "chat.completion.chunk" : "text_completion");
    hl_buf_puts(b, ",\"choices\":[],\"usage\":");
    put_usage(b, u);
    hl_buf_puts(b, "}\n\n");
}

void hl_api_write_model(hl_buf *b, const hl_api_model_entry *m) {
    hl_buf_puts(b, "{\"id\":");
    put_str(b, m->id);
    hl_buf_printf(b, ",\"object\":\"model\",\"created\":%" PRId64, m->created);
    put_kv(b, "owned_by", m->owned_by);
    if (m->status) put_kv(b, "status", m->status);
    hl_buf_putc(b, '}');
}

void hl_api_write_models(hl_buf *b, const hl_api_model_entry *m, int n) {
    hl_buf_puts(b, "{\"object\":\"list\",\"data\":[");
    for (int i = 0; i < n; i++) {
        if (i) hl_buf_putc(b, ',');
        hl_api_write_model(b, &m[i]);
    }
    hl_buf_puts(b, "]}");
}
