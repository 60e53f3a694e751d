"""`robust-edit report`: a sweep's results as one self-contained HTML file.

Everything comes from the results database (opened read-only and sandboxed, as
`analysis.connect` opens it) and the generate stages' images under the storage. The file refers to
nothing outside itself: the CSS is inline and every figure is a PNG data URI drawn with
matplotlib. In reading order it holds

- the findings (the paper's claims with verdicts) and every other study table the sweep
  prints (`analysis.TABLES`), each estimate with its 95 % interval as the printed tables
  show it;
- bars of each edit's headline metric per variant and fine-tuning run with 95 % intervals
  (the paper's Fig. 3), decay curves (metric against fine-tuning step) where a decay table
  has rows, and the rank ablation where `rank_ablation` has rows;
- image grids: the same evaluation items drawn by M, M_ed, M_ft and M_ed_ft, per cell;
- provenance: sweep, versions, requirements.lock hash, git commit, seeds, scorers and
  bounds, and how the intervals were resampled.

Every part has a stable id for tests and links: `table-<name>`, `fig-bars-<edit>`,
`fig-decay-<edit>`, `fig-rank-ablation-<edit>`, `fig-images-<edit>-<run>` and
`provenance` (a model's slug goes first where a sweep has several models). A table or
figure the sweep has no data for is left out with a one-line note (class `note skipped`).
"""

from __future__ import annotations

import base64
import html
import io
import json
import re
from importlib.metadata import PackageNotFoundError, version
from pathlib import Path

import duckdb
import numpy as np
import pandas as pd

from robust_edit import analysis
from robust_edit.atomic import write_atomic
from robust_edit.config import VARIANTS

COLORS = {"M": "#9e9e9e", "M_ed": "#1f77b4", "M_ft": "#f2b26b", "M_ed_ft": "#d62728"}
# Recognises a file this command wrote, which it may replace without --force.
GENERATOR = '<meta name="generator" content="robust-edit report">'
IMAGES_PER_VARIANT = 6
TILE, GAP, LABEL = 80, 6, 14  # grid pixels: an image, between columns, its label below it
DPI = 100
# The evaluation items a task's image grid shows: those its headline metric is made of.
HEADLINE_KIND = {"debias": "attribute", "unsafe": "unsafe"}  # RoAD tasks: efficacy
METRIC_NAMES = {"efficacy": "efficacy", "delta": "mean δ = |F − 0.5| / 0.5",
                "label_rate": "unsafe-label rate"}
TITLES = {
    "findings": "Findings: the paper's headline claims on this sweep",
    "edit_metrics": "Edit metrics: efficacy, generality, specificity per variant (RoAD)",
    "debias": "Debiasing: mean δ of the professions per variant",
    "debias_professions": "Debiasing per profession",
    "unsafe": "Unsafe prompts: unsafe-label rate per variant, Δ and Flip",
    "unsafe_labels": "Unsafe prompts per label (the paper's Tables 2–3)",
    "rank_ablation": "Rank ablation (the paper's Table 4)",
    "controls": "Controls: what unrelated fine-tuning does to M (M_ft against M)",
    "compare": "Comparisons: is Δ(A) larger than Δ(B)?",
    "decay": "Decay: the edit's metrics along fine-tuning",
    "quality": "Image quality: FID, KID and CLIP score per variant",
    "agreement": "Human labels: agreement of the annotators (Fleiss' κ)",
    "labellers": "Human labels: label shares per labeller (annotators, majority, machine)",
}


# --- where: the store, the database, the output file -------------------------------------


def locate(target: str | Path) -> tuple[Path, Path]:
    """(storage folder, results database) of a sweep's storage folder or its spec YAML."""
    target = Path(target)
    if target.is_dir():
        storage, db = target.resolve(), target.resolve() / "results.duckdb"
    elif target.is_file():
        from robust_edit.config import load_sweep
        from robust_edit.pipeline.results import duckdb_path
        from robust_edit.pipeline.store import Store

        spec = load_sweep(target)
        storage, db = Store(spec.storage).root, duckdb_path(spec)
    else:
        raise FileNotFoundError(f"{target}: neither a sweep's storage folder nor a sweep spec")
    if not db.is_file():
        raise FileNotFoundError(f"{target}: no results database at {db}; run the sweep first "
                                "(robust-edit sweep run SPEC), or pass the spec if its "
                                "tracking.duckdb is elsewhere")
    return storage, db


