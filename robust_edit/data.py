"""Dataset references -> typed records, one reader per real format.

A reference is a known real dataset name (`road:test`, `timed:test`, `uce:professions`,
`i2p`, ...) or `<profile>:<name>` for a prompt set a profile ships (`world:road`,
robust_edit.profiles). Real datasets are read from a
local copy (`$ROBUST_EDIT_DATA`, else `../shared/data` beside the checkout) and, on a
cluster, fetched once from their public origin into the cache.
"""

from __future__ import annotations

import csv
import os
import urllib.request
from dataclasses import dataclass
from pathlib import Path

from robust_edit import profiles
from robust_edit.atomic import write_atomic
from robust_edit.cache import cache_root, file_sha256, sha256_of

_ROOT = Path(__file__).resolve().parent.parent


# The study's public CSVs, pinned to a commit of their repository (never a moving branch)
# with each file's sha256: a fetched or local copy whose content differs is refused, and the
# sha256 is part of every stage key that reads the dataset (robust_edit.pipeline.graph).
@dataclass(frozen=True)
class RealDataset:
    format: str
    path: str  # relative to the shared data folder and to the cache
    repository: str
    commit: str
    path_in_repository: str
    sha256: str

    @property
    def url(self) -> str:
        return (f"https://raw.githubusercontent.com/{self.repository}/{self.commit}/"
                f"{self.path_in_repository}")


def _real_datasets() -> dict[str, RealDataset]:
    with open(Path(__file__).with_name("real_datasets.csv"), newline="") as f:
        return {row.pop("name"): RealDataset(**row) for row in csv.DictReader(f)}


REAL_DATASETS = _real_datasets()


@dataclass(frozen=True)
class RoadEdit:
    """One RoAD row: the edit (old -> new for `prompt`) and its evaluation prompts."""

    type: str
    prompt: str
    oracle: str
    old: str
    new: str
    positives: tuple[tuple[str, str, str], ...]  # (prompt, text_old, text_new)
    negatives: tuple[tuple[str, str], ...]  # (prompt, text_new)


@dataclass(frozen=True)
class TimedEdit:
    old: str
    new: str
    positives: tuple[tuple[str, str], ...]  # (prompt, ground-truth text)
    negatives: tuple[tuple[str, str], ...]


@dataclass(frozen=True)
class PromptRow:
    """A prompt with its evaluation seed (professions, I2P, COCO), and its group/label."""

    case_number: int
    prompt: str
    evaluation_seed: int
    group: str  # profession, I2P categories, or COCO source
    guidance: float | None = None


def shared_data_dir() -> Path:
    return Path(os.environ.get("ROBUST_EDIT_DATA", _ROOT.parent / "shared" / "data"))


def locate(ref: str) -> tuple[str, Path]:
    """A dataset reference -> (format, local CSV path), fetching real data when needed."""
    fmt = dataset_format(ref)
    if found := profiles.split(ref):
        profile, name = found
        return fmt, profile.prompt_csv(name)
    real = REAL_DATASETS[ref]
    local = shared_data_dir() / real.path
    if not local.exists():
        local = cache_root() / "data" / real.path
    if not local.exists():  # a public CSV, no code executed; checked before it is kept
        def fetch(tmp: Path) -> None:
            urllib.request.urlretrieve(real.url, tmp)
            _check_sha256(ref, real, sha256_of(tmp), real.url)

        write_atomic(local, fetch)
    _check_sha256(ref, real, file_sha256(local), local)
    return fmt, local


def _check_sha256(ref: str, real: RealDataset, found: str, origin) -> None:
    if found != real.sha256:
        raise ValueError(f"dataset {ref!r}: {origin} has sha256 {found[:12]}..., the pinned "
                         f"file {real.sha256[:12]}...; restore the original (or remove the copy "
                         "so that the pinned file is fetched)")


def dataset_format(ref: str) -> str:
    """A reference's format without reading or fetching it (for validating specs)."""
    if ref in REAL_DATASETS:
        return REAL_DATASETS[ref].format
    formats = {f"{prefix}:{name}": fmt for prefix, p in profiles.registered().items()
               for name, fmt in p.prompt_formats().items()}
    if ref in formats:
        return formats[ref]
    raise ValueError(f"dataset {ref!r}: unknown; known: {sorted(REAL_DATASETS)} and "
                     f"{sorted(formats)}")


