"""Run a sweep: spec -> stage graph -> phases, each skipping what the store already has.

1. edits: one Ray task per missing edit stage;
2. fine-tunes: Ray Tune, one trial per fine-tune stage (grid over the stage keys, which
   enumerate models x edits x fine-tunes x ranks x seeds); each trial trains with step
   checkpoints reported to Tune, then generates its variant's images for every prompt
   set that reads it. Failed trials are retried (FailureConfig); a killed driver loses
   nothing: rerunning the same command skips complete stages and resumes fine-tunes
   from their last checkpoint;
3. M and M_ed images: one Ray task per missing generate stage;
4. scores: Ray Data actor pools over all new images (robust_edit.pipeline.score);
5. aggregate on the driver: DuckDB + MLflow + the study's tables.
"""

from __future__ import annotations

import os
import time
from pathlib import Path

from robust_edit.config import SweepSpec, check_runtime, load_sweep
from robust_edit.pipeline import results, stages
from robust_edit.pipeline.graph import Graph, Stage, build
from robust_edit.pipeline.score import run_scores
from robust_edit.pipeline.store import Store


def _threads(cpus: float) -> None:
    import torch

    torch.set_num_threads(max(1, int(cpus)))


def _task(kind: str, stage: Stage, root: str, cpus: float) -> str:
    _threads(cpus)
    store = Store(root)
    if kind == "edit":
        stages.run_edit(stage, store)
    else:
        stages.run_generate(stage, store)
    return stage.key


def _trial(config: dict, *, work: dict, root: str, cpus: float) -> None:
    """Tune trainable: one fine-tune stage, then the images of the variants it makes."""
    from ray import tune

    _threads(cpus)
    store = Store(root)
    finetune, generates = work[config["stage"]]

    def report(step: int, folder: Path) -> None:
        tune.report({"step": step}, checkpoint=tune.Checkpoint.from_directory(str(folder)))

    stages.run_finetune(finetune, store, on_checkpoint=report)
    for gen in generates:
        stages.run_generate(gen, store)
    tune.report({"step": finetune.config["finetune"]["steps"], "generated": len(generates)})


def _init_ray(spec: SweepSpec) -> None:
    import ray

    if ray.is_initialized():
        return
    if os.environ.get("RAY_ADDRESS"):  # inside `ray job submit`, or pointed at a cluster
        ray.init()
    else:
        ray.init(num_cpus=max(os.cpu_count() or 1, int(spec.resources.cpus_per_trial)),
                 include_dashboard=False, log_to_driver=False, _node_ip_address="127.0.0.1")


def _remote(kind: str, todo: list[Stage], spec: SweepSpec, store: Store) -> None:
    import ray

    if not todo:
        return
    res = spec.resources
    fn = ray.remote(num_cpus=res.cpus_per_trial, num_gpus=res.gpus_per_trial,
                    max_retries=res.max_failures)(_task)
    refs = [fn.remote(kind, s, str(store.root), res.cpus_per_trial) for s in todo]
    _wait(refs, f"{kind} stages")


def _wait(refs, desc: str) -> None:
    import ray
    from tqdm.auto import tqdm

    failed = []
    with tqdm(total=len(refs), desc=desc) as bar:
        pending = list(refs)
        while pending:
            ready, pending = ray.wait(pending, num_returns=1)
            try:
                ray.get(ready[0])
            except Exception as err:  # one stage's failure must not lose the others
                failed.append(err)
            bar.update(1)
    if failed:
        raise RuntimeError(f"{len(failed)} of {len(refs)} {desc} failed; first: {failed[0]}")


