"""BuildConfig: the settings of `robust-edit world build` (seeds, data sizes, steps, rates)."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Schedule:
    """One training loop's length, batch size and peak learning rate."""

    steps: int
    batch: int
    lr: float = 1e-3


@dataclass(frozen=True)
class BuildConfig:
    seed: int = 0
    n_images: int = 30000
    vae: Schedule = Schedule(steps=1500, batch=32)
    diffusion: Schedule = Schedule(steps=2100, batch=128)  # SD and SDXL
    # FLUX's transformer: the same images seen in twice the updates (batch 64): at batch 128
    # it stayed undertrained (deeper was worse at the same steps; docs/world-findings.md).
    flux_diffusion: Schedule = Schedule(steps=4200, batch=64)
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
    scorer: Schedule = Schedule(steps=1500, batch=256)
    threads: int = 2

    def denoiser_schedule(self, model: str) -> Schedule:
        return self.flux_diffusion if model == "flux" else self.diffusion
