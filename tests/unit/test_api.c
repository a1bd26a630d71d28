/* test_api.c - the OpenAI wire format (src/api/api.h): requests of both
 * kinds with every field, each refusal's status / param / code, ownership of
 * what the parser returns, and writer output re-read with json-c.
 *
 * With HL_API_SHAPES_DIR set, api_write_shapes also saves one sample of every
 * writer's output there, for tests/cli/test_api_shapes.py to check against the
 * openai SDK's models. */
#include <json-c/json.h>
#include <limits.h>
#include <math.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "../../src/api/api.h"
#include "test.h"

static const hl_api_limits LIM = {.max_n = 4, .max_tokens = 4096};

static int parse(hl_api_kind k, const char *body, hl_api_request *r, hl_api_error *e) {
    return hl_api_parse_request(k, body, strlen(body), &LIM, r, e);
}

/* Parses body and checks it fails with this status, param ("" = null), code
 * and a message containing needle. */
#define EXPECT_ERR(kind, body, status_, param_, code_, needle)                                     \
    do {                                                                                           \
        hl_api_request r_;                                                                         \
        hl_api_error e_ = {0};                                                                     \
        int rc_ = parse(kind, body, &r_, &e_);                                                     \
        CHECK_EQ_INT(rc_, -1);                                                                     \
        if (rc_ == 0) {                                                                            \
            fprintf(stderr, "  accepted: %s\n", body);                                             \
            hl_api_request_free(&r_);                                                              \
            break;                                                                                 \
        }                                                                                          \
        CHECK_EQ_INT(e_.status, status_);                                                          \
        CHECK_STR_CONTAINS(e_.param, param_);                                                      \
        CHECK_EQ_INT(strlen(e_.param), strlen(param_));                                            \
        CHECK_STR_CONTAINS(e_.code, code_);                                                        \
        CHECK_EQ_INT(strlen(e_.code), strlen(code_));                                              \
        CHECK_STR_CONTAINS(e_.message, needle);                                                    \
        CHECK(r_.model == NULL && r_.messages == NULL && r_.n_messages == 0);                      \
    } while (0)

#define CHAT_ERR(extra, param, code, needle)                                                       \
    EXPECT_ERR(HL_API_CHAT,                                                                        \
               "{\"model\":\"m\",\"messages\":[{\"role\":\"user\",\"content\":\"hi\"}]," extra     \
               "}",                                                                                \
               400, param, code, needle)
#define TEXT_ERR(extra, param, code, needle)                                                       \
    EXPECT_ERR(HL_API_COMPLETION, "{\"model\":\"m\",\"prompt\":\"hi\"," extra "}", 400, param,     \
               code, needle)

/* Parses a chat request that must be accepted. */
static bool chat_ok(const char *extra, hl_api_request *r) {
    char body[4096];
    snprintf(body, sizeof body,
             "{\"model\":\"m\",\"messages\":[{\"role\":\"user\",\"content\":\"hi\"}]%s%s}",
             *extra ? "," : "", extra);
    hl_api_error e = {0};
    if (parse(HL_API_CHAT, body, r, &e) < 0) {
        fprintf(stderr, "  refused (%s / %s): %s\n  body: %s\n", e.param, e.code, e.message, body);
        return false;
    }
    return true;
}

/* ---- chat requests ---- */

TEST(api_chat_every_field) {
    const char *body =
        "{\"model\":\"qwen2.5-coder-1.5b\","
        "\"messages\":["
        "{\"role\":\"system\",\"content\":\"Be brief.\"},"
        "{\"role\":\"developer\",\"content\":[{\"type\":\"text\",\"text\":\"Rule 1\"},"
        "{\"type\":\"text\",\"text\":\"Rule 2\"}]},"
        "{\"role\":\"user\",\"content\":\"Caf\xc3\xa9 \\u00e9\\ud83d\\ude00 "
        "\\\"q\\\"\",\"name\":\"ann\"},"
        "{\"role\":\"assistant\",\"content\":null,\"refusal\":null,\"tool_calls\":[]},"
        "{\"role\":\"assistant\",\"content\":[{\"type\":\"refusal\",\"refusal\":\"no\"}]},"
        "{\"role\":\"tool\",\"content\":\"42\",\"tool_call_id\":\"call_1\"},"
        "{\"role\":\"user\",\"content\":[]}],"
        "\"temperature\":0.25,\"top_p\":0.9,\"n\":3,\"stop\":[\"\\n\\nUser:\",\"END\"],"
        "\"max_tokens\":100,\"max_completion_tokens\":50,"
        "\"presence_penalty\":0.5,\"frequency_penalty\":-0.5,"
        "\"logit_bias\":{\"50256\":-100,\"7\":2.5},\"seed\":-1,\"user\":\"u-1\","
        "\"stream\":true,\"stream_options\":{\"include_usage\":true,\"include_obfuscation\":false},"
        "\"logprobs\":true,\"top_logprobs\":5,\"top_k\":40,\"min_p\":0.05,"
        "\"repetition_penalty\":1.1,\"repetition_context_size\":64,"
        "\"tools\":[],\"tool_choice\":\"none\",\"parallel_tool_calls\":false,"
        "\"response_format\":{\"type\":\"text\"},\"modalities\":[\"text\"],"
        "\"store\":false,\"metadata\":{\"k\":\"v\"},\"service_tier\":\"auto\","
        "\"prompt_cache_key\":\"pk\",\"safety_identifier\":\"s\",\"unknown_field\":[1,{}]}";
    hl_api_request r;
    hl_api_error e = {0};
    int rc = parse(HL_API_CHAT, body, &r, &e);
    CHECK_EQ_INT(rc, 0);
    if (rc < 0) {
        fprintf(stderr, "  %s %s: %s\n", e.param, e.code, e.message);
        return;
    }
    CHECK(r.kind == HL_API_CHAT);
    CHECK(strcmp(r.model, "qwen2.5-coder-1.5b") == 0);
    CHECK_EQ_INT(r.n_messages, 7);
    CHECK(strcmp(r.messages[0].role, "system") == 0 &&
          strcmp(r.messages[0].content, "Be brief.") == 0);
    CHECK(strcmp(r.messages[1].role, "developer") == 0);
    CHECK(strcmp(r.messages[1].content, "Rule 1\nRule 2") == 0);
    CHECK_EQ_INT(r.messages[1].content_len, 13);
    CHECK(strcmp(r.messages[2].content, "Caf\xc3\xa9 \xc3\xa9\xf0\x9f\x98\x80 \"q\"") == 0);
    CHECK(r.messages[2].name && strcmp(r.messages[2].name, "ann") == 0);
    CHECK(r.messages[0].name == NULL);
    CHECK(strcmp(r.messages[3].role, "assistant") == 0 && r.messages[3].content_len == 0 &&
          r.messages[3].content[0] == 0);
    CHECK(strcmp(r.messages[4].content, "no") == 0);
    CHECK(strcmp(r.messages[5].role, "tool") == 0 && strcmp(r.messages[5].content, "42") == 0);
    CHECK(r.messages[6].content && r.messages[6].content_len == 0);
    CHECK(
        strcmp(r.messages_json,
               "[{\"role\":\"system\",\"content\":\"Be brief.\"},"
               "{\"role\":\"system\",\"content\":\"Rule 1\\nRule 2\"}," /* developer: system */
               "{\"role\":\"user\",\"content\":\"Caf\xc3\xa9 \xc3\xa9\xf0\x9f\x98\x80 \\\"q\\\"\","
               "\"name\":\"ann\"},"
               "{\"role\":\"assistant\",\"content\":\"\"},"
               "{\"role\":\"assistant\",\"content\":\"no\"},"
               "{\"role\":\"tool\",\"content\":\"42\"},"
               "{\"role\":\"user\",\"content\":\"\"}]") == 0);
    CHECK_NEAR(r.sampling.temperature, 0.25, 1e-7);
    CHECK_NEAR(r.sampling.top_p, 0.9, 1e-7);
    CHECK_EQ_INT(r.n, 3);
    CHECK_EQ_INT(r.n_stop, 2);
    CHECK(r.stop_len[0] == 7 && memcmp(r.stop[0], "\n\nUser:", 8) == 0);
    CHECK(r.stop_len[1] == 3 && strcmp(r.stop[1], "END") == 0);
    CHECK_EQ_INT(r.max_tokens, 50); /* max_completion_tokens wins */
    CHECK_NEAR(r.sampling.presence_penalty, 0.5, 0);
    CHECK_NEAR(r.sampling.frequency_penalty, -0.5, 0);
    CHECK_EQ_INT(r.sampling.n_logit_bias, 2);
    CHECK(r.sampling.logit_bias[0].id == 50256 && r.sampling.logit_bias[0].bias == -100.0f);
    CHECK(r.sampling.logit_bias[1].id == 7 && r.sampling.logit_bias[1].bias == 2.5f);
    CHECK(r.seed_given && r.sampling.seed == UINT64_MAX); /* -1's bits */
    CHECK(strcmp(r.user, "u-1") == 0);
    CHECK(r.stream && r.include_usage);
    CHECK(r.logprobs && r.top_logprobs == 5);
    CHECK_EQ_INT(r.sampling.top_k, 40);
    CHECK_NEAR(r.sampling.min_p, 0.05, 1e-7);
    CHECK_NEAR(r.sampling.repetition_penalty, 1.1, 1e-6);
    CHECK_EQ_INT(r.sampling.repetition_context_size, 64);
    CHECK(r.prompt == NULL && !r.echo);
    /* messages_json is what the template engine reads: valid JSON */
    json_object *mj = json_tokener_parse(r.messages_json);
    CHECK(mj && json_object_array_length(mj) == 7);
    json_object_put(mj);
    hl_api_request_free(&r);
    CHECK(r.model == NULL && r.messages == NULL && r.sampling.logit_bias == NULL);
    hl_api_request_free(&r); /* a freed request is zeroed: freeing again is harmless */
}

