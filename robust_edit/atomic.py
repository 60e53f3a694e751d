"""The one way robust-edit writes outputs: a file or folder is complete at its path, or
absent; a crash mid-write leaves at most a hidden temporary sibling."""

from __future__ import annotations

import os
import secrets
import shutil
import tempfile
from collections.abc import Callable
from pathlib import Path


def write_atomic(path: Path, content: bytes | str | Callable[[Path], object], *,
                 folder: bool = False) -> Path:
    """Write `content` to `path` through a temporary sibling renamed into place.
    `content` is the bytes or text of a file, or a function that writes into the temporary
    path it is given (a file, or with `folder=True` a folder)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    if folder:
        tmp = Path(tempfile.mkdtemp(prefix=f".{path.name}.", dir=path.parent))
    else:  # not mkstemp: its 0600 mode would stay on the file
        tmp = path.with_name(f".{path.name}.{os.getpid()}.{secrets.token_hex(4)}.tmp")
    try:
        if callable(content):
            content(tmp)
        else:
            tmp.write_bytes(content.encode() if isinstance(content, str) else content)
        if folder and path.exists():
            shutil.rmtree(path)  # rename cannot replace a non-empty folder
        os.replace(tmp, path)
    finally:
        if tmp.is_dir():
            shutil.rmtree(tmp)
        elif tmp.exists():
            tmp.unlink()
    return path
