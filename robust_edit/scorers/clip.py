"""A CLIP model (open_clip) as a scorer: embeddings, two-text probabilities, zero-shot labels.

References: `<profile>:<name>` (a profile's scorer: `world:scorer`), a folder holding an open_clip
`local-dir` model, `hf-hub:<org>/<name>`, or `<architecture>/<pretrained tag>` from
open_clip's registry (e.g. `ViT-bigG-14/laion2b_s39b_b160k`, the ReFACT protocol's scorer).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch

from robust_edit import profiles


def open_clip_name(ref: str) -> tuple[str, str | None]:
    """A scorer reference -> (open_clip model name, pretrained tag)."""
    if found := profiles.split(ref):
        profile, name = found
        return f"local-dir:{profile.scorer_folder(name)}", None
    if Path(ref).is_dir():
        return f"local-dir:{Path(ref).resolve()}", None
    if ref.startswith("hf-hub:"):
        return ref, None
    if "/" in ref:
        arch, tag = ref.split("/", 1)
        return arch, tag
    raise ValueError(f"scorer {ref!r}: expected '<profile>:<name>' (e.g. 'world:scorer'), an "
                     "open_clip local-dir folder, "
                     "'hf-hub:<org>/<name>' or '<architecture>/<pretrained tag>'")


def check_reference(ref: str, field: str) -> None:
    """A scorer reference names a model that exists here or in open_clip's registry
    (before any compute; weights are not loaded)."""
    import open_clip

    try:
        name, pretrained = open_clip_name(ref)
    except ValueError as err:
        raise ValueError(f"{field}: {err}") from None
    if name.startswith("local-dir:"):
        if not (Path(name.removeprefix("local-dir:")) / "open_clip_config.json").exists():
            raise ValueError(f"{field} {ref!r}: the folder has no open_clip_config.json; give an "
                             "open_clip local-dir model folder")
    elif pretrained is not None and (name, pretrained) not in open_clip.list_pretrained():
        raise ValueError(f"{field} {ref!r}: not in open_clip's registry; e.g. 'ViT-B-32/openai', "
                         "'ViT-L-14/openai' (open_clip.list_pretrained())")


class ClipScorer:
    def __init__(self, ref: str = "world:scorer", device: str = "cpu"):
        import open_clip

        name, pretrained = open_clip_name(ref)
        self.model = open_clip.create_model(name, pretrained=pretrained, device=device).eval().float()
        self.tokenizer = open_clip.get_tokenizer(name)
        cfg = open_clip.get_model_preprocess_cfg(self.model)
        size = cfg["size"]
        self.size = (size, size) if isinstance(size, int) else tuple(size)
        self.mean = torch.tensor(cfg["mean"], device=device).view(1, 3, 1, 1)
        self.std = torch.tensor(cfg["std"], device=device).view(1, 3, 1, 1)
        self.ref, self.device = ref, device

    def preprocess(self, images) -> torch.Tensor:
        """uint8 (B, H, W, 3) -> normalised (B, 3, h, w) at the model's input size."""
        x = torch.as_tensor(np.asarray(images)).to(self.device).permute(0, 3, 1, 2).float() / 255.0
        if tuple(x.shape[-2:]) != self.size:
            x = torch.nn.functional.interpolate(x, size=self.size, mode="bicubic", antialias=True,
                                                align_corners=False).clamp(0, 1)
        return (x - self.mean) / self.std

    @torch.no_grad()
    def encode_texts(self, texts: list[str]) -> torch.Tensor:
        z = self.model.encode_text(self.tokenizer(texts).to(self.device))
        return torch.nn.functional.normalize(z.float(), dim=-1)

    @torch.no_grad()
    def encode_images(self, images, batch_size: int = 256) -> torch.Tensor:
        out = []
        for i in range(0, len(images), batch_size):
            z = self.model.encode_image(self.preprocess(images[i:i + batch_size]))
            out.append(torch.nn.functional.normalize(z.float(), dim=-1))
        return torch.cat(out)

    def probs(self, images, texts: list[str]) -> torch.Tensor:
        """softmax(100 cos) over `texts`, per image (the ReFACT protocol's scoring)."""
        return (100.0 * self.encode_images(images) @ self.encode_texts(texts).T).softmax(-1)

    def labels(self, images, label_texts: dict[str, str]) -> list[str]:
        """Zero-shot label per image: the label whose text scores highest."""
        names = list(label_texts)
        idx = self.probs(images, [label_texts[n] for n in names]).argmax(-1).tolist()
        return [names[i] for i in idx]
