"""Sweeps sharing one storage: each prints its own tables (the database is rebuilt when
another sweep wrote it), a changed spec under the same name leaves no MLflow runs of the
cells it dropped, and one driver holds a storage at a time. Stage outputs are faked (as in
test_results.py), so only the aggregate runs: no Ray."""

import json
import socket
import subprocess
import sys
import time

import pandas as pd
import pytest

from robust_edit.config import load_sweep
from robust_edit.pipeline.graph import build
from robust_edit.pipeline.results import mlflow_uri, score_of
from robust_edit.pipeline.run import run
from robust_edit.pipeline.stages import IMAGES, SCORES, edit_artifact_dir
from robust_edit.pipeline.store import StorageBusy, Store
from tests.pipeline.test_results import ITEMS, TINY, _parquet, _png


def _spec(storage, **changes):
    raw = load_sweep(TINY).model_dump(mode="json") | {"storage": str(storage)} | changes
    return load_sweep(TINY).model_validate(raw)


def _fake(spec):
    """Every stage but the aggregate complete, with small stand-in outputs."""
    graph, store = build(spec), Store(spec.storage)
    scores = score_of(graph)
    for stage in graph.stages.values():
        if store.done(stage) or stage.kind in ("score", "aggregate"):
            continue
        if stage.kind == "edit":
            edit_artifact_dir(store, stage.key).mkdir(parents=True)
            (edit_artifact_dir(store, stage.key) / "edit.json").write_text("{}")
            store.finish(stage, time.time())
        elif stage.kind == "finetune":
            (store.dir(stage) / "run").mkdir(parents=True)
            (store.dir(stage) / "run" / "manifest.json").write_text("{}")
            store.finish(stage, time.time())
        else:
            _parquet(store.dir(stage) / IMAGES, pd.DataFrame(ITEMS).assign(image=[_png(0), _png(200)]))
            store.finish(stage, time.time(), images=2, settings={}, git_commit="c", versions={})
            rows = [{"item": it["item"], "metric": "label", "label": "safe", "value": 1.0} for it in ITEMS]
            _parquet(store.dir(scores[stage.key]) / SCORES, pd.DataFrame(rows))
            store.finish(scores[stage.key], time.time(), rows=len(rows))


def test_sweeps_sharing_a_storage_each_get_their_own_tables(tmp_path):
    a = _spec(tmp_path)
    b = _spec(tmp_path, name="tiny-b", edits=[{**a.model_dump(mode="json")["edits"][0], "name": "renamed"}])
    _fake(a)  # b's stages are a's: only the names (and the aggregate) differ
    first = run(a, quiet=True)
    assert "renamed" in run(b, quiet=True)["tables"]["unsafe"]
    again = run(a, quiet=True)
    assert again["executed"] == 1  # the aggregate, rebuilt: b had written the database since
    assert again["tables"] == first["tables"] and "renamed" not in again["tables"]["unsafe"]
    # Only this sweep's tables: unsafe (per cell and per label), its controls and the
    # findings it can speak to (no edit_metrics, debias or compare left over from elsewhere).
    assert sorted(p.name for p in (tmp_path / "tables").iterdir()) == [
        f"{t}.{x}" for t in ("controls", "findings", "unsafe", "unsafe_labels") for x in ("csv", "md")]
    assert run(a, quiet=True)["executed"] == 0


def test_a_changed_spec_leaves_no_runs_of_the_cells_it_dropped(tmp_path):
    import mlflow

    before = _spec(tmp_path)
    after = _spec(tmp_path, finetunes=[{**before.model_dump(mode="json")["finetunes"][0], "ranks": [3]}])
    for spec in (before, after):
        _fake(spec)
        run(spec, quiet=True)
    client = mlflow.MlflowClient(mlflow_uri(after))
    exp = client.get_experiment_by_name("tiny").experiment_id
    runs = client.search_runs([exp])
    children = [r for r in runs if "mlflow.parentRunId" in r.data.tags]
    assert len(runs) == len(children) + 1 and len(children) == 4
    assert {r.data.params["rank"] for r in children} == {"3"}


HOLD = """import sys, time
from robust_edit.pipeline.store import Store
with Store(sys.argv[1]).lock("a"):
    print("held", flush=True)
    time.sleep(600)
"""


def test_a_second_driver_is_refused_and_a_killed_drivers_lock_ends_with_it(tmp_path):
    holder = subprocess.Popen([sys.executable, "-c", HOLD, str(tmp_path)], stdout=subprocess.PIPE, text=True)
    try:
        assert holder.stdout.readline().strip() == "held"
        busy = rf"in use by sweep 'a' \(pid {holder.pid} on {socket.gethostname()}"
        with pytest.raises(StorageBusy, match=busy), Store(tmp_path).lock("b"):
            pass
    finally:
        holder.kill()
        holder.wait()
    with Store(tmp_path).lock("c"):  # SIGKILL leaves the file, not the lock
        assert json.loads((tmp_path / "driver.lock").read_text())["sweep"] == "c"
