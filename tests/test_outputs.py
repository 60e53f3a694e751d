"""No command deletes or overwrites what it did not create: an existing non-empty --out is
refused (exit 2, one line, before any compute) unless it holds the command's own previous
output, which only --force replaces; `world build` never writes the shipped world unless
asked by --out to it plus --force; generated image names are unique per CSV row."""

import csv
import json
from types import SimpleNamespace

import numpy as np
import pytest
import torch

from robust_edit.cli import build_parser, main
from robust_edit.edit.artifact import EditArtifact
from robust_edit.world.profile import ASSETS

EDIT = ["edit", "--method", "uce", "--task", "erase", "--dataset", "world:unsafe", "--concepts", "lime"]


def fail(*args, **kwargs):
    raise AssertionError("computed before refusing")


def run(argv, capsys) -> tuple[int, str]:
    """main's exit code and its stderr (one line expected)."""
    try:
        main(argv)
        code = 0
    except SystemExit as exit_:
        code = exit_.code
    err = capsys.readouterr().err
    return code, err


def foreign(tmp_path):
    folder = tmp_path / "thesis"
    folder.mkdir()
    (folder / "chapter1.tex").write_text("years of work")
    return folder


def assert_refused(code, err, *needles):
    assert code == 2 and err.count("\n") == 1 and "Traceback" not in err, err
    for needle in needles:
        assert needle in err, err


def test_edit_refuses_a_foreign_folder_and_the_working_directory(tmp_path, monkeypatch, capsys):
    monkeypatch.setattr("robust_edit.edit.run", fail)
    folder = foreign(tmp_path)
    code, err = run(EDIT + ["--out", str(folder)], capsys)
    assert_refused(code, err, f"--out {folder}: exists and is not empty", "choose a new folder")
    monkeypatch.chdir(folder)
    for out in (".", str(tmp_path)):
        assert_refused(*run(EDIT + ["--out", out, "--force"], capsys), "working directory")
    assert sorted(p.name for p in folder.iterdir()) == ["chapter1.tex"]
    assert (folder / "chapter1.tex").read_text() == "years of work"


def test_edit_replaces_its_own_artifact_only_with_force(tmp_path, monkeypatch, capsys):
    out = tmp_path / "artifact"
    EditArtifact({"unet.w": torch.zeros(2)}, {"method": "uce", "seconds": 1}).save(out)
    (out / "evaluation.json").write_text("{}")  # of the old edit: must not survive it
    new = EditArtifact({"unet.w": torch.ones(2)}, {"method": "uce", "seconds": 2})
    monkeypatch.setattr("robust_edit.edit.run", lambda cfg, model: (new, None))
    assert_refused(*run(EDIT + ["--out", str(out)], capsys), "pass --force")
    assert json.loads((out / "edit.json").read_text())["seconds"] == 1
    assert run(EDIT + ["--out", str(out), "--force"], capsys)[0] == 0
    assert json.loads((out / "edit.json").read_text())["seconds"] == 2
    assert sorted(p.name for p in out.iterdir()) == ["edit.json", "edit.safetensors"]
    assert [p.name for p in tmp_path.iterdir()] == ["artifact"]  # no temporaries left


def prompts_csv(tmp_path, cases):
    path = tmp_path / "prompts.csv"
    with open(path, "w", newline="") as f:
        w = csv.writer(f)
        w.writerow(["case_number", "prompt", "evaluation_seed"])
        w.writerows([[c, f"prompt {i}", i] for i, c in enumerate(cases)])
    return path


@pytest.fixture()
def no_model(monkeypatch):
    """generate without a model: blank images, so a test runs in milliseconds."""
    monkeypatch.setattr("robust_edit.models.load_pipeline",
                        lambda ref: SimpleNamespace(scheduler=SimpleNamespace()))
    monkeypatch.setattr("robust_edit.generate.generate_images",
                        lambda pipe, prompts, seeds, settings, desc: np.zeros((len(prompts), 4, 4, 3), np.uint8))


