"""The sweep's stage graph: every unique unit of work once, keyed by content.

A sweep's cells are (model, edit, fine-tune run). Each cell has four variants:
M (the model), M_ed (model + edit), M_ft (model + fine-tune), M_ed_ft (model + edit +
fine-tune), or those of them `evaluation.variants` names (a control study: M and M_ft).
M and M_ed do not depend on the fine-tune and M_ft not on the edit, so the graph holds:
- edit stages: one per (model, edit);
- fine-tune stages: one per (model, fine-tune run) for M_ft and per (model, edit,
  fine-tune run) for M_ed_ft;
- generate stages: one per (variant, the edit task's prompt set) - M and M_ft are
  generated once per task prompt set and reused by every cell that needs them; with
  `evaluation.checkpoints`, also M_ft@step and M_ed_ft@step from kept checkpoints; with
  `evaluation.quality`, the four variants' images of the image-quality prompts;
- score stages: one per generate stage;
- one aggregate stage.
Each key hashes the stage's kind, its own config, the code version of the modules that
compute it, and the keys of the stages it reads, so a changed input changes every key
downstream of it and nothing else.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass, field
from functools import cache
from pathlib import Path

from robust_edit import resolve
from robust_edit.cache import file_sha256
from robust_edit.config import EditConfig, FinetuneConfig, PromptSet, SweepSpec, runs_on

# A cell's axes: the columns of its result rows besides the variant.
AXES = ("model", "edit", "method", "task", "finetune", "ft_method", "rank", "ft_seed")
PACKAGE = Path(__file__).resolve().parent.parent
# Which files are code or data a stage reads: the package's source, its SQL and its CSV
# and JSON data. Model weights are keyed by content separately (model_fingerprint).
CODE_SUFFIXES = (".py", ".sql", ".csv", ".json")


@cache
def code_version() -> str:
    """Every source file of the package and the analysis SQL: a change anywhere in what any
    stage could import or read changes every key (safe; no hand-kept list to go stale)."""
    h = hashlib.sha256()
    for root in (PACKAGE, PACKAGE.parent / "analysis"):
        for f in sorted(p for p in root.rglob("*") if p.suffix in CODE_SUFFIXES and p.is_file()
                        and "__pycache__" not in p.parts):
            h.update(str(f.relative_to(PACKAGE.parent)).encode() + b"\0" + f.read_bytes())
    return h.hexdigest()[:12]


def model_fingerprint(ref: str) -> dict:
    """What identifies a model's weights: a local folder's file contents, or a hub id with
    the revision it resolves to."""
    from robust_edit.models import hub_revision, resolve

    target = Path(resolve(ref))
    if not target.exists():
        return {"hub": ref, "revision": hub_revision(ref)}
    return {"files": files_sha256(target)}


def data_fingerprint(ref: str) -> dict:
    """What identifies a dataset's content: a real dataset's pinned sha256 (robust_edit.data
    refuses any other content), a local image folder's files, a hub dataset's revision (in
    its pinned reference). A profile's data is package data, in code_version."""
    from robust_edit.data import REAL_DATASETS

    if ref in REAL_DATASETS:
        return {"sha256": REAL_DATASETS[ref].sha256}
    if Path(ref).is_dir():
        return {"files": files_sha256(Path(ref))}
    return {}


def files_sha256(folder: Path) -> dict[str, str]:
    """Every file below a folder (a model's, a dataset's): relative path -> sha256."""
    return {str(p.relative_to(folder)): file_sha256(p)
            for p in sorted(folder.rglob("*")) if p.is_file()}


def content_key(kind: str, config: dict, inputs: tuple[str, ...] = ()) -> str:
    payload = json.dumps({"kind": kind, "config": config, "code": code_version(),
                          "inputs": list(inputs)}, sort_keys=True, default=str)
    return hashlib.sha256(payload.encode()).hexdigest()[:20]


@dataclass(frozen=True)
class Stage:
    kind: str  # edit | finetune | generate | score | aggregate
    key: str
    config: dict = field(hash=False, compare=False)
    inputs: tuple[str, ...] = ()  # keys of the stages this one reads
    labels: dict = field(default_factory=dict, hash=False, compare=False)  # axes for results


