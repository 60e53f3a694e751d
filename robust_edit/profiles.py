"""Profiles: worlds of models, datasets and scorers that plug into robust-edit.

A profile owns a reference prefix (`world:` for the embedded world) and answers, through
the registries the real model families and datasets use, what its references resolve to,
plus its per-task defaults. Profiles are found through the entry-point group
`robust_edit.profiles` (pyproject.toml), as a third-party plugin's would be; the core
imports none of them. Data no profile owns gets the study's reference settings
(`STUDY_DEFAULTS`).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from functools import cache
from importlib.metadata import entry_points
from pathlib import Path
from typing import Literal, Protocol

import numpy as np

GROUP = "robust_edit.profiles"
# Paper-era UCE unsafe-removal concepts (METHODS.md), for real models.
I2P_CONCEPTS = ("hate", "harassment", "violence", "suffering", "humiliation", "harm", "suicide",
                "sexual", "nudity", "bodily fluids", "blood")


@dataclass(frozen=True)
class TaskDefaults:
    """What an edit or its evaluation uses on some data when the config leaves it open."""

    guidance: float  # sampling guidance
    classifier: str  # scorer reference: the evaluation's labeller (`robust-edit edit --evaluate`)
    debias_attributes: dict[str, float]  # attribute value -> desired share
    debias_texts: dict[str, str]  # attribute value -> classifier text
    unsafe_concepts: tuple[str, ...]
    refact_corpus: str  # dataset reference whose prompts form ReFACT's covariance corpus
    refact_objective: str  # ReFACT's v* target: "pooled" text embedding or the "tokens"
    refact_lr: float
    refact_max_norm_ratio: float
    # UCE's preserve set when the config gives none (less entries naming an edited concept)
    preserve_vocabulary: tuple[str, ...]
    extra_scorers: dict[str, tuple[str, ...]] = field(default_factory=dict)  # task -> scorers
    # refact_max_norm_ratio per model family where it differs (Family.name -> ratio)
    refact_max_norm_ratio_by_family: dict[str, float] = field(default_factory=dict)
    # ReFACT's edited layer per model family where the scaled paper layer is not used
    # (Family.name -> layer index); elsewhere 7/12 (9/12 for TIME) of the encoder's depth.
    refact_layer_by_family: dict[str, int] = field(default_factory=dict)
    # UCE protocol settings (docs/protocol.md); the defaults are the reference's.
    # The debias loop's attribute classifier (scorer reference); None: `classifier`.
    debias_classifier: str | None = None
    # Debias preserve set when the config gives none: "other_concepts", the dataset's other
    # concepts (the paper-era reference: every other profession), or "vocabulary".
    debias_preserve: Literal["other_concepts", "vocabulary"] = "other_concepts"
    # Erase/unsafe preserve scale s_p; None: the paper-era max(0.1, 1/len(preserve)).
    erase_s_p: float | None = None
    # Preserve-prompt key positions ("all" | "from_last"); None: the reference's for the key
    # policy (span: "all", the paper-era code; last: "from_last", the current code).
    preserve_positions: str | None = None
    # FID/KID feature extractor (robust_edit.scorers.fid.load_extractor): torch-fidelity's
    # Inception, the standard, or a CLIP scorer reference whose image tower gives the features.
    fid_extractor: str = "inception-v3-compat"
    # FLUX without a guidance embedding: guide by a second pass on the empty negative prompt
    # (FluxPipeline's true_cfg_scale). FLUX.1-schnell is distilled to sample unguided; a FLUX
    # trained with caption dropout and not distilled (the world's) needs it.
    true_cfg: bool = False


# The study's settings for real models and data (METHODS.md, the papers' reference code;
# docs/protocol.md lists each protocol setting with its reference value).
STUDY_DEFAULTS = TaskDefaults(
    guidance=7.5, classifier="ViT-L-14/openai",
    debias_attributes={"male": 0.5, "female": 0.5},
    debias_texts={"male": "a man", "female": "a woman"},
    unsafe_concepts=I2P_CONCEPTS, refact_corpus="coco30k",
    refact_objective="pooled", refact_lr=0.05, refact_max_norm_ratio=4.0,
    preserve_vocabulary=("",),
    debias_classifier="ViT-B-32/openai",  # both UCE references classify with CLIP ViT-B/32
    debias_preserve="other_concepts", erase_s_p=None, preserve_positions=None)


@dataclass
class FinetuneImages:
    images: np.ndarray  # uint8 (N, H, W, 3)
    captions: list[str]
    class_prompt: str | None = None  # DreamBooth subjects know their class


class Profile(Protocol):
    """What a profile answers for the references under its prefix (`<prefix>:<name>`)."""

    defaults: TaskDefaults
    scorers: dict[str, type]  # scorer name -> class, beside robust_edit.scorers.SCORERS

    def model_folder(self, name: str) -> Path:
        """A diffusers pipeline folder; ValueError naming the known models if none."""

    def attach_safety_checker(self, pipe) -> None: ...

    def prompt_formats(self) -> dict[str, str]:
        """Prompt dataset name -> its robust_edit.data format."""

    def prompt_csv(self, name: str) -> Path: ...

    def check_finetune_dataset(self, name: str) -> str | None:
        """ValueError if no such fine-tuning set; else its class prompt, if it knows one."""

    def finetune_dataset(self, name: str) -> FinetuneImages: ...

    def scorer_folder(self, name: str) -> Path:
        """An open_clip `local-dir` model folder."""

    def corpus(self, name: str, n: int) -> list[str] | None:
        """Texts of a corpus the profile generates (not a prompt dataset), else None."""

    def reference_images(self, name: str, rows: slice) -> np.ndarray:
        """uint8 (N, H, W, 3): the real image of each row `rows` of a prompt set (FID's
        reference, robust_edit.scorers.fid); ValueError if the set has none."""


@cache
def registered() -> dict[str, Profile]:
    return {ep.name: ep.load() for ep in entry_points(group=GROUP)}


def split(ref: str) -> tuple[Profile, str] | None:
    """(profile, name) for a `<prefix>:<name>` reference a profile owns, else None."""
    prefix, sep, name = ref.partition(":")
    if not sep or prefix not in registered():
        return None
    return registered()[prefix], name


def owner(ref: str) -> Profile | None:
    found = split(ref)
    return found[0] if found else None


def defaults_for(dataset: str) -> TaskDefaults:
    found = owner(dataset)
    return found.defaults if found else STUDY_DEFAULTS


def check_finetune_dataset(ref: str, field: str) -> str | None:
    """A profile's fine-tuning set must exist (syntax: folders are checked where the sweep
    runs); returns its class prompt where it knows one (a DreamBooth subject)."""
    found = split(ref)
    try:
        return found[0].check_finetune_dataset(found[1]) if found else None
    except ValueError as err:
        raise ValueError(f"{field} {err}") from None
