"""DoRA: LoRA with a learned magnitude per output (peft `use_dora=True`); Prodigy by default."""

from __future__ import annotations

from robust_edit.finetune import lora

USE_DORA = True


def prepare(pipe, family, cfg):
    return lora.prepare(pipe, family, cfg, use_dora=USE_DORA)


def expected_trainable(pipe, family, cfg) -> int:
    return lora.expected_trainable(pipe, family, cfg, use_dora=USE_DORA)


prior, finish, load = lora.prior, lora.finish, lora.load
