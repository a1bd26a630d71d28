"""test_backend.py - choosing where models run, as the server shows it: /v1/capabilities lists the
backends and GPUs this build and machine have, /v1/capabilities and /v1/performance give each model's
backend (where it runs once loaded, else where it is configured to), `serve --backend` and the
models.yaml keys backend / device / n_gpu_layers. On a machine without a GPU (or a build without
CUDA) every model runs on the CPU, and asking for CUDA by name fails that model's load with the reason.
"""
import os
import subprocess
import time
from pathlib import Path

import httpx
import pytest

from heylook_server import BIN, MODEL, ROOT

VOCAB = Path(os.environ.get("HL_VOCAB_DIR", Path(ROOT) / ".cache" / "vocab")) / "ggml-vocab-llama-spm.gguf"
GPU_KEYS = {"index", "name", "compute_capability", "multiprocessors", "memory_total_bytes", "memory_free_bytes",
            "memory_used_by_heylook_bytes", "bandwidth_bytes_per_s"}


def caps(s):
    return httpx.get(s.url + "/v1/capabilities").json()


def perf(s):
    return httpx.get(s.url + "/v1/performance").json()


def has_cuda(s):
    return "cuda" in caps(s)["backends"]


def wait_failed(s, model, timeout=60):
    deadline = time.time() + timeout
    while time.time() < deadline:
        if httpx.get(s.url + "/health").json()["models"][model] == "failed":
            return
        time.sleep(0.05)
    raise AssertionError(f"{model} never failed to load:\n{s.read_log()}")


def test_capabilities_list_backends_and_gpus(server):
    c = caps(server)
    assert c["backends"][0] == "cpu" and set(c["backends"]) <= {"cpu", "cuda"}
    assert isinstance(c["gpus"], list)
    if "cuda" not in c["backends"]:
        assert c["gpus"] == []
    for i, g in enumerate(c["gpus"]):
        assert set(g) == GPU_KEYS and g["index"] == i and g["name"]
        assert g["compute_capability"].count(".") == 1 and g["multiprocessors"] > 0
        assert 0 <= g["memory_free_bytes"] <= g["memory_total_bytes"]
    (m,) = c["models"]
    # the default model is loaded (the fixture waited for it): its backend is where it runs
    assert m["id"] == MODEL and m["status"] == "loaded" and m["backend_configured"] == "auto"
    assert m["backend"] in c["backends"]
    assert (m["device"] is None) == (m["backend"] == "cpu")


def test_performance_gives_backends_and_gpu_memory(server):
    p = perf(server)
    c = caps(server)
    assert isinstance(p["gpus"], list) and len(p["gpus"]) == len(c["gpus"])
    for g in p["gpus"]:
        assert {"index", "name", "memory_total_bytes", "memory_free_bytes", "memory_used_by_heylook_bytes"} <= set(g)
    (m,) = p["models"]
    assert m["backend"] == c["models"][0]["backend"] and m["backend_configured"] == "auto"


def test_serve_backend_option(make_server):
    s = make_server("--backend", "cpu")
    (m,) = caps(s)["models"]
    assert (m["backend"], m["backend_configured"], m["device"]) == ("cpu", "cpu", None)
    assert perf(s)["models"][0]["backend"] == "cpu"
    assert "(backend cpu;" in s.read_log() and "ready in" in s.read_log()


def test_serve_backend_cuda_without_a_gpu(make_server):
    s = make_server("--backend", "cuda", ready=False)
    if has_cuda(s):
        pytest.skip("this machine has a GPU the CUDA backend can use")
    wait_failed(s, MODEL)
    r = httpx.post(s.url + "/v1/completions", json={"model": MODEL, "prompt": "hi", "max_tokens": 2})
    err = r.json()["error"]
    assert r.status_code == 500 and err["code"] == "model_load_failed", r.text
    assert "CUDA backend cannot run" in err["message"], err
    (m,) = caps(s)["models"]
    assert m["status"] == "unloaded" and m["backend"] == "cuda" and m["device"] == 0


