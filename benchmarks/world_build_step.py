"""The world build's training step (text encoders + UNet, forward and backward) with the
build's conditioning (training.condition_dropping_padding: captions whose padding is dropped
encoded only through their last EOS) against encoding every caption's positions and then
replacing the dropped ones (what the build did before), side by side in one process, on the
same batches. Both give the same conditioning (tests/world/test_build.py).

    python benchmarks/world_build_step.py [--model sd|sdxl] [--steps 10] [--rounds 2] [--threads 2]
"""

from __future__ import annotations

import argparse
import copy
import random
import time

import numpy as np
import torch


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--model", choices=["sd", "sdxl"], default="sdxl")
    ap.add_argument("--steps", type=int, default=10, help="training steps per timed round")
    ap.add_argument("--rounds", type=int, default=2, help="alternating timed rounds (medians)")
    ap.add_argument("--threads", type=int, default=2)
    args = ap.parse_args()

    from diffusers import DDPMScheduler

    from robust_edit.world import scenes, training
    from robust_edit.world.architectures import CLIP_LENGTH, make_unet, noise_scheduler_config
    from robust_edit.world.build_config import BuildConfig
    from robust_edit.world.tokenizer import clip_tokenizer

    torch.set_num_threads(args.threads)
    torch.manual_seed(0)
    cfg = BuildConfig()
    rng = random.Random(0)
    captions = [scenes.sample_example(rng)[1] for _ in range(4096)]
    tok = clip_tokenizer(CLIP_LENGTH[args.model])
    all_ids = tok(captions + [""], padding="max_length", max_length=tok.model_max_length,
                  truncation=True, return_tensors="pt").input_ids
    input_ids, empty_ids = all_ids[:-1], [all_ids[-1]]
    condition = training.Conditioning(args.model)
    unet = make_unet(sdxl=args.model == "sdxl")
    noise_sched = DDPMScheduler(**noise_scheduler_config())

    # The same encoders treated as non-causal: every caption encoded at all positions, then
    # the dropped ones replaced (what the build did before).
    every_position = copy.copy(condition)
    every_position.causal = False

    def full_encoding(ids, drop):
        return training.condition_dropping_padding(every_position, ids, empty_ids, drop)

    def through_eos(ids, drop):
        return training.condition_dropping_padding(condition, ids, empty_ids, drop)

    def steps(encode) -> float:
        gen = torch.Generator().manual_seed(1)
        t = time.perf_counter()
        for _ in range(args.steps):
            idx = torch.randint(0, len(input_ids), (cfg.diffusion.batch,), generator=gen)
            z = torch.randn(len(idx), 4, 8, 8, generator=gen)
            noise, level = training.draw_noise(z, gen, cfg, flow=False)
            drop = torch.rand(len(idx), generator=gen) < cfg.padding_dropout
            cond, added = encode([input_ids[idx]], drop)
            training.noise_prediction_loss(unet, z, noise, level, cond, added, noise_sched, cfg).backward()
        return (time.perf_counter() - t) / args.steps

    steps(through_eos)  # first-use set-up
    rounds = [(steps(full_encoding), steps(through_eos)) for _ in range(args.rounds)]
    full, short = (float(np.median(x)) for x in zip(*rounds))
    print(f"world:{args.model} training step, batch {cfg.diffusion.batch}, padding dropout "
          f"{cfg.padding_dropout}, {args.threads} threads, median of {args.rounds} rounds x {args.steps} steps")
    print(f"every caption encoded at {tok.model_max_length} positions: {full:.3f} s a step")
    print(f"dropped captions through their EOS:   {short:.3f} s a step")
    print(f"speed-up: {full / short:.2f} x; {cfg.diffusion.steps} build steps: "
          f"{full * cfg.diffusion.steps / 60:.1f} -> {short * cfg.diffusion.steps / 60:.1f} minutes")


if __name__ == "__main__":
    main()
