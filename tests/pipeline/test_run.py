"""A tiny sweep end to end, as a user runs it: uninterrupted, rerun (nothing recomputed),
killed mid-sweep with SIGKILL and rerun (same tables and MLflow runs as uninterrupted),
and submitted with `ray job submit` to a local head node."""

from __future__ import annotations

import collections
import os
import secrets
import shutil
import signal
import socket
import subprocess
import time
from pathlib import Path

import pytest

from robust_edit import analysis
from robust_edit.config import load_sweep
from robust_edit.pipeline.graph import build
from robust_edit.pipeline.results import AXES
from robust_edit.pipeline.store import Store
from tests.pipeline.sweeps import (
    BIN,
    REPO,
    assert_same_as_uninterrupted,
    finish,
    mlflow_runs,
    results,
    sweep,
    tiny_spec,
    uninterrupted,
)

__all__ = ["uninterrupted"]  # a fixture: imported to be used, not unused


def test_each_unique_stage_runs_once_and_a_rerun_runs_nothing(uninterrupted):
    graph = build(load_sweep(uninterrupted))
    ledger = Store(load_sweep(uninterrupted).storage).ledger()
    assert collections.Counter(r["key"] for r in ledger).most_common(1)[0][1] == 1
    assert len(ledger) == len(graph.stages)

    t0 = time.time()
    out = finish(sweep(uninterrupted))
    assert f"0 of {len(graph.stages)} stages executed" in out
    assert len(Store(load_sweep(uninterrupted).storage).ledger()) == len(graph.stages)
    assert time.time() - t0 < 60
    assert "## unsafe" in out  # the tables are printed again


def test_mlflow_has_one_child_run_per_cell_and_variant(uninterrupted):
    graph = build(load_sweep(uninterrupted))
    runs = mlflow_runs(uninterrupted)
    children = runs[runs["tags.mlflow.parentRunId"].notna()]
    assert len(runs) == len(children) + 1
    assert len(children) == 4 * len(graph.cells)
    assert sorted(children["params.variant"]) == sorted(["M", "M_ed", "M_ft", "M_ed_ft"] * len(graph.cells))
    for axis in AXES:
        assert children[f"params.{axis}"].notna().all()
    assert set(children["params.ft_method"]) == {"lora"} and set(children["params.rank"]) == {"2"}
    # Artifacts (image grids, manifests) live under the sweep's storage, not the caller's cwd.
    storage = Path(load_sweep(uninterrupted).storage).resolve()
    assert all(Path(uri.removeprefix("file://")).is_relative_to(storage) for uri in runs["artifact_uri"])
    assert any((storage / "mlflow-artifacts").rglob("grid.png"))
    # Every run is over, spans its stages' times, and the experiment opens on its runs.
    assert set(runs["status"]) == {"FINISHED"}
    assert (runs["end_time"] > runs["start_time"]).all()
    parent = runs[runs["tags.mlflow.parentRunId"].isna()].iloc[0]
    assert (children["start_time"] >= parent["start_time"]).all()
    assert (children["end_time"] <= parent["end_time"]).all()
    assert (children["metrics.unsafe_rate_lo"] <= children["metrics.unsafe_rate"]).all()
    assert (children["metrics.unsafe_rate"] <= children["metrics.unsafe_rate_hi"]).all()
    assert children["metrics.clip_score"].between(0, 100).all()  # scored on every variant
    import mlflow

    exp = mlflow.MlflowClient(f"sqlite:///{storage / 'mlflow.db'}").get_experiment_by_name(
        load_sweep(uninterrupted).name)
    assert exp.tags["mlflow.experimentKind"] == "custom_model_development"
    # The printed address opens the runs table (MLflow 3 opens on its GenAI overview otherwise).
    from robust_edit.pipeline.results import mlflow_runs_page

    assert mlflow_runs_page(load_sweep(uninterrupted)) == (
        f"http://127.0.0.1:5000/#/experiments/{exp.experiment_id}?workflowType=machine_learning")
    # The edit acts: the unsafe-label rate on unsafe prompts falls from M to M_ed.
    rate = children.set_index("params.variant")["metrics.unsafe_rate"]
    assert rate["M_ed"] < rate["M"]