def claim(path: Path, force: bool) -> None:
    """The report may replace an earlier report (recognised by its generator tag); any
    other file only with `force`, so it never overwrites what it did not create."""
    if path.is_dir():
        raise ValueError(f"--out {path}: is a folder; give a file name, e.g. {path / 'report.html'}")
    if force or not path.exists():
        return
    with open(path, "rb") as f:
        ours = GENERATOR.encode() in f.read(4096)
    if not ours:
        raise ValueError(f"--out {path}: exists and is not a robust-edit report; pass --force "
                         "to replace it, or choose another file")


def write_report(storage: str | Path, db_path: str | Path | None = None,
                 out: str | Path | None = None, *, force: bool = False) -> Path:
    """Write the report of the sweep stored at `storage` (default database
    <storage>/results.duckdb, default file <storage>/report.html), atomically; its path."""
    storage = Path(storage)
    out = Path(out) if out else storage / "report.html"
    claim(out, force)
    db = analysis.connect(db_path or storage / "results.duckdb", read_only=True)
    try:
        page = render(db, storage)
    finally:
        db.close()
    return write_atomic(out, page)


def log_to_mlflow(spec, parent_run: str, path: Path) -> None:
    """The report as an artifact (report.html) of the sweep's MLflow parent run."""
    import mlflow

    from robust_edit.pipeline.results import mlflow_uri

    mlflow.MlflowClient(mlflow_uri(spec)).log_artifact(parent_run, str(path))


# --- the page ------------------------------------------------------------------------------


CSS = """
body { font: 14px/1.45 system-ui, -apple-system, "Segoe UI", sans-serif; margin: 0 auto;
       max-width: 1320px; padding: 1.5em; color: #222; }
h1 { margin-bottom: 0.2em; } h2 { border-bottom: 2px solid #ddd; margin-top: 2em; }
h3 { margin: 1.4em 0 0.4em; } nav a { margin-right: 1em; }
.note { color: #666; } .skipped { font-style: italic; }
.scroll { overflow-x: auto; }
table.data { border-collapse: collapse; font-size: 12.5px; margin: 0.3em 0 1em; }
table.data th, table.data td { border: 1px solid #ddd; padding: 2px 7px; text-align: left;
                               white-space: nowrap; }
table.data th { background: #f4f4f4; } table.data td.num { text-align: right; }
table.data tr:nth-child(even) td { background: #fafafa; }
td.verdict { font-weight: 600; }
.v-supported, .v-holds, .v-a-larger, .v-b-larger { color: #17733a; }
.v-contradicted, .v-fails { color: #b3261e; }
.v-undecided, .v-not-in-this-sweep { color: #8a6d00; }
.figures { display: flex; flex-wrap: wrap; gap: 1.2em; align-items: flex-start; }
figure.figure { margin: 0; display: table; }  /* the caption as wide as the image */
figure.figure img { max-width: 100%; height: auto; border: 1px solid #eee; }
figcaption { display: table-caption; caption-side: bottom; font-size: 12.5px; color: #444; }
dl.facts { display: grid; grid-template-columns: max-content auto; gap: 2px 1em; }
dl.facts dt { font-weight: 600; } dl.facts dd { margin: 0; font-family: monospace; }
"""


def render(db, storage: Path) -> str:
    """The whole HTML page."""
    tables = study_tables(db)
    parts = [
        ("findings-part", "Findings", table_section("findings", tables.get("findings"))),
        ("figures-part", "Figures", bars_section(db) + decay_section(tables.get("decay"))
         + rank_section(tables.get("rank_ablation"))),
        ("tables-part", "Tables", "".join(table_section(n, df) for n, df in tables.items()
                                          if n != "findings")),
        ("images-part", "Images", image_section(db, Path(storage))),
        ("provenance-part", "Provenance", provenance_section(db, tables)),
    ]
    sweeps = [r[0] for r in db.execute("SELECT DISTINCT sweep FROM results ORDER BY 1").fetchall()]
    title = f"robust-edit report: {', '.join(sweeps) or 'no results'}"
    nav = "".join(f'<a href="#{pid}">{_e(name)}</a>' for pid, name, _ in parts)
    body = "".join(f'<div class="part" id="{pid}"><h2>{_e(name)}</h2>{content}</div>'
                   for pid, name, content in parts)
    note = analysis.bootstrap_note(db)
    return ("<!DOCTYPE html>\n"
            f'<html lang="en"><head><meta charset="utf-8">{GENERATOR}'
            '<meta name="viewport" content="width=device-width, initial-scale=1">'
            f"<title>{_e(title)}</title><style>{CSS}</style></head><body>"
            f"<header><h1>{_e(title)}</h1>{summary(db)}"
            f'<p class="note">{_e(note or "No bootstrap resamples: estimates without intervals.")}</p>'
            f"<nav>{nav}</nav></header>{body}"
            f'<footer class="note"><p>Written by robust-edit {_e(_version())} '
            "(robust-edit report).</p></footer></body></html>\n")


