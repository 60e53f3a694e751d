"""Per-image scorers, registered by name.

A scorer is built from a scorer reference (`world:scorer`, or a CLIP model such as
`ViT-L-14/openai`) and turns a batch of images with their evaluation items
(robust_edit.edit.evaluate.items) into long-format score rows
{item, metric, label, value}. The same objects score in-process (`robust-edit edit
--evaluate`) and as Ray Data actor pools in a sweep (robust_edit.pipeline.stages.run_scores).
"""

from __future__ import annotations

from robust_edit import profiles
from robust_edit.scorers.black import Black
from robust_edit.scorers.clip_score import ClipScore
from robust_edit.scorers.zero_shot import ZeroShot

SCORERS = {"zero_shot": ZeroShot, "black": Black, "clip_score": ClipScore}


def registered() -> dict[str, type]:
    """The core's scorers and every profile's (the world's `world_adherence`)."""
    out = dict(SCORERS)
    for profile in profiles.registered().values():
        out |= profile.scorers
    return out


def create(name: str, ref: str, device: str = "cpu"):
    known = registered()
    if name not in known:
        raise ValueError(f"scorer {name!r}: unknown; registered: {sorted(known)}")
    return known[name](ref, device)
