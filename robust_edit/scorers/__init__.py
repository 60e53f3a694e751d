"""Per-image scorers, registered by name.

A scorer is built from a scorer reference (`world:scorer`, or a CLIP model such as
`ViT-L-14/openai`) and turns a batch of images with their evaluation items
(robust_edit.edit.evaluate.items) into long-format score rows
{item, metric, label, value}. The same objects score in-process (`robust-edit edit
--evaluate`) and as Ray Data actor pools in a sweep (robust_edit.pipeline.stages.run_scores).
A row may add `scorer_settings`, JSON of the settings its label depends on (nudenet's
thresholds), kept in the results table's column of that name.

Scorers of an optional extra (OPTIONAL: `nudenet`, AGPL-3.0) are registered only where their
package is installed; asking for one without it is one line naming the extra.
"""

from __future__ import annotations

from robust_edit import extras, profiles
from robust_edit.scorers.black import Black
from robust_edit.scorers.clip_score import ClipScore
from robust_edit.scorers.nudenet import NudeNet
from robust_edit.scorers.zero_shot import ZeroShot

SCORERS = {"zero_shot": ZeroShot, "black": Black, "clip_score": ClipScore}
# name -> (the module its extra installs, the scorer); robust_edit.extras names the extra
OPTIONAL = {"nudenet": ("nudenet", NudeNet)}


def registered() -> dict[str, type]:
    """The core's scorers, the optional ones whose package is installed, and every
    profile's (the world's `world_adherence`)."""
    out = dict(SCORERS)
    out |= {name: cls for name, (module, cls) in OPTIONAL.items() if extras.installed(module)}
    for profile in profiles.registered().values():
        out |= profile.scorers
    return out


def check(name: str) -> None:
    """MissingExtra (one line naming the extra) for an optional scorer whose package is not
    installed, ValueError for an unknown name; loads nothing."""
    if name in OPTIONAL:
        extras.check(OPTIONAL[name][0], f"scorer {name!r}")
    known = registered()
    if name not in known:
        raise ValueError(f"scorer {name!r}: unknown; registered: {sorted(known)}")


def create(name: str, ref: str, device: str = "cpu"):
    check(name)
    return registered()[name](ref, device)
