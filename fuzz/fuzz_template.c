/* fuzz_template.c - libFuzzer target: parses arbitrary bytes as a chat
 * template and renders it over a fixed small conversation (with tools and
 * an extra variable), so every path of the lexer, parser and evaluator
 * meets hostile input. Must never crash, leak or hang: every limit in
 * template_internal.h (output, memory, iterations, work, nesting) has to
 * turn a runaway template into an error.
 *
 *   make fuzz && build-fuzz/fuzz_template fuzz/corpus/template
 */
#include <stdint.h>
#include <stdlib.h>

#include "../src/engine/template.h"

static const char MESSAGES[] =
    "[{\"role\":\"system\",\"content\":\"Be brief.\"},"
    "{\"role\":\"user\",\"content\":\"Hi \\u00e9\\ud83d\\ude00 <b>&\"},"
    "{\"role\":\"assistant\",\"content\":null,\"tool_calls\":[{\"id\":\"c1\",\"type\":\"function\","
    "\"function\":{\"name\":\"get\",\"arguments\":{\"city\":\"Paris\",\"n\":[1,2.5,true]}}}]},"
    "{\"role\":\"tool\",\"content\":\"{\\\"t\\\": 21}\"},"
    "{\"role\":\"user\",\"content\":[{\"type\":\"text\",\"text\":\"again\"}]}]";

static const char EXTRA[] =
    "{\"tools\":[{\"type\":\"function\",\"function\":{\"name\":\"get\",\"description\":\"Weather\","
    "\"parameters\":{\"type\":\"object\",\"properties\":{\"city\":{\"type\":\"string\"}},"
    "\"required\":[\"city\"]}}}],\"enable_thinking\":false,\"n\":3}";

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    hl_template *t = NULL;
    hl_err e = {{0}};
    if (hl_template_parse(&t, (const char *)data, size, &e) < 0) return 0;
    hl_template_vars v = {.messages_json = MESSAGES,
                          .add_generation_prompt = size & 1,
                          .bos_token = "<s>",
                          .eos_token = "</s>",
                          .extra_json = EXTRA};
    hl_buf out = {0};
    int rc = hl_template_render(t, &v, &out, &e);
    if (rc < 0 && out.len) abort(); /* a failed render leaves the output as it was */
    hl_buf_free(&out);
    hl_template_free(t);
    return 0;
}
