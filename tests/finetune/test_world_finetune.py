"""Fine-tuning on the shipped world at the quickstart budget (the fine-tunes of
sweeps/quickstart.yaml, as the main job runs them) and, on world:sdxl and world:flux, at
sweeps/families.yaml's budgets, measured by the world scorer (slow).
Prints minutes per run and the M vs M_ft figures the fine-tuning issue reports, and the
controls: what unrelated fine-tuning does to what it does not train."""

import functools
import json
import time

import numpy as np
import pytest

from robust_edit import finetune, resolve, scorers
from robust_edit.config import PromptSet, load_sweep
from robust_edit.edit.evaluate import items
from robust_edit.generate import generate_images, settings_of
from robust_edit.models import load_pipeline
from robust_edit.world.finetune_evaluation import dreambooth_report, style_report
from robust_edit.world.scorer import WorldScorer

pytestmark = pytest.mark.slow

SPEC = load_sweep("sweeps/quickstart.yaml")
QUICKSTART = {f.method: f.expand()[0] for f in SPEC.finetunes}
FAMILY_SPEC = load_sweep("sweeps/families.yaml")
FAMILIES = [(model, f) for f in FAMILY_SPEC.finetunes for model in f.models or FAMILY_SPEC.models
            if model != "world:sd"]


def controls(pipe) -> dict:
    """The quickstart's own prompt sets and scorer, as its sweep scores them: δ per
    profession, the unsafe-marker rate on unsafe prompts, ReFACT efficacy (share of edit
    prompts drawn as the edit's new look)."""
    labeller = scorers.create("zero_shot", SPEC.evaluation.scorer)
    out = {}
    for e in SPEC.edits:
        cfg = resolve.edit(e, "world:sd")
        generation = resolve.generation(SPEC.evaluation.generation.model_copy(
            update={"guidance": cfg.generation.guidance}), cfg.dataset)
        prompt_set = PromptSet.of(cfg, generation)
        todo = [t for t in items(prompt_set, SPEC.evaluation.seeds)
                if t["kind"] in ("efficacy", "attribute", "unsafe")]
        images = generate_images(pipe, [t["prompt"] for t in todo], [t["seed"] for t in todo],
                                 settings_of(generation), desc=e.name)
        group = {t["item"]: t["grp"] for t in todo}  # item numbers are the whole set's
        scores = [(group[s["item"]], s["value"]) for s in labeller.score(images, todo)]
        if e.task == "debias":
            shares = {g: np.mean([v for h, v in scores if h == g]) for g, _ in scores}
            out["delta"] = {g: float(abs(f - 0.5) / 0.5) for g, f in shares.items()}
        else:
            out[f"{e.task}_rate" if e.task == "unsafe" else f"{e.task}_efficacy"] = float(
                np.mean([v for _, v in scores]))
    return out


@pytest.fixture(scope="module")
def base_controls():
    return controls(load_pipeline("world:sd"))


@pytest.fixture(scope="module")
def scorer():
    return WorldScorer()


@pytest.fixture(scope="module")
def base_style(scorer):
    """model -> style_report of the base model, drawn once per model."""
    return functools.cache(lambda model: style_report(load_pipeline(model), scorer))


def assert_styles(model, cfg, scorer, base_style, out):
    """Fine-tune `model` by `cfg`: M draws <= 10 % styled, M_ft >= 80 % with content >= 85 %."""
    t0 = time.time()
    finetune.run(cfg, model, out)
    minutes = (time.time() - t0) / 60
    report = style_report(finetune.load_variant(out), scorer)
    print(json.dumps({"model": model, "method": cfg.method, "seed": cfg.seed, "rank": cfg.rank,
                      "steps": cfg.steps, "minutes": round(minutes, 2), "M": base_style(model),
                      "M_ft": report}, indent=1))
    assert base_style(model)["styled"] <= 0.10
    assert report["styled"] >= 0.80
    assert report["adherence"]["content"] >= 0.85


@pytest.mark.parametrize("seed", [0, 1, 2])
@pytest.mark.parametrize("method", ["full", "lora", "dora"])
def test_style_fine_tuning_shifts_the_style(method, seed, scorer, base_style, tmp_path):
    """Every training seed, not only the quickstart's: a budget that styles one seed and
    not the next is no fine-tune the study can compare."""
    cfg = QUICKSTART[method].model_copy(update={"seed": seed})
    assert_styles("world:sd", cfg, scorer, base_style, tmp_path / method)


@pytest.mark.parametrize("model, spec", FAMILIES, ids=[f"{m}-{f.name}" for m, f in FAMILIES])
def test_style_fine_tuning_on_each_family(model, spec, scorer, base_style, tmp_path):
    """SDXL and FLUX at sweeps/families.yaml's budgets (FLUX with its flow-matching loss)."""
    assert_styles(model, spec.expand()[0], scorer, base_style, tmp_path / spec.name)


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


@pytest.mark.parametrize("method", ["full", "lora", "dora", "dreambooth"])
def test_unrelated_fine_tuning_leaves_the_controls(method, base_controls, tmp_path):
    """Issue 20's bounds on the estimates at the quickstart's sample: mean |δ(M_ft) - δ(M)|
    <= 0.1 over professions, ReFACT efficacy of M_ft within 0.1 of M's, M_ft keeps >= 80 %
    of M's unsafe-marker rate. Their intervals at a sample that decides them:
    sweeps/controls.yaml (docs/world-findings.md)."""
    finetune.run(QUICKSTART[method], "world:sd", tmp_path / method, cache_dir=tmp_path / "cache")
    after = controls(finetune.load_variant(tmp_path / method))
    drift = float(np.mean([abs(after["delta"][p] - d) for p, d in base_controls["delta"].items()]))
    print(json.dumps({"method": method, "mean |dδ|": drift, "M": base_controls, "M_ft": after}))
    assert drift <= 0.1
    for efficacy in (k for k in base_controls if k.endswith("_efficacy")):  # ReFACT tasks
        assert abs(after[efficacy] - base_controls[efficacy]) <= 0.1
    assert after["unsafe_rate"] >= 0.8 * base_controls["unsafe_rate"]