TEST(api_chat_defaults_and_nulls) {
    hl_api_request r;
    if (!chat_ok("", &r)) {
        CHECK(0);
        return;
    }
    CHECK_NEAR(r.sampling.temperature, 1.0, 0);
    CHECK_NEAR(r.sampling.top_p, 1.0, 0);
    CHECK_EQ_INT(r.sampling.top_k, 0);
    CHECK_NEAR(r.sampling.repetition_penalty, 1.0, 0);
    CHECK_EQ_INT(r.n, 1);
    CHECK_EQ_INT(r.max_tokens, -1);
    CHECK(!r.seed_given && !r.stream && !r.include_usage && !r.logprobs && r.top_logprobs == 0);
    CHECK(r.n_stop == 0 && r.user == NULL && r.sampling.n_logit_bias == 0);
    CHECK(strcmp(r.messages_json, "[{\"role\":\"user\",\"content\":\"hi\"}]") == 0);
    hl_api_request_free(&r);
    /* null is absent for every optional field */
    const char *nulls =
        "\"temperature\":null,\"top_p\":null,\"n\":null,\"stop\":null,\"max_tokens\":null,"
        "\"max_completion_tokens\":null,\"presence_penalty\":null,\"frequency_penalty\":null,"
        "\"logit_bias\":null,\"seed\":null,\"user\":null,\"stream\":null,\"stream_options\":null,"
        "\"logprobs\":null,\"top_logprobs\":null,\"top_k\":null,\"min_p\":null,"
        "\"repetition_penalty\":null,\"repetition_context_size\":null,\"tools\":null,"
        "\"tool_choice\":null,\"functions\":null,\"function_call\":null,\"response_format\":null,"
        "\"audio\":null,\"modalities\":null,\"prediction\":null,\"web_search_options\":null,"
        "\"reasoning_effort\":null,\"verbosity\":null,\"moderation\":null,\"store\":null,"
        "\"metadata\":null,\"service_tier\":null,\"parallel_tool_calls\":null";
    if (!chat_ok(nulls, &r)) {
        CHECK(0);
        return;
    }
    CHECK(r.n == 1 && r.max_tokens == -1 && r.sampling.temperature == 1.0f && !r.stream);
    hl_api_request_free(&r);
}

TEST(api_chat_numbers_and_seed) {
    hl_api_request r;
    /* integers given as numbers without a fraction; integers for floats */
    if (chat_ok(
            "\"n\":2.0,\"max_tokens\":7,\"temperature\":0,\"top_p\":1,\"seed\":9223372036854775807",
            &r)) {
        CHECK(r.n == 2 && r.max_tokens == 7 && r.sampling.temperature == 0.0f);
        CHECK(r.seed_given && r.sampling.seed == (uint64_t)INT64_MAX);
        hl_api_request_free(&r);
    } else {
        CHECK(0);
    }
    if (chat_ok("\"seed\":-9223372036854775808,\"max_tokens\":4096,\"n\":4", &r)) {
        CHECK(r.sampling.seed == (uint64_t)1 << 63);
        CHECK(r.max_tokens == 4096 && r.n == 4); /* the limits themselves */
        hl_api_request_free(&r);
    } else {
        CHECK(0);
    }
    if (chat_ok("\"seed\":0,\"max_tokens\":10,\"stop\":\"x\",\"temperature\":2,\"top_k\":0,"
                "\"min_p\":1,\"repetition_context_size\":65536,\"logit_bias\":{},"
                "\"logprobs\":false,\"stream\":false",
                &r)) {
        CHECK(r.seed_given && r.sampling.seed == 0);
        CHECK(r.n_stop == 1 && strcmp(r.stop[0], "x") == 0);
        CHECK(r.max_tokens == 10 && r.sampling.n_logit_bias == 0 && r.sampling.logit_bias == NULL);
        hl_api_request_free(&r);
    } else {
        CHECK(0);
    }
}

TEST(api_chat_logit_bias_order_and_duplicates) {
    hl_api_request r;
    if (!chat_ok("\"logit_bias\":{\"3\":1,\"0\":-100,\"003\":0.5,\"2147483646\":100}", &r)) {
        CHECK(0);
        return;
    }
    CHECK_EQ_INT(r.sampling.n_logit_bias, 4);
    CHECK(r.sampling.logit_bias[0].id == 3 && r.sampling.logit_bias[0].bias == 1.0f);
    CHECK(r.sampling.logit_bias[1].id == 0 && r.sampling.logit_bias[1].bias == -100.0f);
    CHECK(r.sampling.logit_bias[2].id == 3 && r.sampling.logit_bias[2].bias == 0.5f);
    CHECK(r.sampling.logit_bias[3].id == 2147483646);
    hl_api_request_free(&r);
    /* 1024 entries are fine, 1025 are not */
    hl_buf b = {0};
    hl_buf_puts(&b, "\"logit_bias\":{");
    for (int i = 0; i < 1025; i++) hl_buf_printf(&b, "%s\"%d\":1", i ? "," : "", i);
    hl_buf_putc(&b, '}');
    char *big = malloc(b.len + 200);
    snprintf(big, b.len + 200,
             "{\"model\":\"m\",\"messages\":[{\"role\":\"user\",\"content\":\"x\"}],%s}", b.p);
    hl_api_error e = {0};
    CHECK_EQ_INT(parse(HL_API_CHAT, big, &r, &e), -1);
    CHECK(strcmp(e.param, "logit_bias") == 0);
    CHECK_STR_CONTAINS(e.message, "1024");
    char *cut = strstr(big, ",\"1024\":1");
    memmove(cut, cut + 9, strlen(cut + 9) + 1);
    CHECK_EQ_INT(parse(HL_API_CHAT, big, &r, &e), 0);
    CHECK_EQ_INT(r.sampling.n_logit_bias, 1024);
    hl_api_request_free(&r);
    free(big);
    hl_buf_free(&b);
}

TEST(api_chat_nul_and_utf8_in_content) {
    hl_api_request r;
    hl_api_error e = {0};
    const char *body =
        "{\"model\":\"m\",\"messages\":[{\"role\":\"user\",\"content\":\"a\\u0000b\\ud800\"}],"
        "\"stop\":[\"x\\u0000y\"]}";
    CHECK_EQ_INT(parse(HL_API_CHAT, body, &r, &e), 0);
    if (!r.model) return;
    CHECK_EQ_INT(r.messages[0].content_len, 6); /* a NUL b U+FFFD (json-c's lone surrogate) */
    CHECK(memcmp(r.messages[0].content, "a\0b\xef\xbf\xbd", 6) == 0);
    CHECK(strcmp(r.messages_json, "[{\"role\":\"user\",\"content\":\"a\\u0000b\xef\xbf\xbd\"}]") ==
          0);
    CHECK(r.stop_len[0] == 3 && memcmp(r.stop[0], "x\0y", 4) == 0);
    hl_api_request_free(&r);
}

