"""`heylookllm import`: scans a folder of small synthetic GGUF models and
writes a models.yaml. Checks what is found and skipped, the size-based
defaults (the larger tiers use sparse files: a synthetic model padded to
1.5 GiB / 9 GiB takes no disk space), the profiles, --override, --force, and
that PyYAML (the reference system's reader) reads the same values.

Run from the repository root: .venv/bin/python -m pytest tests/cli/test_import.py
$HEYLOOK_BIN selects the binary (default build/heylookllm)."""
import os
import subprocess
from pathlib import Path

import numpy as np
import pytest
import yaml
from gguf import GGUFWriter

REPO = Path(__file__).resolve().parents[2]
BIN = str(Path(os.environ.get("HEYLOOK_BIN", REPO / "build" / "heylookllm")).resolve())  # absolute: tests change cwd
SPM = Path(os.environ.get("HL_VOCAB_DIR", REPO / ".cache" / "vocab")) / "ggml-vocab-llama-spm.gguf"

pytestmark = pytest.mark.skipif(not SPM.exists(), reason=f"llama.cpp vocab file {SPM} absent")

GIB = 1 << 30


def hl(*args, cwd=None):
    r = subprocess.run([BIN, *map(str, args)], capture_output=True, text=True, errors="replace",
                       timeout=120, cwd=cwd)
    assert r.returncode >= 0, f"heylookllm died from signal {-r.returncode}: {r.stderr}"
    return r


def synth(path, seed=1):
    r = hl("synth", "--arch", "llama", "--type", "Q8_0", "--n-embd", 64, "--n-layer", 1, "--n-head", 2,
           "--n-head-kv", 1, "--n-ff", 128, "--n-vocab", 512, "--vocab-from", SPM, "--seed", seed, "-o", path)
    assert r.returncode == 0, r.stderr
    return path


def gguf_file(path, arch, general_type=None, tensor=True):
    w = GGUFWriter(str(path), arch)
    if general_type:
        w.add_type(general_type)
    if tensor:
        w.add_tensor("mm.0.weight", np.zeros((4, 8), dtype=np.float32))
    w.write_header_to_file()
    w.write_kv_data_to_file()
    w.write_tensors_to_file()
    w.close()


