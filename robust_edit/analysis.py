"""The results database: DuckDB with the documented `results` table (analysis/schema.sql),
the views over it (analysis/views.sql) and the study's tables (analysis/<table>.sql)."""

from __future__ import annotations

from pathlib import Path

import duckdb

SQL_DIR = Path(__file__).resolve().parent.parent / "analysis"
TABLES = ("edit_metrics", "debias", "unsafe")


def connect(path: str | Path | None = None, read_only: bool = False) -> duckdb.DuckDBPyConnection:
    """A connection with the schema and views (in memory without a path)."""
    db = duckdb.connect(str(path) if path else ":memory:", read_only=read_only)
    if not read_only:
        db.execute((SQL_DIR / "schema.sql").read_text())
        db.execute((SQL_DIR / "views.sql").read_text())
    return db


def table(db, name: str):
    """One of the study's tables as a pandas DataFrame."""
    if name not in TABLES:
        raise ValueError(f"table {name!r}: unknown; tables: {', '.join(TABLES)}")
    return db.execute((SQL_DIR / f"{name}.sql").read_text()).df()


def write_tables(db, folder: Path) -> dict[str, str]:
    """Each non-empty table as CSV and Markdown under `folder`; {name: markdown}."""
    folder.mkdir(parents=True, exist_ok=True)
    out = {}
    for name in TABLES:
        df = table(db, name)
        if df.empty:
            continue
        df.to_csv(folder / f"{name}.csv", index=False)
        out[name] = df.astype(object).where(df.notna(), "–").to_markdown(index=False)
        (folder / f"{name}.md").write_text(out[name] + "\n")
    return out
