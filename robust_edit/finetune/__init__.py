"""Fine-tuning: methods registered by name, the one training loop they share, and the run.

`run(config, model, out)` fine-tunes a base model, or a base model plus an edit artifact
(that is `M_ed_ft`), writes checkpoints every N steps, resumes after interruption, and
ends with the method's output (a pipeline folder, or LoRA/DoRA adapters) and a manifest.
Adding a method is one module implementing FinetuneMethod plus its entry in METHODS.

The loop (`train`): per step, the seed's data order (a fixed permutation per epoch), noise
and timesteps from one seeded generator, the family's loss (noise prediction on VAE
latents for SD/SDXL, flow matching for FLUX), AdamW or Prodigy, gradient clipping. Every
`checkpoint_every` steps the trainable tensors, the optimizer state and the generator state
are written atomically; a rerun resumes from the last complete checkpoint and ends with
the same weights as an uninterrupted run. Only that last checkpoint is kept while training,
and none once the run is complete (its outputs hold the final model), except the steps a
caller asks to keep (`keep_steps`, e.g. to evaluate the model part-way).
"""

from __future__ import annotations

import json
import shutil
import time
from collections.abc import Callable, Collection
from pathlib import Path
from typing import Protocol

import numpy as np
import torch
import torch.nn.functional as F
from tqdm.auto import tqdm

from robust_edit import resolve
from robust_edit.atomic import claim_output, fsync_tree, write_atomic
from robust_edit.config import FinetuneConfig
from robust_edit.finetune import dora, dreambooth, full, lora
from robust_edit.models import Family, flux_sequence_length


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


# --- training: latents, losses, optimizers, checkpoints ---------------------------

CHECKPOINTS = "checkpoints"
DONE = "COMPLETE"


def images_to_tensor(images: np.ndarray) -> torch.Tensor:
    return torch.from_numpy(np.ascontiguousarray(images)).permute(0, 3, 1, 2).float() / 127.5 - 1.0


@torch.no_grad()
def encode_latents(pipe, images: np.ndarray, batch_size: int = 64) -> torch.Tensor:
    """VAE latent means, scaled (and shifted, FLUX) as the denoiser sees them; computed once."""
    vae = pipe.vae
    out = []
    for i in range(0, len(images), batch_size):
        x = images_to_tensor(images[i:i + batch_size]).to(vae.device, vae.dtype)
        out.append(vae.encode(x).latent_dist.mean.float().cpu())
    z = torch.cat(out)
    shift = getattr(vae.config, "shift_factor", None) or 0.0
    return (z - shift) * vae.config.scaling_factor


