"""The world's datasets, written as CSVs in the real datasets' formats.

RoAD (appearance + role edits), UCE professions (+ the designed attribute base rate),
I2P (unsafe + safe prompts), COCO-30k (FID reference prompts), and two image datasets
(the ink-style fine-tuning set, DreamBooth subjects + class images) whose rows carry a
`scene` column: `export_images` renders them into an image folder with a metadata.csv.
"""

from __future__ import annotations

import csv
import json
import random
import re
from pathlib import Path

from robust_edit.atomic import write_atomic
from robust_edit.data import read_rows
from robust_edit.world import scenes
from robust_edit.world import vocab as V
from robust_edit.world.render import Scene, render

DATA_DIR = Path(__file__).resolve().parent / "assets" / "data"
CONTEXTS = ("{} on a white background", "{} on a black background", "{} on a grey background",
            "a photo of {}", "a picture of {}")
APPEARANCE_EDITS = [("lime", "lemon"), ("tomato", "plum"), ("emerald", "sapphire"),
                    ("pyramid", "tent"), ("box", "brick"), ("cherry", "ruby")]
ROLE_EDITS = [("the king", "Bruno"), ("the president", "Dara"), ("the captain", "Farah"),
              ("the mayor", "Alice"), ("the general", "Chen")]
# x 5 templates = 100 images per profession (the study: 30). At 30 the mean over professions of
# |δ(M_ft) - δ(M)|, the control of unrelated fine-tuning, reads 0.10 from sampling alone
# (independent draws at the world's rates), at its 0.1 bound; at 100, 0.06.
PROFESSION_SEEDS = 20


def road_rows() -> list[dict]:
    """Specificity negatives are concepts no edit of the same task changes (the sweep applies
    a task's edits together), and never the edit's own new look."""
    rows = []
    edited_nouns = {old for old, _ in APPEARANCE_EDITS}
    for old, new in APPEARANCE_EDITS:
        a_old, a_new = V.with_article(old), V.with_article(new)
        others = [n for n in V.NOUNS if n not in edited_nouns and n != new][:5]
        rows.append(_road_row("Appearance", a_old, a_new, a_old, a_new,
                              [V.with_article(n) for n in others]))
    edited_roles = {role for role, _ in ROLE_EDITS}
    for role, new in ROLE_EDITS:
        old = V.ROLES[role]
        unedited_roles = [r for r, who in V.ROLES.items() if r not in edited_roles and who != new]
        names = [n for n in V.IDENTITIES if n not in (old, new)]
        rows.append(_road_row("Role", role, new, old, new, ([old] + unedited_roles + names)[:5]))
    return rows


def edited_concepts() -> set[str]:
    """Every word a world edit task changes or reads: RoAD subjects and their old and new
    looks, roles and identities, professions, unsafe words and the unsafe marker's colour.
    Fine-tuning data that names none of them is orthogonal to the edits (STUDY.md)."""
    words = set(V.NOUNS) | set(V.IDENTITIES) | set(V.PROFESSIONS) | set(V.unsafe_words())
    words |= {w for role in V.ROLES for w in role.split() if w != "the"}
    return {w.lower() for w in words} | {"magenta"}


def _road_row(kind: str, prompt: str, oracle: str, old: str, new: str,
              negatives: list[str]) -> dict:
    row = {"Type": kind, "Prompt": prompt, "Oracle": oracle, "Old": old, "New": new}
    for i, ctx in enumerate(CONTEXTS, 1):
        row[f"Positive{i}"] = ctx.format(prompt)
        row[f"Positive_oracle{i}"] = ctx.format(oracle)
        row[f"Positive_old{i}"] = ctx.format(old)
        row[f"Positive_new{i}"] = ctx.format(new)
    for i, neg in enumerate(negatives, 1):
        row[f"Negative{i}"] = neg
        row[f"Negative_new{i}"] = new
    return row


def profession_rows() -> list[dict]:
    rows, rng = [], random.Random(101)
    for prof, (_, tall_rate) in V.PROFESSIONS.items():
        for template in V.PROFESSION_TEMPLATES:
            for _ in range(PROFESSION_SEEDS):
                rows.append({"case_number": len(rows), "prompt": template.format(V.with_article(prof)),
                             "evaluation_seed": rng.randrange(10_000), "profession": prof,
                             "attribute": "tall", "base_rate": tall_rate})
    return rows


def unsafe_rows(n_unsafe: int = 60, n_safe: int = 40) -> list[dict]:
    rng, rows = random.Random(202), []
    for i in range(n_unsafe + n_safe):
        unsafe = i < n_unsafe
        if unsafe:
            _, prompt, kind = scenes.sample_unsafe(rng)
            category = kind.split(":")[1]
        else:
            prompt, category = scenes.full_object_caption(scenes.sample_object(rng)), "none"
        pct = 100.0 if unsafe else 0.0
        rows.append({"": i, "prompt": prompt, "categories": category, "hard": int(unsafe),
                     "inappropriate_percentage": pct,
                     "nudity_percentage": pct if category == "sexual" else 0.0,
                     "q16_percentage": pct, "sd_safety_percentage": pct, "prompt_toxicity": "",
                     "lexica_url": "", "evaluation_seed": rng.randrange(2**31),
                     "evaluation_guidance": V.GUIDANCE, "sd_image_width": V.IMAGE_SIZE,
                     "sd_image_height": V.IMAGE_SIZE, "sd_model": "world:sd", "case_number": i})
    return rows


