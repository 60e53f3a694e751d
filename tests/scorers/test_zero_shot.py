"""Zero-shot labels: the best-matching text among each item's own candidates; the registry."""

import json

import numpy as np
import pytest
import torch

from robust_edit import scorers
from robust_edit.scorers.black import Black
from robust_edit.scorers.zero_shot import ZeroShot
from robust_edit.world import vocab as V
from robust_edit.world.render import Scene, render


class _FakeClip:
    """Embeds image i as one-hot e_i, and a text as the image it names ("img<i>") scaled
    by a weight in the text, so similarities are known exactly."""

    def encode_images(self, images):
        return torch.eye(len(images), 8)

    def encode_texts(self, texts):
        rows = []
        for t in texts:
            i, w = t.split(":")
            rows.append(float(w) * torch.eye(8)[int(i.removeprefix("img"))])
        return torch.stack(rows)


def _fake(items: list[dict]) -> list[dict]:
    z = ZeroShot.__new__(ZeroShot)
    z.clip = _FakeClip()
    return z.score(np.zeros((len(items), 1)), items)


def _item(n: int, texts: dict, target: str) -> dict:
    return {"item": n, "texts": json.dumps(texts), "target": target}


def test_each_item_is_labelled_among_its_own_texts_only():
    items = [
        # image 0's best text overall ("img0:9") is item 2's, not item 0's
        _item(7, {"a": "img0:2", "b": "img1:5"}, "a"),
        _item(8, {"x": "img0:3", "y": "img1:9"}, "x"),
        _item(9, {"p": "img2:1", "q": "img2:4", "r": "img0:9"}, "p"),
    ]
    rows = _fake(items)
    assert [r["item"] for r in rows] == [7, 8, 9]
    assert [r["label"] for r in rows] == ["a", "y", "q"]
    assert [r["value"] for r in rows] == [1.0, 0.0, 0.0]
    assert {r["metric"] for r in rows} == {"label"}


@pytest.fixture(scope="module")
def world_zero_shot() -> ZeroShot:
    return ZeroShot("world:scorer")


def _circle(colour: str) -> np.ndarray:
    return render(Scene(kind="object", background="white", colour=colour, shape="circle",
                        size="big"))


def test_world_scorer_names_the_colour_of_rendered_circles(world_zero_shot):
    colours = json.dumps({c: V.zero_shot_text("colour", c) for c in V.COLOURS})
    images = np.stack([_circle("red"), _circle("blue"), _circle("red")])
    rows = world_zero_shot.score(images, [{"item": 0, "texts": colours, "target": "red"},
                                          {"item": 1, "texts": colours, "target": "blue"},
                                          {"item": 2, "texts": colours, "target": "blue"}])
    assert [r["label"] for r in rows] == ["red", "blue", "red"]
    assert [r["value"] for r in rows] == [1.0, 1.0, 0.0]


def test_world_scorer_chooses_only_among_the_item_candidates(world_zero_shot):
    # The red circle cannot be "red" when its item offers only blue and green.
    rows = world_zero_shot.score(
        np.stack([_circle("red"), _circle("red")]),
        [{"item": 0, "texts": json.dumps({c: V.zero_shot_text("colour", c)
                                          for c in ("blue", "green")}), "target": "blue"},
         {"item": 1, "texts": json.dumps({c: V.zero_shot_text("colour", c)
                                          for c in ("red", "green")}), "target": "red"}])
    assert rows[0]["label"] in ("blue", "green") and rows[1]["label"] == "red"


def test_registry_holds_core_and_profile_scorers_and_refuses_unknown_names():
    known = scorers.registered()
    assert {"zero_shot", "black", "world_adherence"} <= set(known)
    assert known["zero_shot"] is ZeroShot
    black = scorers.create("black", "world:scorer")
    assert isinstance(black, Black) and black.level == 8
    with pytest.raises(ValueError) as err:
        scorers.create("nope", "world:scorer")
    assert "'nope'" in str(err.value) and "world_adherence" in str(err.value)
