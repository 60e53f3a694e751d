"""The stage store: folders by kind and key, a marker written last and atomically, a ledger."""

import os
import time

import pytest

from robust_edit.pipeline.graph import Stage
from robust_edit.pipeline.store import MARKER, Store

GEN = Stage("generate", "k-gen", {"variant": "M", "seeds": 2}, ("k-src",), {"model": "world:sd"})
SCORE = Stage("score", "k-score", {"scorer": "world:scorer"}, ("k-gen",), {"model": "world:sd"})


def test_dir_is_root_stages_kind_key(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    store = Store("out")  # relative roots become absolute (Tune trials change directory)
    root = tmp_path.resolve() / "out"
    assert store.root == root
    assert store.dir(GEN) == root / "stages" / "generate" / "k-gen"
    assert store.dir(SCORE) == root / "stages" / "score" / "k-score"
    assert store.dir("k-src", "edit") == root / "stages" / "edit" / "k-src"


def test_done_only_after_finish_and_info_round_trips(tmp_path):
    store = Store(tmp_path)
    assert not store.done(GEN)
    store.dir(GEN).mkdir(parents=True)
    (store.dir(GEN) / "images.parquet").write_bytes(b"outputs")
    assert not store.done(GEN)  # outputs without the marker are unfinished work
    store.finish(GEN, time.time() - 5, images=2, settings={"steps": 3}, where=tmp_path)
    assert store.done(GEN) and not store.done(SCORE)
    info = store.info(GEN)
    assert (info["kind"], info["key"], info["inputs"]) == ("generate", "k-gen", ["k-src"])
    assert info["config"] == GEN.config and info["labels"] == GEN.labels
    assert info["images"] == 2 and info["settings"] == {"steps": 3}
    assert info["where"] == str(tmp_path)  # non-JSON values are stored as text
    assert 5 <= info["seconds"] < 60 and info["pid"] == os.getpid()
    assert sorted(p.name for p in store.dir(GEN).iterdir()) == ["images.parquet", MARKER]


def test_a_failed_marker_write_leaves_the_stage_unfinished(tmp_path, monkeypatch):
    store = Store(tmp_path)

    def crash(src, dst):
        raise OSError("killed before the rename")

    monkeypatch.setattr(os, "replace", crash)
    with pytest.raises(OSError):
        store.finish(GEN, time.time())
    monkeypatch.undo()
    assert not store.done(GEN) and store.ledger() == []
    assert list(store.dir(GEN).iterdir()) == []  # no marker, no temporary left behind


def test_ledger_has_one_entry_per_completed_execution(tmp_path):
    store = Store(tmp_path)
    assert store.ledger() == []
    store.finish(GEN, time.time() - 2)
    store.finish(SCORE, time.time())
    store.finish(GEN, time.time())  # a stage run twice shows twice
    ledger = store.ledger()
    assert [(e["kind"], e["key"]) for e in ledger] == [
        ("generate", "k-gen"), ("score", "k-score"), ("generate", "k-gen")]
    assert ledger[0]["seconds"] >= 2 and all(e["seconds"] >= 0 for e in ledger)
    assert all(set(e) == {"kind", "key", "started", "seconds", "host"} for e in ledger)


def test_outputs_are_fsynced_before_the_marker_is_renamed_into_place(tmp_path, monkeypatch):
    store = Store(tmp_path)
    (store.dir(GEN) / "run").mkdir(parents=True)
    (store.dir(GEN) / "run" / "weights").write_bytes(b"w")
    events, real_fsync, real_replace = [], os.fsync, os.replace
    monkeypatch.setattr(os, "fsync", lambda fd: (events.append(os.readlink(f"/proc/self/fd/{fd}")),
                                                 real_fsync(fd)))
    monkeypatch.setattr(os, "replace", lambda src, dst: (events.append(f"rename -> {dst}"),
                                                         real_replace(src, dst)))
    store.finish(GEN, time.time())
    marker = events.index(f"rename -> {store.dir(GEN) / MARKER}")
    folder = str(store.dir(GEN))
    assert {folder, f"{folder}/run", f"{folder}/run/weights"} <= set(events[:marker])
