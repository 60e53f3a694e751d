"""The one way robust-edit writes outputs: a file or folder is complete at its path, or
absent; a crash mid-write leaves at most hidden temporary siblings. Written data is
fsynced before it is renamed into place, and the rename itself after, so a power loss
cannot leave a path naming a file whose bytes never reached the disk."""

from __future__ import annotations

import json
import os
import secrets
import shutil
from collections.abc import Callable
from pathlib import Path


def write_atomic(path: Path, content: bytes | str | Callable[[Path], object], *,
                 folder: bool = False) -> Path:
    """Write `content` to `path` through a temporary sibling renamed into place.
    `content` is the bytes or text of a file, or a function that writes into the temporary
    path it is given (a file, or with `folder=True` a folder). A folder already at `path`
    is moved aside first and removed only once the new one is in place."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    # Not mkstemp/mkdtemp: their 0600/0700 modes would stay on the output.
    tmp = path.with_name(f".{path.name}.{os.getpid()}.{secrets.token_hex(4)}.tmp")
    if folder:
        tmp.mkdir()
    try:
        if callable(content):
            content(tmp)
        else:
            tmp.write_bytes(content.encode() if isinstance(content, str) else content)
        fsync_tree(tmp)
        replacing = folder and path.exists()
        if replacing:  # rename cannot replace a non-empty folder: move it aside first
            old = path.with_name(f".{path.name}.{os.getpid()}.{secrets.token_hex(4)}.old")
            os.replace(path, old)
            try:
                os.replace(tmp, path)
            except BaseException:
                os.replace(old, path)
                raise
        else:
            os.replace(tmp, path)
        _fsync(path.parent)
        if replacing:
            shutil.rmtree(old)
    finally:
        if tmp.is_dir():
            shutil.rmtree(tmp)
        elif tmp.exists():
            tmp.unlink()
    return path


def _fsync(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY)  # a folder too: its fsync makes its entries durable
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def fsync_tree(path: Path) -> None:
    """Flush a file, or a folder with every file and folder in it, to disk."""
    path = Path(path)
    if path.is_dir():
        for sub in path.rglob("*"):
            if not sub.is_symlink():
                _fsync(sub)
    _fsync(path)


def claim_output(path: Path, manifest: str, *, force: bool, key: str | None = None) -> bool:
    """Check, before any compute, that a command may write its output folder `path`: it
    must be absent or empty, or hold the command's own previous output, recognised by its
    `manifest` (a JSON object, with `key` in it where commands share a manifest's name),
    which only `force` lets the command replace. Anything else is refused with a
    ValueError, so no command deletes or overwrites what it did not create. Returns
    whether a previous output is there."""
    path = Path(path)
    if not path.exists():
        return False
    if Path.cwd().resolve().is_relative_to(path.resolve()):
        raise ValueError(f"--out {path}: is the working directory or contains it; choose a new folder")
    if not path.is_dir():
        raise ValueError(f"--out {path}: exists and is not a folder; choose a new folder")
    if not any(path.iterdir()):
        return False
    try:
        ours = json.loads((path / manifest).read_text())
        ours = isinstance(ours, dict) and (key is None or key in ours)
    except (OSError, ValueError):
        ours = False
    if not ours:
        raise ValueError(f"--out {path}: exists and is not empty, and is not this command's "
                         f"output (no {manifest}); choose a new folder")
    if not force:
        raise ValueError(f"--out {path}: holds a previous output ({manifest}); pass --force to "
                         "replace it, or choose a new folder")
    return True
