#!/usr/bin/env bash
# regen_goldens.sh - regenerates the llama.cpp reference goldens in tests/data/golden
# (and the tokenizer goldens in tests/data/tokenizer). Builds llama-cpp-python for
# this CPU once (a few minutes) and caches the wheel under .cache/wheels.
#   scripts/regen_goldens.sh [gen_goldens.py args, e.g. --only NAME]
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/bootstrap.sh --no-start
export PIP_CACHE_DIR="$PWD/.cache/pip"
if ! .venv/bin/python -c 'import llama_cpp' 2>/dev/null; then
    spec=$(grep -v '^#' requirements-ref.txt)
    ls .cache/wheels/llama_cpp_python-*.whl >/dev/null 2>&1 ||
        CMAKE_ARGS="-DGGML_NATIVE=ON" .venv/bin/pip wheel --no-deps -w .cache/wheels "$spec"
    .venv/bin/pip install -q .cache/wheels/llama_cpp_python-*.whl
fi
.venv/bin/python tests/ref/gen_goldens.py "$@"
.venv/bin/python tests/ref/gen_tok_golden.py