def batch_indices(n: int, batch_size: int, step: int, seed: int) -> torch.Tensor:
    """The seed's data order: epoch e is a fixed permutation, the same for every variant."""
    per_epoch = max(n // batch_size, 1)
    epoch, k = divmod(step, per_epoch)
    perm = torch.randperm(n, generator=torch.Generator().manual_seed(seed * 100_003 + epoch))
    idx = perm[k * batch_size:(k + 1) * batch_size]
    return idx if len(idx) == batch_size else perm[:batch_size]


def sd_loss(pipe, family: Family, z: torch.Tensor, captions: list[str], gen: torch.Generator
            ) -> torch.Tensor:
    """Per-example noise-prediction MSE (epsilon or v targets) for SD and SDXL. The noise is
    added as in training (DDPM's forward process on the pipeline scheduler's betas), not by
    the sampling scheduler: SDXL's Euler scheduler adds sigma-scaled noise its UNet never
    reads unscaled (diffusers' SDXL training example does the same)."""
    from diffusers import DDPMScheduler

    sched, device = DDPMScheduler.from_config(pipe.scheduler.config), pipe.unet.device
    noise = torch.randn(z.shape, generator=gen).to(device)
    t = torch.randint(0, sched.config.num_train_timesteps, (len(z),), generator=gen).to(device)
    z = z.to(device)
    noisy = sched.add_noise(z, noise, t)
    kwargs = {}
    if family.name == "sdxl":
        cond, _, pooled, _ = pipe.encode_prompt(captions, device=device, num_images_per_prompt=1,
                                                do_classifier_free_guidance=False)
        size = z.shape[-1] * pipe.vae_scale_factor
        time_ids = torch.tensor([[size, size, 0, 0, size, size]] * len(z), dtype=cond.dtype, device=device)
        kwargs["added_cond_kwargs"] = {"text_embeds": pooled, "time_ids": time_ids}
    else:
        cond, _ = pipe.encode_prompt(captions, device, 1, False)
    pred = pipe.unet(noisy.to(pipe.unet.dtype), t, cond, **kwargs).sample.float()
    target = noise if sched.config.prediction_type == "epsilon" else sched.get_velocity(z, noise, t)
    return F.mse_loss(pred, target.float(), reduction="none").mean(dim=(1, 2, 3))


def flux_loss(pipe, family: Family, z: torch.Tensor, captions: list[str], gen: torch.Generator
              ) -> torch.Tensor:
    """Per-example flow-matching MSE for FLUX, at noise levels s uniform in (0, 1)."""
    device = pipe.transformer.device
    noise = torch.randn(z.shape, generator=gen).to(device)
    s = torch.rand(len(z), generator=gen).to(device)
    cond, pooled, _ = pipe.encode_prompt(captions, prompt_2=None, device=device,
                                         max_sequence_length=flux_sequence_length(pipe))
    return flow_matching_loss(pipe.transformer, z.to(device), noise, s, cond, pooled)


def flow_matching_loss(transformer, z: torch.Tensor, noise: torch.Tensor, s: torch.Tensor,
                       states: torch.Tensor, pooled: torch.Tensor) -> torch.Tensor:
    """Per-example rectified-flow MSE of a FLUX transformer: x_s = (1 - s) z + s noise, the
    velocity noise - z as target, on 2 x 2 patches packed as FluxPipeline packs them; the
    timestep is s, as the pipeline passes sigma. (The world build trains with it too.)"""
    from diffusers import FluxPipeline

    b, c, h, w = z.shape
    device, dtype = transformer.device, transformer.dtype
    noisy = (1 - s[:, None, None, None]) * z + s[:, None, None, None] * noise
    guidance = torch.full((b,), 3.5, device=device) if transformer.config.guidance_embeds else None
    pred = transformer(hidden_states=FluxPipeline._pack_latents(noisy, b, c, h, w).to(device, dtype),
                       timestep=s.to(device, dtype), guidance=guidance,
                       pooled_projections=pooled, encoder_hidden_states=states,
                       txt_ids=torch.zeros(states.shape[1], 3, device=device, dtype=dtype),
                       img_ids=FluxPipeline._prepare_latent_image_ids(b, h // 2, w // 2, device, dtype)
                       ).sample.float()
    target = FluxPipeline._pack_latents(noise - z, b, c, h, w).float()
    return F.mse_loss(pred, target, reduction="none").mean(dim=(1, 2))


LOSSES = {"sd": sd_loss, "sdxl": sd_loss, "flux": flux_loss}


def make_optimizer(name: str, params: list[torch.nn.Parameter], lr: float, weight_decay: float):
    if name == "prodigy":
        from prodigyopt import Prodigy

        return Prodigy(params, lr=lr, weight_decay=weight_decay)
    # The fused kernel: one update over all tensors (15 % of a full fine-tune's step on CPU).
    fused = all(p.device.type in ("cpu", "cuda") for p in params)
    return torch.optim.AdamW(params, lr=lr, weight_decay=weight_decay, fused=fused)


# --- checkpoints ----------------------------------------------------------------------

def checkpoint_dir(run_dir: Path, step: int) -> Path:
    return Path(run_dir) / CHECKPOINTS / f"step-{step:06d}"


def completed_checkpoints(run_dir: Path) -> list[int]:
    root = Path(run_dir) / CHECKPOINTS
    if not root.exists():
        return []
    return sorted(int(p.name.removeprefix("step-")) for p in root.iterdir()
                  if p.name.startswith("step-") and (p / DONE).exists())


def save_checkpoint(run_dir: Path, step: int, params: dict[str, torch.nn.Parameter], optimizer,
                    scheduler, gen: torch.Generator, losses: list[float]) -> Path:
    """Trainable tensors (safetensors), optimizer, learning-rate schedule and generator
    state; renamed into place."""
    from safetensors.torch import save_file

    def write(tmp: Path) -> None:
        save_file({k: v.detach().cpu().contiguous() for k, v in params.items()},
                  str(tmp / "trainable.safetensors"))
        save_file({"generator": gen.get_state()}, str(tmp / "rng.safetensors"))
        torch.save(optimizer.state_dict(), tmp / "optimizer.pt")
        torch.save(scheduler.state_dict(), tmp / "lr_scheduler.pt")
        (tmp / "state.json").write_text(json.dumps({"step": step, "losses": losses}))
        (tmp / DONE).write_text("")

    return write_atomic(checkpoint_dir(run_dir, step), write, folder=True)


def prune_checkpoints(run_dir: Path, keep: Collection[int]) -> None:
    """Remove every checkpoint folder but those of the steps in `keep` (also a crashed
    write's temporary ones)."""
    root = Path(run_dir) / CHECKPOINTS
    keep = {checkpoint_dir(run_dir, step).name for step in keep}
    for path in root.iterdir() if root.exists() else ():
        if path.name not in keep:
            shutil.rmtree(path)


def load_trainable(path: Path, params: dict[str, torch.nn.Parameter]) -> None:
    from safetensors.torch import load_file

    saved = load_file(str(Path(path) / "trainable.safetensors"))
    missing = set(params) - set(saved)
    if missing:
        raise ValueError(f"checkpoint {path}: missing trainable tensors, e.g. {sorted(missing)[:3]}")
    with torch.no_grad():
        for name, p in params.items():
            p.copy_(saved[name].to(p.dtype).to(p.device))


def resume(run_dir: Path, params, optimizer, scheduler, gen) -> tuple[int, list[float]]:
    """Restore the last complete checkpoint; (step, losses so far), or (0, [])."""
    from safetensors.torch import load_file

    done = completed_checkpoints(run_dir)
    if not done:
        return 0, []
    path = checkpoint_dir(run_dir, done[-1])
    load_trainable(path, params)
    optimizer.load_state_dict(torch.load(path / "optimizer.pt", weights_only=True))
    scheduler.load_state_dict(torch.load(path / "lr_scheduler.pt", weights_only=True))
    gen.set_state(load_file(str(path / "rng.safetensors"))["generator"])
    state = json.loads((path / "state.json").read_text())
    return state["step"], state["losses"]


# --- the loop -------------------------------------------------------------------------

def train(pipe, family: Family, params: dict[str, torch.nn.Parameter], cfg, latents: torch.Tensor,
          captions: list[str], run_dir: Path, *, prior: tuple[torch.Tensor, list[str]] | None = None,
          progress: bool = True, stop_after: int | None = None,
          on_checkpoint: Callable[[int, Path], None] | None = None,
          keep_steps: Collection[int] = ()) -> list[float]:
    """Train `params` in place for cfg.steps steps (resuming in run_dir); returns the losses.
    Of the checkpoints, only the last one (resume needs no other) and `keep_steps` stay.

    `prior` (latents, captions) adds DreamBooth's prior-preservation term, weighted by
    cfg.prior_loss_weight. `stop_after` ends early after that many steps (tests use it to
    simulate an interruption after a checkpoint).
    """
    from diffusers.optimization import get_scheduler

    loss_fn = LOSSES[family.name]
    trainable = list(params.values())
    optimizer = make_optimizer(cfg.optimizer, trainable, cfg.lr, cfg.weight_decay)
    scheduler = get_scheduler(cfg.lr_scheduler, optimizer, num_warmup_steps=0,
                              num_training_steps=cfg.steps)
    gen = torch.Generator().manual_seed(cfg.seed)
    start, losses = resume(run_dir, params, optimizer, scheduler, gen)
    bar = tqdm(range(start, cfg.steps), desc=f"fine-tune {cfg.method}", disable=not progress,
               initial=start, total=cfg.steps, mininterval=1)
    for step in bar:
        idx = batch_indices(len(latents), cfg.batch_size, step, cfg.seed)
        loss = loss_fn(pipe, family, latents[idx], [captions[i] for i in idx], gen).mean()
        if prior is not None:
            p_idx = batch_indices(len(prior[0]), cfg.batch_size, step, cfg.seed + 1)
            loss = loss + cfg.prior_loss_weight * loss_fn(
                pipe, family, prior[0][p_idx], [prior[1][i] for i in p_idx], gen).mean()
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(trainable, cfg.max_grad_norm)
        optimizer.step()
        scheduler.step()
        losses.append(loss.item())
        bar.set_postfix(loss=f"{loss.item():.4f}", refresh=False)
        done = step + 1
        if done % cfg.checkpoint_every == 0 or done == cfg.steps:
            path = save_checkpoint(run_dir, done, params, optimizer, scheduler, gen, losses)
            prune_checkpoints(run_dir, {*keep_steps, done})
            if on_checkpoint:
                on_checkpoint(done, path)
        if stop_after is not None and done - start >= stop_after:
            break
    return losses


# --- a run -----------------------------------------------------------------------------


def resolution(pipe) -> int:
    denoiser = getattr(pipe, "unet", None)
    if denoiser is not None:
        return denoiser.config.sample_size * pipe.vae_scale_factor
    return pipe.default_sample_size * pipe.vae_scale_factor


def run(cfg: FinetuneConfig, model_ref: str, out: Path, *, edit_artifact: Path | None = None,
        cache_dir: Path | None = None, progress: bool = True, stop_after: int | None = None,
        on_checkpoint=None, keep_steps: Collection[int] = ()) -> dict:
    """Fine-tune and return the run manifest (also written to out/manifest.json).
    `on_checkpoint(step, folder)` is called after each checkpoint is written. Once the run
    is complete, only the checkpoints of `keep_steps` remain (load_variant(step=...))."""
    from robust_edit.edit.artifact import EditArtifact, base_hash
    from robust_edit.finetune.data import check as check_data
    from robust_edit.finetune.data import load as load_data
    from robust_edit.models import family_of, load_pipeline
    from robust_edit.provenance import git_commit, package_versions

    out = Path(out)
    # A folder of something else is refused; this command's own run is resumed or returned.
    resuming = claim_output(out, MANIFEST, force=True, key="base_model")
    check_data(cfg.dataset)
    artifact = EditArtifact.load(edit_artifact) if edit_artifact is not None else None
    cfg = resolve.finetune(cfg, model_ref)
    if resuming:
        done = json.loads((out / MANIFEST).read_text())
        if done["config"] != cfg.model_dump(mode="json") or done["base_model"]["ref"] != model_ref:
            raise ValueError(f"{out} holds a different fine-tuning run ({done['method']} of "
                             f"{done['base_model']['ref']}); use another output folder")
        if done["status"] == "complete":
            prune_checkpoints(out, done["checkpoints"])  # if a crash came before the pruning
            return done
    family = family_of(model_ref)
    pipe = load_pipeline(model_ref)
    base = {"ref": model_ref, "hash": base_hash(pipe)}
    edit = None
    if artifact is not None:
        artifact.apply(pipe)
        edit = {"path": str(edit_artifact), "method": artifact.manifest["method"],
                "task": artifact.manifest["task"], "hash": base_hash(pipe)}
    data = load_data(cfg.dataset, resolution(pipe))
    out.mkdir(parents=True, exist_ok=True)  # only once the inputs have all loaded
    captions = [cfg.instance_prompt] * len(data) if cfg.instance_prompt else data.captions
    method = METHODS[cfg.method]
    prior = method.prior(pipe, cfg, cache_dir or out / "cache", (edit or base)["hash"])
    if prior is not None:
        prior = (encode_latents(pipe, prior[0]), prior[1])
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
    latents = encode_latents(pipe, data.images)
    losses = train(pipe, family, params, cfg, latents, captions, out, prior=prior,
                   progress=progress, stop_after=stop_after, on_checkpoint=on_checkpoint,
                   keep_steps=keep_steps)
    manifest.update(seconds_this_session=round(time.time() - t0, 2),
                    checkpoints=completed_checkpoints(out), losses=losses)
    complete = len(losses) >= cfg.steps
    if complete:
        outputs = method.finish(pipe, family, cfg, out)
        for path in outputs.values():  # durable before the manifest lets the checkpoints go
            fsync_tree(out / path)
        manifest.update(status="complete", outputs=outputs,
                        checkpoints=[s for s in manifest["checkpoints"] if s in keep_steps])
    write_atomic(out / MANIFEST, json.dumps(manifest, indent=2, default=str))
    if complete:
        prune_checkpoints(out, keep_steps)
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
    load_trainable(checkpoint_dir(run_dir, step), params)
    for module in (getattr(pipe, n, None) for n in ("unet", "transformer", "text_encoder", "text_encoder_2")):
        if isinstance(module, torch.nn.Module):
            module.eval().requires_grad_(False)
    return pipe
