"""Bad input, the way careless and hostile users give it: every case exits with code 2
within seconds, prints one line naming the field or file (no traceback), and leaves every
file it did not create as it was (a sentinel folder and `git status`, before and after).

Categories: spec (sweep YAML and fields), cli (arguments), csv (prompt and metadata
files), artifact (edit artifacts given to `finetune --edit`), sql (`robust-edit sql`)."""

from __future__ import annotations

import copy
import json
import os
import subprocess
import time
from pathlib import Path

import pytest
import yaml

from robust_edit.cli import main

ROOT = Path(__file__).resolve().parent.parent
TINY = yaml.safe_load((ROOT / "tests" / "pipeline" / "tiny.yaml").read_text())
WORLD_ASSETS = ROOT / "robust_edit" / "world" / "assets"


# --- spec: `sweep plan` (and `sweep run` where only the run can know) -----------------------

def _spec(**changes):
    """tiny.yaml with changes: {'a.0.b': value} sets a nested field; value DROP removes it."""
    def make(spec):
        for path, value in changes.items():
            node, *keys = spec, *path.split(".")
            for k in keys[:-1]:
                node = node[int(k) if k.isdigit() else k]
            last = int(keys[-1]) if keys[-1].isdigit() else keys[-1]
            if value is DROP:
                del node[last]
            else:
                node[last] = value
        return spec
    return make