TEST(api_request_owns_its_memory) {
    /* the body is freed (and scribbled over) right after the parse: under
     * ASan any pointer into it would fault */
    const char *src =
        "{\"model\":\"m\",\"messages\":[{\"role\":\"user\",\"content\":[{\"type\":\"text\","
        "\"text\":\"hello\"}],\"name\":\"n\"}],\"stop\":[\"s\"],\"user\":\"u\","
        "\"logit_bias\":{\"5\":1}}";
    size_t n = strlen(src);
    char *body = malloc(n);
    memcpy(body, src, n); /* not NUL-terminated: the parser takes the length */
    hl_api_request r, moved;
    hl_api_error e = {0};
    CHECK_EQ_INT(hl_api_parse_request(HL_API_CHAT, body, n, &LIM, &r, &e), 0);
    memset(body, 'X', n);
    free(body);
    if (!r.model) return;
    moved = r; /* a bytewise move to another owner */
    memset(&r, 0xa5, sizeof r);
    CHECK(strcmp(moved.model, "m") == 0 && strcmp(moved.messages[0].content, "hello") == 0);
    CHECK(strcmp(moved.messages[0].name, "n") == 0 && strcmp(moved.stop[0], "s") == 0);
    CHECK(strcmp(moved.user, "u") == 0 && moved.sampling.logit_bias[0].id == 5);
    CHECK(strstr(moved.messages_json, "hello") != NULL);
    hl_api_request_free(&moved);
    hl_api_request zero = {0};
    hl_api_request_free(&zero);
    hl_api_request_free(NULL);
}

/* ---- completions requests ---- */

TEST(api_completion_every_field) {
    const char *body =
        "{\"model\":\"m\",\"prompt\":\"Once upon\",\"echo\":true,\"logprobs\":3,"
        "\"best_of\":2,\"n\":2,\"suffix\":\"\",\"max_tokens\":16,\"temperature\":0.5,"
        "\"top_p\":0.5,\"stop\":[\".\"],\"presence_penalty\":1,\"frequency_penalty\":1,"
        "\"logit_bias\":{\"1\":-1},\"seed\":123,\"user\":\"u\",\"stream\":true,"
        "\"stream_options\":{\"include_usage\":false},\"top_k\":5,\"min_p\":0.1,"
        "\"repetition_penalty\":1.2,\"repetition_context_size\":32,"
        "\"max_completion_tokens\":null}";
    hl_api_request r;
    hl_api_error e = {0};
    CHECK_EQ_INT(parse(HL_API_COMPLETION, body, &r, &e), 0);
    if (!r.model) {
        fprintf(stderr, "  %s %s: %s\n", e.param, e.code, e.message);
        return;
    }
    CHECK(r.kind == HL_API_COMPLETION);
    CHECK(r.prompt_len == 9 && strcmp(r.prompt, "Once upon") == 0);
    CHECK(r.messages == NULL && r.messages_json == NULL && r.n_messages == 0);
    CHECK(r.echo && r.logprobs && r.top_logprobs == 3);
    CHECK(r.n == 2 && r.max_tokens == 16 && r.n_stop == 1);
    CHECK(r.seed_given && r.sampling.seed == 123);
    CHECK(r.stream && !r.include_usage);
    CHECK(r.sampling.top_k == 5 && r.sampling.repetition_context_size == 32);
    hl_api_request_free(&r);

    CHECK_EQ_INT(parse(HL_API_COMPLETION,
                       "{\"model\":\"m\",\"prompt\":[\"only one\"],\"logprobs\":0}", &r, &e),
                 0);
    if (r.model) {
        CHECK(strcmp(r.prompt, "only one") == 0);
        CHECK(r.logprobs && r.top_logprobs == 0); /* logprobs 0: the chosen token only */
        CHECK(!r.echo && r.max_tokens == -1);
        hl_api_request_free(&r);
    }
    CHECK_EQ_INT(
        parse(HL_API_COMPLETION, "{\"model\":\"m\",\"prompt\":\"\",\"best_of\":1}", &r, &e), 0);
    if (r.model) {
        CHECK(r.prompt && r.prompt_len == 0 && !r.logprobs);
        hl_api_request_free(&r);
    }
}

TEST(api_completion_refusals) {
    EXPECT_ERR(HL_API_COMPLETION, "{\"model\":\"m\"}", 400, "prompt", "missing_required_parameter",
               "'prompt'");
    EXPECT_ERR(HL_API_COMPLETION, "{\"model\":\"m\",\"prompt\":null}", 400, "prompt",
               "missing_required_parameter", "prompt");
    EXPECT_ERR(HL_API_COMPLETION, "{\"model\":\"m\",\"prompt\":[1,2,3]}", 400, "prompt",
               "unsupported_parameter", "token ids");
    EXPECT_ERR(HL_API_COMPLETION, "{\"model\":\"m\",\"prompt\":[[1,2]]}", 400, "prompt",
               "unsupported_parameter", "token ids");
    EXPECT_ERR(HL_API_COMPLETION, "{\"model\":\"m\",\"prompt\":[\"a\",\"b\"]}", 400, "prompt",
               "unsupported_parameter", "one request per prompt");
    EXPECT_ERR(HL_API_COMPLETION, "{\"model\":\"m\",\"prompt\":[]}", 400, "prompt", "empty_array",
               "empty");
    EXPECT_ERR(HL_API_COMPLETION, "{\"model\":\"m\",\"prompt\":5}", 400, "prompt", "invalid_type",
               "expected a string or an array of strings, but got a number");
    TEXT_ERR("\"suffix\":\"end\"", "suffix", "unsupported_parameter", "suffix");
    TEXT_ERR("\"suffix\":1", "suffix", "invalid_type", "string");
    TEXT_ERR("\"best_of\":3", "best_of", "unsupported_parameter", "best_of");
    TEXT_ERR("\"best_of\":0", "best_of", "integer_below_min_value", ">= 1");
    TEXT_ERR("\"logprobs\":true", "logprobs", "invalid_type",
             "expected an integer, but got a boolean");
    TEXT_ERR("\"logprobs\":21", "logprobs", "integer_above_max_value", "<= 20");
    TEXT_ERR("\"logprobs\":-1", "logprobs", "integer_below_min_value", ">= 0");
    TEXT_ERR("\"echo\":\"yes\"", "echo", "invalid_type", "boolean");
    TEXT_ERR("\"temperature\":-0.1", "temperature", "invalid_value", "between 0 and 2");
    TEXT_ERR("\"stream_options\":{\"include_usage\":true}", "stream_options", "",
             "only allowed when 'stream' is enabled");
}

/* ---- refusals shared by both kinds, through chat ---- */

