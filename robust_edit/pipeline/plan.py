"""`robust-edit sweep plan`: the graph's size, and GPU-hours for GPU specs."""

from __future__ import annotations

from robust_edit.config import SweepSpec
from robust_edit.pipeline.graph import GPU_HOURS, Graph, build

ROAD_PROMPTS_PER_EDIT = 11  # the edit prompt, 5 positives, 5 negatives


def images_per_generate(spec: SweepSpec) -> dict[str, int]:
    """Images one variant generates for each edit's prompt set."""
    from robust_edit import data
    from robust_edit.edit import tasks

    out = {}
    for e in spec.edits:
        if e.task in ("appearance", "role"):
            out[e.name] = len(tasks.road_rows(e)) * ROAD_PROMPTS_PER_EDIT * spec.evaluation.seeds
        elif e.task == "debias":
            concepts = set(tasks.debias_concepts(e))
            out[e.name] = sum(r.group in concepts for r in data.load(e.dataset))
        else:
            out[e.name] = len(data.load(e.dataset)[e.row_slice()])
    return out


def gpu_hours(graph: Graph) -> dict[str, float]:
    from robust_edit.models import family_of

    spec = graph.spec
    images = images_per_generate(spec)
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
            edit = next(e.name for e in spec.edits if e.task == s.labels["task"])
            key = "generate_per_1k_images" if s.kind == "generate" else "score_per_1k_images"
            hours[s.kind] += cost[key] * images[edit] / 1000
    return hours


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
