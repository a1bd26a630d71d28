"""run_speed.py - prompt and generation speed of `heylookllm run` against
llama.cpp (llama-cpp-python) on the same GGUF files, alternating the two for
several rounds, and the ratio ours / theirs.

  .venv/bin/python bench/run_speed.py [--models a,b] [--rounds 3] [-t 2] [-n 64]

Needs llama-cpp-python (scripts/regen_goldens.sh installs it). Models are the
catalog's, from the model cache (`heylookllm pull NAME` first). Prints one
markdown table; paste it into bench/RESULTS.md with the machine and commit.
"""
import argparse
import os
import re
import statistics
import subprocess
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
BIN = os.environ.get("HEYLOOK_BIN", str(REPO / "build" / "heylookllm"))
CACHE = Path(os.environ.get("HEYLOOK_MODELS", Path.home() / ".cache" / "heylook" / "models"))
MODELS = {
    "smollm2-135m-instruct": "SmolLM2-135M-Instruct.Q4_1.gguf",
    "gemma3-270m": "gemma-3-270m-q4_k_m.gguf",
    "qwen2.5-coder-0.5b-instruct": "qwen2.5-coder-0.5b-instruct-q4_k_m.gguf",
    "qwen2.5-coder-1.5b-instruct": "qwen2.5-coder-1.5b-instruct-q4_k_m.gguf",
}
PROMPT = ("The history of computing is a story of people who wanted machines to do arithmetic "
          "faster than any clerk could. Charles Babbage designed engines of brass and iron; "
          "Ada Lovelace saw that they could manipulate symbols of any kind. A century later, ")


def ours(path: Path, n: int, threads: int) -> tuple[float, float, int]:
    r = subprocess.run([BIN, "run", "--model", str(path), "--prompt", PROMPT, "-n", str(n),
                        "--temp", "0", "-t", str(threads)], capture_output=True, text=True,
                       errors="replace", check=True)
    m = re.search(r"prompt (\d+) tokens, ([\d.]+) tok/s \| generation (\d+) tokens, ([\d.]+) tok/s",
                  r.stderr)
    if not m:
        raise SystemExit(f"unexpected heylookllm output: {r.stderr[-400:]}")
    return float(m.group(2)), float(m.group(4)), int(m.group(1))


def theirs(llm, n: int) -> tuple[float, float, int]:
    import numpy as np
    import llama_cpp
    toks = llm.tokenize(PROMPT.encode(), add_bos=True, special=True)
    llm.reset()
    t0 = time.perf_counter()
    llm.eval(toks)
    t1 = time.perf_counter()
    nv = llm.n_vocab()
    for _ in range(n):
        lg = np.ctypeslib.as_array(llama_cpp.llama_get_logits_ith(llm.ctx, -1), shape=(nv,))
        llm.eval([int(lg.argmax())])
    t2 = time.perf_counter()
    return len(toks) / (t1 - t0), n / (t2 - t1), len(toks)


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--models", default=",".join(MODELS))
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("-t", "--threads", type=int, default=os.cpu_count() or 1)
    ap.add_argument("-n", type=int, default=64)
    a = ap.parse_args()
    from llama_cpp import Llama
    print("| model | prompt tok | ours pp tok/s | llama.cpp pp tok/s | pp ratio | ours tg tok/s "
          "| llama.cpp tg tok/s | tg ratio |")
    print("|---|---|---|---|---|---|---|---|")
    for name in a.models.split(","):
        path = CACHE / MODELS[name]
        llm = Llama(str(path), n_ctx=512, n_threads=a.threads, n_threads_batch=a.threads,
                    verbose=False)
        rows = {"o": [], "t": []}
        for _ in range(a.rounds):
            rows["o"].append(ours(path, a.n, a.threads))
            rows["t"].append(theirs(llm, a.n))
        del llm
        med = {k: (statistics.median(r[0] for r in v), statistics.median(r[1] for r in v))
               for k, v in rows.items()}
        print(f"| {name} | {rows['o'][0][2]} | {med['o'][0]:.1f} | {med['t'][0]:.1f} | "
              f"{med['o'][0] / med['t'][0]:.2f} | {med['o'][1]:.1f} | {med['t'][1]:.1f} | "
              f"{med['o'][1] / med['t'][1]:.2f} |", flush=True)


if __name__ == "__main__":
    main()
