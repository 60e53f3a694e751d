"""Stage artifacts under the storage root, by content key.

<root>/stages/<kind>/<key>/ holds a stage's outputs; its `stage.json` is written last
(once the outputs are fsynced; temp file + rename), so a folder without it is unfinished
work that the next run resumes or redoes. Every completed execution also leaves one file
under <root>/ledger/, so a reader can check that no stage ran twice.
"""

from __future__ import annotations

import json
import os
import socket
import time
from contextlib import contextmanager
from pathlib import Path

from robust_edit.atomic import fsync_tree, write_atomic
from robust_edit.pipeline.graph import Stage

MARKER = "stage.json"
LOCK = "driver.lock"


class StorageBusy(OSError):
    pass


class SweepFailed(RuntimeError):
    """Stages failed after retries; the others are stored (the message names each)."""


class Store:
    def __init__(self, root: str | Path):
        # Absolute: Tune runs each trial in its own working directory.
        self.root = Path(root).expanduser().resolve()

    def dir(self, stage: Stage | str, kind: str | None = None) -> Path:
        key = stage if isinstance(stage, str) else stage.key
        return self.root / "stages" / (kind or stage.kind) / key

    def done(self, stage: Stage) -> bool:
        return (self.dir(stage) / MARKER).exists()

    def info(self, stage: Stage) -> dict:
        return json.loads((self.dir(stage) / MARKER).read_text())

    def finish(self, stage: Stage, started: float, **info) -> None:
        """Mark a stage complete (its outputs are already in place) and log it."""
        record = {"kind": stage.kind, "key": stage.key, "labels": stage.labels,
                  "config": stage.config, "inputs": list(stage.inputs), "started": started,
                  "seconds": round(time.time() - started, 2), "host": socket.gethostname(),
                  "pid": os.getpid(), **info}
        folder = self.dir(stage)
        folder.mkdir(parents=True, exist_ok=True)
        fsync_tree(folder)  # the outputs reach the disk before the marker that vouches for them
        write_atomic(folder / MARKER, json.dumps(record, indent=1, default=str))
        ledger = self.root / "ledger"
        ledger.mkdir(parents=True, exist_ok=True)
        write_atomic(ledger / f"{time.time_ns()}-{stage.kind}-{stage.key}.json",
                     json.dumps({k: record[k] for k in ("kind", "key", "started", "seconds", "host")}))

    def ledger(self) -> list[dict]:
        folder = self.root / "ledger"
        return [json.loads(p.read_text()) for p in sorted(folder.glob("*.json"))] if folder.exists() else []

    @contextmanager
    def lock(self, sweep: str):
        """One driver per storage at a time: a second is refused, naming who holds it. The
        lock is the OS's (flock) on <storage>/driver.lock, so it ends with its process, a
        killed driver's too; the file's content only says who holds it."""
        import fcntl

        self.root.mkdir(parents=True, exist_ok=True)
        path = self.root / LOCK
        with open(path, "a+") as f:
            try:
                fcntl.flock(f, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                f.seek(0)
                try:
                    held = json.loads(f.read())
                    who = (f"sweep {held['sweep']!r} (pid {held['pid']} on {held['host']}, since "
                           f"{time.strftime('%H:%M:%S', time.localtime(held['since']))})")
                except (ValueError, KeyError, TypeError):  # being written this instant
                    who = "another driver"
                raise StorageBusy(f"storage {self.root}: in use by {who}; wait for it to "
                                  "finish") from None
            f.seek(0)
            f.truncate()
            json.dump({"sweep": sweep, "host": socket.gethostname(), "pid": os.getpid(),
                       "since": time.time()}, f)
            f.flush()
            yield  # the lock is released when the file closes
