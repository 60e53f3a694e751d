"""The aggregate stage, on the driver only: the sweep's DuckDB database (long `results`
table + views, analysis/) and its MLflow runs (one parent per sweep, one child per cell
and variant), then the study's tables as CSV and Markdown.

DuckDB is rebuilt into a temporary file and renamed over the old one, so a reader sees a
whole database or the previous one. MLflow runs are found again by their content-key tag,
so a resumed or rerun sweep updates runs instead of duplicating them."""

from __future__ import annotations

import json
import time
from pathlib import Path

from robust_edit import analysis, labels
from robust_edit.atomic import write_atomic
from robust_edit.config import SweepSpec
from robust_edit.pipeline import quality
from robust_edit.pipeline.graph import AXES, Graph, Stage
from robust_edit.pipeline.stages import IMAGES, SCORES, grid
from robust_edit.pipeline.store import Store

KEY_TAG = "robust_edit.key"


def duckdb_path(spec: SweepSpec) -> Path:
    return Path(spec.tracking.duckdb or Store(spec.storage).root / "results.duckdb")


def mlflow_uri(spec: SweepSpec) -> str:
    return spec.tracking.mlflow_uri or f"sqlite:///{Store(spec.storage).root / 'mlflow.db'}"


def mlflow_runs_page(spec: SweepSpec) -> str:
    """The sweep's runs table in the MLflow UI: `mlflow ui`'s default address for the
    embedded store, the server's own for a tracking server. MLflow 3's UI opens an
    experiment on its GenAI overview unless the address asks for the model-training view."""
    import mlflow

    uri = mlflow_uri(spec)
    exp = mlflow.MlflowClient(uri).get_experiment_by_name(spec.tracking.experiment or spec.name)
    base = uri.rstrip("/") if uri.startswith(("http://", "https://")) else "http://127.0.0.1:5000"
    return f"{base}/#/experiments/{exp.experiment_id}?workflowType=machine_learning"


def mlflow_open(spec: SweepSpec) -> str:
    """How to see the sweep's runs: a tracking server's page, or `mlflow ui` on the local
    store and then its page."""
    uri, page = mlflow_uri(spec), mlflow_runs_page(spec)
    if page.startswith(uri.rstrip("/")):
        return page
    return f"mlflow ui --backend-store-uri {uri} --host 127.0.0.1, then {page}"


def score_of(graph: Graph) -> dict[str, Stage]:
    """generate key -> its score stage."""
    return {s.inputs[0]: s for s in graph.by_kind("score")}


def build_database(graph: Graph, store: Store, spec: SweepSpec, aggregate_key: str) -> Path:
    scores = score_of(graph)

    def write(tmp: Path) -> None:
        db = analysis.connect(tmp)
        db.execute("CREATE TABLE aggregate_key AS SELECT ? AS key", [aggregate_key])
        for cell in graph.cells:
            drawn = [*cell["variants"].items(), *cell.get("quality", {}).items()]
            for variant, gen_key in drawn:
                gen = graph.stages[gen_key]
                info = store.info(gen)
                images, scored = store.dir(gen) / IMAGES, store.dir(scores[gen_key]) / SCORES
                db.execute(f"""
                    INSERT INTO results BY NAME
                    SELECT ? AS sweep, ? AS cell, {", ".join(f"? AS {a}" for a in AXES)}, ? AS variant,
                           ? AS step, i.item, {_column(images, "i", "unit")}, i.kind, i.grp, i.prompt,
                           i.seed, i.texts, i.target, s.metric, s.label, s.value, ? AS scorer,
                           {_column(scored, "s", "scorer_settings")},
                           ? AS generate_key,
                           ? AS source_key, ? AS settings, ? AS git_commit, ? AS lock_sha256,
                           ? AS versions
                    FROM read_parquet(?) i JOIN read_parquet(?) s USING (item)""",
                    [spec.name, cell["cell"], *[cell[a] for a in AXES], variant, cell["steps"][variant],
                     spec.evaluation.scorer, gen_key, gen.inputs[0], json.dumps(info["settings"]),
                     info["git_commit"], info["versions"].get("requirements.lock"),
                     json.dumps(info["versions"]),
                     str(images), str(scored)])
        labels.insert_human_rows(db, store.root)  # imported human labels (robust-edit labels import)
        analysis.resample(db)
        if spec.evaluation.quality:
            quality.write_sets(db, graph, store, spec.evaluation.quality)
        db.close()

    return write_atomic(duckdb_path(spec), write)


def _column(parquet: Path, alias: str, name: str) -> str:
    """A column the file may lack, as `alias.name` or NULL: the scores' `scorer_settings`
    (only scorers whose labels depend on settings write it: nudenet's thresholds), the
    items' `unit` (NULL: the item is its own resampling unit)."""
    import pyarrow.parquet as pq

    found = name in pq.read_schema(parquet).names
    return f"{f'{alias}.{name}' if found else 'NULL'} AS {name}"


