#!/usr/bin/env python3
"""gen_quant_golden.py - writes tests/data/quant_golden.bin, the reference
values tests/unit/test_quant.c compares our kernels against.

Regenerate (from the repository root):
    .venv/bin/python tests/ref/gen_quant_golden.py tests/data/quant_golden.bin

The reference is the `gguf` Python package (gguf.quants, numpy). Two kinds of
record:
  'D' (dequantize): random block bytes, with every f16 scale field replaced by
      a finite value of sane magnitude, and the floats gguf-py decodes them to.
      Covers every weight type gguf-py can decode, plus F16 and BF16 bit
      patterns (NaN, Inf, subnormals included).
  'Q' (quantize): random floats and the bytes gguf-py's quantizer makes.
      Only for types whose gguf-py quantizer is the bit-exact llama.cpp
      reference (F16, BF16, Q4_0, Q4_1, Q5_0, Q5_1, Q8_0); the K-quant
      quantizers are checked by round-trip error instead.

File layout, all little-endian:
  magic "HLQGOLD1"
  records until end of file, each:
    u32 kind ('D' or 'Q'), u32 type (GGUF number), u32 n (elements),
    u32 nbytes (quantized bytes), then
      kind D: nbytes bytes, then n f32
      kind Q: n f32, then nbytes bytes
"""
import struct
import sys

import numpy as np
from gguf import GGMLQuantizationType as T
from gguf import quants
from gguf.constants import GGML_QUANT_SIZES

SEED = 20240917

# Byte offsets of the f16 scale fields ('d', 'dmin', 'm') inside one block.
HALF_FIELDS = {
    T.Q4_0: [0],
    T.Q4_1: [0, 2],
    T.Q5_0: [0],
    T.Q5_1: [0, 2],
    T.Q8_0: [0],
    T.Q2_K: [80, 82],
    T.Q3_K: [108],
    T.Q4_K: [0, 2],
    T.Q5_K: [0, 2],
    T.Q6_K: [208],
}
N_BLOCKS = {T.Q2_K: 3, T.Q3_K: 3, T.Q4_K: 3, T.Q5_K: 3, T.Q6_K: 3}


def random_blocks(rng, qtype, n_blocks):
    _, type_size = GGML_QUANT_SIZES[qtype]
    raw = rng.integers(0, 256, size=(n_blocks, type_size), dtype=np.uint8)
    # Last block: all quant bits set, so every extreme code is decoded once.
    raw[-1, :] = 0xFF
    for off in HALF_FIELDS[qtype]:
        mag = np.exp2(rng.uniform(-12.0, 0.0, size=n_blocks))
        sign = np.where(rng.integers(0, 2, size=n_blocks) == 1, -1.0, 1.0)
        h = (mag * sign).astype(np.float16)
        raw[:, off:off + 2] = h.view(np.uint8).reshape(n_blocks, 2)
    return raw


def half_patterns(rng):
    special = [0x0000, 0x8000, 0x0001, 0x8001, 0x03FF, 0x0400, 0x3C00, 0x7BFF,
               0xFBFF, 0x7C00, 0xFC00, 0x7C01, 0x7E00, 0xFE00, 0x7FFF, 0x0200]
    rnd = rng.integers(0, 65536, size=240, dtype=np.uint16)
    return np.concatenate([np.array(special, dtype=np.uint16), rnd])


def float_inputs(rng, n):
    x = rng.standard_normal(n).astype(np.float32)
    x[:8] *= np.float32(1e-5)  # f16 subnormal range
    x[8:16] *= np.float32(3e4)  # near the f16 limit
    bits = rng.integers(0, 2**32, size=n // 4, dtype=np.uint64).astype(np.uint32)
    x[16:16 + n // 4] = bits.view(np.float32)  # any pattern
    x[-8:] = np.array([0.0, -0.0, np.inf, -np.inf, np.nan, 65520.0, 65519.996, 1e-8],
                      dtype=np.float32)
    return x


def block_inputs(rng, n, block):
    x = rng.standard_normal(n).astype(np.float32)
    x = x.reshape(-1, block)
    x[0] *= np.float32(0.01)
    x[1, :] = np.float32(0.75)  # constant block
    x[2, :] = 0.0  # zero block
    x[3, 5] = np.float32(40.0)  # one outlier
    return x.reshape(-1)


def record(out, kind, qtype, n, qbytes, floats):
    out.append(struct.pack("<4I", ord(kind), int(qtype), n, len(qbytes)))
    f = np.ascontiguousarray(floats, dtype="<f4").tobytes()
    out.append(qbytes + f if kind == "D" else f + qbytes)


def main(path):
    rng = np.random.default_rng(SEED)
    out = [b"HLQGOLD1"]

    h = half_patterns(rng)
    record(out, "D", T.F16, h.size, h.tobytes(), h.view(np.float16).astype(np.float32))
    record(out, "D", T.BF16, h.size, h.tobytes(), quants.dequantize(h.view(np.uint8), T.BF16))
    for qtype in HALF_FIELDS:
        raw = random_blocks(rng, qtype, N_BLOCKS.get(qtype, 6))
        y = quants.dequantize(raw.reshape(-1), qtype)
        record(out, "D", qtype, y.size, raw.tobytes(), y)

    x = float_inputs(rng, 256)
    with np.errstate(over="ignore", invalid="ignore"):
        record(out, "Q", T.F16, x.size, x.astype(np.float16).tobytes(), x)
    record(out, "Q", T.BF16, x.size, quants.quantize(x, T.BF16).tobytes(), x)
    for qtype in (T.Q4_0, T.Q4_1, T.Q5_0, T.Q5_1, T.Q8_0):
        x = block_inputs(rng, 6 * 32, 32)
        record(out, "Q", qtype, x.size, quants.quantize(x, qtype).tobytes(), x)

    with open(path, "wb") as f:
        f.write(b"".join(out))


if __name__ == "__main__":
    main(sys.argv[1] if len(sys.argv) > 1 else "tests/data/quant_golden.bin")
