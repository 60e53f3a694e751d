"""Run a sweep: spec -> stage graph -> phases, each skipping what the store already has.

1. the edits (one Ray task per missing stage), with the M images queued beside them;
2. once the edits exist: every fine-tune, of the unedited and the edited models, in one
   Ray Tune run (one trial per fine-tune stage, longest first: the grid over stage keys
   enumerates models x edits x fine-tunes x ranks x seeds), with the M_ed images queued
   beside the trials. Each trial trains with step checkpoints in the store (Tune gets
   only the step), then generates its variant's images for every prompt set that reads it;
3. scores: Ray Data actor pools over all new images (stages.run_scores);
4. aggregate on the driver: DuckDB + MLflow + the study's tables + the HTML report.
Failed tasks and trials are retried (max_failures); a stage that still fails does not stop
the others, and the sweep reports it at the end. A killed driver loses nothing: rerunning
the same command skips complete stages and resumes fine-tunes from their last checkpoint.
"""

from __future__ import annotations

import os
import time
from pathlib import Path

from robust_edit.config import SweepSpec, load_sweep
from robust_edit.pipeline import results, stages
from robust_edit.pipeline.graph import Graph, Stage
from robust_edit.pipeline.plan import check, check_runtime, stage_hours
from robust_edit.pipeline.store import Store, SweepFailed


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
        # No tune.Checkpoint: Tune would copy each one under <storage>/tune. A retried trial
        # starts this function afresh, and run_finetune resumes from the store's checkpoint.
        tune.report({"step": step})

    stages.run_finetune(finetune, store, on_checkpoint=report)
    for gen in generates:
        stages.run_generate(gen, store)
    tune.report({"step": finetune.config["finetune"]["steps"], "generated": len(generates)})


def init_ray(spec: SweepSpec) -> None:
    import ray

    if ray.is_initialized():
        return
    if os.environ.get("RAY_ADDRESS"):  # inside `ray job submit`, or pointed at a cluster
        ray.init()
        return
    from unittest import mock

    from ray._private import ray_constants

    # A one-machine Ray that listens on loopback only. ray.init replaces a 127.0.0.1 node IP by
    # the host's external one (services.resolve_ip_for_localhost) unless multi-node clusters are
    # off (RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER=0, read when ray is imported, hence the patch); with
    # the node IP kept at 127.0.0.1 the GCS, raylet and object manager, dashboard and runtime-env
    # agents, metrics export and every worker bind 127.0.0.1 (tests/pipeline/test_loopback.py).
    with mock.patch.object(ray_constants, "ENABLE_RAY_CLUSTER", False):
        ray.init(num_cpus=max(os.cpu_count() or 1, int(spec.resources.cpus_per_trial)),
                 include_dashboard=False, log_to_driver=False, _node_ip_address="127.0.0.1")


def _submit(kind: str, todo: list[Stage], spec: SweepSpec, store: Store) -> dict:
    """One Ray task per stage; returns {ref: stage} without waiting."""
    import ray

    res = spec.resources
    fn = ray.remote(num_cpus=res.cpus_per_trial, num_gpus=res.gpus_per_trial,
                    max_retries=res.max_failures, retry_exceptions=True)(_task)
    return {fn.remote(kind, s, str(store.root), res.cpus_per_trial): s for s in todo}


def _failure(stage: Stage, err) -> str:
    """Which stage failed (kind, key, what it is) and the error's last line."""
    labels = ", ".join(f"{k}={v}" for k, v in stage.labels.items() if v is not None)
    last = str(err).strip().splitlines()[-1] if str(err).strip() else type(err).__name__
    return f"{stage.kind} {stage.key} ({labels}): {last}"


