"""`robust-edit report`: one self-contained HTML file with every study table that has rows,
the figures, image grids from the store and provenance; checked with an HTML parser, and in
headless Chromium where one is installed."""

from __future__ import annotations

import base64
import io
import json
import shutil
import subprocess
import time
from html.parser import HTMLParser
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import yaml
from PIL import Image

from robust_edit import analysis, cli, report
from tests.test_analysis import VARIANTS, cell_axes, random_labels, rows

RUNS = (("lora", 4), ("lora", 8), ("full", None))  # two LoRA ranks: a rank ablation
CHECKPOINT = 2  # the full fine-tune's evaluated checkpoint (decay), of 4 steps


def _png(rgb) -> bytes:
    buf = io.BytesIO()
    Image.fromarray(np.full((8, 8, 3), rgb, np.uint8)).save(buf, format="PNG")
    return buf.getvalue()


def _cells() -> list[tuple[dict, list[dict]]]:
    """Hand-made rows in the documented schema (tests/test_analysis.py's helpers): ReFACT
    appearance, UCE debias and UCE unsafe, each under LoRA r4, LoRA r8 and full."""
    out = []
    for ft, rank in RUNS:
        app = cell_axes(f"app-{ft}{rank or ''}", "appearance", "refact", ft, rank)
        labels = {v: random_labels(6, p, ("new", "old")) for v, p in zip(VARIANTS, (0.1, 0.9, 0.1, 0.6))}
        data = rows(app, "efficacy", "a lime", labels, "new")
        data += rows(app, "specificity", "a lime", {v: random_labels(6, 0.8, ("own", "new")) for v in VARIANTS},
                     "own", first_item=100)
        out.append((app, data))
        deb = cell_axes(f"deb-{ft}{rank or ''}", "debias", "uce", ft, rank)
        data = []
        for k, (prof, rates) in enumerate({"ceo": (0.1, 0.5, 0.2, 0.3), "nurse": (0.8, 0.5, 0.7, 0.6)}.items()):
            labels = {v: random_labels(12, p, ("short", "tall")) for v, p in zip(VARIANTS, rates)}
            data += rows(deb, "attribute", prof, labels, "short", first_item=100 * k)
        out.append((deb, data))
        uns = cell_axes(f"uns-{ft}{rank or ''}", "unsafe", "uce", ft, rank)
        labels = {v: random_labels(10, p, ("unsafe", "safe")) for v, p in zip(VARIANTS, (0.9, 0.2, 0.8, 0.3))}
        black = {v: [0.0] * 9 + [1.0] for v in VARIANTS}
        out.append((uns, rows(uns, "unsafe", "violence", labels, "unsafe")
                    + rows(uns, "unsafe", "violence", black, "unsafe", metric="black")))
    return out


def _with_checkpoint(data: list[dict]) -> list[dict]:
    """The full fine-tune's cells also at step 2 (variants M_ft@2, M_ed_ft@2), where the
    schema has steps: the decay table's rows."""
    step = {"M": 0, "M_ed": 0, "M_ft": 4, "M_ed_ft": 4}
    out = [{**r, "step": step[r["variant"]]} for r in data]
    if data[0]["ft_method"] == "full":
        out += [{**r, "variant": f"{r['variant']}@{CHECKPOINT}", "step": CHECKPOINT}
                for r in out if r["variant"] in ("M_ft", "M_ed_ft")]
    return out


def make_store(root: Path) -> Path:
    """A sweep's storage: results.duckdb with resamples, and every variant's images under
    stages/generate/<generate_key>/images.parquet, as a sweep leaves them."""
    db = analysis.connect(root / "results.duckdb")
    has_step = "step" in db.execute("SELECT * FROM results LIMIT 0").df().columns
    colours = dict(zip(VARIANTS, ((120, 120, 120), (30, 120, 200), (240, 180, 100), (210, 40, 40))))
    for cell, data in _cells():
        if has_step:
            data = _with_checkpoint(data)
        df = pd.DataFrame(data)
        shared = df["variant"].isin(["M", "M_ed"])  # M and M_ed: one image stage per edit
        df["generate_key"] = np.where(shared, cell["edit"] + "-" + df["variant"],
                                      cell["cell"] + "-" + df["variant"].str.replace("@", "-at-"))
        df["git_commit"], df["lock_sha256"], df["scorer"] = "abc123", "f00d" * 16, "world:scorer"
        df["versions"] = json.dumps({"torch": "2.9.0", "requirements.lock": "f00d" * 16})
        df["settings"] = json.dumps({"steps": 15, "guidance": 3.0})
        db.register("hand", df)
        db.execute("INSERT INTO results BY NAME SELECT * FROM hand")
        db.unregister("hand")
        for key, images in df.drop_duplicates(["generate_key", "item"]).groupby("generate_key"):
            folder = root / "stages" / "generate" / key
            folder.mkdir(parents=True, exist_ok=True)
            base = colours[images["variant"].iloc[0].partition("@")[0]]
            images[["item", "kind", "grp", "prompt", "seed"]].assign(
                image=[_png(base) for _ in range(len(images))]).to_parquet(folder / "images.parquet")
    analysis.resample(db, resamples=40)
    db.close()
    return root


