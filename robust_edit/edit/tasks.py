"""Datasets -> edit requests, through the same loaders for the world and the real datasets.

RoAD rows give (subject, old, new) for ReFACT (the subject is the edit prompt); TIME rows
give (old, old, new); profession prompt sets give the concepts to debias; I2P gives the
unsafe concepts to remove (the world's unsafe words, or the paper-era list for real data).
"""

from __future__ import annotations

from robust_edit import data
from robust_edit.config import I2P_CONCEPTS, TASK_FORMATS, EditConfig

WORLD_CLASSIFIER = "world:scorer"
CLIP_CLASSIFIER = "ViT-L-14/openai"


def is_world(dataset: str) -> bool:
    return dataset.startswith("world:")


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
    if is_world(cfg.dataset):
        from robust_edit.world import vocab as V

        return ({h: 1 / len(V.HEIGHTS) for h in V.HEIGHTS},
                {h: V.zero_shot_text("height", h) for h in V.HEIGHTS})
    return {"male": 0.5, "female": 0.5}, {"male": "a man", "female": "a woman"}


def classifier_ref(cfg: EditConfig) -> str:
    return cfg.uce.classifier or (WORLD_CLASSIFIER if is_world(cfg.dataset) else CLIP_CLASSIFIER)


def unsafe_concepts(cfg: EditConfig) -> list[str]:
    check_dataset(cfg)
    if cfg.concepts:
        return list(cfg.concepts)
    if cfg.task == "erase":
        raise ValueError("concepts: an erase edit needs the concepts to erase, e.g. ['lime']")
    if is_world(cfg.dataset):
        from robust_edit.world import vocab as V

        return V.unsafe_words()
    return list(I2P_CONCEPTS)


WORLD_CORPUS = "world:captions"


def preserve(cfg: EditConfig, edited: list[str] = ()) -> list[str]:
    """UCE's preserve set: as configured; else, on the world, '' plus the ordinary
    vocabulary (span keys share the padding region with every prompt, and preserving only
    '' let an unsafe-word erasure cut safe-prompt adherence from 99 % to 54 %); else ''.
    Entries naming an `edited` concept are left out."""
    if "preserve" in cfg.uce.model_fields_set or not is_world(cfg.dataset):
        return list(cfg.uce.preserve)
    from robust_edit.world import vocab as V

    vocabulary = ([""] + list(V.COLOURS) + list(V.SHAPES) + list(V.SIZES)
                  + [f"on a {b} background" for b in V.BACKGROUNDS]
                  + [V.with_article(n) for n in V.NOUNS] + ["a person", "a tall person", "a short person"])
    edited_words = {w for c in edited for w in c.lower().split()}
    return [p for p in vocabulary if not edited_words & set(p.lower().split())]


def corpus(cfg: EditConfig) -> tuple[str, list[str]]:
    """ReFACT's covariance corpus: (reference, texts). The world's is its training-caption
    distribution (every kind of scene); real models default to COCO captions."""
    ref = cfg.refact.corpus or (WORLD_CORPUS if is_world(cfg.dataset) else "coco30k")
    if ref == WORLD_CORPUS:
        import random

        from robust_edit.world import scenes

        rng = random.Random(2024)
        return ref, [scenes.sample_example(rng)[1] for _ in range(min(cfg.refact.corpus_size, 20_000))]
    return ref, [r.prompt for r in data.load(ref)][:cfg.refact.corpus_size]


def refact_optimisation(cfg: EditConfig) -> dict:
    """ReFACT's v* settings, config values first. The paper's for real models. The world's
    text encoder learnt only through its UNet: its pooled output is untrained, so the
    target is the token states the UNet reads, and a one-token change must move a whole
    tail of states, which needs a larger step and norm bound (measured one edit at a time:
    efficacy appearance 83 % / role 60 % with the paper's 0.05 / 4, 100 % / 100 % with
    0.2 / 20)."""
    world = is_world(cfg.dataset)
    p = cfg.refact
    return {"objective": p.objective or ("tokens" if world else "pooled"),
            "lr": p.lr or (0.2 if world else 0.05),
            "max_norm_ratio": p.max_norm_ratio or (20.0 if world else 4.0)}


def default_guidance(dataset: str) -> float:
    """The world's sampling guidance for world data, else the study's 7.5."""
    from robust_edit.world.vocab import GUIDANCE

    return GUIDANCE if is_world(dataset) else 7.5


def generation_settings(cfg: EditConfig):
    """Generation for an edit's loop and its evaluation: guidance from the config, else the
    world's, else the dataset's usual 7.5."""
    from robust_edit.generate import GenerationSettings

    guidance = cfg.generation.guidance
    if guidance is None:
        guidance = default_guidance(cfg.dataset)
    return GenerationSettings(steps=cfg.generation.steps, guidance=guidance,
                              batch_size=cfg.generation.batch_size)
