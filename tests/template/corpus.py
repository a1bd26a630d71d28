"""corpus.py - the real-world chat templates the template tests render.

    from corpus import templates
    for name, path, source in templates(): ...   # or (name, None, reason) when skipped

Contract. Two sources, in this order:
1. llama.cpp's collection of model templates (models/templates/*.jinja), from
   the llama-cpp-python source package that scripts/bootstrap.sh caches in
   .cache/sdist (its version from requirements-ref.txt). The first use
   extracts them into .cache/templates/ ($HL_TEMPLATE_DIR overrides), through
   a temporary directory renamed into place, so a half-done extraction is
   never taken for a corpus; later uses only read the directory.
2. tokenizer.chat_template of each catalog model cached in
   heylook's model cache (~/.cache/heylook/models/, or as $HEYLOOK_MODELS
   and $XDG_CACHE_HOME say, the rule heylookllm follows); path is then the
   .gguf file itself, so that callers can hand heylookllm the model. The gguf
   package takes ~10 s a model to read the metadata (it builds every vocab
   string), so the template read is kept in .cache/templates-gguf/, under a
   name holding the model's size and mtime: a changed model is read again.
A source that is absent gives one entry (name, None, reason) instead of
templates, so a test can skip it and say why. Names are unique and stable:
the .jinja file name without its suffix, or "gguf:" and the model file name.
"""
from __future__ import annotations

import os
import re
import shutil
import subprocess
import tempfile
from pathlib import Path

from reference import gguf_chat_template

REPO = Path(__file__).resolve().parents[2]
TEMPLATE_DIR = Path(os.environ.get("HL_TEMPLATE_DIR", REPO / ".cache" / "templates"))
GGUF_CACHE_DIR = TEMPLATE_DIR.parent / "templates-gguf"

def _models_dir() -> Path:
    # heylook's own rule (hl_models_dir in src/cli/catalog.c).
    if os.environ.get("HEYLOOK_MODELS"):
        return Path(os.environ["HEYLOOK_MODELS"])
    xdg = os.environ.get("XDG_CACHE_HOME", "")
    return Path(xdg if xdg.startswith("/") else Path.home() / ".cache") / "heylook" / "models"


MODELS_DIR = _models_dir()


def _sdist() -> Path:
    req = (REPO / "requirements-ref.txt").read_text()
    ver = re.search(r"^llama-cpp-python==(\S+)", req, re.M).group(1)
    return REPO / ".cache" / "sdist" / f"llama_cpp_python-{ver}.tar.gz"


def _extract_llama_cpp() -> str | None:
    """Fills TEMPLATE_DIR if it is absent; returns why it could not, or None."""
    if TEMPLATE_DIR.is_dir():
        return None
    sd = _sdist()
    if not sd.exists():
        return f"{sd} absent: run scripts/bootstrap.sh --no-start to fetch it"
    TEMPLATE_DIR.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix="templates.", dir=TEMPLATE_DIR.parent))
    try:
        subprocess.run(["tar", "-xzf", str(sd), "-C", str(tmp), "--strip-components=5", "--wildcards",
                        "*/vendor/llama.cpp/models/templates/*.jinja"], check=True, capture_output=True)
        if not any(tmp.glob("*.jinja")):
            return f"{sd} holds no vendor/llama.cpp/models/templates/*.jinja"
        try:
            tmp.rename(TEMPLATE_DIR)
        except OSError:  # another process got there first: use theirs
            if not TEMPLATE_DIR.is_dir():
                raise
    except subprocess.CalledProcessError as e:
        return f"extracting templates from {sd} failed: {e.stderr.decode(errors='replace').strip()}"
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    return None


def _gguf_template_cached(model: Path) -> str | None:
    st = model.stat()
    stem = GGUF_CACHE_DIR / f"{model.name}-{st.st_size}-{st.st_mtime_ns}"
    have, none = Path(f"{stem}.jinja"), Path(f"{stem}.none")
    if have.exists():
        return have.read_text(encoding="utf-8")
    if none.exists():
        return None
    src = gguf_chat_template(model)
    GGUF_CACHE_DIR.mkdir(parents=True, exist_ok=True)
    out = none if src is None else have
    tmp = Path(f"{out}.{os.getpid()}.tmp")
    tmp.write_text(src or "", encoding="utf-8")
    tmp.rename(out)
    return src


def templates() -> list[tuple[str, Path | None, str]]:
    out = []
    why = _extract_llama_cpp()
    if why:
        out.append(("llama.cpp", None, why))
    else:
        for p in sorted(TEMPLATE_DIR.glob("*.jinja")):
            out.append((p.stem, p, p.read_text(encoding="utf-8")))
    models = sorted(MODELS_DIR.glob("*.gguf")) if MODELS_DIR.is_dir() else []
    if not models:
        out.append(("gguf", None, f"no catalog models in {MODELS_DIR}: run build/heylookllm pull --all"))
    for p in models:
        src = _gguf_template_cached(p)
        if src is None:
            out.append((f"gguf:{p.name}", None, f"{p} has no tokenizer.chat_template"))
        else:
            out.append((f"gguf:{p.name}", p, src))
    return out
