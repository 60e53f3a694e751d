"""Provenance recorded with every artifact and result row: versions, the lock, git commit."""

from __future__ import annotations

import hashlib
import os
import re
import subprocess
import sysconfig
from functools import cache
from importlib.metadata import PackageNotFoundError, distributions, version
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
LOCK = ROOT / "requirements.lock"
TRACKED_PACKAGES = ("robust-edit", "torch", "diffusers", "transformers", "peft", "accelerate",
                    "open_clip_torch", "ray", "mlflow", "duckdb", "numpy")
# What a venv holds besides the lock: its installer, and this project itself.
UNLOCKED = frozenset({"pip", "robust-edit"})
_PIN = re.compile(r"^([A-Za-z0-9][A-Za-z0-9._-]*)==([^\s;\\]+)")


def canonical(name: str) -> str:
    """PEP 503 name: the lock writes `open-clip-torch`, the metadata `open_clip_torch`."""
    return re.sub(r"[-_.]+", "-", name).lower()


def lock_pins(path: Path = LOCK) -> dict[str, str]:
    """{canonical name: version} of every `name==version` line of a pip-style lock."""
    pins = {}
    for line in path.read_text().splitlines():
        if m := _PIN.match(line):
            pins[canonical(m[1])] = m[2]
    return pins


def installed() -> dict[str, str]:
    """{canonical name: version} of every distribution installed in this environment's
    site-packages (what pip freeze lists): not what a process adds to sys.path, such as
    the packages Ray vendors for its workers (ray/thirdparty_files)."""
    paths = list(dict.fromkeys(sysconfig.get_paths()[k] for k in ("purelib", "platlib")))
    return {canonical(d.metadata["Name"]): d.version for d in distributions(path=paths)}


def lock_drift(path: Path = LOCK) -> list[str]:
    """How this environment differs from the lock: one entry per distribution, empty if equal."""
    pins, have = lock_pins(path), installed()
    out = [f"{n}: lock {v}, installed {have.get(n, 'none')}" for n, v in sorted(pins.items())
           if have.get(n) != v]
    out += [f"{n}: installed {v}, not in the lock" for n, v in sorted(have.items())
            if n not in pins and n not in UNLOCKED]
    return out


@cache
def lock_hash() -> str:
    """sha256 of requirements.lock; '+drift' when this environment is not exactly its pins
    (a venv built from the ranges alone), 'absent' outside a source checkout."""
    if not LOCK.is_file():
        return "absent"
    sha = hashlib.sha256(LOCK.read_bytes()).hexdigest()
    return sha + ("+drift" if lock_drift() else "")


@cache
def package_versions() -> dict[str, str]:
    out = {}
    for name in TRACKED_PACKAGES:
        try:
            out[name] = version(name)
        except PackageNotFoundError:
            out[name] = "absent"
    out["requirements.lock"] = lock_hash()
    return out


@cache
def git_commit() -> str:
    """The source tree's commit, with '+dirty' when it has uncommitted changes; a tree
    without .git (the cluster image) reports the commit it was built from."""
    try:
        sha = subprocess.run(["git", "rev-parse", "HEAD"], cwd=ROOT, capture_output=True,
                             text=True, check=True).stdout.strip()
        dirty = subprocess.run(["git", "status", "--porcelain", "--untracked-files=no"], cwd=ROOT,
                               capture_output=True, text=True, check=True).stdout.strip()
    except (OSError, subprocess.CalledProcessError):
        return os.environ.get("ROBUST_EDIT_GIT_COMMIT") or "unknown"
    return sha + ("+dirty" if dirty else "")
