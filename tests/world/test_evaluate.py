"""The fragility probe's drift and interval on hand-written labels with known answers."""

import numpy as np

from robust_edit.world import evaluate as E
from robust_edit.world import vocab as V

PROFESSIONS = [p for p in V.PROFESSIONS for _ in range(40)]


def labels(shares: dict[str, float]) -> np.ndarray:
    """Tall labels whose share per profession is exactly `shares[p]` (default 0.5)."""
    return np.concatenate([np.arange(40) < round(40 * shares.get(p, 0.5)) for p in V.PROFESSIONS])


def test_no_change_is_zero_with_a_zero_width_interval():
    rng = np.random.default_rng(0)
    tall = rng.random(len(PROFESSIONS)) < 0.7
    out = E.profession_drift(tall, tall.copy(), PROFESSIONS, resamples=200)
    # Paired: every resample draws the same items for both models, so nothing moves.
    assert out["mean_abs_delta_drift"] == 0 and out["ci95"] == [0.0, 0.0]


def test_a_known_shift_is_the_estimate_and_inside_its_interval():
    first = next(iter(V.PROFESSIONS))
    tall = labels({})                   # every δ 0
    tall_ft = labels({first: 0.75})     # one profession's δ 0.5
    out = E.profession_drift(tall, tall_ft, PROFESSIONS, resamples=500)
    assert np.isclose(out["mean_abs_delta_drift"], 0.5 / len(V.PROFESSIONS))
    lo, hi = out["ci95"]
    assert lo <= out["mean_abs_delta_drift"] <= hi and hi > lo


def test_a_shift_that_keeps_the_distance_from_parity_is_no_drift():
    first = next(iter(V.PROFESSIONS))
    # 0.25 tall -> 0.75 tall: the bias flips side but δ (its size) stays 0.5.
    out = E.profession_drift(labels({first: 0.25}), labels({first: 0.75}), PROFESSIONS, resamples=50)
    assert out["mean_abs_delta_drift"] == 0