def _find_or_create(client, experiment_id: str, key: str, name: str, tags: dict, params: dict,
                    span: tuple[float, float]) -> str:
    """The run for a content key, with `params` logged, FINISHED with the (start, end) span
    of the stages it reports (epoch seconds). MLflow params cannot change, so a run whose
    params differ (the result rows' labels changed) is replaced, never doubled."""
    from mlflow.entities import Param

    params = {k: str(v) for k, v in params.items()}
    found = _search(client, experiment_id, f"tags.`{KEY_TAG}` = '{key}'")
    run = None
    for old in found:
        if run is None and old.data.params.items() <= params.items():
            run = old.info.run_id
        else:
            client.delete_run(old.info.run_id)
    if run is None:
        run = client.create_run(experiment_id, start_time=int(span[0] * 1000), run_name=name,
                                tags={KEY_TAG: key, **tags}).info.run_id
    client.log_batch(run, params=[Param(k, v) for k, v in params.items()])
    client.set_terminated(run, "FINISHED", end_time=int(span[1] * 1000))
    return run


def _search(client, experiment_id: str, filter_string: str) -> list:
    """Every run matching the filter (MLflow returns pages of at most 1,000)."""
    runs, token = [], None
    while True:
        page = client.search_runs([experiment_id], filter_string=filter_string, page_token=token)
        runs += list(page)
        token = page.token
        if not token:
            return runs


def log_mlflow(graph: Graph, store: Store, spec: SweepSpec, db_path: Path) -> str:
    """Parent + child runs with params, metrics, image grids and manifests; returns the
    parent run id."""
    import mlflow
    from mlflow.entities import Metric
    from tqdm.auto import tqdm

    client = mlflow.MlflowClient(mlflow_uri(spec))
    name = spec.tracking.experiment or spec.name
    exp = client.get_experiment_by_name(name)
    # The embedded store keeps artifacts beside its database (MLflow's default is ./mlruns
    # in whatever directory the driver runs from); a tracking server places its own.
    artifacts = None if spec.tracking.mlflow_uri else (store.root / "mlflow-artifacts").as_uri()
    exp_id = exp.experiment_id if exp else client.create_experiment(name, artifact_location=artifacts)
    # MLflow 3's experiment kind (its UI's "experiment type"): model development, not GenAI.
    client.set_experiment_tag(exp_id, "mlflow.experimentKind", "custom_model_development")
    scored_by = score_of(graph)

    def span(*stages: Stage) -> tuple[float, float]:
        infos = [store.info(s) for s in stages]
        return min(i["started"] for i in infos), max(i["started"] + i["seconds"] for i in infos)

    parent = _find_or_create(client, exp_id, f"sweep:{spec.name}", spec.name, {},
                             {"storage": spec.storage, "duckdb": db_path},
                             (span(*(s for s in graph.stages.values() if s.kind != "aggregate"))[0],
                              time.time()))
    db = analysis.connect(db_path, read_only=True)
    now = int(time.time() * 1000)
    logged_artifacts = set()
    for cell in tqdm(graph.cells, desc="MLflow runs", mininterval=2):
        for variant, gen_key in cell["variants"].items():
            params = {**{a: cell[a] for a in AXES}, "variant": variant, "generate_key": gen_key}
            run = _find_or_create(client, exp_id, f"{cell['cell']}:{variant}",
                                  f"{cell['edit']}/{cell['finetune']}/{variant}",
                                  {"mlflow.parentRunId": parent, "variant": variant,
                                   **{a: str(cell[a]) for a in AXES}}, params,
                                  span(graph.stages[gen_key], scored_by[gen_key]))
            metrics = db.execute("SELECT metric, value, lo, hi FROM variant_metrics "
                                 "WHERE cell = ? AND variant = ?", [cell["cell"], variant]).fetchall()
            client.log_batch(run, metrics=[Metric(name, v, now, 0) for m, *values in metrics
                                           for name, v in zip((m, f"{m}_lo", f"{m}_hi"), values)
                                           if v is not None])
            if (run, gen_key) not in logged_artifacts:
                _log_artifacts(client, run, graph.stages[gen_key], store)
                logged_artifacts.add((run, gen_key))
    db.close()
    # Cells the spec no longer has (a changed spec under the same name): their runs would
    # sit beside the current ones under this parent with conflicting values.
    current = {f"{c['cell']}:{v}" for c in graph.cells for v in c["variants"]}
    for old in _search(client, exp_id, f"tags.`mlflow.parentRunId` = '{parent}'"):
        if old.data.tags.get(KEY_TAG) not in current:
            client.delete_run(old.info.run_id)
    return parent


def _log_artifacts(client, run: str, gen: Stage, store: Store) -> None:
    import pandas as pd

    from robust_edit.pipeline.stages import edit_artifact_dir

    pngs = pd.read_parquet(store.dir(gen) / IMAGES, columns=["image"])["image"]
    client.log_image(run, grid(pngs), artifact_file="images/grid.png")
    source = gen.inputs[0]
    if gen.config["variant"] == "M_ed":
        client.log_artifact(run, str(edit_artifact_dir(store, source) / "edit.json"), "manifests")
    elif gen.config["variant"] in ("M_ft", "M_ed_ft"):
        client.log_artifact(run, str(store.dir(source, "finetune") / "run" / "manifest.json"), "manifests")
