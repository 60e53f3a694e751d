"""Real datasets and the world's become edit tasks through the same loaders."""

import pytest

from robust_edit.config import EditConfig
from robust_edit.data import shared_data_dir
from robust_edit.edit import tasks

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


@pytest.mark.parametrize("dataset", ["world:professions",
                                     pytest.param("uce:professions", marks=needs_shared)])
def test_profession_sets_become_debias_concepts_in_row_order(dataset):
    every = tasks.debias_concepts(EditConfig(method="uce", task="debias", dataset=dataset))
    concepts = tasks.debias_concepts(EditConfig(method="uce", task="debias", dataset=dataset,
                                                rows="1:5"))
    assert concepts == every[1:5] and len(set(concepts)) == 4


def test_corpus_texts_are_a_datasets_prompts_or_a_profiles_own():
    coco = tasks.corpus_texts("world:coco", 5)
    assert len(coco) == 5 and all(isinstance(t, str) and t for t in coco)
    captions = tasks.corpus_texts("world:captions", 300)
    assert len(captions) == 300 and len(set(captions)) > 100  # sampled scenes, not one prompt
    assert tasks.corpus_texts("world:captions", 300) == captions  # seeded


def test_task_and_dataset_format_must_match():
    with pytest.raises(ValueError, match="professions dataset; task 'unsafe' reads"):
        tasks.check_dataset(EditConfig(method="uce", task="unsafe", dataset="world:professions"))
