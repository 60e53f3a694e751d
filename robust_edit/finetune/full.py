"""Full-size fine-tuning: every parameter of the denoiser and/or the text encoder(s), AdamW."""

from __future__ import annotations

from pathlib import Path

import torch

from robust_edit.models import Family


def components(pipe, family: Family, targets: str) -> dict[str, torch.nn.Module]:
    """The pipeline components `targets` names ("unet"/"text_encoder"/"both")."""
    names = []
    if targets in ("unet", "both"):
        names.append(family.denoiser)
    if targets in ("text_encoder", "both"):
        names += [n for n in family.text_encoders if getattr(pipe, n, None) is not None]
    return {n: getattr(pipe, n) for n in names}


def freeze_all(pipe) -> None:
    for name in ("vae", "unet", "transformer", "text_encoder", "text_encoder_2", "text_encoder_3"):
        module = getattr(pipe, name, None)
        if isinstance(module, torch.nn.Module):
            module.requires_grad_(False)


def prepare(pipe, family: Family, cfg) -> dict[str, torch.nn.Parameter]:
    """Unfreeze the targeted components; {"<component>.<param>": parameter}."""
    freeze_all(pipe)
    params = {}
    for comp, module in components(pipe, family, cfg.targets).items():
        module.requires_grad_(True)
        module.train()
        params.update({f"{comp}.{n}": p for n, p in module.named_parameters()})
    return params


def prior(pipe, cfg, cache_dir: Path, model_hash: str) -> None:
    return None


def finish(pipe, family: Family, cfg, out) -> dict:
    """Save the fine-tuned pipeline (`save_pretrained`, safetensors) under out/pipeline."""
    for module in components(pipe, family, cfg.targets).values():
        module.eval()
    pipe.save_pretrained(out / "pipeline", safe_serialization=True)
    return {"pipeline": "pipeline"}


def load(run_dir: Path, base, device: str | None):
    """The saved pipeline folder: the base model is not needed."""
    from robust_edit.models import load_pipeline

    return load_pipeline(str(run_dir / "pipeline"), device=device)
