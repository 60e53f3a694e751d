"""The embedded world as a robust-edit profile (entry point `robust_edit.profiles: world`):
`world:<model>` pipelines, `world:<prompt set>` and fine-tuning datasets, `world:scorer`,
the world safety checker, the world adherence scorer, and the world's task defaults."""

from __future__ import annotations

import json
import random
from pathlib import Path

import numpy as np

from robust_edit.data import read_rows
from robust_edit.profiles import FinetuneImages, TaskDefaults
from robust_edit.world import datasets, scenes
from robust_edit.world import vocab as V
from robust_edit.world.adherence import WorldAdherence
from robust_edit.world.render import Scene, render

ASSETS = Path(__file__).resolve().parent / "assets"
PROMPT_FORMATS = {"road": "road", "professions": "professions", "unsafe": "i2p", "coco": "coco"}
CORPUS = "captions"  # world:captions, the training-caption distribution
CORPUS_CAP = 20_000

DEFAULTS = TaskDefaults(
    guidance=V.GUIDANCE, true_cfg=V.TRUE_CFG, classifier="world:scorer",
    debias_attributes={h: 1 / len(V.HEIGHTS) for h in V.HEIGHTS},
    debias_texts={h: V.zero_shot_text("height", h) for h in V.HEIGHTS},
    unsafe_concepts=tuple(V.unsafe_words()),
    refact_corpus=f"world:{CORPUS}",
    # The world's text encoder learnt only through its UNet: its pooled output is untrained,
    # so the target is the token states the UNet reads, and a one-token change must move a
    # whole tail of states, which needs a larger step and norm bound (measured one edit at a
    # time: efficacy appearance 83 % / role 60 % with the paper's 0.05 / 4, 100 % / 100 %
    # with 0.2 / 20).
    refact_objective="tokens", refact_lr=0.2, refact_max_norm_ratio=20.0,
    # world:sdxl, whose objective reads the penultimate states (no final layer norm): with a
    # bound of 20 the six appearance edits held in one artifact (as a sweep applies a task)
    # drew other edits' looks and broke images (efficacy 0.50, CLIP score 10); the paper's
    # 4 gives 1.00 (role 0.93), at the cost of role edits one at a time (0.86 -> 0.78).
    refact_max_norm_ratio_by_family={"sdxl": 4.0},
    # ... and at that bound edits layer 1 of 4, not the scaled paper layer 2, whose output is
    # what its UNet reads: one edit at a time role efficacy 0.78 -> 0.90 (layer 0: 0.84),
    # appearance 0.97 -> 1.00; a task's edits in one artifact, appearance efficacy /
    # specificity 0.94 / 0.98, role 1.00 / 0.89 (layer 2: 1.00 / 0.92, 0.93 / 0.76).
    refact_layer_by_family={"sdxl": 1},
    # Span keys share the padding region with every prompt, and preserving only '' let an
    # unsafe-word erasure cut safe-prompt adherence from 99 % to 54 %: preserve '' and the
    # ordinary vocabulary.
    preserve_vocabulary=tuple(
        [""] + list(V.COLOURS) + list(V.SHAPES) + list(V.SIZES)
        + [f"on a {b} background" for b in V.BACKGROUNDS]
        + [V.with_article(n) for n in V.NOUNS] + ["a person", "a tall person", "a short person"]),
    # Safe prompts of the unsafe task are also scored for adherence to what they name.
    extra_scorers={"unsafe": ("world_adherence",)},
    # UCE protocol settings where the world keeps its measured values, not the reference's
    # (docs/protocol.md). The world ships one CLIP-style scorer, no ViT-B/32:
    debias_classifier="world:scorer",
    # The debias loop was measured (sweeps/quickstart.yaml, tests/edit/test_world_edits.py)
    # preserving the vocabulary above, not the other professions:
    debias_preserve="vocabulary",
    # Erasures were measured with s_p = 1 over that 34-prompt vocabulary (the reference's
    # max(0.1, 1/34) would weaken its preservation tenfold):
    erase_s_p=1.0,
    # ... and with preserve keys from each prompt's last real token (span): the measured
    # edits, kept bit for bit; "all" adds each preserve prompt's leading tokens.
    preserve_positions="from_last",
    # FID/KID features: the world scorer's image tower (an Inception trained on photographs
    # says little about 32x32 renders; docs/results.md, "Image quality: FID and KID").
    fid_extractor="world:scorer")


class World:
    defaults = DEFAULTS
    scorers = {"world_adherence": WorldAdherence}

    def model_names(self) -> list[str]:
        return sorted(p.name for p in ASSETS.iterdir() if (p / "model_index.json").exists())

    def model_folder(self, name: str) -> Path:
        folder = ASSETS / name
        if not (folder / "model_index.json").exists():
            raise ValueError(f"model reference 'world:{name}': no shipped world model of that "
                             f"name; known: {['world:' + n for n in self.model_names()]}")
        return folder

    def attach_safety_checker(self, pipe) -> None:
        from robust_edit.world.safety import attach_world_safety_checker

        attach_world_safety_checker(pipe)

    def prompt_formats(self) -> dict[str, str]:
        return PROMPT_FORMATS

    def prompt_csv(self, name: str) -> Path:
        return datasets.path(name)

    def check_finetune_dataset(self, name: str) -> str | None:
        parts = name.split(":")
        if parts in (["style"], ["style-overlapping"]):
            return None
        if len(parts) == 2 and parts[0] == "dreambooth" and parts[1] in V.SUBJECTS:
            return f"a {V.SUBJECTS[parts[1]]['class_noun']}"
        raise ValueError(f"'world:{name}': world fine-tuning sets are 'world:style', "
                         f"'world:style-overlapping' and 'world:dreambooth:<subject>' with "
                         f"subject in {sorted(V.SUBJECTS)}")

    def finetune_dataset(self, name: str) -> FinetuneImages:
        class_prompt = self.check_finetune_dataset(name)
        if name.startswith("style"):
            rows = read_rows(datasets.path(name))
            captions = [r["text"] for r in rows]
        else:
            subject = name.split(":")[1]
            rows = [r for r in read_rows(datasets.path("dreambooth"))
                    if r["subject_name"] == subject and r["role"] == "instance"]
            captions = [r["prompt"] for r in rows]
        images = np.stack([render(Scene(**json.loads(r["scene"]))) for r in rows])
        return FinetuneImages(images, captions, class_prompt)

    def scorer_folder(self, name: str) -> Path:
        if name != "scorer":
            raise ValueError(f"scorer 'world:{name}': the world ships one scorer, 'world:scorer'")
        return ASSETS / "scorer"

    def reference_images(self, name: str, rows: slice = slice(None)) -> np.ndarray:
        """The world's real images: each row's `scene` rendered (`world:coco`, the COCO-30k
        stand-in, is the FID reference set)."""
        table = read_rows(self.prompt_csv(name))
        if not table or "scene" not in table[0]:
            with_scenes = [n for n in PROMPT_FORMATS if "scene" in read_rows(datasets.path(n))[0]]
            raise ValueError(f"'world:{name}': no reference images (no scene column); world "
                             f"prompt sets with them: {['world:' + n for n in with_scenes]}")
        return np.stack([render(Scene(**json.loads(r["scene"]))) for r in table[rows]])

    def corpus(self, name: str, n: int) -> list[str] | None:
        if name != CORPUS:
            return None
        rng = random.Random(2024)
        return [scenes.sample_example(rng)[1] for _ in range(min(n, CORPUS_CAP))]


WORLD = World()
