"""Shared fixtures: a quick world built once per session (a few training steps), so tests
exercise the real build, save and load paths without the shipped weights' cost."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
import torch

torch.set_num_threads(int(os.environ.get("ROBUST_EDIT_TEST_THREADS", "2")))


@pytest.fixture(scope="session")
def quick_world(tmp_path_factory) -> Path:
    from robust_edit.world import build

    out = tmp_path_factory.mktemp("quick-world")
    build.build(out, build.quick_config())
    return out


@pytest.fixture()
def db():
    """An empty in-memory results database with the analysis views."""
    from robust_edit import analysis

    con = analysis.connect()
    yield con
    con.close()
