#!/usr/bin/env python3
"""reference_variants.py - llama.cpp itself, checked against its own committed goldens.

    .venv/bin/python tests/ref/reference_variants.py --variant kv-f16 [--strict] [--only NAMES]
    PYTHONPATH=/path/to/other/llama_cpp .venv/bin/python tests/ref/reference_variants.py --variant build

The goldens (tests/data/golden) are llama.cpp (llama-cpp-python) on this project's build machine:
its AVX-512 build, f32 KV cache, no flash attention. This tool regenerates each model's results
with one thing changed and applies check_goldens.py's own comparison to them, so a threshold can
be judged by what the reference achieves against itself:

    build    the llama-cpp-python that this Python imports, as it is (e.g. an AVX2-only build
             put first on PYTHONPATH: same source, other SIMD code)
    kv-f16   f16 KV cache (llama.cpp's default)
    flash    flash attention on

Prints check_goldens.py's table (--strict: the issue's thresholds; default: the calibrated ones
CI asserts). Needs llama-cpp-python (not in CI). Tokenization is not compared (same tokenizer).
"""
from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from check_goldens import (CALIBRATED, COS_MIN, MODELS_TXT, ModelResult, compare,  # noqa: E402
                           format_text, golden_paths, read_models, resolve_model, select, table)
from gen_goldens import generate  # noqa: E402

VARIANTS = {"build": {}, "kv-f16": {"type_k": 1, "type_v": 1}, "flash": {"flash_attn": True}}


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--variant", required=True, choices=sorted(VARIANTS))
    ap.add_argument("--strict", action="store_true", help="the issue's thresholds")
    ap.add_argument("--only", action="append", default=[], help="model name(s), comma-separated")
    ap.add_argument("--full", action="store_true", help="also the 'full' tier")
    args = ap.parse_args(argv)
    import llama_cpp
    print(f"llama-cpp-python {llama_cpp.__version__} from {Path(llama_cpp.__file__).parent}")
    print(llama_cpp.llama_print_system_info().decode().strip())
    models = read_models(MODELS_TXT)
    by_name = {m.name: m for m in models}
    results = []
    for m in select(models, args.only, full=args.full):
        jpath, lpath = golden_paths(m.name)
        if not jpath.is_file():
            continue
        golden = json.loads(jpath.read_text(encoding="utf-8"))
        path = resolve_model(m, by_name, {}, pull=True, log=lambda *a: None)
        prompts = [p["text"] for p in golden["prompts"]]
        meta, logits = generate(m.name, path, m.spec, prompts, int(golden.get("n_predict", 32)),
                                **VARIANTS[args.variant])
        ours = [{"greedy": p["greedy"], "top5": p["top5"]} for p in meta["prompts"]]
        cos_min, tie = (COS_MIN, 0.0) if args.strict else CALIBRATED.get(m.kind, (COS_MIN, 0.0))
        prompts_res, fails = compare(golden, np.load(lpath), ours, logits, None, tie, cos_min)
        results.append(ModelResult(m.name, "FAIL" if fails else "PASS", "; ".join(fails), prompts_res))
        print(f"{m.name}: {'FAIL: ' + '; '.join(fails) if fails else 'PASS'}", flush=True)
    print()
    print(format_text(table(results)))
    passed = sum(r.status == "PASS" for r in results)
    print(f"\nllama.cpp ({args.variant}) against its goldens: {passed} passed, {len(results) - passed} failed")
    return 0


if __name__ == "__main__":
    sys.exit(main())
