"""The results database from stage outputs: one row per item x metric x variant, with the
cell's axes and the generate stage's provenance (no Ray, no MLflow)."""

import io
import json
import time
from pathlib import Path

import duckdb
import numpy as np
import pandas as pd
import pytest
from PIL import Image

from robust_edit.analysis import written_by
from robust_edit.config import load_sweep
from robust_edit.pipeline.graph import build
from robust_edit.pipeline.results import AXES, build_database, duckdb_path, score_of
from robust_edit.pipeline.stages import IMAGES, SCORES
from robust_edit.pipeline.store import Store

TINY = Path(__file__).with_name("tiny.yaml")
ITEMS = [  # two evaluation items, as robust_edit.edit.evaluate.items writes them
    {"item": 0, "kind": "unsafe", "grp": "violence", "prompt": "a violent lime", "seed": 4,
     "texts": json.dumps({"safe": "a safe image", "unsafe": "an unsafe image"}),
     "target": "unsafe"},
    {"item": 1, "kind": "safe", "grp": "none", "prompt": "a lime", "seed": 5,
     "texts": json.dumps({"safe": "a safe image", "unsafe": "an unsafe image"}),
     "target": "unsafe"},
]


def _png(level: int) -> bytes:
    buf = io.BytesIO()
    Image.fromarray(np.full((4, 4, 3), level, np.uint8)).save(buf, format="PNG")
    return buf.getvalue()


def _parquet(path: Path, df: pd.DataFrame) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    df.to_parquet(path, index=False)


@pytest.fixture
def swept(tmp_path):
    """The tiny sweep's graph with fake images and scores for its four generate stages."""
    spec = load_sweep(TINY)
    raw = spec.model_dump(mode="json")
    raw["storage"] = str(tmp_path / "out")
    spec = type(spec).model_validate(raw)
    graph, store = build(spec), Store(spec.storage)
    scores = score_of(graph)
    for n, gen in enumerate(graph.by_kind("generate")):
        _parquet(store.dir(gen) / IMAGES, pd.DataFrame(ITEMS).assign(image=[_png(0), _png(200)]))
        store.finish(gen, time.time(), images=2, settings={"steps": 2 + n, "guidance": 3.0},
                     git_commit=f"commit-{n}",
                     versions={"torch": f"2.{n}", "requirements.lock": f"sha-{n}"})
        rows = [{"item": it["item"], "metric": m, "label": label, "value": float(n + i)}
                for i, it in enumerate(ITEMS)
                for m, label in (("label", "unsafe" if i == 0 else "safe"), ("black", None))]
        _parquet(store.dir(scores[gen.key]) / SCORES, pd.DataFrame(rows))
        store.finish(scores[gen.key], time.time(), rows=len(rows))
    return spec, graph, store


def _rows(path: Path) -> pd.DataFrame:
    db = duckdb.connect(str(path), read_only=True)
    df = db.execute("SELECT * FROM results ORDER BY variant, item, metric").df()
    db.close()
    return df


def test_one_row_per_item_metric_and_variant_with_provenance(swept):
    spec, graph, store = swept
    path = build_database(graph, store, spec, "aggregate-key")
    assert path == duckdb_path(spec) == Path(spec.storage).resolve() / "results.duckdb"
    df = _rows(path)
    (cell,) = graph.cells
    assert len(df) == len(ITEMS) * 2 * 4
    assert set(df.groupby(["variant", "item", "metric"]).size()) == {1}
    assert set(df["variant"]) == set(cell["variants"])
    assert (df["sweep"] == "tiny").all() and (df["cell"] == cell["cell"]).all()
    assert (df["scorer"] == spec.evaluation.scorer).all()
    for axis in AXES:
        assert df[axis].tolist() == [cell[axis]] * len(df), axis
    for variant, part in df.groupby("variant"):
        gen = graph.stages[cell["variants"][variant]]
        info = store.info(gen)
        assert (part["generate_key"] == gen.key).all()
        assert (part["source_key"] == gen.inputs[0]).all()
        assert (part["git_commit"] == info["git_commit"]).all()
        assert (part["lock_sha256"] == info["versions"]["requirements.lock"]).all()
        assert [json.loads(v) for v in part["versions"]] == [info["versions"]] * len(part)
        assert [json.loads(v) for v in part["settings"]] == [info["settings"]] * len(part)
        n = int(info["git_commit"].removeprefix("commit-"))  # the fixture's stage number
        values = part.set_index(["item", "metric"])["value"]
        assert values[(0, "label")] == n and values[(1, "black")] == n + 1
    # Item columns come from the images, score columns from the scores, joined on item.
    first = df[(df["item"] == 1) & (df["metric"] == "label")].iloc[0]
    assert (first["prompt"], first["seed"], first["kind"], first["grp"]) == (
        "a lime", 5, "safe", "none")
    assert first["label"] == "safe" and json.loads(first["texts"])["unsafe"] == "an unsafe image"
    assert df.loc[df["metric"] == "black", "label"].isna().all()


def test_rebuilding_replaces_the_database(swept):
    spec, graph, store = swept
    first = _rows(build_database(graph, store, spec, "a"))
    assert written_by(duckdb_path(spec), "a") and not written_by(duckdb_path(spec), "b")
    again = _rows(build_database(graph, store, spec, "b"))
    pd.testing.assert_frame_equal(first, again)
    assert written_by(duckdb_path(spec), "b") and not written_by(duckdb_path(spec), "a")
    assert sorted(p.name for p in Path(spec.storage).iterdir()) == [
        "ledger", "results.duckdb", "stages"]  # no temporary database left beside it
