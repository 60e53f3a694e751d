"""CLIP score: prompt-image agreement per image, 100 * cos(image, prompt) clipped at 0 (the
usual definition, as in torchmetrics' CLIPScore), by the spec's CLIP model. Its mean per
variant is the study's image-quality companion to FID."""

from __future__ import annotations

from robust_edit.scorers.clip import ClipScorer


class ClipScore:
    def __init__(self, ref: str, device: str = "cpu"):
        self.clip = ClipScorer(ref, device)

    def score(self, images, items: list[dict]) -> list[dict]:
        prompts = [it["prompt"] for it in items]
        texts = sorted(set(prompts))
        index = {t: i for i, t in enumerate(texts)}
        sims = self.clip.encode_images(images) @ self.clip.encode_texts(texts).T
        return [{"item": it["item"], "metric": "clip_score", "label": None,
                 "value": max(100.0 * float(sims[row, index[p]]), 0.0)}
                for row, (it, p) in enumerate(zip(items, prompts))]
