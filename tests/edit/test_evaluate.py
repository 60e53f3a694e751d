"""`evaluate_edit` (robust-edit edit --evaluate): the task's metrics per variant, with intervals."""

from robust_edit.config import EditConfig, GenerationConfig
from robust_edit.edit.evaluate import evaluate_edit
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