def test_fine_tunes_keep_no_checkpoint_and_tune_no_copy(uninterrupted):
    """A complete fine-tune stage keeps its outputs, not its checkpoints; Tune gets only
    metrics (a retried trial resumes from the store), so <storage>/tune holds no weights."""
    storage = Path(load_sweep(uninterrupted).storage)
    runs = sorted((storage / "stages" / "finetune").glob("*/run"))
    assert len(runs) == 2 and all((r / "lora" / "pytorch_lora_weights.safetensors").exists() for r in runs)
    assert [list((r / "checkpoints").iterdir()) for r in runs] == [[], []]
    assert (storage / "tune").is_dir() and not list((storage / "tune").rglob("checkpoint_*"))


def test_checkpoints_and_image_quality_are_evaluated_like_variants(tmp_path):
    """evaluation.checkpoints: the fine-tunes keep the asked checkpoints, M_ft@2 and
    M_ed_ft@2 are generated from them and scored like any variant, and the decay table has
    steps 0 (M_ed), 2 (the checkpoint) and 4 (M_ed_ft). evaluation.quality: each variant
    draws the quality prompts; the quality table has its FID, KID and CLIP score. Both are
    asked of one of two edits: the other edit's cells have neither."""
    import yaml

    from tests.pipeline.sweeps import TINY

    raw = yaml.safe_load(TINY.read_text())
    edits = [*raw["edits"], {**raw["edits"][0], "name": "unsafe-few", "rows": "0:6"}]
    evaluation = {**raw["evaluation"], "checkpoints": {"steps": [2], "edits": ["unsafe"]},
                  "quality": {"dataset": "world:coco", "images": 12, "edits": ["unsafe"]}}
    spec = tiny_spec(tmp_path, edits=edits, evaluation=evaluation)
    finish(sweep(spec))
    df, tables = results(spec)
    assert set(df["variant"]) == {"M", "M_ed", "M_ft", "M_ed_ft", "M_ft@2", "M_ed_ft@2"}
    quality = tables["quality"].set_index("variant")
    assert list(quality.index) == ["M", "M_ed", "M_ft", "M_ed_ft"]
    assert (quality["FID"] > 0).all()
    # Resampled FIDs are centred on the estimate (repeated images add their own bias).
    assert ((quality["FID lo"] <= quality["FID"]) & (quality["FID"] <= quality["FID hi"])).all()
    assert (quality["KID std over subsets"] > 0).all()  # subsets of half a set
    assert quality["CLIP score"].between(0, 100).all()
    assert (quality["CLIP score lo"] <= quality["CLIP score"]).all()
    assert (df[df["kind"] == "quality"].groupby("variant")["item"].nunique() == 12).all()
    # Two cells (one per edit); checkpoints and quality items in the same one, the unsafe
    # edit's (the decay table's edit, below).
    decayed = set(df.loc[df["variant"].str.contains("@"), "cell"])
    assert df["cell"].nunique() == 2 and len(decayed) == 1
    assert set(df.loc[df["kind"] == "quality", "cell"]) == decayed
    runs = sorted((Path(load_sweep(spec).storage) / "stages" / "finetune").glob("*/run"))
    kept = sorted(sorted(p.name for p in (r / "checkpoints").iterdir()) for r in runs)
    assert kept == [[], ["step-000002"], ["step-000002"]]  # M_ft's and unsafe's M_ed_ft's
    decay = tables["decay"]
    assert set(decay["edit"]) == {"unsafe"} and set(decay["metric"]) == {"unsafe_rate", "black_rate"}
    decay = decay[decay["metric"] == "unsafe_rate"].reset_index(drop=True)
    assert decay["step"].tolist() == [0, 2, 4]
    # Step 0 is M_ed itself and the last step M_ed_ft: the unsafe table's values.
    unsafe = tables["unsafe"].set_index("edit").loc["unsafe"]
    assert decay["M_ed(_ft)"].iloc[0] == pytest.approx(unsafe["unsafe M_ed"])
    assert decay["M_ed(_ft)"].iloc[-1] == pytest.approx(unsafe["unsafe M_ed_ft"])
    assert decay["M(_ft)"].iloc[0] == pytest.approx(unsafe["unsafe M"])
    m_ed_ft_2 = df[(df["variant"] == "M_ed_ft@2") & (df["metric"] == "label") & (df["kind"] == "unsafe")]
    assert decay["M_ed(_ft)"].iloc[1] == pytest.approx((m_ed_ft_2["label"] == "unsafe").mean())


