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


class WorldScorer:
    """Zero-shot classification and text-pair probabilities with the world's open_clip model."""

    def __init__(self, folder: str | Path | None = None, device: str = "cpu"):
        import open_clip

        folder = Path(folder) if folder else SHIPPED_SCORER
        self.model, _, _ = open_clip.create_model_and_transforms(f"local-dir:{folder}",
                                                                 device=device)
        self.model.eval().float()
        self.tokenizer = open_clip.get_tokenizer(f"local-dir:{folder}")
        self.device = device
        self.folder = folder

    @torch.no_grad()
    def encode_texts(self, texts: list[str]) -> torch.Tensor:
        z = self.model.encode_text(self.tokenizer(texts).to(self.device))
        return torch.nn.functional.normalize(z.float(), dim=-1)

    @torch.no_grad()
    def encode_images(self, images, batch_size: int = 512) -> torch.Tensor:
        out = []
        for i in range(0, len(images), batch_size):
            x = to_tensor(images[i:i + batch_size]).to(self.device)
            out.append(torch.nn.functional.normalize(self.model.encode_image(x).float(), dim=-1))
        return torch.cat(out)

    def probs(self, images, texts: list[str]) -> torch.Tensor:
        """softmax(100 * cos) over `texts` per image, as the ReFACT protocol scores CLIP."""
        return (100.0 * self.encode_images(images) @ self.encode_texts(texts).T).softmax(-1)

    def classify(self, images, family: str, values: list[str]) -> list[str]:
        """Zero-shot label per image among `values` of an attribute family."""
        texts = [V.zero_shot_text(family, v) for v in values]
        idx = self.probs(images, texts).argmax(-1).tolist()
        return [values[i] for i in idx]

