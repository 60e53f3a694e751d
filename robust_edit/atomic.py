"""The one way robust-edit writes outputs: a file or folder is complete at its path, or
absent; a crash mid-write leaves at most hidden siblings, which the next write to that
path clears (a folder moved aside is put back if its replacement never arrived). Data is
fsynced before it is renamed into place, and the rename itself after, so a power loss
cannot leave a path naming a file whose bytes never reached the disk."""

from __future__ import annotations

import glob
import json
import os
import secrets
import shutil
import socket
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
    _recover_abandoned(path)
    # Not mkstemp/mkdtemp: their 0600/0700 modes would stay on the output.
    tmp = _sibling(path, "tmp")
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
            old = _sibling(path, "old")
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


def _sibling(path: Path, kind: str) -> Path:
    """A hidden sibling naming its writer (host, pid), so that what a killed writer left
    can be told from what a live one is writing."""
    return path.with_name(f".{path.name}.{socket.gethostname()}.{os.getpid()}."
                          f"{secrets.token_hex(4)}.{kind}")


def _recover_abandoned(path: Path) -> None:
    """Siblings a writer on this host left when it was killed: a temporary one is removed;
    a previous folder moved aside is put back if the new one never arrived."""
    prefix = f".{path.name}.{socket.gethostname()}."
    for sibling in path.parent.glob(glob.escape(prefix) + "*"):
        pid, _, kind = sibling.name.removeprefix(prefix).partition(".")
        if not pid.isdigit() or _alive(int(pid)):
            continue
        if kind.endswith(".old") and not path.exists():
            os.replace(sibling, path)
        elif sibling.is_dir():
            shutil.rmtree(sibling)
        else:
            sibling.unlink(missing_ok=True)


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # another user's process
        return True
    return True


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