@dataclass
class Graph:
    spec: SweepSpec
    stages: dict[str, Stage] = field(default_factory=dict)
    cells: list[dict] = field(default_factory=list)  # per cell: axes + the four variants' keys

    def add(self, stage: Stage) -> Stage:
        return self.stages.setdefault(stage.key, stage)

    def by_kind(self, kind: str) -> list[Stage]:
        return [s for s in self.stages.values() if s.kind == kind]

    def counts(self) -> dict[str, int]:
        return {k: len(self.by_kind(k)) for k in ("edit", "finetune", "generate", "score", "aggregate")}

    def per_trial_counts(self) -> dict[str, int]:
        """What a per-cell loop executes: each cell edits (for M_ed, M_ed_ft), fine-tunes
        (M_ft, M_ed_ft), and generates and scores all its variants (and their quality sets)
        itself."""
        has = [set(c["variants"]) for c in self.cells]
        images = sum(len(c["variants"]) + len(c.get("quality", {})) for c in self.cells)
        return {"edit": sum(bool(v & {"M_ed", "M_ed_ft"}) for v in has),
                "finetune": sum(len(v & {"M_ft", "M_ed_ft"}) for v in has),
                "generate": images, "score": images, "aggregate": 1}


def adapter_rank(ft: FinetuneConfig) -> int | None:
    """The rank axis of a result row: LoRA/DoRA only (full and DreamBooth have none)."""
    return ft.rank if ft.method in ("lora", "dora") else None


# Stages hold and hash resolved configs (robust_edit.resolve). Names of edits and
# fine-tunes are labels: in result rows and the aggregate's tables, in no other key, so
# renaming one recomputes only the aggregate.
def _edit_stage(model: str, model_key: str, edit: EditConfig) -> Stage:
    cfg = {"model": model, "model_key": model_key, "edit": edit.model_dump(mode="json", exclude={"name", "models"}),
           "data": {ref: data_fingerprint(ref) for ref in
                    (edit.dataset, edit.refact.corpus if edit.method == "refact" else None) if ref}}
    return Stage("edit", content_key("edit", cfg), cfg, (),
                 {"model": model, "edit": edit.name, "method": edit.method, "task": edit.task})


def _finetune_stage(model: str, model_key: str, ft: FinetuneConfig, name: str,
                    edit: Stage | None, keep_steps: tuple[int, ...] = ()) -> Stage:
    cfg = {"model": model, "model_key": model_key,
           "finetune": ft.model_dump(mode="json", exclude={"name"}), "data": data_fingerprint(ft.dataset)}
    if keep_steps:  # checkpoints evaluated as variants stay after the run
        cfg["keep_steps"] = list(keep_steps)
    inputs = (edit.key,) if edit else ()
    return Stage("finetune", content_key("finetune", cfg, inputs), cfg, inputs,
                 {"model": model, "finetune": name, "ft_method": ft.method, "rank": adapter_rank(ft),
                  "ft_seed": ft.seed, "edit": edit.labels["edit"] if edit else None})


def _generate(g: Graph, variant: str, source: str, labels: dict, prompt_set: PromptSet,
              step: int | None = None) -> Stage:
    """The generate stage of one variant's images of a prompt set, and its score stage."""
    cfg = {"variant": variant, "prompt_set": prompt_set.model_dump(mode="json"),
           "seeds": g.spec.evaluation.seeds, "row_seeds": g.spec.evaluation.row_seeds,
           "data": data_fingerprint(prompt_set.dataset)}
    if step is not None:  # a fine-tune's checkpoint (variant M_ft@step, M_ed_ft@step)
        cfg["step"] = step
    name = variant if step is None else f"{variant}@{step}"
    gen = g.add(Stage("generate", content_key("generate", cfg, (source,)), cfg, (source,),
                      {**labels, "variant": name, "task": prompt_set.task}))
    scorer = {"scorer": g.spec.evaluation.scorer}
    g.add(Stage("score", content_key("score", scorer, (gen.key,)), scorer, (gen.key,), gen.labels))
    return gen