def _tune(graph: Graph, store: Store, spec: SweepSpec) -> None:
    from ray import tune

    work = {}
    for ft in graph.by_kind("finetune"):
        gens = [g for g in graph.by_kind("generate") if g.inputs == (ft.key,) and not store.done(g)]
        if gens or not store.done(ft):
            work[ft.key] = (ft, gens)
    if not work:
        return
    # Tune warns on every checkpoint of short trials that snapshots are frequent.
    os.environ.setdefault("TUNE_WARN_EXCESSIVE_EXPERIMENT_CHECKPOINT_SYNC_THRESHOLD_S", "0")
    res = spec.resources
    trainable = tune.with_resources(
        tune.with_parameters(_trial, work=work, root=str(store.root), cpus=res.cpus_per_trial),
        {"cpu": res.cpus_per_trial, "gpu": res.gpus_per_trial})
    tuner = tune.Tuner(
        trainable, param_space={"stage": tune.grid_search(sorted(work))},
        tune_config=tune.TuneConfig(max_concurrent_trials=res.max_concurrent_trials),
        run_config=tune.RunConfig(
            name="finetune", storage_path=str((store.root / "tune").resolve()), verbose=0,
            failure_config=tune.FailureConfig(max_failures=res.max_failures),
            checkpoint_config=tune.CheckpointConfig(num_to_keep=1)))
    grid = tuner.fit()
    errors = [r.error for r in grid if r.error]
    if errors:
        raise RuntimeError(f"{len(errors)} of {len(work)} fine-tune trials failed; first: {errors[0]}")


def run(spec: SweepSpec, *, quiet: bool = False) -> dict:
    """Run (or finish) a sweep; returns {table name: markdown} and where results are."""
    check_runtime(spec)
    t0 = time.time()
    graph = build(spec)
    store = Store(spec.storage)
    store.root.mkdir(parents=True, exist_ok=True)
    missing = {k: [s for s in graph.by_kind(k) if not store.done(s)] for k in graph.counts()}
    ledger_before = len(store.ledger())
    if not quiet:
        print(f"sweep {spec.name}: {len(graph.stages)} stages, "
              f"{sum(map(len, missing.values()))} to run "
              f"({', '.join(f'{k} {len(v)}' for k, v in missing.items() if v) or 'none'})", flush=True)
    if any(missing[k] for k in ("edit", "finetune", "generate", "score")):
        _init_ray(spec)
        _remote("edit", missing["edit"], spec, store)
        _tune(graph, store, spec)
        _remote("generate", [g for g in graph.by_kind("generate") if not store.done(g)], spec, store)
        run_scores(graph, store, spec, [s for s in graph.by_kind("score") if not store.done(s)])
    aggregate = graph.by_kind("aggregate")[0]
    if not store.done(aggregate):
        started = time.time()
        db_path = results.build_database(graph, store, spec)
        parent = results.log_mlflow(graph, store, spec, db_path)
        store.finish(aggregate, started, duckdb=str(db_path), mlflow_parent_run=parent)
    from robust_edit import analysis

    db = analysis.connect(results.duckdb_path(spec), read_only=True)
    tables = analysis.write_tables(db, store.root / "tables")
    db.close()
    executed = store.ledger()[ledger_before:]
    return {"tables": tables, "duckdb": str(results.duckdb_path(spec)),
            "mlflow_uri": results.mlflow_uri(spec), "executed": len(executed),
            "stages": len(graph.stages), "seconds": round(time.time() - t0, 1)}


def main(argv: list[str] | None = None) -> None:
    """`python ray_jobs/sweep.py SPEC` and `robust-edit sweep run SPEC`."""
    import argparse

    parser = argparse.ArgumentParser(description="Run a robust-edit sweep")
    parser.add_argument("spec", type=Path, help="sweep spec YAML (sweeps/*.yaml)")
    args = parser.parse_args(argv)
    report(run(load_sweep(args.spec)))


def report(out: dict) -> None:
    for name, md in out["tables"].items():
        print(f"\n## {name}\n\n{md}")
    print(f"\n{out['executed']} of {out['stages']} stages executed in {out['seconds']} s")
    print(f"results: {out['duckdb']}  (robust-edit sql --db {out['duckdb']} \"SELECT ...\")")
    print(f"MLflow:  mlflow ui --backend-store-uri {out['mlflow_uri']} --host 127.0.0.1")
