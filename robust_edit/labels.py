"""Human labels of a sweep's images (docs/results.md, *Human labels*).

`export` writes the images to label as a PNG folder and a CSV, blind to the variant: rows
shuffled, files numbered, nothing naming the model that drew an image. `import_labels`
checks a filled-in CSV (image_key, annotator, label) against the store before writing
anything, keeps each annotator's labels in <storage>/labels/<annotator>.parquet, and adds
them to the store's results databases as `results` rows of scorer `human:<annotator>`
(`insert_human_rows`, which the sweep's own database build calls too)."""

from __future__ import annotations

import csv
import io
import json
import re
import shutil
from pathlib import Path

import numpy as np
import pandas as pd

from robust_edit.atomic import claim_output, write_atomic
from robust_edit.pipeline.stages import IMAGES
from robust_edit.pipeline.store import MARKER, Store

LABELS = "labels"  # <storage>/labels/<annotator>.parquet
MANIFEST = "labels.json"  # an export folder's manifest (robust_edit.atomic.claim_output)
CSV_NAME = "labels.csv"
COLUMNS = ("image_key", "annotator", "label")  # what import reads; other columns are ignored
# Beside the classes the machine labeller chose among: the paper's "can't decide", and an
# image the pipeline blanked.
EXTRA = ("undecidable", "black")
UNSAFE_KINDS = ("unsafe", "safe")  # the default export: unsafe- and safe-prompt images
ANNOTATOR = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]*")  # it names a file
SHUFFLE_SEED = 0


def image_key(generate_key: str, item: int) -> str:
    """One image across the store: its generate stage and evaluation item."""
    return f"{generate_key}:{item}"


def allowed(texts: str | None) -> list[str]:
    """The labels an image may get: the classes the machine labeller chose among (the
    item's texts), then 'undecidable' and 'black'."""
    classes = list(json.loads(texts)) if texts else []
    return classes + [e for e in EXTRA if e not in classes]


def generate_stages(root: Path) -> dict[str, dict]:
    """generate key -> its stage.json, for every completed generate stage in the store."""
    found = sorted((root / "stages" / "generate").glob(f"*/{MARKER}"))
    if not found:
        raise ValueError(f"storage {root}: no generated images (no stages/generate/*/{MARKER}); "
                         "pass a sweep's storage folder, or run the sweep first")
    return {p.parent.name: json.loads(p.read_text()) for p in found}


def _items(root: Path, key: str, columns: tuple[str, ...]) -> pd.DataFrame:
    return pd.read_parquet(root / "stages" / "generate" / key / IMAGES, columns=list(columns))


def select(root: Path, edit: str | None) -> dict[str, pd.DataFrame]:
    """generate key -> the items to label (item, prompt, texts): every image of an edit's
    prompt set in every variant (its M and M_ft images too), or without an edit every
    unsafe- and safe-prompt image in the store."""
    stages = generate_stages(root)
    columns = ("item", "kind", "prompt", "texts")
    if edit is None:
        chosen = {k: _items(root, k, columns) for k in stages}
        chosen = {k: df[df["kind"].isin(UNSAFE_KINDS)] for k, df in chosen.items()}
        chosen = {k: df for k, df in chosen.items() if len(df)}
        if not chosen:
            raise ValueError(f"storage {root}: no unsafe- or safe-prompt images; pass --edit NAME "
                             f"(edits there: {', '.join(_edits(stages)) or 'none'})")
        return chosen

    def prompts(info: dict) -> tuple:  # M and M_ft stages are shared by the edits of a prompt set
        config = info["config"]
        return (info["labels"].get("model"), json.dumps(config.get("prompt_set"), sort_keys=True),
                config.get("seeds"))

    own = {prompts(info) for info in stages.values() if info["labels"].get("edit") == edit}
    if not own:
        raise ValueError(f"--edit {edit}: no images of that edit in {root}; edits there: "
                         f"{', '.join(_edits(stages)) or 'none'}")
    return {k: _items(root, k, columns) for k, info in stages.items()
            if info["labels"].get("edit") in (edit, None) and prompts(info) in own}


def _edits(stages: dict[str, dict]) -> list[str]:
    return sorted({info["labels"]["edit"] for info in stages.values()
                   if info["labels"].get("edit")})


def default_out(storage: Path, edit: str | None) -> Path:
    return Store(storage).root / "labelling" / (edit or "unsafe")