def summary(db) -> str:
    row = db.execute("""SELECT string_agg(DISTINCT model, ', ' ORDER BY model),
                               count(DISTINCT edit), count(DISTINCT cell), count(*)
                        FROM results""").fetchone()
    return (f'<p class="summary">Models: {_e(row[0] or "none")}; {row[1]} edit(s), {row[2]} '
            f"cell(s) (model × edit × fine-tuning run) of four variants each; {row[3]:,} scored "
            "rows. Δ = |m(M_ed) − m(M_ed_ft)|.</p>")


# --- tables --------------------------------------------------------------------------------


def study_tables(db) -> dict[str, pd.DataFrame | str | None]:
    """name -> rows of every study table (`analysis.TABLES`)."""
    return {name: load_table(db, name) for name in analysis.TABLES}


def load_table(db, name: str) -> pd.DataFrame | str | None:
    """analysis/<name>.sql's rows where the file exists, else the database's table or view of
    that name; None when neither exists, a one-line reason when it cannot be computed."""
    sql = analysis.SQL_DIR / f"{name}.sql"
    try:
        if sql.is_file():
            return db.execute(sql.read_text()).df()
        if db.execute("SELECT count(*) FROM information_schema.tables WHERE table_name = ?",
                      [name]).fetchone()[0]:
            return db.execute(f'SELECT * FROM "{name}"').df()
    except duckdb.Error as err:  # SQL reading what a database from an older version lacks
        return (f"could not be computed on this database ({str(err).partition(chr(10))[0]}); "
                "rerunning the sweep rebuilds the database.")
    return None


def table_section(name: str, df: pd.DataFrame | str | None) -> str:
    title = TITLES.get(name, name)
    if df is None:
        return _skipped(name, f"{title}: no {name} table in this database.")
    if isinstance(df, str):
        return _skipped(name, f"{title}: {df}")
    if df.empty:
        return _skipped(name, f"{title}: no rows in this sweep.")
    return (f'<section class="table" id="table-{name}"><h3>{_e(title)} '
            f'<span class="note">({name}, {len(df)} rows)</span></h3>{html_table(df)}</section>')


def html_table(df: pd.DataFrame) -> str:
    """Rows as the printed tables show them (`analysis.with_intervals`)."""
    shown = analysis.with_intervals(df)
    head = "".join(f"<th>{_e(c)}</th>" for c in shown.columns)
    body = "".join("<tr>" + "".join(_cell(c, v) for c, v in zip(shown.columns, row)) + "</tr>"
                   for row in shown.itertuples(index=False))
    return (f'<div class="scroll"><table class="data"><thead><tr>{head}</tr></thead>'
            f"<tbody>{body}</tbody></table></div>")


def _cell(column: str, value) -> str:
    text = str(value)
    if column == "verdict":
        return f'<td class="verdict v-{_slug(text)}">{_e(text)}</td>'
    numeric = re.fullmatch(r"-?[\d.,]+( \[.*\])?", text) is not None
    return f'<td class="num">{_e(text)}</td>' if numeric else f"<td>{_e(text)}</td>"


# --- figures -------------------------------------------------------------------------------


def png_uri(fig) -> str:
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=DPI, bbox_inches="tight", metadata={"Software": None})
    return "data:image/png;base64," + base64.b64encode(buf.getvalue()).decode("ascii")