DROP = object()
SPEC = {  # id: (tiny.yaml change or raw YAML text, fragment of the one line)
    "yaml syntax": ("name: [tiny\n", "YAML"),
    "yaml tab indent": ("name: tiny\n\tmodels: []\n", "YAML"),
    "duplicate top-level key": (None, "key 'finetunes' is given twice"),
    "duplicate nested key": ("name: t\nevaluation: {seeds: 1, seeds: 2}\n", "key 'seeds' is given twice"),
    "not a mapping": ("- name: tiny\n", "expected a mapping"),
    "empty file": ("", "name: Field required"),
    "binary file": (b"\xff\xfe\x00name", "not a YAML file"),
    "unknown top-level key": (_spec(edit=[]), "edit: Extra inputs"),
    "unknown edit field": (_spec(**{"edits.0.lamda": 1}), "edits[unsafe].lamda"),
    "steps: true": (_spec(**{"finetunes.0.steps": True}), "steps: True is a boolean"),
    "seeds: false": (_spec(**{"evaluation.seeds": False}), "seeds: False is a boolean"),
    "lr: .inf": (_spec(**{"finetunes.0.lr": float("inf")}), "finetunes[lora].lr"),
    "lr: .nan": (_spec(**{"finetunes.0.lr": float("nan")}), "finetunes[lora].lr"),
    "seed 1.9": (_spec(**{"finetunes.0.seed": 1.9}), "fractional part"),
    "storage empty": (_spec(storage=""), "storage"),
    "storage a URI": (_spec(storage="s3://bucket/x"), "storage 's3://bucket/x'"),
    "rank on full": (_spec(**{"finetunes.0.method": "full", "finetunes.0.ranks": DROP,
                              "finetunes.0.rank": 8}), "finetunes[lora].rank: method 'full'"),
    "alpha on dreambooth": (_spec(**{"finetunes.0.method": "dreambooth", "finetunes.0.ranks": DROP,
                                     "finetunes.0.dataset": "world:dreambooth:ring",
                                     "finetunes.0.alpha": 4}), "alpha: method 'dreambooth'"),
    "dreambooth field on lora": (_spec(**{"finetunes.0.class_prompt": "a dog"}),
                                 "class_prompt: method 'lora' does not read it"),
    "refact params on uce": (_spec(**{"edits.0.refact": {"layer": 3}}), "edits[unsafe].refact: method 'uce'"),
    "uce params on refact": (_spec(**{"edits.0": {"name": "a", "method": "refact", "task": "appearance",
                                                  "dataset": "world:road", "uce": {"lam": 1}}}),
                             "edits[a].uce: method 'refact'"),
    "rows beyond the data": (_spec(**{"edits.0.rows": "500:600"}), "edits[unsafe].rows '500:600'"),
    "rows empty range": (_spec(**{"edits.0.rows": "5:5"}), "non-empty range"),
    "rows not a range": (_spec(**{"edits.0.rows": "a:b"}), "start:stop"),
    "variants without M": (_spec(**{"evaluation.variants": ["M_ft"]}), "evaluation.variants ['M_ft']: give M"),
    "variants without a fine-tune": (_spec(**{"evaluation.variants": ["M", "M_ed"]}),
                                     "evaluation.variants ['M', 'M_ed']: give M"),
    "unknown variant": (_spec(**{"evaluation.variants": ["M", "M_FT"]}), "evaluation.variants[1]: Input should be 'M'"),
    "checkpoint variant not drawn": (_spec(**{"evaluation.variants": ["M", "M_ft"],
                                              "evaluation.checkpoints": {"variants": ["M_ed_ft"]}}),
                                     "evaluation.checkpoints.variants ['M_ed_ft']: not among"),
    "row_seeds 0": (_spec(**{"evaluation.row_seeds": 0}), "evaluation.row_seeds"),
    "unknown profile scorer": (_spec(**{"evaluation.scorer": "world:nope"}), "evaluation.scorer"),
    "unknown clip scorer": (_spec(**{"evaluation.scorer": "ViT-Q-99/nothing"}), "not in open_clip's registry"),
    "scorer not a reference": (_spec(**{"evaluation.scorer": "clip"}), "evaluation.scorer"),
    "unknown classifier": (_spec(**{"edits.0": {"name": "d", "method": "uce", "task": "debias",
                                                "dataset": "world:professions", "rows": "0:2",
                                                "uce": {"classifier": "NoSuch/net"}}}),
                           "edits[d].uce.classifier 'NoSuch/net'"),
    "unknown dataset": (_spec(**{"edits.0.dataset": "world:nope"}), "dataset 'world:nope'"),
    "dataset of another format": (_spec(**{"edits.0.dataset": "world:road"}), "edits[unsafe].dataset"),
    "unknown fine-tune folder": (_spec(**{"finetunes.0.dataset": "no/such/folder"}), "no such folder"),
    "bad mlflow uri": (_spec(tracking={"mlflow_uri": "mlflow.db"}), "mlflow_uri 'mlflow.db'"),
    "mlflow uri without host": (_spec(tracking={"mlflow_uri": "http://"}), "mlflow_uri"),
    "erase without concepts": (_spec(**{"edits.0.task": "erase"}),
                               "concepts: an erase edit needs"),
    "duplicate edit names": (_spec(edits=[TINY["edits"][0], TINY["edits"][0]]), "duplicate name"),
    "same fine-tune twice": (_spec(finetunes=[TINY["finetunes"][0], {**TINY["finetunes"][0], "name": "b"}]),
                             "finetunes[b]: the same runs as finetunes[lora]"),
    "unknown model": (_spec(models=["world:nope"]), "world:nope"),
    "model twice": (_spec(models=["world:sd", "world:sd"]), "listed twice"),
    "unknown method": (_spec(**{"edits.0.method": "memit"}), "edits[unsafe].method"),
    "task of another method": (_spec(**{"edits.0.task": "appearance"}), "not a uce task"),
    "sweep name with spaces": (_spec(name="my sweep"), "name"),
    "ranks repeated": (_spec(**{"finetunes.0.ranks": [2, 2]}), "values repeat"),
    "zero batch size": (_spec(**{"finetunes.0.batch_size": 0}), "finetunes[lora].batch_size"),
    "no models": (_spec(models=[]), "models"),
    "edit on a model the sweep lacks": (_spec(**{"edits.0.models": ["world:sdxl"]}),
                                        "edits[unsafe].models ['world:sdxl']: not among"),
    "a model left without fine-tunes": (_spec(**{"finetunes.0.models": ["/nowhere"]}),
                                        "finetunes[lora].models"),
}


def _write_spec(folder: Path, case: str) -> Path:
    change, _ = SPEC[case]
    path = folder / "spec.yaml"
    spec = copy.deepcopy(TINY) | {"storage": str(folder / "storage")}
    if case == "duplicate top-level key":
        path.write_text(yaml.safe_dump(spec) + yaml.safe_dump({"finetunes": spec["finetunes"]}))
    elif isinstance(change, bytes):
        path.write_bytes(change)
    elif isinstance(change, str):
        path.write_text(change)
    else:
        path.write_text(yaml.safe_dump(change(spec)))
    return path


# --- the check ---------------------------------------------------------------------------

def _tree(folder: Path) -> dict:
    return {str(p.relative_to(folder)): (p.stat().st_size, p.stat().st_mtime_ns)
            for p in sorted(folder.rglob("*"))}


