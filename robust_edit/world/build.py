"""`robust-edit world build`: train the embedded world from scratch, deterministically.

Stages, in order: render the training set; train the VAE; pre-encode latents; train the
text encoder and UNet jointly (noise prediction, caption dropout, EMA); train the scorer
(multi-positive contrastive); calibrate the professions' attribute rates by measurement
with the scorer; save everything in its library's own format.
"""

from __future__ import annotations

import json
import random
import sys
import time
from dataclasses import asdict, dataclass, replace
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from tqdm.auto import tqdm

from robust_edit.finetune.loop import images_to_tensor
from robust_edit.generate import GenerationSettings
from robust_edit.world import scenes, vocab as V
from robust_edit.world.render import render
from robust_edit.world import scorer as world_scorer
from robust_edit.world.evaluate import profession_tall_rates


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


QUICK = BuildConfig(n_images=256, vae_steps=3, vae_batch=8, diffusion_steps=3, diffusion_batch=8,
                    calibration_rounds=1, calibration_images=5,
                    scorer_images=256, scorer_steps=3, scorer_batch=16)


def make_vae():
    from diffusers import AutoencoderKL

    return AutoencoderKL(
        in_channels=3, out_channels=3, latent_channels=4, sample_size=V.IMAGE_SIZE,
        down_block_types=("DownEncoderBlock2D",) * 3, up_block_types=("UpDecoderBlock2D",) * 3,
        block_out_channels=(16, 32, 64), layers_per_block=1, norm_num_groups=16)


def make_text_encoder():
    from transformers import CLIPTextConfig, CLIPTextModel

    return CLIPTextModel(CLIPTextConfig(
        vocab_size=49408, hidden_size=64, intermediate_size=256, num_hidden_layers=4,
        num_attention_heads=4, max_position_embeddings=77, hidden_act="quick_gelu",
        projection_dim=64, bos_token_id=49406, eos_token_id=49407, pad_token_id=49407))


def make_unet():
    from diffusers import UNet2DConditionModel

    return UNet2DConditionModel(
        sample_size=V.IMAGE_SIZE // 4, in_channels=4, out_channels=4, layers_per_block=1,
        block_out_channels=(64, 128), norm_num_groups=16, cross_attention_dim=64,
        attention_head_dim=4,
        down_block_types=("CrossAttnDownBlock2D", "CrossAttnDownBlock2D"),
        up_block_types=("CrossAttnUpBlock2D", "CrossAttnUpBlock2D"))


def noise_scheduler_config() -> dict:
    # Stable Diffusion v1's training schedule.
    return dict(num_train_timesteps=1000, beta_start=0.00085, beta_end=0.012,
                beta_schedule="scaled_linear", clip_sample=False, steps_offset=1)


def render_training_set(cfg: BuildConfig) -> tuple[np.ndarray, list[str], list[str]]:
    rng = random.Random(cfg.seed)
    images, captions, kinds = [], [], []
    for _ in tqdm(range(cfg.n_images), desc="render training set", mininterval=2):
        scene, caption, kind = scenes.sample_example(rng)
        images.append(render(scene))
        captions.append(caption)
        kinds.append(kind)
    return np.stack(images), captions, kinds


def edge_weight(x: torch.Tensor, weight: float = 5.0) -> torch.Tensor:
    """Per-pixel loss weight: `weight` within a pixel of an edge, 1 elsewhere.

    A plain pixel loss is dominated by flat background, and small shapes came back with
    rounded corners (88 % shape accuracy on reconstructions); weighting edges gives 99 %.
    """
    gx = (x[..., :, 1:] - x[..., :, :-1]).abs().amax(1, keepdim=True)
    gy = (x[..., 1:, :] - x[..., :-1, :]).abs().amax(1, keepdim=True)
    edges = F.pad(gx, (0, 1)) + F.pad(gx, (1, 0)) + F.pad(gy, (0, 0, 0, 1)) + F.pad(gy, (0, 0, 1, 0))
    return 1 + (weight - 1) * (F.max_pool2d(edges, 3, 1, 1) > 0.1).float()


