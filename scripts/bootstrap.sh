#!/usr/bin/env bash
# bootstrap.sh - from a fresh Debian machine to a running heylook:
# installs the missing Debian packages, creates the test venv, fetches
# llama.cpp's vocab test files, builds, pulls the default model and starts it.
#   scripts/bootstrap.sh [SERVE-ARGS]  everything, then `heylookllm serve` on the default model
#   scripts/bootstrap.sh --no-start   everything but starting (used by `make test`)
set -euo pipefail
cd "$(dirname "$0")/.."
root=$(pwd)
start=1
if [ "${1:-}" = "--no-start" ]; then start=0; shift; fi

# Debian packages the build, the tests and the fuzzers need.
pkgs=(build-essential pkg-config clang libclang-rt-dev libpcre2-dev libarchive-dev libssl-dev libjson-c-dev libmicrohttpd-dev libyaml-dev python3 python3-venv)
missing=()
for p in "${pkgs[@]}"; do
    dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if [ ${#missing[@]} -gt 0 ]; then
    # python3 may come from elsewhere (pyenv); only insist on Debian's when there is none.
    if command -v python3 >/dev/null && python3 -c 'import venv, ensurepip' 2>/dev/null; then
        missing=("${missing[@]/python3-venv/}"); missing=("${missing[@]/python3/}")
        missing=($(printf '%s\n' "${missing[@]}" | grep -v '^$' || true))
    fi
fi
if [ ${#missing[@]} -gt 0 ]; then
    echo "bootstrap: installing ${missing[*]}"
    sudo=""; [ "$(id -u)" -ne 0 ] && sudo=sudo
    $sudo apt-get update -qq
    DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq "${missing[@]}" >/dev/null
fi

# Test tooling in the project venv; downloads cached under .cache/.
export PIP_CACHE_DIR="$root/.cache/pip"
if [ ! -x .venv/bin/python ]; then python3 -m venv .venv; fi
stamp=.venv/.requirements-test
if ! cmp -s requirements-test.txt "$stamp" 2>/dev/null; then
    .venv/bin/pip install -q -r requirements-test.txt
    cp requirements-test.txt "$stamp"
fi

# llama.cpp's vocab-only GGUF files and their expected token ids, from the
# llama-cpp-python source package (tokenizer tests read them from .cache/vocab).
if [ ! -f .cache/vocab/ggml-vocab-llama-bpe.gguf ]; then
    ver=$(sed -n 's/^llama-cpp-python==//p' requirements-ref.txt)
    mkdir -p .cache/sdist .cache/vocab
    sd=".cache/sdist/llama_cpp_python-$ver.tar.gz"
    # PyPI's JSON API names the sdist and its sha256 (seconds); `pip download`
    # of an sdist builds its metadata first (a minute and a half), so it is
    # only the fallback, for machines that reach PyPI through a mirror.
    [ -f "$sd" ] || .venv/bin/python scripts/fetch_sdist.py llama-cpp-python "$ver" "$sd" ||
        .venv/bin/pip download -q --no-deps --no-binary :all: --dest .cache/sdist "llama-cpp-python==$ver"
    tar -xzf ".cache/sdist/llama_cpp_python-$ver.tar.gz" -C .cache/vocab --strip-components=4 \
        --wildcards "llama_cpp_python-$ver/vendor/llama.cpp/models/ggml-vocab-*"
fi

make -j"$(nproc)"

if [ $start -eq 1 ]; then
    build/heylookllm pull smollm2-135m-instruct
    exec build/heylookllm serve --model smollm2-135m-instruct "$@"
fi
