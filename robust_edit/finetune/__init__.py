"""Fine-tuning methods, registered by name, sharing one training loop (loop.py).

`run(config, model, out)` fine-tunes a base model, or a base model plus an edit artifact
(that is `M_ed_ft`), writes checkpoints every N steps, resumes after interruption, and
ends with the method's output (a pipeline folder, or LoRA/DoRA adapters) and a manifest.
Adding a method is one module implementing FinetuneMethod plus its entry in METHODS.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from pathlib import Path
from typing import Protocol

import numpy as np
import torch

from robust_edit import resolve
from robust_edit.atomic import write_atomic
from robust_edit.config import FinetuneConfig
from robust_edit.finetune import dora, dreambooth, full, loop, lora
from robust_edit.models import Family


class FinetuneMethod(Protocol):
    def prepare(self, pipe, family: Family, cfg: FinetuneConfig) -> dict[str, torch.nn.Parameter]:
        """Freeze the pipeline, then unfreeze or add what trains: {name: parameter}."""

    def prior(self, pipe, cfg: FinetuneConfig, cache_dir: Path, model_hash: str
              ) -> tuple[np.ndarray, list[str]] | None:
        """Extra (images, captions) trained beside the dataset's, weighted by
        cfg.prior_loss_weight (DreamBooth's class images), or None."""

    def finish(self, pipe, family: Family, cfg: FinetuneConfig, out: Path) -> dict:
        """Save the trained result under `out`; {kind: relative path} for the manifest."""

    def load(self, run_dir: Path, base: Callable[[], object], device: str | None):
        """The trained model as a pipeline; `base()` loads the base model (plus its edit)."""


METHODS: dict[str, FinetuneMethod] = {"full": full, "dreambooth": dreambooth, "lora": lora,
                                      "dora": dora}
MANIFEST = "manifest.json"


def resolution(pipe) -> int:
    denoiser = getattr(pipe, "unet", None)
    if denoiser is not None:
        return denoiser.config.sample_size * pipe.vae_scale_factor
    return pipe.default_sample_size * pipe.vae_scale_factor


def run(cfg: FinetuneConfig, model_ref: str, out: Path, *, edit_artifact: Path | None = None,
        cache_dir: Path | None = None, progress: bool = True, stop_after: int | None = None,
        on_checkpoint=None) -> dict:
    """Fine-tune and return the run manifest (also written to out/manifest.json).
    `on_checkpoint(step, folder)` is called after each checkpoint is written."""
    from robust_edit.edit.artifact import EditArtifact, base_hash
    from robust_edit.finetune.data import check as check_data
    from robust_edit.finetune.data import load as load_data
    from robust_edit.models import family_of, load_pipeline
    from robust_edit.provenance import git_commit, package_versions

    check_data(cfg.dataset)
    cfg = resolve.finetune(cfg)
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    if (out / MANIFEST).exists():
        done = json.loads((out / MANIFEST).read_text())
        if done["config"] != cfg.model_dump(mode="json") or done["base_model"]["ref"] != model_ref:
            raise ValueError(f"{out} holds a different fine-tuning run ({done['method']} of "
                             f"{done['base_model']['ref']}); use another output folder")
        if done["status"] == "complete":
            return done
    family = family_of(model_ref)
    pipe = load_pipeline(model_ref)
    base = {"ref": model_ref, "hash": base_hash(pipe)}
    edit = None
    if edit_artifact is not None:
        artifact = EditArtifact.load(edit_artifact)
        artifact.apply(pipe)
        edit = {"path": str(edit_artifact), "method": artifact.manifest["method"],
                "task": artifact.manifest["task"], "hash": base_hash(pipe)}
    data = load_data(cfg.dataset, resolution(pipe))
    captions = [cfg.instance_prompt] * len(data) if cfg.instance_prompt else data.captions
    method = METHODS[cfg.method]
    prior = method.prior(pipe, cfg, cache_dir or out / "cache", (edit or base)["hash"])
    if prior is not None:
        prior = (loop.encode_latents(pipe, prior[0]), prior[1])
    torch.manual_seed(cfg.seed)  # adapter initialisation draws from the global generator
    params = method.prepare(pipe, family, cfg)
    n_trainable = sum(p.numel() for p in params.values())
    if progress:
        print(f"{cfg.method}: {n_trainable:,} trainable parameters "
              f"({cfg.targets}, {cfg.optimizer}, lr {cfg.lr})", flush=True)
    manifest = {
        "method": cfg.method, "config": cfg.model_dump(mode="json"),
        "targets": cfg.targets, "optimizer": cfg.optimizer, "lr": cfg.lr,
        "dataset": {"id": data.dataset_id, "hash": data.content_hash, "size": len(data)},
        "seed": cfg.seed, "base_model": base, "edit": edit, "trainable_parameters": n_trainable,
        "versions": package_versions(), "git_commit": git_commit(), "status": "running",
    }
    write_atomic(out / MANIFEST, json.dumps(manifest, indent=2, default=str))
    t0 = time.time()
    latents = loop.encode_latents(pipe, data.images)
    losses = loop.train(pipe, family, params, cfg, latents, captions, out, prior=prior,
                        progress=progress, stop_after=stop_after, on_checkpoint=on_checkpoint)
    manifest.update(seconds_this_session=round(time.time() - t0, 2),
                    checkpoints=loop.completed_checkpoints(out), losses=losses)
    if len(losses) >= cfg.steps:
        manifest.update(status="complete", outputs=method.finish(pipe, family, cfg, out))
    write_atomic(out / MANIFEST, json.dumps(manifest, indent=2, default=str))
    return manifest


def load_variant(run_dir: Path, step: int | None = None, device: str | None = None):
    """The fine-tuned model of a run as a pipeline: final output, or checkpoint `step`."""
    from robust_edit.edit.artifact import EditArtifact
    from robust_edit.models import family_of, load_pipeline

    run_dir = Path(run_dir)
    manifest = json.loads((run_dir / MANIFEST).read_text())
    cfg = FinetuneConfig.model_validate(manifest["config"])
    ref = manifest["base_model"]["ref"]

    def base():
        pipe = load_pipeline(ref, device=device)
        if manifest["edit"]:
            EditArtifact.load(Path(manifest["edit"]["path"])).apply(pipe)
        return pipe

    if step is None:
        return METHODS[cfg.method].load(run_dir, base, device)
    pipe = base()
    family = family_of(ref)
    params = METHODS[cfg.method].prepare(pipe, family, cfg)
    loop.load_trainable(loop.checkpoint_dir(run_dir, step), params)
    for module in (getattr(pipe, n, None) for n in ("unet", "transformer", "text_encoder", "text_encoder_2")):
        if isinstance(module, torch.nn.Module):
            module.eval().requires_grad_(False)
    return pipe
