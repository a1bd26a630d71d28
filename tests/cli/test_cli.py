"""End-to-end checks of the heylookllm command line on small synthetic models:
generation works for each architecture, bad input gives a clear error and a
non-zero exit (never a crash), sampling with a seed is reproducible.

Run from the repository root: .venv/bin/python -m pytest tests/cli
$HEYLOOK_BIN selects the binary (default build/heylookllm)."""
import os
import subprocess
from pathlib import Path

import numpy as np
import pytest
from gguf import GGMLQuantizationType, GGUFReader, GGUFWriter

REPO = Path(__file__).resolve().parents[2]
BIN = os.environ.get("HEYLOOK_BIN", str(REPO / "build" / "heylookllm"))
VOCAB_DIR = Path(os.environ.get("HL_VOCAB_DIR", REPO / ".cache" / "vocab"))
SPM = VOCAB_DIR / "ggml-vocab-llama-spm.gguf"
BPE = VOCAB_DIR / "ggml-vocab-qwen2.gguf"

pytestmark = pytest.mark.skipif(not SPM.exists() or not BPE.exists(),
                                reason=f"llama.cpp vocab files absent from {VOCAB_DIR}")


def hl(*args, check=False, timeout=120):
    r = subprocess.run([BIN, *map(str, args)], capture_output=True, text=True, errors="replace", timeout=timeout)
    assert r.returncode >= 0, f"heylookllm died from signal {-r.returncode}: {r.stderr}"
    if check:
        assert r.returncode == 0, r.stderr
    return r


def synth(tmp, arch="llama", typ="Q8_0", vocab=SPM, extra=()):
    out = tmp / f"{arch}-{typ}.gguf"
    hl("synth", "--arch", arch, "--type", typ, "--n-embd", 256, "--n-layer", 2, "--n-head", 4,
       "--n-head-kv", 2, "--n-ff", 512, "--n-vocab", 2048, "--vocab-from", vocab, "--seed", 7,
       *extra, "-o", out, check=True)
    return out


@pytest.fixture(scope="module")
def tmp(tmp_path_factory):
    return tmp_path_factory.mktemp("cli")


@pytest.mark.parametrize("arch", ["llama", "qwen2", "gemma3"])
def test_run_generates_and_reports_speed(tmp, arch):
    m = synth(tmp, arch, vocab=BPE if arch == "qwen2" else SPM)
    r = hl("run", "--model", m, "--prompt", "Once upon a time", "-n", 12, "--temp", 0, check=True)
    assert r.stdout.strip(), "no text generated"
    assert "prompt" in r.stderr and "tok/s" in r.stderr and "generation 12 tokens" in r.stderr


def test_synth_is_deterministic_and_readable_by_gguf_py(tmp):
    a = synth(tmp, "qwen2", "Q4_K", vocab=BPE)
    b = tmp / "again.gguf"
    hl("synth", "--arch", "qwen2", "--type", "Q4_K", "--n-embd", 256, "--n-layer", 2, "--n-head", 4,
       "--n-head-kv", 2, "--n-ff", 512, "--n-vocab", 2048, "--vocab-from", BPE, "--seed", 7,
       "-t", 1, "-o", b, check=True)
    assert a.read_bytes() == b.read_bytes(), "same seed, different threads: different file"
    r = GGUFReader(str(a))
    names = {t.name: t for t in r.tensors}
    assert names["blk.0.attn_q.weight"].tensor_type == GGMLQuantizationType.Q4_K
    assert "blk.1.attn_k.bias" in names
    assert len(r.fields["tokenizer.ggml.tokens"].data) == 2048


def test_greedy_is_deterministic_and_seed_reproducible(tmp):
    m = synth(tmp)
    outs = [hl("run", "--model", m, "--prompt", "abc", "-n", 16, "--temp", 0, check=True).stdout
            for _ in range(2)]
    assert outs[0] == outs[1]
    s1 = hl("run", "--model", m, "--prompt", "abc", "-n", 16, "--temp", 1.5, "--seed", 11, check=True)
    s2 = hl("run", "--model", m, "--prompt", "abc", "-n", 16, "--temp", 1.5, "--seed", 11, check=True)
    assert s1.stdout == s2.stdout