TEST(api_invalid_json) {
    EXPECT_ERR(HL_API_CHAT, "", 400, "", "invalid_json", "ends before");
    EXPECT_ERR(HL_API_CHAT, "   ", 400, "", "invalid_json", "ends before");
    EXPECT_ERR(HL_API_CHAT, "{\"model\":", 400, "", "invalid_json", "ends before");
    EXPECT_ERR(HL_API_CHAT, "{\"model\":\"m\"} x", 400, "", "invalid_json", "byte 14");
    EXPECT_ERR(HL_API_CHAT, "{}{}", 400, "", "invalid_json", "JSON");
    EXPECT_ERR(HL_API_CHAT, "{\"a\":1,}", 400, "", "invalid_json", "JSON");
    EXPECT_ERR(HL_API_CHAT, "{\"a\":tru}", 400, "", "invalid_json", "JSON");
    EXPECT_ERR(HL_API_CHAT, "{\"a\":\"\\x\"}", 400, "", "invalid_json", "JSON");
    EXPECT_ERR(HL_API_CHAT, "/*c*/{}", 400, "", "invalid_json", "JSON");
    EXPECT_ERR(HL_API_CHAT, "{\"a\":\"\xff\"}", 400, "", "invalid_json", "UTF-8 at byte 6");
    EXPECT_ERR(HL_API_CHAT, "{\"a\":\"\xc0\x80\"}", 400, "", "invalid_json", "UTF-8");
    EXPECT_ERR(HL_API_CHAT, "{\"a\":\"\xed\xa0\x80\"}", 400, "", "invalid_json", "UTF-8");
    EXPECT_ERR(HL_API_CHAT, "\xef\xbb\xbf{}", 400, "", "invalid_json", "JSON");
    EXPECT_ERR(HL_API_CHAT, "[1]", 400, "", "invalid_type", "must be a JSON object, not an array");
    EXPECT_ERR(HL_API_CHAT, "null", 400, "", "invalid_type", "not null");
    EXPECT_ERR(HL_API_CHAT, "\"s\"", 400, "", "invalid_type", "not a string");
    EXPECT_ERR(HL_API_CHAT, "12", 400, "", "invalid_type", "not a number");
    EXPECT_ERR(HL_API_CHAT, "nul", 400, "", "invalid_json", "ends before");
    /* a NUL byte ends json-c's parse: the rest is trailing garbage */
    hl_api_request r;
    hl_api_error e = {0};
    const char nul[] = "{\"model\":\"m\"}\0{}";
    CHECK_EQ_INT(hl_api_parse_request(HL_API_CHAT, nul, sizeof nul - 1, &LIM, &r, &e), -1);
    CHECK(strcmp(e.code, "invalid_json") == 0 && e.status == 400);
    /* nesting: 64 levels are fine for json-c, 65 are not */
    char deep[400];
    int k = snprintf(deep, sizeof deep, "{\"model\":\"m\",\"x\":");
    for (int i = 0; i < 70; i++) deep[k++] = '[';
    for (int i = 0; i < 70; i++) deep[k++] = ']';
    snprintf(deep + k, sizeof deep - (size_t)k, "}");
    EXPECT_ERR(HL_API_CHAT, deep, 400, "", "invalid_json", "nesting too deep");
    /* too large for json-c's int length: refused before reading a byte */
    CHECK_EQ_INT(hl_api_parse_request(HL_API_CHAT, "{}", (size_t)INT_MAX + 1, &LIM, &r, &e), -1);
    CHECK_EQ_INT(e.status, 413);
}

TEST(api_model_field) {
    EXPECT_ERR(HL_API_CHAT, "{\"messages\":[{\"role\":\"user\",\"content\":\"x\"}]}", 400, "model",
               "missing_required_parameter", "model");
    EXPECT_ERR(HL_API_CHAT, "{\"model\":\"\",\"messages\":[]}", 400, "model",
               "missing_required_parameter", "model");
    EXPECT_ERR(HL_API_CHAT, "{\"model\":7,\"messages\":[]}", 400, "model", "invalid_type",
               "Invalid type for 'model': expected a string, but got a number instead.");
    EXPECT_ERR(HL_API_CHAT, "{\"model\":\"a\\u0000b\",\"messages\":[]}", 400, "model",
               "invalid_value", "NUL");
}

TEST(api_messages_refusals) {
#define MSG_ERR(msgs, param, code, needle)                                                         \
    EXPECT_ERR(HL_API_CHAT, "{\"model\":\"m\",\"messages\":" msgs "}", 400, param, code, needle)
    EXPECT_ERR(HL_API_CHAT, "{\"model\":\"m\"}", 400, "messages", "missing_required_parameter",
               "Missing required parameter: 'messages'.");
    MSG_ERR("null", "messages", "missing_required_parameter", "messages");
    MSG_ERR("{}", "messages", "invalid_type", "expected an array, but got an object");
    MSG_ERR("[]", "messages", "empty_array", "minimum length 1");
    MSG_ERR("[\"hi\"]", "messages[0]", "invalid_type", "expected an object");
    MSG_ERR("[{\"content\":\"x\"}]", "messages[0].role", "missing_required_parameter", "role");
    MSG_ERR("[{\"role\":1,\"content\":\"x\"}]", "messages[0].role", "invalid_type", "string");
    MSG_ERR("[{\"role\":\"bot\",\"content\":\"x\"}]", "messages[0].role", "invalid_value", "'bot'");
    MSG_ERR("[{\"role\":\"function\",\"content\":\"x\",\"name\":\"f\"}]", "messages[0].role",
            "unsupported_parameter", "function");
    MSG_ERR("[{\"role\":\"user\"}]", "messages[0].content", "missing_required_parameter",
            "content");
    MSG_ERR("[{\"role\":\"system\",\"content\":null}]", "messages[0].content",
            "missing_required_parameter", "content");
    MSG_ERR("[{\"role\":\"user\",\"content\":\"a\"},{\"role\":\"user\",\"content\":5}]",
            "messages[1].content", "invalid_type",
            "expected one of a string or array of objects, but got a number instead");
    MSG_ERR("[{\"role\":\"user\",\"content\":[\"x\"]}]", "messages[0].content[0]", "invalid_type",
            "object");
    MSG_ERR("[{\"role\":\"user\",\"content\":[{\"text\":\"x\"}]}]", "messages[0].content[0].type",
            "missing_required_parameter", "type");
    MSG_ERR("[{\"role\":\"user\",\"content\":[{\"type\":\"text\"}]}]",
            "messages[0].content[0].text", "missing_required_parameter", "text");
    MSG_ERR("[{\"role\":\"user\",\"content\":[{\"type\":\"text\",\"text\":1}]}]",
            "messages[0].content[0].text", "invalid_type", "string");
    MSG_ERR("[{\"role\":\"user\",\"content\":[{\"type\":\"video\"}]}]",
            "messages[0].content[0].type", "invalid_value", "'video'");
    MSG_ERR("[{\"role\":\"user\",\"content\":[{\"type\":\"refusal\",\"refusal\":\"x\"}]}]",
            "messages[0].content[0].type", "invalid_value", "'refusal'");
    MSG_ERR("[{\"role\":\"user\",\"content\":[{\"type\":\"text\",\"text\":\"a\"},{\"type\":"
            "\"image_url\",\"image_url\":{\"url\":\"data:image/png;base64,AAAA\"}}]}]",
            "messages[0].content[1]", "unsupported_parameter",
            "image inputs are not supported yet by this server");
    MSG_ERR("[{\"role\":\"user\",\"content\":[{\"type\":\"input_audio\",\"input_audio\":{}}]}]",
            "messages[0].content[0]", "unsupported_parameter", "audio inputs");
    MSG_ERR("[{\"role\":\"user\",\"content\":[{\"type\":\"file\",\"file\":{}}]}]",
            "messages[0].content[0]", "unsupported_parameter", "file inputs");
    MSG_ERR("[{\"role\":\"assistant\",\"content\":null,\"tool_calls\":[{\"id\":\"c\",\"type\":"
            "\"function\",\"function\":{\"name\":\"f\",\"arguments\":\"{}\"}}]}]",
            "messages[0].tool_calls", "unsupported_parameter", "tool calls");
    MSG_ERR("[{\"role\":\"assistant\",\"content\":\"x\",\"tool_calls\":{}}]",
            "messages[0].tool_calls", "invalid_type", "array");
    MSG_ERR("[{\"role\":\"assistant\",\"function_call\":{\"name\":\"f\"}}]",
            "messages[0].function_call", "unsupported_parameter", "function");
    MSG_ERR("[{\"role\":\"assistant\",\"audio\":{\"id\":\"a\"}}]", "messages[0].audio",
            "unsupported_parameter", "audio");
    MSG_ERR("[{\"role\":\"user\",\"content\":\"x\",\"name\":5}]", "messages[0].name",
            "invalid_type", "string");
    MSG_ERR("[{\"role\":\"user\",\"content\":\"x\",\"name\":\"a\\u0000\"}]", "messages[0].name",
            "invalid_value", "NUL");
    MSG_ERR("[{\"role\":\"tool\",\"content\":\"x\",\"tool_call_id\":5}]",
            "messages[0].tool_call_id", "invalid_type", "string");
    MSG_ERR("[{\"role\":\"tool\"}]", "messages[0].content", "missing_required_parameter",
            "content");
#undef MSG_ERR
    /* 4096 messages are fine, 4097 are not */
    hl_buf b = {0};
    hl_buf_puts(&b, "{\"model\":\"m\",\"messages\":[");
    for (int i = 0; i < HL_API_MAX_MESSAGES + 1; i++)
        hl_buf_puts(&b, i ? ",{\"role\":\"user\",\"content\":\"x\"}"
                          : "{\"role\":\"user\",\"content\":\"x\"}");
    hl_buf_puts(&b, "]}");
    hl_api_request r;
    hl_api_error e = {0};
    CHECK_EQ_INT(hl_api_parse_request(HL_API_CHAT, b.p, b.len, &LIM, &r, &e), -1);
    CHECK(strcmp(e.code, "array_above_max_length") == 0);
    size_t one = strlen(",{\"role\":\"user\",\"content\":\"x\"}");
    memmove(b.p + b.len - 2 - one, b.p + b.len - 2, 3);
    CHECK_EQ_INT(hl_api_parse_request(HL_API_CHAT, b.p, b.len - one, &LIM, &r, &e), 0);
    CHECK_EQ_INT(r.n_messages, HL_API_MAX_MESSAGES);
    hl_api_request_free(&r);
    hl_buf_free(&b);
}

