import ast
import json
import os
from pathlib import Path

import pytest

from robust_edit.atomic import claim_output, write_atomic

PACKAGE = Path(__file__).resolve().parent.parent / "robust_edit"


def test_file_is_replaced_whole_and_leaves_no_temporary(tmp_path):
    target = tmp_path / "sub" / "scores.json"
    write_atomic(target, "old")
    write_atomic(target, b"new")
    assert target.read_text() == "new"
    assert sorted(p.name for p in target.parent.iterdir()) == ["scores.json"]


def test_a_failed_write_keeps_the_old_content(tmp_path):
    target = tmp_path / "artifact"
    write_atomic(target, lambda tmp: (tmp / "weights").write_text("v1"), folder=True)

    def crash(tmp: Path) -> None:
        (tmp / "weights").write_text("half")
        raise RuntimeError("killed mid-write")

    with pytest.raises(RuntimeError):
        write_atomic(target, crash, folder=True)
    assert (target / "weights").read_text() == "v1"
    assert [p.name for p in tmp_path.iterdir()] == ["artifact"]


def test_a_failed_file_write_keeps_the_old_content(tmp_path):
    target = tmp_path / "scores.json"
    write_atomic(target, "old")

    def crash(tmp: Path) -> None:
        tmp.write_text("half")
        raise RuntimeError("killed mid-write")

    with pytest.raises(RuntimeError):
        write_atomic(target, crash)
    assert target.read_text() == "old"
    assert [p.name for p in tmp_path.iterdir()] == ["scores.json"]


def test_a_folder_is_replaced_only_once_the_new_one_is_in_place(tmp_path, monkeypatch):
    """The old folder is renamed aside, the new one into place, then the old one removed:
    a failure of the second rename puts the old folder back."""
    target = tmp_path / "artifact"
    write_atomic(target, lambda tmp: (tmp / "weights").write_text("v1"), folder=True)
    renames, real_replace = [], os.replace

    def second_fails(src, dst):
        renames.append((Path(src).name, Path(dst).name))
        if len(renames) == 2:
            assert not target.exists()  # the old one is aside, under a hidden name
            raise OSError("disk gone")
        real_replace(src, dst)

    monkeypatch.setattr(os, "replace", second_fails)
    with pytest.raises(OSError, match="disk gone"):
        write_atomic(target, lambda tmp: (tmp / "weights").write_text("v2"), folder=True)
    assert renames[0][0] == "artifact" and renames[1][1] == "artifact"
    assert renames[2] == (renames[0][1], "artifact")  # put back
    assert (target / "weights").read_text() == "v1"
    assert [p.name for p in tmp_path.iterdir()] == ["artifact"]
    monkeypatch.undo()
    write_atomic(target, lambda tmp: (tmp / "weights").write_text("v2"), folder=True)
    assert (target / "weights").read_text() == "v2"
    assert [p.name for p in tmp_path.iterdir()] == ["artifact"]


def test_data_is_fsynced_before_the_rename_and_the_rename_after(tmp_path, monkeypatch):
    events, real_fsync, real_replace = [], os.fsync, os.replace
    monkeypatch.setattr(os, "fsync", lambda fd: (events.append(("fsync", os.readlink(f"/proc/self/fd/{fd}"))),
                                                 real_fsync(fd)))
    monkeypatch.setattr(os, "replace", lambda src, dst: (events.append(("replace", str(src), str(dst))),
                                                         real_replace(src, dst)))
    write_atomic(tmp_path / "f.json", "x")
    tmp = events[1][1]
    assert events == [("fsync", tmp), ("replace", tmp, str(tmp_path / "f.json")), ("fsync", str(tmp_path))]
    events.clear()
    write_atomic(tmp_path / "d", lambda t: ((t / "sub").mkdir(), (t / "sub" / "w").write_text("x")), folder=True)
    tmp = events[-2][1]
    assert sorted(e[1] for e in events[:-2]) == sorted([tmp, f"{tmp}/sub", f"{tmp}/sub/w"])
    assert events[-2:] == [("replace", tmp, str(tmp_path / "d")), ("fsync", str(tmp_path))]