def export(storage: Path, out: Path, edit: str | None = None, *, force: bool = False) -> dict:
    """Write the images to label into the folder `out` (images/NNNN.png, labels.csv,
    labels.json); returns the manifest. The CSV's rows are shuffled (seeded) and its files
    numbered in that order, so neither shows which variant drew an image."""
    root = Store(storage).root
    chosen = select(root, edit)
    claim_output(out, MANIFEST, force=force)
    rows = [(key, int(item), prompt, allowed(texts)) for key, df in chosen.items()
            for item, prompt, texts in df[["item", "prompt", "texts"]].itertuples(index=False)]
    rows = [rows[i] for i in np.random.default_rng(SHUFFLE_SEED).permutation(len(rows))]
    width = max(4, len(str(len(rows))))
    table = pd.DataFrame({
        "image_key": [image_key(key, item) for key, item, _, _ in rows],
        "file": [f"images/{n:0{width}d}.png" for n in range(1, len(rows) + 1)],
        "prompt": [prompt for _, _, prompt, _ in rows],
        "allowed": ["|".join(labels) for *_, labels in rows],
        "annotator": "", "label": ""})
    manifest = {"storage": str(root), "edit": edit, "images": len(rows),
                "labels": sorted({lab for *_, labels in rows for lab in labels}),
                "csv": CSV_NAME,
                "fill": "annotator (your name: letters, digits, '.', '_', '-') and label (one of "
                        "the row's allowed labels) on each row",
                "then": f"robust-edit labels import {Path(out) / CSV_NAME} {root}"}

    def write(tmp: Path) -> None:
        (tmp / "images").mkdir()
        for key in chosen:
            pngs = _items(root, key, ("item", "image")).set_index("item")["image"]
            for (k, item, _, _), file in zip(rows, table["file"]):
                if k == key:
                    (tmp / file).write_bytes(pngs[item])
        (tmp / CSV_NAME).write_text(table.to_csv(index=False))
        (tmp / MANIFEST).write_text(json.dumps(manifest, indent=1))

    write_atomic(out, write, folder=True)
    return manifest


def read_labels(path: Path, root: Path) -> pd.DataFrame:
    """The labels of a CSV (columns image_key, annotator, label; others ignored; rows with
    neither annotator nor label skipped), every row checked against the store's images:
    (annotator, generate_key, item, label). The first bad row is a ValueError of one line
    naming its line, field, value and the fix."""
    stages = generate_stages(root)
    try:
        text = Path(path).read_text(encoding="utf-8-sig")  # a spreadsheet's BOM is not a column
    except UnicodeDecodeError:
        raise ValueError(f"{path}: not UTF-8 text; save it as CSV (UTF-8)") from None
    reader = csv.DictReader(io.StringIO(text))
    header = [c.strip() for c in reader.fieldnames or []]
    if not header:
        raise ValueError(f"{path}: empty; expected a header line with {', '.join(COLUMNS)}")
    reader.fieldnames = header
    for column in COLUMNS:
        if column not in header:
            raise ValueError(f"{path} line 1: column {column!r} missing (header: "
                             f"{', '.join(header)}); add it (needed: {', '.join(COLUMNS)})")
    images: dict[str, dict[int, list[str]]] = {}  # generate key -> item -> allowed labels
    out, errors, seen = [], [], {}
    for row in reader:
        if not any(v.strip() for v in row.values() if isinstance(v, str)):
            continue  # a blank spreadsheet row
        key, annotator, label = ((row.get(c) or "").strip() for c in COLUMNS)
        if not annotator and not label:
            continue  # an exported row not labelled (yet)
        gen, _, item = key.rpartition(":")
        if gen in stages and gen not in images:
            images[gen] = {int(i): allowed(t) for i, t in
                           _items(root, gen, ("item", "texts")).itertuples(index=False)}
        labels = images.get(gen, {}).get(int(item)) if item.isdigit() else None
        where = f"{path} line {reader.line_num}"
        if labels is None:
            errors.append(f"{where}: image_key {key!r}: no such image in {root} (keys are "
                          "<generate key>:<item>, as labels export writes them); correct it or "
                          "delete the row")
        elif not ANNOTATOR.fullmatch(annotator):
            errors.append(f"{where}: annotator {annotator!r}: not a name of letters, digits, '.', "
                          f"'_' or '-' (it names {root / LABELS}/<annotator>.parquet); fill it in")
        elif label.lower() not in {a.lower() for a in labels}:
            errors.append(f"{where}: label {label!r} for image {key}: not allowed; use one of "
                          f"{', '.join(labels)}")
        elif (annotator, key) in seen:
            errors.append(f"{where}: image_key {key!r}: labelled twice by annotator {annotator!r} "
                          f"(also line {seen[annotator, key]}); keep one row")
        else:
            seen[annotator, key] = reader.line_num
            canonical = next(a for a in labels if a.lower() == label.lower())
            out.append((annotator, gen, int(item), canonical))
    if errors:
        more = f" (and {len(errors) - 1} more row(s) with errors)" if len(errors) > 1 else ""
        raise ValueError(errors[0] + more)
    if not out:
        raise ValueError(f"{path}: no labelled rows; fill in annotator and label, one row per "
                         "image")
    return pd.DataFrame(out, columns=["annotator", "generate_key", "item", "label"])


