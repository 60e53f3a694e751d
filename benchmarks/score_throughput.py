"""Scoring throughput: the sweep's Ray Data pipeline against a bare loop, same process.

Both score the same generated images (a store's generate stages) with the same callable
(robust_edit.pipeline.stages.ScoreBatch: PNG decode + each stage's scorers) on the same
cores: Ray Data as the sweep runs it (stages.score_dataset at the spec's resources: the
quickstart's 2 actors of one torch thread each), the bare loop in this process with one
torch thread per actor. Ray is started before either clock runs (the sweep's driver has it
up), so the Ray Data figure includes its actors' start-up and streaming, nothing else.
Target: Ray Data >= 0.9 x the bare loop's images/s.

Ray Data pays a fixed start-up per pipeline (its actors' worker processes and imports,
about 8 s here; benchmarks/README.md), the bare loop none, so the ratio grows with the
images a sweep scores: --repeat K scores the store's image files K times over (links under
a temporary folder, so every copy is a distinct file to both loops), a sweep K times the
store's size (sweeps/paper-world.yaml has 336 generate stages, the quickstart 52: K 6.5).

    python benchmarks/score_throughput.py [--spec sweeps/quickstart.yaml] [--store outputs/sweeps/quickstart]
        [--images N] [--repeat K] [--only NAME] [--rounds 3]
"""

from __future__ import annotations

import argparse
import json
import math
import tempfile
import time
from pathlib import Path

import numpy as np
import pandas as pd


def image_files(store: Path, images: int | None) -> list[str]:
    """The generate stages' image files, all of them or enough to hold `images` images."""
    paths, total = [], 0
    for path in sorted((store / "stages" / "generate").glob("*/images.parquet")):
        paths.append(str(path))
        total += len(pd.read_parquet(path, columns=["item"]))
        if images and total >= images:
            return paths
    if images and total < images:
        raise SystemExit(f"--store {store}: {total} generated images, fewer than --images {images}; "
                         "run the quickstart first or ask for fewer")
    return paths


def repeated(paths: list[str], times: float, folder: Path) -> list[str]:
    """`paths`, then links to them under `folder` up to `times` x as many files (rounded up);
    copy k of a file is folder/k/<stage key>/images.parquet, so it keeps its stage's scorers."""
    out = list(paths)
    for i in range(len(paths), math.ceil(times * len(paths))):
        original = Path(paths[i % len(paths)])
        link = folder / str(i // len(paths)) / original.parent.name / original.name
        link.parent.mkdir(parents=True)
        link.symlink_to(original.resolve())
        out.append(str(link))
    return out


def names_of(paths: list[str], only: str | None) -> dict[str, list[str]]:
    """Each stage's scorers as the sweep runs them (or only `only`)."""
    from robust_edit.pipeline.graph import Stage
    from robust_edit.pipeline.stages import scorer_names

    out = {}
    for p in paths:
        info = json.loads((Path(p).parent / "stage.json").read_text())
        out[Path(p).parent.name] = [only] if only else scorer_names(Stage("generate", info["key"], info["config"]))
    return out


def bare_loop(paths: list[str], scorer: str, names: dict, batch: int, threads: int) -> tuple[int, float]:
    import torch

    from robust_edit.pipeline.stages import ScoreBatch

    torch.set_num_threads(threads)
    t = time.perf_counter()
    score, n = ScoreBatch(names, scorer, gpu=False), 0
    for path in paths:
        frame = pd.read_parquet(path).assign(path=path)
        for i in range(0, len(frame), batch):
            score(frame.iloc[i:i + batch])
        n += len(frame)
    return n, time.perf_counter() - t


def ray_data(paths: list[str], scorer: str, names: dict, resources) -> tuple[int, float]:
    from robust_edit.pipeline.stages import score_dataset

    t = time.perf_counter()
    items = set()
    for out in score_dataset(paths, names, scorer, resources).iter_batches(batch_format="pandas", batch_size=None):
        items.update(zip(out["path"], out["item"]))
    return len(items), time.perf_counter() - t


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--spec", type=Path, default=Path("sweeps/quickstart.yaml"),
                    help="the sweep whose scoring resources Ray Data runs with")
    ap.add_argument("--store", type=Path, default=Path("outputs/sweeps/quickstart"))
    ap.add_argument("--images", type=int, help="default: every image in the store")
    ap.add_argument("--repeat", type=float, default=1.0,
                    help="score the image files this many times over (a larger sweep)")
    ap.add_argument("--scorer", default="world:scorer")
    ap.add_argument("--only", help="one registered scorer (default: each stage's, as the sweep)")
    ap.add_argument("--rounds", type=int, default=3, help="alternating timed rounds (medians)")
    args = ap.parse_args()

    import logging

    import ray

    from robust_edit.config import load_sweep
    from robust_edit.pipeline.run import init_ray

    spec = load_sweep(args.spec)
    resources = spec.resources
    threads = resources.scorer_actors  # each actor: one torch thread (Ray's OMP_NUM_THREADS)
    stored = image_files(args.store, args.images)
    names = names_of(stored, args.only)
    links = tempfile.TemporaryDirectory()
    paths = repeated(stored, args.repeat, Path(links.name))
    init_ray(spec)  # as the sweep's driver starts it
    logging.getLogger("ray.data").setLevel(logging.WARNING)
    ray_data(paths[:1], args.scorer, names, resources)  # Ray Data's own first-use set-up
    # Alternating rounds: a 2-core machine's background load moves single timings by 20 %.
    rounds = []
    for _ in range(args.rounds):
        n_ray, s_ray = ray_data(paths, args.scorer, names, resources)
        n_bare, s_bare = bare_loop(paths, args.scorer, names, 256, threads)
        assert n_ray == n_bare, (n_ray, n_bare)
        rounds.append((s_bare, s_ray))
    scorers = sorted({n for v in names.values() for n in v})
    print(f"images: {n_bare} from {len(paths)} image files ({len(stored)} generate stages x "
          f"{args.repeat:g}), scorers {scorers} ({args.scorer})")
    s_bare, s_ray = (float(np.median(x)) for x in zip(*rounds))
    print(f"bare loop: {n_bare / s_bare:8.1f} images/s (median of {len(rounds)}: {s_bare:.1f} s; "
          f"{threads} torch threads)")
    print(f"Ray Data:  {n_ray / s_ray:8.1f} images/s (median of {len(rounds)}: {s_ray:.1f} s; "
          f"{resources.scorer_actors} actors x {resources.cpus_per_scorer_actor} CPU, {args.spec})")
    print(f"Ray Data / bare loop: {s_bare / s_ray:.2f} (target >= 0.90); per round: "
          + ", ".join(f"{b / r:.2f}" for b, r in rounds))
    ray.shutdown()
    links.cleanup()


if __name__ == "__main__":
    main()
