#!/usr/bin/env python3
"""gen_tok_unicode.py - writes src/engine/tokenizer_unicode.c from Python's unicodedata.

    python3 tests/ref/gen_tok_unicode.py

Tables for the WordPiece (BERT) normalizer: character classes (whitespace as llama.cpp defines it,
control/format, mark, punctuation, symbol), the simple lowercase mapping, and the first code point
of each character's NFD decomposition, all as sorted ranges for binary search.
"""
import sys
import unicodedata
from pathlib import Path

OUT = Path(__file__).resolve().parents[2] / "src" / "engine" / "tokenizer_unicode.c"
WS = {0x9, 0xA, 0xB, 0xC, 0xD, 0x20, 0x85, 0xA0, 0x1680, *range(0x2000, 0x200B), 0x2028, 0x2029,
      0x202F, 0x205F, 0x3000}


def cls(cp):
    if cp in WS:
        return 1
    c = unicodedata.category(chr(cp))
    if c[0] == "C" and c != "Cn":
        return 2
    return {"M": 3, "P": 4, "S": 5}.get(c[0], 0)


def ranges_of(fn, skip0=True):
    out, prev, start = [], None, 0
    for cp in range(0x110001):
        v = fn(cp) if cp <= 0x10FFFF else None
        if v != prev:
            if prev is not None and not (skip0 and prev == 0):
                out.append((start, cp - 1, prev))
            prev, start = v, cp
    return out


def nfd_first(cp):
    if 0xD800 <= cp <= 0xDFFF:
        return 0
    d = unicodedata.normalize("NFD", chr(cp))[0]
    return ord(d) if d != chr(cp) else 0


def lower(cp):
    if 0xD800 <= cp <= 0xDFFF:
        return 0
    low = chr(cp).lower()
    return ord(low) - cp if len(low) == 1 and low != chr(cp) else 0


def table(name, rows):
    body = "\n".join("    {0x%X, 0x%X, %s}," % (a, b, v if v >= 0 else "(uint32_t)%d" % v) for a, b, v in rows)
    return f"static const uint32_t {name}[][3] = {{\n{body}\n}};\n"


def main():
    classes = ranges_of(cls)
    nfd = ranges_of(nfd_first)
    low = ranges_of(lower)  # value: delta (cp -> cp + delta), constant over the range
    src = f"""/* tokenizer_unicode.c - Unicode tables for the WordPiece (BERT) normalizer:
 * character classes, simple lowercase mapping and the first code point of
 * each character's canonical decomposition (NFD).
 *
 * Contract. Read-only data and pure lookups (binary search over sorted
 * ranges), safe from any thread. Generated from Python's unicodedata
 * (Unicode {unicodedata.unidata_version}) by tests/ref/gen_tok_unicode.py; do not edit by hand.
 */
#include <stddef.h>
#include <stdint.h>

#include "tokenizer_unicode.h"

{table("k_class", classes)}
{table("k_nfd", nfd)}
{table("k_lower", low)}
static const uint32_t *find(const uint32_t (*t)[3], size_t n, uint32_t cp) {{
    size_t lo = 0, hi = n;
    while (lo < hi) {{
        size_t mid = (lo + hi) / 2;
        if (cp < t[mid][0]) hi = mid;
        else if (cp > t[mid][1]) lo = mid + 1;
        else return t[mid];
    }}
    return NULL;
}}

int tok_uni_class(uint32_t cp) {{
    const uint32_t *r = find(k_class, sizeof k_class / sizeof k_class[0], cp);
    return r ? (int)r[2] : TOK_UNI_OTHER;
}}

uint32_t tok_uni_nfd_first(uint32_t cp) {{
    const uint32_t *r = find(k_nfd, sizeof k_nfd / sizeof k_nfd[0], cp);
    return r ? r[2] : cp;
}}

uint32_t tok_uni_lower(uint32_t cp) {{
    const uint32_t *r = find(k_lower, sizeof k_lower / sizeof k_lower[0], cp);
    return r ? cp + r[2] : cp;
}}
"""
    OUT.write_text(src)
    print(f"{OUT}: {len(classes)} class, {len(nfd)} nfd, {len(low)} lower ranges", file=sys.stderr)


if __name__ == "__main__":
    main()