def _git_status() -> str:
    return subprocess.run(["git", "status", "--porcelain", "--ignored=no"], cwd=ROOT,
                          capture_output=True, text=True, check=True).stdout


@pytest.fixture
def work(tmp_path, monkeypatch):
    """A working directory with a sentinel file; caches outside it."""
    cwd = tmp_path / "cwd"
    cwd.mkdir()
    (cwd / "sentinel.txt").write_text("mine")
    monkeypatch.setenv("ROBUST_EDIT_CACHE", str(tmp_path / "cache"))
    monkeypatch.chdir(cwd)
    return cwd


def refused(argv: list[str], fragment: str, cwd: Path, capsys, seconds: float = 30) -> str:
    before, status = _tree(cwd), _git_status()
    capsys.readouterr()
    t0 = time.time()
    with pytest.raises(SystemExit) as exit_:
        main(argv)
    elapsed = time.time() - t0
    err = capsys.readouterr().err
    lines = err.strip().splitlines()
    assert exit_.value.code == 2, err
    assert len(lines) == 1 and "Traceback" not in err, err
    assert fragment in lines[0], lines[0]
    assert elapsed < seconds, f"{elapsed:.1f} s"
    assert _tree(cwd) == before, "files changed"
    assert _git_status() == status, "the checkout changed"
    return lines[0]



# What only the machine that runs the sweep can know (a cluster's mount is not here to plan).
RUN_ONLY = {"unknown fine-tune folder"}


@pytest.mark.parametrize("case", SPEC, ids=list(SPEC))
def test_spec(case, work, capsys):
    path = _write_spec(work, case)
    verb = "run" if case in RUN_ONLY else "plan"
    refused(["sweep", verb, str(path)], SPEC[case][1], work, capsys)
    if case == "yaml syntax":  # the run reads the spec the same way
        refused(["sweep", "run", str(path)], SPEC[case][1], work, capsys)


def test_spec_path_is_a_folder_or_missing(work, capsys):
    refused(["sweep", "plan", str(work)], "is a folder", work, capsys)
    refused(["sweep", "run", str(work / "nope.yaml")], "no such file", work, capsys)


def test_gpus_asked_on_a_machine_without_them(work, capsys):
    import torch

    if torch.cuda.is_available():
        pytest.skip("this machine has a GPU")
    path = work / "spec.yaml"
    path.write_text(yaml.safe_dump(TINY | {"storage": str(work / "storage"),
                                           "resources": {**TINY["resources"], "gpus_per_trial": 1}}))
    refused(["sweep", "run", str(path)], "resources.gpus_per_trial 1: the Ray cluster has 0 GPU(s)",
            work, capsys)


# --- cli arguments -----------------------------------------------------------------------

def _prompts(folder: Path, text: str = "case_number,prompt,evaluation_seed\n0,a red circle,1\n") -> str:
    path = folder.parent / "prompts.csv"  # outside the watched folder: the input, not output
    path.write_text(text)
    return str(path)


