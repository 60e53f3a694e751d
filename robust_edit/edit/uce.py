"""UCE (unified concept editing): a closed-form edit of the linear layers that read text.

For one layer `W_old` (d_out x d_in), edit keys `c_i` with targets `v_i*`, preserve keys
`c_j`, ridge `lam`, scales `s_e`, `s_p`:

    A = lam W_old + s_e sum_i v_i* c_i^T + s_p sum_j (W_old c_j) c_j^T
    B = lam I     + s_e sum_i c_i c_i^T  + s_p sum_j c_j c_j^T
    W_new = A B^-1   (solved in float64, never an explicit inverse)

Two modes: `erase` (concept erasure, unsafe moderation) maps concepts to a guide's values;
`debias` iterates generate -> classify -> nudge each concept towards attribute values.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np
import torch

from robust_edit.edit import text_keys
from robust_edit.edit.text_keys import KEY_POLICIES, PRESERVE_POSITIONS, PromptEncoding
from robust_edit.models import Family

DEBIAS_TEMPLATES = ("image of {}", "photo of {}", "portrait of {}", "picture of {}", "{}")


def closed_form(W: torch.Tensor, edit_keys: torch.Tensor, targets: torch.Tensor,
                preserve_keys: torch.Tensor, *, lam: float, s_e: float = 1.0,
                s_p: float = 1.0, factor: torch.Tensor | None = None) -> torch.Tensor:
    """`W_new = A B^-1` with keys as rows: edit_keys (n, d_in), targets (n, d_out),
    preserve_keys (m, d_in). Computed in float64; returned in W's dtype. `factor` is
    B's Cholesky factor (`gram_factor`), shared by every layer that reads the same keys."""
    W64 = W.detach().double()
    ce, v, cp = edit_keys.double(), targets.double(), preserve_keys.double()
    A = lam * W64 + s_e * v.T @ ce + s_p * (cp @ W64.T).T @ cp
    if factor is None:
        factor = gram_factor(ce, cp, lam=lam, s_e=s_e, s_p=s_p)
    # B is symmetric positive definite (lam > 0): W_new B = A  <=>  B W_new^T = A^T.
    return torch.cholesky_solve(A.T, factor).T.to(W.dtype)


def gram_factor(edit_keys: torch.Tensor, preserve_keys: torch.Tensor, *, lam: float,
                s_e: float = 1.0, s_p: float = 1.0) -> torch.Tensor:
    """Cholesky factor of B = lam I + s_e sum c c^T + s_p sum c_p c_p^T."""
    ce, cp = edit_keys.double(), preserve_keys.double()
    B = lam * torch.eye(ce.shape[1], dtype=torch.float64) + s_e * ce.T @ ce + s_p * cp.T @ cp
    return torch.linalg.cholesky(B)


@dataclass(frozen=True)
class Layer:
    name: str  # module name within the denoiser
    reads: str  # "tokens" or "pooled"


def edited_layers(denoiser, family: Family) -> list[Layer]:
    """Every linear layer of the denoiser that UCE edits for this family, in module order."""
    out = []
    for name, module in denoiser.named_modules():
        for suffix, reads in family.uce_layers:
            if (name == suffix or name.endswith("." + suffix)) and isinstance(module, torch.nn.Linear):
                out.append(Layer(name, reads))
    if not out:
        raise ValueError(f"no UCE layers {[s for s, _ in family.uce_layers]} in the {family.name} "
                         f"denoiser; check models.FAMILIES[{family.name!r}].uce_layers")
    return out


# (layer, current weight in float64) -> (edit keys, their targets)
EditRows = Callable[[Layer, torch.Tensor], tuple[torch.Tensor, torch.Tensor]]


def _solve_layers(denoiser, layers: list[Layer], edit_rows: EditRows, preserve: PromptEncoding | None,
                  key_policy: str, preserve_positions: str, lam: float, s_e: float, s_p: float
                  ) -> dict[str, torch.Tensor]:
    """Solve and write every layer; return {layer name: new weight}."""
    modules = dict(denoiser.named_modules())
    out, factors = {}, {}  # keys depend on what a layer reads, not on the layer
    for layer in layers:
        linear = modules[layer.name]
        W = linear.weight.detach().cpu().double()
        ke, ve = edit_rows(layer, W)
        kp = (torch.cat([text_keys.preserve_keys(preserve, r, layer.reads, key_policy,
                                                 preserve_positions)
                         for r in range(preserve.size)]) if preserve is not None
              else torch.zeros(0, W.shape[1]))
        cached = factors.get(layer.reads)
        if cached is None or not (torch.equal(cached[0], ke) and torch.equal(cached[1], kp)):
            cached = factors[layer.reads] = (ke, kp, gram_factor(ke, kp, lam=lam, s_e=s_e, s_p=s_p))
        W_new = closed_form(W, ke, ve, kp, lam=lam, s_e=s_e, s_p=s_p, factor=cached[2])
        with torch.no_grad():
            linear.weight.copy_(W_new.to(linear.weight.dtype))
        out[layer.name] = linear.weight.detach().cpu().clone()
    return out