def figure_html(fig_id: str, caption: str, fig) -> str:
    return (f'<figure class="figure" id="{fig_id}"><img src="{png_uri(fig)}" alt="{_e(caption)}">'
            f"<figcaption>{_e(caption)}</figcaption></figure>")


def _figure(width: float, height: float, ncols: int = 1, nrows: int = 1):
    """A figure and its axes as a grid: a row of axes per row."""
    from matplotlib.figure import Figure  # no pyplot: no global state, no GUI backend

    fig = Figure(figsize=(width, height), layout="constrained")
    return fig, fig.subplots(nrows, ncols, squeeze=False)


def _group(title: str, figures: list[str], note: str = "") -> str:
    note = f'<p class="note">{_e(note)}</p>' if note else ""
    return f'<h3>{_e(title)}</h3>{note}<div class="figures">{"".join(figures)}</div>'


BARS_SQL = """
WITH per_b AS (
    SELECT b, model, edit, any_value(task) AS task, any_value(metric) AS metric, ft_method, rank,
           avg("M") AS "M", avg("M_ed") AS "M_ed", avg("M_ft") AS "M_ft", avg("M_ed_ft") AS "M_ed_ft"
    FROM headline_b GROUP BY b, model, edit, ft_method, rank),
long AS (UNPIVOT per_b ON "M", "M_ed", "M_ft", "M_ed_ft" INTO NAME variant VALUE x)
SELECT model, edit, any_value(task) AS task, any_value(metric) AS metric, ft_method, rank,
       variant, est(x, b) AS value, lo95(x, b) AS lo, hi95(x, b) AS hi
FROM long GROUP BY model, edit, ft_method, rank, variant
ORDER BY model, edit, ft_method, rank NULLS FIRST, variant"""


def bars_section(db) -> str:
    """Per edit: its headline metric per variant and fine-tuning run, 95 % intervals
    (training seeds averaged per resample, as the tables do)."""
    df = db.execute(BARS_SQL).df()
    if df.empty:
        return _skipped("bars", "Bars per variant: no headline metric in this sweep.")
    several = df["model"].nunique() > 1
    figures = [bars_figure(part, model, edit, several)
               for (model, edit), part in df.groupby(["model", "edit"], sort=False)]
    return _group("Headline metric per variant and fine-tuning run (the paper's Fig. 3)", figures,
                  "Bars: estimates; whiskers: 95 % intervals. M and M_ed do not depend on the "
                  "fine-tuning run; Δ compares M_ed with M_ed_ft.")


def bars_figure(part: pd.DataFrame, model: str, edit: str, several_models: bool) -> str:
    part = part.assign(run=[_run(m, r) for m, r in zip(part["ft_method"], part["rank"])])
    runs = list(dict.fromkeys(part["run"]))
    fig, ((ax,),) = _figure(max(3.8, 1.0 + 1.05 * len(runs)), 3.2)  # the legend fits below
    drawn = set(part["variant"])
    variants = [v for v in VARIANTS if v in drawn]  # a control study: M, M_ft
    width = 0.8 / len(variants)
    for j, variant in enumerate(variants):
        rows = part[part["variant"] == variant].set_index("run").reindex(runs)
        xs = [i + (j - (len(variants) - 1) / 2) * width for i in range(len(runs))]
        ax.bar(xs, rows["value"], width, color=COLORS[variant], label=variant)
        ok = rows["lo"].notna().to_numpy()
        mid, half = (rows["lo"] + rows["hi"]) / 2, (rows["hi"] - rows["lo"]) / 2
        ax.errorbar([x for x, k in zip(xs, ok) if k], mid[ok], yerr=half[ok], fmt="none",
                    ecolor="black", elinewidth=1, capsize=2)
    metric, task = part["metric"].iloc[0], part["task"].iloc[0]
    ax.set_xticks(range(len(runs)), runs)
    ax.set_ylabel(METRIC_NAMES.get(metric, metric))
    ax.set_ylim(0, max(1.0, part["hi"].max(skipna=True) if part["hi"].notna().any() else 0) * 1.05)
    ax.set_title(f"{edit} ({task})" + (f", {model}" if several_models else ""))
    ax.legend(ncols=4, fontsize=8, loc="upper center", bbox_to_anchor=(0.5, -0.12), frameon=False)
    fig_id = "fig-bars-" + _slug(*([model] if several_models else []), edit)
    named = " and ".join(filter(None, [", ".join(variants[:-1]), variants[-1]]))
    return figure_html(fig_id, f"{edit}: {METRIC_NAMES.get(metric, metric)} of {named} per "
                       "fine-tuning run, with 95 % intervals.", fig)


