"""The profession calibration: each profession word's input embedding is moved along the
"tall" - "short" direction until the world's generated tall share is its designed rate
(root finding on measured shares)."""

from __future__ import annotations

import json
import sys

import numpy as np
import torch

from robust_edit.world import vocab as V
from robust_edit.world.build_config import BuildConfig
from robust_edit.world.evaluate import profession_tall_rates
from robust_edit.world.sampling import world_sampling


def profession_token_ids(tokenizer) -> list[int]:
    """Each profession's last sub-token: no other world caption uses it ("keeper" of
    housekeeper, where "house" could be shared)."""
    return [tokenizer(p, add_special_tokens=False).input_ids[-1] for p in V.PROFESSIONS]


# Each text encoder reads the words through its own tokenizer.
TOKENIZER_OF = {"text_encoder": "tokenizer", "text_encoder_2": "tokenizer_2"}


def calibration_encoders(pipe) -> list[str]:
    """The pipeline's text encoders (SD: one; SDXL: two CLIP; FLUX: CLIP and T5), each of
    which reads the profession words from its own embedding table."""
    return [n for n in TOKENIZER_OF if getattr(pipe, n, None) is not None]


def tall_direction(pipe, encoder: str = "text_encoder") -> torch.Tensor:
    """The input-embedding difference between the words "tall" and "short"."""
    table = getattr(pipe, encoder).get_input_embeddings().weight
    tokenizer = getattr(pipe, TOKENIZER_OF[encoder])
    (tall,), (short,) = (tokenizer(w, add_special_tokens=False).input_ids for w in ("tall", "short"))
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


def settled(rate: float, designed: float, n_images: int) -> bool:
    """A share measured on n_images is settled when it is within one binomial standard
    error of its designed rate (at least half an image): another round could not tell the
    two apart, so it would spend a profession's images for nothing."""
    return abs(rate - designed) <= max(0.5 / n_images, float(np.sqrt(designed * (1 - designed) / n_images)))


def next_offsets(history: list[dict], n_images: int) -> dict[str, float]:
    """The next offset (next_offset) of each profession not yet settled, from its shares
    measured on n_images in the rounds that measured it."""
    def logit(p: float) -> float:
        p = min(max(p, 0.5 / n_images), 1 - 0.5 / n_images)
        return float(np.log(p / (1 - p)))

    offsets = {}
    for prof, (_, designed) in V.PROFESSIONS.items():
        points = [(h["offsets"][prof], h["rates"][prof]) for h in history if prof in h["rates"]]
        if not any(settled(rate, designed, n_images) for _, rate in points):
            offsets[prof] = next_offset([(x, logit(rate)) for x, rate in points], logit(designed))
    return offsets


def calibrate_professions(pipe, scorer, cfg: BuildConfig, start: dict[str, float] | None = None) -> dict:
    """Move each profession word's input embedding (in each text encoder) along the
    "tall" - "short" direction until the tall share generated at the world's evaluation
    guidance is its designed rate.

    Guidance sharpens the attribute by an amount that differs per profession and from
    build to build (generated/training logit ratios from 0.6 to 3), so training shares
    alone (V.TRAINING_TALL_RATES) left errors of up to 0.1 at 240 images. The share rises
    with the offset, so a few rounds of root finding on the measured shares converge
    (next_offset). A profession whose share is settled (within sampling error of design)
    is not measured again, and the rounds stop when all are; each profession keeps its best
    measured offset. Only the professions' own embedding rows change: a prompt without a
    profession word draws exactly what it drew before.
    The measuring seeds (10000 on) are disjoint from the evaluation CSV's (below 10000).
    `start`: offsets the rows already carry (a recalibration's previous ones): the trained
    rows are the current ones minus them (up to the fp16 rounding of the shipped rows), and
    the first round measures them.
    """
    settings = world_sampling(steps=25)
    per_template = max(1, cfg.calibration_images // len(V.PROFESSION_TEMPLATES))
    n_images = per_template * len(V.PROFESSION_TEMPLATES)
    # Each template gets its own seeds: one seed draws mostly the same figure under every
    # template (two templates agreed on 88 % of seeds, 52 % if independent), so shared seeds
    # would measure a share on little more than a fifth of the images it counts.
    prompts = [(t.format(V.with_article(p)), 10_000 + i * per_template + j, p) for p in V.PROFESSIONS
               for i, t in enumerate(V.PROFESSION_TEMPLATES) for j in range(per_template)]
    # One offset per profession moves its row in every text encoder, each along its own
    # "tall" - "short" direction.
    encoders = calibration_encoders(pipe)
    rows = [profession_token_ids(getattr(pipe, TOKENIZER_OF[n])) for n in encoders]
    tables = [getattr(pipe, n).get_input_embeddings().weight for n in encoders]
    directions = [tall_direction(pipe, n) for n in encoders]
    start = dict(start) if start else {p: 0.0 for p in V.PROFESSIONS}

    def amount(offsets: dict[str, float]) -> torch.Tensor:
        return torch.tensor([offsets[p] for p in V.PROFESSIONS])[:, None]

    bases = [table[r].detach() - amount(start) * direction for table, r, direction in zip(tables, rows, directions)]

    def set_offsets(offsets: dict[str, float]) -> None:
        with torch.no_grad():  # the world ships in fp16: measure what will be saved
            for table, r, base, direction in zip(tables, rows, bases, directions):
                table[r] = (base + amount(offsets) * direction).half().float()

    history, offsets = [{"offsets": start}], dict(start)
    for r in range(cfg.calibration_rounds + 1):
        offsets |= history[-1]["offsets"]
        set_offsets(offsets)
        todo = [(prompt, seed, p) for prompt, seed, p in prompts if p in history[-1]["offsets"]]
        history[-1]["rates"] = profession_tall_rates(pipe, scorer, *zip(*todo), settings)
        print(json.dumps({"calibration_round": r, **history[-1]}), file=sys.stderr, flush=True)
        if r == cfg.calibration_rounds or not (following := next_offsets(history, n_images)):
            break
        history.append({"offsets": following})
    design = {p: d for p, (_, d) in V.PROFESSIONS.items()}
    best = {p: min((h for h in history if p in h["rates"]), key=lambda h: abs(h["rates"][p] - d))["offsets"][p]
            for p, d in design.items()}
    set_offsets(best)
    return {"images_per_profession": n_images, "design": design, "rounds": history, "offsets": best}
