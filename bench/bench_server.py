#!/usr/bin/env python3
"""bench_server.py - what the HTTP server adds on top of the engine, on the same model and prompt.

Runs `heylookllm run` (engine only: prompt and generation speed as it reports them) and then a
`heylookllm serve` of the same model, driven by a streaming /v1/completions client with the same
prompt, greedy, the same number of tokens. Prints, per round and as medians:
  - per streamed token: server inter-chunk time vs the engine's time per generated token;
  - time to first token: client-measured (request sent -> first content chunk) vs the engine's
    prompt time (prefill + first sample).
Both the `run` and the server use the same thread count. The client keeps one keep-alive
connection, as the SDK does. On a 2-core machine the Python client shares the cores with the
engine, so the per-token figure includes the client's own JSON work competing for them.

  .venv/bin/python bench/bench_server.py [--model smollm2-135m-instruct] [-n 128] [--rounds 5] [-t 2]
"""
import argparse
import json
import os
import re
import statistics
import subprocess
import sys
import time

import httpx

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
BIN = os.environ.get("HEYLOOK_BIN", os.path.join(ROOT, "build", "heylookllm"))
PROMPT = ("Here is a short story about a lighthouse keeper who finds a message in a bottle. "
          "It begins on a stormy night in November, when")


def engine_run(model, n, threads, prompt):
    r = subprocess.run([BIN, "run", "--model", model, "--prompt", prompt, "-n", str(n), "--temp", "0",
                        "-t", str(threads)], capture_output=True, text=True, check=True)
    m = re.search(r"prompt (\d+) tokens, ([\d.]+) tok/s \| generation (\d+) tokens, ([\d.]+) tok/s", r.stderr)
    if not m:
        sys.exit("cannot read run's timing line:\n" + r.stderr)
    n_prompt, pp, n_gen, tg = int(m[1]), float(m[2]), int(m[3]), float(m[4])
    return {"prompt_s": n_prompt / pp, "per_token_s": 1 / tg, "n_gen": n_gen}


def start_server(model, threads):
    log = open("/tmp/bench_server.log", "wb")
    p = subprocess.Popen([BIN, "serve", "--model", model, "--port", "0", "-t", str(threads)],
                         stdout=subprocess.DEVNULL, stderr=log)
    for _ in range(600):
        txt = open("/tmp/bench_server.log", errors="replace").read()
        m = re.search(r"listening on http://[^:]+:(\d+)", txt)
        if m and " ready in " in txt:
            return p, f"http://127.0.0.1:{m[1]}"
        if p.poll() is not None:
            sys.exit("server exited:\n" + txt)
        time.sleep(0.1)
    sys.exit("server did not become ready")


def served(http, url, model, n, prompt):
    body = {"model": model, "prompt": prompt, "max_tokens": n, "temperature": 0, "stream": True}
    times = []
    t0 = time.perf_counter()
    with http.stream("POST", url + "/v1/completions", json=body, timeout=300) as r:
        for line in r.iter_lines():
            if not line.startswith("data: ") or line == "data: [DONE]":
                continue
            ch = json.loads(line[6:])
            if ch["choices"] and ch["choices"][0]["text"]:
                times.append(time.perf_counter())
    ttft = times[0] - t0
    per_tok = (times[-1] - times[0]) / max(1, len(times) - 1)
    return {"ttft_s": ttft, "per_token_s": per_tok, "chunks": len(times)}


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--model", default="smollm2-135m-instruct")
    ap.add_argument("-n", type=int, default=128)
    ap.add_argument("--rounds", type=int, default=5)
    ap.add_argument("-t", "--threads", type=int, default=os.cpu_count())
    a = ap.parse_args()
    proc, url = start_server(a.model, a.threads)
    runs, srv = [], []
    http = httpx.Client()  # one keep-alive connection, as SDK clients keep
    try:
        served(http, url, a.model, 8, "Hello")  # warm-up
        for i in range(a.rounds):  # alternate, so drift hits both alike
            # each round its own prompt from the first token on, so the server's prefix
            # cache has nothing to reuse and both do the whole prefill
            prompt = f"Round {i + 1}. {PROMPT}"
            runs.append(engine_run(a.model, a.n, a.threads, prompt))
            srv.append(served(http, url, a.model, a.n, prompt))
            print(f"round {i + 1}: run {runs[-1]['per_token_s'] * 1e3:.2f} ms/token, prompt {runs[-1]['prompt_s'] * 1e3:.1f} ms"
                  f" | serve {srv[-1]['per_token_s'] * 1e3:.2f} ms/chunk ({srv[-1]['chunks']} chunks),"
                  f" ttft {srv[-1]['ttft_s'] * 1e3:.1f} ms", flush=True)
    finally:
        proc.terminate()
        proc.wait()
    med = statistics.median
    rt, st = med(r["per_token_s"] for r in runs), med(s["per_token_s"] for s in srv)
    rp, sp = med(r["prompt_s"] for r in runs), med(s["ttft_s"] for s in srv)
    print(f"\nmodel {a.model}, {a.n} tokens, {a.threads} threads, medians of {a.rounds} rounds")
    print(f"per token:  run {rt * 1e3:.3f} ms   serve {st * 1e3:.3f} ms   overhead {(st - rt) * 1e3:+.3f} ms "
          f"({(st / rt - 1) * 100:+.1f}%)")
    print(f"first token: run prompt {rp * 1e3:.1f} ms   serve ttft {sp * 1e3:.1f} ms   overhead {(sp - rp) * 1e3:+.1f} ms")


if __name__ == "__main__":
    main()