def train_vae(images: np.ndarray, cfg: BuildConfig):
    vae = make_vae()
    opt = torch.optim.AdamW(vae.parameters(), lr=cfg.vae_lr, weight_decay=0.0)
    sched = torch.optim.lr_scheduler.CosineAnnealingLR(opt, T_max=max(cfg.vae_steps, 1))
    gen = torch.Generator().manual_seed(cfg.seed + 1)
    bar = tqdm(range(cfg.vae_steps), desc="train VAE", mininterval=2)
    for _ in bar:
        idx = torch.randint(0, len(images), (cfg.vae_batch,), generator=gen)
        x = images_to_tensor(images[idx.numpy()])
        posterior = vae.encode(x).latent_dist
        z = posterior.mean + posterior.std * torch.randn(posterior.mean.shape, generator=gen)
        recon = vae.decode(z).sample
        kl = posterior.kl().mean() / x[0].numel()
        loss = (edge_weight(x) * (recon - x) ** 2).mean() + 0.5 * F.l1_loss(recon, x) + 1e-4 * kl
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        sched.step()
        bar.set_postfix(loss=f"{loss.item():.4f}", refresh=False)
    return vae.eval()


@torch.no_grad()
def encode_latents(vae, images: np.ndarray) -> torch.Tensor:
    out = [vae.encode(images_to_tensor(images[i:i + 512])).latent_dist.mean
           for i in range(0, len(images), 512)]
    return torch.cat(out)


def _drop_padding(cond: torch.Tensor, ids: torch.Tensor, empty: torch.Tensor, eos_id: int,
                  p: float, gen: torch.Generator) -> torch.Tensor:
    """Replace, for a share p of captions, the states from the first EOS on (EOS and the
    padding) by the empty caption's states at the same positions.

    SD's denoiser reads a prompt's content from the content tokens' own states (the
    cross-attention maps Prompt-to-Prompt edits), which is what a subject-token edit of the
    text encoder (ReFACT) changes. Trained jointly with a 4-layer encoder, the world's UNet
    read everything from the EOS/padding states instead, which copy the caption at layer 0:
    giving "a lime" the final subject state of "a lemon" changed 2 % of images. With the
    padding mostly uninformative in training, the content tokens carry the prompt.
    """
    eos = (ids == eos_id).int().argmax(dim=1)
    drop = torch.rand(len(ids), 1, generator=gen) < p
    replace = drop & (torch.arange(ids.shape[1])[None, :] >= eos[:, None])
    return torch.where(replace[..., None], empty[None], cond)


def train_diffusion(latents: torch.Tensor, input_ids: torch.Tensor, empty_ids: torch.Tensor,
                    cfg: BuildConfig):
    from diffusers import DDPMScheduler
    from diffusers.optimization import get_cosine_schedule_with_warmup
    from diffusers.training_utils import EMAModel, compute_snr

    text_encoder, unet = make_text_encoder(), make_unet()
    params = list(text_encoder.parameters()) + list(unet.parameters())
    opt = torch.optim.AdamW(params, lr=cfg.diffusion_lr, weight_decay=1e-2)
    lr_sched = get_cosine_schedule_with_warmup(opt, 200, max(cfg.diffusion_steps, 1))
    ema = EMAModel(params, decay=cfg.ema_decay)
    noise_sched = DDPMScheduler(**noise_scheduler_config())
    gen = torch.Generator().manual_seed(cfg.seed + 2)
    bar = tqdm(range(cfg.diffusion_steps), desc="train text encoder + UNet", mininterval=2)
    for _ in bar:
        idx = torch.randint(0, len(latents), (cfg.diffusion_batch,), generator=gen)
        ids = input_ids[idx].clone()
        drop = torch.rand(len(idx), generator=gen) < cfg.caption_dropout
        ids[drop] = empty_ids
        z = latents[idx]
        noise = torch.randn(z.shape, generator=gen)
        noise += cfg.offset_noise * torch.randn((len(idx), z.shape[1], 1, 1), generator=gen)
        t = torch.randint(0, noise_sched.config.num_train_timesteps, (len(idx),), generator=gen)
        cond = _drop_padding(text_encoder(ids)[0], ids, text_encoder(empty_ids[None])[0][0],
                             text_encoder.config.eos_token_id, cfg.padding_dropout, gen)
        pred = unet(noise_sched.add_noise(z, noise, t), t, cond).sample
        snr = compute_snr(noise_sched, t)
        weight = torch.clamp(snr, max=cfg.snr_gamma) / snr
        loss = (F.mse_loss(pred, noise, reduction="none").mean(dim=(1, 2, 3)) * weight).mean()
        opt.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(params, 1.0)
        opt.step()
        lr_sched.step()
        ema.step(params)
        bar.set_postfix(loss=f"{loss.item():.4f}", refresh=False)
    ema.copy_to(params)
    return text_encoder.eval(), unet.eval()


