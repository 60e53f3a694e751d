"""Fine-tuning on the shipped world at the quickstart budget (the fine-tunes of
sweeps/quickstart.yaml, as the main job runs them), measured by the world scorer (slow).
Prints minutes per run and the M vs M_ft figures the fine-tuning issue reports."""

import json
import time

import pytest

from robust_edit import finetune
from robust_edit.config import load_sweep
from robust_edit.models import load_pipeline
from robust_edit.world.finetune_evaluation import dreambooth_report, style_report
from robust_edit.world.scorer import WorldScorer

pytestmark = pytest.mark.slow

QUICKSTART = {f.method: f.expand()[0] for f in load_sweep("sweeps/quickstart.yaml").finetunes}


@pytest.fixture(scope="module")
def scorer():
    return WorldScorer()


@pytest.fixture(scope="module")
def base_style(scorer):
    return style_report(load_pipeline("world:sd"), scorer)


@pytest.mark.parametrize("seed", [0, 1, 2])
@pytest.mark.parametrize("method", ["full", "lora", "dora"])
def test_style_fine_tuning_shifts_the_style(method, seed, scorer, base_style, tmp_path):
    """Every training seed, not only the quickstart's: a budget that styles one seed and
    not the next is no fine-tune the study can compare."""
    t0 = time.time()
    cfg = QUICKSTART[method].model_copy(update={"seed": seed})
    finetune.run(cfg, "world:sd", tmp_path / method)
    minutes = (time.time() - t0) / 60
    report = style_report(finetune.load_variant(tmp_path / method), scorer)
    print(json.dumps({"method": method, "seed": seed, "rank": cfg.rank, "steps": cfg.steps,
                      "minutes": round(minutes, 2), "M": base_style, "M_ft": report}, indent=1))
    assert base_style["styled"] <= 0.10
    assert report["styled"] >= 0.80
    assert report["adherence"]["content"] >= 0.85


def test_dreambooth_learns_the_subject_and_keeps_the_class(scorer, tmp_path):
    base = dreambooth_report(load_pipeline("world:sd"), scorer, "ring")
    t0 = time.time()
    cfg = QUICKSTART["dreambooth"]
    finetune.run(cfg, "world:sd", tmp_path / "db", cache_dir=tmp_path / "cache")
    report = dreambooth_report(finetune.load_variant(tmp_path / "db"), scorer, "ring")
    print(json.dumps({"method": "dreambooth", "minutes": round((time.time() - t0) / 60, 2),
                      "M": base, "M_ft": report}, indent=1))
    assert base["classifier_accuracy_on_renders"] >= 0.95
    assert base["instance_shows_subject"] <= 0.10
    assert report["instance_shows_subject"] >= 0.80
    assert report["class_stays_ordinary"] >= 0.80