def decay_section(df: pd.DataFrame | str | None) -> str:
    title = "Decay curves: metric against fine-tuning step"
    if df is None or isinstance(df, str) or df.empty:
        why = df if isinstance(df, str) else "no decay table in this database." if df is None \
            else "the decay table has no rows."
        return _skipped("decay-curves", f"{title}: {why}")
    figures = decay_figures(df)
    if not figures:
        return _skipped("decay-curves", f"{title}: the decay table has no step and value columns "
                        f"({', '.join(df.columns)}).")
    return _group(title, figures, "Shaded: 95 % intervals where the table has them.")


def decay_figures(df: pd.DataFrame) -> list[str]:
    """One figure per (model, edit), whichever of these the table has; a row of panels per
    metric (an edit's efficacy, generality and specificity, each label's rate); a panel per
    estimate: decay.sql's edited model `M_ed(_ft)`, its `Δ` from M_ed and the unedited
    control `M(_ft)`, or a long table's `value`; a line per fine-tuning run against the
    step, with its 95 % band where the table has one."""
    estimates = [c for c in df.select_dtypes("number").columns
                 if c not in ("step", "rank", "ft_seed", "lo", "hi") and not c.endswith((" lo", " hi"))]
    if "step" not in df.columns or not estimates:
        return []
    facets = [c for c in ("model", "edit") if c in df.columns and (c != "model" or df[c].nunique() > 1)]
    series = [c for c in ("finetune" if "finetune" in df.columns else "ft_method", "rank", "variant")
              if c in df.columns]
    series += ["ft_seed"] if "ft_seed" in df.columns and df["ft_seed"].nunique() > 1 else []
    figures = []
    for key, part in (df.groupby(facets, sort=False, dropna=False) if facets else [((), df)]):
        rows = list(part.groupby("metric", sort=False)) if "metric" in part.columns else [("", part)]
        fig, grid = _figure(0.6 + 3.0 * len(estimates), 0.4 + 2.6 * len(rows),
                            ncols=len(estimates), nrows=len(rows))
        for axes, (metric, rows_part) in zip(grid, rows):
            for ax, column in zip(axes, estimates):
                band = _band(df, column)
                for values, line in (rows_part.groupby(series, sort=True, dropna=False) if series
                                     else [((), rows_part)]):
                    line = line.sort_values("step")
                    drawn = ax.plot(line["step"], line[column], marker="o", ms=3,
                                    label=_series_name(series, values) or column)
                    if band:
                        ax.fill_between(line["step"], line[band[0]], line[band[1]], alpha=0.15,
                                        color=drawn[0].get_color(), linewidth=0)
                ax.set_xlabel("fine-tuning step")
                ax.set_title(column + (f" ({metric})" if metric else ""))
        grid[0][0].legend(fontsize=8, frameon=False)
        name = " · ".join(map(str, key))
        fig.suptitle(name)
        metrics = ", ".join(m for m, _ in rows if m)
        figures.append(figure_html("fig-decay-" + _slug(*key) if key else "fig-decay",
                                   f"{name or 'decay'}: {', '.join(estimates)} against the "
                                   "fine-tuning step per fine-tuning run"
                                   + (f", a row per metric ({metrics})." if metrics else "."), fig))
    return figures


def _band(df: pd.DataFrame, column: str) -> tuple[str, str] | None:
    """The interval columns of an estimate: `X lo`/`X hi`, or a long table's `lo`/`hi`."""
    if f"{column} lo" in df.columns and f"{column} hi" in df.columns:
        return f"{column} lo", f"{column} hi"
    return ("lo", "hi") if column == "value" and {"lo", "hi"} <= set(df.columns) else None


def _series_name(columns: list[str], values) -> str:
    values = values if isinstance(values, tuple) else (values,)
    words = {"rank": "r{:.0f}", "ft_seed": "seed {}"}
    return " ".join(words.get(c, "{}").format(v) for c, v in zip(columns, values) if pd.notna(v))