TEST(api_sampling_refusals) {
    CHAT_ERR("\"temperature\":\"0.5\"", "temperature", "invalid_type",
             "Invalid type for 'temperature': expected a number, but got a string instead.");
    CHAT_ERR("\"temperature\":true", "temperature", "invalid_type", "boolean");
    CHAT_ERR("\"temperature\":3", "temperature", "invalid_value", "between 0 and 2");
    CHAT_ERR("\"temperature\":-1", "temperature", "invalid_value", "temperature is -1");
    CHAT_ERR("\"temperature\":NaN", "temperature", "invalid_value", "finite");
    CHAT_ERR("\"temperature\":Infinity", "temperature", "invalid_value", "finite");
    CHAT_ERR("\"temperature\":1e999", "temperature", "invalid_value", "finite");
    CHAT_ERR("\"top_p\":0", "top_p", "invalid_value", "(0, 1]");
    CHAT_ERR("\"top_p\":1.5", "top_p", "invalid_value", "top_p");
    CHAT_ERR("\"min_p\":2", "min_p", "invalid_value", "min_p");
    CHAT_ERR("\"repetition_penalty\":0", "repetition_penalty", "invalid_value", "> 0");
    CHAT_ERR("\"repetition_context_size\":0", "repetition_context_size", "invalid_value",
             "between 1 and 65536");
    CHAT_ERR("\"repetition_context_size\":70000", "repetition_context_size", "invalid_value",
             "65536");
    CHAT_ERR("\"repetition_context_size\":1e10", "repetition_context_size",
             "integer_above_max_value", "<= 2147483647");
    CHAT_ERR("\"top_k\":-1", "top_k", "invalid_value", "top_k");
    CHAT_ERR("\"top_k\":1.5", "top_k", "invalid_type", "expected an integer, but got a number");
    CHAT_ERR("\"presence_penalty\":2.5", "presence_penalty", "invalid_value", "between -2 and 2");
    CHAT_ERR("\"frequency_penalty\":-3", "frequency_penalty", "invalid_value", "-2");
    CHAT_ERR("\"logit_bias\":[]", "logit_bias", "invalid_type", "expected an object");
    CHAT_ERR("\"logit_bias\":{\"abc\":1}", "logit_bias", "invalid_value", "'abc'");
    CHAT_ERR("\"logit_bias\":{\"-1\":1}", "logit_bias", "invalid_value", "non-negative");
    CHAT_ERR("\"logit_bias\":{\"\":1}", "logit_bias", "invalid_value", "token ids");
    CHAT_ERR("\"logit_bias\":{\"1 \":1}", "logit_bias", "invalid_value", "token ids");
    CHAT_ERR("\"logit_bias\":{\"99999999999\":1}", "logit_bias", "invalid_value", "token ids");
    CHAT_ERR("\"logit_bias\":{\"2147483647\":1}", "logit_bias", "invalid_value", "out of range");
    CHAT_ERR("\"logit_bias\":{\"5\":\"1\"}", "logit_bias", "invalid_type", "numbers");
    CHAT_ERR("\"logit_bias\":{\"5\":101}", "logit_bias", "invalid_value", "between -100 and 100");
    CHAT_ERR("\"logit_bias\":{\"5\":NaN}", "logit_bias", "invalid_value", "-100");
    CHAT_ERR("\"seed\":\"1\"", "seed", "invalid_type", "integer");
    CHAT_ERR("\"seed\":1.5", "seed", "invalid_type", "integer");
    CHAT_ERR("\"seed\":9223372036854775808", "seed", "integer_above_max_value",
             "9223372036854775808");
    CHAT_ERR("\"user\":5", "user", "invalid_type", "string");
}

TEST(api_length_and_stream_refusals) {
    CHAT_ERR("\"n\":0", "n", "integer_below_min_value",
             "Invalid 'n': integer below minimum value. Expected a value >= 1, but got 0 instead.");
    CHAT_ERR("\"n\":5", "n", "integer_above_max_value", "Expected a value <= 4, but got 5");
    CHAT_ERR("\"n\":\"2\"", "n", "invalid_type", "integer");
    CHAT_ERR("\"max_tokens\":0", "max_tokens", "integer_below_min_value", ">= 1");
    CHAT_ERR("\"max_tokens\":4097", "max_tokens", "integer_above_max_value", "<= 4096");
    CHAT_ERR("\"max_completion_tokens\":-5", "max_completion_tokens", "integer_below_min_value",
             "-5");
    CHAT_ERR("\"max_tokens\":10,\"max_completion_tokens\":99999", "max_completion_tokens",
             "integer_above_max_value", "4096");
    CHAT_ERR("\"stop\":\"\"", "stop", "invalid_value", "empty");
    CHAT_ERR("\"stop\":[\"a\",\"\"]", "stop", "invalid_value", "stop string 1 is empty");
    CHAT_ERR("\"stop\":[\"a\",1]", "stop[1]", "invalid_type", "string");
    CHAT_ERR("\"stop\":5", "stop", "invalid_type", "a string or an array of strings");
    CHAT_ERR("\"stop\":[\"1\",\"2\",\"3\",\"4\",\"5\",\"6\",\"7\",\"8\",\"9\",\"10\",\"11\",\"12\","
             "\"13\",\"14\",\"15\",\"16\",\"17\"]",
             "stop", "array_above_max_length", "maximum length 16");
    char longstop[400];
    int k = snprintf(
        longstop, sizeof longstop,
        "{\"model\":\"m\",\"messages\":[{\"role\":\"user\",\"content\":\"x\"}],\"stop\":\"");
    for (int i = 0; i < 257; i++) longstop[k++] = 'a';
    snprintf(longstop + k, sizeof longstop - (size_t)k, "\"}");
    EXPECT_ERR(HL_API_CHAT, longstop, 400, "stop", "invalid_value", "257 bytes; at most 256");
    hl_api_request r;
    if (chat_ok(
            "\"stop\":"
            "\"aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa"
            "aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa"
            "aa"
            "aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa"
            "\"",
            &r)) { /* 256 bytes */
        CHECK_EQ_INT(r.stop_len[0], 256);
        hl_api_request_free(&r);
    } else {
        CHECK(0);
    }
    CHAT_ERR("\"stream\":\"true\"", "stream", "invalid_type", "boolean");
    CHAT_ERR("\"stream_options\":{\"include_usage\":true}", "stream_options", "",
             "The 'stream_options' parameter is only allowed when 'stream' is enabled.");
    CHAT_ERR("\"stream\":false,\"stream_options\":{}", "stream_options", "", "stream");
    CHAT_ERR("\"stream\":true,\"stream_options\":[]", "stream_options", "invalid_type", "object");
    CHAT_ERR("\"stream\":true,\"stream_options\":{\"include_usage\":1}",
             "stream_options.include_usage", "invalid_type", "boolean");
    CHAT_ERR("\"logprobs\":1", "logprobs", "invalid_type", "boolean");
    CHAT_ERR("\"top_logprobs\":2", "top_logprobs", "invalid_value", "requires 'logprobs'");
    CHAT_ERR("\"logprobs\":false,\"top_logprobs\":2", "top_logprobs", "invalid_value", "logprobs");
    CHAT_ERR("\"logprobs\":true,\"top_logprobs\":21", "top_logprobs", "integer_above_max_value",
             "<= 20");
    CHAT_ERR("\"logprobs\":true,\"top_logprobs\":-1", "top_logprobs", "integer_below_min_value",
             ">= 0");
}

