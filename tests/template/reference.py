#!/usr/bin/env python3
"""reference.py - renders a chat template the way Hugging Face transformers'
apply_chat_template does, with Python's jinja2: the reference that heylook's
own template engine (src/engine/template.h) must match byte for byte.

    python tests/template/reference.py --template T.jinja|M.gguf --messages M.json \
        [--add-generation-prompt] [--bos-token S] [--eos-token S] [--extra X.json]

Contract. Same command line, output and exit status as `heylookllm template`:
the rendered text exactly on stdout (no newline added); exit 0, 1 when the
template failed (syntax error, type error, undefined attribute, sandbox),
3 when it called raise_exception (its message on stderr), 2 on bad usage.
The environment is the one transformers builds (its _compile_jinja_template):
ImmutableSandboxedEnvironment(trim_blocks=True, lstrip_blocks=True) with
jinja2.ext.loopcontrols and a {% generation %}...{% endgeneration %} tag that
renders its body unchanged; the tojson filter is json.dumps with
ensure_ascii=False, insertion order, Python's default separators (the
indent/separators/sort_keys arguments passed through); the globals are
raise_exception(msg) and strftime_now(fmt), local time, fixed by the
environment variable HL_TEMPLATE_NOW=<unix seconds> when set. The variables
are the ones transformers passes: messages, tools=None, documents=None,
add_generation_prompt, bos_token and eos_token (here always defined, "" when
not given, as heylook defines them), then the keys of the extra object, which
override any of these. Needs only jinja2 (>= 3.1, as transformers requires)
and, for .gguf templates, the gguf package. Not thread-safe to change
HL_TEMPLATE_NOW while rendering; everything else is.
"""
from __future__ import annotations

import argparse
import functools
import json
import os
import sys
from datetime import datetime

import jinja2
import jinja2.ext
import jinja2.nodes
from jinja2.sandbox import ImmutableSandboxedEnvironment


class TemplateRaised(jinja2.exceptions.TemplateError):
    """What raise_exception throws: the template refused the conversation.
    A TemplateError, as in transformers, so templates see no difference; a
    subclass only so that callers can tell it from jinja2's own errors."""


class _GenerationTag(jinja2.ext.Extension):
    # transformers' AssistantTracker: {% generation %} marks the assistant's
    # text so that it can report where it lies; the rendered text is the body,
    # unchanged. Tracking offsets is not needed to render, so none is done.
    tags = {"generation"}

    def parse(self, parser):
        lineno = next(parser.stream).lineno
        body = parser.parse_statements(("name:endgeneration",), drop_needle=True)
        return jinja2.nodes.CallBlock(self.call_method("_body"), [], [], body).set_lineno(lineno)

    def _body(self, caller):
        return caller()


def _raise_exception(message):
    raise TemplateRaised(message)


def _tojson(x, ensure_ascii=False, indent=None, separators=None, sort_keys=False):
    # jinja2's own tojson escapes <, >, & and ' for HTML; transformers replaces it.
    return json.dumps(x, ensure_ascii=ensure_ascii, indent=indent, separators=separators, sort_keys=sort_keys)


def _strftime_now(fmt):
    now = os.environ.get("HL_TEMPLATE_NOW")
    t = datetime.fromtimestamp(int(now)) if now else datetime.now()
    return t.strftime(fmt)


@functools.lru_cache(maxsize=None)
def compile_template(source: str) -> jinja2.Template:
    """Compiles once per distinct source; raises jinja2.TemplateSyntaxError."""
    env = ImmutableSandboxedEnvironment(trim_blocks=True, lstrip_blocks=True,
                                        extensions=[_GenerationTag, jinja2.ext.loopcontrols])
    env.filters["tojson"] = _tojson
    env.globals["raise_exception"] = _raise_exception
    env.globals["strftime_now"] = _strftime_now
    return env.from_string(source)


def render(source: str, messages: list, add_generation_prompt: bool = False,
           bos_token: str = "", eos_token: str = "", extra: dict | None = None) -> str:
    """The rendered text. Raises TemplateRaised when the template called
    raise_exception, any other exception when it failed."""
    variables = {"messages": messages, "tools": None, "documents": None,
                 "add_generation_prompt": add_generation_prompt,
                 "bos_token": bos_token, "eos_token": eos_token}
    variables.update(extra or {})
    return compile_template(source).render(**variables)


def gguf_chat_template(path) -> str | None:
    """tokenizer.chat_template of a GGUF file, or None when it has none."""
    from gguf import GGUFReader  # only needed for .gguf templates
    field = GGUFReader(str(path)).fields.get("tokenizer.chat_template")
    if field is None:
        return None
    return bytes(field.parts[field.data[0]]).decode("utf-8")


def load_template(path) -> str:
    if str(path).endswith(".gguf"):
        src = gguf_chat_template(path)
        if src is None:
            raise ValueError(f"{path} has no tokenizer.chat_template")
        return src
    with open(path, encoding="utf-8") as f:
        return f.read()


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description="render a chat template as transformers does")
    ap.add_argument("--template", required=True, help="a .jinja file, or a .gguf file")
    ap.add_argument("--messages", required=True, help="a JSON file holding the array of messages")
    ap.add_argument("--add-generation-prompt", action="store_true")
    ap.add_argument("--bos-token", default="")
    ap.add_argument("--eos-token", default="")
    ap.add_argument("--extra", help="a JSON file holding an object of more variables")
    try:
        a = ap.parse_args(argv)
    except SystemExit as e:
        return 0 if e.code == 0 else 2
    try:
        src = load_template(a.template)
        with open(a.messages, encoding="utf-8") as f:
            messages = json.load(f)
        extra = None
        if a.extra:
            with open(a.extra, encoding="utf-8") as f:
                extra = json.load(f)
        if not isinstance(messages, list) or not isinstance(extra, (dict, type(None))):
            raise ValueError("--messages must hold a JSON array and --extra a JSON object")
    except (OSError, ValueError) as e:
        print(f"reference: {e}", file=sys.stderr)
        return 2
    try:
        out = render(src, messages, a.add_generation_prompt, a.bos_token, a.eos_token, extra)
    except TemplateRaised as e:
        print(f"reference: template raised: {e}", file=sys.stderr)
        return 3
    except Exception as e:  # any failure of the template: jinja2's, or Python's beneath it
        print(f"reference: template error: {type(e).__name__}: {e}", file=sys.stderr)
        return 1
    sys.stdout.buffer.write(out.encode("utf-8"))
    return 0


if __name__ == "__main__":
    sys.exit(main())
