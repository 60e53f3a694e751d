"""Image generation for prompt sets: fixed per-image seeds, batched, with a manifest.

Every image has its own generator seeded from the dataset's `evaluation_seed` (+ j for
the j-th image of a prompt), so an image does not depend on batch size or batch mates.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np
import torch
from tqdm.auto import tqdm

from robust_edit.atomic import claim_output, write_atomic
from robust_edit.config import GenerationConfig
from robust_edit.data import read_rows, require_columns
from robust_edit.models import flux_sequence_length
from robust_edit.provenance import git_commit, package_versions

MANIFEST = "manifest.json"
AUTOCAST = {"fp32": torch.float32, "bf16": torch.bfloat16, "fp16": torch.float16}


@dataclass(frozen=True)
class GenerationSettings:
    steps: int = 25
    guidance: float = 5.0
    batch_size: int = 64
    images_per_prompt: int = 1
    precision: str = "fp32"  # autocast dtype while sampling (GenerationConfig.precision)
    true_cfg: bool = False  # FLUX without a guidance embedding: guide by a negative-prompt pass


def settings_of(generation: GenerationConfig) -> GenerationSettings:
    """The settings a resolved GenerationConfig (robust_edit.resolve) draws with."""
    unresolved = [f"generation.{name} {value!r}" for name, value in
                  (("precision", generation.precision), ("true_cfg", generation.true_cfg))
                  if value in ("auto", None)]
    if unresolved:
        raise ValueError(f"{', '.join(unresolved)}: resolve the config first "
                         "(robust_edit.resolve.generation fills in the data's and this machine's)")
    return GenerationSettings(steps=generation.steps, guidance=generation.guidance,
                              batch_size=generation.batch_size, precision=generation.precision,
                              true_cfg=generation.true_cfg)


def generate_images(pipe, prompts: list[str], seeds: list[int], settings: GenerationSettings,
                    desc: str = "generate") -> np.ndarray:
    """uint8 images (N, H, W, 3) for prompts[i] with seeds[i]."""
    if len(prompts) != len(seeds):
        raise ValueError(f"{len(prompts)} prompts but {len(seeds)} seeds")
    out = []
    device = pipe.device
    extra = flux_sampling(pipe, settings)
    autocast = torch.autocast(device.type, dtype=AUTOCAST[settings.precision],
                              enabled=settings.precision != "fp32")
    for i in tqdm(range(0, len(prompts), settings.batch_size), desc=desc,
                  disable=len(prompts) <= settings.batch_size, mininterval=2):
        batch, batch_seeds = prompts[i:i + settings.batch_size], seeds[i:i + settings.batch_size]
        gens = [torch.Generator(device).manual_seed(int(s)) for s in batch_seeds]
        if "true_cfg_scale" in extra:
            extra["negative_prompt"] = [""] * len(batch)
        with torch.no_grad(), autocast:
            result = pipe(prompt=batch, generator=gens, num_inference_steps=settings.steps,
                          guidance_scale=settings.guidance, output_type="np", **extra)
        out.append((np.clip(result.images, 0, 1) * 255).round().astype(np.uint8))
    return np.concatenate(out) if out else np.zeros((0, 0, 0, 3), np.uint8)


def flux_sampling(pipe, settings: GenerationSettings) -> dict:
    """A FLUX pipeline's extra arguments: prompts encoded at one T5 length everywhere
    (models.flux_sequence_length); with `true_cfg` on a transformer without a guidance
    embedding (whose pipeline ignores guidance_scale), guidance by the empty negative prompt,
    which the world's FLUX learnt through caption dropout."""
    if not hasattr(pipe, "transformer"):
        return {}
    extra: dict = {"max_sequence_length": flux_sequence_length(pipe)}
    if settings.true_cfg and settings.guidance > 1 and not pipe.transformer.config.guidance_embeds:
        extra["true_cfg_scale"] = settings.guidance
    return extra


def read_prompt_csv(path: Path) -> list[dict]:
    """Rows with a prompt and an integer evaluation_seed (and case_number, if given)."""
    rows = read_rows(path)
    require_columns(rows, ["prompt", "evaluation_seed"], path)
    for line, row in enumerate(rows, start=2):
        for column in ("evaluation_seed", "case_number"):
            value = row.get(column)
            if value is not None and not _integer(value):
                raise ValueError(f"{path}: line {line}: {column} {value!r} is not an integer")
    return rows


def _integer(text: str) -> bool:
    try:
        return float(text).is_integer()  # "3" and "3.0" (pandas writes integers so)
    except ValueError:
        return False


def generate_csv(model_ref: str, prompts_csv: Path, out: Path, settings: GenerationSettings,
                 limit: int | None = None, force: bool = False) -> dict:
    """Generate a prompt CSV's images into the folder `out` as PNGs plus manifest.json,
    written whole; an earlier output of this function there is replaced only with `force`.
    Images are named <case_number>_<j>.png (the row's index without that column), as the
    ESD/UCE scripts name them, so they join back to the CSV by that column; a repeated
    case_number is refused rather than two rows' images written to one file."""
    from PIL import Image

    from robust_edit.models import load_pipeline

    rows = read_prompt_csv(prompts_csv)[:limit]
    claim_output(out, MANIFEST, force=force, key="prompts_csv")
    prompts, seeds, names, line_of = [], [], [], {}
    for i, row in enumerate(rows):
        case = row.get("case_number") or i
        stem = f"{int(float(case)):05d}"
        if stem in line_of:
            raise ValueError(f"{prompts_csv}: lines {line_of[stem]} and {i + 2} both have "
                             f"case_number {case}, which names the images ({stem}_<j>.png); "
                             "give each row its own case_number")
        line_of[stem] = i + 2  # the CSV's line: its header is line 1
        for j in range(settings.images_per_prompt):
            prompts.append(row["prompt"])
            seeds.append(int(float(row["evaluation_seed"])) + j)
            names.append(f"{stem}_{j}.png")
    pipe = load_pipeline(model_ref)
    images = generate_images(pipe, prompts, seeds, settings, desc=f"generate {prompts_csv.name}")
    manifest = {
        "model": model_ref, "prompts_csv": str(prompts_csv), "settings": asdict(settings),
        "scheduler": type(pipe.scheduler).__name__, "versions": package_versions(),
        "git_commit": git_commit(),
        "images": [{"prompt": p, "seed": s, "file": n} for p, s, n in zip(prompts, seeds, names)],
    }

    def write(tmp: Path) -> None:
        for name, img in zip(names, images):
            Image.fromarray(img).save(tmp / name)
        (tmp / MANIFEST).write_text(json.dumps(manifest, indent=2))

    write_atomic(out, write, folder=True)
    return manifest
