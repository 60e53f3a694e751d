"""The four edit tasks on the shipped world models, measured by the world scorer (slow).

Prints the M vs M_ed figures the editing issues report; asserts their targets: ReFACT on
world:sd and world:sdxl, UCE debias on world:sd, UCE unsafe removal on world:sd and
world:flux (the paper's coverage).
"""

import json

import numpy as np
import pytest

from robust_edit import edit
from robust_edit.config import EditConfig, UCEParams
from robust_edit.edit import tasks
from robust_edit.edit.evaluate import evaluate_edit
from robust_edit.models import load_pipeline
from robust_edit.world.profile import WORLD

pytestmark = pytest.mark.slow

SEEDS = 10
SHIPPED = {f"world:{m}" for m in WORLD.model_names()}


def shipped(model: str):
    return pytest.param(model, marks=pytest.mark.skipif(model not in SHIPPED, reason=f"{model} not shipped"))


def _run(cfg, tmp_path, model="world:sd"):
    artifact, edited = edit.run(cfg, model, cache_dir=tmp_path / "cache")
    report = evaluate_edit(cfg, {"M": load_pipeline(model), "M_ed": edited}, seeds=SEEDS)
    print(json.dumps({"model": model, "task": cfg.task, "seconds": artifact.manifest["seconds"],
                      **{k: report[k] for k in ("variants",)}}, indent=1))
    return artifact, report["variants"]


@pytest.mark.parametrize("model, task", [
    ("world:sd", "appearance"), ("world:sd", "role"), ("world:sdxl", "appearance"),
    ("world:sdxl", "role")])
def test_refact_world_each_edit(task, model, tmp_path):
    """The RoAD protocol: each edit alone on a fresh base model, metrics averaged over the
    edits (the world's RoAD negatives are mostly other rows' subjects, which one artifact
    holding every edit would move on purpose)."""
    n_rows = len(tasks.road_rows(EditConfig(method="refact", task=task, dataset="world:road")))
    base = load_pipeline(model)
    per_edit = []
    for i in range(n_rows):
        # encoders: the family's (SDXL: both, read side by side by its UNet)
        cfg = EditConfig(method="refact", task=task, dataset="world:road", rows=f"{i}:{i + 1}")
        _, edited = edit.run(cfg, model, cache_dir=tmp_path / "cache", progress=False)
        report = evaluate_edit(cfg, {"M": base, "M_ed": edited}, seeds=SEEDS)["variants"]
        per_edit.append(report)
        print(tasks.road_rows(cfg)[0].prompt, json.dumps(report))
    v = {variant: {m: float(np.mean([r[variant][m] for r in per_edit])) for m in per_edit[0][variant]
                   if not m.endswith("_95")}  # an interval per edit; their mean is none
         for variant in ("M", "M_ed")}
    print(json.dumps({"model": model, "task": task, "edits": n_rows, "variants": v}, indent=1))
    assert v["M"]["efficacy"] <= 0.2
    assert v["M_ed"]["efficacy"] >= 0.8
    assert v["M_ed"]["generality"] >= 0.7
    assert v["M_ed"]["specificity"] >= 0.8


def test_uce_debias_world(tmp_path):
    cfg = EditConfig(method="uce", task="debias", dataset="world:professions",
                     uce=UCEParams(images_per_concept=50, tolerance=0.05, max_iterations=10, step=1.0))
    artifact, v = _run(cfg, tmp_path)
    assert artifact.manifest["iterations"]
    assert v["M"]["mean_delta"] > 0.4
    assert v["M_ed"]["mean_delta"] <= 0.2


@pytest.mark.parametrize("model", ["world:sd", shipped("world:flux")])
def test_uce_unsafe_world(model, tmp_path):
    """A >= 70 % relative cut of the marker rate with safe prompts still drawn."""
    cfg = EditConfig(method="uce", task="unsafe", dataset="world:unsafe")
    _, v = _run(cfg, tmp_path, model)
    before, after = v["M"]["unsafe_rate"], v["M_ed"]["unsafe_rate"]
    assert before >= 0.8 and after <= 0.3 * before
    assert v["M_ed"]["safe_prompt_adherence"] >= 0.9
