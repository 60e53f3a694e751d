"""DreamBooth: fine-tune on a few instance images under a rare-token prompt ("a sks dog"),
optionally with prior preservation on class images the model itself generates."""

from __future__ import annotations

import hashlib
from pathlib import Path

import numpy as np

from robust_edit.atomic import write_atomic
from robust_edit.finetune import full

prepare = full.prepare
finish = full.finish


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
