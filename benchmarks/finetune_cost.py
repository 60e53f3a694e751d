"""Minutes and peak memory (RSS) per fine-tuning method and rank at the quickstart budget.

Each run is its own process (peak RSS is per process); the baseline process loads the
same model and dataset and encodes the latents without training, so the table shows what
training adds. Run on an otherwise idle machine:

    python benchmarks/finetune_cost.py [--steps 300] [--threads 2]
"""

from __future__ import annotations

import argparse
import json
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

RUNS = [("full", 4), ("dreambooth", 0), ("lora", 4), ("lora", 8), ("lora", 16), ("dora", 4), ("dora", 8), ("dora", 16)]


def one(method: str, rank: int, steps: int, threads: int) -> dict:
    import torch

    torch.set_num_threads(threads)
    from robust_edit import finetune
    from robust_edit.config import FinetuneConfig

    t0 = time.time()
    if method == "baseline":
        from robust_edit.finetune import data, loop
        from robust_edit.models import load_pipeline

        pipe = load_pipeline("world:sd")
        loop.encode_latents(pipe, data.load("world:style", finetune.resolution(pipe)).images)
    else:
        if method == "dreambooth":  # one subject's 6 instance images + 50 class images
            cfg = FinetuneConfig(method=method, dataset="world:dreambooth:ring", steps=200,
                                 batch_size=4, checkpoint_every=100)
        else:
            cfg = FinetuneConfig(method=method, dataset="world:style", steps=steps, batch_size=16,
                                 checkpoint_every=100, rank=rank)
        with tempfile.TemporaryDirectory() as tmp:
            finetune.run(cfg, "world:sd", Path(tmp), progress=False)
    return {"minutes": (time.time() - t0) / 60,
            "peak_rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--steps", type=int, default=300)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--one", nargs=2, metavar=("METHOD", "RANK"), help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.one:
        print(json.dumps(one(args.one[0], int(args.one[1]), args.steps, args.threads)))
        return

    def child(method, rank):
        out = subprocess.run([sys.executable, __file__, "--one", method, str(rank), "--steps",
                              str(args.steps), "--threads", str(args.threads)],
                             capture_output=True, text=True, check=True).stdout
        return json.loads(out.strip().splitlines()[-1])

    base = child("baseline", 0)
    print(f"quickstart budget: {args.steps} steps, batch 16, world:sd, {args.threads} threads")
    print(f"{'run':<12}{'minutes':>9}{'peak RSS MB':>13}{'RSS / baseline':>16}")
    print(f"{'baseline':<12}{base['minutes']:>9.2f}{base['peak_rss_mb']:>13.0f}{1.0:>16.2f}")
    for method, rank in RUNS:
        r = child(method, rank)
        name = method if method in ("full", "dreambooth") else f"{method} r{rank}"
        print(f"{name:<12}{r['minutes']:>9.2f}{r['peak_rss_mb']:>13.0f}"
              f"{r['peak_rss_mb'] / base['peak_rss_mb']:>16.2f}", flush=True)


if __name__ == "__main__":
    main()
