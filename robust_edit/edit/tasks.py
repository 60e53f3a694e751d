"""Datasets -> edit requests, through the same loaders for real datasets and profiles'.

RoAD rows give (subject, old, new) for ReFACT (the subject is the edit prompt); TIME rows
give (old, old, new); profession prompt sets give the concepts to debias; I2P gives the
unsafe concepts to remove. What a config leaves open robust_edit.resolve fills in.
"""

from __future__ import annotations

from robust_edit import data, profiles
from robust_edit.config import TASK_FORMATS, EditConfig


def check_dataset(cfg: EditConfig) -> str:
    fmt = data.dataset_format(cfg.dataset)
    if fmt not in TASK_FORMATS[cfg.task]:
        raise ValueError(f"dataset {cfg.dataset!r} is a {fmt} dataset; task {cfg.task!r} reads "
                         f"{list(TASK_FORMATS[cfg.task])} datasets")
    return fmt


def refact_edits(cfg: EditConfig) -> list[tuple[str, str, str]]:
    fmt = check_dataset(cfg)
    rows = data.load(cfg.dataset)
    if fmt == "road":
        rows = [r for r in rows if r.type.lower() == cfg.task]
        edits = [(r.prompt, r.old, r.new) for r in rows[cfg.row_slice()]]
    else:
        edits = [(r.old, r.old, r.new) for r in rows[cfg.row_slice()]]
    if not edits:
        raise ValueError(f"rows {cfg.rows!r} of {cfg.dataset!r} select no {cfg.task} edits")
    return edits


def road_rows(cfg: EditConfig) -> list[data.RoadEdit]:
    """The RoAD records an appearance/role edit was made from (for its evaluation)."""
    rows = [r for r in data.load(cfg.dataset) if r.type.lower() == cfg.task]
    return rows[cfg.row_slice()]


def debias_concepts(cfg: EditConfig) -> list[str]:
    """The professions of a debias dataset's rows, in order (robust_edit.resolve fills
    `concepts` from it when the config names none)."""
    check_dataset(cfg)
    groups = list(dict.fromkeys(r.group for r in data.load(cfg.dataset)))
    return groups[cfg.row_slice()]


def corpus_texts(ref: str, n: int) -> list[str]:
    """ReFACT's covariance corpus: the first `n` prompts of a dataset, or the texts a
    profile generates for it (the world's training-caption distribution)."""
    found = profiles.split(ref)
    texts = found[0].corpus(found[1], n) if found else None
    return texts if texts is not None else [r.prompt for r in data.load(ref)][:n]