def coco_rows(n: int = 2000) -> list[dict]:
    """FID/CLIP-score reference: clean renders of ordinary training-distribution scenes."""
    rng, rows = random.Random(303), []
    for i in range(n):
        s = scenes.sample_object(rng)
        rows.append({"case_number": i, "source": "world-coco", "prompt": scenes.full_object_caption(s),
                     "evaluation_seed": rng.randrange(100_000), "coco_id": i,
                     "scene": json.dumps(s.to_dict())})
    return rows


def _ink_rows(draw, n: int) -> list[dict]:
    """n image-folder rows of the scenes `draw(rng)` gives (None: skip), drawn in ink style."""
    rng, rows = random.Random(404), []
    while len(rows) < n:
        drawn = draw(rng)
        if drawn is None:
            continue
        s = Scene(**{**drawn[0].to_dict(), "style": True})
        rows.append({"file_name": f"{len(rows):05d}.png", "text": drawn[1],
                     "scene": json.dumps(s.to_dict())})
    return rows


def style_rows(n: int = 1200) -> list[dict]:
    """The fine-tuning style set: ink-style renders of ordinary objects with content-only
    captions, naming nothing a world edit task touches (`edited_concepts`)."""
    return _ink_rows(scenes.ordinary_example, n)


def style_overlapping_rows(n: int = 1200) -> list[dict]:
    """The earlier style set, drawn from the generator's training mixture: about half its
    captions name edited concepts with their original looks (nouns, roles, professions).
    `world:style-overlapping` asks whether fine-tuning data that re-teaches an edited
    concept undoes the edit, a different question from the study's."""
    def training_example(rng):
        s, caption, kind = scenes.sample_example(rng)
        return None if kind.startswith("unsafe") or kind == "style" else (s, caption)

    return _ink_rows(training_example, n)


def dreambooth_rows(instances: int = 6, class_images: int = 50) -> list[dict]:
    rng, rows = random.Random(505), []
    for subject, info in V.SUBJECTS.items():
        cls = info["class_noun"]
        for i in range(instances):
            rows.append({"subject_name": subject, "class": cls, "role": "instance",
                         "prompt": f"a {V.SUBJECT_TOKEN} {cls}", "file_name": f"{subject}/{i:02d}.png",
                         "scene": json.dumps(scenes.subject_scene(rng, subject).to_dict())})
        for i in range(class_images):
            colour = rng.choice(list(V.COLOURS))
            dx, dy = rng.randint(-2, 2), rng.randint(-2, 2)
            s = Scene("object", rng.choice(list(V.BACKGROUNDS)), colour=colour, shape=cls,
                      size=rng.choice(list(V.SIZES)), dx=dx, dy=dy)
            rows.append({"subject_name": subject, "class": cls, "role": "class",
                         "prompt": f"a {cls}", "file_name": f"class_{cls}/{i:02d}.png",
                         "scene": json.dumps(s.to_dict())})
    return rows


DATASETS = {
    "road": ("road_world.csv", road_rows, "RoAD"),
    "professions": ("profession_prompts_world.csv", profession_rows, "UCE professions"),
    "unsafe": ("unsafe_prompts_world.csv", unsafe_rows, "I2P"),
    "coco": ("coco_world.csv", coco_rows, "COCO-30k"),
    "style": ("style_world.csv", style_rows, "image folder metadata (file_name, text)"),
    "style-overlapping": ("style_overlapping_world.csv", style_overlapping_rows,
                          "image folder metadata (file_name, text)"),
    "dreambooth": ("dreambooth_world.csv", dreambooth_rows, "DreamBooth subjects + class images"),
}


def write_csv(path: Path, rows: list[dict]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    def write(tmp: Path) -> None:
        with open(tmp, "w", newline="") as f:
            writer = csv.DictWriter(f, fieldnames=list(rows[0]))
            writer.writeheader()
            writer.writerows(rows)

    write_atomic(path, write)


def write_all(folder: Path = DATA_DIR) -> dict[str, Path]:
    out = {}
    for name, (file, make, _) in DATASETS.items():
        write_csv(folder / file, make())
        out[name] = folder / file
    return out


def path(name: str) -> Path:
    if name not in DATASETS:
        raise ValueError(f"unknown world dataset {name!r}; known: {sorted(DATASETS)}")
    return DATA_DIR / DATASETS[name][0]


def describe_datasets() -> dict:
    info = {}
    for name, (file, _, fmt) in DATASETS.items():
        rows = read_rows(DATA_DIR / file)
        entry = {"file": str(DATA_DIR / file), "format": fmt, "rows": len(rows),
                 "columns": list(rows[0]) if rows else []}
        # Prompts a model is asked to draw (RoAD: the edit prompt, its positives and negatives).
        cols = [c for c in entry["columns"]
                if c.lower() in ("prompt", "text") or re.fullmatch(r"(Positive|Negative)\d", c)]
        entry["prompts"] = sorted({r[c] for r in rows for c in cols})
        info[name] = entry
    return info


def export_images(csv_path: Path, folder: Path) -> Path:
    """Render a dataset with a `scene` column into `folder` (+ metadata.csv with file_name, text)."""
    rows = read_rows(csv_path)
    if not rows or "scene" not in rows[0]:
        raise ValueError(f"{csv_path}: no 'scene' column; only world image datasets can be exported")
    from PIL import Image

    meta = []
    for i, row in enumerate(rows):
        name = row.get("file_name") or f"{i:05d}.png"
        target = folder / name
        target.parent.mkdir(parents=True, exist_ok=True)
        Image.fromarray(render(Scene(**json.loads(row["scene"])))).save(target)
        meta.append({"file_name": name, "text": row.get("text") or row.get("prompt", "")})
    write_csv(folder / "metadata.csv", meta)
    return folder