TEST(api_unsupported_features) {
    const char *tool = "{\"type\":\"function\",\"function\":{\"name\":\"f\",\"parameters\":{}}}";
    char buf[256];
    snprintf(buf, sizeof buf,
             "{\"model\":\"m\",\"messages\":[{\"role\":\"user\",\"content\":\"x\"}],"
             "\"tools\":[%s]}",
             tool);
    EXPECT_ERR(HL_API_CHAT, buf, 400, "tools", "unsupported_parameter", "not supported");
    CHAT_ERR("\"tools\":{}", "tools", "invalid_type", "array");
    CHAT_ERR("\"tool_choice\":\"auto\"", "tool_choice", "unsupported_parameter", "\"none\"");
    CHAT_ERR("\"tool_choice\":\"required\"", "tool_choice", "unsupported_parameter", "function");
    CHAT_ERR("\"tool_choice\":{\"type\":\"function\",\"function\":{\"name\":\"f\"}}", "tool_choice",
             "unsupported_parameter", "function");
    CHAT_ERR("\"functions\":[{\"name\":\"f\"}]", "functions", "unsupported_parameter", "function");
    CHAT_ERR("\"function_call\":\"auto\"", "function_call", "unsupported_parameter", "function");
    CHAT_ERR("\"parallel_tool_calls\":\"yes\"", "parallel_tool_calls", "invalid_type", "boolean");
    CHAT_ERR("\"response_format\":{\"type\":\"json_object\"}", "response_format",
             "unsupported_parameter", "JSON mode");
    CHAT_ERR("\"response_format\":{\"type\":\"json_schema\",\"json_schema\":{\"name\":\"x\","
             "\"schema\":{\"type\":\"object\"}}}",
             "response_format", "unsupported_parameter", "structured outputs");
    CHAT_ERR("\"response_format\":{\"type\":\"xml\"}", "response_format.type", "invalid_value",
             "'xml'");
    CHAT_ERR("\"response_format\":{}", "response_format.type", "missing_required_parameter",
             "type");
    CHAT_ERR("\"response_format\":\"text\"", "response_format", "invalid_type", "object");
    CHAT_ERR("\"audio\":{\"voice\":\"alloy\",\"format\":\"wav\"}", "audio", "unsupported_parameter",
             "audio");
    CHAT_ERR("\"modalities\":[\"text\",\"audio\"]", "modalities", "unsupported_parameter", "audio");
    CHAT_ERR("\"modalities\":[\"video\"]", "modalities", "invalid_value", "video");
    CHAT_ERR("\"modalities\":\"text\"", "modalities", "invalid_type", "array");
    CHAT_ERR("\"prediction\":{\"type\":\"content\",\"content\":\"x\"}", "prediction",
             "unsupported_parameter", "predicted");
    CHAT_ERR("\"web_search_options\":{}", "web_search_options", "unsupported_parameter", "web");
    CHAT_ERR("\"reasoning_effort\":\"low\"", "reasoning_effort", "unsupported_parameter",
             "Unsupported parameter: 'reasoning_effort'");
    CHAT_ERR("\"verbosity\":\"low\"", "verbosity", "unsupported_parameter", "verbosity");
    CHAT_ERR("\"moderation\":{\"model\":\"x\"}", "moderation", "unsupported_parameter",
             "moderation");
    CHAT_ERR("\"store\":\"yes\"", "store", "invalid_type", "boolean");
    CHAT_ERR("\"metadata\":[]", "metadata", "invalid_type", "object");
    CHAT_ERR("\"service_tier\":1", "service_tier", "invalid_type", "string");
    /* accepted: what the SDK sends for "no tools", and the ignored fields */
    hl_api_request r;
    if (chat_ok("\"tools\":[],\"functions\":[],\"tool_choice\":\"none\",\"function_call\":\"none\","
                "\"store\":true,\"metadata\":{},\"service_tier\":\"flex\","
                "\"prompt_cache_retention\":\"24h\",\"modalities\":[]",
                &r))
        hl_api_request_free(&r);
    else
        CHECK(0);
    /* completions ignore the chat-only fields */
    EXPECT_ERR(HL_API_COMPLETION, "{\"model\":\"m\",\"prompt\":\"x\",\"tools\":[{}],\"n\":9}", 400,
               "n", "integer_above_max_value", "<= 4");
}

TEST(api_limits_null_and_out_of_range) {
    hl_api_request r;
    hl_api_error e = {0};
    const char *body = "{\"model\":\"m\",\"prompt\":\"x\",\"n\":16,\"max_tokens\":1000000}";
    CHECK_EQ_INT(hl_api_parse_request(HL_API_COMPLETION, body, strlen(body), NULL, &r, &e), 0);
    if (r.model) {
        CHECK(r.n == 16 && r.max_tokens == 1000000);
        hl_api_request_free(&r);
    }
    hl_api_limits odd = {.max_n = 1000, .max_tokens = 0};
    body = "{\"model\":\"m\",\"prompt\":\"x\",\"n\":17}";
    CHECK_EQ_INT(hl_api_parse_request(HL_API_COMPLETION, body, strlen(body), &odd, &r, &e), -1);
    CHECK_STR_CONTAINS(e.message, "<= 16");
}

TEST(api_errorf) {
    hl_api_error e;
    memset(&e, 0x55, sizeof e);
    CHECK_EQ_INT(hl_api_errorf(&e, 404, "invalid_request_error", NULL, "model_not_found",
                               "The model '%s' does not exist", "x"),
                 -1);
    CHECK(e.status == 404 && strcmp(e.param, "") == 0 && strcmp(e.code, "model_not_found") == 0);
    CHECK(strcmp(e.message, "The model 'x' does not exist") == 0);
    char longp[300];
    memset(longp, 'p', sizeof longp - 1);
    longp[sizeof longp - 1] = 0;
    hl_api_errorf(&e, 400, NULL, longp, NULL, "%s%s", longp, longp);
    CHECK(strcmp(e.type, "invalid_request_error") == 0 && e.code[0] == 0);
    CHECK_EQ_INT(strlen(e.param), sizeof e.param - 1);
    CHECK_EQ_INT(strlen(e.message), sizeof e.message - 1);
    CHECK_EQ_INT(hl_api_errorf(NULL, 500, NULL, NULL, NULL, "x"), -1);
}

/* ---- writers ---- */

/* Parses b's JSON (an SSE "data: " prefix and "\n\n" suffix stripped). */
static json_object *reparse(const hl_buf *b, bool sse) {
    const char *p = b->p;
    size_t n = b->len;
    if (sse) {
        if (n < 8 || memcmp(p, "data: ", 6) || memcmp(p + n - 2, "\n\n", 2)) return NULL;
        p += 6, n -= 8;
        if (memchr(p, '\n', n)) return NULL; /* one line per event */
    }
    json_tokener *t = json_tokener_new();
    json_tokener_set_flags(t, JSON_TOKENER_STRICT);
    json_object *o = json_tokener_parse_ex(t, p, (int)n);
    if (json_tokener_get_error(t) != json_tokener_success || json_tokener_get_parse_end(t) != n) {
        json_object_put(o);
        o = NULL;
    }
    json_tokener_free(t);
    return o;
}

/* The value at a path like "choices.0.delta.content" (numbers index arrays). */
static json_object *at(json_object *o, const char *path) {
    char key[64];
    while (o && *path) {
        size_t k = strcspn(path, ".");
        snprintf(key, sizeof key, "%.*s", (int)k, path);
        if (json_object_is_type(o, json_type_array))
            o = json_object_array_get_idx(o, (size_t)atoi(key));
        else if (!json_object_object_get_ex(o, key, &o))
            return NULL;
        path += k + (path[k] == '.');
    }
    return o;
}

static const char *str_at(json_object *o, const char *path) {
    json_object *v = at(o, path);
    return json_object_is_type(v, json_type_string) ? json_object_get_string(v) : "<none>";
}

/* Whether path is present with the value null (absent is not null). */
static bool null_at(json_object *o, const char *path) {
    const char *dot = strrchr(path, '.');
    json_object *parent = o, *v = NULL;
    if (dot) {
        char head[64];
        snprintf(head, sizeof head, "%.*s", (int)(dot - path), path);
        parent = at(o, head);
    }
    return json_object_is_type(parent, json_type_object) &&
           json_object_object_get_ex(parent, dot ? dot + 1 : path, &v) && v == NULL;
}

static const hl_api_head CHAT_HEAD = {HL_API_CHAT, "chatcmpl-abc", 1700000000, "qwen", "fp_1"};
static const hl_api_head TEXT_HEAD = {HL_API_COMPLETION, "cmpl-abc", 1700000000, "qwen", NULL};

