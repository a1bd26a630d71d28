"""test_router.py - several models behind one server: the LRU and its limits (max loaded models,
memory budget), models that are busy are never evicted, requests wait for their model's load,
concurrent requests to different models, continuous batching giving the same greedy text as a
request alone, and the generation lock. Small synthetic models (2 layers) plus the default model.
"""
import concurrent.futures as cf
import json
import os
import subprocess
import threading
import time
from pathlib import Path

import httpx
import pytest

from heylook_server import BIN, MODEL, ROOT

VOCAB = Path(os.environ.get("HL_VOCAB_DIR", Path(ROOT) / ".cache" / "vocab")) / "ggml-vocab-llama-spm.gguf"
pytestmark = pytest.mark.skipif(not VOCAB.exists(), reason=f"{VOCAB} absent (scripts/bootstrap.sh fetches it)")


@pytest.fixture(scope="module")
def synth_models(tmp_path_factory):
    d = tmp_path_factory.mktemp("router")
    out = []
    for name, typ, seed in (("alpha", "Q8_0", 1), ("beta", "Q4_0", 2), ("gamma", "Q4_K", 3)):
        p = d / f"{name}.gguf"
        subprocess.run([BIN, "synth", "--arch", "llama", "--type", typ, "--n-embd", "256", "--n-layer", "2",
                        "--n-head", "4", "--n-head-kv", "2", "--n-ff", "512", "--n-vocab", "2048",
                        "--vocab-from", str(VOCAB), "--seed", str(seed), "-o", str(p)], check=True,
                       capture_output=True)
        out.append(p)
    return out


def complete(s, model, n=4, timeout=60, **kw):
    body = {"model": model, "prompt": "Once upon a time", "max_tokens": n, "temperature": 0, **kw}
    return httpx.post(s.url + "/v1/completions", json=body, timeout=timeout)


def statuses(s):
    return {m["id"]: m["status"] for m in httpx.get(s.url + "/v1/models").json()["data"]}


def wait_status(s, want, timeout=30):
    deadline = time.time() + timeout
    while time.time() < deadline:
        got = statuses(s)
        if all(got.get(k) == v for k, v in want.items()):
            return got
        time.sleep(0.05)
    raise AssertionError(f"statuses {statuses(s)} never became {want}")


def perf(s):
    return {m["id"]: m for m in httpx.get(s.url + "/v1/performance").json()["models"]}


def test_lru_order_and_eviction(make_server, synth_models):
    a, b, c = synth_models
    s = make_server("--model", str(a), "--model", str(b), "--model", str(c), "--max-loaded", "2")
    assert statuses(s) == {"alpha": "loaded", "beta": "unloaded", "gamma": "unloaded"}  # the default, pre-warmed
    assert complete(s, "beta").status_code == 200  # waits for its load; there is room for two
    assert complete(s, "gamma").status_code == 200  # alpha is the least recently used
    assert statuses(s) == {"alpha": "unloaded", "beta": "loaded", "gamma": "loaded"}
    assert complete(s, "beta").status_code == 200  # a hit: now gamma is the least recently used
    assert complete(s, "alpha").status_code == 200
    assert statuses(s) == {"alpha": "loaded", "beta": "loaded", "gamma": "unloaded"}
    p = perf(s)
    assert (p["alpha"]["evictions"], p["beta"]["evictions"], p["gamma"]["evictions"]) == (1, 0, 1)
    assert p["alpha"]["loads"] == 2 and p["beta"]["router_hits"] >= 1
    router = httpx.get(s.url + "/v1/performance").json()["router"]
    assert router["loaded_models"] == 2 and router["evictions"] == 2
    assert 0 < router["memory_used_bytes"] <= router["memory_budget_bytes"]
    assert "evicted: max_loaded_models" in s.read_log()


