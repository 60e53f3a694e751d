"""The world build's training step (text encoders + UNet, forward and backward) with the
build's conditioning (training.condition_dropping_padding: captions whose padding is dropped
encoded only through their last EOS) against encoding every position of every caption at the
build's length and then replacing the dropped ones (how the build encoded before dc14500),
and for world:sdxl against the build's step at CLIP's 77 positions (it reads 32:
architectures.CLIP_LENGTH), side by side in one process, on the same batches, each round
starting with the next arm. The first two give the same conditioning
(tests/world/test_build.py).

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
    from robust_edit.world.architectures import (
        CLIP_LENGTH,
        make_text_encoder,
        make_text_encoder_2,
        make_unet,
        noise_scheduler_config,
    )
    from robust_edit.world.build_config import BuildConfig
    from robust_edit.world.tokenizer import clip_tokenizer

    torch.set_num_threads(args.threads)
    torch.manual_seed(0)
    cfg = BuildConfig()
    rng = random.Random(0)
    captions = [scenes.sample_example(rng)[1] for _ in range(4096)]

    def token_ids(length: int) -> tuple[torch.Tensor, list[torch.Tensor]]:
        """(every caption's ids, [the empty caption's]) padded to `length`."""
        ids = clip_tokenizer(length)(captions + [""], padding="max_length", max_length=length,
                                     truncation=True, return_tensors="pt").input_ids
        return ids[:-1], [ids[-1]]

    length = CLIP_LENGTH[args.model]
    condition = training.Conditioning(args.model)
    unet = make_unet(sdxl=args.model == "sdxl")
    noise_sched = DDPMScheduler(**noise_scheduler_config())

    # (name, conditioning, token ids): the build's; the same encoders treated as non-causal,
    # every caption encoded at all positions and the dropped ones then replaced (how the
    # build encoded before dc14500); for world:sdxl, the build's at CLIP's 77 positions (what
    # it read before it read 32).
    every_position = copy.copy(condition)
    every_position.causal = False
    build_ids = token_ids(length)
    arms = [(f"the build's ({length} positions, dropped captions through their EOS)", condition, build_ids),
            (f"every caption encoded at all {length} positions", every_position, build_ids)]
    clip_length = CLIP_LENGTH["sd"]  # CLIP's own 77
    if length != clip_length:
        at_clip_length = copy.copy(condition)
        at_clip_length.encoders = [make_text_encoder(clip_length), make_text_encoder_2(clip_length)]
        at_clip_length.token_encoder = at_clip_length.encoders[at_clip_length.token_index]
        arms.append((f"the build's at CLIP's {clip_length} positions", at_clip_length, token_ids(clip_length)))

    def steps(condition, ids) -> float:
        input_ids, empty_ids = ids
        gen = torch.Generator().manual_seed(1)
        t = time.perf_counter()
        for _ in range(args.steps):
            idx = torch.randint(0, len(input_ids), (cfg.diffusion.batch,), generator=gen)
            z = torch.randn(len(idx), 4, 8, 8, generator=gen)
            noise, level = training.draw_noise(z, gen, cfg, flow=False)
            drop = torch.rand(len(idx), generator=gen) < cfg.padding_dropout
            cond, added = training.condition_dropping_padding(condition, [input_ids[idx]], empty_ids, drop)
            training.noise_prediction_loss(unet, z, noise, level, cond, added, noise_sched, cfg).backward()
        return (time.perf_counter() - t) / args.steps

    for _, cond, ids in arms:  # first-use set-up of each arm's shapes and encoders
        steps(cond, ids)
    # Each round starts with the next arm, so a drift in the machine's speed within a run
    # falls on every arm alike.
    times = [[] for _ in arms]
    for r in range(args.rounds):
        for i in [(r + k) % len(arms) for k in range(len(arms))]:
            times[i].append(steps(*arms[i][1:]))
    seconds = [float(np.median(t)) for t in times]
    print(f"world:{args.model} training step, batch {cfg.diffusion.batch}, padding dropout "
          f"{cfg.padding_dropout}, {args.threads} threads, median of {args.rounds} rounds x {args.steps} steps")
    for (name, _, _), sec in zip(arms, seconds):
        print(f"{name}: {sec:.3f} s a step ({sec * cfg.diffusion.steps / 60:.1f} minutes for "
              f"{cfg.diffusion.steps} build steps), {sec / seconds[0]:.2f} x the build's")


if __name__ == "__main__":
    main()