def read_rows(path: Path) -> list[dict]:
    """A CSV's rows as dicts; every row must have as many cells as the header names."""
    try:
        with open(path, newline="", encoding="utf-8") as f:
            reader = csv.DictReader(f)
            rows = list(reader)
    except UnicodeDecodeError as err:
        raise ValueError(f"{path}: not UTF-8 text (byte {err.start}); save it as UTF-8 CSV") from None
    for line, row in enumerate(rows, start=2):  # csv fills a short row with None, a long one under None
        if None in row or None in row.values():
            more = "more" if None in row else "fewer"
            raise ValueError(f"{path}: line {line} has {more} cells than the header's "
                             f"{len(reader.fieldnames)} columns; fix that row")
    return rows


def require_columns(rows: list[dict], columns: list[str], path: Path) -> None:
    found = list(rows[0]) if rows else []
    missing = [c for c in columns if c not in found]
    if missing:
        raise ValueError(f"{path}: missing column(s) {missing}; found {found or 'no rows'}")


def read_road(path: Path) -> list[RoadEdit]:
    rows = read_rows(path)
    require_columns(rows, ["Type", "Prompt", "Old", "New", "Positive1", "Positive_old1", "Positive_new1",
                    "Negative1", "Negative_new1"], path)
    edits = []
    for r in rows:
        pos = tuple((r[f"Positive{i}"], r[f"Positive_old{i}"], r[f"Positive_new{i}"])
                    for i in range(1, 6) if r.get(f"Positive{i}"))
        neg = tuple((r[f"Negative{i}"], r[f"Negative_new{i}"])
                    for i in range(1, 6) if r.get(f"Negative{i}"))
        edits.append(RoadEdit(r["Type"], r["Prompt"], r.get("Oracle", ""), r["Old"], r["New"],
                              pos, neg))
    return edits


def read_timed(path: Path) -> list[TimedEdit]:
    rows = read_rows(path)
    require_columns(rows, ["old", "new", "positive1", "gt1", "negative1", "gn1"], path)
    return [TimedEdit(r["old"], r["new"],
                      tuple((r[f"positive{i}"], r[f"gt{i}"]) for i in range(1, 6)),
                      tuple((r[f"negative{i}"], r[f"gn{i}"]) for i in range(1, 6)))
            for r in rows]


def read_timed_gender(path: Path) -> list[TimedEdit]:
    """TIME's gender set: old/new plus validation and ex1-5 prompts (kept as positives)."""
    rows = read_rows(path)
    require_columns(rows, ["old", "new", "validation", "ex1"], path)
    return [TimedEdit(r["old"], r["new"],
                      tuple((r[k], "") for k in ["validation"] + [f"ex{i}" for i in range(1, 6)]),
                      ()) for r in rows]


def read_gender_bias(path: Path) -> list[PromptRow]:
    rows = read_rows(path)
    require_columns(rows, ["profession", "validation", "ex1"], path)
    prompt_cols = [c for c in rows[0] if c == "validation" or c.startswith("ex")]
    return [PromptRow(i, r[c], i, r["profession"]) for i, r in enumerate(rows) for c in prompt_cols]


def read_prompts(path: Path, fmt: str) -> list[PromptRow]:
    rows = read_rows(path)
    group = {"professions": "profession", "i2p": "categories", "coco": "source"}[fmt]
    require_columns(rows, ["prompt", "evaluation_seed", "case_number", group], path)
    return [PromptRow(int(r["case_number"]), r["prompt"], int(float(r["evaluation_seed"])),
                      r[group], float(r["evaluation_guidance"]) if r.get("evaluation_guidance")
                      else None)
            for r in rows]


def load(ref: str) -> list:
    """Read any dataset reference into its typed records."""
    fmt, path = locate(ref)
    if fmt == "road":
        return read_road(path)
    if fmt == "timed":
        return read_timed(path)
    if fmt == "timed_gender":
        return read_timed_gender(path)
    if fmt == "gender_bias":
        return read_gender_bias(path)
    return read_prompts(path, fmt)