@pytest.fixture(scope="module")
def folder(tmp_path_factory):
    """small.gguf (tiny), mid/Mid.gguf (1.5 GiB sparse), big/big.gguf (9 GiB sparse), a second
    small.gguf in dup/, and files to skip: an mmproj, a vocab-only file, garbage, a text file."""
    d = tmp_path_factory.mktemp("models")
    synth(d / "small.gguf")
    for sub, name, size in (("mid", "Mid.gguf", 3 * GIB // 2), ("big", "big.gguf", 9 * GIB)):
        (d / sub).mkdir()
        synth(d / sub / name, seed=2)
        os.truncate(d / sub / name, size)
    (d / "dup").mkdir()
    synth(d / "dup" / "small.gguf", seed=3)
    gguf_file(d / "mmproj-model-f16.gguf", "clip", "mmproj")
    gguf_file(d / "vocab-only.gguf", "llama", tensor=False)
    (d / "broken.gguf").write_bytes(b"GGUF" + bytes(12))
    (d / "readme.txt").write_text("not a model")
    return d


def load(path):
    with open(path) as f:
        return yaml.safe_load(f)


def by_id(doc):
    return {m["id"]: m for m in doc["models"]}


def test_import_writes_models_with_size_defaults(folder, tmp_path):
    out = tmp_path / "models.yaml"
    r = hl("import", "--folder", folder, "--output", out)
    assert r.returncode == 0, r.stderr
    assert f"wrote {out}: 4 models (default small)" in r.stdout
    for skipped in ("mmproj-model-f16.gguf: general.type is 'mmproj'", "vocab-only.gguf: vocabulary only",
                    "broken.gguf"):
        assert skipped in r.stderr, r.stderr
    assert "readme.txt" not in r.stderr
    doc = load(out)
    assert doc["default_model"] == "small" and doc["max_loaded_models"] == 2
    ms = by_id(doc)
    assert set(ms) == {"small", "mid", "big", "small-2"}
    for m in ms.values():
        assert m["enabled"] is True and m["provider"] == "gguf"
        assert os.path.isabs(m["config"]["model_path"]) and os.path.exists(m["config"]["model_path"])
    assert ms["small"]["config"]["model_path"] == str(folder / "small.gguf")
    assert ms["small-2"]["config"]["model_path"] == str(folder / "dup" / "small.gguf")
    assert ms["mid"]["config"]["model_path"] == str(folder / "mid" / "Mid.gguf")
    sizes = {k: (m["config"]["n_ctx"], m["config"]["parallel"]) for k, m in ms.items()}
    assert sizes == {"small": (8192, 4), "small-2": (8192, 4), "mid": (4096, 2), "big": (2048, 1)}
    assert ms["small"]["tags"] == ["gguf", "llama"]
    # balanced profile; max_tokens capped at n_ctx / 2
    c = ms["small"]["config"]
    assert (c["temperature"], c["top_p"], c["top_k"], c["min_p"], c["max_tokens"]) == (0.7, 0.9, 40, 0.05, 1024)
    assert ms["big"]["config"]["max_tokens"] == 1024


def test_import_default_output_and_force(folder, tmp_path):
    r = hl("import", "--folder", folder, cwd=tmp_path)
    assert r.returncode == 0, r.stderr
    first = (tmp_path / "models.yaml").read_text()
    r = hl("import", "--folder", folder, "--profile", "fast", cwd=tmp_path)
    assert r.returncode == 1 and "models.yaml exists: pass --force" in r.stderr
    assert (tmp_path / "models.yaml").read_text() == first
    r = hl("import", "--folder", folder, "--profile", "fast", "--force", cwd=tmp_path)
    assert r.returncode == 0, r.stderr
    assert by_id(load(tmp_path / "models.yaml"))["small"]["config"]["max_tokens"] == 256


@pytest.mark.parametrize("profile, want", [
    ("fast", {"temperature": 0.1, "top_k": 10, "max_tokens": 256, "n_ctx": 8192, "parallel": 4}),
    ("balanced", {"temperature": 0.7, "max_tokens": 1024, "n_ctx": 8192, "parallel": 4}),
    ("quality", {"top_p": 0.95, "top_k": 0, "repetition_penalty": 1.05, "max_tokens": 4096, "n_ctx": 8192}),
    ("memory", {"n_ctx": 4096, "parallel": 1, "max_tokens": 512}),
    ("interactive", {"parallel": 4, "max_tokens": 512, "n_ctx": 8192}),
])
def test_profiles(folder, tmp_path, profile, want):
    out = tmp_path / f"{profile}.yaml"
    r = hl("import", "--folder", folder, "--output", out, "--profile", profile)
    assert r.returncode == 0, r.stderr
    ms = by_id(load(out))
    c = ms["small"]["config"]
    assert {k: c[k] for k in want} == want
    if profile == "memory":
        assert (ms["big"]["config"]["n_ctx"], ms["big"]["config"]["parallel"]) == (1024, 1)
    if profile == "interactive":
        assert ms["big"]["config"]["parallel"] == 4


def test_overrides_apply_to_every_model(folder, tmp_path):
    out = tmp_path / "o.yaml"
    r = hl("import", "--folder", folder, "--output", out, "--override", "backend=cuda", "--override",
           "n_ctx=1_024", "--override", "use_generation_lock=yes", "--override", "draft_model_path=d/small.gguf",
           "--override", "chat_format=no", "--override", "temperature=0.3", cwd=tmp_path)
    assert r.returncode == 0, r.stderr
    for m in load(out)["models"]:
        c = m["config"]
        assert c["backend"] == "cuda" and c["n_ctx"] == 1024 and c["use_generation_lock"] is True
        assert c["temperature"] == 0.3 and c["chat_format"] == "no"
        assert c["draft_model_path"] == str(tmp_path / "d" / "small.gguf")
    assert out.read_text().count("temperature:") == 4  # replaced, not repeated


@pytest.mark.parametrize("override, msg", [
    ("tempreature=1", "unknown config key 'tempreature' (did you mean 'temperature'?)"),
    ("enabled=false", "unknown config key 'enabled'"),
    ("temperature=hot", "'temperature' in --override must be a number, got the string \"hot\""),
    ("top_p=0", "'top_p' in --override is 0: it must be greater than 0 and at most 1"),
    ("kv_bits=3", "it must be one of 4, 8"),
    ("backend=gpu", "one of auto, cpu, cuda"),
    ("parallel=", "needs a value"),
    ("n_ctx", "--override takes KEY=VALUE"),
    ("model_path=x.gguf", "each model's path comes from the scan"),
])
def test_bad_overrides_write_nothing(folder, tmp_path, override, msg):
    out = tmp_path / "x.yaml"
    r = hl("import", "--folder", folder, "--output", out, "--override", override)
    assert r.returncode == 1 and msg in r.stderr, r.stderr
    assert r.stderr.startswith("heylookllm import: ")
    assert not out.exists()


def test_usage_and_folder_errors(tmp_path):
    assert hl("import", "--help").returncode == 0
    r = hl("import", cwd=tmp_path)
    assert r.returncode == 2 and "--folder PATH is required" in r.stderr
    r = hl("import", "--folder", tmp_path, "--profile", "turbo", cwd=tmp_path)
    assert r.returncode == 2 and "unknown --profile" in r.stderr
    r = hl("import", "--folder", tmp_path / "missing", cwd=tmp_path)
    assert r.returncode == 1 and "cannot read folder" in r.stderr
    (tmp_path / "empty").mkdir()
    r = hl("import", "--folder", tmp_path / "empty", cwd=tmp_path)
    assert r.returncode == 1 and "no GGUF models found" in r.stderr
    assert not (tmp_path / "models.yaml").exists()


def test_symlinked_files_are_found_and_folder_loops_are_not_followed(tmp_path):
    src = tmp_path / "blobs"
    src.mkdir()
    synth(src / "abc123")  # a blob without the .gguf suffix, as in the Hugging Face cache
    snap = tmp_path / "snap"
    snap.mkdir()
    (snap / "Model-Q8_0.gguf").symlink_to(src / "abc123")
    (snap / "loop").symlink_to(snap)
    out = tmp_path / "m.yaml"
    r = hl("import", "--folder", snap, "--output", out)
    assert r.returncode == 0, r.stderr
    ms = by_id(load(out))
    assert list(ms) == ["model-q8_0"]
    assert ms["model-q8_0"]["config"]["model_path"] == str(snap / "Model-Q8_0.gguf")
