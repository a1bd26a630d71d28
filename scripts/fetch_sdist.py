"""fetch_sdist.py NAME VERSION OUT - download a package's source archive
through PyPI's simple index (its JSON form, PEP 691) and check its sha256. Exit status 1 on any failure (the
caller falls back to `pip download`)."""
import hashlib
import json
import os
import sys
import urllib.request


def main() -> int:
    name, version, out = sys.argv[1:4]
    try:
        req = urllib.request.Request(f"https://pypi.org/simple/{name}/",
                                     headers={"Accept": "application/vnd.pypi.simple.v1+json"})
        with urllib.request.urlopen(req, timeout=60) as r:
            meta = json.load(r)
        want = f"{name.replace('-', '_')}-{version}.tar.gz"
        sdist = next(u for u in meta["files"] if u["filename"] == want)
        h = hashlib.sha256()
        tmp = out + ".partial"
        with urllib.request.urlopen(sdist["url"], timeout=300) as r, open(tmp, "wb") as f:
            while chunk := r.read(1 << 20):
                h.update(chunk)
                f.write(chunk)
        if h.hexdigest() != sdist["hashes"]["sha256"]:
            os.unlink(tmp)
            print(f"fetch_sdist: sha256 mismatch for {want}", file=sys.stderr)
            return 1
        os.replace(tmp, out)
        return 0
    except Exception as exc:  # network, missing sdist: the caller falls back
        print(f"fetch_sdist: {exc}", file=sys.stderr)
        return 1


if __name__ == "__main__":
    sys.exit(main())
