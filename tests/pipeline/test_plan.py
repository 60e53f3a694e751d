"""`sweep plan`: the graph as data, images per generate stage, counts and GPU-hours."""

import json
import re
from pathlib import Path

import pytest

from robust_edit.config import PromptSet, load_sweep
from robust_edit.edit.evaluate import items
from robust_edit.pipeline.graph import GPU_HOURS, build
from robust_edit.pipeline.plan import as_json, describe, gpu_hours, images_per_generate

REPO = Path(__file__).resolve().parents[2]
SPECS = {"quickstart": REPO / "sweeps" / "quickstart.yaml", "controls": REPO / "sweeps" / "controls.yaml",
         "tiny": Path(__file__).with_name("tiny.yaml")}


def _spec(name: str, **resources):
    spec = load_sweep(SPECS[name])
    raw = spec.model_dump(mode="json")
    raw["resources"].update(resources)
    return type(spec).model_validate(raw)


@pytest.mark.parametrize("name", SPECS)
def test_as_json_lists_every_stage_once_with_its_config(name):
    spec = _spec(name)
    g, plan = build(spec), as_json(spec)
    assert json.loads(json.dumps(plan)) == plan  # plain data
    assert plan["sweep"] == spec.name and plan["cells"] == len(g.cells)
    keys = [s["key"] for s in plan["stages"]]
    assert len(keys) == len(set(keys)) and set(keys) == set(g.stages)
    for s in plan["stages"]:
        stage = g.stages[s["key"]]
        assert s == {"kind": stage.kind, "key": stage.key, "inputs": list(stage.inputs),
                     "labels": stage.labels, "config": stage.config}
    assert plan["counts"] == g.counts()
    listed = [s["kind"] for s in plan["stages"]]
    assert plan["counts"] == {k: listed.count(k) for k in plan["counts"]}


def _items_of(stage) -> int:
    return len(items(PromptSet.model_validate(stage.config["prompt_set"]), stage.config["seeds"]))


def test_images_per_generate_counts_each_prompt_set_items():
    g = build(_spec("quickstart"))
    images = images_per_generate(g)
    assert set(images) == {s.key for s in g.by_kind("generate")}
    assert all(images[s.key] == _items_of(s) for s in g.by_kind("generate"))
    tiny = build(_spec("tiny"))  # rows 0:12 of world:unsafe, one seed: 12 images a stage
    assert images_per_generate(tiny) == {s.key: 12 for s in tiny.by_kind("generate")}


def test_more_seeds_scale_only_the_seeded_tasks():
    spec = _spec("quickstart")
    raw = spec.model_dump(mode="json")
    raw["evaluation"]["seeds"] *= 2
    a, b = build(spec), build(type(spec).model_validate(raw))

    def per_task(g) -> dict:
        counts = images_per_generate(g)
        return {s.labels["task"]: counts[s.key] for s in g.by_kind("generate")}

    before, after = per_task(a), per_task(b)
    assert after["appearance"] == 2 * before["appearance"]
    assert after["debias"] == before["debias"] and after["unsafe"] == before["unsafe"]


def _table(text: str) -> dict[str, tuple[int, int]]:
    return {m[1]: (int(m[2]), int(m[3]))
            for m in re.finditer(r"^(\w+) +(\d+) +(\d+)$", text, re.MULTILINE)}


@pytest.mark.parametrize("name", SPECS)
def test_describe_prints_unique_and_per_trial_loop_counts(name):
    spec = _spec(name)
    g, text = build(spec), describe(spec)
    cells = len(g.cells)
    variants = sum(len(c["variants"]) for c in g.cells)  # checkpoints included
    assert f": {cells} cells, {variants} variant evaluations" in text
    assert variants == (2 if name == "controls" else 4) * cells + sum(
        "@" in v for c in g.cells for v in c["variants"])
    for model in spec.models:  # the cells per model
        assert f"= {sum(c['model'] == model for c in g.cells)} cells" in text
    table = _table(text)
    unique, loop = g.counts(), g.per_trial_counts()
    assert {k: v for k, v in table.items() if k != "total"} == {
        k: (unique[k], loop[k]) for k in unique}
    assert table["total"] == (sum(unique.values()), sum(loop.values()))
    assert "GPU-hours" not in text  # both specs are CPU specs


def test_gpu_specs_get_gpu_hours_from_the_per_stage_costs():
    spec = _spec("quickstart", gpus_per_trial=1)
    g = build(spec)
    cost = GPU_HOURS["sd"]  # world:sd is a Stable Diffusion pipeline
    images = sum(_items_of(s) for s in g.by_kind("generate"))
    want = {"edit": cost["edit"] * len(spec.edits),
            "finetune": cost["finetune_per_1k_steps"] / 1000 * sum(
                s.config["finetune"]["steps"] for s in g.by_kind("finetune")),
            "generate": cost["generate_per_1k_images"] * images / 1000,
            "score": cost["score_per_1k_images"] * images / 1000}
    assert gpu_hours(g) == pytest.approx(want)
    # M_ft per run plus M_ed_ft per (edit, run): every fine-tune's steps count 1 + edits times
    steps = sum(f.steps * len(f.expand()) for f in spec.finetunes)
    assert want["finetune"] == pytest.approx(cost["finetune_per_1k_steps"] / 1000 * steps
                                             * (1 + len(spec.edits)))
    line = describe(spec).splitlines()[-1]
    assert line.startswith("estimated GPU-hours")
    assert line.endswith(f"total {sum(want.values()):.1f}")
    assert f"finetune {want['finetune']:.1f}" in line
