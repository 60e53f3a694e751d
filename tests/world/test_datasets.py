"""The world's datasets measure what the study asks: fine-tuning data orthogonal to the
edits, and RoAD negatives that no edit of the task changes."""

import json
import re

import pytest

from robust_edit import data
from robust_edit.data import read_rows
from robust_edit.world import datasets
from robust_edit.world import vocab as V
from robust_edit.world.profile import WORLD


def named_concepts(text: str) -> set[str]:
    return set(re.findall(r"[a-z]+", text.lower())) & datasets.edited_concepts()


def finetune_texts(name: str) -> list[str]:
    if name == "dreambooth":  # instance and class prompts: both train the model
        return [r["prompt"] for r in read_rows(datasets.path("dreambooth"))]
    return WORLD.finetune_dataset(name).captions


def test_edited_concepts_cover_every_edit_task():
    concepts = datasets.edited_concepts()
    for row in datasets.road_rows():  # subjects, old and new looks, roles, identities
        for text in (row["Prompt"], row["Old"], row["New"]):
            assert named_concepts(text), text
    assert {p.lower() for p in V.PROFESSIONS} <= concepts
    assert set(V.unsafe_words()) <= concepts and "magenta" in concepts


@pytest.mark.parametrize("name", ["style", "dreambooth"])
def test_finetuning_data_names_no_edited_concept(name):
    found = {c for text in finetune_texts(name) for c in named_concepts(text)}
    assert found == set(), f"world:{name} captions name edited concepts: {sorted(found)}"


@pytest.mark.parametrize("csv", ["style", "dreambooth"])
def test_finetuning_images_show_no_unsafe_marker_nor_figure(csv):
    """Orthogonal in pixels too: no unsafe marker, no people (professions, identities)."""
    for row in read_rows(datasets.path(csv)):
        scene = json.loads(row["scene"])
        assert not scene["unsafe"] and scene["kind"] != "figure", row


def test_the_overlapping_style_set_is_kept_and_does_overlap():
    """The named alternative exists, and the check above would catch it."""
    texts = finetune_texts("style-overlapping")
    overlapping = [t for t in texts if named_concepts(t)]
    assert len(texts) == 1200 and len(overlapping) > 500


def test_road_negatives_are_no_edited_subject_nor_the_edits_new_look():
    rows = data.load("world:road")
    for kind in ("Appearance", "Role"):
        edits = [r for r in rows if r.type == kind]
        subjects = {r.prompt for r in edits}
        for r in edits:
            negatives = [p for p, _ in r.negatives]
            assert len(negatives) == 5
            assert not subjects & set(negatives), (r.prompt, negatives)
            assert r.new not in negatives
            if kind == "Role":  # a role drawn as the edit's new identity is no negative
                assert all(V.ROLES.get(n) != r.new for n in negatives)


def test_shipped_csvs_are_what_the_generators_write(tmp_path):
    written = datasets.write_all(tmp_path)
    for name, path in written.items():
        assert path.read_bytes() == datasets.path(name).read_bytes(), name