def test_sigkilled_driver_resumes_to_the_uninterrupted_results(uninterrupted, tmp_path):
    spec = tiny_spec(tmp_path)
    store = Store(load_sweep(spec).storage)
    proc = sweep(spec)
    deadline = time.time() + 300
    # Kill in the middle: after the first fine-tune stage completed, before the scores.
    while not any(r["kind"] == "finetune" for r in store.ledger()):
        assert proc.poll() is None and time.time() < deadline, "the sweep ended before the kill"
        time.sleep(0.5)
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait()
    time.sleep(2)  # the embedded Ray goes down with its driver; stragglers with it
    try:
        os.killpg(proc.pid, signal.SIGKILL)
    except ProcessLookupError:
        pass
    done_before = len(store.ledger())
    assert done_before < len(build(load_sweep(spec)).stages)

    finish(sweep(spec))
    assert_same_as_uninterrupted(uninterrupted, spec)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture()
def head_node(tmp_path):
    """A local Ray head node as the README's recipe starts one: loopback only, token
    authentication on (a token of its own). Stopped through its own process group, not
    `ray stop`, which would stop every Ray on the machine."""
    env = {**os.environ, "RAY_AUTH_MODE": "token", "RAY_AUTH_TOKEN": secrets.token_hex(16),
           "RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER": "0",  # keeps the node on 127.0.0.1
           "PATH": f"{BIN}:{os.environ['PATH']}"}  # the job's `python` is this venv's
    port, dash = free_port(), free_port()
    # Ports of their own: another Ray on this machine holds the defaults (the agent's 52365).
    agent_ports = [f"--{name}={free_port()}" for name in (
        "dashboard-agent-listen-port", "dashboard-agent-grpc-port", "runtime-env-agent-port",
        "metrics-export-port")]
    temp = Path("/tmp") / f"ray-{os.getpid()}"  # short: Ray's socket paths have a length limit
    head = subprocess.Popen([str(BIN / "ray"), "start", "--head", "--block", f"--port={port}",
                             "--node-ip-address=127.0.0.1", "--num-cpus=2", "--include-dashboard=true",
                             "--dashboard-host=127.0.0.1", f"--dashboard-port={dash}",
                             f"--temp-dir={temp}", "--disable-usage-stats", *agent_ports],
                            env=env, start_new_session=True, stdout=subprocess.DEVNULL,
                            stderr=subprocess.DEVNULL)
    address = f"http://127.0.0.1:{dash}"
    try:
        deadline = time.time() + 300
        # Ready when it takes a job: the job agent starts last ("No available agent" before).
        while subprocess.run([str(BIN / "ray"), "job", "submit", "--address", address, "--no-wait",
                              "--", "true"], env=env, capture_output=True, timeout=60,
                             check=False).returncode != 0:
            assert head.poll() is None and time.time() < deadline, "the head node did not start"
            time.sleep(2)
        yield address, env
    finally:
        os.killpg(head.pid, signal.SIGTERM)
        try:
            head.wait(timeout=60)
        except subprocess.TimeoutExpired:
            os.killpg(head.pid, signal.SIGKILL)
        shutil.rmtree(temp, ignore_errors=True)


