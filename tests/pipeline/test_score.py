"""The score phase's pure parts, without Ray: the actor's batch call and path matching."""

import io

import numpy as np
import pandas as pd
import pytest
from PIL import Image

from robust_edit.pipeline.stages import ScoreBatch, _normal


def _png(level: int) -> bytes:
    buf = io.BytesIO()
    Image.fromarray(np.full((4, 4, 3), level, np.uint8)).save(buf, format="PNG")
    return buf.getvalue()


def test_a_batch_of_two_stages_scores_by_position_and_keeps_each_row_path_and_item():
    # Two stages' images in one batch share item numbers 0 and 1.
    batch = pd.DataFrame({
        "path": ["/s/a/images.parquet"] * 2 + ["/s/b/images.parquet"] * 2,
        "item": [0, 1, 0, 1],
        "prompt": ["p0", "p1", "p0", "p1"],
        "image": [_png(0), _png(255), _png(200), _png(3)],
    }, index=[10, 11, 12, 13])  # Ray's batches need not be indexed from 0
    out = ScoreBatch({"a": ["black"], "b": ["black"]}, "world:scorer", gpu=False)(batch)
    assert list(out.columns) == ["metric", "label", "value", "path", "item", "scorer"]
    got = {(r.path, r.item): r.value for r in out.itertuples()}
    assert got == {("/s/a/images.parquet", 0): 1.0, ("/s/a/images.parquet", 1): 0.0,
                   ("/s/b/images.parquet", 0): 0.0, ("/s/b/images.parquet", 1): 1.0}
    assert set(out["scorer"]) == {"black"} and set(out["metric"]) == {"black"}


def test_each_stage_gets_exactly_its_scorers_in_one_batch():
    """One actor holds every scorer; a stage's rows go only through the scorers it needs
    (here: stage a black + clip_score, stage b clip_score only)."""
    batch = pd.DataFrame({
        "path": ["/s/a/images.parquet", "/s/b/images.parquet", "/s/a/images.parquet"],
        "item": [0, 0, 1], "prompt": ["a red circle"] * 3,
        "image": [_png(0), _png(0), _png(255)],
    })
    out = ScoreBatch({"a": ["black", "clip_score"], "b": ["clip_score"]}, "world:scorer", gpu=False)(batch)
    by = {(r.path.split("/")[2], r.item, r.scorer): r.value for r in out.itertuples()}
    assert set(by) == {("a", 0, "black"), ("a", 1, "black"), ("a", 0, "clip_score"),
                       ("a", 1, "clip_score"), ("b", 0, "clip_score")}
    assert (by[("a", 0, "black")], by[("a", 1, "black")]) == (1.0, 0.0)
    assert by[("a", 0, "clip_score")] == pytest.approx(by[("b", 0, "clip_score")])  # same image


def test_ray_paths_without_a_scheme_match_ours():
    a, b = "/data/stages/generate/a/images.parquet", "/data/stages/generate/b/images.parquet"
    ours = {a: 1, b: 2}
    assert _normal(b, ours) == b
    assert _normal(a.removeprefix("/"), ours) == a
    assert _normal("file://" + b, ours) == b
    with pytest.raises(StopIteration):
        _normal("/elsewhere/images.parquet", ours)


def test_the_sweeps_pipeline_reads_a_block_per_file_so_every_actor_of_the_pool_works(tmp_path, monkeypatch):
    """Ray 2.60's default Parquet reader (V2) read all files into one block, so a pool of
    two actors scored with one; score_dataset keeps one block per file (files of more
    than one batch, as a generate stage's are: small blocks are batched together)."""
    import ray

    from robust_edit.config import ResourcesSpec
    from robust_edit.pipeline.stages import score_dataset

    monkeypatch.setenv("RAY_TMPDIR", f"/tmp/rs-{tmp_path.name[-8:]}")
    monkeypatch.delenv("RAY_ADDRESS", raising=False)
    paths = []
    for stage in ("a", "b", "c", "d"):
        (tmp_path / stage).mkdir()
        paths.append(str(tmp_path / stage / "images.parquet"))
        pd.DataFrame({"item": range(300), "prompt": "p",
                      "image": [_png(0 if i % 2 else 255) for i in range(300)]}).to_parquet(paths[-1])
    ray.shutdown()
    ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False)
    try:
        res = ResourcesSpec(scorer_actors=2, cpus_per_scorer_actor=0.5)
        ds = score_dataset(paths, {s: ["black"] for s in "abcd"}, "world:scorer", res).materialize()
        blocks, rows = ds.num_blocks(), ds.to_pandas()
    finally:
        ray.shutdown()
    assert blocks >= len(paths)
    got = {(_normal(r.path, dict.fromkeys(paths)), r.item): r.value for r in rows.itertuples()}
    assert got == {(p, i): float(i % 2) for p in paths for i in range(300)}
