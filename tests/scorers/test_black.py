"""Black-image detection: an image is blank iff its brightest pixel is at most the level."""

import numpy as np

from robust_edit.scorers.black import Black


def _items(n: int) -> list[dict]:
    return [{"item": 10 + i} for i in range(n)]


def test_blank_iff_the_brightest_pixel_is_at_most_the_level():
    images = np.zeros((4, 8, 8, 3), np.uint8)
    images[1, 3, 5, 2] = 9  # one pixel of one channel just above the default level 8
    images[2] = 8  # every pixel exactly at the level
    images[3] = 200
    rows = Black().score(images, _items(4))
    assert [r["value"] for r in rows] == [1.0, 0.0, 1.0, 0.0]
    assert [r["item"] for r in rows] == [10, 11, 12, 13]
    assert {r["metric"] for r in rows} == {"black"} and {r["label"] for r in rows} == {None}


def test_the_level_is_configurable_and_lists_are_accepted():
    images = [np.full((4, 4, 3), 20, np.uint8), np.full((4, 4, 3), 21, np.uint8)]
    assert [r["value"] for r in Black(level=20).score(images, _items(2))] == [1.0, 0.0]
    assert [r["value"] for r in Black(level=0).score(images, _items(2))] == [0.0, 0.0]