def build(spec: SweepSpec) -> Graph:
    g = Graph(spec)
    ck, quality = spec.evaluation.checkpoints, spec.evaluation.quality
    wanted = spec.evaluation.variants  # without M_ed and M_ed_ft no edit runs
    for model in spec.models:
        model_key = content_key("model", model_fingerprint(model))
        resolved = {e.name: resolve.edit(e, model) for e in spec.edits if runs_on(e, model)}
        edits = {n: g.add(_edit_stage(model, model_key, e)) for n, e in resolved.items()
                 if {"M_ed", "M_ed_ft"} & set(wanted)}
        runs = [(f.name, resolve.finetune(cfg, model)) for f in spec.finetunes if runs_on(f, model)
                for cfg in f.expand()]
        decayed = frozenset(ck.edits or resolved) if ck else frozenset()
        quality_set = quality and PromptSet.quality(
            quality, resolve.generation(spec.evaluation.generation, quality.dataset))
        quality_edits = frozenset(quality.edits or resolved) if quality else frozenset()

        def decay_steps(c: FinetuneConfig, edit: str | None, decayed: frozenset = decayed) -> tuple[int, ...]:
            """The checkpoint steps drawn as variants: in the cells of the edits that decay
            (edit None, the unedited run: in any edit's cells)."""
            return ck.of(c) if (edit in decayed if edit else decayed) else ()

        def keep(c: FinetuneConfig, edit: str | None) -> tuple[int, ...]:
            """The checkpoints a fine-tune keeps: its variant's (M_ft, or M_ed_ft of `edit`)
            steps, where the spec draws that variant at steps."""
            variant = "M_ed_ft" if edit else "M_ft"
            return decay_steps(c, edit) if ck and variant in ck.variants else ()

        ft_plain = {(n, c.rank, c.seed): g.add(_finetune_stage(model, model_key, c, n, None, keep(c, None)))
                    for n, c in runs if "M_ft" in wanted}
        for e in resolved.values():
            prompt_set = PromptSet.of(e, resolve.generation(spec.evaluation.generation, e.dataset))
            for n, c in runs:
                labels = {"model": model, "finetune": n, "rank": adapter_rank(c), "ft_seed": c.seed}
                sources = {"M": (model_key, {"model": model})}
                if "M_ed" in wanted:
                    sources["M_ed"] = (edits[e.name].key, {"model": model, "edit": e.name})
                if "M_ft" in wanted:
                    sources["M_ft"] = (ft_plain[(n, c.rank, c.seed)].key, labels)
                if "M_ed_ft" in wanted:
                    ed_ft = g.add(_finetune_stage(model, model_key, c, n, edits[e.name], keep(c, e.name)))
                    sources["M_ed_ft"] = (ed_ft.key, {**labels, "edit": e.name})
                variants = {v: _generate(g, v, key, lab, prompt_set).key for v, (key, lab) in sources.items()}
                # The fine-tuning step each variant is at (M and M_ed: step 0).
                steps = {"M": 0, "M_ed": 0, "M_ft": c.steps, "M_ed_ft": c.steps}
                for step in decay_steps(c, e.name):
                    for v in ck.variants:
                        key, lab = sources[v]
                        variants[f"{v}@{step}"] = _generate(g, v, key, lab, prompt_set, step).key
                        steps[f"{v}@{step}"] = step
                cell = {"cell": content_key("cell", variants), "model": model, "edit": e.name,
                        "method": e.method, "task": e.task, "finetune": n, "ft_method": c.method,
                        "rank": adapter_rank(c), "ft_seed": c.seed, "variants": variants, "steps": steps}
                if e.name in quality_edits:  # the same four models drawing the image-quality prompts
                    cell["quality"] = {v: _generate(g, v, key, lab, quality_set).key
                                       for v, (key, lab) in sources.items()}
                g.cells.append(cell)
    scores = tuple(sorted(s.key for s in g.by_kind("score")))
    # The aggregate's tables print the names, so they are in its key; and where it writes;
    # and how it measures image quality (FID and KID are computed there, per set).
    names = {"sweep": spec.name, "cells": [{k: v for k, v in c.items() if k != "variants"}
                                           for c in g.cells],
             "storage": str(Path(spec.storage).expanduser().resolve()),
             "tracking": spec.tracking.model_dump(mode="json"),
             "quality": quality and quality.model_dump(mode="json")}
    g.add(Stage("aggregate", content_key("aggregate", names, scores), names, scores))
    return g


# Rough GPU-hours per stage on one A100/H100-class GPU, per model family (planning only;
# replace with measured per-stage costs from a pilot run's ledger).
GPU_HOURS = {
    "sd": {"edit": 0.05, "finetune_per_1k_steps": 0.5, "generate_per_1k_images": 0.35, "score_per_1k_images": 0.02},
    "sdxl": {"edit": 0.1, "finetune_per_1k_steps": 1.5, "generate_per_1k_images": 1.2, "score_per_1k_images": 0.02},
    "flux": {"edit": 0.1, "finetune_per_1k_steps": 3.0, "generate_per_1k_images": 0.6, "score_per_1k_images": 0.02},
}
