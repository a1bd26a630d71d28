"""test_templates.py - heylook's chat template engine against transformers'
rendering (reference.py, Python's jinja2), byte for byte, on real templates.

    .venv/bin/python -m pytest tests/template -q            # all
    .venv/bin/python -m pytest tests/template -k Qwen3 -x   # one family

Contract. For every corpus template (corpus.py: llama.cpp's models/templates
and the catalog GGUF files' own), every conversation of conversations.json
that applies to it, with and without add_generation_prompt, the reference
renders first; then `heylookllm template` ($HEYLOOK_BIN, default
build/heylookllm) renders the same files, and:
  - reference rendered: exit 0 and stdout equal to the reference's bytes;
  - reference's template called raise_exception: exit 3, the message on stderr;
  - reference failed otherwise (TypeError, UndefinedError, sandbox, syntax):
    exit 1 (a template error, never 0, never a crash).
Test ids are TEMPLATE-CASE-gen|nogen. Both sides see the same clock
(HL_TEMPLATE_NOW, TZ=UTC) and the C locale. The engine tests skip, with the
reason, when the binary or its template command is absent; the reference's
own checks always run. About 2,200 cases; 10-15 s on 2 cores.
"""
import difflib
import json
import os
import re
import subprocess
import sys
import time
from pathlib import Path

import pytest

pytest.importorskip("jinja2", reason="jinja2 absent: .venv/bin/pip install 'jinja2>=3.1'")

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))
import corpus  # noqa: E402
import reference  # noqa: E402

REPO = HERE.parents[1]
BIN = os.environ.get("HEYLOOK_BIN", str(REPO / "build" / "heylookllm"))
NOW = "1720094400"  # 2024-07-04 12:00:00 UTC: a one-digit day, to catch %d against %-d
CLOCK = {"HL_TEMPLATE_NOW": NOW, "TZ": "UTC"}

FIXTURES = json.loads((HERE / "conversations.json").read_text(encoding="utf-8"))
CASES = {c["name"]: c for c in FIXTURES["cases"]}
TEMPLATES = corpus.templates()
SOURCES = {name: (path, src) for name, path, src in TEMPLATES if path is not None}


def _params():
    out = []
    for name, path, src in TEMPLATES:
        if path is None:
            out.append(pytest.param(name, None, False, id=name, marks=pytest.mark.skip(reason=src)))
            continue
        for case in FIXTURES["cases"]:
            if "when" in case and not re.search(case["when"], src):
                continue
            for gen in (False, True):
                out.append(pytest.param(name, case["name"], gen,
                                        id=f"{name}-{case['name']}-{'gen' if gen else 'nogen'}"))
    return out


def _tokens(case):
    d = FIXTURES["defaults"]
    return case.get("bos_token", d["bos_token"]), case.get("eos_token", d["eos_token"])


def _reference(name, case_name, gen):
    """('ok', text) | ('raised', message) | ('error', description)."""
    case = CASES[case_name]
    bos, eos = _tokens(case)
    try:
        return "ok", reference.render(SOURCES[name][1], case["messages"], gen, bos, eos, case.get("extra"))
    except reference.TemplateRaised as e:
        return "raised", str(e)
    except Exception as e:  # the template failed: what kind does not matter to the engine's exit status
        return "error", f"{type(e).__name__}: {e}"


@pytest.fixture(scope="module", autouse=True)
def clock():
    """The reference (this process) and heylook see the same fixed time;
    restored after the module, for other tests run in the same session."""
    with pytest.MonkeyPatch.context() as mp:
        for k, v in CLOCK.items():
            mp.setenv(k, v)
        time.tzset()
        yield
    time.tzset()


@pytest.fixture(scope="module")
def heylook():
    if not Path(BIN).exists():
        pytest.skip(f"{BIN} absent: build it with make")
    r = subprocess.run([BIN, "template"], capture_output=True, text=True, errors="replace", timeout=30)
    if "unknown command" in r.stdout + r.stderr:
        pytest.skip(f"{BIN} has no template command yet")
    return BIN


@pytest.fixture(scope="module")
def case_files(tmp_path_factory):
    """Per case: the --messages file and the --extra file (or None)."""
    d = tmp_path_factory.mktemp("conversations")
    files = {}
    for name, case in CASES.items():
        m = d / f"{name}.messages.json"
        m.write_text(json.dumps(case["messages"], ensure_ascii=False), encoding="utf-8")
        x = None
        if "extra" in case:
            x = d / f"{name}.extra.json"
            x.write_text(json.dumps(case["extra"], ensure_ascii=False), encoding="utf-8")
        files[name] = (m, x)
    return files