def _check_policy(key_policy: str, preserve_positions: str | None) -> str:
    """Check both; return the preserve positions (None: the reference's for the key policy)."""
    if key_policy not in KEY_POLICIES:
        raise ValueError(f"key_policy {key_policy!r}: allowed {KEY_POLICIES}")
    if preserve_positions is None:
        return text_keys.REFERENCE_PRESERVE_POSITIONS[key_policy]
    if preserve_positions not in PRESERVE_POSITIONS:
        raise ValueError(f"preserve_positions {preserve_positions!r}: allowed {PRESERVE_POSITIONS}")
    return preserve_positions


@torch.no_grad()
def erase(pipe, family: Family, concepts: Sequence[str], *, guide: str = "",
          preserve: Sequence[str] = ("",), lam: float = 0.5, s_e: float = 1.0, s_p: float = 1.0,
          key_policy: str = "span", preserve_positions: str | None = None
          ) -> dict[str, torch.Tensor]:
    """Map each concept's keys to the guide's values (`v* = W_old c_guide`), in place, while
    keeping what the layers make of each preserve prompt's keys (`preserve_positions`; None:
    the reference's for the key policy, text_keys.REFERENCE_PRESERVE_POSITIONS)."""
    preserve_positions = _check_policy(key_policy, preserve_positions)
    denoiser = getattr(pipe, family.denoiser)
    concept_enc = text_keys.encode(pipe, family, list(concepts))
    guide_enc = text_keys.encode(pipe, family, [guide])

    def edit_rows(layer: Layer, W: torch.Tensor):
        pairs = [text_keys.aligned(concept_enc, i, guide_enc, 0, layer.reads, key_policy)
                 for i in range(len(concepts))]
        return (torch.cat([k for k, _ in pairs]).double(),
                torch.cat([g.double() @ W.T for _, g in pairs]))

    keep = text_keys.encode(pipe, family, list(preserve)) if preserve else None
    return _solve_layers(denoiser, edited_layers(denoiser, family), edit_rows, keep, key_policy,
                         preserve_positions, lam, s_e, s_p)


@dataclass(frozen=True)
class DebiasIteration:
    iteration: int
    observed: dict[str, dict[str, float]]  # concept -> attribute value -> observed share
    edited: list[str]  # concepts nudged after this measurement

    def to_dict(self) -> dict:
        return asdict(self)


def with_article(phrase: str) -> str:
    return ("an " if phrase[:1].lower() in "aeiou" else "a ") + phrase


@torch.no_grad()
def debias(pipe, family: Family, concepts: Sequence[str], attributes: dict[str, float], *,
           classify: Callable[[np.ndarray], list[str]],
           generate: Callable[[list[str], list[int]], np.ndarray],
           images_per_concept: int = 50, tolerance: float = 0.05, max_iterations: int = 30,
           step: float = 0.1, lam: float = 0.5, s_e: float = 1.0, s_p: float = 0.1,
           preserve: Sequence[str] = ("",), templates: Sequence[str] = DEBIAS_TEMPLATES,
           key_policy: str = "last", preserve_positions: str | None = None, seed: int = 0,
           progress: Callable[[DebiasIteration], None] | None = None,
           ) -> tuple[dict[str, torch.Tensor], list[DebiasIteration]]:
    """Iterative UCE debiasing of `concepts` towards `attributes` (value -> desired share).

    Each iteration generates `images_per_concept` images of every concept still off
    target (prompts cycle through `templates`), classifies them, and stops when every
    |share - desired| < tolerance. Otherwise each off-target concept's prompts get
    `v* = W c + sum_a w_a |W c| W c_a / |W c_a|`, `w_a = step (desired_a - observed_a)`,
    where `c_a` is the same prompt with the attribute word before the concept ("photo of
    a tall CEO"). Concepts on target join the preserve set; weights carry over.
    Returns ({layer: new weight}, the per-iteration log).
    """
    preserve_positions = _check_policy(key_policy, preserve_positions)
    if abs(sum(attributes.values()) - 1.0) > 1e-6:
        raise ValueError(f"attributes: desired shares {attributes} must sum to 1")
    denoiser = getattr(pipe, family.denoiser)
    layers = edited_layers(denoiser, family)
    modules = dict(denoiser.named_modules())
    log: list[DebiasIteration] = []
    pending = list(concepts)
    for it in range(max_iterations + 1):
        prompts = [templates[i % len(templates)].format(with_article(c))
                   for c in pending for i in range(images_per_concept)]
        labels = classify(generate(prompts, [seed + it * 100_000 + i for i in range(len(prompts))]))
        observed = {}
        for k, c in enumerate(pending):
            mine = labels[k * images_per_concept:(k + 1) * images_per_concept]
            observed[c] = {a: mine.count(a) / len(mine) for a in attributes}
        off = [c for c in pending
               if any(abs(observed[c][a] - d) >= tolerance for a, d in attributes.items())]
        entry = DebiasIteration(it, observed, off if it < max_iterations else [])
        log.append(entry)
        if progress:
            progress(entry)
        if not entry.edited:
            break
        weights = {c: {a: step * (d - observed[c][a]) for a, d in attributes.items()} for c in off}
        rows = [(c, t) for c in off for t in templates]
        enc = text_keys.encode(pipe, family, [t.format(with_article(c)) for c, t in rows])
        attr_enc = {a: text_keys.encode(pipe, family, [t.format(with_article(f"{a} {c}"))
                                                       for c, t in rows]) for a in attributes}

        def edit_rows(layer: Layer, W: torch.Tensor):
            ke, ve = [], []
            for r, (c, _) in enumerate(rows):
                pairs = {a: text_keys.aligned(enc, r, attr_enc[a], r, layer.reads, key_policy)
                         for a in attributes}
                n = min(len(k) for k, _ in pairs.values())
                kc = pairs[next(iter(attributes))][0][:n].double()
                v = kc @ W.T
                target = v.clone()
                for a, (_, ka) in pairs.items():
                    va = ka[:n].double() @ W.T
                    target += weights[c][a] * v.norm(dim=-1, keepdim=True) * va / va.norm(
                        dim=-1, keepdim=True)
                ke.append(kc)
                ve.append(target)
            return torch.cat(ke), torch.cat(ve)

        on_target = [c for c in concepts if c not in off]
        keep = list(preserve) + [t.format(with_article(c)) for c in on_target for t in templates]
        _solve_layers(denoiser, layers, edit_rows,
                      text_keys.encode(pipe, family, keep) if keep else None,
                      key_policy, preserve_positions, lam, s_e, s_p)
        pending = off
    return {l.name: modules[l.name].weight.detach().cpu().clone() for l in layers}, log


