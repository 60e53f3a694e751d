"""The results database: DuckDB with the documented `results` table (analysis/schema.sql),
the views over it (analysis/views.sql) and the study's tables (analysis/<table>.sql), every
estimate with a 95 % interval from a seeded, paired bootstrap over evaluation items
(`resample`)."""

from __future__ import annotations

import hashlib
from pathlib import Path

import duckdb
import numpy as np
import pandas as pd

from robust_edit.atomic import write_atomic

SQL_DIR = Path(__file__).resolve().parent.parent / "analysis"
TABLES = ("edit_metrics", "debias", "debias_professions", "unsafe", "unsafe_labels", "rank_ablation",
          "decay", "quality", "controls", "compare", "findings", "agreement", "labellers")
# Efron's percentile bootstrap; 1,000 resamples put the 2.5 % and 97.5 % quantiles on the
# 25th and 975th draws (Monte-Carlo error of a bound about 0.1 of the interval's width / 10).
RESAMPLES = 1000
BOOTSTRAP_SEED = 0


# A read-only connection runs statements from users (`robust-edit sql`): no file, network
# or extension access (COPY TO, read_csv, ATTACH, INSTALL/LOAD all fail), and a locked
# configuration so that a SET cannot turn the access back on. The views live in the
# database file and read only its tables, so they work without external access. DuckDB's
# progress bar is off (it would print over a sweep's output); it is a session setting, so
# it is set, and the configuration locked, once connected.
READ_ONLY_CONFIG = {"enable_external_access": False}


def connect(path: str | Path | None = None, read_only: bool = False) -> duckdb.DuckDBPyConnection:
    """A connection with the schema and views (in memory without a path); `read_only`
    opens an existing database file read-only and sandboxed (never creates it)."""
    db = duckdb.connect(str(path) if path else ":memory:", read_only=read_only,
                        config=READ_ONLY_CONFIG if read_only else {})
    if read_only:
        # DuckDB shares one instance per file within a process: a later connection may
        # find it set and locked already.
        if not db.execute("SELECT current_setting('lock_configuration')").fetchone()[0]:
            db.execute("SET enable_progress_bar = false")
            db.execute("SET lock_configuration = true")
    else:
        db.execute((SQL_DIR / "schema.sql").read_text())
        db.execute((SQL_DIR / "views.sql").read_text())
    return db


def written_by(db_path: Path, aggregate_key: str) -> bool:
    """Does the database at db_path hold this aggregate's rows (not another sweep's)?"""
    if not db_path.exists():
        return False
    db = connect(db_path, read_only=True)
    try:
        return db.execute("SELECT key FROM aggregate_key").fetchone() == (aggregate_key,)
    except duckdb.CatalogException:  # written before the table existed
        return False
    finally:
        db.close()


def resample(db, resamples: int = RESAMPLES, seed: int = BOOTSTRAP_SEED) -> int:
    """Draw the bootstrap resamples of the evaluation items in `results` into `resamples`:
    within each (edit, kind, group) stratum, its n units (an item, or a dataset row's draws
    at several seeds: evaluation.row_seeds) drawn with replacement, n times, per resample;
    each item weighs what its unit drew. A row's draws share its prompt, so they are not
    independent items. A stratum's draws depend only on the seed and the stratum's name,
    so adding an edit to a sweep leaves the other edits' intervals as they were. Returns
    the row count."""
    if resamples < 1:
        raise ValueError(f"resamples {resamples}: need at least 1")
    items = db.execute("SELECT DISTINCT edit, kind, grp, coalesce(unit, item) AS unit, item "
                       "FROM results ORDER BY edit, kind, grp, item").df()
    parts = []
    for (edit, kind, grp), stratum in items.groupby(["edit", "kind", "grp"], sort=True):
        units, unit_of = np.unique(stratum["unit"].to_numpy(), return_inverse=True)
        n = len(units)
        name = hashlib.sha256(f"{edit}\0{kind}\0{grp}".encode()).digest()
        rng = np.random.default_rng([seed, int.from_bytes(name[:8], "little")])
        draws = rng.integers(0, n, size=(resamples, n)) + n * np.arange(resamples)[:, None]
        counts = np.bincount(draws.ravel(), minlength=resamples * n).reshape(resamples, n)
        per_item = counts[:, unit_of]  # resamples x items: the unit's count
        b, pos = np.nonzero(per_item)
        parts.append(pd.DataFrame({"edit": edit, "item": stratum["item"].to_numpy()[pos],
                                   "b": b + 1, "w": per_item[b, pos]}))
    frame = pd.concat(parts) if parts else pd.DataFrame(columns=["edit", "item", "b", "w"])
    db.execute("DELETE FROM resamples")
    db.execute("DELETE FROM bootstrap")
    db.register("drawn", frame)
    db.execute("INSERT INTO resamples BY NAME SELECT * FROM drawn")
    db.unregister("drawn")
    db.execute("INSERT INTO bootstrap VALUES (?, ?, 0.95, 'percentile, paired, stratified "
               "by (edit, kind, grp)')", [resamples, seed])
    return len(frame)


def table(db, name: str):
    """One of the study's tables as a pandas DataFrame."""
    if name not in TABLES:
        raise ValueError(f"table {name!r}: unknown; tables: {', '.join(TABLES)}")
    return db.execute((SQL_DIR / f"{name}.sql").read_text()).df()


def with_intervals(df: pd.DataFrame) -> pd.DataFrame:
    """For reading: each estimate `X` with its `X lo` / `X hi` columns as one column
    "0.833 [0.780, 0.880]"; other numbers to 3 decimals, missing ones as '–'."""
    out = {}
    for col in df.columns:
        if col[-3:] in (" lo", " hi") and col[:-3] in df.columns:
            continue
        if f"{col} lo" in df.columns:
            out[col] = [_interval(v, lo, hi) for v, lo, hi
                        in zip(df[col], df[f"{col} lo"], df[f"{col} hi"])]
        elif pd.api.types.is_float_dtype(df[col]):
            out[col] = [_number(v) for v in df[col]]
        else:
            out[col] = df[col].astype(object).where(df[col].notna(), "–")
    return pd.DataFrame(out)


def _number(v) -> str:
    return "–" if v is None or pd.isna(v) else f"{v:.3f}"


def _interval(v, lo, hi) -> str:
    return _number(v) if lo is None or pd.isna(lo) else f"{_number(v)} [{lo:.3f}, {hi:.3f}]"


def write_tables(db, folder: Path) -> dict[str, str]:
    """Each non-empty table as CSV (numbers, intervals as `lo`/`hi` columns) and Markdown
    (estimates with their intervals) under `folder`; {name: markdown}."""
    folder.mkdir(parents=True, exist_ok=True)
    out = {}
    for name in TABLES:
        df = table(db, name)
        if df.empty:  # a table this sweep has none of: not one left from another sweep here
            for suffix in (".csv", ".md"):
                (folder / f"{name}{suffix}").unlink(missing_ok=True)
            continue
        write_atomic(folder / f"{name}.csv", df.to_csv(index=False))
        out[name] = with_intervals(df).to_markdown(index=False)
        write_atomic(folder / f"{name}.md", out[name] + "\n")
    return out


def bootstrap_note(db) -> str:
    """One line saying how the intervals were computed (empty without resamples)."""
    row = db.execute("SELECT resamples, seed FROM bootstrap").fetchone()
    return "" if row is None else (
        f"[lo, hi]: 95 % percentile bootstrap, {row[0]} resamples (seed {row[1]}) of the "
        "(prompt, seed) items within each edit's groups, the same draws for every variant "
        "and cell (paired)")