CLI = {  # id: (argv given the work folder, fragment)
    "generate --limit -1": (lambda w: ["generate", "--prompts", _prompts(w), "--out", "o", "--limit", "-1"], "--limit"),
    "generate --guidance -3": (lambda w: ["generate", "--prompts", _prompts(w), "--out", "o", "--guidance", "-3"], "--guidance"),
    "generate --steps 0": (lambda w: ["generate", "--prompts", _prompts(w), "--out", "o", "--steps", "0"], "--steps"),
    "generate --images 0": (lambda w: ["generate", "--prompts", _prompts(w), "--out", "o", "--images", "0"], "--images"),
    "generate --batch-size x": (lambda w: ["generate", "--prompts", _prompts(w), "--out", "o", "--batch-size", "x"], "--batch-size"),
    "generate missing prompts": (lambda w: ["generate", "--prompts", "nope.csv", "--out", "o"], "nope.csv"),
    "generate unknown model": (lambda w: ["generate", "--model", "world:nope", "--prompts", _prompts(w), "--out", "o"], "world:nope"),
    "generate into a non-empty folder": (lambda w: ["generate", "--prompts", _prompts(w), "--out", "."], "--out"),
    "edit into a non-empty folder": (lambda w: ["edit", "--method", "uce", "--task", "erase", "--dataset", "world:unsafe",
                                                "--concepts", "lime", "--out", "."], "--out"),
    "edit task of another method": (lambda w: ["edit", "--method", "uce", "--task", "appearance",
                                               "--dataset", "world:road", "--out", "o"], "not a uce task"),
    "edit --param negative": (lambda w: ["edit", "--method", "uce", "--task", "unsafe", "--dataset", "world:unsafe",
                                         "--param", "uce.lam=-1", "--out", "o"], "uce.lam"),
    "edit --param no value": (lambda w: ["edit", "--method", "uce", "--task", "unsafe", "--dataset", "world:unsafe",
                                         "--param", "uce.lam", "--out", "o"], "--param"),
    "edit --param of another method": (lambda w: ["edit", "--method", "uce", "--task", "unsafe", "--dataset", "world:unsafe",
                                                  "--param", "refact.layer=3", "--out", "o"], "refact: method 'uce'"),
    "edit --config missing": (lambda w: ["edit", "--config", "nope.yaml", "--out", "o"], "nope.yaml"),
    "finetune --steps 0": (lambda w: ["finetune", "--method", "lora", "--dataset", "world:style", "--steps", "0",
                                      "--out", "o"], "steps"),
    "finetune --rank on full": (lambda w: ["finetune", "--method", "full", "--dataset", "world:style", "--rank", "8",
                                           "--out", "o"], "rank: method 'full'"),
    "finetune unknown dataset": (lambda w: ["finetune", "--method", "lora", "--dataset", "nowhere", "--out", "o"], "nowhere"),
    "finetune --lr nan": (lambda w: ["finetune", "--method", "lora", "--dataset", "world:style", "--lr", "nan",
                                     "--out", "o"], "lr"),
    "world build into the shipped world": (lambda w: ["world", "build", "--quick", "--out", str(WORLD_ASSETS)], "--force"),
    "world evaluate --images 0": (lambda w: ["world", "evaluate", "--images", "0"], "--images"),
    "world grid over a file": (lambda w: ["world", "grid", "--out", "sentinel.txt"], "--out sentinel.txt: exists"),
    "unknown sub-command": (lambda w: ["sweep", "plann", "x"], "invalid choice"),
    "missing required option": (lambda w: ["generate", "--out", "o"], "--prompts"),
}


@pytest.mark.parametrize("case", CLI, ids=list(CLI))
def test_cli(case, work, capsys):
    make, fragment = CLI[case]
    refused(make(work), fragment, work, capsys)


# --- csv files -----------------------------------------------------------------------------

CSV = [
    pytest.param("case_number,text,evaluation_seed\n0,a red circle,1\n", "missing column", id="no prompt column"),
    pytest.param("", "missing column", id="empty file"),
    pytest.param("case_number,prompt,evaluation_seed\n", "no rows", id="header only"),
    pytest.param("case_number,prompt,evaluation_seed\n3,a,1\n3,b,2\n", "case_number 3", id="repeated case_number"),
    pytest.param("case_number,prompt,evaluation_seed\n0,a,abc\n", "evaluation_seed", id="seed not a number"),
    pytest.param("case_number,prompt,evaluation_seed\n0,a,1.5\n", "evaluation_seed", id="seed with a fraction"),
    pytest.param("case_number,prompt,evaluation_seed\n0,a\n", "line 2 has fewer cells", id="missing cell"),
    pytest.param("case_number,prompt,evaluation_seed\nx,a,1\n", "case_number", id="case_number not a number"),
    pytest.param(b"case_number,prompt,evaluation_seed\n0,\xff\xfe,1\n", "UTF-8", id="not utf-8"),
]


@pytest.mark.parametrize(("text", "fragment"), CSV)
def test_prompt_csv(text, fragment, work, capsys):
    path = work.parent / "prompts.csv"
    path.write_bytes(text if isinstance(text, bytes) else text.encode())
    refused(["generate", "--prompts", str(path), "--out", "o"], fragment, work, capsys)


METADATA = {
    "no metadata file": (None, "metadata.csv"),
    "no text column": ("file_name,label\na.png,x\n", "text"),
    "image file missing": ("file_name,text\nmissing.png,a red circle\n", "missing.png"),
}


@pytest.mark.parametrize("case", METADATA, ids=list(METADATA))
def test_finetune_folder_metadata(case, work, capsys):
    text, fragment = METADATA[case]
    folder = work.parent / "images"
    folder.mkdir()
    if text is not None:
        (folder / "metadata.csv").write_text(text)
    refused(["finetune", "--method", "lora", "--dataset", str(folder), "--steps", "1", "--out", "o"],
            fragment, work, capsys)


