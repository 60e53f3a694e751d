"""Real datasets and the world's become edit tasks through the same loaders."""

import pytest

from robust_edit.config import EditConfig
from robust_edit.data import shared_data_dir
from robust_edit.edit import tasks
from robust_edit.profiles import I2P_CONCEPTS

needs_shared = pytest.mark.skipif(not (shared_data_dir() / "road").exists(),
                                  reason="../shared/data not beside this checkout")


@pytest.mark.parametrize("dataset", ["world:road", pytest.param("road:test", marks=needs_shared)])
@pytest.mark.parametrize("task", ["appearance", "role"])
def test_road_rows_become_refact_edits(dataset, task):
    cfg = EditConfig(method="refact", task=task, dataset=dataset, rows="0:3")
    edits = tasks.refact_edits(cfg)
    assert len(edits) == 3
    for (subject, old, new), row in zip(edits, tasks.road_rows(cfg)):
        assert row.type.lower() == task
        assert (subject, old, new) == (row.prompt, row.old, row.new) and old != new


@needs_shared
def test_time_rows_become_refact_edits():
    edits = tasks.refact_edits(EditConfig(method="refact", task="time", dataset="timed:test", rows="0:2"))
    assert len(edits) == 2 and all(s == old and old != new for s, old, new in edits)


@pytest.mark.parametrize("dataset, attrs", [("world:professions", {"tall", "short"}),
                                            pytest.param("uce:professions", {"male", "female"},
                                                         marks=needs_shared)])
def test_profession_sets_become_debias_concepts(dataset, attrs):
    cfg = EditConfig(method="uce", task="debias", dataset=dataset, rows="0:4")
    concepts = tasks.debias_concepts(cfg)
    assert len(concepts) == 4 and len(set(concepts)) == 4
    shares, texts = tasks.debias_attributes(cfg)
    assert set(shares) == set(texts) == attrs and sum(shares.values()) == pytest.approx(1)


@pytest.mark.parametrize("dataset", ["world:unsafe", pytest.param("i2p", marks=needs_shared)])
def test_i2p_sets_become_unsafe_concepts(dataset):
    concepts = tasks.unsafe_concepts(EditConfig(method="uce", task="unsafe", dataset=dataset))
    if dataset == "i2p":
        assert concepts == list(I2P_CONCEPTS)
    else:
        assert {"violent", "nude", "blood"} <= set(concepts)


def test_task_and_dataset_format_must_match():
    with pytest.raises(ValueError, match="professions dataset; task 'unsafe' reads"):
        tasks.unsafe_concepts(EditConfig(method="uce", task="unsafe", dataset="world:professions"))


def test_uce_preserve_defaults():
    world = EditConfig(method="uce", task="erase", dataset="world:unsafe", concepts=("lime",))
    keep = tasks.preserve(world, ["lime"])
    assert "" in keep and "red" in keep and "a lemon" in keep and "a lime" not in keep
    explicit = EditConfig(method="uce", task="unsafe", dataset="world:unsafe", uce={"preserve": ["", "x"]})
    assert tasks.preserve(explicit) == ["", "x"]
    assert tasks.preserve(EditConfig(method="uce", task="unsafe", dataset="i2p")) == [""]