@pytest.mark.parametrize("args, msg", [
    (["--backend", "bogus"], "--backend is auto, cpu or cuda, not 'bogus'"),
    (["--backend", "cpu", "--config", "models.yaml"], "--backend applies to --model models"),
])
def test_serve_backend_option_errors(tmp_path, args, msg):
    (tmp_path / "models.yaml").write_text("models:\n- {id: a, config: {model_path: a.gguf}}\n")
    r = subprocess.run([os.path.abspath(BIN), "serve", "--port", "0", *args], capture_output=True, text=True,
                       cwd=tmp_path,
                       timeout=30)
    assert r.returncode == 2 and msg in r.stderr, r.stderr


def test_serve_rejects_a_bad_hl_backend(tmp_path):
    env = {**os.environ, "HL_BACKEND": "tpu"}
    r = subprocess.run([BIN, "serve", "--port", "0", "--model", MODEL], capture_output=True, text=True, env=env,
                       timeout=30)
    assert r.returncode == 2 and "HL_BACKEND is auto, cpu or cuda, not 'tpu'" in r.stderr, r.stderr


@pytest.mark.skipif(not VOCAB.exists(), reason=f"{VOCAB} absent (scripts/bootstrap.sh fetches it)")
def test_config_backend_keys(make_server, tmp_path):
    gguf = tmp_path / "tiny.gguf"
    subprocess.run([BIN, "synth", "--arch", "llama", "--type", "Q8_0", "--n-embd", "256", "--n-layer", "2",
                    "--n-head", "4", "--n-head-kv", "2", "--n-ff", "512", "--n-vocab", "2048",
                    "--vocab-from", str(VOCAB), "--seed", "1", "-o", str(gguf)], check=True, capture_output=True)
    p = tmp_path / "models.yaml"
    p.write_text(f"""
default_model: on-cpu
max_loaded_models: 4
models:
  - id: on-cpu
    config: {{model_path: {gguf}, backend: cpu}}
  - id: anywhere
    config: {{model_path: {gguf}, n_gpu_layers: -1}}
  - id: no-layers-offloaded
    config: {{model_path: {gguf}, n_gpu_layers: 0}}
  - id: on-gpu-1
    config: {{model_path: {gguf}, backend: cuda, device: 1}}
  - id: partial
    config: {{model_path: {gguf}, n_gpu_layers: 2}}
""")
    s = make_server("--config", str(p))
    gpu = has_cuda(s)
    ok = {"on-cpu", "anywhere", "no-layers-offloaded"}
    for model in sorted(ok) + ["partial"] + ([] if gpu else ["on-gpu-1"]):
        r = httpx.post(s.url + "/v1/completions", json={"model": model, "prompt": "Once", "max_tokens": 2},
                       timeout=60)
        if model in ok:
            assert r.status_code == 200, r.text
        elif model == "partial":
            assert r.status_code == 500 and "not supported yet" in r.json()["error"]["message"], r.text
            assert "n_gpu_layers" in r.json()["error"]["message"]
        else:
            assert r.status_code == 500 and "CUDA backend cannot run" in r.json()["error"]["message"], r.text
    models = {m["id"]: m for m in caps(s)["models"]}
    assert (models["on-cpu"]["backend"], models["on-cpu"]["backend_configured"]) == ("cpu", "cpu")
    assert models["anywhere"]["backend_configured"] == "auto"
    assert models["anywhere"]["backend"] == ("cuda" if gpu else "cpu")
    assert (models["no-layers-offloaded"]["backend"], models["no-layers-offloaded"]["backend_configured"]) == \
        ("cpu", "cpu")
    assert models["on-gpu-1"]["backend_configured"] == "cuda" and models["on-gpu-1"]["device"] == 1
    assert {m["id"]: m["backend"] for m in perf(s)["models"]} == {i: m["backend"] for i, m in models.items()}
