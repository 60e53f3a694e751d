"""Sampling precision on this machine: world:sd drawing the same profession prompts and seeds
in fp32 and under bf16 autocast, side by side in one process, and what `precision: auto`
(robust_edit.resolve.sampling_precision) picks here. bf16 is fast only where the CPU computes
it natively (AVX512-BF16, AMX); elsewhere autocast emulates it.

    python benchmarks/sampling_precision.py [--images 64] [--rounds 2] [--threads 2]
"""

from __future__ import annotations

import argparse
import time

import numpy as np
import torch


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--images", type=int, default=64)
    ap.add_argument("--rounds", type=int, default=2, help="alternating timed rounds (medians)")
    ap.add_argument("--threads", type=int, default=2)
    args = ap.parse_args()

    from robust_edit.generate import generate_images
    from robust_edit.models import load_pipeline
    from robust_edit.resolve import sampling_precision
    from robust_edit.world import vocab as V
    from robust_edit.world.sampling import world_sampling

    torch.set_num_threads(args.threads)
    pipe = load_pipeline("world:sd")
    professions = list(V.PROFESSIONS)
    prompts = [f"a photo of {V.with_article(professions[i % len(professions)])}" for i in range(args.images)]
    seeds = list(range(args.images))
    seconds, images = {"fp32": [], "bf16": []}, {}
    for _ in range(args.rounds):
        for precision, times in seconds.items():
            settings = world_sampling(steps=15, batch_size=args.images, precision=precision)
            t = time.perf_counter()
            images[precision] = generate_images(pipe, prompts, seeds, settings)
            times.append(time.perf_counter() - t)
    fp32, bf16 = (float(np.median(seconds[p])) for p in ("fp32", "bf16"))
    print(f"CPU capability {torch.backends.cpu.get_cpu_capability()}; precision auto -> {sampling_precision()}")
    print(f"fp32: {fp32:6.1f} s for {args.images} images (median of {args.rounds})")
    print(f"bf16: {bf16:6.1f} s")
    print(f"bf16 / fp32 time: {bf16 / fp32:.2f}; mean |pixel difference| "
          f"{np.abs(images['bf16'].astype(float) - images['fp32']).mean() / 255:.4f}")


if __name__ == "__main__":
    main()
