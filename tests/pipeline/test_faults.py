"""Faults during the tiny sweep, each ending with a rerun whose results equal an
uninterrupted run's (tests/pipeline/sweeps.assert_same_as_uninterrupted): a SIGKILLed
Ray worker in the middle of a fine-tune trial, a SIGKILL in the middle of an edit
artifact's write, two drivers started on one storage at once, and a write that fails
with ENOSPC in the middle of a stage. (A SIGKILLed driver: tests/pipeline/test_run.py.)

Faults inside Ray workers are injected without touching the product: a sitecustomize.py
put first on PYTHONPATH (the embedded Ray's workers inherit the driver's environment)
wraps robust_edit.atomic.write_atomic before any module imports it, and fires once per
sweep: the first process to create the marker file does."""

from __future__ import annotations

import os
import signal
import time
from contextlib import contextmanager
from pathlib import Path

import pandas as pd
import psutil
import pytest
import yaml

from robust_edit import finetune
from robust_edit.config import load_sweep
from robust_edit.edit.artifact import EditArtifact
from robust_edit.pipeline.graph import build
from robust_edit.pipeline.store import MARKER, Store
from tests.pipeline.sweeps import (
    TINY,
    assert_same_as_uninterrupted,
    finish,
    sweep,
    tiny_spec,
    uninterrupted,
)

__all__ = ["uninterrupted"]  # a fixture: imported to be used, not unused
pytestmark = pytest.mark.slow

SITECUSTOMIZE = '''
import os

FAULT = os.environ.get("ROBUST_EDIT_FAULT")
if FAULT:
    import errno
    import signal
    from pathlib import Path

    from robust_edit import atomic

    MARK = Path(os.environ["ROBUST_EDIT_FAULT_MARKER"])
    original = atomic.write_atomic

    def fire(path):
        """True in the one process that claims the fault; the marker says where, by whom."""
        try:
            fd = os.open(MARK, os.O_CREAT | os.O_EXCL | os.O_WRONLY)
        except FileExistsError:
            return False
        os.write(fd, f"{os.getpid()} {path}".encode())
        os.close(fd)
        return True

    def write_atomic(path, content, *, folder=False):
        path = Path(path)
        if FAULT == "edit-write" and folder and path.parent.parent.name == "edit" and fire(path):
            write = content

            def content(tmp):  # half of edit.safetensors written, then this process is killed
                write(tmp)
                weights = tmp / "edit.safetensors"
                os.truncate(weights, weights.stat().st_size // 2)
                (tmp / "edit.json").unlink()
                os.kill(os.getpid(), signal.SIGKILL)
        elif FAULT == "enospc" and path.name == "images.parquet" and fire(path):
            data = content

            def content(tmp):  # half of the file written, then the disk is full
                tmp.write_bytes(data[:len(data) // 2])
                raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))
        return original(path, content, folder=folder)

    atomic.write_atomic = write_atomic
'''


def faulty_env(tmp_path: Path, fault: str) -> tuple[dict, Path]:
    """The environment of a sweep whose processes inject `fault`, and its marker file."""
    site = tmp_path / "site"
    site.mkdir()
    (site / "sitecustomize.py").write_text(SITECUSTOMIZE)
    marker = tmp_path / "fault-fired"
    path = os.pathsep.join(filter(None, [str(site), os.environ.get("PYTHONPATH")]))
    return {**os.environ, "PYTHONPATH": path, "ROBUST_EDIT_FAULT": fault,
            "ROBUST_EDIT_FAULT_MARKER": str(marker)}, marker


