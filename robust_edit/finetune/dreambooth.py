"""DreamBooth: fine-tune on a few instance images under a rare-token prompt ("a sks dog"),
optionally with prior preservation on class images the model itself generates."""

from __future__ import annotations

import hashlib
from pathlib import Path

import numpy as np

from robust_edit.atomic import write_atomic
from robust_edit.finetune import full

prepare, finish, load = full.prepare, full.finish, full.load


def prior(pipe, cfg, cache_dir: Path, model_hash: str) -> tuple[np.ndarray, list[str]] | None:
    """Prior preservation: class images the model being tuned draws of the class prompt."""
    from robust_edit.generate import settings_of

    if not cfg.prior_preservation:
        return None
    images = class_images(pipe, cfg.class_prompt, cfg.class_images, cache_dir, model_hash,
                          settings_of(cfg.class_generation))
    return images, [cfg.class_prompt] * len(images)


def class_images(pipe, prompt: str, n: int, cache_dir: Path, model_hash: str, settings,
                 seed: int = 0) -> np.ndarray:
    """`n` images of the class prompt by the model being tuned, cached per model + prompt."""
    from robust_edit.generate import generate_images

    key = hashlib.sha256(f"{model_hash}|{prompt}|{n}|{seed}|{settings}".encode()).hexdigest()[:24]
    path = Path(cache_dir) / f"class-images-{key}.npy"
    if path.exists():
        return np.load(path)
    images = generate_images(pipe, [prompt] * n, [seed + i for i in range(n)], settings,
                             desc=f"class images {prompt!r}")

    def write(tmp: Path) -> None:
        with open(tmp, "wb") as f:  # a file object: np.save would append .npy to a name
            np.save(f, images)

    write_atomic(path, write)
    return images
