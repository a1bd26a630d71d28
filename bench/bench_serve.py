#!/usr/bin/env python3
"""bench_serve.py - serving under load: ours (`heylookllm serve`) against llama.cpp's OpenAI server
from llama-cpp-python (`python -m llama_cpp.server`) on the same GGUF file, in one run.

For each concurrency level, that many clients stream chat completions at once (greedy, the same
max_tokens, each its own prompt), each starting its next request as soon as one ends, until every
client has done --requests-per-client requests. Reported per server and level:
  - aggregate generation throughput: streamed content chunks (one per token for both servers)
    over the wall time of the level;
  - time to first token, p50 and p95 over all requests (client-measured: request sent -> first
    content chunk).
The servers run one at a time (never both at once) with the same thread count and context. Ours
runs --parallel sequences with continuous batching; llama-cpp-python's server serves one request
at a time (its documented behaviour), which is what its users get.

  .venv/bin/pip install -r bench/requirements.txt     # the peer's server extras, once
  .venv/bin/python bench/bench_serve.py [--model smollm2-135m-instruct] [--levels 1,4,16,64]
        [--max-tokens 64] [--requests-per-client 2] [-t 2] [--parallel 16]
"""
import argparse
import asyncio
import json
import os
import re
import socket
import statistics
import subprocess
import sys
import time

import httpx

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
BIN = os.environ.get("HEYLOOK_BIN", os.path.join(ROOT, "build", "heylookllm"))
TOPICS = ["a lighthouse", "the moon", "a cat", "rivers", "bread", "winter", "a violin", "trains", "bees",
          "a library", "volcanoes", "chess", "the sea", "a garden", "clocks", "mountains"]


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def resolve(model):
    if os.path.exists(model):
        return model
    out = subprocess.run([BIN, "models"], capture_output=True, text=True, check=True).stdout
    for line in out.splitlines():
        if line.split() and line.split()[0].rstrip("*") == model:
            m = re.search(r"(/\S+\.gguf)", line)
            if m:
                return m[1]
    sys.exit(f"cannot find the file of {model}: pull it first (heylookllm pull {model})")


def wait_http(url, proc, log, timeout=300):
    t = time.time()
    while time.time() - t < timeout:
        if proc.poll() is not None:
            sys.exit(f"server exited:\n{open(log, errors='replace').read()}")
        try:
            if httpx.get(url + "/v1/models", timeout=2).status_code == 200:
                return
        except httpx.HTTPError:
            pass
        time.sleep(0.2)
    sys.exit("server did not start")


def start(kind, model, path, model_id, threads, n_ctx, parallel):
    port = free_port()
    log = f"/tmp/bench_serve_{kind}.log"
    if kind == "heylook":  # a catalog name serves under that name, a path under its file name
        cmd = [BIN, "serve", "--model", model, "--port", str(port), "-t", str(threads), "-c", str(n_ctx),
               "--parallel", str(parallel), "--queue", "256"]
    else:
        cmd = [sys.executable, "-m", "llama_cpp.server", "--model", path, "--model_alias", model_id, "--port",
               str(port), "--n_threads", str(threads), "--n_threads_batch", str(threads), "--n_ctx", str(n_ctx),
               # queue concurrent requests instead of cutting the running stream off (its default)
               "--interrupt_requests", "False"]
    proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=open(log, "wb"))
    url = f"http://127.0.0.1:{port}"
    wait_http(url, proc, log)
    if kind == "heylook":  # wait for the pre-warm to end
        while httpx.get(url + "/health").status_code != 200:
            time.sleep(0.1)
    return proc, url


