"""Times our request parser (bench/bench_json.c) against orjson.loads on the
same bytes: a chat request holding a ~10 MB base64 image data URL (refused
with 400 after the whole body is parsed: the time is a full parse), and a
text-only chat request of the same size with those 10 MB in a text part
(accepted: the time includes copying the text and writing messages_json).

    make bench && .venv/bin/python bench/bench_json.py [--bin build/bench_json] [--mb 10] [--runs 20]

Prints each stage's best time and the ratio to orjson.loads (and, for
reference, Python's json.loads)."""
import argparse
import base64
import json
import os
import re
import subprocess
import tempfile
import time
from pathlib import Path

import orjson

REPO = Path(__file__).resolve().parents[1]


def requests(mb):
    raw = os.urandom(int(mb * 1e6 * 3 / 4))  # base64: 4 chars per 3 bytes
    b64 = base64.b64encode(raw).decode()
    url = "data:image/png;base64," + b64
    image = {"model": "m", "messages": [{"role": "user", "content": [
        {"type": "text", "text": "What is in this image?"},
        {"type": "image_url", "image_url": {"url": url}}]}]}
    text = {"model": "m", "messages": [{"role": "user", "content": [
        {"type": "text", "text": "What is in this image?"},
        {"type": "text", "text": url}]}]}
    return {"image": json.dumps(image).encode(), "text": json.dumps(text).encode()}


def best_of(fn, runs):
    best = float("inf")
    for _ in range(runs):
        t = time.perf_counter()
        fn()
        best = min(best, time.perf_counter() - t)
    return best


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--bin", default=str(REPO / "build" / "bench_json"))
    ap.add_argument("--mb", type=float, default=10)
    ap.add_argument("--runs", type=int, default=20)
    a = ap.parse_args()
    with tempfile.TemporaryDirectory() as d:
        for name, body in requests(a.mb).items():
            path = Path(d) / f"{name}.json"
            path.write_bytes(body)
            out = subprocess.run([a.bin, str(path), str(a.runs)], capture_output=True, text=True,
                                 check=True).stdout
            ms = {m[1]: float(m[2]) for m in re.finditer(r"^(.+?): ([\d.]+) ms", out, re.M)}
            result = re.search(r"^result: (.*)$", out, re.M)[1]
            t_or = best_of(lambda: orjson.loads(body), a.runs) * 1e3
            t_py = best_of(lambda: json.loads(body), max(1, a.runs // 4)) * 1e3
            print(f"{name} request, {len(body) / 1e6:.2f} MB, best of {a.runs}: result {result[:60]}")
            for stage, t in ms.items():
                print(f"  {stage:22s} {t:8.2f} ms  {len(body) / t / 1e3:7.0f} MB/s  "
                      f"{t / t_or:5.2f}x orjson")
            print(f"  {'orjson.loads':22s} {t_or:8.2f} ms  {len(body) / t_or / 1e3:7.0f} MB/s")
            print(f"  {'json.loads (Python)':22s} {t_py:8.2f} ms  {len(body) / t_py / 1e3:7.0f} MB/s")


if __name__ == "__main__":
    main()
