#!/usr/bin/env bash
# test_gpu.sh - the GPU tests (`make test-gpu`; run `make cuda` first): the CUDA kernels against
# the CPU reference, then every architecture x weight type end to end, CPU against CUDA, on small
# synthetic models (tests/gpu/test_cuda.c says what each test checks and to what tolerance).
#
#   scripts/test_gpu.sh [MODEL.gguf ...]    the given GGUF files join the end-to-end run
#
# Steps: 1. $BIN/test_gpu (kernel tests); 2. `$BIN/heylookllm synth` writes the models (llama,
# qwen2, gemma3 x F32 F16 BF16 Q4_0 Q4_1 Q5_0 Q5_1 Q8_0 Q2_K Q3_K Q4_K Q5_K Q6_K Q4_K_M, plus a
# 576-wide llama of 9 heads whose K-quant rows fall back to legacy types) into $OUTDIR, reusing
# those newer than the binary; 3. HL_GPU_MODELS=<all of them> $BIN/test_gpu cuda_e2e.
# Environment: BIN (the build dir; default build-cuda), VOCAB (the GGUF the models take their
# tokenizer from; default .cache/vocab/ggml-vocab-llama-spm.gguf), OUTDIR (default
# /tmp/hl-gpu-models), SKIP_KERNELS=1 (steps 2-3 only), SYNTH_ONLY=1 (step 2 only: checks the
# synth commands on a machine without a GPU or a CUDA build), SANITIZE=1 (kernel tests under
# compute-sanitizer; slow). Without a GPU the test binary says so and passes.
# Exit status: 0 when every step passed, 1 otherwise, 2 on a usage or setup error.
set -euo pipefail
cd "$(dirname "$0")/.."

bin="${BIN:-build-cuda}"
vocab="${VOCAB:-.cache/vocab/ggml-vocab-llama-spm.gguf}"
outdir="${OUTDIR:-/tmp/hl-gpu-models}"
synth_only="${SYNTH_ONLY:-0}"

for m in "$@"; do
    if [ ! -f "$m" ]; then
        echo "test_gpu.sh: $m: no such model file" >&2
        exit 2
    fi
done
if [ ! -x "$bin/heylookllm" ]; then
    echo "test_gpu.sh: $bin/heylookllm is not built (make cuda, or set BIN)" >&2
    exit 2
fi
if [ "$synth_only" != 1 ] && [ ! -x "$bin/test_gpu" ]; then
    echo "test_gpu.sh: $bin/test_gpu is not built (make cuda, or set BIN)" >&2
    exit 2
fi
if [ ! -f "$vocab" ]; then
    echo "test_gpu.sh: no tokenizer file $vocab (set VOCAB to any GGUF with a vocabulary)" >&2
    exit 2
fi
mkdir -p "$outdir"

status=0
kernels="skipped"
t0=$SECONDS

# --- 1. kernel tests ----------------------------------------------------------------------------
if [ "$synth_only" != 1 ] && [ "${SKIP_KERNELS:-0}" != 1 ]; then
    echo "== kernel tests ($bin/test_gpu)"
    run=("$bin/test_gpu")
    if [ "${SANITIZE:-0}" = 1 ]; then
        run=(compute-sanitizer --tool memcheck --error-exitcode 1 "${run[@]}")
    fi
    # HL_GPU_MODELS unset here: the end-to-end test skips (step 3 runs it)
    if env -u HL_GPU_MODELS "${run[@]}" 2>&1 | tee "$outdir/kernels.log"; then
        kernels="passed"
    else
        kernels="FAILED"
        status=1
    fi
fi

# --- 2. synthetic models ------------------------------------------------------------------------
archs=(llama qwen2 gemma3)
types=(F32 F16 BF16 Q4_0 Q4_1 Q5_0 Q5_1 Q8_0 Q2_K Q3_K Q4_K Q5_K Q6_K Q4_K_M)
shape=(--n-embd 256 --n-layer 2 --n-head 4 --n-head-kv 2 --n-ff 512 --n-vocab 2048 --seed 1)
models=()
synth_failed=0

# synth NAME ARGS...: writes $outdir/NAME.gguf unless it is there and newer than the binary.
synth() {
    local name="$1" out="$outdir/$1.gguf"
    shift
    if [ -f "$out" ] && [ "$out" -nt "$bin/heylookllm" ]; then
        models+=("$out")
        return 0
    fi
    if "$bin/heylookllm" synth "$@" --vocab-from "$vocab" -o "$out.tmp" 2>"$outdir/$name.synth.log"; then
        mv "$out.tmp" "$out"
        models+=("$out")
    else
        echo "test_gpu.sh: synth $name failed:" >&2
        cat "$outdir/$name.synth.log" >&2
        rm -f "$out.tmp"
        synth_failed=$((synth_failed + 1))
    fi
}

echo "== synthetic models in $outdir"
for arch in "${archs[@]}"; do
    extra=()
    # a short sliding window, so the end-to-end prompts (up to 92 positions) cross it
    [ "$arch" = gemma3 ] && extra=(--sliding-window 16)
    for type in "${types[@]}"; do
        synth "synth-$arch-$type" --arch "$arch" --type "$type" "${shape[@]}" ${extra[@]+"${extra[@]}"}
    done
done
# 9 heads of 64 over 3 KV heads (the attention kernel's 3-heads-per-block case), rows of 576
# and 1536: K-quant tensors fall back to legacy types, so one model mixes weight types
synth "synth-llama576-Q4_K_M" --arch llama --type Q4_K_M --n-embd 576 --n-layer 2 --n-head 9 \
    --n-head-kv 3 --n-ff 1536 --n-vocab 2048 --seed 1 --untied
n_synth=${#models[@]}
echo "$n_synth models ready ($synth_failed failed)"
[ "$synth_failed" = 0 ] || status=1
models+=("$@")

# --- 3. end to end ------------------------------------------------------------------------------
e2e="skipped"
if [ "$synth_only" != 1 ] && [ "${#models[@]}" -gt 0 ]; then
    echo "== end to end, CPU vs CUDA (${#models[@]} models)"
    list=$(IFS=:; echo "${models[*]}")
    if HL_GPU_MODELS="$list" "$bin/test_gpu" cuda_e2e 2>&1 | tee "$outdir/e2e.log"; then
        e2e="passed"
    else
        e2e="FAILED"
        status=1
    fi
fi

# --- summary ------------------------------------------------------------------------------------
echo
echo "== summary ($((SECONDS - t0)) s; logs in $outdir)"
echo "kernel tests: $kernels"
if [ -f "$outdir/kernels.log" ] && [ "$kernels" != skipped ]; then
    grep -E '^(gpu|unit):|^cuda_' "$outdir/kernels.log" | sed 's/^/  /' || true
    grep -E '^FAIL' "$outdir/kernels.log" | head -n 20 | sed 's/^/  /' || true
fi
echo "models: $n_synth synthetic ($synth_failed failed to write) and $# given"
echo "end to end: $e2e"
if [ "$e2e" != skipped ]; then
    grep -E '^(e2e|gpu|unit):|^e2e ' "$outdir/e2e.log" | sed 's/^/  /' || true
    grep -E '^FAIL' "$outdir/e2e.log" | head -n 40 | sed 's/^/  /' || true
fi
exit $status
