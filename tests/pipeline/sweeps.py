"""Helpers for the tests that run the tiny sweep (tiny.yaml) as a user does: start it,
finish it, read its results and MLflow runs, and compare two runs' results."""

from __future__ import annotations

import collections
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from robust_edit import analysis
from robust_edit.config import load_sweep
from robust_edit.pipeline.store import Store

REPO = Path(__file__).resolve().parents[2]
TINY = Path(__file__).with_name("tiny.yaml")
BIN = Path(sys.executable).parent


def tiny_spec(folder: Path, **changes) -> Path:
    """tiny.yaml with its storage under `folder`; `changes` replace top-level fields."""
    raw = yaml.safe_load(TINY.read_text())
    raw.update(storage=str(folder / "out"), **changes)
    path = folder / "tiny.yaml"
    path.write_text(yaml.safe_dump(raw))
    return path


def sweep(spec: Path, **kw) -> subprocess.Popen:
    return subprocess.Popen([str(BIN / "robust-edit"), "sweep", "run", str(spec)], cwd=REPO,
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                            start_new_session=True, **kw)


def finish(proc: subprocess.Popen, timeout: int = 600) -> str:
    out, _ = proc.communicate(timeout=timeout)
    assert proc.returncode == 0, out[-3000:]
    return out


def results(spec: Path):
    s = load_sweep(spec)
    db = analysis.connect(Path(s.storage) / "results.duckdb", read_only=True)
    cols = "cell, variant, item, metric, kind, grp, prompt, seed, label, value, generate_key"
    df = db.execute(f"SELECT {cols} FROM results ORDER BY ALL").df()
    tables = {t: analysis.table(db, t) for t in analysis.TABLES}
    db.close()
    return df, tables


def mlflow_runs(spec: Path):
    import mlflow

    s = load_sweep(spec)
    uri = f"sqlite:///{Path(s.storage).resolve() / 'mlflow.db'}"
    mlflow.set_tracking_uri(uri)
    runs = mlflow.search_runs(experiment_names=[s.name], output_format="pandas")
    mlflow.set_tracking_uri(None)
    return runs


def comparable(runs):
    # Sorted: search_runs orders metric columns as they were first logged, which a resumed
    # sweep may do in another order.
    keep = sorted(c for c in runs.columns
                  if c.startswith(("params.", "metrics.", "tags.robust_edit")))
    return runs[keep].sort_values("tags.robust_edit.key").reset_index(drop=True)


def assert_same_as_uninterrupted(uninterrupted_spec: Path, spec: Path) -> None:
    """`spec`'s finished sweep (interrupted, then rerun) has the uninterrupted one's results:
    no stage executed twice, the same rows with none lost or doubled, the same tables and
    the same MLflow runs."""
    ledger = Store(load_sweep(spec).storage).ledger()
    assert collections.Counter(r["key"] for r in ledger).most_common(1)[0][1] == 1  # nothing twice
    a, tables_a = results(uninterrupted_spec)
    b, tables_b = results(spec)
    assert len(a) == len(b) > 0
    assert not b.duplicated(["cell", "variant", "item", "metric"]).any()
    # Same content keys, same items, same labels and values.
    assert a.drop(columns=["cell"]).equals(b.drop(columns=["cell"]))
    for name in tables_a:
        assert tables_a[name].equals(tables_b[name]), name
    ra, rb = comparable(mlflow_runs(uninterrupted_spec)), comparable(mlflow_runs(spec))
    assert len(ra) == len(rb) and not rb["tags.robust_edit.key"].duplicated().any()
    assert ra.drop(columns=["params.duckdb", "params.storage"]).equals(
        rb.drop(columns=["params.duckdb", "params.storage"]))


@pytest.fixture(scope="module")
def uninterrupted(tmp_path_factory) -> Path:
    """The tiny sweep run once, start to end, per test module that asks for it."""
    spec = tiny_spec(tmp_path_factory.mktemp("uninterrupted"))
    finish(sweep(spec))
    return spec