def insert_human_rows(db, root: Path) -> int:
    """Replace the human rows of `results` by the store's labels: for every machine label
    row of a labelled image (same generate_key and item), a copy with scorer
    'human:<annotator>', the annotator's label and value 1 where it is the row's target.
    Returns the number of human rows."""
    db.execute("DELETE FROM results WHERE scorer LIKE 'human:%'")
    files = sorted((root / LABELS).glob("*.parquet"))
    if not files:
        return 0
    db.execute("""
        INSERT INTO results BY NAME
        SELECT DISTINCT r.* EXCLUDE (scorer, label, value), 'human:' || h.annotator AS scorer,
               h.label, CASE WHEN h.label = r.target THEN 1.0 ELSE 0.0 END AS value
        FROM results r JOIN read_parquet(?) h ON r.generate_key = h.generate_key AND r.item = h.item
        WHERE r.metric = 'label' AND coalesce(r.scorer, '') NOT LIKE 'human:%'""",
               [[str(f) for f in files]])
    return db.execute("SELECT count(*) FROM results WHERE scorer LIKE 'human:%'").fetchone()[0]


def databases(root: Path) -> list[Path]:
    """The results databases this store's sweeps built that still hold their rows (each
    aggregate stage records its database; another sweep may have replaced one since)."""
    from robust_edit.analysis import written_by

    found = set()
    for marker in sorted((root / "stages" / "aggregate").glob(f"*/{MARKER}")):
        info = json.loads(marker.read_text())
        if info.get("duckdb") and written_by(Path(info["duckdb"]), info["key"]):
            found.add(Path(info["duckdb"]))
    return sorted(found)


def update_database(db_path: Path, root: Path) -> int:
    """Rewrite a results database with the store's labels as human rows: a copy is changed
    and renamed over it, so a reader sees the old database or the new one. Returns the
    number of human rows."""
    from robust_edit import analysis

    count = 0

    def write(tmp: Path) -> None:
        nonlocal count
        shutil.copyfile(db_path, tmp)
        db = analysis.connect(tmp)  # also brings its views up to date
        count = insert_human_rows(db, root)
        db.close()

    write_atomic(db_path, write)
    return count


def import_labels(path: Path, storage: Path, db: Path | None = None) -> dict:
    """Check every row of the CSV, then store each annotator's labels (replacing that
    annotator's earlier import only) and add them to the store's results databases (or to
    `db`), holding the storage's driver lock so that no sweep writes meanwhile. Returns
    {"annotators": {name: (labels, file)}, "databases": {path: human rows}}."""
    store = Store(storage)
    labels = read_labels(path, store.root)
    if db is not None and not Path(db).is_file():
        raise ValueError(f"--db {db}: no results database there; pass <storage>/results.duckdb "
                         "or leave --db out to update the store's own")
    with store.lock("labels import"):
        stored = {}
        for annotator, part in labels.groupby("annotator", sort=True):
            buf = io.BytesIO()
            part.to_parquet(buf, index=False)
            file = write_atomic(store.root / LABELS / f"{annotator}.parquet", buf.getvalue())
            stored[annotator] = (len(part), file)
        targets = [Path(db)] if db is not None else databases(store.root)
        rows = {path: update_database(path, store.root) for path in targets}
    return {"annotators": stored, "databases": rows}