def test_busy_model_is_not_evicted(make_server, synth_models):
    a = synth_models[0]
    s = make_server("--model", MODEL, "--model", str(a), "--max-loaded", "1", "--parallel", "1")
    wait_status(s, {MODEL: "loaded"})
    body = {"model": MODEL, "prompt": "Once upon a time", "max_tokens": 3000, "temperature": 0, "stream": True,
            "logit_bias": {"0": -100, "1": -100, "2": -100}}  # no end of text: it stays busy for seconds
    with httpx.stream("POST", s.url + "/v1/completions", json=body, timeout=60) as r:
        lines = r.iter_lines()  # kept: a dropped iterator closes the response
        next(lines)  # generating
        busy = complete(s, "alpha")
        assert busy.status_code == 503 and busy.json()["error"]["code"] == "no_room", busy.text
        assert "retry-after" in busy.headers
        assert statuses(s)[MODEL] == "loaded"
    # the stream is closed: the model is idle again and may go
    deadline = time.time() + 20
    while (r2 := complete(s, "alpha")).status_code == 503 and time.time() < deadline:
        time.sleep(0.2)
    assert r2.status_code == 200
    assert statuses(s) == {MODEL: "unloaded", "alpha": "loaded"}


def test_memory_budget_too_small_for_two(make_server, synth_models):
    a, b, _ = synth_models
    probe = make_server("--model", str(a), "--parallel", "1", "-c", "512")
    one = perf(probe)["alpha"]["memory_bytes"]
    probe.stop()
    budget_mib = int(one * 1.6) >> 20 or 1
    assert (budget_mib << 20) >= one, "the test's models are too small for a MiB budget"
    s = make_server("--model", str(a), "--model", str(b), "--max-loaded", "2", "--parallel", "1", "-c", "512",
                    "--memory-budget", str(budget_mib))
    wait_status(s, {"alpha": "loaded"})
    assert complete(s, "beta").status_code == 200
    assert statuses(s) == {"alpha": "unloaded", "beta": "loaded"}  # room made by the budget, not the count
    assert "evicted: memory budget" in s.read_log()
    tiny = make_server("--model", str(a), "--memory-budget", "1", ready=False)
    deadline = time.time() + 20
    while httpx.get(tiny.url + "/health").json()["status"] == "loading" and time.time() < deadline:
        time.sleep(0.05)
    r = complete(tiny, "alpha")
    assert r.status_code == 500 and "memory budget" in r.json()["error"]["message"]


def test_concurrent_requests_to_different_models(make_server, synth_models):
    a, b, _ = synth_models
    s = make_server("--model", str(a), "--model", str(b))
    alone = {m: complete(s, m, n=16).json()["choices"][0]["text"] for m in ("alpha", "beta")}
    with cf.ThreadPoolExecutor(6) as ex:
        results = list(ex.map(lambda m: (m, complete(s, m, n=16)), ["alpha", "beta"] * 3))
    for m, r in results:
        assert r.status_code == 200 and r.json()["choices"][0]["text"] == alone[m]


def test_batched_equals_alone(server):
    """Continuous batching: greedy text of a request is the same alone and batched with others."""
    prompts = [f"Write a sentence about the number {i}." for i in range(4)]

    def chat(p):
        body = {"model": MODEL, "messages": [{"role": "user", "content": p}], "max_tokens": 24, "temperature": 0}
        return httpx.post(server.url + "/v1/chat/completions", json=body, timeout=60).json()["choices"][0]["message"]["content"]

    alone = [chat(p) for p in prompts]
    with cf.ThreadPoolExecutor(len(prompts)) as ex:
        batched = list(ex.map(chat, prompts))
    assert batched == alone


