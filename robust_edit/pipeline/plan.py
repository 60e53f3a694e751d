"""`robust-edit sweep plan`: the graph's size, and GPU-hours for GPU specs."""

from __future__ import annotations

import json
from functools import cache

from robust_edit.config import SweepSpec
from robust_edit.pipeline.graph import GPU_HOURS, Graph, build


def images_per_generate(graph: Graph) -> dict[str, int]:
    """Images each generate stage draws: its prompt set's evaluation items."""
    from robust_edit.config import PromptSet
    from robust_edit.edit.evaluate import items

    @cache
    def count(prompt_set: str, seeds: int) -> int:
        return len(items(PromptSet.model_validate_json(prompt_set), seeds))

    return {s.key: count(json.dumps(s.config["prompt_set"]), s.config["seeds"])
            for s in graph.by_kind("generate")}


def gpu_hours(graph: Graph) -> dict[str, float]:
    from robust_edit.models import family_of

    images = images_per_generate(graph)
    hours = {"edit": 0.0, "finetune": 0.0, "generate": 0.0, "score": 0.0}
    for s in graph.stages.values():
        if s.kind == "aggregate":
            continue
        cost = GPU_HOURS[family_of(s.labels["model"]).name]
        if s.kind == "edit":
            hours["edit"] += cost["edit"]
        elif s.kind == "finetune":
            hours["finetune"] += cost["finetune_per_1k_steps"] * s.config["finetune"]["steps"] / 1000
        else:
            gen = s.key if s.kind == "generate" else s.inputs[0]
            key = "generate_per_1k_images" if s.kind == "generate" else "score_per_1k_images"
            hours[s.kind] += cost[key] * images[gen] / 1000
    return hours


def as_json(spec: SweepSpec) -> dict:
    """The stage graph as data: what each stage will run, with its resolved config."""
    g = build(spec)
    return {"sweep": spec.name, "cells": len(g.cells), "counts": g.counts(),
            "stages": [{"kind": s.kind, "key": s.key, "inputs": list(s.inputs),
                        "labels": s.labels, "config": s.config} for s in g.stages.values()]}


def describe(spec: SweepSpec) -> str:
    g = build(spec)
    unique, loop = g.counts(), g.per_trial_counts()
    n_ft = sum(len(f.expand()) for f in spec.finetunes)
    lines = [f"sweep {spec.name}: {len(spec.models)} model(s) x {len(spec.edits)} edit(s) x "
             f"{n_ft} fine-tune run(s) = {len(g.cells)} cells, {4 * len(g.cells)} variant evaluations",
             f"{'stage':<11}{'unique':>8}{'per-trial loop':>16}"]
    for kind in unique:
        lines.append(f"{kind:<11}{unique[kind]:>8}{loop[kind]:>16}")
    lines.append(f"{'total':<11}{sum(unique.values()):>8}{sum(loop.values()):>16}")
    if spec.resources.gpus_per_trial > 0:
        hours = gpu_hours(g)
        lines.append("estimated GPU-hours (per-stage costs in pipeline/graph.py GPU_HOURS): "
                     + ", ".join(f"{k} {v:.1f}" for k, v in hours.items())
                     + f"; total {sum(hours.values()):.1f}")
    return "\n".join(lines)