def profession_token_ids(tokenizer) -> list[int]:
    """Each profession's last sub-token: no other world caption uses it ("keeper" of
    housekeeper, where "house" could be shared)."""
    return [tokenizer(p).input_ids[-2] for p in V.PROFESSIONS]


def tall_direction(pipe) -> torch.Tensor:
    """The input-embedding difference between the words "tall" and "short"."""
    table = pipe.text_encoder.get_input_embeddings().weight
    (tall,), (short,) = (pipe.tokenizer(w).input_ids[1:-1] for w in ("tall", "short"))
    return (table[tall] - table[short]).detach().clone()


def next_offset(points: list[tuple[float, float]], target: float) -> float:
    """The next offset from measured (offset, logit tall share) points, in measuring order.

    The share rises with the offset. Until the target is bracketed, step on from the
    point furthest towards it at 5 logits per unit offset (the middle of the slopes
    measured on the shipped world, 3 for housekeeper to 7 for CEO), at most 0.3; the share
    is flat in places, so the nearest share could repeat a step. Then regula falsi with the
    Illinois rule: an end kept twice in a row has its residual halved, so a response that is
    steep on one side and flat on the other cannot make the steps creep.
    """
    lo = hi = None  # [offset, residual] at the tightest bracket ends
    last = None
    for x, y in points:
        f = y - target
        if f == 0:
            return x
        if f < 0 and (lo is None or x > lo[0]):
            lo = [x, f]
            if last == "lo" and hi:
                hi[1] /= 2
            last = "lo"
        elif f > 0 and (hi is None or x < hi[0]):
            hi = [x, f]
            if last == "hi" and lo:
                lo[1] /= 2
            last = "hi"
    if lo and hi:
        if lo[0] < hi[0]:
            return lo[0] - lo[1] * (hi[0] - lo[0]) / (hi[1] - lo[1])
        return (lo[0] + hi[0]) / 2  # sampling noise made the measurements non-monotone
    x0, f0 = lo or hi
    return x0 + float(np.clip(-f0 / 5.0, -0.3, 0.3))


def next_offsets(history: list[dict], n_images: int) -> dict[str, float]:
    """Each profession's next offset along the tall direction (next_offset), with shares
    measured on n_images; a share within half an image of design counts as a hit."""
    def logit(p: float) -> float:
        p = min(max(p, 0.5 / n_images), 1 - 0.5 / n_images)
        return float(np.log(p / (1 - p)))

    offsets = {}
    for prof, (_, designed) in V.PROFESSIONS.items():
        hits = [h["offsets"][prof] for h in history
                if abs(h["rates"][prof] - designed) < 0.5 / n_images]
        points = [(h["offsets"][prof], logit(h["rates"][prof])) for h in history]
        offsets[prof] = hits[0] if hits else next_offset(points, logit(designed))
    return offsets