def test_truncated_model_is_a_clear_error(tmp):
    m = synth(tmp)
    data = m.read_bytes()
    for cut in (10, 100, len(data) // 2, len(data) - 1):
        bad = tmp / "truncated.gguf"
        bad.write_bytes(data[:cut])
        r = hl("run", "--model", bad, "--prompt", "hi")
        assert r.returncode == 1 and "gguf:" in r.stderr, r.stderr


def test_garbage_model_is_a_clear_error(tmp):
    bad = tmp / "garbage.gguf"
    bad.write_bytes(np.random.default_rng(3).integers(0, 256, 4096, dtype=np.uint8).tobytes())
    r = hl("run", "--model", bad, "--prompt", "hi")
    assert r.returncode == 1 and "magic" in r.stderr.lower(), r.stderr


def write_gguf(path, arch, tensor_type=None):
    w = GGUFWriter(str(path), arch)
    src = GGUFReader(str(SPM))
    w.add_tokenizer_model("llama")
    w.add_token_list([bytes(src.fields["tokenizer.ggml.tokens"].parts[i]) for i in
                      src.fields["tokenizer.ggml.tokens"].data[:300]])
    w.add_block_count(1)
    if tensor_type is not None:
        raw = np.zeros(66 * 2, dtype=np.uint8)  # two IQ2_XXS blocks of 256
        w.add_tensor("token_embd.weight", raw, raw_shape=(2, 256), raw_dtype=tensor_type)
    w.write_header_to_file()
    w.write_kv_data_to_file()
    w.write_tensors_to_file()
    w.close()


def test_unsupported_architecture_lists_the_supported_ones(tmp):
    p = tmp / "gpt2arch.gguf"
    write_gguf(p, "gpt2")
    r = hl("run", "--model", p, "--prompt", "hi")
    assert r.returncode == 1
    assert "'gpt2' is not supported" in r.stderr and "llama, qwen2, gemma3" in r.stderr, r.stderr


def test_unsupported_weight_type_is_refused_by_name(tmp):
    m = synth(tmp)
    r = GGUFReader(str(m))
    w = GGUFWriter(str(tmp / "iq2.gguf"), "llama")
    for f in r.fields.values():
        if f.name.startswith("GGUF.") or f.name == "general.architecture":
            continue
        w.add_key_value(f.name, f.contents(), f.types[0], f.types[-1] if len(f.types) > 1 else None)
    for t in r.tensors:
        if t.name == "blk.0.attn_q.weight":  # 256 x 256 as IQ2_XXS: 66 bytes a row
            w.add_tensor(t.name, np.zeros((256, 66), dtype=np.uint8),
                         raw_dtype=GGMLQuantizationType.IQ2_XXS)
        else:
            w.add_tensor(t.name, t.data, raw_dtype=t.tensor_type)
    w.write_header_to_file()
    w.write_kv_data_to_file()
    w.write_tensors_to_file()
    w.close()
    res = hl("run", "--model", tmp / "iq2.gguf", "--prompt", "hi")
    assert res.returncode == 1
    assert "blk.0.attn_q.weight" in res.stderr and "IQ2_XXS" in res.stderr, res.stderr


def test_prompt_longer_than_context(tmp):
    m = synth(tmp)
    r = hl("run", "--model", m, "-c", 8, "--prompt", "one two three four five six seven eight nine")
    assert r.returncode == 1 and "context" in r.stderr, r.stderr


def test_unknown_model_name_and_missing_file():
    r = hl("run", "--model", "no-such-model", "--prompt", "hi")
    assert r.returncode != 0 and "smollm2-135m-instruct" in r.stderr, r.stderr


def test_tokenize_prints_ids_on_one_line(tmp):
    text = tmp / "t.txt"
    text.write_text("Hello world, hello!\n")
    r = hl("tokenize", "--model", BPE, "--file", text, check=True)
    ids = r.stdout.split()
    assert r.stdout.endswith("\n") and r.stdout.count("\n") == 1 and all(i.isdigit() for i in ids)
    r2 = hl("tokenize", "--model", BPE, "--file", text, "--no-special", check=True)
    assert len(r2.stdout.split()) <= len(ids)


def test_eval_rejects_bad_token_ids(tmp):
    m = synth(tmp)
    f = tmp / "ids.txt"
    f.write_text("1 2 999999\n")
    r = hl("eval", "--model", m, "--prompt-tokens", f)
    assert r.returncode == 1 and "bad token ids" in r.stderr


def test_prompt_longer_than_one_batch(tmp):
    # 512 tokens a batch: a longer prompt is prefilled in several batches.
    m = synth(tmp)
    r = hl("run", "--model", m, "-c", 2048, "--prompt", "word " * 700, "-n", 4, "--temp", 0, check=True)
    assert "generation 4 tokens" in r.stderr, r.stderr


# A build without CUDA carries the engine's "built without CUDA" sentence; a CUDA build does not.
WITHOUT_CUDA = os.path.exists(BIN) and b"built without CUDA (build it with `make cuda`)" in Path(BIN).read_bytes()


def check_cuda_refused(r):
    """How `--backend cuda` fails where it cannot be had: exit 1 and the reason."""
    assert r.returncode == 1, r.stderr
    if WITHOUT_CUDA:
        assert "CUDA backend cannot run" in r.stderr and "built without CUDA" in r.stderr, r.stderr
        assert "make cuda" in r.stderr, r.stderr
    else:
        assert "CUDA" in r.stderr, r.stderr


def test_run_backend_option(tmp):
    m = synth(tmp)
    args = ("run", "--model", m, "--prompt", "abc", "-n", 4, "--temp", 0)
    r = hl(*args, "--backend", "cpu", check=True)
    assert "load" in r.stderr and " on cpu | prompt" in r.stderr and "generation 4 tokens" in r.stderr, r.stderr
    if WITHOUT_CUDA:  # auto is the CPU here
        assert " on cpu | " in hl(*args, check=True).stderr
        check_cuda_refused(hl(*args, "--backend", "cuda"))
        env = {**os.environ, "HL_BACKEND": "cuda"}  # the variable applies without --backend ...
        check_cuda_refused(subprocess.run([BIN, *map(str, args)], capture_output=True, text=True, env=env))
        # ... and --backend wins over it
        r = subprocess.run([BIN, *map(str, args), "--backend", "CPU"], capture_output=True, text=True, env=env)
        assert r.returncode == 0 and " on cpu | " in r.stderr, r.stderr
    for bad in ("bogus", "gpu", ""):
        r = hl(*args, "--backend", bad)
        assert r.returncode == 2 and f"--backend is auto, cpu or cuda, not '{bad}'" in r.stderr, r.stderr
    assert "--backend" in hl("run", "--help").stderr


def test_eval_backend_option(tmp):
    m = synth(tmp)
    f = tmp / "prompts.txt"
    f.write_text("Once upon a time\n")
    args = ("eval", "--model", m, "--prompts", f, "--n-predict", 2)
    cpu = hl(*args, "--backend", "cpu", check=True)
    assert cpu.stdout.count("\n") == 1 and '"greedy": [' in cpu.stdout
    if WITHOUT_CUDA:
        assert hl(*args, check=True).stdout == cpu.stdout  # auto: the same CPU run
        check_cuda_refused(hl(*args, "--backend", "cuda"))
    r = hl(*args, "--backend", "metal")
    assert r.returncode == 2 and "--backend is auto, cpu or cuda, not 'metal'" in r.stderr, r.stderr
    assert "--backend" in hl("eval", "--help").stderr


def test_bench_csv_rows_and_bandwidth(tmp):
    m = synth(tmp, "llama", "Q4_0")
    r = hl("bench", "--model", m, "-p", 16, "-n", 8, "-r", 2, "-t", 2, "--csv", check=True, timeout=300)
    lines = r.stdout.strip().splitlines()
    assert lines[0] == "model,test,tokens_per_s,stddev,gb_per_s,bw_fraction"
    rows = [line.split(",") for line in lines[1:]]
    assert [row[1] for row in rows] == ["pp16", "tg8"]
    for row in rows:
        assert row[0] == m.name
        tps, sd, gbs, frac = map(float, row[2:])
        assert tps > 0 and sd >= 0 and gbs > 0 and 0 < frac < 5


def test_bench_human_table_and_bad_options(tmp):
    m = synth(tmp, "llama", "Q4_0")
    r = hl("bench", "--model", m, "-p", 0, "-n", 4, "-r", 1, check=True, timeout=300)
    assert "| tg4 |" in r.stdout and "read bandwidth" in r.stdout and "| pp" not in r.stdout
    bad = hl("bench", "--model", m, "-p", "many")
    assert bad.returncode == 2 and "wants a count" in bad.stderr
    none = hl("bench", "--model", m, "-p", 0, "-n", 0)
    assert none.returncode == 2


def test_synth_q4_k_m_mix(tmp):
    out = tmp / "km.gguf"
    hl("synth", "--arch", "llama", "--type", "Q4_K_M", "--n-embd", 256, "--n-layer", 8, "--n-head", 4,
       "--n-head-kv", 2, "--n-ff", 512, "--n-vocab", 2048, "--vocab-from", SPM, "-o", out, check=True)
    types = {t.name: t.tensor_type for t in GGUFReader(out).tensors}
    assert types["token_embd.weight"] == GGMLQuantizationType.Q6_K
    assert types["blk.1.attn_q.weight"] == GGMLQuantizationType.Q4_K
    # llama.cpp's use_more_bits: first and last eighth, then every third layer
    more = [i for i in range(8) if types[f"blk.{i}.attn_v.weight"] == GGMLQuantizationType.Q6_K]
    assert more == [0, 3, 6, 7]
    assert all(types[f"blk.{i}.ffn_down.weight"] == types[f"blk.{i}.attn_v.weight"] for i in range(8))
