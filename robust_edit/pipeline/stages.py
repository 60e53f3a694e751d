"""What each stage kind does, given its Stage and the store. Called by the runner's Ray
tasks and Tune trials; each function is a no-op when the stage is already complete."""

from __future__ import annotations

import io
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np

from robust_edit.atomic import write_atomic
from robust_edit.config import EditConfig, FinetuneConfig, PromptSet
from robust_edit.pipeline.graph import Stage
from robust_edit.pipeline.store import Store

IMAGES = "images.parquet"
SCORES = "scores.parquet"


def edit_artifact_dir(store: Store, edit_key: str) -> Path:
    return store.dir(edit_key, "edit") / "edit"


def run_edit(stage: Stage, store: Store, progress: bool = False) -> None:
    from robust_edit import edit

    if store.done(stage):
        return
    t0 = time.time()
    cfg = EditConfig.model_validate(stage.config["edit"])
    artifact, _ = edit.run(cfg, stage.config["model"], cache_dir=store.root / "cache",
                           progress=progress)
    artifact.save(edit_artifact_dir(store, stage.key))
    store.finish(stage, t0, seconds_edit=artifact.manifest["seconds"])


def run_finetune(stage: Stage, store: Store, progress: bool = False,
                 on_checkpoint: Callable[[int, Path], None] | None = None) -> None:
    from robust_edit import finetune

    if store.done(stage):
        return
    t0 = time.time()
    cfg = FinetuneConfig.model_validate(stage.config["finetune"])
    edit = edit_artifact_dir(store, stage.inputs[0]) if stage.inputs else None
    manifest = finetune.run(cfg, stage.config["model"], store.dir(stage) / "run", edit_artifact=edit,
                            cache_dir=store.root / "cache", progress=progress,
                            on_checkpoint=on_checkpoint)
    if manifest["status"] != "complete":
        raise RuntimeError(f"fine-tune {stage.key} stopped at {len(manifest['losses'])} steps")
    store.finish(stage, t0, trainable_parameters=manifest["trainable_parameters"])


def variant_pipeline(stage: Stage, store: Store):
    """The model a generate stage draws with: M, M + edit, or a fine-tuned run."""
    from robust_edit.edit.artifact import EditArtifact
    from robust_edit.finetune import load_variant
    from robust_edit.models import load_pipeline

    variant, source = stage.config["variant"], stage.inputs[0]
    if variant in ("M_ft", "M_ed_ft"):
        return load_variant(store.dir(source, "finetune") / "run")
    pipe = load_pipeline(stage.labels["model"])
    if variant == "M_ed":
        EditArtifact.load(edit_artifact_dir(store, source)).apply(pipe)
    return pipe


def run_generate(stage: Stage, store: Store) -> None:
    """Images of the prompt set's evaluation items, as PNG bytes beside the items."""
    import pandas as pd
    from PIL import Image

    from robust_edit.edit.evaluate import items
    from robust_edit.generate import generate_images, settings_of
    from robust_edit.provenance import git_commit, package_versions

    if store.done(stage):
        return
    t0 = time.time()
    cfg = PromptSet.model_validate(stage.config["prompt_set"])
    todo = items(cfg, stage.config["seeds"])
    settings = settings_of(cfg.generation)
    pipe = variant_pipeline(stage, store)
    images = generate_images(pipe, [it["prompt"] for it in todo], [it["seed"] for it in todo],
                             settings, desc=f"{stage.config['variant']} {cfg.task}")
    pngs = []
    for img in images:
        buf = io.BytesIO()
        Image.fromarray(img).save(buf, format="PNG")
        pngs.append(buf.getvalue())
    folder = store.dir(stage)
    folder.mkdir(parents=True, exist_ok=True)
    buf = io.BytesIO()
    pd.DataFrame(todo).assign(image=pngs).to_parquet(buf, index=False)
    write_atomic(folder / IMAGES, buf.getvalue())
    store.finish(stage, t0, images=len(todo), settings=settings.__dict__,
                 git_commit=git_commit(), versions=package_versions())


def decode(pngs) -> np.ndarray:
    from PIL import Image

    return np.stack([np.asarray(Image.open(io.BytesIO(b)).convert("RGB")) for b in pngs])


def scorer_names(stage: Stage) -> list[str]:
    """The registered scorers a generate stage's images need."""
    from robust_edit.edit.evaluate import scorer_names as names

    return names(PromptSet.model_validate(stage.config["prompt_set"]))


def write_scores(stage: Stage, store: Store, scores, started: float) -> None:
    buf = io.BytesIO()
    scores.to_parquet(buf, index=False)
    folder = store.dir(stage)
    folder.mkdir(parents=True, exist_ok=True)
    write_atomic(folder / SCORES, buf.getvalue())
    store.finish(stage, started, rows=len(scores))


def grid(pngs, n: int = 16) -> np.ndarray:
    """The first n images tiled in a square grid (for MLflow)."""
    images = decode(list(pngs)[:n])
    side = int(np.ceil(np.sqrt(len(images))))
    h, w = images.shape[1:3]
    out = np.zeros((side * h, side * w, 3), np.uint8)
    for i, img in enumerate(images):
        out[(i // side) * h:(i // side + 1) * h, (i % side) * w:(i % side + 1) * w] = img
    return out