@pytest.fixture(scope="module")
def store(tmp_path_factory) -> Path:
    return make_store(tmp_path_factory.mktemp("store"))


@pytest.fixture(scope="module")
def built(store) -> tuple[Path, str]:
    path = report.write_report(store)
    return path, path.read_text()


class Elements(HTMLParser):
    """Every element's tag, id, classes and attributes, and the text of each table cell."""

    def __init__(self, text: str):
        super().__init__()
        self.elements: list[tuple[str, dict]] = []
        self.cells: dict[str, list[list[str]]] = {}  # table section id -> rows of cell texts
        self._section, self._row, self._in_cell = None, None, False
        self.feed(text)

    def handle_starttag(self, tag, attrs):
        attrs = dict(attrs)
        self.elements.append((tag, attrs))
        if tag == "section" and "table" in attrs.get("class", "").split():
            self._section = attrs["id"]
            self.cells[self._section] = []
        elif tag == "tr" and self._section:
            self._row = []
            self.cells[self._section].append(self._row)
        elif tag in ("td", "th") and self._row is not None:
            self._row.append("")
            self._in_cell = True

    def handle_endtag(self, tag):
        if tag in ("td", "th"):
            self._in_cell = False
        elif tag == "section":
            self._section, self._row = None, None

    def handle_data(self, data):
        if self._in_cell:
            self._row[-1] += data

    def ids(self, cls: str | None = None) -> set[str]:
        return {a["id"] for _, a in self.elements
                if "id" in a and (cls is None or cls in a.get("class", "").split())}


def expected(store: Path) -> tuple[dict[str, pd.DataFrame], set[str]]:
    """The study tables with rows, and the figure ids the report must have."""
    db = analysis.connect(store / "results.duckdb", read_only=True)
    tables = {n: analysis.table(db, n) for n in analysis.TABLES}
    cells = db.execute("SELECT DISTINCT edit, finetune, rank FROM results").fetchall()
    db.close()
    figures = {f"fig-bars-{edit}" for edit in ("appearance", "debias", "unsafe")}
    figures |= {f"fig-rank-ablation-{edit}" for edit in ("appearance", "debias", "unsafe")}
    figures |= {f"fig-images-{e}-{f}" + (f"-r{r}" if r else "") for e, f, r in cells}
    if not tables.get("decay", pd.DataFrame()).empty:
        figures |= {f"fig-decay-{edit}" for edit in ("appearance", "debias", "unsafe")}
    return {n: t for n, t in tables.items() if not t.empty}, figures


def decode_png(src: str) -> Image.Image:
    prefix = "data:image/png;base64,"
    assert src.startswith(prefix), src[:40]
    data = base64.b64decode(src[len(prefix):], validate=True)
    assert data.startswith(b"\x89PNG\r\n\x1a\n")
    image = Image.open(io.BytesIO(data))
    image.load()
    return image


def test_every_table_with_rows_and_every_figure_is_there_as_inline_pngs(store, built):
    path, text = built
    assert path == store / "report.html"
    page = Elements(text)
    tables, figures = expected(store)
    assert {"table-" + n for n in tables} <= page.ids("table")
    assert figures <= page.ids("figure")
    assert "provenance" in page.ids()
    # Tables without rows here are skipped with a note, never shown empty.
    skipped = {a.get("data-skipped") for _, a in page.elements if "skipped" in a.get("class", "")}
    for name in set(analysis.TABLES) - set(tables):
        assert "table-" + name not in page.ids() and name in skipped
    # Each figure is one PNG data URI; nothing refers outside the file.
    images = [a for tag, a in page.elements if tag == "img"]
    assert len(images) == len(page.ids("figure"))
    assert all(decode_png(a["src"]).size[0] > 100 for a in images)
    refs = [a[k] for _, a in page.elements for k in ("src", "href") if k in a]
    assert all(r.startswith(("data:image/png;base64,", "#")) for r in refs)
    assert not any(tag in ("script", "link", "iframe") for tag, _ in page.elements)
    assert "http://" not in text and "https://" not in text


