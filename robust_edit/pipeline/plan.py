"""`robust-edit sweep plan`: the graph's size, and GPU-hours for GPU specs."""

from __future__ import annotations

import json
from functools import cache
from pathlib import Path

from robust_edit.config import SweepSpec, runs_on
from robust_edit.pipeline.graph import GPU_HOURS, Graph, build


def check(spec: SweepSpec) -> Graph:
    """Everything about a spec that can be known before compute without the machine that
    runs it (check_runtime checks that one): the graph resolves, row ranges lie in
    their datasets, scorers and classifiers exist, datasets are known and the packages they
    need installed, no two fine-tunes are the same run. Returns the graph."""
    from robust_edit import data, resolve
    from robust_edit.finetune.data import check as check_finetune_data
    from robust_edit.scorers.clip import check_reference

    graph = build(spec)
    check_reference(spec.evaluation.scorer, "evaluation.scorer")
    for e in spec.edits:
        field = f"edits[{e.name}]"
        if e.rows is not None:
            n, rows = len(data.load(e.dataset)), e.row_slice()
            start, stop = rows.start or 0, n if rows.stop is None else rows.stop
            if not 0 <= start < stop <= n:
                raise ValueError(f"{field}.rows {e.rows!r}: dataset {e.dataset} has {n} rows; "
                                 f"give a non-empty range within '0:{n}'")
        if e.task == "debias":
            check_reference(resolve.edit(e).uce.classifier, f"{field}.uce.classifier")
    seen: dict[str, str] = {}
    for f in spec.finetunes:
        check_finetune_data(f.dataset, f"finetunes[{f.name}].dataset", folders=False)
        same = json.dumps([resolve.finetune(c).model_dump(mode="json", exclude={"name"})
                           for c in f.expand()], sort_keys=True)
        if same in seen:
            raise ValueError(f"finetunes[{f.name}]: the same runs as finetunes[{seen[same]}] "
                             "under another name; remove one (or change what differs)")
        seen[same] = f.name
    return graph


def check_runtime(spec: SweepSpec) -> None:
    """What only the machine that runs the sweep can check, before any compute: the
    storage root is writable, hub datasets are pinned, hub models can be loaded."""
    import os

    probe = Path(spec.storage).expanduser()
    while not probe.exists():
        probe = probe.parent
    if not probe.is_dir() or not os.access(probe, os.W_OK):
        raise ValueError(f"storage {spec.storage!r}: {probe} is not a writable directory; "
                         "choose a path you can write to")
    from robust_edit.finetune.data import check as check_finetune_data
    from robust_edit.finetune.data import check_pinned, pinned
    from robust_edit.models import hub_revision
    from robust_edit.models import resolve as model_path

    for f in spec.finetunes:
        check_finetune_data(f.dataset, f"finetunes[{f.name}].dataset")
        check_pinned(pinned(f.dataset), f"finetunes[{f.name}].dataset")  # as resolve.finetune pins it
    for m in spec.models:  # the same message as load_pipeline's, before compute
        if not Path(model_path(m)).exists() and hub_revision(m) == "unresolved":
            raise ValueError(f"models: {m!r} is not in the local Hugging Face cache and the hub "
                             f"cannot be reached; download it where it can (hf download {m}) or "
                             "set HF_HOME")


def images_per_generate(graph: Graph) -> dict[str, int]:
    """Images each generate stage draws: its prompt set's evaluation items."""
    from robust_edit.config import PromptSet
    from robust_edit.edit.evaluate import items

    @cache
    def count(prompt_set: str, seeds: int, row_seeds: int) -> int:
        return len(items(PromptSet.model_validate_json(prompt_set), seeds, row_seeds))

    return {s.key: count(json.dumps(s.config["prompt_set"]), s.config["seeds"], s.config["row_seeds"])
            for s in graph.by_kind("generate")}


def stage_hours(graph: Graph) -> dict[str, float]:
    """Estimated GPU-hours of each stage but the aggregate (GPU_HOURS: planning only)."""
    from robust_edit.models import family_of

    images = images_per_generate(graph)
    hours = {}
    for s in graph.stages.values():
        if s.kind == "aggregate":
            continue
        cost = GPU_HOURS[family_of(s.labels["model"]).name]
        if s.kind == "edit":
            hours[s.key] = cost["edit"]
        elif s.kind == "finetune":
            hours[s.key] = cost["finetune_per_1k_steps"] * s.config["finetune"]["steps"] / 1000
        else:
            gen = s.key if s.kind == "generate" else s.inputs[0]
            key = "generate_per_1k_images" if s.kind == "generate" else "score_per_1k_images"
            hours[s.key] = cost[key] * images[gen] / 1000
    return hours


def gpu_hours(graph: Graph) -> dict[str, float]:
    """Estimated GPU-hours per stage kind."""
    hours = {"edit": 0.0, "finetune": 0.0, "generate": 0.0, "score": 0.0}
    for key, h in stage_hours(graph).items():
        hours[graph.stages[key].kind] += h
    return hours


def as_json(spec: SweepSpec) -> dict:
    """The stage graph as data: what each stage will run, with its resolved config."""
    g = check(spec)
    return {"sweep": spec.name, "cells": len(g.cells), "counts": g.counts(),
            "stages": [{"kind": s.kind, "key": s.key, "inputs": list(s.inputs),
                        "labels": s.labels, "config": s.config} for s in g.stages.values()]}


def describe(spec: SweepSpec) -> str:
    from robust_edit.models import family_of

    g = check(spec)
    unique, loop = g.counts(), g.per_trial_counts()
    variants = sum(len(c["variants"]) for c in g.cells)
    lines = [f"sweep {spec.name}: {len(g.cells)} cells, {variants} variant evaluations"]
    for model in spec.models:
        edits = [e.name for e in spec.edits if runs_on(e, model)]
        runs = sum(len(f.expand()) for f in spec.finetunes if runs_on(f, model))
        cells = sum(c["model"] == model for c in g.cells)
        lines.append(f"  {model} ({family_of(model).name}): {len(edits)} edit(s) x {runs} "
                     f"fine-tune run(s) = {cells} cells")
    lines.append(f"{'stage':<11}{'unique':>8}{'per-trial loop':>16}")
    for kind in unique:
        lines.append(f"{kind:<11}{unique[kind]:>8}{loop[kind]:>16}")
    lines.append(f"{'total':<11}{sum(unique.values()):>8}{sum(loop.values()):>16}")
    if spec.resources.gpus_per_trial > 0:
        hours = gpu_hours(g)
        lines.append("estimated GPU-hours (per-stage costs in pipeline/graph.py GPU_HOURS): "
                     + ", ".join(f"{k} {v:.1f}" for k, v in hours.items())
                     + f"; total {sum(hours.values()):.1f}")
    return "\n".join(lines)