def test_generation_lock_serializes(make_server):
    s = make_server("--parallel", "4", "--generation-lock")
    spans = {}

    def stream(i):
        body = {"model": MODEL, "prompt": "Count to fifty:", "max_tokens": 40, "temperature": 0, "stream": True}
        first = last = None
        with httpx.stream("POST", s.url + "/v1/completions", json=body, timeout=60) as r:
            for line in r.iter_lines():
                if line.startswith("data: {") and json.loads(line[6:])["choices"]:
                    t = time.perf_counter()
                    first = first or t
                    last = t
        spans[i] = (first, last)

    threads = [threading.Thread(target=stream, args=(i,)) for i in range(3)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    order = sorted(spans.values())
    for (f1, l1), (f2, l2) in zip(order, order[1:]):
        assert f2 >= l1 - 0.005, "two requests generated at the same time under the generation lock"


def write_yaml(tmp_path, text):
    p = tmp_path / "models.yaml"
    p.write_text(text)
    return p


def test_config_errors_stop_startup(tmp_path, synth_models):
    a = synth_models[0]
    cases = [
        (f"models:\n  - id: a\n    config:\n      model_path: {a}\n      tempreature: 0.5\n",
         ["models.yaml:5", "tempreature", "temperature"]),
        (f"models:\n  - id: a\n    config:\n      model_path: {a}\n      top_p: high\n", ["models.yaml:5", "top_p"]),
        (f"default_model: b\nmodels:\n  - id: a\n    config:\n      model_path: {a}\n", ["default_model", "'b'"]),
        ("models:\n  - id: a\n    config: {}\n", ["model_path"]),
    ]
    for text, needles in cases:
        p = write_yaml(tmp_path, text)
        r = subprocess.run([BIN, "serve", "--config", str(p), "--port", "0"], capture_output=True, text=True,
                           timeout=30)
        assert r.returncode == 2, (text, r.stderr)
        for n in needles:
            assert n in r.stderr, (n, r.stderr)


def test_config_models(make_server, tmp_path, synth_models):
    """A models.yaml: per-model sampling defaults apply, a corrupt file and a feature not built yet
    fail that model's load with a clear error, and the others go on serving."""
    a, b, _ = synth_models
    bad = tmp_path / "corrupt.gguf"
    bad.write_bytes(b"GGUF\x03\x00\x00\x00" + b"\x00" * 40)
    p = write_yaml(tmp_path, f"""
default_model: short
max_loaded_models: 2
models:
  - id: short
    description: answers in three tokens unless asked otherwise
    config:
      model_path: {a}
      max_tokens: 3
      temperature: 0
  - id: corrupt
    config:
      model_path: {bad}
  - id: quantized-kv
    config:
      model_path: {b}
      cache_type: quantized
      kv_bits: 4
  - id: disabled-one
    enabled: false
    config:
      model_path: {b}
""")
    s = make_server("--config", str(p))
    assert [m["id"] for m in httpx.get(s.url + "/v1/models").json()["data"]] == ["short", "corrupt", "quantized-kv"]
    r = httpx.post(s.url + "/v1/completions", json={"model": "short", "prompt": "Once upon a time",
                                                    "logit_bias": {"2": -100}})
    assert r.status_code == 200 and r.json()["usage"]["completion_tokens"] == 3
    r = httpx.post(s.url + "/v1/completions", json={"model": "short", "prompt": "Once", "max_tokens": 5,
                                                    "logit_bias": {"2": -100}})
    assert r.json()["usage"]["completion_tokens"] == 5  # the request's own field wins
    r = complete(s, "corrupt")
    assert r.status_code == 500 and r.json()["error"]["code"] == "model_load_failed"
    r = complete(s, "quantized-kv")
    assert r.status_code == 500 and "not supported yet" in r.json()["error"]["message"]
    assert complete(s, "disabled-one").status_code == 404
    assert complete(s, "short").status_code == 200


def test_pinned_and_idle_unload(make_server, tmp_path, synth_models):
    """pinned: never evicted (the other model gets 503 no_room); idle_unload_s: unloaded when idle."""
    a, b, c = synth_models
    p = write_yaml(tmp_path, f"""
default_model: keep
max_loaded_models: 1
models:
  - id: keep
    config: {{model_path: {a}, pinned: true}}
  - id: other
    config: {{model_path: {b}}}
""")
    s = make_server("--config", str(p))
    r = complete(s, "other")
    assert r.status_code == 503 and r.json()["error"]["code"] == "no_room" and "pinned" in r.json()["error"]["message"]
    assert statuses(s) == {"keep": "loaded", "other": "unloaded"}
    q = write_yaml(tmp_path, f"""
models:
  - id: brief
    config: {{model_path: {c}, idle_unload_s: 1}}
""")
    s2 = make_server("--config", str(q))
    assert complete(s2, "brief").status_code == 200
    wait_status(s2, {"brief": "unloaded"}, timeout=15)
    assert "unloading brief (idle)" in s2.read_log()
    assert complete(s2, "brief").status_code == 200  # loads again on demand