def test_written_files_and_folders_keep_the_default_permissions(tmp_path):
    write_atomic(tmp_path / "a", "x")
    (tmp_path / "b").write_text("x")
    assert (tmp_path / "a").stat().st_mode == (tmp_path / "b").stat().st_mode
    write_atomic(tmp_path / "c", lambda tmp: None, folder=True)
    (tmp_path / "d").mkdir()
    assert (tmp_path / "c").stat().st_mode == (tmp_path / "d").stat().st_mode


def test_claim_output_refuses_what_the_command_did_not_create(tmp_path, monkeypatch):
    assert claim_output(tmp_path / "new", "edit.json", force=False) is False
    (tmp_path / "empty").mkdir()
    assert claim_output(tmp_path / "empty", "edit.json", force=False) is False
    (tmp_path / "mine").mkdir()
    (tmp_path / "mine" / "notes.txt").write_text("keep me")
    with pytest.raises(ValueError, match=r"^--out .*mine: exists and is not empty.*no edit.json.*choose a new folder$"):
        claim_output(tmp_path / "mine", "edit.json", force=True)
    (tmp_path / "file").write_text("x")
    with pytest.raises(ValueError, match="not a folder"):
        claim_output(tmp_path / "file", "edit.json", force=True)
    (tmp_path / "ours").mkdir()
    (tmp_path / "ours" / "edit.json").write_text(json.dumps({"method": "uce"}))
    with pytest.raises(ValueError, match="pass --force"):
        claim_output(tmp_path / "ours", "edit.json", force=False)
    assert claim_output(tmp_path / "ours", "edit.json", force=True) is True
    # A manifest of the same name written by another command is not ours.
    with pytest.raises(ValueError, match="not empty"):
        claim_output(tmp_path / "ours", "edit.json", force=True, key="prompts_csv")
    (tmp_path / "ours" / "edit.json").write_text("{trunc")
    with pytest.raises(ValueError, match="not empty"):
        claim_output(tmp_path / "ours", "edit.json", force=True)
    # The working directory, or a folder above it, is never an output.
    monkeypatch.chdir(tmp_path / "empty")
    for out in (".", "..", str(tmp_path)):
        with pytest.raises(ValueError, match="working directory"):
            claim_output(Path(out), "edit.json", force=True)
    assert (tmp_path / "mine" / "notes.txt").read_text() == "keep me"


def test_write_atomic_is_the_only_function_that_renames_into_place():
    """Every atomic write goes through one helper: no other os.replace / Path.replace /
    os.rename / Path.rename call in the package."""
    callers = []
    for path in PACKAGE.rglob("*.py"):
        for node in ast.walk(ast.parse(path.read_text())):
            if (isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute)
                    and node.func.attr in ("replace", "rename")
                    and not (isinstance(node.func.value, ast.Constant)
                             or (node.args and isinstance(node.args[0], ast.Constant)))):
                callers.append(str(path.relative_to(PACKAGE)))
    assert set(callers) == {"atomic.py"}, callers


def test_what_a_killed_writer_left_is_cleared_by_the_next_write(tmp_path):
    import socket
    import subprocess
    import sys

    dead = subprocess.Popen([sys.executable, "-c", "pass"])
    dead.wait()
    host = socket.gethostname()
    target = tmp_path / "artifact"
    left = tmp_path / f".artifact.{host}.{dead.pid}.0000.tmp"  # a half-written folder
    left.mkdir()
    (left / "edit.safetensors").write_bytes(b"half")
    moved = tmp_path / f".artifact.{host}.{dead.pid}.1111.old"  # killed between the renames
    moved.mkdir()
    (moved / "edit.json").write_text("previous")
    live = tmp_path / f".artifact.{host}.{os.getpid()}.2222.tmp"  # a writer still at work
    live.write_text("in progress")
    write_atomic(tmp_path / "other", "x")  # another path's write leaves them alone
    assert left.exists() and moved.exists()
    write_atomic(target, lambda t: (t / "edit.json").write_text("new"), folder=True)
    assert not left.exists() and not moved.exists() and live.exists()
    assert (target / "edit.json").read_text() == "new"  # the previous one was put back first
