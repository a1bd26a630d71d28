#!/usr/bin/env python3
"""exact.py - how close heylook's last-position logits are to llama.cpp's, bit for bit.

    .venv/bin/python tests/ref/exact.py                    # every quick model of models.txt
    .venv/bin/python tests/ref/exact.py --only synth-llama-q4_0,gemma3-270m

The goldens keep llama.cpp's logits as float16, which hides differences below about 1e-3. This
tool runs llama.cpp (llama-cpp-python, as gen_goldens.py configures it: f32 KV cache, no flash
attention, the whole prompt in one batch) and heylook (`eval --kv-type f32`) on the same prompt
token ids, keeps both float32 logit rows, and prints per model the largest absolute difference,
how many of the 8 prompts give bit-identical logits, and the per-prompt largest differences.

What the numbers mean: a difference of ~1e-7 is float summation order in a step whose result
is not re-quantized (e.g. a K-quant's f32 activation scale); ~1e-2 is a "flip", an activation
whose 8-bit code rounded the other way in one engine; 0 means both engines did the same
arithmetic everywhere on that prompt. Needs llama-cpp-python (not in CI).
"""
from __future__ import annotations

import argparse
import sys
import tempfile
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from check_goldens import (MODELS_TXT, read_models, read_prompts, resolve_model, run_eval,  # noqa: E402
                           select)
from gen_goldens import N_THREADS, generate  # noqa: E402


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--only", action="append", default=[], help="model name(s), comma-separated")
    ap.add_argument("--full", action="store_true", help="also the 'full' tier")
    ap.add_argument("--markdown", action="store_true", help="print a markdown table")
    args = ap.parse_args(argv)
    models = read_models(MODELS_TXT)
    by_name = {m.name: m for m in models}
    prompts = read_prompts()
    if args.markdown:
        print("| model | max abs diff | prompts bit-identical | per prompt |\n|---|---|---|---|")
    for m in select(models, args.only, full=args.full):
        path = resolve_model(m, by_name, {}, pull=True, log=lambda *a: None)
        meta, ref = generate(m.name, path, m.spec, prompts, 0)  # no greedy steps
        toks = [p["tokens"] for p in meta["prompts"]]
        with tempfile.TemporaryDirectory(prefix="hlexact-") as td:
            td = Path(td)
            lo = td / "logits.f32"
            run_eval(path, [" ".join(map(str, t)) for t in toks], "prompt-tokens", 1, N_THREADS, lo, td, 900)
            ours = np.fromfile(lo, dtype="<f4").reshape(ref.shape)
        d = np.abs(ours.astype(np.float64) - ref.astype(np.float64)).max(axis=1)
        same = int((d == 0).sum())
        per = " ".join(f"{x:.1g}" for x in d)
        if args.markdown:
            print(f"| {m.name} | {d.max():.2g} | {same}/{len(d)} | {per} |", flush=True)
        else:
            print(f"{m.name:30s} max {d.max():.2g}  identical {same}/{len(d)}  [{per}]", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
