#!/usr/bin/env python3
"""gen_tok_golden.py - writes the tokenizer goldens that tests/unit/test_tokenizer.c checks.

    .venv/bin/python tests/ref/gen_tok_golden.py                 # every vocab in .cache/vocab
    .venv/bin/python tests/ref/gen_tok_golden.py --vocab-dir DIR --only qwen2

For each llama.cpp vocab-only file ggml-vocab-NAME.gguf (extracted from the llama-cpp-python sdist
into .cache/vocab by the CI bootstrap; not committed), llama.cpp (llama-cpp-python, vocab_only)
tokenizes a fixed list of tricky strings (unicode, emoji, CJK, numbers, whitespace runs, code,
invalid UTF-8, special-token text, plus a few of the vocab's own control / user-defined token
texts) in two modes:

    mode 1: add_special=True,  parse_special=True   (heylookllm tokenize default)
    mode 0: add_special=False, parse_special=False  (heylookllm tokenize --no-special)

and writes tests/data/tokenizer/NAME.txt, one case per two lines:

    case MODE HEX_OF_INPUT_BYTES
    ids ID ID ID ...

Lines starting with '#' are comments. Vocabularies llama.cpp cannot load are skipped.
"""
from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
OUT_DIR = REPO / "tests" / "data" / "tokenizer"

STRINGS: list[bytes] = [s.encode("utf-8") if isinstance(s, str) else s for s in [
    "",
    " ",
    "  ",
    "\t",
    "\n",
    "\n\n\n",
    " \n \n",
    "Hello world",
    " Hello World!",
    "Hello, y'all! How are you 😁 ?我想在apple工作1314151天～",
    "I'm, you're, he'll, they've, we'd, it's, I'M, YOU'RE",
    "3 33 333 3333 33333 333333 3333333 33333333 1234567890",
    "1,234,567.89 and -0.5e10 or 0x1F",
    "   leading and trailing spaces   ",
    "tabs\tand\t\tmixed \t whitespace\r\nCRLF\rCR",
    "multiple\n\n\nnewlines\n \n  \n",
    "Ünïcödé àccénts: naïve café résumé Ångström",
    "Ελληνικά, Русский, العربية, עברית, हिन्दी, ไทย, 한국어, 日本語のテキスト",
    "中文测试：你好，世界！这是一个测试。",
    "emoji: 😀😃😄 👨‍👩‍👧‍👦 🏳️‍🌈 ❤️ 👍🏽",
    "math: ∑ ∫ √ ∞ ≠ ≤ ≥ ½ ¾ ² ³ Ⅻ",
    "def f(x):\n    return x**2  # square\n\nclass A:\n\tpass\n",
    "int main(void) { printf(\"%d\\n\", a[i] >= 0 && b != NULL); }",
    "<html><body class=\"x\">&amp; &lt;tag&gt;</body></html>",
    "https://example.com/path?query=1&b=2#frag user@mail.org",
    "!!!???...,,,;;;:::---___===+++***&&&%%%$$$###@@@",
    "aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa",
    "supercalifragilisticexpialidocious antidisestablishmentarianism",
    "          ten spaces then text",
    "CamelCaseWords andALLCAPS MiXeD",
    "\u00a0non-breaking\u2003em-space\u3000ideographic",
    "zero\u200bwidth\u200cjoiner\u200d",
    "<s> </s> <unk> <pad> <mask> [CLS] [SEP] [MASK]",
    "<|endoftext|>hello<|endoftext|>",
    "<|im_start|>user\nHi there<|im_end|>\n<|im_start|>assistant\n",
    "<|begin_of_text|><|start_header_id|>user<|end_header_id|>\n\nHi<|eot_id|>",
    "<start_of_turn>user\nhello<end_of_turn>\n<start_of_turn>model\n",
    "<|user|>\nhi<|end|>\n<|assistant|>",
    "<｜begin▁of▁sentence｜>deepseek<｜end▁of▁sentence｜>",
    b"invalid \xff\xfe utf8 \xc3 truncated \xe2\x82",
    b"\x80\x80 lone continuation \xf0\x9f\x98",
    "mixed 123abc456 a1b2c3 v2.0.1",
    "'s 's 'S 't 're 've 'm 'll 'd",
]]


def vocab_specials(llama_cpp, llm, limit=4) -> list[bytes]:
    """A few control / user-defined token texts of this vocab (by id order)."""
    vocab = llama_cpp.llama_model_get_vocab(llm._model.model)
    n = llama_cpp.llama_vocab_n_tokens(vocab)
    out = []
    for i in list(range(min(n, 300))) + list(range(max(0, n - 300), n)):
        attr = llama_cpp.llama_vocab_get_attr(vocab, i)
        if attr & (8 | 16):  # control | user-defined
            t = llama_cpp.llama_vocab_get_text(vocab, i)
            if t and t not in out and len(t) < 40:
                out.append(t)
        if len(out) >= limit:
            break
    return [b"x" + t + b" y" + t + t + b"\n" for t in out]


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--vocab-dir", default=os.environ.get("HL_VOCAB_DIR", str(REPO / ".cache" / "vocab")))
    ap.add_argument("--only", default=None, help="substring of the vocab name")
    args = ap.parse_args()

    import llama_cpp  # noqa: E402  (only needed when regenerating)

    OUT_DIR.mkdir(parents=True, exist_ok=True)
    files = sorted(Path(args.vocab_dir).glob("ggml-vocab-*.gguf"))
    if not files:
        print(f"no ggml-vocab-*.gguf in {args.vocab_dir}", file=sys.stderr)
        return 1
    for f in files:
        name = f.name[len("ggml-vocab-"):-len(".gguf")]
        if args.only and args.only not in name:
            continue
        try:
            llm = llama_cpp.Llama(model_path=str(f), vocab_only=True, verbose=False)
        except Exception as e:  # noqa: BLE001
            print(f"skip {name}: llama.cpp cannot load it ({e})")
            continue
        lines = [
            f"# tokenizer goldens for {f.name}, written by tests/ref/gen_tok_golden.py",
            f"# llama-cpp-python {llama_cpp.__version__}; mode 1 = add_special+parse_special, "
            "mode 0 = neither",
        ]
        n = 0
        for s in STRINGS + vocab_specials(llama_cpp, llm):
            for mode in (1, 0):
                ids = llm.tokenize(s, add_bos=bool(mode), special=bool(mode))
                lines.append(f"case {mode} {s.hex()}")
                lines.append("ids " + " ".join(str(i) for i in ids))
                n += 1
        (OUT_DIR / f"{name}.txt").write_text("\n".join(lines) + "\n")
        print(f"{name}: {n} cases")
        del llm
    return 0


if __name__ == "__main__":
    sys.exit(main())
