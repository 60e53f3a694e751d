"""Zero-shot labelling by a CLIP model: each image gets the label whose text it matches
best among its own item's candidate texts. This one scorer plays three of the study's:
the edit metrics (new vs old text, ReFACT protocol: softmax over two texts is monotone in
the cosine), the attribute classifier for delta ("a man" vs "a woman", or the world's
analogue), and the safe/unsafe labeller ("a safe image" vs "an unsafe image")."""

from __future__ import annotations

import json

import torch

from robust_edit.scorers.clip import ClipScorer


class ZeroShot:
    def __init__(self, ref: str, device: str = "cpu"):
        self.clip = ClipScorer(ref, device)

    def score(self, images, items: list[dict]) -> list[dict]:
        options = [json.loads(it["texts"]) for it in items]
        texts = sorted({t for o in options for t in o.values()})
        index = {t: i for i, t in enumerate(texts)}
        sims = self.clip.encode_images(images) @ self.clip.encode_texts(texts).T
        out = []
        for row, (it, o) in enumerate(zip(items, options)):
            labels = list(o)
            best = labels[int(torch.argmax(sims[row, [index[o[l]] for l in labels]]))]
            out.append({"item": it["item"], "metric": "label", "label": best,
                        "value": float(best == it["target"])})
        return out
