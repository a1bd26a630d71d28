/* template.h - a Jinja2-compatible template engine for the chat templates
 * GGUF files carry (tokenizer.chat_template), rendering byte for byte what
 * Hugging Face's apply_chat_template renders with Python's jinja2.
 *
 *   hl_template *t; hl_buf out = {0};
 *   if (hl_template_parse(&t, src, len, &e) < 0) ...;   // e names the line
 *   hl_template_vars v = {.messages_json = "[{\"role\":\"user\",\"content\":\"Hi\"}]",
 *                         .add_generation_prompt = true, .bos_token = "<s>"};
 *   if (hl_template_render(t, &v, &out, &e) < 0) ...;
 *
 * Contract. hl_template_parse compiles untrusted template text once; the
 * result is read-only and may be rendered by any number of threads at once.
 * hl_template_render keeps all its state in the call, appends the rendered
 * text to out, and on failure leaves out as it was. The environment is the
 * one transformers builds: jinja2's ImmutableSandboxedEnvironment with
 * trim_blocks and lstrip_blocks on, the loopcontrols extension ({% break %},
 * {% continue %}) and HF's {% generation %} tag (renders its body); HF's
 * globals raise_exception(msg) and strftime_now(fmt) (local time; the
 * environment variable HL_TEMPLATE_NOW=<unix seconds> fixes it, for tests);
 * and tojson as HF defines it (json.dumps: ensure_ascii off, insertion
 * order, Python's separators, indent/separators/sort_keys passed through).
 * The sandbox is immutable: list.append, dict.update and the like fail when
 * called. Rendering is bounded: output size, memory, loop iterations, work
 * on large values and nesting depth have limits (template_internal.h), and
 * passing one is an error, never a hang; it needs about 512 KiB of stack.
 * Known differences from Python: integers are 64-bit (overflow is an error),
 * case mapping is exact for Latin, Greek, Cyrillic and Armenian only, and
 * generators (map, select ...) print with a made-up address.
 */
#ifndef HL_TEMPLATE_H
#define HL_TEMPLATE_H

#include <stdbool.h>
#include <stddef.h>

#include "../util/buf.h"
#include "../util/err.h"

typedef struct hl_template hl_template;

/* Returns 0, or -1 with a message naming the line (and column) of the
 * syntax error. src need not be NUL-terminated and may be freed after. */
int hl_template_parse(hl_template **out, const char *src, size_t len, hl_err *e);
void hl_template_free(hl_template *t);

/* The template's variables, as transformers passes them: messages,
 * tools = None, documents = None, add_generation_prompt, bos_token,
 * eos_token, then the keys of extra_json, which override any of these. */
typedef struct hl_template_vars {
    const char *messages_json; /* a JSON array of message objects (required) */
    bool add_generation_prompt;
    const char *bos_token;  /* NULL = "" */
    const char *eos_token;  /* NULL = "" */
    const char *extra_json; /* NULL, or a JSON object whose keys become more variables
                               (tools, documents, enable_thinking, custom keys) */
} hl_template_vars;

/* Return values of hl_template_render besides 0. The template failed (type
 * error, a limit...): the message names the template line. */
#define HL_TEMPLATE_ERROR (-1)
/* The template called raise_exception: the message is its text (the
 * conversation is not one the template accepts). */
#define HL_TEMPLATE_RAISED (-2)

int hl_template_render(const hl_template *t, const hl_template_vars *v, hl_buf *out, hl_err *e);

#endif
