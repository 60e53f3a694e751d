"""LoRA through peft: adapters on the family's text-encoder attention projections (the
study's choice) and/or the denoiser's attention projections; saved in the diffusers LoRA
format, loadable onto a base pipeline with `load_lora_weights` and mergeable with
`fuse_lora`."""

from __future__ import annotations

from pathlib import Path

import torch

from robust_edit.finetune.full import components, freeze_all
from robust_edit.models import Family

USE_DORA = False


def lora_config(family: Family, cfg, component: str, use_dora: bool):
    from peft import LoraConfig

    targets = (family.lora_denoiser_targets if component == family.denoiser
               else family.lora_text_targets)
    return LoraConfig(r=cfg.rank, lora_alpha=cfg.alpha, init_lora_weights="gaussian",
                      target_modules=list(targets), use_dora=use_dora)


def prepare(pipe, family: Family, cfg, use_dora: bool = USE_DORA) -> dict[str, torch.nn.Parameter]:
    """Freeze everything, add one adapter per targeted component; {name: trainable param}."""
    freeze_all(pipe)
    params = {}
    for comp, module in components(pipe, family, cfg.targets).items():
        module.add_adapter(lora_config(family, cfg, comp, use_dora))
        module.train()
        params.update({f"{comp}.{n}": p for n, p in module.named_parameters() if p.requires_grad})
    return params


def expected_trainable(pipe, family: Family, cfg, use_dora: bool = USE_DORA) -> int:
    """r (d_in + d_out) per targeted Linear, plus d_out magnitudes per module for DoRA."""
    total = 0
    for comp, module in components(pipe, family, cfg.targets).items():
        targets = (family.lora_denoiser_targets if comp == family.denoiser
                   else family.lora_text_targets)
        for name, m in module.named_modules():
            if isinstance(m, torch.nn.Linear) and any(
                    name == t or name.endswith("." + t) for t in targets):
                total += cfg.rank * (m.in_features + m.out_features) + (m.out_features if use_dora else 0)
    return total


def prior(pipe, cfg, cache_dir: Path, model_hash: str) -> None:
    return None


def finish(pipe, family: Family, cfg, out) -> dict:
    """Save the adapters in diffusers' LoRA format under out/lora."""
    from diffusers.utils import convert_state_dict_to_diffusers
    from peft.utils import get_peft_model_state_dict

    layers = {}
    for comp, module in components(pipe, family, cfg.targets).items():
        module.eval()
        state = get_peft_model_state_dict(module)
        # peft drops DoRA magnitudes' ".weight"; diffusers' loader (transformers 5 path)
        # expects it back, else the magnitudes load as missing.
        state = {k + ".weight" if k.endswith("lora_magnitude_vector") else k: v for k, v in state.items()}
        layers[f"{comp}_lora_layers"] = convert_state_dict_to_diffusers(state)
    type(pipe).save_lora_weights(out / "lora", **layers, safe_serialization=True)
    return {"lora": "lora"}


def load(run_dir: Path, base, device: str | None):
    """The base model (plus its edit) with the adapters loaded and merged."""
    pipe = base()
    pipe.load_lora_weights(str(run_dir / "lora"))
    pipe.fuse_lora()
    return pipe
