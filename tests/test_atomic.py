import ast
from pathlib import Path

import pytest

from robust_edit.atomic import write_atomic

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


def test_written_files_keep_the_default_permissions(tmp_path):
    write_atomic(tmp_path / "a", "x")
    (tmp_path / "b").write_text("x")
    assert (tmp_path / "a").stat().st_mode == (tmp_path / "b").stat().st_mode


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
    assert callers == ["atomic.py"], callers
