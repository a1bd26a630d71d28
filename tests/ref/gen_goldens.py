#!/usr/bin/env python3
"""gen_goldens.py - writes the llama.cpp goldens that check_goldens.py compares heylook with.

    .venv/bin/python tests/ref/gen_goldens.py                  # every model of models.txt
    .venv/bin/python tests/ref/gen_goldens.py --only gemma3-270m --model-file gemma3-270m=/x.gguf

For each model of tests/ref/models.txt (file obtained as check_goldens.py does: the model cache,
`heylookllm pull`, or `heylookllm synth`) and each prompt of tests/ref/prompts.txt, llama.cpp
(llama-cpp-python) tokenizes the prompt as llama.cpp does by default (BOS/EOS per the model's
add_bos/add_eos flags, special-token text not parsed), evaluates it, keeps the last position's
logits and their top-5, then decodes 32 tokens greedily (argmax of the raw logits, no sampler,
not stopping at EOS). Writes, per model:

    tests/data/golden/NAME.json         model, file_sha256, n_vocab, settings, and per prompt
                                        text, tokens, top5 (+ logits), greedy (+ text)
    tests/data/golden/NAME.logits.npy   float16 [n_prompts, n_vocab], last-position logits

Needs llama-cpp-python (not in CI: the goldens are committed).
"""
from __future__ import annotations

import argparse
import json
import os
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from check_goldens import (GOLDEN_DIR, MODELS_TXT, N_PREDICT, PROMPTS_TXT, REPO, Unavailable,  # noqa: E402
                           cosine, golden_paths, parse_model_files, read_models, read_prompts,
                           resolve_model, select, sha256_file, topk)

N_CTX = 512
N_THREADS = 2
SEED = 1234
KV_TYPE = 0           # GGML_TYPE_F32: llama.cpp's most exact configuration (its default is F16)


def last_logits(llama_cpp, llm, n_vocab: int) -> np.ndarray:
    p = llama_cpp.llama_get_logits_ith(llm._ctx.ctx, -1)
    return np.ctypeslib.as_array(p, shape=(n_vocab,)).astype(np.float32, copy=True)


def generate(model_name: str, path: Path, spec: str, prompts: list[str], n_predict: int,
             **over) -> tuple[dict, np.ndarray]:
    import llama_cpp
    from llama_cpp import Llama

    kw = dict(n_ctx=N_CTX, n_batch=N_CTX, logits_all=False, n_threads=N_THREADS, n_threads_batch=N_THREADS,
              seed=SEED, verbose=False, flash_attn=False, type_k=KV_TYPE, type_v=KV_TYPE)
    kw.update(over)
    llm = Llama(model_path=str(path), **kw)
    n_vocab = llm.n_vocab()
    rows, out = [], []
    for text in prompts:
        toks = llm.tokenize(text.encode("utf-8"), add_bos=True, special=False)
        if len(toks) + n_predict > N_CTX:
            raise SystemExit(f"prompt of {len(toks)} tokens does not fit n_ctx {N_CTX}")
        llm.reset()
        llm.eval(toks)
        lg = last_logits(llama_cpp, llm, n_vocab)
        if not np.all(np.isfinite(lg)):
            raise SystemExit(f"{model_name}: llama.cpp gave non-finite logits")
        rows.append(lg)
        top = topk(lg)
        greedy, margins, cur = [], [], lg
        for _ in range(n_predict):
            t = int(np.argmax(cur))
            greedy.append(t)
            two = np.partition(cur, -2)[-2:]
            margins.append(round(float(two[1] - two[0]), 4))
            llm.eval([t])
            cur = last_logits(llama_cpp, llm, n_vocab)
        out.append({
            "text": text,
            "tokens": [int(t) for t in toks],
            "top5": top,
            "top5_logits": [round(float(lg[t]), 4) for t in top],
            "greedy": greedy,
            "greedy_margins": margins,   # top-1 minus top-2 logit at each greedy step
            "greedy_text": llm.detokenize(greedy).decode("utf-8", errors="replace"),
        })
    logits = np.stack(rows)
    meta = {
        "model": model_name,
        "spec": spec,
        "file_sha256": sha256_file(path),
        "n_vocab": n_vocab,
        "n_predict": n_predict,
        "llama_cpp_version": llama_cpp.__version__,
        "settings": {"n_ctx": N_CTX, "n_batch": N_CTX, "n_threads": N_THREADS, "seed": SEED,
                     "tokenize": "add_bos=True (follows the model's flags), special=False",
                     "greedy": "argmax of raw logits, no sampler, not stopping at EOS",
                     "flash_attn": False, "kv_type": "f32" if KV_TYPE == 0 else "f16"},
        "prompts": out,
    }
    del llm
    return meta, logits


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--only", action="append", default=[], help="model name(s), comma-separated; repeatable")
    ap.add_argument("--quick", action="store_true", help="only the 'quick' tier")
    ap.add_argument("--skip-missing", action="store_true", help="skip models whose file cannot be obtained")
    ap.add_argument("--model-file", action="append", default=[], metavar="NAME=PATH",
                    help="use this file for model NAME instead of the cache")
    args = ap.parse_args(argv)
    overrides = parse_model_files(args.model_file)

    try:
        import llama_cpp
    except ImportError:
        raise SystemExit("llama-cpp-python is not installed in this Python (use the project's .venv)")
    models = read_models(MODELS_TXT)
    by_name = {m.name: m for m in models}
    prompts = read_prompts(PROMPTS_TXT)
    GOLDEN_DIR.mkdir(parents=True, exist_ok=True)
    print(f"llama-cpp-python {llama_cpp.__version__}, {len(prompts)} prompts, {N_PREDICT} greedy tokens")
    failed = 0
    for m in select(models, args.only, full=not args.quick):
        t0 = time.time()
        try:
            path = resolve_model(m, by_name, overrides, pull=True, log=print)
        except Unavailable as e:
            print(f"{m.name}: SKIP ({e})" if args.skip_missing else f"{m.name}: ERROR ({e})", flush=True)
            failed += not args.skip_missing
            continue
        t1 = time.time()
        meta, logits = generate(m.name, path, m.spec, prompts, N_PREDICT)
        jpath, lpath = golden_paths(m.name)
        lg16 = logits.astype(np.float16)
        if not np.all(np.isfinite(lg16)):
            raise SystemExit(f"{m.name}: logits overflow float16")
        worst = min(cosine(lg16[i].astype(np.float32), logits[i]) for i in range(len(logits)))
        np.save(lpath, lg16)
        jpath.write_text(json.dumps(meta, indent=1, ensure_ascii=False) + "\n", encoding="utf-8")
        rel = lambda p: p.relative_to(REPO)
        print(f"{m.name}: {rel(jpath)} + {rel(lpath)} ({lpath.stat().st_size / 1e6:.2f} MB, f16 cosine "
              f"{worst:.9f}); obtain {t1 - t0:.1f} s, llama.cpp {time.time() - t1:.1f} s", flush=True)
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
