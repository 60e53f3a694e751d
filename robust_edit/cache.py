"""The user's cache folder, and sha256 of files cached by (path, size, mtime) so that keying
a large model folder by its content reads each file once, not on every plan."""

from __future__ import annotations

import hashlib
import json
import os
from pathlib import Path

from robust_edit.atomic import write_atomic

_HASHES: dict[str, list] | None = None  # path -> [size, mtime_ns, sha256], loaded once


def cache_root() -> Path:
    return Path(os.environ.get("ROBUST_EDIT_CACHE", Path.home() / ".cache" / "robust-edit"))


def _hash_index() -> Path:
    return cache_root() / "file-sha256.json"


def file_sha256(path: Path) -> str:
    global _HASHES
    path = Path(path).resolve()
    st = path.stat()
    stamp = [st.st_size, st.st_mtime_ns]
    if _HASHES is None:
        index = _hash_index()
        try:
            _HASHES = json.loads(index.read_text()) if index.exists() else {}
        except json.JSONDecodeError:  # a cache is never worth failing for
            _HASHES = {}
    hit = _HASHES.get(str(path))
    if hit and hit[:2] == stamp:
        return hit[2]
    digest = sha256_of(path)
    _HASHES[str(path)] = [*stamp, digest]
    write_atomic(_hash_index(), json.dumps(_HASHES))
    return digest


def sha256_of(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()
