"""How the world's own checks (evaluation, calibration, fine-tune reports, tests,
benchmarks) sample the world's models: its guidance scale, true classifier-free guidance for
its FLUX, batches of 128. (Not in vocab, which the CLI imports at start-up: this imports
torch.)"""

from __future__ import annotations

from robust_edit.generate import GenerationSettings
from robust_edit.world import vocab as V


def world_sampling(**overrides) -> GenerationSettings:
    """The world's GenerationSettings; `overrides`: any field (steps, batch_size, precision)."""
    return GenerationSettings(**{"guidance": V.GUIDANCE, "true_cfg": V.TRUE_CFG, "batch_size": 128,
                                 **overrides})
