"""`robust-edit world build`: train the embedded world from scratch, deterministically.

Stages, in order, for each model (`sd`, a StableDiffusionPipeline; `sdxl`, a
StableDiffusionXLPipeline with two text encoders and SDXL's added conditioning; `flux`, a
FluxPipeline with CLIP + T5 encoders and a flow-matching transformer): render the training
set; train the VAE; pre-encode latents; train the text encoders and the denoiser jointly
(noise prediction or flow matching, caption dropout, EMA). Then train the scorer (multi-positive
contrastive); calibrate each model's professions' attribute rates by measurement with the
scorer; save everything in its library's own format.

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
from robust_edit.world.architectures import CLIP_LENGTH, noise_scheduler_config
from robust_edit.world.build_config import BuildConfig, Schedule
from robust_edit.world.calibration import calibrate_professions, calibration_encoders
from robust_edit.world.training import (
    encode_latents,
    render_training_set,
    train_diffusion,
    train_scorer,
    train_vae,
)

QUICK = BuildConfig(n_images=256, vae=Schedule(steps=3, batch=8), diffusion=Schedule(steps=3, batch=8),
                    flux_diffusion=Schedule(steps=3, batch=8),
                    calibration_rounds=1, calibration_images=5,
                    scorer_images=256, scorer=Schedule(steps=3, batch=16))


MODELS = ("sd", "sdxl", "flux")


def train_pipeline(cfg: BuildConfig, model: str):
    """Render, train the VAE, encode latents and train the text encoders + denoiser of one
    world model; returns its pipeline and the minutes per part."""
    from diffusers import (
        DDIMScheduler,
        EulerDiscreteScheduler,
        FlowMatchEulerDiscreteScheduler,
        FluxPipeline,
        StableDiffusionPipeline,
        StableDiffusionXLPipeline,
    )

    from robust_edit.world.tokenizer import clip_tokenizer, t5_tokenizer

    torch.manual_seed(cfg.seed)  # each model's training starts from the same state
    t0 = time.time()
    images, captions, _ = render_training_set(cfg)
    tokenizers = [clip_tokenizer(CLIP_LENGTH[model])] + ([t5_tokenizer()] if model == "flux" else [])
    ids = [tok(captions + [""], padding="max_length", max_length=tok.model_max_length,
               truncation=True, return_tensors="pt").input_ids for tok in tokenizers]
    input_ids, empty_ids = [x[:-1] for x in ids], [x[-1] for x in ids]
    vae = train_vae(images, cfg)
    minutes = {"vae": (time.time() - t0) / 60}
    latents = encode_latents(vae, images)
    if model == "flux":  # FLUX's VAE shifts its latents before scaling them
        vae.register_to_config(shift_factor=float(latents.mean()))
        latents = latents - vae.config.shift_factor
    vae.register_to_config(scaling_factor=float(1.0 / latents.std()))
    latents = latents * vae.config.scaling_factor
    t1 = time.time()
    encoders, denoiser = train_diffusion(latents, input_ids, empty_ids, cfg, model=model,
                                         t5_vocab_size=len(tokenizers[-1]))
    minutes["text_encoder_" + ("transformer" if model == "flux" else "unet")] = (time.time() - t1) / 60
    tok = tokenizers[0]
    if model == "sd":
        return StableDiffusionPipeline(
            vae=vae, text_encoder=encoders[0], tokenizer=tok, unet=denoiser,
            scheduler=DDIMScheduler(**noise_scheduler_config(), set_alpha_to_one=False),
            safety_checker=None, feature_extractor=None, requires_safety_checker=False), minutes
    if model == "flux":
        # FLUX.1-schnell's sampler: flow-matching Euler, no resolution-dependent shift.
        return FluxPipeline(
            vae=vae, text_encoder=encoders[0], tokenizer=tok, text_encoder_2=encoders[1],
            tokenizer_2=tokenizers[1], transformer=denoiser,
            scheduler=FlowMatchEulerDiscreteScheduler(shift=1.0, use_dynamic_shifting=False)), minutes
    # SDXL's own sampler (Euler, "leading" spacing). The unconditional branch is the empty
    # prompt's encoding, as the world was trained with caption dropout, not SDXL's zeros.
    return StableDiffusionXLPipeline(
        vae=vae, text_encoder=encoders[0], text_encoder_2=encoders[1], tokenizer=tok, tokenizer_2=tok,
        unet=denoiser, scheduler=EulerDiscreteScheduler.from_config(
            noise_scheduler_config(), timestep_spacing="leading"),
        force_zeros_for_empty_prompt=False, add_watermarker=False), minutes


def build(out: Path, cfg: BuildConfig = BuildConfig(), *, only: str | None = None) -> dict:  # noqa: B008
    """Train and save the world under `out` (`out/sd`, `out/sdxl`, `out/flux`, `out/scorer`); returns the
    build record. `only`: one model, the scorer, or "calibrate" (every built model's professions, again
    from the trained rows where a calibration is recorded)."""
    from robust_edit.models import load_pipeline
    from robust_edit.provenance import package_versions

    if only in (*MODELS, "calibrate") and not (out / "scorer").is_dir():
        raise FileNotFoundError(f"a model's calibration measures with the world scorer, not "
                                f"found at {out / 'scorer'}: build it first (--only scorer)")
    torch.set_num_threads(cfg.threads)
    torch.manual_seed(cfg.seed)
    t0 = time.time()
    minutes: dict[str, dict] = {}
    models = [m for m in MODELS if only in (None, m)]
    # The scorer trains right after sd, from the torch state sd's training leaves, as it
    # did when the world had one model (so that build still reproduces the shipped scorer).
    for part in [p for p in ("sd", "scorer", "sdxl", "flux") if only in (None, p)]:
        t2 = time.time()
        if part == "scorer":
            world_scorer.save(train_scorer(cfg), out / "scorer")
            minutes["scorer"] = {"scorer": (time.time() - t2) / 60}
        else:
            pipe, minutes[part] = train_pipeline(cfg, part)
            pipe.to(torch.float16).save_pretrained(out / part, safe_serialization=True)
    path = out / "build.json"
    records = json.loads(path.read_text()) if only and path.exists() else {}
    calibrations = {}
    if only == "calibrate":  # every built model, to the designed rates (vocab.PROFESSIONS)
        models = [m for m in MODELS if m in records]
        if not models:
            raise FileNotFoundError(f"no model record in {path}: build a model first (--only sd)")
        minutes.update({m: {} for m in models})
    for model in models:
        t3 = time.time()
        pipe = load_pipeline(str(out / model), device="cpu")
        # A recalibration starts from the trained rows and the previous offsets.
        previous = records[model].get("calibration", {}).get("offsets") if only == "calibrate" else None
        calibrations[model] = calibrate_professions(pipe, world_scorer.WorldScorer(out / "scorer"), cfg,
                                                    start=previous)
        # Only the text encoders changed; re-saving the pipeline would stamp local paths into
        # the other components' configs.
        for name in calibration_encoders(pipe):
            getattr(pipe, name).to(torch.float16).save_pretrained(out / model / name)
        minutes[model]["calibration"] = (time.time() - t3) / 60
    for part in minutes.values():
        part["total"] = sum(part.values())
    versions = package_versions()
    # A partial rebuild (--only) keeps the other models' records; calibration is part of a model's.
    if only == "calibrate":
        for model in models:
            parts = records[model]["minutes"]
            parts["calibration"] = minutes[model]["calibration"]
            parts["total"] = sum(v for k, v in parts.items() if k != "total")
            records[model]["config"].update({k: v for k, v in asdict(cfg).items() if k.startswith("calibration")})
    else:
        records.update({name: {"config": asdict(cfg), "minutes": m, "versions": versions}
                        for name, m in minutes.items()})
    for model, calibration in calibrations.items():
        records[model]["calibration"] = calibration
    write_atomic(path, json.dumps(records, indent=2))
    return {"minutes": {**minutes, "total": (time.time() - t0) / 60}, "config": asdict(cfg),
            "versions": versions}


def quick_config(**overrides) -> BuildConfig:
    return replace(QUICK, **overrides)
