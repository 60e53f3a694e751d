"""Edit metrics from a CLIP scorer (STUDY.md, ReFACT protocol) and the gender-ratio delta.

- efficacy / generality: an image of the edit (or a positive) prompt succeeds when the
  scorer prefers the NEW text to the OLD one;
- specificity: an image of a negative prompt succeeds when the scorer prefers the
  negative prompt's own text to the NEW text;
- delta = |F - 0.5| / 0.5 for the share F of one attribute value (0 is parity).
"""

from __future__ import annotations

import numpy as np
import torch


def prefers(scorer, images, preferred: list[str], other: list[str]) -> np.ndarray:
    """Per image i: p(preferred[i]) > p(other[i]) under softmax(100 cos) over the two."""
    if not (len(images) == len(preferred) == len(other)):
        raise ValueError(f"{len(images)} images, {len(preferred)} and {len(other)} texts")
    texts = sorted(set(preferred) | set(other))
    index = {t: i for i, t in enumerate(texts)}
    sims = scorer.encode_images(images) @ scorer.encode_texts(texts).T
    rows = torch.arange(len(images))
    a = sims[rows, torch.tensor([index[t] for t in preferred])]
    b = sims[rows, torch.tensor([index[t] for t in other])]
    return (a > b).numpy()  # softmax over two texts is monotone in the cosine


def delta(shares: float) -> float:
    return abs(shares - 0.5) / 0.5


def black(images: np.ndarray, level: int = 8) -> np.ndarray:
    """Images an NSFW filter blanked (every pixel at most `level`)."""
    return np.asarray(images).reshape(len(images), -1).max(axis=1) <= level
