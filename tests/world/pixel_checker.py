"""An independent pixel-level checker for world images (not the scorer).

Reads colour, shape, size and background of a single-object image from its pixels with
plain geometry: corners give the background, pixels far from it are the object.
"""

from __future__ import annotations

import numpy as np

from robust_edit.world import vocab as V


def _nearest(rgb: np.ndarray, table: dict[str, tuple[int, int, int]]) -> str:
    names = list(table)
    dist = [np.linalg.norm(rgb - np.array(table[n], dtype=np.float32)) for n in names]
    return names[int(np.argmin(dist))]


def background(img: np.ndarray) -> str:
    corners = np.concatenate([img[:3, :3].reshape(-1, 3), img[:3, -3:].reshape(-1, 3),
                              img[-3:, :3].reshape(-1, 3), img[-3:, -3:].reshape(-1, 3)])
    return _nearest(np.median(corners.astype(np.float32), axis=0), V.BACKGROUNDS)


def foreground(img: np.ndarray) -> np.ndarray:
    bg = np.array(V.BACKGROUNDS[background(img)], dtype=np.float32)
    return np.linalg.norm(img.astype(np.float32) - bg, axis=-1) > 80


def colour(img: np.ndarray) -> str | None:
    fg = foreground(img)
    if fg.sum() < 10:
        return None
    return _nearest(np.median(img[fg].astype(np.float32), axis=0), V.COLOURS)


def size(img: np.ndarray) -> str:
    return "big" if foreground(img).sum() > 170 else "small"


def shape(img: np.ndarray) -> str | None:
    fg = foreground(img)
    ys, xs = np.nonzero(fg)
    if len(ys) < 10:
        return None
    h, w = ys.max() - ys.min() + 1, xs.max() - xs.min() + 1
    fill = fg.sum() / (h * w)
    if fill > 0.9:
        return "square"
    if fill > 0.66:
        return "circle"
    widths = fg[ys.min():ys.max() + 1].sum(axis=1)
    widest = np.argmax(widths) / max(h - 1, 1)  # 0 = top row, 1 = bottom row
    return "triangle" if widest > 0.7 else "diamond"


def check(img: np.ndarray) -> dict[str, str | None]:
    return {"colour": colour(img), "shape": shape(img), "size": size(img),
            "background": background(img)}
