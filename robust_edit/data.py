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
# Public origins pinned to a commit (never a moving branch), each file with its sha256:
# a fetched or local copy whose content differs is refused, and the sha256 is part of
# every stage key that reads the dataset (robust_edit.pipeline.graph).
_UCE = ("https://raw.githubusercontent.com/rohitgandikota/unified-concept-editing/"
        "28c81ed5a3e41277c1a0dc55f738e7ab188e9718/data/")
_ROAD = "https://raw.githubusercontent.com/technion-cs-nlp/ReFACT/8b6df79070565fd1f330664d3590c6908844cdae/road/"
_TIME = "https://raw.githubusercontent.com/bahjat-kawar/time-diffusion/1d6784a3a46c08716412c0800dd7d18474ef92be/"


@dataclass(frozen=True)
class RealDataset:
    format: str
    path: str  # relative to the shared data folder and to the cache
    url: str
    sha256: str


REAL_DATASETS = {
    "road:test": RealDataset("road", "road/RoAD_test.csv", _ROAD + "RoAD_test.csv",
                             "356a051e2e878454ff25deb1137ab7e602cc35e7b997c51793d849f64bdd976e"),
    "road:validation": RealDataset("road", "road/RoAD_validation.csv", _ROAD + "RoAD_validation.csv",
                                   "cff99b2df07eb22daa18a60697e9e3197b812884e176dcee5c2bb836e6d315e2"),
    "timed:test": RealDataset("timed", "time/TIMED_test_set.csv", _TIME + "TIMED_test_set.csv",
                              "6ce405099d1b7e807349dab91f8f7637bffcbd61bd200cb8771793df7ed862a0"),
    "timed:test-sd14": RealDataset("timed", "time/TIMED_test_set_filtered_SD14.csv",
                                   _TIME + "TIMED_test_set_filtered_SD14.csv",
                                   "4cfe995465e78504a724b99a261525f29713f7dadfcb6a7ceb89865f85fd325c"),
    "timed:validation": RealDataset("timed", "time/TIMED_validation_set.csv",
                                    _TIME + "TIMED_validation_set.csv",
                                    "d227e968ad4b04057fcd1b025adbbe7761f2b054c83f4269f785dccb7ea248c9"),
    "timed:gender": RealDataset("timed_gender", "time/TIMED_gender_test_set.csv",
                                _TIME + "TIMED_gender_test_set.csv",
                                "edb465c13ade4f46665cb968eb98ec7372fa5a51fa4662ccf111c388eb50fdcd"),
    "uce:professions": RealDataset("professions", "uce/profession_prompts.csv",
                                   _UCE + "profession_prompts.csv",
                                   "d09548502888792daa6cc86fe157836f83cfdf12ac646231b305705a7c8534fb"),
    "uce:professions-train": RealDataset("professions", "uce/train_profession_prompts.csv",
                                         _UCE + "train_profession_prompts.csv",
                                         "b99f1fc631c1d336e95d74f49c55cb7fbe6b901287bef376471ffa107beb87ca"),
    "uce:professions-test": RealDataset("professions", "uce/test_profession_prompts.csv",
                                        _UCE + "test_profession_prompts.csv",
                                        "04c5006c66bf9c9097d5c0719ce35997136e02b29f32c1b5f6560e82ce8161c8"),
    "uce:gender-bias": RealDataset("gender_bias", "uce/gender_bias.csv", _UCE + "gender_bias.csv",
                                   "817d659fa50481c76c8fcacc4198634f333dd6633a4528162ed979852c7c399a"),
    "i2p": RealDataset("i2p", "uce/unsafe-prompts4703.csv", _UCE + "unsafe-prompts4703.csv",
                       "6c1821aeeb20beb276b4e20ce4c4b801f9106dc935bafc9f6fd5e12aa2651e6f"),
    "coco30k": RealDataset("coco", "uce/coco_30k.csv", _UCE + "coco_30k.csv",
                           "87a3f463164120ca2d1efdbc251f443c7b0043214f767cd1852419d295db9ab5"),
}


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
