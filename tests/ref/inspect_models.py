#!/usr/bin/env python3
"""inspect_models.py - report what a GGUF file really holds.

Usage: inspect_models.py FILE.gguf [FILE.gguf ...] [--json]

For each file prints: size, sha256, GGUF version, general.architecture/name/
size_label/file_type, tokenizer model/pre, context length, n_layer, n_embd,
tensor count, tensor type counts, parameter count, and whether the file is
complete: the tensor data extent the header claims (data offset + the end of
the furthest tensor) compared with the file size. A truncated file (e.g. a
chunked model missing chunks) is reported as such instead of failing.

The header is parsed here (not with gguf.GGUFReader, which memory-maps the
whole file and rejects truncated ones); the `gguf` package is used only for
the type-size table and type names. Run with /work/main/.venv/bin/python.
Used to write catalog/MODELS.md.
"""
import hashlib
import json
import struct
import sys

import gguf

# GGUF metadata value types.
_SCALARS = {0: "<B", 1: "<b", 2: "<H", 3: "<h", 4: "<I", 5: "<i", 6: "<f",
            7: "<?", 10: "<Q", 11: "<q", 12: "<d"}
_STRING, _ARRAY = 8, 9


class _Cursor:
    def __init__(self, f):
        self.f = f

    def take(self, n):
        b = self.f.read(n)
        if len(b) != n:
            raise ValueError("header truncated")
        return b

    def unpack(self, fmt):
        return struct.unpack(fmt, self.take(struct.calcsize(fmt)))[0]

    def string(self):
        n = self.unpack("<Q")
        return self.take(n).decode("utf-8", "replace")

    def value(self, vtype):
        if vtype in _SCALARS:
            return self.unpack(_SCALARS[vtype])
        if vtype == _STRING:
            return self.string()
        if vtype == _ARRAY:
            et = self.unpack("<I")
            n = self.unpack("<Q")
            # Keep only the length and the first few items of big arrays.
            items = [self.value(et) for _ in range(n)]
            return {"len": n, "head": items[:8]}
        raise ValueError(f"bad metadata type {vtype}")


def inspect(path):
    with open(path, "rb") as f:
        f.seek(0, 2)
        size = f.tell()
        f.seek(0)
        c = _Cursor(f)
        if c.take(4) != b"GGUF":
            return {"file": path, "size": size, "error": "not a GGUF file"}
        version = c.unpack("<I")
        n_tensors = c.unpack("<Q")
        n_kv = c.unpack("<Q")
        kv = {}
        for _ in range(n_kv):
            key = c.string()
            kv[key] = c.value(c.unpack("<I"))
        tensors = []
        for _ in range(n_tensors):
            name = c.string()
            nd = c.unpack("<I")
            dims = [c.unpack("<Q") for _ in range(nd)]
            ttype = c.unpack("<I")
            off = c.unpack("<Q")
            tensors.append((name, dims, ttype, off))
        align = kv.get("general.alignment", 32)
        data_off = (f.tell() + align - 1) // align * align

    types, params, extent = {}, 0, 0
    for name, dims, ttype, off in tensors:
        n = 1
        for d in dims:
            n *= d
        params += n
        qt = gguf.GGMLQuantizationType(ttype)
        blk, tsz = gguf.GGML_QUANT_SIZES[qt]
        nbytes = n // blk * tsz
        extent = max(extent, data_off + off + nbytes)
        types[qt.name] = types.get(qt.name, 0) + 1

    h = hashlib.sha256()
    with open(path, "rb") as f:
        for b in iter(lambda: f.read(1 << 20), b""):
            h.update(b)

    arch = kv.get("general.architecture", "?")
    ft = kv.get("general.file_type")
    try:
        ft_name = gguf.LlamaFileType(ft).name if ft is not None else None
    except ValueError:
        ft_name = str(ft)
    return {
        "file": path,
        "size": size,
        "sha256": h.hexdigest(),
        "gguf_version": version,
        "architecture": arch,
        "name": kv.get("general.name"),
        "size_label": kv.get("general.size_label"),
        "file_type": ft_name,
        "tokenizer_model": kv.get("tokenizer.ggml.model"),
        "tokenizer_pre": kv.get("tokenizer.ggml.pre"),
        "vocab": (kv.get("tokenizer.ggml.tokens") or {}).get("len"),
        "context_length": kv.get(f"{arch}.context_length"),
        "n_layer": kv.get(f"{arch}.block_count"),
        "n_embd": kv.get(f"{arch}.embedding_length"),
        "n_head": kv.get(f"{arch}.attention.head_count"),
        "n_head_kv": kv.get(f"{arch}.attention.head_count_kv"),
        "n_tensors": n_tensors,
        "tensor_types": types,
        "params": params,
        "data_offset": data_off,
        "claimed_extent": extent,
        "complete": extent <= size,
    }


def main(argv):
    as_json = "--json" in argv
    files = [a for a in argv if a != "--json"]
    if not files:
        print(__doc__.split("\n\n")[1], file=sys.stderr)
        return 2
    out = [inspect(p) for p in files]
    if as_json:
        print(json.dumps(out, indent=1))
    else:
        for r in out:
            print(r["file"])
            for k, v in r.items():
                if k != "file":
                    print(f"  {k}: {v}")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
