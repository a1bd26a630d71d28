/* fuzz_request.c - libFuzzer target: parses arbitrary bytes as a chat and as
 * a completions request body (src/api/api.h), checks the invariants of what
 * comes back, and on success runs every writer over the parsed strings.
 *
 * Invariants (abort on violation): a failure has a 4xx/5xx status and a
 * message and leaves the request zeroed; a success has a model, n and
 * max_tokens within the limits, stop strings hl_stop accepts, valid UTF-8
 * strings, and (chat) messages_json that json-c reads back as an array of
 * n_messages objects. Writer output must be valid JSON too.
 *
 *   make fuzz && build-fuzz/fuzz_request fuzz/corpus/request
 */
#include <json-c/json.h>
#include <math.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "../src/api/api.h"
#include "../src/engine/stop.h"

static const hl_api_limits LIM = {.max_n = 4, .max_tokens = 1 << 20};

static void check(bool ok) {
    if (!ok) abort();
}

/* b holds one JSON value (after an optional SSE "data: " and before "\n\n"). */
static void check_json(const hl_buf *b, bool sse) {
    check(!b->oom);
    const char *p = b->p;
    size_t n = b->len;
    if (sse) {
        check(n >= 8 && !memcmp(p, "data: ", 6) && !memcmp(p + n - 2, "\n\n", 2));
        p += 6, n -= 8;
    }
    check(hl_utf8_valid_len(p, n) == n);
    json_tokener *t = json_tokener_new();
    json_object *o = json_tokener_parse_ex(t, p, (int)n);
    check(json_tokener_get_error(t) == json_tokener_success && json_tokener_get_parse_end(t) == n);
    json_tokener_free(t);
    json_object_put(o);
}

static void write_all(const hl_api_request *r) {
    const char *text = r->kind == HL_API_CHAT ? r->messages[r->n_messages - 1].content : r->prompt;
    size_t len =
        r->kind == HL_API_CHAT ? r->messages[r->n_messages - 1].content_len : r->prompt_len;
    hl_api_logprob lp = {.tok = text, .tok_len = len < 8 ? len : 8, .logprob = -1.0f, .n_top = 1};
    lp.top[0] = (hl_api_top){text, len < 3 ? len : 3, -INFINITY};
    hl_api_head h = {r->kind, r->user ? r->user : "id", 1, r->model, r->stop[0]};
    hl_api_choice c = {0, text, len, "stop", r->logprobs ? &lp : NULL, r->logprobs};
    hl_api_usage u = {1, 2};
    hl_buf b = {0};
    hl_api_write_response(&b, &h, &c, 1, &u);
    check_json(&b, false);
    hl_api_delta d = {0, r->echo, text, len, NULL, &lp, 1};
    hl_buf_reset(&b);
    hl_api_write_chunk(&b, &h, &d, r->include_usage);
    check_json(&b, true);
    hl_buf_reset(&b);
    hl_api_write_usage_chunk(&b, &h, &u);
    check_json(&b, true);
    hl_api_model_entry m = {r->model, 0, r->user ? r->user : "o"};
    hl_buf_reset(&b);
    hl_api_write_models(&b, &m, 1);
    check_json(&b, false);
    hl_buf_free(&b);
}

static void one(hl_api_kind kind, const uint8_t *data, size_t size) {
    hl_api_request r;
    hl_api_error e;
    if (hl_api_parse_request(kind, (const char *)data, size, &LIM, &r, &e) < 0) {
        check(e.status >= 400 && e.status < 600 && e.message[0] && e.type[0]);
        check(!r.model && !r.messages && !r.prompt && !r.messages_json && !r.n_stop);
        hl_buf b = {0};
        hl_api_write_error(&b, &e);
        check_json(&b, false);
        hl_buf_free(&b);
        return;
    }
    check(r.kind == kind && r.model && r.model[0]);
    check(r.n >= 1 && r.n <= LIM.max_n);
    check(r.max_tokens == -1 || (r.max_tokens >= 1 && r.max_tokens <= LIM.max_tokens));
    check(r.top_logprobs >= 0 && r.top_logprobs <= HL_SAMPLER_MAX_TOP_LOGPROBS);
    check(!r.include_usage || r.stream);
    hl_err he;
    check(hl_sampler_params_check(&r.sampling, INT32_MAX, &he) == 0);
    hl_stop st;
    check(hl_stop_init(&st, (const char *const *)r.stop, r.stop_len, r.n_stop, &he) == 0);
    if (kind == HL_API_CHAT) {
        check(r.n_messages >= 1 && r.messages_json && !r.prompt);
        for (int i = 0; i < r.n_messages; i++) {
            const hl_api_message *m = &r.messages[i];
            check(m->role && m->content && m->content[m->content_len] == 0);
            check(hl_utf8_valid_len(m->content, m->content_len) == m->content_len);
        }
        json_object *a = json_tokener_parse(r.messages_json);
        check(json_object_is_type(a, json_type_array) &&
              (int)json_object_array_length(a) == r.n_messages);
        json_object_put(a);
    } else {
        check(r.prompt && r.n_messages == 0 && !r.messages_json);
        check(hl_utf8_valid_len(r.prompt, r.prompt_len) == r.prompt_len);
    }
    write_all(&r);
    hl_api_request_free(&r);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    one(HL_API_CHAT, data, size);
    one(HL_API_COMPLETION, data, size);
    return 0;
}
