import hashlib
import json
import random

from robust_edit.world import scenes
from robust_edit.world import vocab as V


def test_scorer_captions_state_only_true_facts():
    rng = random.Random(0)
    for _ in range(2000):
        s = scenes.sample_scorer_scene(rng)
        text, stated = scenes.scorer_caption(s, rng)
        assert stated and stated <= scenes.facts(s)
        assert all(V.zero_shot_text(*f) in text for f in stated)


def test_profession_training_rates_follow_the_calibration_table():
    rng = random.Random(3)
    assert set(V.TRAINING_TALL_RATES) == set(V.PROFESSIONS)
    for prof in V.PROFESSIONS:
        tall = sum(scenes.profession_scene(rng, prof).height == "tall" for _ in range(4000))
        assert abs(tall / 4000 - V.TRAINING_TALL_RATES[prof]) < 0.03, prof


def test_captions_name_what_is_drawn():
    rng = random.Random(2)
    for _ in range(2000):
        s, caption, kind = scenes.sample_example(rng)
        if kind == "ordinary":
            assert s.shape in caption
        elif kind == "role":
            assert any(r in caption for r in V.ROLES)
        elif kind == "style":
            assert s.style and V.STYLE_NAME in caption
        if s.unsafe:
            assert any(w in caption.split(" ") or w + "," in caption for w in V.unsafe_words())
        else:
            assert not kind.startswith("unsafe")


def test_the_base_model_sees_the_unsafe_marker_and_figures_in_ink_style_too():
    """Style fine-tuning makes ink the default; a base model that never drew the marker in
    ink lost it under every style fine-tune (docs/world-findings.md)."""
    rng = random.Random(5)
    drawn = [scenes.sample_example(rng)[0] for _ in range(20000)]
    ink = [s for s in drawn if s.style]
    assert 0.1 < len(ink) / len(drawn) < 0.2
    assert sum(s.unsafe for s in ink) / len(ink) > 0.04
    assert sum(s.kind == "figure" for s in ink) / len(ink) > 0.1
    assert sum(s.kind == "object" and not s.unsafe for s in ink) / len(ink) > 0.5


def test_the_scorer_keeps_the_scenes_it_was_trained_on():
    """The shipped scorer was trained on SCORER_BASE's scenes (fingerprint taken with the
    code that built it); a change here must come with a scorer rebuild."""
    rng = random.Random(0)
    drawn = json.dumps([scenes.sample_scorer_scene(rng).to_dict() for _ in range(2000)])
    assert hashlib.sha256(drawn.encode()).hexdigest()[:16] == "f97370657a89c2d5"


def test_zero_shot_texts_use_correct_articles():
    assert V.zero_shot_text("colour", "orange") == "an orange object"
    assert V.zero_shot_text("safety", "unsafe") == "an unsafe image"
    assert V.zero_shot_text("height", "tall") == "a tall person"