def protocol(cfg, layers: Sequence[str]) -> dict:
    """The resolved UCE protocol settings of docs/protocol.md, under the table's names."""
    p = cfg.uce
    out = {"key_policy": p.key_policy, "preserve": list(p.preserve), "s_p": p.s_p,
           "preserve_positions": p.preserve_positions, "lam": p.lam, "s_e": p.s_e,
           "layers": list(layers)}
    if cfg.task == "debias":
        out["classifier"] = p.classifier
    return out


def run(pipe, family: Family, cfg, cache_dir: Path, progress: bool = True
        ) -> tuple[dict[str, torch.Tensor], dict]:
    """Run a resolved UCE edit config (robust_edit.resolve.edit) on `pipe`, in place.
    Returns ({"<denoiser>.<layer>.weight": tensor}, details for the manifest); UCE's closed
    form needs no cache."""
    from robust_edit.generate import generate_images, settings_of

    p = cfg.uce
    concepts = list(cfg.concepts)
    common = {"preserve": p.preserve, "lam": p.lam, "s_e": p.s_e, "s_p": p.s_p,
              "key_policy": p.key_policy, "preserve_positions": p.preserve_positions}
    if cfg.task in ("unsafe", "erase"):
        weights = erase(pipe, family, concepts, guide=p.guide, **common)
        details = {"concepts": concepts, "guide": p.guide, "preserve": list(p.preserve)}
    else:
        from robust_edit.scorers.clip import ClipScorer

        attributes, texts = dict(p.attributes), dict(p.attribute_texts)
        classifier = ClipScorer(p.classifier, device=str(pipe.device))
        settings = settings_of(cfg.generation)

        def report(entry: DebiasIteration) -> None:
            if progress:
                worst = max(abs(s[a] - attributes[a]) for s in entry.observed.values() for a in s)
                print(f"debias iteration {entry.iteration}: {len(entry.observed)} concept(s) measured, "
                      f"worst |share - desired| = {worst:.3f}, editing {len(entry.edited)}", flush=True)

        weights, log = debias(
            pipe, family, concepts, attributes,
            classify=lambda images: classifier.labels(images, texts),
            generate=lambda prompts, seeds: generate_images(pipe, prompts, seeds, settings,
                                                            desc="debias images"),
            images_per_concept=p.images_per_concept, tolerance=p.tolerance,
            max_iterations=p.max_iterations, step=p.step, seed=cfg.seed, progress=report,
            **common)
        details = {"concepts": concepts, "attributes": attributes, "attribute_texts": texts,
                   "classifier": p.classifier, "generation": asdict(settings),
                   "iterations": [e.to_dict() for e in log]}
    tensors = {f"{family.denoiser}.{name}.weight": w for name, w in weights.items()}
    layers = [f"{family.denoiser}.{name}" for name in weights]
    return tensors, {**details, "key_policy": p.key_policy, "protocol": protocol(cfg, layers)}