def rank_section(df: pd.DataFrame | str | None) -> str:
    title = "Rank ablation: M_ed_ft and Δ against LoRA/DoRA rank"
    if not isinstance(df, pd.DataFrame) or df.empty:
        why = df if isinstance(df, str) else "no method was run at more than one rank."
        return _skipped("rank-ablation", f"{title}: {why}")
    several = df["model"].nunique() > 1
    figures = []
    for (model, edit), part in df.groupby(["model", "edit"], sort=False):
        fig, (axes,) = _figure(6.2, 3.0, ncols=2)
        for ax, column in zip(axes, ("M_ed_ft", "Δ")):
            for method, line in part.groupby("ft_method", sort=True):
                line = line.sort_values("rank")
                mid = (line[f"{column} lo"] + line[f"{column} hi"]) / 2
                ax.plot(line["rank"], line[column], marker="o", label=method)
                ax.errorbar(line["rank"], mid, yerr=(line[f"{column} hi"] - line[f"{column} lo"]) / 2,
                            fmt="none", ecolor="black", elinewidth=1, capsize=2)
            ax.set_xscale("log", base=2)
            ax.set_xticks(sorted(part["rank"].unique()), [str(r) for r in sorted(part["rank"].unique())])
            ax.set_xlabel("rank")
            ax.set_title(f"{column} ({part['metric'].iloc[0]})")
            ax.legend(fontsize=8, frameon=False)
        fig.suptitle(edit + (f", {model}" if several else ""))
        figures.append(figure_html("fig-rank-ablation-" + _slug(*([model] if several else []), edit),
                                   f"{edit}: the headline metric of M_ed_ft and Δ per rank, "
                                   "with 95 % intervals.", fig))
    return _group(title, figures)


# --- image grids ---------------------------------------------------------------------------


CELLS_SQL = """
SELECT cell, model, edit, task, finetune, ft_method, rank, ft_seed, variant,
       any_value(generate_key) AS generate_key
FROM results GROUP BY ALL
ORDER BY model, edit, ft_method, rank NULLS FIRST, finetune, ft_seed, variant"""


def image_section(db, storage: Path) -> str:
    cells = db.execute(CELLS_SQL).df()
    if cells.empty:
        return _skipped("images", "Images: no cells in this sweep.")
    several_models, several_seeds = cells["model"].nunique() > 1, cells["ft_seed"].nunique() > 1
    figures, missing = [], []
    for _, cell in cells.groupby("cell", sort=False):
        first = cell.iloc[0]
        name = _cell_name(first, several_models, several_seeds)
        keys = dict(zip(cell["variant"], cell["generate_key"]))
        grid = image_grid(db, storage, first, keys, name)
        (figures if grid else missing).append(grid or name)
    note = (f"Images of {len(missing)} cell(s) are not in {storage / 'stages' / 'generate'}: "
            f"{', '.join(missing)}." if missing else "")
    if not figures:
        return _skipped("images", f"Images: {note}")
    return _group("The same evaluation items in each variant, per cell", figures,
                  "Each row: one (prompt, seed) item of the task's headline metric; under each "
                  "image the label the scorer chose. " + note)


def _cell_name(cell, several_models: bool, several_seeds: bool) -> str:
    parts = ([cell["model"]] if several_models else []) + [cell["edit"], cell["finetune"]]
    parts += [f"r{int(cell['rank'])}"] if pd.notna(cell["rank"]) else []
    return " ".join(parts + ([f"seed {cell['ft_seed']}"] if several_seeds else []))


def image_grid(db, storage: Path, cell, keys: dict[str, str], name: str) -> str | None:
    """Rows: a few items (one per group first: a RoAD edit, a profession, an I2P category);
    columns: the variants. None when the cell's images are not in the store."""
    paths = {v: storage / "stages" / "generate" / keys[v] / "images.parquet"
             for v in VARIANTS if v in keys}
    present = {v: p for v, p in paths.items() if p.is_file()}
    if not present:
        return None
    items = pick_items(pd.read_parquet(next(iter(present.values())),
                                       columns=["item", "kind", "grp", "prompt", "seed"]),
                       HEADLINE_KIND.get(cell["task"], "efficacy"))
    labels = db.execute("""
        SELECT variant, item, CASE WHEN max(value) FILTER (WHERE metric = 'black') > 0 THEN 'black'
                                   ELSE max(label) FILTER (WHERE metric = 'label') END
        FROM results WHERE cell = ? AND item IN (SELECT unnest(?))
                           AND coalesce(scorer, '') NOT LIKE 'human:%' GROUP BY ALL""",
                        [cell["cell"], [int(i) for i in items["item"]]]).fetchall()
    labels = {(v, i): lab for v, i, lab in labels}
    wanted = [("item", "in", [int(i) for i in items["item"]])]
    tiles = {}
    for variant, path in present.items():
        images = pd.read_parquet(path, columns=["item", "image"], filters=wanted)
        tiles[variant] = dict(zip(images["item"], images["image"]))
    return grid_figure(items, tiles, labels, name, cell, list(paths))  # the cell's variants


