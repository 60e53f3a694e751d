"""An independent pixel-level checker for world images (not the scorer).

Reads colour, shape, size and background of a single-object image from its pixels with
plain geometry: corners give the background, pixels far from it are the object, and the
object's mask is matched against ideal shape masks. It shares only the shape geometry
(`shape_mask`) with the renderer, nothing with the scorer.
"""

from __future__ import annotations

import numpy as np

from robust_edit.world import vocab as V
from robust_edit.world.render import shape_mask


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


def _templates() -> list[tuple[str, str, np.ndarray]]:
    """Ideal masks of every (shape, size) at every offset within the jitter range (+1)."""
    n = V.IMAGE_SIZE
    out = []
    for shape_name in V.SHAPES:
        for size_name, r in V.SIZES.items():
            for dx in range(-3, 4):
                for dy in range(-3, 4):
                    mask = shape_mask(shape_name, n / 2 - 0.5 + dx, n / 2 - 0.5 + dy, r)
                    out.append((shape_name, size_name, mask))
    return out


_TEMPLATES = _templates()


def shape_and_size(img: np.ndarray) -> tuple[str | None, str | None]:
    """The (shape, size) whose ideal mask best overlaps the object (max IoU)."""
    fg = foreground(img)
    if fg.sum() < 10:
        return None, None
    best = max(_TEMPLATES, key=lambda t: (fg & t[2]).sum() / (fg | t[2]).sum())
    return best[0], best[1]


def check(img: np.ndarray) -> dict[str, str | None]:
    shape_name, size_name = shape_and_size(img)
    return {"colour": colour(img), "shape": shape_name, "size": size_name,
            "background": background(img)}
