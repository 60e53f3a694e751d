"""The results database: DuckDB with the documented `results` table (analysis/schema.sql),
the views over it (analysis/views.sql) and the study's tables (analysis/<table>.sql)."""

from __future__ import annotations

from pathlib import Path

import duckdb

from robust_edit.atomic import write_atomic

SQL_DIR = Path(__file__).resolve().parent.parent / "analysis"
TABLES = ("edit_metrics", "debias", "unsafe")


# A read-only connection runs statements from users (`robust-edit sql`): no file, network
# or extension access (COPY TO, read_csv, ATTACH, INSTALL/LOAD all fail), and a locked
# configuration so that a SET cannot turn the access back on. The views live in the
# database file and read only its tables, so they work without external access.
READ_ONLY_CONFIG = {"enable_external_access": False, "lock_configuration": True}


def connect(path: str | Path | None = None, read_only: bool = False) -> duckdb.DuckDBPyConnection:
    """A connection with the schema and views (in memory without a path); `read_only`
    opens an existing database file read-only and sandboxed (never creates it)."""
    db = duckdb.connect(str(path) if path else ":memory:", read_only=read_only,
                        config=READ_ONLY_CONFIG if read_only else {})
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
        if df.empty:  # a table this sweep has none of: not one left from another sweep here
            for suffix in (".csv", ".md"):
                (folder / f"{name}{suffix}").unlink(missing_ok=True)
            continue
        write_atomic(folder / f"{name}.csv", df.to_csv(index=False))
        out[name] = df.astype(object).where(df.notna(), "–").to_markdown(index=False)
        write_atomic(folder / f"{name}.md", out[name] + "\n")
    return out