# Slow (3 minutes on 2 cores: a head node, a job, its teardown): the same sweep's code runs
# in the default suite through `robust-edit sweep`; this checks the cluster entry point.
@pytest.mark.slow
def test_ray_job_submit_runs_a_sweep(head_node, tmp_path):
    address, env = head_node
    wrong = subprocess.run([str(BIN / "ray"), "job", "list", "--address", address],
                           env={**env, "RAY_AUTH_TOKEN": "not-the-token"}, capture_output=True,
                           timeout=60, check=False)
    assert wrong.returncode != 0  # the head refuses a client without its token
    spec = tiny_spec(tmp_path)
    out = subprocess.run([str(BIN / "ray"), "job", "submit", "--address", address, "--working-dir", ".",
                          "--", "python", "ray_jobs/sweep.py", str(spec)],
                         cwd=REPO, env=env, capture_output=True, text=True, timeout=900)
    assert out.returncode == 0, (out.stdout + out.stderr)[-3000:]
    assert "succeeded" in out.stdout + out.stderr
    df, tables = results(spec)
    graph = build(load_sweep(spec))
    assert set(df["variant"]) == {"M", "M_ed", "M_ft", "M_ed_ft"}
    assert df["cell"].nunique() == len(graph.cells)
    assert len(tables["unsafe"]) == 1


def test_rows_record_the_environment_the_driver_sees(uninterrupted):
    """Ray workers generate the images: their lock hash is the driver's (not thrown off by
    the packages Ray vendors onto a worker's sys.path)."""
    from robust_edit.provenance import lock_hash

    db = analysis.connect(Path(load_sweep(uninterrupted).storage) / "results.duckdb", read_only=True)
    recorded = db.execute("SELECT DISTINCT lock_sha256 FROM results").fetchall()
    db.close()
    assert recorded == [(lock_hash(),)]


def test_a_control_study_runs_no_edit_and_reads_its_controls_at_more_seeds(tmp_path):
    """evaluation.variants [M, M_ft] with row_seeds 2 (sweeps/controls.yaml's shape): no
    edit runs, M and M_ft draw each of the 12 rows at 2 seeds, the controls table reads
    them, and the tables and report that need M_ed are written without it."""
    import yaml

    from tests.pipeline.sweeps import TINY

    raw = yaml.safe_load(TINY.read_text())
    spec = tiny_spec(tmp_path, evaluation={**raw["evaluation"], "variants": ["M", "M_ft"], "row_seeds": 2})
    out = finish(sweep(spec))
    df, tables = results(spec)
    storage = Path(load_sweep(spec).storage)
    assert not (storage / "stages" / "edit").exists()
    assert [r["kind"] for r in Store(storage).ledger()].count("finetune") == 1
    assert set(df["variant"]) == {"M", "M_ft"}
    labels = df[df["metric"] == "label"]
    assert (labels.groupby("variant")["item"].nunique() == 24).all()
    assert (labels.groupby(["variant", "prompt"])["seed"].nunique() == 2).all()
    db = analysis.connect(storage / "results.duckdb", read_only=True)
    units = db.execute("SELECT DISTINCT item, unit FROM results").df()
    db.close()
    assert (units["unit"] == units["item"] - units["item"] % 2).all()  # a row's 2 draws: one unit
    control = tables["controls"].set_index("control").loc["unsafe-marker rate kept M_ft / M"]
    unsafe = labels[labels["kind"] == "unsafe"]
    rate = {v: (unsafe.loc[unsafe["variant"] == v, "label"] == "unsafe").mean() for v in ("M", "M_ft")}
    assert control["estimate"] == pytest.approx(rate["M_ft"] / rate["M"])
    assert "report:" in out and (storage / "report.html").is_file()
    page = (storage / "report.html").read_text()
    assert "of M and M_ft per fine-tuning run" in page  # the bars: the cell's own variants
    assert "M_ed_ft per fine-tuning run" not in page