def test_a_modified_copy_of_a_pinned_dataset(work, capsys, monkeypatch):
    shared = work.parent / "shared"
    (shared / "road").mkdir(parents=True)
    (shared / "road" / "RoAD_validation.csv").write_text("Type,Prompt\nRole,x\n")
    monkeypatch.setenv("ROBUST_EDIT_DATA", str(shared))
    spec = work / "spec.yaml"
    spec.write_text(yaml.safe_dump(TINY | {"storage": str(work / "storage"), "edits": [
        {"name": "a", "method": "refact", "task": "appearance", "dataset": "road:validation", "rows": "0:2"}]}))
    refused(["sweep", "plan", str(spec)], "sha256", work, capsys)


# --- edit artifacts: `finetune --edit` -------------------------------------------------------

@pytest.fixture(scope="module")
def world_sd():
    """The shipped world model's hash and one of its text encoder's parameters."""
    from robust_edit.edit.artifact import base_hash
    from robust_edit.models import load_pipeline

    pipe = load_pipeline("world:sd", device="cpu")
    name, param = next(iter(pipe.text_encoder.named_parameters()))
    return base_hash(pipe), f"text_encoder.{name}", param.detach().clone()


def _artifact(folder: Path, world_sd, case: str) -> Path:
    import torch
    from safetensors.torch import save_file

    world_hash, name, value = world_sd
    folder.mkdir()
    if case == "missing folder":
        folder.rmdir()
        return folder
    tensors = {"wrong shape": {name: torch.zeros(3, 3)},
               "unknown tensor": {"text_encoder.nope.weight": torch.zeros(3)}}.get(case, {name: value})
    manifest = {"method": "uce", "task": "erase", "base_model": {"ref": "world:sd", "hash": world_hash}}
    if case == "another base model":
        manifest["base_model"]["hash"] = "0" * 24
    if case != "no weights file":
        save_file(tensors, str(folder / "edit.safetensors"))
    if case == "truncated weights":
        data = (folder / "edit.safetensors").read_bytes()
        (folder / "edit.safetensors").write_bytes(data[: len(data) // 2])
    if case == "manifest not json":
        (folder / "edit.json").write_text("{not json")
    elif case == "manifest without base model":
        (folder / "edit.json").write_text(json.dumps({"method": "uce"}))
    else:
        (folder / "edit.json").write_text(json.dumps(manifest))
    return folder


ARTIFACT = {
    "missing folder": "not an edit artifact",
    "no weights file": "not an edit artifact",
    "truncated weights": "edit.safetensors",
    "manifest not json": "edit.json",
    "manifest without base model": "edit.json",
    "wrong shape": "shape",
    "unknown tensor": "text_encoder.nope.weight",
    "another base model": "was made for base model",
}


@pytest.mark.parametrize("case", ARTIFACT, ids=list(ARTIFACT))
def test_edit_artifact(case, work, capsys, world_sd):
    folder = _artifact(work.parent / "artifact", world_sd, case)
    refused(["finetune", "--method", "lora", "--dataset", "world:style", "--steps", "1",
             "--edit", str(folder), "--out", "o"], ARTIFACT[case], work, capsys)


# --- sql -----------------------------------------------------------------------------------

@pytest.fixture
def results_db(work) -> str:
    from robust_edit import analysis

    path = work.parent / "results.duckdb"
    analysis.connect(path).close()
    return str(path)


SQL = (  # each refused with one `sql:` line: a read-only database without file access
    "COPY (SELECT 1) TO '{w}/out.csv'",
    "SELECT * FROM read_csv('/etc/hostname')",
    "SELECT * FROM read_text('{w}/sentinel.txt')",
    "ATTACH '{w}/other.duckdb' AS o",
    "INSTALL httpfs",
    "DELETE FROM results",
    "CREATE TABLE t AS SELECT 1",
    "SET enable_external_access = true",
    "SELEC 1",
    "SELECT * FROM nope",
    "-- nothing",
)


@pytest.mark.parametrize("query", SQL)
def test_sql(query, work, capsys, results_db):
    before = os.stat(results_db).st_mtime_ns
    refused(["sql", "--db", results_db, query.format(w=work)], "sql:", work, capsys)
    assert os.stat(results_db).st_mtime_ns == before


def test_sql_without_a_database(work, capsys):
    refused(["sql", "--db", "nope.duckdb", "SELECT 1"], "nope.duckdb", work, capsys)