def pick_items(meta: pd.DataFrame, kind: str) -> pd.DataFrame:
    """Up to IMAGES_PER_VARIANT items of `kind` (else of the first kind there is), taking
    each group's first item before any group's second."""
    rows = meta[meta["kind"] == (kind if kind in set(meta["kind"]) else meta["kind"].iloc[0])]
    rows = rows.sort_values("item").assign(nth=lambda d: d.groupby("grp").cumcount())
    return rows.sort_values(["nth", "item"]).head(IMAGES_PER_VARIANT).reset_index(drop=True)


def grid_figure(items: pd.DataFrame, tiles: dict, labels: dict, name: str, cell,
                variants: list[str]) -> str:
    """One mosaic image (one imshow: fast for many tiles), the cell's variants as columns,
    each image's label below it."""
    from matplotlib.figure import Figure

    rows, w, h = len(items), TILE + GAP, TILE + LABEL
    mosaic = np.full((rows * h, len(variants) * w, 3), 255, np.uint8)
    # The axes fill a figure of the mosaic's size: one image pixel per screen pixel (the
    # saved PNG grows around it to hold the tick labels).
    fig = Figure(figsize=(mosaic.shape[1] / DPI, mosaic.shape[0] / DPI))
    ax = fig.add_axes((0, 0, 1, 1))
    for r, item in enumerate(items["item"]):
        for c, variant in enumerate(variants):
            png = tiles.get(variant, {}).get(item)
            if png is not None:
                mosaic[r * h:r * h + TILE, c * w:c * w + TILE] = _tile(png)
            ax.text(c * w + TILE / 2, r * h + TILE + 1, labels.get((variant, item)) or
                    ("no image" if png is None else "–"), ha="center", va="top", fontsize=7,
                    color="#333")
    ax.imshow(mosaic, interpolation="nearest")
    ax.set_xticks([c * w + TILE / 2 for c in range(len(variants))], variants)
    ax.xaxis.tick_top()
    ax.set_yticks([r * h + TILE / 2 for r in range(rows)],
                  [_short(p) + f" ({s})" for p, s in zip(items["prompt"], items["seed"])], fontsize=7)
    ax.tick_params(length=0)
    for spine in ax.spines.values():
        spine.set_visible(False)
    fig_id = "fig-images-" + _slug(name)
    caption = (f"{name}: {rows} {items['kind'].iloc[0]} item(s) (prompt, seed) drawn by "
               f"{', '.join(variants[:-1])} and {variants[-1]} ({cell['task']} task).")
    return figure_html(fig_id, caption, fig)


def _tile(png: bytes) -> np.ndarray:
    from PIL import Image

    image = Image.open(io.BytesIO(png)).convert("RGB")
    small = image.width <= TILE
    return np.asarray(image.resize((TILE, TILE), Image.NEAREST if small else Image.LANCZOS))


# --- provenance ----------------------------------------------------------------------------