def _first_difference(want: bytes, got: bytes) -> str:
    i = next((k for k, (a, b) in enumerate(zip(want, got)) if a != b), min(len(want), len(got)))
    lo = max(0, i - 80)
    head = (f"output differs at byte {i} (reference {len(want)} bytes, heylook {len(got)} bytes)\n"
            f"  reference: {want[lo:i + 80]!r}\n  heylook:   {got[lo:i + 80]!r}\n")
    diff = difflib.unified_diff(want.decode(errors="replace").splitlines(keepends=True),
                                got.decode(errors="replace").splitlines(keepends=True),
                                "reference", "heylook", n=1)
    return head + "".join(list(diff)[:40])


@pytest.mark.parametrize("name,case_name,gen", _params())
def test_render_matches_reference(heylook, case_files, name, case_name, gen):
    kind, want = _reference(name, case_name, gen)
    bos, eos = _tokens(CASES[case_name])
    messages, extra = case_files[case_name]
    cmd = [heylook, "template", "--template", str(SOURCES[name][0]), "--messages", str(messages),
           "--bos-token", bos, "--eos-token", eos]
    if gen:
        cmd.append("--add-generation-prompt")
    if extra:
        cmd += ["--extra", str(extra)]
    r = subprocess.run(cmd, capture_output=True, env={**os.environ, "LC_ALL": "C"}, timeout=30)
    err = r.stderr.decode(errors="replace").strip()
    assert r.returncode >= 0, f"heylookllm died from signal {-r.returncode}: {err}"
    if kind == "ok":
        assert r.returncode == 0, f"reference rendered, heylook exited {r.returncode}: {err}"
        ref = want.encode("utf-8")
        if r.stdout != ref:
            pytest.fail(_first_difference(ref, r.stdout), pytrace=False)
    elif kind == "raised":
        assert r.returncode == 3, f"template raised {want!r}; heylook exited {r.returncode}: {err}"
        assert want in err, f"raise_exception's message {want!r} not in stderr: {err}"
    else:
        assert r.returncode == 1, f"reference failed ({want}); heylook exited {r.returncode}: {err}"


@pytest.mark.parametrize("name", sorted(SOURCES))
def test_reference_renders_template(name):
    """Each corpus template renders at least one fixture case, so that none is
    checked on error paths only (add a fixture case when this fails)."""
    results = {}
    for case_name, case in CASES.items():
        if "when" in case and not re.search(case["when"], SOURCES[name][1]):
            continue
        results[case_name] = _reference(name, case_name, True)
    assert any(kind == "ok" for kind, _ in results.values()), \
        "no case renders: " + "; ".join(f"{c}: {k} {v[:100]}" for c, (k, v) in results.items())


def test_reference_environment_is_transformers():
    r = reference.render
    # tojson: no HTML escaping, no ASCII escaping, insertion order, Python's separators.
    assert r("{{ x|tojson }}", [], extra={"x": {"b": "<é'&>", "a": [1, 2.5, None, True]}}) == \
        '{"b": "<é\'&>", "a": [1, 2.5, null, true]}'
    assert r("{{ x|tojson(indent=2) }}", [], extra={"x": {"a": 1}}) == '{\n  "a": 1\n}'
    # trim_blocks and lstrip_blocks; one trailing newline of the template dropped.
    assert r("  {% if true %}\nA\n  {% endif %}\nB\n", []) == "A\nB"
    # loop controls, the generation tag, the clock, the always-defined variables.
    assert r("{% for i in range(5) %}{% if i == 3 %}{% break %}{% endif %}{{ i }}{% endfor %}", []) == "012"
    assert r("{% generation %}x{{ 1 + 1 }}{% endgeneration %}", []) == "x2"
    assert r("{{ strftime_now('%d %b %Y %H:%M') }}", []) == "04 Jul 2024 12:00"
    assert r("{{ tools is none }} {{ documents is none }} [{{ bos_token }}]", []) == "True True []"
    with pytest.raises(reference.TemplateRaised, match="nope"):
        r("{{ raise_exception('nope') }}", [])
    # the sandbox is immutable: list.append is refused.
    with pytest.raises(Exception, match="unsafe|not safely|access"):
        r("{% set l = [] %}{{ l.append(1) }}", [])