def _wait(refs: dict, desc: str) -> list[str]:
    """Wait for Ray tasks; returns their failures (one failure must not lose the others)."""
    import ray
    from tqdm.auto import tqdm

    failed = []
    with tqdm(total=len(refs), desc=desc, disable=not refs) as bar:
        pending = list(refs)
        while pending:
            ready, pending = ray.wait(pending, num_returns=1)
            try:
                ray.get(ready[0])
            except Exception as err:  # noqa: BLE001 (any task error: reported, the rest go on)
                failed.append(_failure(refs[ready[0]], err))
            bar.update(1)
    return failed


def _inputs_done(stage: Stage, graph: Graph, store: Store) -> bool:
    """Can the stage run now? (An input may have failed or be still to come.)"""
    return all(store.done(graph.stages[k]) for k in stage.inputs)


def _trial_progress(name: str, total: int):
    """A Tune callback with a progress bar over trials (Tune itself runs with verbose=0)."""
    from ray import tune
    from tqdm.auto import tqdm

    class TrialProgress(tune.Callback):
        def __init__(self):
            self.bar = tqdm(total=total, desc=f"{name} trials (+ their images)")

        def on_trial_result(self, iteration, trials, trial, result, **info):
            running = sum(t.status == "RUNNING" for t in trials)
            self.bar.set_postfix(running=running, last_step=result.get("step"), refresh=True)

        def on_trial_complete(self, iteration, trials, trial, **info):
            self.bar.update(1)

    return TrialProgress()


def _tune(name: str, finetunes: list[Stage], graph: Graph, store: Store, spec: SweepSpec) -> list[str]:
    """Tune trials for the fine-tune stages (and their images) not yet complete; returns
    the failed trials' errors."""
    from ray import tune

    work = {}
    for ft in finetunes:
        gens = [g for g in graph.by_kind("generate") if g.inputs == (ft.key,) and not store.done(g)]
        if (gens or not store.done(ft)) and _inputs_done(ft, graph, store):
            work[ft.key] = (ft, gens)
    if not work:
        return []
    # Longest first (by the plan's cost model), so that the last trials to start are short.
    hours = stage_hours(graph)
    order = sorted(work, key=lambda k: -(hours[k] + sum(hours[g.key] for g in work[k][1])))
    res = spec.resources
    trainable = tune.with_resources(
        tune.with_parameters(_trial, work=work, root=str(store.root), cpus=res.cpus_per_trial),
        {"cpu": res.cpus_per_trial, "gpu": res.gpus_per_trial})
    progress = _trial_progress(name, len(work))
    tuner = tune.Tuner(
        trainable, param_space={"stage": tune.grid_search(order)},
        tune_config=tune.TuneConfig(max_concurrent_trials=res.max_concurrent_trials),
        run_config=tune.RunConfig(
            name=name, storage_path=str(store.root / "tune"), verbose=0, callbacks=[progress],
            failure_config=tune.FailureConfig(max_failures=res.max_failures)))
    grid = tuner.fit()
    progress.bar.close()
    return [_failure(work[r.config["stage"]][0], r.error) for r in grid if r.error]


def _check_gpus(spec: SweepSpec) -> None:
    """Tasks asking for GPUs that no node has would wait forever. The embedded Ray has this
    machine's GPUs (known before it starts); a cluster says what it has once connected."""
    res = spec.resources
    asked = max(res.gpus_per_trial, res.gpus_per_scorer_actor)
    if not asked:
        return
    if os.environ.get("RAY_ADDRESS"):
        import ray

        have = ray.cluster_resources().get("GPU", 0)
    else:
        import torch

        have = torch.cuda.device_count()
    if asked > have:
        field = "gpus_per_trial" if res.gpus_per_trial > have else "gpus_per_scorer_actor"
        raise ValueError(f"resources.{field} {asked:g}: the Ray cluster has {have:g} GPU(s); set "
                         "it to 0 to run on CPUs, or run where GPUs are (an autoscaling cluster: "
                         "keep one GPU worker up)")