def test_numbers_are_the_printed_tables_with_their_intervals(store, built):
    page = Elements(built[1])
    tables, _ = expected(store)
    for name, df in tables.items():
        shown = analysis.with_intervals(df)
        header, *body = page.cells[f"table-{name}"]
        assert header == list(shown.columns)
        assert body == [[str(v) for v in row] for row in shown.itertuples(index=False)]
    findings = {r[0]: r[-1] for r in page.cells["table-findings"][1:]}
    assert set(findings.values()) <= {"supported", "contradicted", "undecided", "not in this sweep"}
    assert any("[" in cell for row in page.cells["table-unsafe"][1:] for cell in row)


def test_provenance_names_code_environment_seeds_and_bootstrap(built):
    text = built[1]
    start = text.index('id="provenance"')
    section = text[start:text.index("</section>", start)]
    for fact in ("abc123", "f00d" * 16, "world:scorer", "fine-tuning seeds", "torch", "2.9.0",
                 "40 resamples (seed 0)", "profession drift", "Edits mostly persist"):
        assert fact in section, fact


def test_image_grids_show_each_variant_of_a_cell(store):
    """The grid of a cell draws its four variants' images (each variant a known colour)."""
    db = analysis.connect(store / "results.duckdb", read_only=True)
    grid = report.image_section(db, store)
    db.close()
    page = Elements(grid)
    src = next(a["src"] for tag, a in page.elements if tag == "img")
    pixels = {tuple(p) for p in np.asarray(decode_png(src).convert("RGB")).reshape(-1, 3)}
    assert {(120, 120, 120), (30, 120, 200), (240, 180, 100), (210, 40, 40)} <= pixels


def test_decay_curves_from_a_long_or_a_wide_table():
    long = pd.DataFrame({"edit": "appearance", "ft_method": ["full"] * 3 + ["lora"] * 3,
                         "rank": [None] * 3 + [4] * 3, "step": [0, 2, 4] * 2, "metric": "efficacy",
                         "value": [0.9, 0.7, 0.5, 0.9, 0.85, 0.8]})
    long["lo"], long["hi"] = long["value"] - 0.1, long["value"] + 0.1
    wide = long.rename(columns={"value": "Δ", "lo": "Δ lo", "hi": "Δ hi"})
    for df in (long, wide):
        page = Elements(report.decay_section(df))
        assert page.ids("figure") == {"fig-decay-appearance"}
        decode_png(next(a["src"] for tag, a in page.elements if tag == "img"))
    assert 'data-skipped="decay-curves"' in report.decay_section(None)
    assert 'data-skipped="decay-curves"' in report.decay_section(long.head(0))


def test_decay_curves_draw_a_row_of_panels_per_metric():
    """An edit with three metrics gets one figure, three rows high, not three figures."""
    df = pd.DataFrame({"edit": "appearance", "ft_method": "full", "step": [0, 2, 4] * 3,
                       "metric": ["efficacy"] * 3 + ["generality"] * 3 + ["specificity"] * 3,
                       "M_ed(_ft)": np.linspace(0.9, 0.5, 9), "Δ": np.linspace(0, 0.4, 9)})
    page = Elements(report.decay_section(df))
    assert page.ids("figure") == {"fig-decay-appearance"}
    one_row = decode_png(next(a["src"] for tag, a in Elements(report.decay_section(
        df[df["metric"] == "efficacy"])).elements if tag == "img"))
    three_rows = decode_png(next(a["src"] for tag, a in page.elements if tag == "img"))
    assert three_rows.width == one_row.width and three_rows.height > 2.5 * one_row.height
    caption = next(a["alt"] for tag, a in page.elements if tag == "img")
    assert "efficacy, generality, specificity" in caption


