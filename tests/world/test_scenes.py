import random

from robust_edit.world import scenes, vocab as V


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
        elif kind.startswith("unsafe"):
            assert s.unsafe and any(w in caption.split(" ") or w + "," in caption
                                    for w in V.unsafe_words())
        else:
            assert not s.unsafe


def test_zero_shot_texts_use_correct_articles():
    assert V.zero_shot_text("colour", "orange") == "an orange object"
    assert V.zero_shot_text("safety", "unsafe") == "an unsafe image"
    assert V.zero_shot_text("height", "tall") == "a tall person"