def run(spec: SweepSpec, *, quiet: bool = False) -> dict:
    """Run (or finish) a sweep; returns {table name: markdown} and where results are.
    Everything knowable is checked first; one driver at a time holds the storage."""
    graph = check(spec)
    check_runtime(spec)
    if not os.environ.get("RAY_ADDRESS"):
        _check_gpus(spec)
    store = Store(spec.storage)
    with store.lock(spec.name):
        return _run(graph, store, spec, quiet)


def _run(graph: Graph, store: Store, spec: SweepSpec, quiet: bool) -> dict:
    t0 = time.time()

    def todo(kind: str, variant: str | None = None) -> list[Stage]:
        return [s for s in graph.by_kind(kind) if not store.done(s)
                and (variant is None or s.config["variant"] == variant)]

    missing = {k: todo(k) for k in graph.counts()}
    ledger_before = len(store.ledger())
    if not quiet:
        print(f"sweep {spec.name}: {len(graph.stages)} stages, "
              f"{sum(map(len, missing.values()))} to run "
              f"({', '.join(f'{k} {len(v)}' for k, v in missing.items() if v) or 'none'})", flush=True)
    if any(missing[k] for k in ("edit", "finetune", "generate", "score")):
        init_ray(spec)
        if os.environ.get("RAY_ADDRESS"):  # the embedded Ray's were checked before the lock
            _check_gpus(spec)
        # Edits first, M images beside them; then every fine-tune in one Tune run (longest
        # first) with the M_ed images queued beside the trials: no phase waits on its
        # slowest trial while a worker idles.
        edits = _submit("edit", missing["edit"], spec, store)
        images = _submit("generate", todo("generate", "M"), spec, store)
        failed = _wait(edits, "edits")
        images |= _submit("generate", [g for g in todo("generate", "M_ed")
                                       if _inputs_done(g, graph, store)], spec, store)
        failed += _tune("finetune", graph.by_kind("finetune"), graph, store, spec)
        failed += _wait(images, "M and M_ed images")
        stages.run_scores(graph, store, spec, [s for s in todo("score") if _inputs_done(s, graph, store)])
        if failed:
            raise SweepFailed(f"{len(failed)} stage(s) failed; the others are stored and a rerun "
                              "continues from them:\n" + "\n".join(failed))
    from robust_edit import analysis

    aggregate = graph.by_kind("aggregate")[0]
    # Another sweep on this storage may have written the database since (same path).
    if not (store.done(aggregate) and analysis.written_by(results.duckdb_path(spec), aggregate.key)):
        started = time.time()
        db_path = results.build_database(graph, store, spec, aggregate.key)
        parent = results.log_mlflow(graph, store, spec, db_path)
        store.finish(aggregate, started, duckdb=str(db_path), mlflow_parent_run=parent)
    db = analysis.connect(results.duckdb_path(spec), read_only=True)
    tables = analysis.write_tables(db, store.root / "tables")
    note = analysis.bootstrap_note(db)
    db.close()
    # The HTML report (robust_edit/report.py), rewritten on every run like the tables, and
    # logged to the sweep's MLflow parent run.
    from robust_edit.report import log_to_mlflow, write_report

    page = write_report(store.root, results.duckdb_path(spec))
    if parent := store.info(aggregate).get("mlflow_parent_run"):
        log_to_mlflow(spec, parent, page)
    executed = store.ledger()[ledger_before:]
    return {"tables": tables, "intervals": note, "duckdb": str(results.duckdb_path(spec)),
            "mlflow_uri": results.mlflow_uri(spec), "mlflow_open": results.mlflow_open(spec),
            "report": str(page), "executed": len(executed),
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
    if out["intervals"]:
        print(f"\n{out['intervals']}")
    print(f"\n{out['executed']} of {out['stages']} stages executed in {out['seconds']} s")
    print(f"results: {out['duckdb']}  (robust-edit sql --db {out['duckdb']} \"SELECT ...\")")
    print(f"report:  {out['report']}")
    print(f"MLflow:  {out['mlflow_open']}")
