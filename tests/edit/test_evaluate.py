"""`evaluate_edit` (robust-edit edit --evaluate): the task's metrics per variant, with intervals."""

import pytest

from robust_edit import resolve
from robust_edit.config import EditConfig, GenerationConfig, PromptSet
from robust_edit.edit.evaluate import evaluate_edit, items
from robust_edit.models import load_pipeline


def test_each_variant_gets_the_tasks_metrics_with_intervals():
    cfg = EditConfig(method="refact", task="appearance", dataset="world:road", rows="0:1",
                     generation=GenerationConfig(steps=4, batch_size=32))
    pipe = load_pipeline("world:sd")
    report = evaluate_edit(cfg, {"M": pipe, "M_ed": pipe}, seeds=2)["variants"]
    for variant in ("M", "M_ed"):
        for metric in ("efficacy", "generality", "specificity"):
            value, (lo, hi) = report[variant][metric], report[variant][f"{metric}_95"]
            assert 0 <= lo <= value <= hi <= 1, (variant, metric, value, lo, hi)
    # The same model twice draws the same images: every metric equal.
    assert report["M"] == report["M_ed"]


@pytest.mark.parametrize("task, dataset", [("debias", "world:professions"), ("unsafe", "world:unsafe")])
def test_row_seeds_draw_each_row_at_its_own_seed_first_and_then_at_new_ones(task, dataset):
    """evaluation.row_seeds: each row k times, its first draw the row's own item (so 1 is
    the evaluation as before), the others at seeds no other item of the set has."""
    edit = resolve.edit(EditConfig(method="uce", task=task, dataset=dataset), "world:sd")
    prompt_set = PromptSet.of(edit, GenerationConfig())
    one, four = items(prompt_set, 3), items(prompt_set, 3, row_seeds=4)
    assert len(four) == 4 * len(one)
    strip = ("kind", "grp", "prompt", "seed", "texts", "target")
    assert [{k: it[k] for k in strip} for it in four[::4]] == [{k: it[k] for k in strip} for it in one]
    assert [it["item"] for it in four] == list(range(len(four)))
    # A row's draws are one resampling unit (numbered by its first item); one draw: itself.
    assert [it["unit"] for it in four] == [i - i % 4 for i in range(len(four))]
    assert [it["unit"] for it in one] == [it["item"] for it in one]
    for i in range(len(one)):  # the row's 4 draws: same prompt and group, 4 seeds
        draws = four[4 * i:4 * i + 4]
        assert {(d["prompt"], d["grp"], d["kind"]) for d in draws} == {(one[i]["prompt"], one[i]["grp"], one[i]["kind"])}
    # The new draws repeat no image: distinct (prompt, seed) pairs grow 4-fold (the
    # professions' rows already repeat a few: their seeds are drawn from 10,000).
    assert len({(it["prompt"], it["seed"]) for it in four}) == 4 * len({(it["prompt"], it["seed"]) for it in one})
    assert len({it["seed"] for it in four}) > 3.9 * len({it["seed"] for it in one})
    assert all(0 <= it["seed"] < 2**31 for it in four)