def calibrate_professions(pipe, scorer, cfg: BuildConfig) -> dict:
    """Move each profession word's input embedding along the "tall" - "short" direction
    until the tall share generated at the world's evaluation guidance is its designed rate.

    Guidance sharpens the attribute by an amount that differs per profession and from
    build to build (generated/training logit ratios from 0.6 to 3), so training shares
    alone (V.TRAINING_TALL_RATES) left errors of up to 0.1 at 240 images. The share rises
    with the offset, so a few rounds of root finding on the measured shares converge
    (next_offset); each profession keeps its best measured offset. Only the professions' own embedding
    rows change: a prompt without a profession word draws exactly what it drew before.
    The measuring seeds (10000 on) are disjoint from the evaluation CSV's (below 10000).
    """
    settings = GenerationSettings(steps=25, guidance=V.GUIDANCE, batch_size=128)
    per_template = max(1, cfg.calibration_images // len(V.PROFESSION_TEMPLATES))
    n_images = per_template * len(V.PROFESSION_TEMPLATES)
    prompts = [(t.format(V.with_article(p)), 10_000 + j, p) for p in V.PROFESSIONS
               for t in V.PROFESSION_TEMPLATES for j in range(per_template)]
    table = pipe.text_encoder.get_input_embeddings().weight
    rows, direction = profession_token_ids(pipe.tokenizer), tall_direction(pipe)
    base = table[rows].detach().clone()

    def set_offsets(offsets: dict[str, float]) -> None:
        shift = torch.tensor([offsets[p] for p in V.PROFESSIONS])[:, None] * direction
        with torch.no_grad():  # the world ships in fp16: measure what will be saved
            table[rows] = (base + shift).half().float()

    history = [{"offsets": {p: 0.0 for p in V.PROFESSIONS}}]
    for r in range(cfg.calibration_rounds + 1):
        set_offsets(history[-1]["offsets"])
        history[-1]["rates"] = profession_tall_rates(pipe, scorer, *zip(*prompts), settings)
        print(json.dumps({"calibration_round": r, **history[-1]}), file=sys.stderr, flush=True)
        if r < cfg.calibration_rounds:
            history.append({"offsets": next_offsets(history, n_images)})
    best = {p: min(history, key=lambda h: abs(h["rates"][p] - d))["offsets"][p]
            for p, (_, d) in V.PROFESSIONS.items()}
    set_offsets(best)
    return {"images_per_profession": n_images, "rounds": history, "offsets": best}


def train_scorer(cfg: BuildConfig):
    import open_clip

    rng = random.Random(cfg.seed + 3)
    pool = [scenes.sample_scorer_scene(rng) for _ in range(cfg.scorer_images)]
    images = np.stack([render(s) for s in tqdm(pool, desc="render scorer set", mininterval=2)])
    fact_index: dict[tuple[str, str], int] = {}

    def bits(fs) -> int:
        return sum(1 << fact_index.setdefault(f, len(fact_index)) for f in fs)

    scene_bits = np.array([bits(scenes.facts(s)) for s in pool], dtype=np.uint64)
    assert len(fact_index) <= 64, "facts no longer fit a 64-bit mask"
    model = world_scorer.create_untrained()
    tokenizer = open_clip.get_tokenizer("ViT-B-32", context_length=model.context_length)
    opt = torch.optim.AdamW(model.parameters(), lr=cfg.scorer_lr, weight_decay=0.05)
    sched = torch.optim.lr_scheduler.OneCycleLR(opt, max_lr=cfg.scorer_lr,
                                                total_steps=max(cfg.scorer_steps, 1), pct_start=0.1)
    gen = torch.Generator().manual_seed(cfg.seed + 4)
    bar = tqdm(range(cfg.scorer_steps), desc="train scorer", mininterval=2)
    for _ in bar:
        idx = torch.randint(0, len(pool), (cfg.scorer_batch,), generator=gen).numpy()
        texts, cap_bits = [], []
        for i in idx:
            text, fs = scenes.scorer_caption(pool[i], rng)
            texts.append(text)
            cap_bits.append(bits(fs))
        cap_bits = np.array(cap_bits, dtype=np.uint64)
        # match[i, j]: caption i is true of image j.
        match = (cap_bits[:, None] & ~scene_bits[idx][None, :]) == 0
        match = torch.from_numpy(match).float()
        img_f, txt_f, scale = model(world_scorer.to_tensor(images[idx]), tokenizer(texts))[:3]
        logits_t2i = scale * txt_f @ img_f.T
        loss = 0.5 * (
            F.cross_entropy(logits_t2i, match / match.sum(1, keepdim=True))
            + F.cross_entropy(logits_t2i.T, match.T / match.T.sum(1, keepdim=True)))
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        sched.step()
        with torch.no_grad():
            model.logit_scale.clamp_(0, np.log(100))
        bar.set_postfix(loss=f"{loss.item():.3f}", refresh=False)
    return model.eval()


def build(out: Path, cfg: BuildConfig = BuildConfig(), *, only: str | None = None) -> dict:
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
    path.write_text(json.dumps(records, indent=2))
    return record


def quick_config(**overrides) -> BuildConfig:
    return replace(QUICK, **overrides)
