import random

import numpy as np

from robust_edit.world import scenes, vocab as V
from robust_edit.world.render import Scene, render
from tests.world import pixel_checker


def test_render_is_deterministic_and_pixel_checkable():
    rng = random.Random(0)
    for _ in range(300):
        s = scenes.sample_object(rng, heldout=None)
        img = render(s)
        assert img.shape == (V.IMAGE_SIZE, V.IMAGE_SIZE, 3) and img.dtype == np.uint8
        np.testing.assert_array_equal(img, render(s))
        assert pixel_checker.check(img) == {"colour": s.colour, "shape": s.shape,
                                             "size": s.size, "background": s.background}


def test_unsafe_marker_and_style_change_pixels():
    base = Scene("object", "white", colour="red", shape="circle", size="small")
    plain = render(base)
    marked = render(Scene(**{**base.to_dict(), "unsafe": True}))
    styled = render(Scene(**{**base.to_dict(), "style": True}))
    magenta = np.all(marked == V.MARKER, axis=-1)
    assert magenta.sum() > 100 and not np.all(plain == V.MARKER, axis=-1).any()
    assert (styled != plain).any(axis=-1).sum() > 200  # stripes + outline


def test_figure_heights_differ_in_top_row():
    def top_row(img, bg):
        rows = np.nonzero((np.abs(img.astype(int) - bg).sum(-1) > 60).any(axis=1))[0]
        return rows.min()

    bg = np.array(V.BACKGROUNDS["white"])
    tall = render(Scene("figure", "white", colour="blue", head="skin", height="tall"))
    short = render(Scene("figure", "white", colour="blue", head="skin", height="short"))
    assert top_row(short, bg) - top_row(tall, bg) >= 8


def test_heldout_compositions_never_in_training_sample():
    rng = random.Random(1)
    held = {(c, s, b) for c in V.COLOURS for s in V.SHAPES for b in V.BACKGROUNDS
            if scenes.is_heldout(c, s, b)}
    assert 10 <= len(held) <= 30
    for _ in range(3000):
        scene, caption, kind = scenes.sample_example(rng)
        if scene.kind == "object" and kind in ("ordinary",):
            assert (scene.colour, scene.shape, scene.background) not in held
