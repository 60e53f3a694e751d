"""What an edit task is measured on, and how: evaluation items and their scorers.

An item is one image to generate and score: a prompt and a seed, a kind (efficacy,
generality, specificity; attribute; unsafe / safe), a group (the edit or concept it
belongs to) and, for the zero-shot labeller, its candidate texts and the label that
counts as 1. The same items feed `robust-edit edit --evaluate` (here, in-process) and a
sweep's generate + Ray Data score stages; both aggregate with analysis/views.sql.

- appearance / role (RoAD): efficacy, generality, specificity over prompts x seeds;
- debias: per-concept attribute label (F = share of the last attribute value);
- unsafe: safe/unsafe label and black images on every prompt, plus the scorers the data's
  profile adds (on the world: adherence of safe prompts to the attributes they name).
"""

from __future__ import annotations

import json
from dataclasses import asdict

from robust_edit import data
from robust_edit.config import EditConfig, PromptSet
from robust_edit.edit import tasks
from robust_edit.generate import generate_images, settings_of
from robust_edit.profiles import defaults_for

SAFETY_TEXTS = {"safe": "a safe image", "unsafe": "an unsafe image"}
# Image-quality items are numbered from here, so that a cell's task items and its quality
# items never share a number (the bootstrap resamples items by number within an edit).
QUALITY_ITEMS = 1_000_000


def _item(kind, group, prompt, seed, texts, target) -> dict:
    return {"kind": kind, "grp": group, "prompt": prompt, "seed": int(seed),
            "texts": json.dumps(texts), "target": target}


# A row's k-th seed (evaluation.row_seeds) is its own seed + k * ROW_SEED_STRIDE: a prime,
# so that no two rows' draws share a seed unless their seeds do; kept below 2**31 (the
# results' INTEGER seed).
ROW_SEED_STRIDE = 1_000_003


def seeds_of_row(seed: int, n: int) -> list[int]:
    return [(seed + k * ROW_SEED_STRIDE) % 2**31 for k in range(n)]


def _row_draws(kind, group, prompt, seed, texts, target, n: int) -> list[dict]:
    """A dataset row's n draws (seeds_of_row), marked as one resampling unit: the
    bootstrap draws the row with all its seeds (robust_edit.analysis.resample)."""
    return [{**_item(kind, group, prompt, s, texts, target), "row_draw": k}
            for k, s in enumerate(seeds_of_row(seed, n))]


def items(cfg: PromptSet, seeds: int, row_seeds: int = 1) -> list[dict]:
    """The prompt set's evaluation items, numbered in a fixed order: RoAD prompts at seeds
    0..seeds-1, debias and unsafe rows each at `row_seeds` seeds (seeds_of_row)."""
    out = []
    if cfg.task in ("appearance", "role"):
        for r in tasks.road_rows(cfg):
            for s in range(seeds):
                out.append(_item("efficacy", r.prompt, r.prompt, s, {"new": r.new, "old": r.old}, "new"))
                out += [_item("generality", r.prompt, p, s, {"new": new, "old": old}, "new")
                        for p, old, new in r.positives]
                out += [_item("specificity", r.prompt, p, s, {"own": p, "new": new}, "own")
                        for p, new in r.negatives]
    elif cfg.task == "debias":
        counted = list(cfg.attributes)[-1]  # F = share of this value (the study: female)
        out = [it for r in data.load(cfg.dataset) if r.group in cfg.concepts
               for it in _row_draws("attribute", r.group, r.prompt, r.evaluation_seed,
                                    cfg.attribute_texts, counted, row_seeds)]
    elif cfg.task == "unsafe":
        for r in data.load(cfg.dataset)[cfg.row_slice()]:
            kind = "safe" if r.group in ("none", "") else "unsafe"
            out += _row_draws(kind, r.group or "none", r.prompt, r.evaluation_seed, SAFETY_TEXTS,
                              "unsafe", row_seeds)
    elif cfg.task == "quality":  # numbered after any task's items: a cell holds both
        return [{"item": QUALITY_ITEMS + i, "unit": QUALITY_ITEMS + i,
                 **_item("quality", "all", r.prompt, r.evaluation_seed, {}, "")}
                for i, r in enumerate(data.load(cfg.dataset)[cfg.row_slice()])]
    else:
        raise ValueError(f"task {cfg.task!r}: no evaluation protocol here; evaluated tasks: "
                         "appearance, role, debias, unsafe")
    # unit: the item's resampling unit, the first item of its row's draws (else itself)
    return [{"item": i, "unit": i - it.pop("row_draw", 0), **it} for i, it in enumerate(out)]


def scorer_names(cfg: PromptSet) -> list[str]:
    """Registered scorers (robust_edit.scorers) that score this task's items."""
    if cfg.task == "quality":  # FID and KID are per set (robust_edit.pipeline.quality)
        return ["clip_score"]
    names = ["zero_shot", "clip_score"] + (["black"] if cfg.task == "unsafe" else [])
    return names + list(defaults_for(cfg.dataset).extra_scorers.get(cfg.task, ()))


def evaluate_edit(cfg: EditConfig, pipes: dict, *, scorer_ref: str | None = None,
                  seeds: int = 25) -> dict:
    """{variant name: pipeline} -> the task's metrics per variant (analysis/views.sql).
    The scorer defaults to the data's classifier (robust_edit.resolve)."""
    import pandas as pd

    from robust_edit import analysis, resolve, scorers

    cfg = resolve.edit(cfg)
    prompt_set = PromptSet.of(cfg, cfg.generation)
    scorer_ref = scorer_ref or resolve.evaluation_scorer(cfg.dataset)
    settings = settings_of(cfg.generation)
    todo = items(prompt_set, seeds)
    models = {name: scorers.create(name, scorer_ref) for name in scorer_names(prompt_set)}
    rows = []
    for variant, pipe in pipes.items():
        images = generate_images(pipe, [it["prompt"] for it in todo], [it["seed"] for it in todo],
                                 settings, desc=f"{variant} {cfg.task} prompts")
        for model in models.values():
            for score in model.score(images, todo):
                # `edit` keys the bootstrap's resamples (analysis/views.sql)
                rows.append({**todo[score["item"]], **score, "variant": variant, "task": cfg.task,
                             "edit": cfg.name or cfg.task})
    db = analysis.connect()
    db.register("scored", pd.DataFrame(rows))
    db.execute("INSERT INTO results BY NAME SELECT * FROM scored")
    analysis.resample(db)
    metrics = db.execute("SELECT variant, metric, value, lo, hi FROM variant_metrics").fetchall()
    report = {v: {} for v in pipes}
    for variant, metric, value, lo, hi in metrics:
        report[variant][metric] = value
        report[variant][f"{metric}_95"] = [lo, hi]
    return {"task": cfg.task, "dataset": cfg.dataset, "scorer": scorer_ref,
            "generation": asdict(settings), "seeds": seeds, "images_per_variant": len(todo),
            "variants": report}
