"""Minutes and peak memory (RSS) per fine-tuning method and rank at the quickstart budget
(the fine-tunes of sweeps/quickstart.yaml, with LoRA/DoRA at ranks 4, 8 and 16).

Each run is its own process (peak RSS is per process); the baseline process loads the
same model and dataset and encodes the latents without training, so the table shows what
training adds. Run on an otherwise idle machine:

    python benchmarks/finetune_cost.py [--threads 2]
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
QUICKSTART = Path(__file__).resolve().parent.parent / "sweeps" / "quickstart.yaml"


def one(method: str, rank: int, threads: int) -> dict:
    import torch

    torch.set_num_threads(threads)
    from robust_edit import finetune
    from robust_edit.config import load_sweep

    t0 = time.time()
    steps = 0
    if method == "baseline":
        from robust_edit.finetune import data
        from robust_edit.models import load_pipeline

        pipe = load_pipeline("world:sd")
        finetune.encode_latents(pipe, data.load("world:style", finetune.resolution(pipe)).images)
    else:
        spec = next(f for f in load_sweep(QUICKSTART).finetunes if f.method == method)
        cfg = spec.expand()[0].model_copy(update={"rank": rank or spec.rank})
        steps = cfg.steps
        with tempfile.TemporaryDirectory() as tmp:
            finetune.run(cfg, "world:sd", Path(tmp), progress=False)
    return {"steps": steps, "minutes": (time.time() - t0) / 60,
            "peak_rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--one", nargs=2, metavar=("METHOD", "RANK"), help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.one:
        print(json.dumps(one(args.one[0], int(args.one[1]), args.threads)))
        return

    def child(method, rank):
        out = subprocess.run([sys.executable, __file__, "--one", method, str(rank),
                              "--threads", str(args.threads)],
                             capture_output=True, text=True, check=True).stdout
        return json.loads(out.strip().splitlines()[-1])

    base = child("baseline", 0)
    print(f"quickstart budget ({QUICKSTART.name}), world:sd, {args.threads} threads")
    print(f"{'run':<12}{'steps':>6}{'minutes':>9}{'peak RSS MB':>13}{'RSS / baseline':>16}")
    print(f"{'baseline':<12}{0:>6}{base['minutes']:>9.2f}{base['peak_rss_mb']:>13.0f}{1.0:>16.2f}")
    for method, rank in RUNS:
        r = child(method, rank)
        name = method if method in ("full", "dreambooth") else f"{method} r{rank}"
        print(f"{name:<12}{r['steps']:>6}{r['minutes']:>9.2f}{r['peak_rss_mb']:>13.0f}"
              f"{r['peak_rss_mb'] / base['peak_rss_mb']:>16.2f}", flush=True)


if __name__ == "__main__":
    main()