static hl_api_logprob sample_logprobs[2];

static void fill_logprobs(void) {
    hl_api_logprob *lp = sample_logprobs;
    memset(lp, 0, sizeof sample_logprobs);
    lp[0] = (hl_api_logprob){
        .tok = "Hi", .tok_len = 2, .logprob = -0.25f, .n_top = 2, .text_offset = 0};
    lp[0].top[0] = (hl_api_top){"Hi", 2, -0.25f};
    lp[0].top[1] = (hl_api_top){"\"Hey\"", 5, -1.5f};
    lp[1] = (hl_api_logprob){
        .tok = "\xe2\x82", .tok_len = 2, .logprob = -INFINITY, .n_top = 1, .text_offset = 2};
    lp[1].top[0] = (hl_api_top){"\n", 1, NAN};
}

TEST(api_write_error) {
    hl_api_error e;
    hl_api_errorf(&e, 400, "invalid_request_error", "messages[0].content", "invalid_type",
                  "Bad \"quote\"\n");
    hl_buf b = {0};
    hl_api_write_error(&b, &e);
    json_object *o = reparse(&b, false);
    CHECK(o != NULL);
    CHECK(strcmp(str_at(o, "error.message"), "Bad \"quote\"\n") == 0);
    CHECK(strcmp(str_at(o, "error.type"), "invalid_request_error") == 0);
    CHECK(strcmp(str_at(o, "error.param"), "messages[0].content") == 0);
    CHECK(strcmp(str_at(o, "error.code"), "invalid_type") == 0);
    CHECK_EQ_INT(json_object_object_length(o), 1);
    CHECK_EQ_INT(json_object_object_length(at(o, "error")), 4);
    json_object_put(o);
    hl_api_errorf(&e, 500, "server_error", NULL, NULL, "boom");
    hl_buf_reset(&b);
    hl_api_write_error(&b, &e);
    CHECK(strcmp(b.p, "{\"error\":{\"message\":\"boom\",\"type\":\"server_error\",\"param\":null,"
                      "\"code\":null}}") == 0);
    hl_buf_reset(&b);
    hl_api_write_error_event(&b, &e);
    o = reparse(&b, true);
    CHECK(o && null_at(o, "error.param") && null_at(o, "error.code"));
    json_object_put(o);
    hl_buf_reset(&b);
    hl_api_write_done(&b);
    CHECK(strcmp(b.p, "data: [DONE]\n\n") == 0);
    hl_buf_free(&b);
}

TEST(api_write_chat_response) {
    fill_logprobs();
    hl_api_choice c[2] = {
        {.index = 0,
         .text = "Hi\xe2\x82",
         .text_len = 4,
         .finish_reason = "length",
         .logprobs = sample_logprobs,
         .n_logprobs = 2},
        {.index = 1, .text = "a\tb", .text_len = 3, .finish_reason = "stop"},
    };
    hl_api_usage u = {.prompt_tokens = 10, .completion_tokens = 5};
    hl_buf b = {0};
    hl_api_write_response(&b, &CHAT_HEAD, c, 2, &u);
    json_object *o = reparse(&b, false);
    CHECK(o != NULL);
    if (!o) {
        fprintf(stderr, "  %s\n", b.p);
        return;
    }
    CHECK(strcmp(str_at(o, "object"), "chat.completion") == 0);
    CHECK(strcmp(str_at(o, "id"), "chatcmpl-abc") == 0);
    CHECK(json_object_get_int64(at(o, "created")) == 1700000000);
    CHECK(strcmp(str_at(o, "model"), "qwen") == 0);
    CHECK(strcmp(str_at(o, "system_fingerprint"), "fp_1") == 0);
    CHECK(strcmp(str_at(o, "choices.0.message.role"), "assistant") == 0);
    CHECK(strcmp(str_at(o, "choices.0.message.content"), "Hi\xef\xbf\xbd\xef\xbf\xbd") == 0);
    CHECK(null_at(o, "choices.0.message.refusal"));
    CHECK(strcmp(str_at(o, "choices.0.finish_reason"), "length") == 0);
    CHECK(strcmp(str_at(o, "choices.1.message.content"), "a\tb") == 0);
    CHECK(null_at(o, "choices.1.logprobs"));
    CHECK_EQ_INT(json_object_get_int(at(o, "choices.1.index")), 1);
    CHECK(strcmp(str_at(o, "choices.0.logprobs.content.0.token"), "Hi") == 0);
    CHECK_NEAR(json_object_get_double(at(o, "choices.0.logprobs.content.0.logprob")), -0.25, 0);
    CHECK_EQ_INT(json_object_array_length(at(o, "choices.0.logprobs.content.0.bytes")), 2);
    CHECK_EQ_INT(json_object_get_int(at(o, "choices.0.logprobs.content.0.bytes.1")), 'i');
    CHECK(strcmp(str_at(o, "choices.0.logprobs.content.0.top_logprobs.1.token"), "\"Hey\"") == 0);
    CHECK_NEAR(json_object_get_double(at(o, "choices.0.logprobs.content.0.top_logprobs.1.logprob")),
               -1.5, 0);
    CHECK(null_at(o, "choices.0.logprobs.refusal"));
    /* a partial UTF-8 token: U+FFFD in the text, the real bytes in "bytes" */
    CHECK(strcmp(str_at(o, "choices.0.logprobs.content.1.token"), "\xef\xbf\xbd\xef\xbf\xbd") == 0);
    CHECK_EQ_INT(json_object_get_int(at(o, "choices.0.logprobs.content.1.bytes.0")), 0xe2);
    CHECK_EQ_INT(json_object_get_int(at(o, "choices.0.logprobs.content.1.bytes.1")), 0x82);
    CHECK_NEAR(json_object_get_double(at(o, "choices.0.logprobs.content.1.logprob")), -9999.0, 0);
    CHECK_NEAR(json_object_get_double(at(o, "choices.0.logprobs.content.1.top_logprobs.0.logprob")),
               -9999.0, 0);
    CHECK_EQ_INT(json_object_get_int(at(o, "usage.prompt_tokens")), 10);
    CHECK_EQ_INT(json_object_get_int(at(o, "usage.completion_tokens")), 5);
    CHECK_EQ_INT(json_object_get_int(at(o, "usage.total_tokens")), 15);
    CHECK(strstr(b.p, "-0.25,") != NULL); /* floats in their shortest form */
    json_object_put(o);
    hl_buf_free(&b);
}

TEST(api_write_completion_response) {
    fill_logprobs();
    hl_api_choice c = {.index = 0,
                       .text = "Hi\xe2\x82",
                       .text_len = 4,
                       .finish_reason = "stop",
                       .logprobs = sample_logprobs,
                       .n_logprobs = 2};
    hl_api_usage u = {.prompt_tokens = 3, .completion_tokens = 2};
    hl_buf b = {0};
    hl_api_write_response(&b, &TEXT_HEAD, &c, 1, &u);
    json_object *o = reparse(&b, false);
    CHECK(o != NULL);
    if (!o) return;
    CHECK(strcmp(str_at(o, "object"), "text_completion") == 0);
    CHECK(at(o, "system_fingerprint") == NULL && !null_at(o, "system_fingerprint")); /* omitted */
    CHECK(strcmp(str_at(o, "choices.0.text"), "Hi\xef\xbf\xbd\xef\xbf\xbd") == 0);
    CHECK(strcmp(str_at(o, "choices.0.logprobs.tokens.0"), "Hi") == 0);
    CHECK_NEAR(json_object_get_double(at(o, "choices.0.logprobs.token_logprobs.0")), -0.25, 0);
    CHECK_NEAR(json_object_get_double(at(o, "choices.0.logprobs.token_logprobs.1")), -9999.0, 0);
    CHECK_NEAR(json_object_get_double(at(o, "choices.0.logprobs.top_logprobs.0.\"Hey\"")), -1.5, 0);
    CHECK_NEAR(json_object_get_double(at(o, "choices.0.logprobs.top_logprobs.1.\n")), -9999.0, 0);
    CHECK_EQ_INT(json_object_get_int(at(o, "choices.0.logprobs.text_offset.1")), 2);
    CHECK_EQ_INT(json_object_get_int(at(o, "usage.total_tokens")), 5);
    json_object_put(o);
    hl_buf_free(&b);
}

