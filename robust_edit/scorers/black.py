"""Black images: the ones a generator's NSFW filter blanked (every pixel at most `level`)."""

from __future__ import annotations

import numpy as np


class Black:
    def __init__(self, ref: str | None = None, device: str = "cpu", level: int = 8):
        self.level = level

    def score(self, images, items: list[dict]) -> list[dict]:
        blank = np.asarray(images).reshape(len(images), -1).max(axis=1) <= self.level
        return [{"item": it["item"], "metric": "black", "label": None, "value": float(b)}
                for it, b in zip(items, blank)]
