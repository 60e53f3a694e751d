"""CLIP score: 100 cos(image, own prompt), clipped at 0; on the world scorer it prefers the
prompt an image was rendered from."""

import numpy as np
import torch

from robust_edit import scorers
from robust_edit.scorers.clip_score import ClipScore
from robust_edit.world.render import Scene, render


class _FakeClip:
    """Image i embeds as e_i; text "img<i>:<w>" as w e_i, so cos is known exactly."""

    def encode_images(self, images):
        return torch.eye(len(images), 4)

    def encode_texts(self, texts):
        return torch.stack([float(t.split(":")[1]) * torch.eye(4)[int(t.split(":")[0][3:])]
                            for t in texts])


def test_value_is_100_cos_with_the_items_own_prompt_clipped_at_zero():
    s = ClipScore.__new__(ClipScore)
    s.clip = _FakeClip()
    items = [{"item": 7, "prompt": "img0:0.3"}, {"item": 8, "prompt": "img1:-0.5"},
             {"item": 9, "prompt": "img0:0.3"}]
    rows = s.score(np.zeros((3, 1)), items)
    assert [r["item"] for r in rows] == [7, 8, 9]
    assert {r["metric"] for r in rows} == {"clip_score"}
    # image 2 is e_2: orthogonal to its prompt's e_0
    assert np.allclose([r["value"] for r in rows], [30.0, 0.0, 0.0])


def test_world_scorer_scores_the_rendered_prompt_above_another():
    red = render(Scene("object", "white", colour="red", shape="square", size="big"))
    blue = render(Scene("object", "white", colour="blue", shape="circle", size="big"))
    score = scorers.create("clip_score", "world:scorer")
    own = score.score(np.stack([red, blue]), [{"item": 0, "prompt": "a big red square"},
                                              {"item": 1, "prompt": "a big blue circle"}])
    swapped = score.score(np.stack([red, blue]), [{"item": 0, "prompt": "a big blue circle"},
                                                  {"item": 1, "prompt": "a big red square"}])
    assert all(o["value"] > s["value"] for o, s in zip(own, swapped))
