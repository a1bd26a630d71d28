"""bench_cpu.py - heylook's CPU engine against llama.cpp, side by side, on the
same GGUF files: pp512 and tg128 as llama-bench defines them.

  .venv/bin/python bench/bench_cpu.py [--rounds 3] [-t 2] [--models a,b] [--set catalog|synth|all]

The set: every catalog model in the model cache (`heylookllm pull NAME`), plus
synthetic smollm2-135m-like and llama32-1b-like files in Q8_0, Q4_0 and
Q4_K_M, written once by `heylookllm synth` into .cache/bench/ (the Q4_0 ones
with llama.cpp's Q6_K output matrix, which falls back to Q8_0 on widths that
are not a multiple of 256, as llama.cpp's quantizer does).

Each round runs ours (`heylookllm bench --csv -r 1`, a subprocess) and then
llama.cpp (llama-cpp-python, loaded once per model, driven through
llama_decode exactly as llama-bench drives it: one 512-token batch into an
empty cache; 128 single-token decodes from an empty cache; a warm-up run of
each first), alternating, so drift of the machine hits both. The figure per
engine is the median over rounds; ratio = ours / llama.cpp. Prints a
markdown table for bench/RESULTS.md.

Needs llama-cpp-python built for this CPU (scripts/regen_goldens.sh).
"""
import argparse
import os
import statistics
import subprocess
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
BIN = os.environ.get("HEYLOOK_BIN", str(REPO / "build" / "heylookllm"))
CACHE = Path(os.environ.get("HEYLOOK_MODELS", Path.home() / ".cache" / "heylook" / "models"))
SYNTH_DIR = REPO / ".cache" / "bench"
CATALOG = {
    "smollm2-135m-instruct": "SmolLM2-135M-Instruct.Q4_1.gguf",
    "gemma3-270m": "gemma-3-270m-q4_k_m.gguf",
    "qwen2.5-coder-0.5b-instruct": "qwen2.5-coder-0.5b-instruct-q4_k_m.gguf",
    "qwen2.5-coder-1.5b-instruct": "qwen2.5-coder-1.5b-instruct-q4_k_m.gguf",
}
SYNTH = [(shape, t) for shape in ("smollm2-135m-like", "llama32-1b-like")
         for t in ("Q8_0", "Q4_0", "Q4_K_M")]


def synth_path(shape: str, t: str) -> Path:
    p = SYNTH_DIR / f"{shape}-{t.lower()}.gguf"
    if not p.exists():
        SYNTH_DIR.mkdir(parents=True, exist_ok=True)
        vocab = CACHE / CATALOG["smollm2-135m-instruct"]
        args = [BIN, "synth", "--shape", shape, "--type", t, "--vocab-from", str(vocab), "-o", str(p)]
        if t == "Q4_0":
            args[5:5] = ["--output-type", "Q6_K"]
        subprocess.run(args, check=True, stderr=subprocess.DEVNULL)
    return p


def ours(path: Path, threads: int, n_pp: int, n_tg: int) -> dict:
    r = subprocess.run([BIN, "bench", "--model", str(path), "-p", str(n_pp), "-n", str(n_tg), "-r", "1",
                        "-t", str(threads), "--csv"], capture_output=True, text=True, check=True)
    rows = [line.split(",") for line in r.stdout.strip().splitlines()[1:]]
    return {row[1]: (float(row[2]), float(row[4]), float(row[5])) for row in rows}


class Peer:
    """llama.cpp through llama-cpp-python's C API, as llama-bench runs it."""

    def __init__(self, path: Path, threads: int, n_pp: int, n_tg: int):
        import llama_cpp
        self.lc = llama_cpp
        self.llm = llama_cpp.Llama(str(path), n_ctx=max(n_pp, n_tg) + 16, n_batch=max(n_pp, 1),
                                   n_ubatch=max(n_pp, 1), n_threads=threads, n_threads_batch=threads,
                                   flash_attn=False, verbose=False)
        self.n_vocab = self.llm.n_vocab()
        self.n_pp, self.n_tg = n_pp, n_tg

    def _clear(self):
        self.lc.llama_memory_clear(self.lc.llama_get_memory(self.llm.ctx), True)

    def _decode(self, toks):
        arr = (self.lc.llama_token * len(toks))(*toks)
        if self.lc.llama_decode(self.llm.ctx, self.lc.llama_batch_get_one(arr, len(toks))) != 0:
            raise SystemExit("llama_decode failed")

    def pp(self) -> float:
        toks = [(i * 7919 + 13) % self.n_vocab for i in range(self.n_pp)]
        self._clear()
        t0 = time.perf_counter()
        self._decode(toks)
        self.lc.llama_synchronize(self.llm.ctx)
        return self.n_pp / (time.perf_counter() - t0)

    def tg(self) -> float:
        self._clear()
        t0 = time.perf_counter()
        for i in range(self.n_tg):
            self._decode([(i * 7919 + 13) % self.n_vocab])
        self.lc.llama_synchronize(self.llm.ctx)
        return self.n_tg / (time.perf_counter() - t0)

    def close(self):
        self.llm.close()


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("-t", "--threads", type=int, default=2)
    ap.add_argument("-p", type=int, default=512)
    ap.add_argument("-n", type=int, default=128)
    ap.add_argument("--set", choices=["catalog", "synth", "all"], default="all")
    ap.add_argument("--models", default="", help="comma-separated names (catalog names or shape-TYPE)")
    a = ap.parse_args()
    items = []
    if a.set in ("catalog", "all"):
        items += [(n, CACHE / f) for n, f in CATALOG.items() if (CACHE / f).exists()]
    if a.set in ("synth", "all"):
        items += [(f"{s}-{t}", None) for s, t in SYNTH]
    if a.models:
        keep = set(a.models.split(","))
        items = [it for it in items if it[0] in keep]
    pp, tg = f"pp{a.p}", f"tg{a.n}"
    print(f"| model | size MB | ours {pp} | llama.cpp {pp} | ratio | ours {tg} | llama.cpp {tg} | ratio "
          f"| ours tg GB/s | of bandwidth |")
    print("|---|---|---|---|---|---|---|---|---|---|")
    for name, path in items:
        if path is None:
            shape, t = name.rsplit("-", 1)
            path = synth_path(shape, t)
        peer = Peer(path, a.threads, a.p, a.n)
        peer.pp(), peer.tg()  # warm-up
        o_pp, o_tg, t_pp, t_tg, o_gbs, o_frac = [], [], [], [], [], []
        for _ in range(a.rounds):
            r = ours(path, a.threads, a.p, a.n)
            o_pp.append(r[pp][0])
            o_tg.append(r[tg][0])
            o_gbs.append(r[tg][1])
            o_frac.append(r[tg][2])
            t_pp.append(peer.pp())
            t_tg.append(peer.tg())
        peer.close()
        m = statistics.median
        print(f"| {name} | {path.stat().st_size / 1e6:.0f} | {m(o_pp):.1f} | {m(t_pp):.1f} | "
              f"{m(o_pp) / m(t_pp):.2f} | {m(o_tg):.1f} | {m(t_tg):.1f} | {m(o_tg) / m(t_tg):.2f} | "
              f"{m(o_gbs):.1f} | {100 * m(o_frac):.0f}% |", flush=True)


if __name__ == "__main__":
    sys.exit(main())
