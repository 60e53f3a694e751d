"""The world scorer: a small open_clip model, trained contrastively on world images and
captions, saved as an open_clip `local-dir:` model and loaded with open_clip's own API.

It plays the study's CLIP scorers: zero-shot labels (attribute, safety, style), the
edit metrics' two-text comparisons, and image features.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import torch

from robust_edit.scorers.clip import ClipScorer
from robust_edit.world import vocab as V

SHIPPED_SCORER = Path(__file__).resolve().parent / "assets" / "scorer"
MODEL_CFG = {
    "embed_dim": 96,
    "quick_gelu": True,
    "vision_cfg": {"image_size": V.IMAGE_SIZE, "layers": 4, "width": 128, "head_width": 32,
                   "patch_size": 8},
    "text_cfg": {"context_length": 32, "vocab_size": 49408, "width": 96, "heads": 4,
                 "layers": 3},
}
PREPROCESS_CFG = {"size": V.IMAGE_SIZE, "mean": [0.5, 0.5, 0.5], "std": [0.5, 0.5, 0.5],
                  "interpolation": "bicubic", "resize_mode": "shortest"}


def create_untrained():
    import open_clip

    return open_clip.CLIP(**MODEL_CFG)


def save(model, folder: Path, dtype=torch.float16) -> None:
    from safetensors.torch import save_file

    folder.mkdir(parents=True, exist_ok=True)
    (folder / "open_clip_config.json").write_text(json.dumps(
        {"model_cfg": MODEL_CFG, "preprocess_cfg": PREPROCESS_CFG}, indent=2))
    state = {k: v.detach().to(dtype).contiguous() for k, v in model.state_dict().items()}
    save_file(state, str(folder / "open_clip_model.safetensors"))


def to_tensor(images: np.ndarray | list) -> torch.Tensor:
    """uint8 (B, H, W, 3) -> the scorer's normalised input (B, 3, H, W)."""
    x = torch.as_tensor(np.asarray(images)).permute(0, 3, 1, 2).float() / 255.0
    return (x - 0.5) / 0.5


class WorldScorer(ClipScorer):
    """The world scorer, with zero-shot labels for the world's attribute families."""

    def __init__(self, folder: str | Path | None = None, device: str = "cpu"):
        super().__init__(str(folder) if folder else "world:scorer", device=device)

    def classify(self, images, family: str, values: list[str]) -> list[str]:
        """Zero-shot label per image among `values` of an attribute family."""
        return self.labels(images, {v: V.zero_shot_text(family, v) for v in values})
