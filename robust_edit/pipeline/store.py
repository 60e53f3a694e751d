"""Stage artifacts under the storage root, by content key.

<root>/stages/<kind>/<key>/ holds a stage's outputs; its `stage.json` is written last
(temp file + rename), so a folder without it is unfinished work that the next run
resumes or redoes. Every completed execution also leaves one file under <root>/ledger/,
so a reader can check that no stage ran twice.
"""

from __future__ import annotations

import json
import os
import socket
import time
from pathlib import Path

from robust_edit.atomic import write_atomic
from robust_edit.pipeline.graph import Stage

MARKER = "stage.json"


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
        write_atomic(folder / MARKER, json.dumps(record, indent=1, default=str))
        ledger = self.root / "ledger"
        ledger.mkdir(parents=True, exist_ok=True)
        write_atomic(ledger / f"{time.time_ns()}-{stage.kind}-{stage.key}.json",
                     json.dumps({k: record[k] for k in ("kind", "key", "started", "seconds", "host")}))

    def ledger(self) -> list[dict]:
        folder = self.root / "ledger"
        return [json.loads(p.read_text()) for p in sorted(folder.glob("*.json"))] if folder.exists() else []