def test_generate_refuses_a_foreign_folder_and_repeated_case_numbers(tmp_path, monkeypatch, capsys):
    monkeypatch.setattr("robust_edit.models.load_pipeline", fail)
    folder = foreign(tmp_path)
    args = ["generate", "--prompts", str(prompts_csv(tmp_path, [0, 1])), "--out"]
    assert_refused(*run(args + [str(folder)], capsys), f"--out {folder}: exists and is not empty")
    assert sorted(p.name for p in folder.iterdir()) == ["chapter1.tex"]
    # Two rows, one case_number: their images would share a file name.
    repeated = ["generate", "--prompts", str(prompts_csv(tmp_path, [3, 7, 7])), "--out", str(tmp_path / "o")]
    assert_refused(*run(repeated, capsys), "lines 3 and 4", "case_number 7", "00007_<j>.png")
    assert not (tmp_path / "o").exists()


def test_generate_replaces_its_own_output_only_with_force(tmp_path, no_model, capsys):
    out = tmp_path / "images"
    args = ["generate", "--prompts", str(prompts_csv(tmp_path, [3, 7])), "--out", str(out)]
    assert run(args, capsys)[0] == 0
    assert sorted(p.name for p in out.iterdir()) == ["00003_0.png", "00007_0.png", "manifest.json"]
    assert_refused(*run(args + ["--limit", "1"], capsys), "pass --force")
    assert run(args + ["--limit", "1", "--force"], capsys)[0] == 0
    # Replaced whole: no image of the earlier output is left beside the new manifest.
    assert sorted(p.name for p in out.iterdir()) == ["00003_0.png", "manifest.json"]
    # A folder with another command's manifest.json (a fine-tune run) is not generate's.
    (tmp_path / "run").mkdir()
    (tmp_path / "run" / "manifest.json").write_text(json.dumps({"base_model": {}}))
    code, err = run(["generate", "--prompts", str(tmp_path / "prompts.csv"), "--out",
                     str(tmp_path / "run"), "--force"], capsys)
    assert_refused(code, err, "is not this command's output")


def test_finetune_refuses_a_folder_without_its_manifest(tmp_path, monkeypatch, capsys):
    monkeypatch.setattr("robust_edit.models.load_pipeline", fail)
    folder = foreign(tmp_path)
    code, err = run(["finetune", "--method", "lora", "--dataset", "world:style", "--out", str(folder)], capsys)
    assert_refused(code, err, f"--out {folder}: exists and is not empty", "no manifest.json")
    assert sorted(p.name for p in folder.iterdir()) == ["chapter1.tex"]


def test_world_build_never_writes_the_shipped_world_by_default(tmp_path, monkeypatch, capsys):
    assert build_parser().parse_args(["world", "build"]).out == "outputs/world"
    monkeypatch.setattr("robust_edit.world.build.build", fail)
    before = {p: p.stat().st_mtime_ns for p in ASSETS.rglob("*")}
    assert_refused(*run(["world", "build", "--quick", "--out", str(ASSETS)], capsys),
                   f"--out {ASSETS}: holds a previous output (build.json); pass --force")
    assert {p: p.stat().st_mtime_ns for p in ASSETS.rglob("*")} == before
    folder = foreign(tmp_path)
    assert_refused(*run(["world", "build", "--quick", "--out", str(folder), "--force"], capsys),
                   "exists and is not empty", "no build.json")
    # A previous build elsewhere is rebuilt with --force.
    built = []
    monkeypatch.setattr("robust_edit.world.build.build",
                        lambda out, cfg, only: built.append(out) or {"minutes": {"total": 0}})
    monkeypatch.setattr("robust_edit.world.datasets.write_all", lambda folder: {})
    (tmp_path / "world").mkdir()
    (tmp_path / "world" / "build.json").write_text("{}")
    assert run(["world", "build", "--quick", "--out", str(tmp_path / "world"), "--force"], capsys)[0] == 0
    assert built == [tmp_path / "world"]