TEST(api_write_chunks) {
    fill_logprobs();
    hl_buf b = {0};
    hl_api_delta d = {.index = 2, .role_first = true, .text = "ignored", .text_len = 7};
    hl_api_write_chunk(&b, &CHAT_HEAD, &d, true);
    json_object *o = reparse(&b, true);
    CHECK(o != NULL);
    CHECK(strcmp(str_at(o, "object"), "chat.completion.chunk") == 0);
    CHECK_EQ_INT(json_object_get_int(at(o, "choices.0.index")), 2);
    CHECK(strcmp(str_at(o, "choices.0.delta.role"), "assistant") == 0);
    CHECK(strcmp(str_at(o, "choices.0.delta.content"), "") == 0);
    CHECK(null_at(o, "choices.0.finish_reason") && null_at(o, "choices.0.logprobs"));
    CHECK(null_at(o, "usage"));
    json_object_put(o);

    hl_buf_reset(&b);
    d = (hl_api_delta){
        .index = 0, .text = "Hi", .text_len = 2, .logprobs = sample_logprobs, .n_logprobs = 1};
    hl_api_write_chunk(&b, &CHAT_HEAD, &d, false);
    o = reparse(&b, true);
    CHECK(o && strcmp(str_at(o, "choices.0.delta.content"), "Hi") == 0);
    CHECK(at(o, "choices.0.delta.role") == NULL);
    CHECK(strcmp(str_at(o, "choices.0.logprobs.content.0.token"), "Hi") == 0);
    CHECK(at(o, "usage") == NULL && !null_at(o, "usage")); /* absent without include_usage */
    json_object_put(o);

    hl_buf_reset(&b);
    d = (hl_api_delta){.index = 0, .finish_reason = "stop", .logprobs = sample_logprobs};
    hl_api_write_chunk(&b, &CHAT_HEAD, &d, false);
    o = reparse(&b, true);
    CHECK(o && json_object_object_length(at(o, "choices.0.delta")) == 0); /* delta {} */
    CHECK(strcmp(str_at(o, "choices.0.finish_reason"), "stop") == 0);
    CHECK_EQ_INT(json_object_array_length(at(o, "choices.0.logprobs.content")), 0);
    json_object_put(o);

    hl_buf_reset(&b);
    d = (hl_api_delta){.index = 1, .role_first = true, .text = "Hi", .text_len = 2};
    hl_api_write_chunk(&b, &TEXT_HEAD, &d, true);
    o = reparse(&b, true);
    CHECK(o && strcmp(str_at(o, "object"), "text_completion") == 0);
    CHECK(strcmp(str_at(o, "choices.0.text"), "Hi") == 0); /* role_first means nothing here */
    CHECK(at(o, "choices.0.delta") == NULL && null_at(o, "usage"));
    json_object_put(o);

    hl_buf_reset(&b);
    d = (hl_api_delta){.index = 0,
                       .text = "",
                       .finish_reason = "length",
                       .logprobs = sample_logprobs,
                       .n_logprobs = 2};
    hl_api_write_chunk(&b, &TEXT_HEAD, &d, false);
    o = reparse(&b, true);
    CHECK(o && strcmp(str_at(o, "choices.0.text"), "") == 0);
    CHECK(strcmp(str_at(o, "choices.0.finish_reason"), "length") == 0);
    CHECK_EQ_INT(json_object_array_length(at(o, "choices.0.logprobs.tokens")), 2);
    json_object_put(o);

    hl_buf_reset(&b);
    hl_api_usage u = {.prompt_tokens = 7, .completion_tokens = 9};
    hl_api_write_usage_chunk(&b, &CHAT_HEAD, &u);
    o = reparse(&b, true);
    CHECK(o && json_object_array_length(at(o, "choices")) == 0);
    CHECK(json_object_is_type(at(o, "choices"), json_type_array));
    CHECK_EQ_INT(json_object_get_int(at(o, "usage.total_tokens")), 16);
    CHECK(strcmp(str_at(o, "object"), "chat.completion.chunk") == 0);
    json_object_put(o);
    hl_buf_free(&b);
}

TEST(api_write_models) {
    hl_api_model_entry m[2] = {{"qwen2.5-coder-1.5b", 1700000000, "heylook", "loaded"},
                               {"smol\"lm", 0, "user", NULL}};
    hl_buf b = {0};
    hl_api_write_models(&b, m, 2);
    json_object *o = reparse(&b, false);
    CHECK(o && strcmp(str_at(o, "object"), "list") == 0);
    CHECK_EQ_INT(json_object_array_length(at(o, "data")), 2);
    CHECK(strcmp(str_at(o, "data.1.id"), "smol\"lm") == 0);
    CHECK(strcmp(str_at(o, "data.0.object"), "model") == 0);
    CHECK(strcmp(str_at(o, "data.0.owned_by"), "heylook") == 0);
    CHECK(json_object_get_int64(at(o, "data.0.created")) == 1700000000);
    CHECK(strcmp(str_at(o, "data.0.status"), "loaded") == 0);
    CHECK(at(o, "data.1.status") == NULL); /* omitted when NULL */
    json_object_put(o);
    hl_buf_reset(&b);
    hl_api_write_model(&b, &m[1]);
    CHECK(strcmp(b.p, "{\"id\":\"smol\\\"lm\",\"object\":\"model\",\"created\":0,\"owned_by\":\"user\"}") == 0);
    hl_buf_reset(&b);
    hl_api_write_models(&b, NULL, 0);
    CHECK(strcmp(b.p, "{\"object\":\"list\",\"data\":[]}") == 0);
    hl_buf_free(&b);
}

/* One sample of every writer's output, for tests/cli/test_api_shapes.py. */
static void save(const char *dir, const char *name, const hl_buf *b) {
    char path[512];
    snprintf(path, sizeof path, "%s/%s", dir, name);
    FILE *f = fopen(path, "wb");
    CHECK(f != NULL);
    if (!f) return;
    CHECK(fwrite(b->p, 1, b->len, f) == b->len);
    fclose(f);
}

TEST(api_write_shapes) {
    const char *dir = getenv("HL_API_SHAPES_DIR");
    if (!dir) return;
    fill_logprobs();
    hl_buf b = {0};
    hl_api_usage u = {.prompt_tokens = 3, .completion_tokens = 2};
    hl_api_choice c[2] = {{.index = 0,
                           .text = "Hi\xe2\x82",
                           .text_len = 4,
                           .finish_reason = "length",
                           .logprobs = sample_logprobs,
                           .n_logprobs = 2},
                          {.index = 1, .text = "", .text_len = 0, .finish_reason = "stop"}};
    for (int k = 0; k < 2; k++) {
        const hl_api_head *h = k ? &TEXT_HEAD : &CHAT_HEAD;
        const char *pre = k ? "text" : "chat";
        char name[64];
        hl_buf_reset(&b);
        hl_api_write_response(&b, h, c, 2, &u);
        snprintf(name, sizeof name, "%s_response.json", pre);
        save(dir, name, &b);
        hl_api_delta d[4] = {
            {.index = 0, .role_first = true},
            {.index = 0, .text = "Hi", .text_len = 2, .logprobs = sample_logprobs, .n_logprobs = 2},
            {.index = 1, .text = "x", .text_len = 1},
            {.index = 0, .finish_reason = "stop", .logprobs = sample_logprobs},
        };
        for (int i = 0; i < 4; i++) {
            hl_buf_reset(&b);
            hl_api_write_chunk(&b, h, &d[i], i & 1);
            snprintf(name, sizeof name, "%s_chunk%d.sse", pre, i);
            save(dir, name, &b);
        }
        hl_buf_reset(&b);
        hl_api_write_usage_chunk(&b, h, &u);
        snprintf(name, sizeof name, "%s_usage.sse", pre);
        save(dir, name, &b);
    }
    hl_api_model_entry m = {"qwen", 1700000000, "heylook", "loaded"};
    hl_buf_reset(&b);
    hl_api_write_models(&b, &m, 1);
    save(dir, "models.json", &b);
    hl_api_error e;
    hl_api_errorf(&e, 400, NULL, "temperature", "invalid_value", "temperature is 3");
    hl_buf_reset(&b);
    hl_api_write_error(&b, &e);
    save(dir, "error.json", &b);
    hl_buf_free(&b);
}
