"""The score phase: one Ray Data pipeline per registered scorer over every generated
image that needs it, run by an actor pool (GPU share per actor on clusters), writing
per-image long-format scores to each score stage's Parquet. It runs after the Tune
trials, never inside one (Ray Data nested in a trial deadlocked at 2 CPUs)."""

from __future__ import annotations

import time
from collections import defaultdict

import pandas as pd

from robust_edit.config import SweepSpec
from robust_edit.pipeline.graph import Graph, Stage
from robust_edit.pipeline.stages import IMAGES, decode, scorer_names, write_scores
from robust_edit.pipeline.store import Store


class ScoreBatch:
    """Ray Data callable class: one scorer model per actor."""

    def __init__(self, name: str, ref: str, gpu: bool):
        import torch

        from robust_edit import scorers

        self.name = name
        self.scorer = scorers.create(name, ref, "cuda" if gpu and torch.cuda.is_available() else "cpu")

    def __call__(self, batch: pd.DataFrame) -> pd.DataFrame:
        images = decode(batch["image"])
        meta = batch.drop(columns=["image"]).reset_index(drop=True)
        # Items of different stages share item numbers: score by batch position.
        rows = pd.DataFrame(self.scorer.score(images, meta.assign(item=meta.index).to_dict("records")),
                            columns=["item", "metric", "label", "value"])
        keys = meta.loc[rows["item"], ["path", "item"]].reset_index(drop=True)
        return rows.drop(columns=["item"]).assign(path=keys["path"], item=keys["item"],
                                                  scorer=self.name)


def run_scores(graph: Graph, store: Store, spec: SweepSpec, stages: list[Stage]) -> None:
    """Score every given score stage's images (they must be generated)."""
    import logging

    import ray

    if not stages:
        return
    logging.getLogger("ray.data").setLevel(logging.WARNING)  # its per-second status lines
    t0 = time.time()
    gen_of = {s.key: graph.stages[s.inputs[0]] for s in stages}
    by_path = {str(store.dir(gen) / IMAGES): s for s, gen in ((graph.stages[k], g) for k, g in gen_of.items())}
    res = spec.resources
    names = sorted({n for g in gen_of.values() for n in scorer_names(g)})
    parts = defaultdict(list)
    # One streaming pipeline per scorer, run one after another: their actor pools side by
    # side plus the read tasks would need more CPUs than a 2-core machine offers.
    for name in names:
        paths = [p for p, s in by_path.items() if name in scorer_names(gen_of[s.key])]
        scored = ray.data.read_parquet(paths, include_paths=True).map_batches(
            ScoreBatch, fn_constructor_kwargs={"name": name, "ref": spec.evaluation.scorer,
                                               "gpu": res.gpus_per_scorer_actor > 0},
            compute=ray.data.ActorPoolStrategy(size=res.scorer_actors), batch_size=256,
            batch_format="pandas", num_cpus=res.cpus_per_scorer_actor,
            num_gpus=res.gpus_per_scorer_actor or None)
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
