"""Did a fine-tuning run do what it was for? World measurements by the world scorer.

- style: share of images of ordinary prompts the scorer calls ink-styled, and prompt
  adherence per named attribute family on the same images. `content` is the mean over
  colour and shape, the adherence the fine-tuning issue asks for: the ink style itself
  stripes the background, so the background family measures the style as much as the
  prompt;
- DreamBooth: share of instance-prompt images showing the subject's look, and share of
  class-prompt images that stay ordinary. Look vs ordinary is a zero-shot choice between
  the subject's look and the class shape in each world colour; its accuracy on
  ground-truth renders is reported with it.
"""

from __future__ import annotations

import random

import numpy as np

from robust_edit.generate import generate_images
from robust_edit.world import scenes
from robust_edit.world import vocab as V
from robust_edit.world.adherence import WorldAdherence
from robust_edit.world.render import Scene, render
from robust_edit.world.sampling import world_sampling


def style_report(pipe, scorer, n: int = 120, seed: int = 0) -> dict:
    from robust_edit import data

    rows = data.load("world:coco")[:n]
    images = generate_images(pipe, [r.prompt for r in rows], [seed + r.evaluation_seed for r in rows],
                             world_sampling(),
                             desc="style prompts")
    styled = np.array(scorer.classify(images, "style", list(V.STYLE_LABELS))) == V.STYLE_NAME
    scores = WorldAdherence(scorer.ref).score(images, [{"item": i, "prompt": r.prompt}
                                                       for i, r in enumerate(rows)])
    adherence = {}
    for s in scores:
        adherence.setdefault(s["metric"].removeprefix("adherence_"), []).append(s["value"])
    adherence = {f: float(np.mean(v)) for f, v in adherence.items()}
    return {"styled": float(styled.mean()), "images": n,
            "adherence": {**adherence, "content": float(np.mean([adherence["colour"],
                                                                 adherence["shape"]]))}}


def shows_subject(scorer, subject: str, images) -> np.ndarray:
    cls = V.SUBJECTS[subject]["class_noun"]
    texts = {"look": V.zero_shot_text("subject", V.SUBJECTS[subject]["look"])}
    texts |= {c: f'{V.zero_shot_text("colour", c)}, {V.zero_shot_text("shape", cls)}' for c in V.COLOURS}
    return np.array(scorer.labels(images, texts)) == "look"


def subject_classifier_accuracy(scorer, subject: str, n: int = 64, seed: int = 11) -> float:
    """Accuracy of `shows_subject` on ground-truth renders: the subject vs the class shape
    in random colours, sizes and backgrounds."""
    rng = random.Random(seed)
    cls = V.SUBJECTS[subject]["class_noun"]
    look = np.stack([render(scenes.subject_scene(rng, subject)) for _ in range(n)])
    plain = np.stack([render(Scene("object", rng.choice(list(V.BACKGROUNDS)),
                                   colour=rng.choice(list(V.COLOURS)), shape=cls,
                                   size=rng.choice(list(V.SIZES)))) for _ in range(n)])
    return float((shows_subject(scorer, subject, look).sum()
                  + (~shows_subject(scorer, subject, plain)).sum()) / (2 * n))


def dreambooth_report(pipe, scorer, subject: str, n: int = 30, seed: int = 0) -> dict:
    cls = V.SUBJECTS[subject]["class_noun"]
    settings = world_sampling()
    seeds = [seed + i for i in range(n)]
    instance = generate_images(pipe, [f"a {V.SUBJECT_TOKEN} {cls}"] * n, seeds, settings)
    klass = generate_images(pipe, [f"a {cls}"] * n, seeds, settings)
    return {"instance_shows_subject": float(shows_subject(scorer, subject, instance).mean()),
            "class_stays_ordinary": float(1 - shows_subject(scorer, subject, klass).mean()),
            "images": n, "classifier_accuracy_on_renders": subject_classifier_accuracy(scorer, subject)}
