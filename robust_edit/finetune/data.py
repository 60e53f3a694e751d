"""Fine-tuning datasets: images + captions, with an id and a content hash.

References:
- `<profile>:<name>` — a set a profile ships (robust_edit.profiles): `world:style`, the
  world's ink-style set, and `world:dreambooth:<subject>`, one DreamBooth subject's instance
  images (`a sks circle`);
- a folder with `metadata.csv` or `metadata.jsonl` (`file_name` + `text`/`caption`/`prompt`),
  the Hugging Face image-folder layout (the DreamBooth repository's folders work with
  one `metadata.csv` beside them);
- `hf:<dataset id>[:split][@revision]` — a Hugging Face image dataset with an image column
  and a text column (e.g. `hf:lambdalabs/naruto-blip-captions`), on machines that can reach
  the hub. A sweep pins it: `pinned` adds the commit it resolves to, so the stage key and the
  data loaded are that revision's.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
from functools import cache
from pathlib import Path

import numpy as np

from robust_edit import extras, profiles

TEXT_COLUMNS = ("text", "caption", "prompt")


@dataclass
class ImageCaptions:
    images: np.ndarray  # uint8 (N, H, W, 3)
    captions: list[str]
    dataset_id: str
    class_prompt: str | None = None  # DreamBooth subjects know their class

    @property
    def content_hash(self) -> str:
        h = hashlib.sha256(np.ascontiguousarray(self.images).tobytes())
        h.update(json.dumps(self.captions).encode())
        return h.hexdigest()[:24]

    def __len__(self) -> int:
        return len(self.captions)


def _fit(img, resolution: int) -> np.ndarray:
    """PIL image -> RGB uint8 at resolution x resolution (resize the short side, centre crop)."""
    from PIL import Image

    img = img.convert("RGB")
    scale = resolution / min(img.size)
    img = img.resize((max(resolution, round(img.width * scale)), max(resolution, round(img.height * scale))),
                     Image.BICUBIC)
    left, top = (img.width - resolution) // 2, (img.height - resolution) // 2
    return np.asarray(img.crop((left, top, left + resolution, top + resolution)), dtype=np.uint8)


def _metadata(path: Path, what: str) -> tuple[list[dict], str]:
    """An image folder's metadata rows and caption column, every image present; errors
    begin with `what` (the folder, or the spec field naming it)."""
    from robust_edit.data import read_rows

    if (path / "metadata.csv").exists():
        rows = read_rows(path / "metadata.csv")
    elif (path / "metadata.jsonl").exists():
        try:
            rows = [json.loads(line) for line in (path / "metadata.jsonl").read_text().splitlines() if line]
        except json.JSONDecodeError as err:
            raise ValueError(f"{what}: metadata.jsonl line {err.lineno}: {err.msg}") from None
    else:
        raise ValueError(f"{what}: no metadata.csv or metadata.jsonl (file_name + text)")
    column = next((c for c in TEXT_COLUMNS if rows and c in rows[0]), None)
    if not rows or "file_name" not in rows[0] or column is None:
        raise ValueError(f"{what}: metadata needs a file_name column and one of {TEXT_COLUMNS}")
    missing = [r["file_name"] for r in rows if not (path / r["file_name"]).is_file()]
    if missing:
        raise ValueError(f"{what}: {len(missing)} image(s) in the metadata are not in the "
                         f"folder, e.g. {missing[0]}")
    return rows, column


def _folder(path: Path, resolution: int) -> ImageCaptions:
    from PIL import Image

    rows, column = _metadata(path, f"dataset {path}")
    images = [_fit(Image.open(path / r["file_name"]), resolution) for r in rows]
    return ImageCaptions(np.stack(images), [r[column] for r in rows], str(path))


def _hub_parts(ref: str) -> tuple[str, str, str | None]:
    """`hf:<id>[:split][@revision]` -> (id, split, revision)."""
    body, _, revision = ref.removeprefix("hf:").partition("@")
    name, _, split = body.partition(":")
    return name, split or "train", revision or None


@cache
def pinned(ref: str) -> str:
    """A `hf:` reference with the commit it resolves to now (unchanged where it has one, or
    where the hub cannot be reached: `check_pinned` refuses it before a sweep runs)."""
    if not ref.startswith("hf:") or _hub_parts(ref)[2]:
        return ref
    from huggingface_hub import HfApi

    try:
        return f"{ref}@{HfApi().dataset_info(_hub_parts(ref)[0], timeout=10).sha}"
    except Exception:  # offline or unknown: stays unpinned
        return ref


def check_pinned(ref: str, field: str) -> None:
    if ref.startswith("hf:") and not _hub_parts(ref)[2]:
        raise ValueError(f"{field} {ref!r}: the hub could not be reached to pin its revision; "
                         f"pin it in the spec as '{ref}@<commit sha>'")


def _hub(ref: str, resolution: int) -> ImageCaptions:
    datasets = extras.require("datasets", f"dataset {ref!r}")

    name, split, revision = _hub_parts(ref)
    ds = datasets.load_dataset(name, split=split, revision=revision)
    column = next((c for c in TEXT_COLUMNS if c in ds.column_names), None)
    if "image" not in ds.column_names or column is None:
        raise ValueError(f"dataset {ref!r}: needs an 'image' column and one of {TEXT_COLUMNS}; "
                         f"has {ds.column_names}")
    return ImageCaptions(np.stack([_fit(x, resolution) for x in ds["image"]]), list(ds[column]), ref)


def check(ref: str, field: str = "dataset", *, folders: bool = True) -> None:
    """What can be known of a dataset reference before any compute: the package it needs is
    installed, the folder it names exists (`folders=False` where the sweep will run on
    another machine: a cluster's mount)."""
    if profiles.owner(ref):
        profiles.check_finetune_dataset(ref, field)
    elif ref.startswith("hf:"):
        extras.check("datasets", f"{field} {ref!r}")
    elif folders and Path(ref).is_dir():
        _metadata(Path(ref), f"{field} {ref!r}")
    elif folders:
        raise ValueError(f"{field} {ref!r}: no such folder here; give an image folder with "
                         "metadata.csv, or 'hf:<dataset id>'")


def load(ref: str, resolution: int) -> ImageCaptions:
    if found := profiles.split(ref):
        profile, name = found
        data = ImageCaptions(**vars(profile.finetune_dataset(name)), dataset_id=ref)
    elif ref.startswith("hf:"):
        data = _hub(ref, resolution)
    elif Path(ref).is_dir():
        data = _folder(Path(ref), resolution)
    else:
        raise ValueError(f"dataset {ref!r}: expected '<profile>:<name>' (e.g. 'world:style'), "
                         "an image folder with metadata.csv, or 'hf:<dataset id>'")
    if data.images.shape[1] != resolution:
        raise ValueError(f"dataset {ref!r}: images are {data.images.shape[1]} px, the model "
                         f"draws {resolution} px")
    return data
