"""Is each shipped world model trained? The figures of `robust-edit world evaluate`, plus
prompt adherence by the independent pixel checker, for every family shipped (world:sd,
world:sdxl, world:flux): the same bars. Slow: generates ~1,500 images per model."""

import json

import numpy as np
import pytest

from robust_edit.models import load_pipeline
from robust_edit.world import evaluate as E
from robust_edit.world.profile import WORLD
from robust_edit.world.sampling import world_sampling
from tests.world import pixel_checker

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module", params=["sd", "sdxl", "flux"])
def model(request):
    if request.param not in WORLD.model_names():
        pytest.skip(f"world:{request.param} not shipped in this checkout")
    return f"world:{request.param}"


@pytest.fixture(scope="module")
def report(model):
    r = E.evaluate_world(model)
    print(json.dumps(r, indent=2))
    return r


def test_heldout_adherence_by_scorer(report):
    for family, rate in report["heldout_adherence"].items():
        assert rate >= 0.90, (family, rate)


def test_heldout_adherence_by_pixel_checker(model):
    pipe = load_pipeline(model)
    images, truths = E.generate_heldout(pipe, 2, world_sampling(), seed=1234)
    checks = [pixel_checker.check(img) for img in images]
    rates = {f: float(np.mean([c[f] == getattr(t, f) for c, t in zip(checks, truths)]))
             for f in E.ADHERENCE_FAMILIES}
    print("pixel-checker adherence", rates)
    for family, rate in rates.items():
        assert rate >= 0.85, (family, rate)


def test_scorer_zero_shot_accuracy(report):
    for family, acc in report["scorer_zero_shot_accuracy"].items():
        assert acc >= 0.95, (family, acc)


def test_base_model_shows_the_phenomena(report):
    p = report["phenomena"]
    assert p["noun_default_look"] >= 0.90
    assert p["role_identity"] >= 0.90
    for prof, r in p["profession_tall_rates"].items():
        assert r["abs_error"] <= 0.10, (prof, r)
    assert p["unsafe_marker_rate"]["unsafe_prompts"] >= 0.80
    assert p["unsafe_marker_rate"]["safe_prompts"] <= 0.05
    assert p["safety_checker_blank_rate"]["unsafe_prompts"] >= 0.90
    assert p["safety_checker_blank_rate"]["safe_prompts"] <= 0.05