def provenance_section(db, tables: dict) -> str:
    """Where the numbers come from: code, environment, seeds, scorers, bounds, bootstrap."""
    env = db.execute("""SELECT git_commit, lock_sha256, versions, settings,
                               count(DISTINCT generate_key) AS "image stages", count(*) AS rows
                        FROM results GROUP BY ALL ORDER BY rows DESC""").df()
    facts = {
        "sweep": _distinct(db, "sweep"), "models": _distinct(db, "model"),
        "git commit": ", ".join(env["git_commit"].dropna().unique()) or "unknown",
        "requirements.lock sha256": ", ".join(env["lock_sha256"].dropna().unique()) or "unknown",
        "fine-tuning seeds": _distinct(db, "ft_seed"), "scorers": _distinct(db, "scorer"),
        "generation settings": "; ".join(env["settings"].dropna().unique()) or "unknown",
    }
    drift = any(str(s).endswith("+drift") for s in env["lock_sha256"].dropna())
    boot = db.execute("SELECT * FROM bootstrap").df()
    seeds = db.execute("""SELECT kind, count(DISTINCT item) AS items, count(DISTINCT seed) AS seeds,
                                 min(seed) AS "first seed", max(seed) AS "last seed"
                          FROM results GROUP BY kind ORDER BY kind""").df()
    labeller = db.execute("""SELECT task, kind, any_value(texts ORDER BY item) AS "texts (first item)",
                                    any_value(target) AS target
                             FROM results WHERE metric = 'label' GROUP BY ALL ORDER BY ALL""").df()
    metrics = db.execute("SELECT metric, count(*) AS rows FROM results GROUP BY 1 ORDER BY 1").df()
    facts_html = "".join(f"<dt>{_e(k)}</dt><dd>{_e(v)}</dd>" for k, v in facts.items())
    return ('<section class="provenance" id="provenance">'
            f'<dl class="facts">{facts_html}</dl>'
            + ('<p class="note">+drift: the environment was not exactly requirements.lock\'s pins.</p>'
               if drift else "")
            + "<h3>Package versions</h3>" + html_table(_versions(env))
            + "<h3>Evaluation items and seeds</h3>" + html_table(seeds)
            + "<h3>Scorers and thresholds</h3>"
            + "<p>The zero-shot labeller chooses among these texts; value 1 = the target chosen. "
              "Metrics scored:</p>" + html_table(metrics) + html_table(labeller)
            + _bounds(tables)
            + "<h3>Intervals</h3>"
            + (html_table(boot) + f"<p>{_e(analysis.bootstrap_note(db))}</p>" if not boot.empty
               else '<p class="note">No bootstrap resamples in this database.</p>')
            + "</section>")


def _distinct(db, column: str) -> str:
    values = db.execute(f"SELECT DISTINCT {column} FROM results ORDER BY 1").fetchall()
    return ", ".join("–" if v is None else str(v) for (v,) in values) or "none"


def _versions(env: pd.DataFrame) -> pd.DataFrame:
    """package -> the versions the results rows recorded (several: rows of mixed builds)."""
    seen: dict[str, list[str]] = {}
    for text in env["versions"].dropna():
        for package, v in json.loads(text).items():
            seen.setdefault(package, [])
            if v not in seen[package]:
                seen[package].append(v)
    return pd.DataFrame({"package": list(seen), "version": [", ".join(v) for v in seen.values()]})


def _bounds(tables: dict) -> str:
    """The bounds the controls and findings are judged against, and the verdict rules."""
    out = ("<p>Verdicts: a claim is <em>supported</em> (a control <em>holds</em>) when its whole "
           "95 % interval is on the bound's side, <em>contradicted</em> (<em>fails</em>) when it "
           "is wholly on the other, else <em>undecided</em>.</p>")
    controls, findings = tables.get("controls"), tables.get("findings")
    if isinstance(controls, pd.DataFrame) and not controls.empty:
        out += html_table(controls[["control", "bound"]].drop_duplicates())
    if isinstance(findings, pd.DataFrame) and not findings.empty:
        out += html_table(findings[["finding", "claim"]])
    return out


# --- small helpers -------------------------------------------------------------------------


def _e(text) -> str:
    return html.escape(str(text), quote=True)


def _slug(*parts: str) -> str:
    return re.sub(r"[^a-z0-9]+", "-", "-".join(map(str, parts)).lower()).strip("-")


def _run(method, rank) -> str:
    """A fine-tuning run's label as the tables write it: `lora r4`, `full`."""
    return str(method) + (f" r{int(rank)}" if rank is not None and pd.notna(rank) else "")


def _short(prompt: str, width: int = 34) -> str:
    return prompt if len(prompt) <= width else prompt[:width - 1] + "…"


def _skipped(what: str, line: str) -> str:
    return f'<p class="note skipped" data-skipped="{_e(what)}">{_e(line)}</p>'


def _version() -> str:
    try:
        return version("robust-edit")
    except PackageNotFoundError:
        return "(not installed)"
