# heylook - build. `make` builds the CPU program; `make test` runs everything CI runs.
# Targets: all (cpu), test, unit, asan, fuzz, bench, cuda, test-gpu, format, clean.

CC      ?= cc
PKGS    := libpcre2-8 libarchive libcrypto json-c libmicrohttpd yaml-0.1
CFLAGS  ?= -O2 -g
override CFLAGS += -std=c17 -Wall -Wextra -Werror -pthread -D_GNU_SOURCE -fno-strict-aliasing \
           $(shell pkg-config --cflags $(PKGS) 2>/dev/null)
LDLIBS  += $(shell pkg-config --libs $(PKGS) 2>/dev/null) -lm -pthread

BUILD   := build
SRCS    := $(shell find src -name '*.c' | sort)
LIBSRCS := $(filter-out src/cli/main.c,$(SRCS))
OBJS    := $(SRCS:%.c=$(BUILD)/%.o)
LIBOBJS := $(LIBSRCS:%.c=$(BUILD)/%.o)
TSRCS   := $(sort $(wildcard tests/unit/*.c))
TOBJS   := $(TSRCS:%.c=$(BUILD)/%.o)
DEPS    := $(OBJS:.o=.d) $(TOBJS:.o=.d)

# CUDA=1 (what `make cuda` sets) adds the CUDA backend: its .cu files built
# by nvcc for sm_90 plus PTX for other GPUs, cudart linked statically, and
# cuBLAS from the toolkit.
CUDA      ?= 0
CUDA_HOME ?= /usr/local/cuda
NVCC      ?= $(CUDA_HOME)/bin/nvcc
NVCCFLAGS ?= -O3
CUDA_ARCH := -gencode arch=compute_90,code=sm_90 -gencode arch=compute_90,code=compute_90
ifeq ($(CUDA),1)
override CFLAGS += -DHL_CUDA -I$(CUDA_HOME)/include
CUSRCS  := $(sort $(wildcard src/backend/cuda/*.cu))
CUOBJS  := $(CUSRCS:%.cu=$(BUILD)/%.o)
OBJS    += $(CUOBJS)
LIBOBJS += $(CUOBJS)
LDLIBS  += -L$(CUDA_HOME)/lib64 -lcublas -lcudart_static -ldl -lrt -lstdc++
endif

.PHONY: all cpu test unit asan fuzz fuzz-smoke bench cuda test-gpu format clean
all cpu: $(BUILD)/heylookllm

$(BUILD)/heylookllm: $(OBJS)
	$(CC) $(CFLAGS) -o $@ $^ $(LDLIBS)

$(BUILD)/test_unit: $(LIBOBJS) $(TOBJS)
	$(CC) $(CFLAGS) -o $@ $^ $(LDLIBS)

$(BUILD)/%.o: %.c
	@mkdir -p $(dir $@)
	$(CC) $(CFLAGS) -MMD -MP -c -o $@ $<

# Each SIMD path's files get that path's instruction set; kernels.c enters
# them only on CPUs that have it, so one binary runs everywhere.
AVX2_FLAGS   := -mavx2 -mfma -mf16c -mbmi2
AVX512_FLAGS := $(AVX2_FLAGS) -mavx512f -mavx512bw -mavx512vl -mavx512dq -mavx512vnni
$(BUILD)/%_avx2.o: %_avx2.c
	@mkdir -p $(dir $@)
	$(CC) $(CFLAGS) $(AVX2_FLAGS) -MMD -MP -c -o $@ $<
$(BUILD)/%_avx512.o: %_avx512.c
	@mkdir -p $(dir $@)
	$(CC) $(CFLAGS) $(AVX512_FLAGS) -MMD -MP -c -o $@ $<
$(BUILD)/%_amx.o: %_amx.c
	@mkdir -p $(dir $@)
	$(CC) $(CFLAGS) $(AVX512_FLAGS) -mamx-tile -mamx-int8 -MMD -MP -c -o $@ $<

$(BUILD)/%.o: %.cu $(wildcard src/backend/cuda/*.h)
	@mkdir -p $(dir $@)
	$(NVCC) -std=c++17 $(NVCCFLAGS) $(CUDA_ARCH) -Xcompiler -Wall,-Wextra,-Werror,-fno-strict-aliasing -c -o $@ $<

# GPU tests: kernels against the CPU reference, and whole models on both
# backends (tests/gpu). Without a GPU they say so and pass.
GTSRCS := $(sort $(wildcard tests/gpu/*.c)) tests/unit/test_main.c
$(BUILD)/test_gpu: $(LIBOBJS) $(GTSRCS:%.c=$(BUILD)/%.o)
	$(CC) $(CFLAGS) -o $@ $^ $(LDLIBS)

-include $(DEPS)

# The whole suite: unit tests, the same under ASan+UBSan, a short run of every
# fuzzer, the command-line, template and server tests (the server tests also
# against the ASan+UBSan build), then the reference tests against the
# committed llama.cpp goldens; then, where nvcc exists, the CUDA build and its
# tests (which skip without a GPU, so the build never rots). Installs what is
# missing first.
JOBS ?= $(shell nproc 2>/dev/null || echo 2)
test:
	scripts/bootstrap.sh --no-start
	$(MAKE) -j$(JOBS) unit
	$(MAKE) -j$(JOBS) asan
	$(MAKE) -j$(JOBS) fuzz-smoke
	.venv/bin/python -m pytest -q tests/cli tests/template tests/server
	HEYLOOK_BIN=build-asan/heylookllm ASAN_OPTIONS=detect_leaks=1 .venv/bin/python -m pytest -q tests/server
	scripts/test_ref.sh
	@if [ -x "$(NVCC)" ]; then $(MAKE) -j$(JOBS) cuda && build-cuda/test_gpu; \
	 else echo "make test: no nvcc at $(NVCC): the CUDA build is skipped"; fi

unit: $(BUILD)/test_unit $(BUILD)/heylookllm
	$(BUILD)/test_unit

ASAN_FLAGS := -O1 -g -fsanitize=address,undefined -fno-omit-frame-pointer -fno-sanitize-recover=all
asan:
	$(MAKE) BUILD=build-asan CFLAGS="$(ASAN_FLAGS)" build-asan/test_unit build-asan/heylookllm
	ASAN_OPTIONS=detect_leaks=1 UBSAN_OPTIONS=print_stacktrace=1 build-asan/test_unit

# libFuzzer targets, one per parser of untrusted bytes (needs clang).
FUZZ_FLAGS := -O1 -g -fsanitize=fuzzer-no-link,address,undefined
fuzz:
	$(MAKE) BUILD=build-fuzz CC=clang CFLAGS="$(FUZZ_FLAGS)" $(patsubst %.c,build-fuzz/%.o,$(filter-out src/cli/%,$(LIBSRCS)))
	@for f in fuzz/fuzz_*.c; do n=$$(basename $$f .c); \
	  echo "clang $$f -> build-fuzz/$$n"; \
	  clang $(FUZZ_FLAGS) -fsanitize=fuzzer -std=c17 -D_GNU_SOURCE $$f \
	    $(patsubst %.c,build-fuzz/%.o,$(filter-out src/cli/%,$(LIBSRCS))) -o build-fuzz/$$n $(LDLIBS) || exit 1; done

# Each fuzzer for FUZZ_SECONDS on its seed corpus (new inputs go to a temp dir).
FUZZ_SECONDS ?= 20
fuzz-smoke: fuzz
	@for f in build-fuzz/fuzz_*; do n=$${f#build-fuzz/fuzz_}; d=$$(mktemp -d); \
	  seeds=fuzz/corpus/$$n; [ -d $$seeds ] || seeds=; \
	  echo "fuzz $$n: $(FUZZ_SECONDS) s"; \
	  if ! $$f -max_total_time=$(FUZZ_SECONDS) $$d $$seeds >$$d.log 2>&1; then \
	    tail -n 40 $$d.log; rm -rf $$d $$d.log; exit 1; fi; \
	  tail -n 1 $$d.log; rm -rf $$d $$d.log; done

# Micro-benchmarks linked against the program's objects (bench/*.py drive them).
bench: $(BUILD)/bench_json
$(BUILD)/bench_json: bench/bench_json.c $(LIBOBJS)
	$(CC) $(CFLAGS) -o $@ $^ $(LDLIBS)

cuda:
	$(MAKE) BUILD=build-cuda CUDA=1 build-cuda/heylookllm build-cuda/test_gpu

# On a GPU machine: the kernel tests, then CPU-vs-CUDA on synthetic models
# of every architecture and weight type (scripts/test_gpu.sh).
test-gpu: cuda
	scripts/test_gpu.sh

format:
	clang-format -i $(SRCS) $(TSRCS) $(wildcard src/*/*.h src/*/*/*.h tests/unit/*.h fuzz/*.c)

clean:
	rm -rf build build-asan build-fuzz build-cuda