@contextmanager
def started(spec: Path, **kw):
    """A sweep; on the way out, it and every process it started are SIGKILLed if alive."""
    proc = sweep(spec, **kw)
    try:
        yield proc
    finally:
        if proc.poll() is None:
            try:
                driver = psutil.Process(proc.pid)
                family = [driver, *driver.children(recursive=True)]
            except psutil.NoSuchProcess:
                family = []
            for p in family:
                try:
                    p.kill()
                except psutil.NoSuchProcess:
                    pass
        try:
            os.killpg(proc.pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
        proc.wait()
        proc.stdout.close()


def rerun_matches(expected: Path, spec: Path) -> str:
    out = finish(sweep(spec))
    assert_same_as_uninterrupted(expected, spec)
    return out


def cmdline(p: psutil.Process) -> str:
    try:
        return " ".join(p.cmdline())
    except psutil.Error:
        return ""


def test_sigkilled_trial_worker_is_retried_to_the_uninterrupted_results(uninterrupted, tmp_path):
    spec = tiny_spec(tmp_path)
    storage = Store(load_sweep(spec).storage).root
    with started(spec) as proc:
        deadline = time.time() + 600
        # A checkpoint of a fine-tune stage not yet complete: its trial is mid-training.
        while not (checkpoints := [c for d in storage.glob("stages/finetune/*")
                                   if not (d / MARKER).exists()
                                   for c in d.glob(f"run/checkpoints/step-*/{finetune.DONE}")]):
            assert proc.poll() is None and time.time() < deadline, "ended before a checkpoint"
            time.sleep(0.1)
        family = psutil.Process(proc.pid).children(recursive=True)
        workers = [p for p in family if cmdline(p).startswith("ray::ImplicitFunc")]
        assert len(workers) == 1, [cmdline(p) for p in family]  # one fine-tune trial at a time
        workers[0].kill()
        finish(proc)  # Tune retries the trial
    # Tune saw that process die as the trial's failure, and the retry resumed from the
    # checkpoint: its first report is of a later step.
    pid, step = workers[0].pid, int(checkpoints[0].parent.name.removeprefix("step-"))
    trial = next(p.parent for p in storage.glob("tune/*/*/error.txt")
                 if f"pid: {pid}\n" in p.read_text())
    reports = pd.read_csv(trial / "progress.csv")
    assert reports[reports["pid"] != pid]["step"].iloc[0] > step
    rerun_matches(uninterrupted, spec)


def test_sigkill_during_an_edit_artifact_write_leaves_no_artifact_taken_as_complete(
        uninterrupted, tmp_path):
    spec = tiny_spec(tmp_path)
    env, marker = faulty_env(tmp_path, "edit-write")
    with started(spec, env=env) as proc:
        finish(proc, timeout=900)  # Ray retries the task
    pid, path = marker.read_text().split(" ", 1)  # the fault fired, in a Ray worker
    assert int(pid) != proc.pid and Path(path).name == "edit"
    complete = list(Store(load_sweep(spec).storage).root.glob("stages/edit/*/stage.json"))
    assert complete
    for stage in complete:
        assert EditArtifact.load(stage.parent / "edit").tensors
    rerun_matches(uninterrupted, spec)


def test_two_drivers_on_one_storage_one_refuses(uninterrupted, tmp_path):
    spec = tiny_spec(tmp_path)
    with started(spec) as a:
        time.sleep(0.5)
        with started(spec) as b:
            deadline = time.time() + 300
            while a.poll() is None and b.poll() is None:
                assert time.time() < deadline, "neither driver refused"
                time.sleep(0.2)
            loser, winner = (a, b) if a.poll() is not None else (b, a)
            lines = loser.stdout.read().strip().splitlines()
            assert loser.returncode == 2 and len(lines) == 1, lines
            assert "in use" in lines[0] and str(Store(load_sweep(spec).storage).root) in lines[0]
            out = finish(winner, timeout=900)
    assert "in use" not in out
    stages = len(build(load_sweep(spec)).stages)
    assert f"{stages} of {stages} stages executed" in out
    assert "0 of " in rerun_matches(uninterrupted, spec)


def test_enospc_mid_stage_fails_that_stage_only_and_a_rerun_completes(uninterrupted, tmp_path):
    resources = yaml.safe_load(TINY.read_text())["resources"]
    spec = tiny_spec(tmp_path, resources={**resources, "max_failures": 0})
    env, marker = faulty_env(tmp_path, "enospc")
    with started(spec, env=env) as proc:
        out, _ = proc.communicate(timeout=900)
    assert proc.returncode == 1  # not the input's fault (that is 2)
    assert "1 stage(s) failed" in out and "No space left on device" in out, out[-3000:]
    failed = Path(marker.read_text().split(" ", 1)[1])  # stages/generate/<key>/images.parquet
    assert f"generate {failed.parent.name} (" in out  # the report names the stage
    graph, store = build(load_sweep(spec)), Store(load_sweep(spec).storage)
    assert failed.parent.parent.name == "generate" and failed.parent.name in graph.stages
    # No half-written file at a final path, or anywhere; no marker for the failed stage.
    assert not failed.exists() and not (failed.parent / MARKER).exists()
    assert not list(store.root.glob("stages/*/*/.*.tmp"))
    # Every other stage that could run is stored: all but the failed one, what reads it,
    # and the aggregate.
    lost = {failed.parent.name}
    while grown := {k for k, s in graph.stages.items() if lost & set(s.inputs)} - lost:
        lost |= grown
    expect = {k for k, s in graph.stages.items() if k not in lost and s.kind != "aggregate"}
    assert {r["key"] for r in store.ledger()} == expect
    rerun_matches(uninterrupted, spec)
