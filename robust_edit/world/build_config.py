"""BuildConfig: the settings of `robust-edit world build` (seeds, data sizes, steps, rates)."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class BuildConfig:
    seed: int = 0
    n_images: int = 30000
    vae_steps: int = 1500
    vae_batch: int = 32
    vae_lr: float = 1e-3
    diffusion_steps: int = 2100
    diffusion_batch: int = 128
    diffusion_lr: float = 1e-3
    caption_dropout: float = 0.1
    snr_gamma: float = 5.0  # min-SNR loss weighting: converges faster on structure (shape)
    offset_noise: float = 0.05  # lets the model move an image's global colour (backgrounds)
    ema_decay: float = 0.999
    # Share of training captions whose states from the first EOS on are replaced by the
    # empty caption's (see train_diffusion).
    padding_dropout: float = 0.9
    # Profession calibration (calibrate_professions): rounds after the first measurement,
    # and generated images per profession per measurement.
    calibration_rounds: int = 5
    calibration_images: int = 240
    scorer_images: int = 40000
    scorer_steps: int = 1500
    scorer_batch: int = 256
    scorer_lr: float = 1e-3
    threads: int = 2
