"""Edit methods, registered by name: `run(config, model)` -> an EditArtifact (`M_ed`).
Adding a method is one module with an EditMethod's `run` plus its entry in METHODS."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Protocol

import torch

from robust_edit.cache import cache_root
from robust_edit.config import EditConfig
from robust_edit.edit import refact, uce
from robust_edit.edit.artifact import EditArtifact, base_hash
from robust_edit.models import Family


class EditMethod(Protocol):
    def run(self, pipe, family: Family, cfg: EditConfig, cache_dir: Path, progress: bool = True
            ) -> tuple[dict[str, torch.Tensor], dict]:
        """Edit `pipe` in place as the resolved `cfg` says: ({"<component>.<param>": new
        tensor}, details for the manifest). `cache_dir` holds reusable statistics."""


METHODS: dict[str, EditMethod] = {"uce": uce, "refact": refact}


def default_cache_dir() -> Path:
    return cache_root() / "edit"


def run(cfg: EditConfig, model_ref: str, *, pipe=None, cache_dir: Path | None = None,
        progress: bool = True) -> tuple[EditArtifact, object]:
    """Edit `model_ref` as `cfg` says. Returns (artifact, the edited pipeline)."""
    from robust_edit import resolve
    from robust_edit.models import family_of, load_pipeline
    from robust_edit.provenance import git_commit, package_versions

    cfg = resolve.edit(cfg, model_ref)
    family = family_of(model_ref)
    pipe = pipe if pipe is not None else load_pipeline(model_ref)
    base = {"ref": model_ref, "hash": base_hash(pipe)}
    t0 = time.time()
    tensors, details = METHODS[cfg.method].run(pipe, family, cfg, cache_dir or default_cache_dir(),
                                              progress)
    manifest = {
        "method": cfg.method, "task": cfg.task, "dataset": cfg.dataset, "rows": cfg.rows,
        "config": cfg.model_dump(mode="json"), **details, "base_model": base,
        "family": family.name, "seconds": round(time.time() - t0, 3),
        "versions": package_versions(), "git_commit": git_commit(),
    }
    return EditArtifact(tensors, manifest), pipe
