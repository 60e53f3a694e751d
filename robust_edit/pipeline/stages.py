"""What each stage kind does, given its Stage and the store: edit, fine-tune and generate
(called by the runner's Ray tasks and Tune trials; each a no-op when the stage is already
complete), and score (one Ray Data pipeline over many stages' images)."""

from __future__ import annotations

import io
import time
from collections import defaultdict
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pandas as pd

from robust_edit.atomic import write_atomic
from robust_edit.config import EditConfig, FinetuneConfig, PromptSet, SweepSpec
from robust_edit.pipeline.graph import Graph, Stage
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
    """The fine-tune; of its checkpoints only the stage's `keep_steps` (those evaluated as
    variants) remain once it is complete."""
    from robust_edit import finetune

    if store.done(stage):
        return
    t0 = time.time()
    cfg = FinetuneConfig.model_validate(stage.config["finetune"])
    edit = edit_artifact_dir(store, stage.inputs[0]) if stage.inputs else None
    manifest = finetune.run(cfg, stage.config["model"], store.dir(stage) / "run", edit_artifact=edit,
                            cache_dir=store.root / "cache", progress=progress,
                            on_checkpoint=on_checkpoint,
                            keep_steps=stage.config.get("keep_steps", ()))
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
        return load_variant(store.dir(source, "finetune") / "run", step=stage.config.get("step"))
    pipe = load_pipeline(stage.labels["model"])
    if variant == "M_ed":
        EditArtifact.load(edit_artifact_dir(store, source)).apply(pipe)
    return pipe


def run_generate(stage: Stage, store: Store) -> None:
    """Images of the prompt set's evaluation items, as PNG bytes beside the items."""
    from PIL import Image

    from robust_edit.edit.evaluate import items
    from robust_edit.generate import generate_images, settings_of
    from robust_edit.provenance import git_commit, package_versions

    if store.done(stage):
        return
    t0 = time.time()
    cfg = PromptSet.model_validate(stage.config["prompt_set"])
    todo = items(cfg, stage.config["seeds"], stage.config["row_seeds"])
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


# The score phase: one Ray Data pipeline over every generated image to score, run by an
# actor pool (GPU share per actor on clusters); each actor holds every scorer the images
# need, so each batch is read and decoded once and each actor starts once. Writes per-image
# long-format scores to each score stage's Parquet. It runs after the Tune trials, never
# inside one (Ray Data nested in a trial deadlocked at 2 CPUs).


class ScoreBatch:
    """Ray Data callable class: the scorers of the images' stages, one model each per actor.
    `names` maps a generate stage's key (its images' folder) to the scorers it needs."""

    def __init__(self, names: dict[str, list[str]], ref: str, gpu: bool):
        import torch

        from robust_edit import scorers

        device = "cuda" if gpu and torch.cuda.is_available() else "cpu"
        self.names = names
        self.scorers = {n: scorers.create(n, ref, device) for n in sorted({n for v in names.values() for n in v})}

    def __call__(self, batch: pd.DataFrame) -> pd.DataFrame:
        images = decode(batch["image"])
        meta = batch.drop(columns=["image"]).reset_index(drop=True)
        needs = meta["path"].map(lambda p: tuple(self.names[Path(p).parent.name]))
        out = []
        for name, scorer in self.scorers.items():
            rows_of = np.flatnonzero([name in n for n in needs])
            if not len(rows_of):
                continue
            # Items of different stages share item numbers: score by batch position.
            items = meta.iloc[rows_of].assign(item=rows_of).to_dict("records")
            scored = scorer.score(images[rows_of], items)
            # A scorer whose labels depend on settings (nudenet's thresholds) records them.
            settings = ["scorer_settings"] if any("scorer_settings" in r for r in scored) else []
            rows = pd.DataFrame(scored, columns=["item", "metric", "label", "value", *settings])
            keys = meta.loc[rows["item"], ["path", "item"]].reset_index(drop=True)
            out.append(rows.drop(columns=["item"]).assign(path=keys["path"], item=keys["item"], scorer=name))
        return pd.concat(out, ignore_index=True)


def score_dataset(paths: list[str], names: dict[str, list[str]], ref: str, res):
    """The Ray Data pipeline that scores generated images: read the image files, stream
    them through an actor pool of ScoreBatch (res: the spec's resources). Rows keep their
    file's path. The sweep runs it; benchmarks/score_throughput.py times it."""
    import ray

    # Ray 2.60's Parquet reader V2 (the default) lists the files in one task (7-9 s here
    # for 52 files) and reads them into a single block whatever override_num_blocks says,
    # which one actor then scores alone whatever the pool's size; V1 reads a block per
    # file, so every actor works (quickstart's 15,356 images on 2 actors: 25 s against
    # 50 s; benchmarks/README.md).
    ray.data.DataContext.get_current().use_datasource_v2 = False
    return ray.data.read_parquet(paths, include_paths=True, override_num_blocks=len(paths)).map_batches(
        ScoreBatch, fn_constructor_kwargs={"names": names, "ref": ref, "gpu": res.gpus_per_scorer_actor > 0},
        compute=ray.data.ActorPoolStrategy(size=res.scorer_actors), batch_size=256,
        batch_format="pandas", num_cpus=res.cpus_per_scorer_actor,
        num_gpus=res.gpus_per_scorer_actor or None)


def run_scores(graph: Graph, store: Store, spec: SweepSpec, stages: list[Stage]) -> None:
    """Score every given score stage's images (they must be generated)."""
    import logging

    if not stages:
        return
    logging.getLogger("ray.data").setLevel(logging.WARNING)  # its per-second status lines
    t0 = time.time()
    gen_of = {s.key: graph.stages[s.inputs[0]] for s in stages}
    by_path = {str(store.dir(gen) / IMAGES): s for s, gen in ((graph.stages[k], g) for k, g in gen_of.items())}
    scored = score_dataset(list(by_path), {g.key: scorer_names(g) for g in gen_of.values()},
                           spec.evaluation.scorer, spec.resources)
    parts = defaultdict(list)
    for batch in scored.iter_batches(batch_format="pandas", batch_size=None):
        for path, rows in batch.groupby("path"):
            parts[_normal(path, by_path)].append(rows.drop(columns=["path"]))
    for path, stage in by_path.items():
        scores = pd.concat(parts[path], ignore_index=True) if parts[path] else pd.DataFrame()
        write_scores(stage, store, scores.sort_values(["scorer", "metric", "item"], ignore_index=True), t0)


def _normal(path: str, by_path: dict) -> str:
    """Ray Data reports paths without a filesystem scheme; match them to ours."""
    if path in by_path:
        return path
    return next(p for p in by_path if p.endswith(path) or path.endswith(p))
