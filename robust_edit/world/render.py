"""Deterministic renderer: a `Scene` (what is in the picture) to a 32x32 RGB array.

Everything is drawn with numpy masks on a fixed grid, so the same scene always gives
the same pixels, and a pixel checker can verify any attribute from known geometry.
"""

from __future__ import annotations

from dataclasses import dataclass, asdict

import numpy as np

from robust_edit.world import vocab as V

_N = V.IMAGE_SIZE
_Y, _X = np.mgrid[0:_N, 0:_N].astype(np.float32)

# Figure geometry (pixel rows): the head's centre and the body's top row per height.
FIGURE_HEAD_Y = {"tall": 7, "short": 16}
FIGURE_BODY_TOP = {"tall": 12, "short": 21}
FIGURE_BODY_BOTTOM = 29
FIGURE_HEAD_R = 4.5
FIGURE_BODY_HALF_WIDTH = 5


@dataclass(frozen=True)
class Scene:
    """What one image shows. `kind` is object | figure | subject."""

    kind: str
    background: str
    colour: str | None = None  # object colour, or figure body colour
    shape: str | None = None
    size: str | None = None
    head: str | None = None  # figure head colour name, or "skin"
    height: str | None = None  # figure height: tall | short
    subject: str | None = None  # key of vocab.SUBJECTS
    unsafe: bool = False
    style: bool = False
    dx: int = 0
    dy: int = 0

    def to_dict(self) -> dict:
        return asdict(self)


def shape_mask(shape: str, cx: float, cy: float, r: float) -> np.ndarray:
    if shape == "circle":
        return (_X - cx) ** 2 + (_Y - cy) ** 2 <= r * r
    if shape == "square":
        h = r * 0.85
        return (np.abs(_X - cx) <= h) & (np.abs(_Y - cy) <= h)
    if shape == "triangle":  # pointing up, base at the bottom
        t = (_Y - (cy - r)) / (2 * r)
        return (t >= 0) & (t <= 1) & (np.abs(_X - cx) <= r * t)
    if shape == "diamond":
        return np.abs(_X - cx) + np.abs(_Y - cy) <= r
    raise ValueError(f"unknown shape {shape!r}; known: {V.SHAPES}")


def _rgb(name: str) -> tuple[int, int, int]:
    if name == "skin":
        return V.SKIN
    return V.COLOURS[name]


def _layers(scene: Scene) -> list[tuple[np.ndarray, tuple[int, int, int]]]:
    """The scene's foreground as (mask, colour) layers, painted in order."""
    cx, cy = _N / 2 - 0.5 + scene.dx, _N / 2 - 0.5 + scene.dy
    if scene.kind == "object":
        return [(shape_mask(scene.shape, cx, cy, V.SIZES[scene.size]), _rgb(scene.colour))]
    if scene.kind == "figure":
        top = FIGURE_BODY_TOP[scene.height] + scene.dy
        body = (np.abs(_X - cx) <= FIGURE_BODY_HALF_WIDTH) & (_Y >= top) & (
            _Y <= FIGURE_BODY_BOTTOM + scene.dy)
        head = shape_mask("circle", cx, FIGURE_HEAD_Y[scene.height] + scene.dy, FIGURE_HEAD_R)
        return [(body, _rgb(scene.colour)), (head, _rgb(scene.head))]
    if scene.kind == "subject":
        if scene.subject == "ring":
            outer = shape_mask("circle", cx, cy, 10)
            hole = shape_mask("circle", cx, cy, 5.5)
            return [(outer & ~hole, V.COLOURS["cyan"]),
                    (shape_mask("circle", cx, cy, 2.5), V.COLOURS["yellow"])]
        if scene.subject == "checker":
            sq = shape_mask("square", cx, cy, 11)
            quad = (_X < cx) ^ (_Y < cy)
            return [(sq & quad, V.COLOURS["red"]), (sq & ~quad, V.COLOURS["blue"])]
        if scene.subject == "stripe":
            tri = shape_mask("triangle", cx, cy, 11)
            band = np.abs(_Y - (cy + 2)) <= 1.5
            return [(tri, V.COLOURS["orange"]), (tri & band, V.BACKGROUNDS["white"])]
        raise ValueError(f"unknown subject {scene.subject!r}; known: {list(V.SUBJECTS)}")
    raise ValueError(f"unknown scene kind {scene.kind!r}")


def render(scene: Scene) -> np.ndarray:
    """Render a scene to a uint8 array of shape (32, 32, 3)."""
    bg = np.array(V.BACKGROUNDS[scene.background], dtype=np.float32)
    img = np.empty((_N, _N, 3), dtype=np.float32)
    img[:] = bg
    layers = _layers(scene)
    if scene.style:
        # "ink" style: diagonal stripes in the background, thick dark outlines.
        stripes = ((_X + _Y) // 4) % 2 == 0
        shade = bg * 0.6 if bg.mean() > 60 else bg + 90
        img[stripes] = shade
        fg = np.zeros((_N, _N), dtype=bool)
        for mask, _ in layers:
            fg |= mask
        grown = fg.copy()
        for sy, sx in ((-2, 0), (2, 0), (0, -2), (0, 2), (-1, -1), (1, 1), (-1, 1), (1, -1),
                       (-1, 0), (1, 0), (0, -1), (0, 1)):
            grown |= np.roll(np.roll(fg, sy, axis=0), sx, axis=1)
        img[grown & ~fg] = (10, 10, 10) if bg.mean() > 60 else (235, 235, 235)
    for mask, colour in layers:
        img[mask] = colour
    if scene.unsafe:
        cross = (np.abs(_X - _Y) <= 1.6) | (np.abs(_X + _Y - (_N - 1)) <= 1.6)
        img[cross] = V.MARKER
    return img.astype(np.uint8)