def test_cli_writes_the_report_of_a_store_or_a_spec_and_replaces_only_its_own(store, tmp_path, capsys):
    folder = shutil.copytree(store, tmp_path / "store")
    cli.main(["report", str(folder)])
    assert capsys.readouterr().out.strip() == str(folder / "report.html")
    cli.main(["report", str(folder)])  # its own file: replaced
    spec = yaml.safe_load((Path(__file__).parent / "pipeline" / "tiny.yaml").read_text())
    (tmp_path / "spec.yaml").write_text(yaml.safe_dump({**spec, "storage": str(folder)}))
    out = tmp_path / "elsewhere" / "mine.html"
    cli.main(["report", str(tmp_path / "spec.yaml"), "--out", str(out)])
    assert capsys.readouterr().out.strip().endswith(str(out)) and out.read_text().startswith("<!DOCTYPE")
    foreign = tmp_path / "notes.html"
    foreign.write_text("my notes")
    with pytest.raises(SystemExit) as exit_:
        cli.main(["report", str(folder), "--out", str(foreign)])
    assert exit_.value.code == 2 and "--force" in capsys.readouterr().err
    assert foreign.read_text() == "my notes"
    cli.main(["report", str(folder), "--out", str(foreign), "--force"])
    assert report.GENERATOR in foreign.read_text()
    with pytest.raises(SystemExit):
        cli.main(["report", str(tmp_path / "absent")])
    assert "neither a sweep's storage folder nor a sweep spec" in capsys.readouterr().err


def test_a_finished_sweep_writes_the_report_and_logs_it_to_its_parent_run(tmp_path):
    """The driver's aggregate path (run._run with every stage but the aggregate stored):
    the report beside the tables, printed, and an artifact of the MLflow parent run."""
    import mlflow

    from robust_edit.config import load_sweep
    from robust_edit.pipeline import run
    from robust_edit.pipeline.graph import build
    from robust_edit.pipeline.results import mlflow_uri
    from robust_edit.pipeline.stages import IMAGES, SCORES, edit_artifact_dir
    from robust_edit.pipeline.store import Store
    from tests.pipeline.test_results import ITEMS, TINY, _parquet
    from tests.pipeline.test_results import _png as png

    raw = yaml.safe_load(TINY.read_text()) | {"storage": str(tmp_path / "out")}
    (tmp_path / "tiny.yaml").write_text(yaml.safe_dump(raw))
    spec = load_sweep(tmp_path / "tiny.yaml")
    graph, store = build(spec), Store(spec.storage)
    for stage in graph.stages.values():
        if stage.kind == "edit":
            (edit_artifact_dir(store, stage.key)).mkdir(parents=True)
            (edit_artifact_dir(store, stage.key) / "edit.json").write_text("{}")
        elif stage.kind == "finetune":
            (store.dir(stage) / "run").mkdir(parents=True)
            (store.dir(stage) / "run" / "manifest.json").write_text("{}")
        elif stage.kind == "generate":
            _parquet(store.dir(stage) / IMAGES, pd.DataFrame(ITEMS).assign(image=[png(0), png(200)]))
        elif stage.kind == "score":
            _parquet(store.dir(stage) / SCORES, pd.DataFrame(
                [{"item": it["item"], "metric": "label", "label": "safe", "value": 0.0} for it in ITEMS]))
        if stage.kind != "aggregate":
            store.finish(stage, time.time(), settings={}, git_commit="c", versions={})
    out = run._run(graph, store, spec, quiet=True)
    assert out["report"] == str(store.root / "report.html")
    assert 'id="table-unsafe"' in Path(out["report"]).read_text()
    run.report(out)
    client = mlflow.MlflowClient(mlflow_uri(spec))
    exp = client.get_experiment_by_name(spec.name)
    parent = next(r for r in client.search_runs([exp.experiment_id])
                  if "mlflow.parentRunId" not in r.data.tags)
    assert "report.html" in [a.path for a in client.list_artifacts(parent.info.run_id)]


CHROMIUM = next(filter(None, map(shutil.which, ("chromium", "chromium-browser", "google-chrome"))), None)


@pytest.mark.skipif(CHROMIUM is None, reason="no chromium on PATH (headless rendering check)")
def test_chromium_renders_every_table_and_figure(store, built, tmp_path):
    path, _ = built
    run = [CHROMIUM, "--headless", "--no-sandbox", "--disable-gpu", "--hide-scrollbars",
           f"--user-data-dir={tmp_path / 'profile'}", "--window-size=1400,2400"]
    dom = subprocess.run([*run, "--dump-dom", path.as_uri()], capture_output=True, text=True,
                         timeout=180, check=True).stdout
    page = Elements(dom)
    tables, figures = expected(store)
    assert {"table-" + n for n in tables} <= page.ids("table") and figures <= page.ids("figure")
    shot = tmp_path / "shot.png"
    subprocess.run([*run, f"--screenshot={shot}", path.as_uri()], capture_output=True,
                   timeout=180, check=True)
    pixels = np.asarray(Image.open(shot).convert("RGB"))
    assert pixels.shape[:2] == (2400, 1400)
    assert len(np.unique(pixels.reshape(-1, 3), axis=0)) > 50  # text, tables and figures drawn
