"""`robust-edit world build`: train the embedded world from scratch, deterministically.

Stages, in order: render the training set; train the VAE; pre-encode latents; train the
text encoder and UNet jointly (noise prediction, caption dropout, EMA); train the scorer
(multi-positive contrastive); calibrate the professions' attribute rates by measurement
with the scorer; save everything in its library's own format.

The models' architectures are in architectures.py, the training in training.py, the
calibration in calibration.py; this module runs them in order.
"""

from __future__ import annotations

import json
import time
from dataclasses import asdict, replace
from pathlib import Path

import torch

from robust_edit.atomic import write_atomic
from robust_edit.world import scorer as world_scorer
from robust_edit.world.architectures import noise_scheduler_config
from robust_edit.world.build_config import BuildConfig, Schedule
from robust_edit.world.calibration import calibrate_professions
from robust_edit.world.training import (
    encode_latents,
    render_training_set,
    train_diffusion,
    train_scorer,
    train_vae,
)

QUICK = BuildConfig(n_images=256, vae=Schedule(steps=3, batch=8), diffusion=Schedule(steps=3, batch=8),
                    calibration_rounds=1, calibration_images=5,
                    scorer_images=256, scorer=Schedule(steps=3, batch=16))


def build(out: Path, cfg: BuildConfig = BuildConfig(), *, only: str | None = None) -> dict:  # noqa: B008
    """Train and save the world under `out` (`out/sd`, `out/scorer`); returns the build record."""
    from diffusers import DDIMScheduler, StableDiffusionPipeline

    from robust_edit.models import load_pipeline
    from robust_edit.provenance import package_versions
    from robust_edit.world.tokenizer import clip_tokenizer

    if only in ("sd", "calibrate") and not (out / "scorer").is_dir():
        raise FileNotFoundError(f"the SD model's calibration measures with the world scorer, not "
                                f"found at {out / 'scorer'}: build it first (--only scorer)")
    torch.set_num_threads(cfg.threads)
    torch.manual_seed(cfg.seed)
    t0 = time.time()
    minutes: dict[str, float] = {}
    if only in (None, "sd"):
        images, captions, _ = render_training_set(cfg)
        tok = clip_tokenizer()
        enc = lambda texts: tok(texts, padding="max_length", max_length=77, truncation=True,
                                return_tensors="pt").input_ids
        input_ids, empty_ids = enc(captions), enc([""])[0]
        vae = train_vae(images, cfg)
        minutes["vae"] = (time.time() - t0) / 60
        latents = encode_latents(vae, images)
        vae.register_to_config(scaling_factor=float(1.0 / latents.std()))
        latents = latents * vae.config.scaling_factor
        t1 = time.time()
        text_encoder, unet = train_diffusion(latents, input_ids, empty_ids, cfg)
        minutes["text_encoder_unet"] = (time.time() - t1) / 60
        pipe = StableDiffusionPipeline(
            vae=vae, text_encoder=text_encoder, tokenizer=tok, unet=unet,
            scheduler=DDIMScheduler(**noise_scheduler_config(), set_alpha_to_one=False), safety_checker=None,
            feature_extractor=None, requires_safety_checker=False)
        pipe.to(torch.float16).save_pretrained(out / "sd", safe_serialization=True)
    if only in (None, "scorer"):
        t2 = time.time()
        world_scorer.save(train_scorer(cfg), out / "scorer")
        minutes["scorer"] = (time.time() - t2) / 60
    path = out / "build.json"
    records = json.loads(path.read_text()) if only and path.exists() else {}
    calibration = None
    if only in (None, "sd", "calibrate"):
        if only == "calibrate":
            if "sd" not in records:
                raise FileNotFoundError(f"no sd record in {path}: build the SD model first (--only sd)")
            if "calibration" in records["sd"]:
                raise ValueError(f"{out / 'sd'} is already calibrated (build.json); calibrating "
                                 "twice is not what `world build` does: rebuild with --only sd")
        t3 = time.time()
        pipe = load_pipeline(str(out / "sd"), device="cpu")
        calibration = calibrate_professions(pipe, world_scorer.WorldScorer(out / "scorer"), cfg)
        # Only the text encoder changed; re-saving the pipeline would stamp local paths into
        # the other components' configs.
        pipe.text_encoder.to(torch.float16).save_pretrained(out / "sd" / "text_encoder")
        minutes["calibration"] = (time.time() - t3) / 60
    minutes["total"] = (time.time() - t0) / 60
    record = {"config": asdict(cfg), "minutes": minutes, "versions": package_versions()}
    # A partial rebuild (--only) keeps the other model's record; calibration is part of sd's.
    if only == "calibrate":
        records["sd"]["minutes"]["calibration"] = minutes["calibration"]
        records["sd"]["config"].update({k: v for k, v in asdict(cfg).items() if k.startswith("calibration")})
    else:
        records.update({name: dict(record) for name in (["sd", "scorer"] if only is None else [only])})
    if calibration is not None:
        records["sd"]["calibration"] = calibration
    write_atomic(path, json.dumps(records, indent=2))
    return record


def quick_config(**overrides) -> BuildConfig:
    return replace(QUICK, **overrides)