async def one_request(http, url, model, i, max_tokens):
    body = {"model": model, "temperature": 0, "max_tokens": max_tokens, "stream": True,
            "messages": [{"role": "user", "content": f"Write a long story about {TOPICS[i % len(TOPICS)]}."}]}
    t0 = time.perf_counter()
    first, n = None, 0
    async with http.stream("POST", url + "/v1/chat/completions", json=body) as r:
        if r.status_code != 200:
            raise RuntimeError(f"{r.status_code}: {(await r.aread())[:200]}")
        async for line in r.aiter_lines():
            if not line.startswith("data: ") or line.strip() == "data: [DONE]":
                continue
            ch = json.loads(line[6:])
            if ch.get("choices") and (ch["choices"][0].get("delta") or {}).get("content"):
                n += 1
                if first is None:
                    first = time.perf_counter() - t0
    return first, n


async def level(url, model, conc, per_client, max_tokens):
    limits = httpx.Limits(max_connections=conc + 4, max_keepalive_connections=conc + 4)
    async with httpx.AsyncClient(timeout=httpx.Timeout(600), limits=limits) as http:
        async def client(c):
            return [await one_request(http, url, model, c * per_client + k, max_tokens) for k in range(per_client)]

        t0 = time.perf_counter()
        results = await asyncio.gather(*(client(c) for c in range(conc)))
        wall = time.perf_counter() - t0
    flat = [x for rs in results for x in rs]
    ttft = sorted(f for f, _ in flat if f is not None)
    tokens = sum(n for _, n in flat)
    p = lambda q: ttft[min(len(ttft) - 1, max(0, int(q * len(ttft) + 0.999999) - 1))]
    return {"tps": tokens / wall, "ttft50": p(0.5), "ttft95": p(0.95), "tokens": tokens, "wall": wall}


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--model", default="smollm2-135m-instruct")
    ap.add_argument("--levels", default="1,4,16,64")
    ap.add_argument("--max-tokens", type=int, default=64)
    ap.add_argument("--requests-per-client", type=int, default=2)
    ap.add_argument("-t", "--threads", type=int, default=os.cpu_count())
    ap.add_argument("-c", "--ctx", type=int, default=1024)
    ap.add_argument("--parallel", type=int, default=16)
    a = ap.parse_args()
    path = resolve(a.model)
    model_id = a.model if not os.path.exists(a.model) else os.path.basename(a.model)[:-5]
    levels = [int(x) for x in a.levels.split(",")]
    res = {}
    for kind in ("heylook", "llama.cpp"):
        proc, url = start(kind, a.model, path, model_id, a.threads, a.ctx, a.parallel)
        try:
            asyncio.run(level(url, model_id, 1, 1, 8))  # warm-up
            for c in levels:
                res[kind, c] = asyncio.run(level(url, model_id, c, a.requests_per_client, a.max_tokens))
                r = res[kind, c]
                print(f"{kind:10s} c={c:3d}: {r['tps']:7.1f} tok/s  ttft p50 {r['ttft50'] * 1e3:7.0f} ms  "
                      f"p95 {r['ttft95'] * 1e3:7.0f} ms  ({r['tokens']} tokens in {r['wall']:.1f} s)", flush=True)
        finally:
            proc.terminate()
            proc.wait()
    print(f"\n{a.model}, {a.threads} threads, ctx {a.ctx}, max_tokens {a.max_tokens}, "
          f"{a.requests_per_client} requests per client; ours --parallel {a.parallel}")
    print("| clients | heylook tok/s | llama.cpp tok/s | ratio | heylook TTFT p50 / p95 ms | llama.cpp TTFT p50 / p95 ms |")
    print("|---:|---:|---:|---:|---:|---:|")
    for c in levels:
        h, l = res["heylook", c], res["llama.cpp", c]
        print(f"| {c} | {h['tps']:.1f} | {l['tps']:.1f} | {h['tps'] / l['tps']:.2f} | "
              f"{h['ttft50'] * 1e3:.0f} / {h['ttft95'] * 1e3:.0f} | {l['ttft50'] * 1e3:.0f} / {l['ttft95'] * 1e3:.0f} |")


if __name__ == "__main__":
    main()
