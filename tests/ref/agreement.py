#!/usr/bin/env python3
"""agreement.py - how closely two ways of running one model agree, step by step.

    tests/ref/agreement.py --model FILE [--variants avx512,scalar,kv-f32,cuda] [--bin PATH]

A model's sensitivity to rounding sets how closely any two implementations can agree. This
script measures it with heylook alone: the first variant (the baseline) decodes 32 greedy tokens
after each of 16 prompts (tests/ref/prompts.txt's 8 texts, tokenized by the model, and 8 prompts
of random token ids of the lengths tests/gpu/test_cuda.c's end-to-end test uses); then every variant
evaluates the same token sequences, teacher-forced (the prompt plus the baseline's first k
tokens, k = 0..31), so each step's logits are compared on identical inputs. Per variant against
the baseline it prints the per-step cosine (minimum, median, steps under 0.999) and how many of
the variant's own 32-token greedy continuations equal the baseline's.

Variants (names joined by commas; the first is the baseline):
    avx512, avx2, scalar   the CPU backend with HL_CPU_PATH forced to that kernel path
    cpu                    the CPU backend on its own choice of path
    kv-f32                 the CPU backend with an f32 KV cache (f16 is the default)
    cuda                   the CUDA backend (a CUDA build and a GPU)

Needs numpy and the heylookllm binary ($HEYLOOK_BIN, default build/heylookllm). The scalar path
is slow: about 10 minutes for a 135M model on 2 cores.
"""
from __future__ import annotations

import argparse
import json
import os
import random
import subprocess
import sys
import tempfile
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[2]
PROMPTS_TXT = REPO / "tests" / "ref" / "prompts.txt"
RANDOM_LENS = (5, 60, 8, 9, 33, 17, 44, 23)
N_GEN = 32

VARIANTS = {
    "cpu": ({}, ["--backend", "cpu"]),
    "avx512": ({"HL_CPU_PATH": "avx512"}, ["--backend", "cpu"]),
    "avx2": ({"HL_CPU_PATH": "avx2"}, ["--backend", "cpu"]),
    "scalar": ({"HL_CPU_PATH": "scalar"}, ["--backend", "cpu"]),
    "kv-f32": ({}, ["--backend", "cpu", "--kv-type", "f32"]),
    "cuda": ({}, ["--backend", "cuda"]),
}


def run_eval(binary: str, model: str, args: list[str], variant: str) -> list[dict]:
    env = dict(os.environ)
    extra_env, extra_args = VARIANTS[variant]
    env.update(extra_env)
    r = subprocess.run([binary, "eval", "--model", model] + args + extra_args, capture_output=True,
                       text=True, env=env)
    if r.returncode != 0:
        sys.exit(f"agreement.py: {variant}: heylookllm eval failed: {r.stderr.strip()}")
    return [json.loads(line) for line in r.stdout.splitlines() if line.startswith("{")]


def write_ids(path: Path, seqs: list[list[int]]) -> None:
    path.write_text("".join(" ".join(map(str, s)) + "\n" for s in seqs))


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--model", required=True, help="GGUF file")
    ap.add_argument("--variants", default="avx512,avx2,kv-f32",
                    help="comma-separated, the first is the baseline (default avx512,avx2,kv-f32)")
    ap.add_argument("--bin", default=os.environ.get("HEYLOOK_BIN", str(REPO / "build" / "heylookllm")))
    a = ap.parse_args()
    names = a.variants.split(",")
    bad = [n for n in names if n not in VARIANTS]
    if bad or len(names) < 2:
        ap.error(f"need two or more of {', '.join(VARIANTS)} (got {a.variants})")

    with tempfile.TemporaryDirectory() as tmp:
        tmpd = Path(tmp)
        base = names[0]
        # the texts' token ids, and the vocabulary size from their logits (f32, one row each)
        probe = tmpd / "texts.f32"
        texts = run_eval(a.bin, a.model, ["--prompts", str(PROMPTS_TXT), "--n-predict", "1",
                                          "--logits-out", str(probe)], base)
        n_vocab = probe.stat().st_size // (4 * len(texts))
        rng = random.Random(4242)
        prompts = [("text", t["tokens"]) for t in texts]
        prompts += [("random", [rng.randrange(n_vocab) for _ in range(n)]) for n in RANDOM_LENS]
        ids_file = tmpd / "prompts.txt"
        write_ids(ids_file, [p for _, p in prompts])

        greedy = {}
        for v in names:
            greedy[v] = [r["greedy"] for r in run_eval(
                a.bin, a.model, ["--prompt-tokens", str(ids_file), "--n-predict", str(N_GEN)], v)]
        forced = [p + greedy[base][i][:k] for i, (_, p) in enumerate(prompts) for k in range(N_GEN)]
        forced_file = tmpd / "forced.txt"
        write_ids(forced_file, forced)
        logits = {}
        for v in names:
            out = tmpd / f"{v}.f32"
            run_eval(a.bin, a.model, ["--prompt-tokens", str(forced_file), "--n-predict", "1",
                                      "--logits-out", str(out)], v)
            logits[v] = np.fromfile(out, dtype=np.float32).reshape(len(forced), n_vocab).astype(np.float64)

    x = logits[base]
    print(f"{Path(a.model).name}: {len(prompts)} prompts x {N_GEN} teacher-forced steps, baseline {base}")
    for v in names[1:]:
        y = logits[v]
        cos = (x * y).sum(1) / np.sqrt((x * x).sum(1) * (y * y).sum(1))
        for kind in ("text", "random"):
            idx = [i for i, (k, _) in enumerate(prompts) if k == kind]
            c = np.concatenate([cos[i * N_GEN:(i + 1) * N_GEN] for i in idx])
            same = sum(greedy[v][i] == greedy[base][i] for i in idx)
            first = [next((j for j in range(N_GEN) if greedy[v][i][j] != greedy[base][i][j]), N_GEN)
                     for i in idx]
            print(f"  {base} vs {v}, {kind} prompts: per-step cosine min {c.min():.6f} median "
                  f"{np.median(c):.6f}, {int((c < 0.999).sum())}/{len(c)} steps under 0.999; greedy "
                  f"continuations identical {same}/{len(idx)} (first differing step {first})")
    return 0


if __name__ == "__main__":
    sys.exit(main())
