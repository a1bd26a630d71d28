#!/usr/bin/env bash
# bench_gpu.sh - the CUDA backend's figures at the shapes of ANCHORS.md, on
# the GPU machine: synthesizes the models (llama.cpp's mix: Q6_K output
# matrix), then `heylookllm bench` per model: pp512, tg128 and 64
# sequences decoding together (128-token prompts, 128 new tokens each).
#
#   bench/bench_gpu.sh [MODEL_SPEC...]     spec = shape:type, e.g. llama32-1b-like:Q4_0
#
# Env: BIN (default build-cuda/heylookllm), VOCAB (a GGUF whose vocabulary
# is copied; default .cache/vocab/ggml-vocab-llama-bpe.gguf), DIR (where
# models are written; default /tmp/hl-bench), REPS (default 3), PAR (64).
set -euo pipefail
BIN=${BIN:-build-cuda/heylookllm}
VOCAB=${VOCAB:-.cache/vocab/ggml-vocab-llama-bpe.gguf}
DIR=${DIR:-/tmp/hl-bench}
REPS=${REPS:-3}
PAR=${PAR:-64}
specs=("$@")
[ ${#specs[@]} -gt 0 ] || specs=(llama32-1b-like:Q4_0 llama32-1b-like:Q8_0 llama32-1b-like:Q4_K_M
                                llama31-8b-like:Q4_0 llama31-8b-like:Q4_K_M)
mkdir -p "$DIR"
for spec in "${specs[@]}"; do
    shape=${spec%%:*} type=${spec##*:}
    out="$DIR/$shape-$type.gguf"
    otype=Q6_K
    if [ ! -f "$out" ]; then
        t0=$(date +%s)
        "$BIN" synth --shape "$shape" --type "$type" --output-type "$otype" --vocab-from "$VOCAB" -o "$out" >/dev/null
        echo "synth $shape $type: $(( $(date +%s) - t0 )) s, $(du -m "$out" | cut -f1) MiB"
    fi
    par=()
    case "$shape:$type" in llama32-1b-like:Q4_0) par=(--parallel "$PAR" --parallel-prompt 128) ;; esac
    echo "== $shape $type"
    "$BIN" bench --backend cuda --model "$out" -p 512 -n 128 -r "$REPS" "${par[@]}"
done
