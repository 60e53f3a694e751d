"""Datasets -> edit requests, through the same loaders for real datasets and profiles'.

RoAD rows give (subject, old, new) for ReFACT (the subject is the edit prompt); TIME rows
give (old, old, new); profession prompt sets give the concepts to debias; I2P gives the
unsafe concepts to remove. What a config leaves open comes from the data's defaults
(robust_edit.profiles: the study's for real data, a profile's for its own).
"""

from __future__ import annotations

from robust_edit import data, profiles
from robust_edit.config import TASK_FORMATS, EditConfig
from robust_edit.profiles import defaults_for


def check_dataset(cfg: EditConfig) -> str:
    fmt, _ = data.locate(cfg.dataset)
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
    check_dataset(cfg)
    if cfg.concepts:
        return list(cfg.concepts)
    groups = list(dict.fromkeys(r.group for r in data.load(cfg.dataset)))
    return groups[cfg.row_slice()]


def debias_attributes(cfg: EditConfig) -> tuple[dict[str, float], dict[str, str]]:
    """(value -> desired share, value -> classifier text)."""
    if cfg.uce.attributes:
        texts = cfg.uce.attribute_texts or {a: f"a {a} person" for a in cfg.uce.attributes}
        return dict(cfg.uce.attributes), dict(texts)
    defaults = defaults_for(cfg.dataset)
    return dict(defaults.debias_attributes), dict(defaults.debias_texts)


def classifier_ref(cfg: EditConfig) -> str:
    return cfg.uce.classifier or defaults_for(cfg.dataset).classifier


def unsafe_concepts(cfg: EditConfig) -> list[str]:
    check_dataset(cfg)
    if cfg.concepts:
        return list(cfg.concepts)
    if cfg.task == "erase":
        raise ValueError("concepts: an erase edit needs the concepts to erase, e.g. ['lime']")
    return list(defaults_for(cfg.dataset).unsafe_concepts)


def preserve(cfg: EditConfig, edited: list[str] = ()) -> list[str]:
    """UCE's preserve set: as configured, else the data's default vocabulary (the config's
    '' where it has none). Entries naming an `edited` concept are left out."""
    vocabulary = defaults_for(cfg.dataset).preserve_vocabulary
    if "preserve" in cfg.uce.model_fields_set or vocabulary is None:
        return list(cfg.uce.preserve)
    edited_words = {w for c in edited for w in c.lower().split()}
    return [p for p in vocabulary if not edited_words & set(p.lower().split())]


def corpus(cfg: EditConfig) -> tuple[str, list[str]]:
    """ReFACT's covariance corpus: (reference, texts). Real models default to COCO
    captions; a profile may generate its own (the world's training-caption distribution)."""
    ref = cfg.refact.corpus or defaults_for(cfg.dataset).refact_corpus
    found = profiles.split(ref)
    texts = found[0].corpus(found[1], cfg.refact.corpus_size) if found else None
    if texts is None:
        texts = [r.prompt for r in data.load(ref)][:cfg.refact.corpus_size]
    return ref, texts


def refact_optimisation(cfg: EditConfig) -> dict:
    """ReFACT's v* settings: config values first, then the data's (the paper's for real
    models; robust_edit.world.profile says why the world's differ)."""
    p, d = cfg.refact, defaults_for(cfg.dataset)
    return {"objective": p.objective or d.refact_objective, "lr": p.lr or d.refact_lr,
            "max_norm_ratio": p.max_norm_ratio or d.refact_max_norm_ratio}


def generation_settings(cfg: EditConfig):
    """Generation for an edit's loop and its evaluation: guidance from the config, else
    the data's default."""
    from robust_edit.generate import GenerationSettings

    guidance = cfg.generation.guidance
    if guidance is None:
        guidance = defaults_for(cfg.dataset).guidance
    return GenerationSettings(steps=cfg.generation.steps, guidance=guidance,
                              batch_size=cfg.generation.batch_size)
