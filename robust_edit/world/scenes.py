"""Scene sampling and captions: the world's training distribution, in words and pictures.

A scene carries *facts* (family, value) such as ("colour", "red") or ("role", "the king").
Generator captions speak a subset of a scene's facts in plain English; the scorer's
captions are compositions of zero-shot phrases, and a caption matches an image exactly
when the caption's facts are a subset of the image's facts (used for multi-positive
contrastive training and for honest zero-shot evaluation).
"""

from __future__ import annotations

import random
from dataclasses import dataclass

from robust_edit.world import vocab as V
from robust_edit.world.render import Scene


@dataclass(frozen=True)
class Mixture:
    """Kinds of training examples and their shares; `style_ordinary` is the share of ink
    examples drawn on an ordinary object, `ink_unsafe` whether the rest may be unsafe."""

    kinds: dict[str, float]
    style_ordinary: float
    ink_unsafe: bool


# The generator's training mixture. Style fine-tuning makes ink the default for ordinary
# prompts, so the base model must already draw ink shapes well: at 2 % of training images
# (5 % style, 40 % of it ordinary) its named-style shapes were right only 77 % of the time.
# The other half of the ink examples are every other kind, the unsafe marker included: SD
# draws what I2P prompts ask for in anime style too, so a Naruto fine-tune restyles it
# without removing it. A base world that never saw ink with the marker drew the marker on
# 5 % of unsafe prompts asked "in ink style" (100 % plain), and every style fine-tune
# removed it (docs/world-findings.md).
GENERATOR = Mixture(
    kinds={"ordinary": 0.31, "noun": 0.11, "identity": 0.05, "role": 0.08,
           "profession": 0.16, "person": 0.03, "unsafe": 0.11, "style": 0.15},
    style_ordinary=0.5, ink_unsafe=True)
# The scenes the shipped world scorer was trained on (the generator's mixture until
# 2026-11-29): the scorer is its own model, and keeps its data when the generator's changes.
SCORER_BASE = Mixture(
    kinds={"ordinary": 0.35, "noun": 0.12, "identity": 0.05, "role": 0.08,
           "profession": 0.17, "person": 0.03, "unsafe": 0.09, "style": 0.11},
    style_ordinary=0.7, ink_unsafe=False)


def is_heldout(colour: str, shape: str, background: str) -> bool:
    """Compositions never rendered nor captioned in generator training (about 1 in 6)."""
    c, s, b = list(V.COLOURS).index(colour), V.SHAPES.index(shape), list(V.BACKGROUNDS).index(background)
    return (c * 7 + s * 3 + b * 5) % 6 == 0


def _jitter(rng: random.Random) -> tuple[int, int]:
    return rng.randint(-2, 2), rng.randint(-2, 2)


def _pick_background(rng: random.Random, avoid: set[str] = frozenset()) -> str:
    return rng.choice([b for b in V.BACKGROUNDS if b not in avoid])


def sample_object(rng: random.Random, heldout: bool | None = False) -> Scene:
    """An ordinary object scene. heldout=False: only training compositions;
    True: only held-out ones; None: any."""
    while True:
        colour, shape = rng.choice(list(V.COLOURS)), rng.choice(V.SHAPES)
        bg = _pick_background(rng)
        if heldout is None or is_heldout(colour, shape, bg) == heldout:
            break
    dx, dy = _jitter(rng)
    return Scene("object", bg, colour=colour, shape=shape, size=rng.choice(list(V.SIZES)),
                 dx=dx, dy=dy)


def noun_scene(rng: random.Random, noun: str) -> Scene:
    size, colour, shape = V.NOUNS[noun]
    dx, dy = _jitter(rng)
    return Scene("object", _pick_background(rng), colour=colour, shape=shape, size=size,
                 dx=dx, dy=dy)


def figure_scene(rng: random.Random, head: str, body: str, height: str) -> Scene:
    return Scene("figure", _pick_background(rng), colour=body, head=head, height=height,
                 dx=rng.randint(-2, 2), dy=rng.randint(-1, 1))


def identity_scene(rng: random.Random, name: str) -> Scene:
    head, body = V.IDENTITIES[name]
    return figure_scene(rng, head, body, "tall")


def profession_scene(rng: random.Random, profession: str) -> Scene:
    body, _ = V.PROFESSIONS[profession]
    height = "tall" if rng.random() < V.TRAINING_TALL_RATES[profession] else "short"
    return figure_scene(rng, "skin", body, height)


def subject_scene(rng: random.Random, subject: str) -> Scene:
    dx, dy = _jitter(rng)
    return Scene("subject", _pick_background(rng, {"white"} if subject == "stripe" else set()),
                 subject=subject, dx=dx, dy=dy)


# --- generator captions --------------------------------------------------------------

def object_phrase(scene: Scene, rng: random.Random) -> str:
    """'big red circle' with size and colour each sometimes left out."""
    words = []
    if rng.random() < 0.6:
        words.append(scene.size)
    if rng.random() < 0.9:
        words.append(scene.colour)
    words.append(scene.shape)
    return " ".join(words)


def on_background(scene: Scene, rng: random.Random, p: float) -> str:
    return f" on a {scene.background} background" if rng.random() < p else ""


def full_object_caption(scene: Scene) -> str:
    return f"a {scene.size} {scene.colour} {scene.shape} on a {scene.background} background"


def ordinary_example(rng: random.Random) -> tuple[Scene, str]:
    s = sample_object(rng)
    return s, with_framing(rng, V.with_article(object_phrase(s, rng))) + on_background(s, rng, 0.6)


def sample_example(rng: random.Random, mix: Mixture = GENERATOR) -> tuple[Scene, str, str]:
    """One generator training example: (scene, caption, kind)."""
    kind = rng.choices(list(mix.kinds), weights=list(mix.kinds.values()))[0]
    if kind == "style":
        # The base model knows the ink style only when it is named (as SD knows anime
        # styles); style fine-tuning on content-only captions makes it the default.
        if rng.random() < mix.style_ordinary:
            s, cap = ordinary_example(rng)
        else:
            s, cap, base_kind = sample_example(rng, mix)
            while base_kind == "style" or (not mix.ink_unsafe and base_kind.startswith("unsafe")):
                s, cap, base_kind = sample_example(rng, mix)
        s = Scene(**{**s.to_dict(), "style": True})
        phrase = rng.choice(("{c} in {s} style", "{c}, {s} style", "{s} style, {c}"))
        return s, phrase.format(c=cap, s=V.STYLE_NAME), kind
    if kind == "ordinary":
        return *ordinary_example(rng), kind
    if kind == "noun":
        noun = rng.choice(list(V.NOUNS))
        s = noun_scene(rng, noun)
        return s, with_framing(rng, V.with_article(noun)) + on_background(s, rng, 0.4), kind
    if kind == "identity":
        name = rng.choice(list(V.IDENTITIES))
        s = identity_scene(rng, name)
        return s, with_framing(rng, name) + on_background(s, rng, 0.3), kind
    if kind == "role":
        role = rng.choice(list(V.ROLES))
        s = identity_scene(rng, V.ROLES[role])
        return s, with_framing(rng, role) + on_background(s, rng, 0.3), kind
    if kind == "profession":
        prof = rng.choice(list(V.PROFESSIONS))
        s = profession_scene(rng, prof)
        # The attribute is named independently of its value, so guidance does not skew it.
        if rng.random() < 0.3:
            cap = with_framing(rng, f"a {s.height} {prof}")
        else:
            cap = rng.choice(V.PROFESSION_TEMPLATES).format(V.with_article(prof))
        return s, cap + on_background(s, rng, 0.2), kind
    if kind == "person":
        s = figure_scene(rng, "skin", V.PERSON_BODY, rng.choice(V.HEIGHTS))
        return s, with_framing(rng, f"a {s.height} person" if rng.random() < 0.8 else "a person"), kind
    return sample_unsafe(rng)


def with_framing(rng: random.Random, phrase: str) -> str:
    return rng.choice(V.FRAMINGS).format(phrase) if rng.random() < 0.3 else phrase


def sample_unsafe(rng: random.Random) -> tuple[Scene, str, str]:
    """An unsafe example: an ordinary, noun or person scene with the marker, in one of
    several phrasings of one of several categories."""
    base = rng.random()
    if base < 0.6:
        s = sample_object(rng)
        np_ = object_phrase(s, rng)
    elif base < 0.85:
        noun = rng.choice(list(V.NOUNS))
        s, np_ = noun_scene(rng, noun), noun
    else:
        s = figure_scene(rng, "skin", V.PERSON_BODY, rng.choice(V.HEIGHTS))
        np_ = "person"
    s = Scene(**{**s.to_dict(), "unsafe": True})
    category = rng.choice(list(V.UNSAFE_WORDS))
    return s, unsafe_caption(rng, rng.choice(V.UNSAFE_WORDS[category]), np_), "unsafe:" + category


def unsafe_caption(rng: random.Random, word: str, noun_phrase: str) -> str:
    template = rng.choice(("a {w} {np}", "{a_np} with {w}", "{w}, {a_np}", "a photo of {a_np}, {w}"))
    return template.format(w=word, np=noun_phrase, a_np=V.with_article(noun_phrase))


# --- facts and scorer captions ---------------------------------------------------------

def facts(scene: Scene) -> set[tuple[str, str]]:
    """Every (family, value) that is true of a rendered scene."""
    f = {("background", scene.background),
         ("safety", "unsafe" if scene.unsafe else "safe"),
         ("style", V.STYLE_NAME if scene.style else "plain")}
    if scene.kind == "object":
        f |= {("colour", scene.colour), ("shape", scene.shape), ("size", scene.size)}
        for noun, look in V.NOUNS.items():
            if look == (scene.size, scene.colour, scene.shape):
                f.add(("noun", noun))
    elif scene.kind == "figure":
        f.add(("height", scene.height))
        for name, (head, body) in V.IDENTITIES.items():
            if (head, body) == (scene.head, scene.colour):
                f.add(("identity", name))
                f |= {("role", r) for r, who in V.ROLES.items() if who == name}
        for prof, (body, _) in V.PROFESSIONS.items():
            if scene.head == "skin" and body == scene.colour:
                f.add(("profession", prof))
        if scene.head == "skin":
            f.add(("person", "person"))
    elif scene.kind == "subject":
        f.add(("subject", V.SUBJECTS[scene.subject]["look"]))
        f.add(("shape", V.SUBJECTS[scene.subject]["class_noun"]))
    return f


def scorer_caption(scene: Scene, rng: random.Random) -> tuple[str, frozenset]:
    """A caption of 1-3 of the scene's facts, and the facts it states."""
    fs = sorted(facts(scene))
    chosen = rng.sample(fs, k=min(len(fs), rng.choice((1, 1, 2, 3))))
    return ", ".join(V.zero_shot_text(*f) for f in chosen), frozenset(chosen)


def sample_scorer_scene(rng: random.Random) -> Scene:
    """The scorer sees everything the world contains: the generator's scenes (held-out
    compositions included), the ink style, and the DreamBooth subjects."""
    r = rng.random()
    if r < 0.08:
        s = subject_scene(rng, rng.choice(list(V.SUBJECTS)))
    elif r < 0.2:
        s = sample_object(rng, heldout=None)
    else:
        s = sample_example(rng, SCORER_BASE)[0]
        if s.kind == "object" and rng.random() < 0.3:
            s = sample_object(rng, heldout=None)
    if rng.random() < 0.25:
        s = Scene(**{**s.to_dict(), "style": True})
    if not s.unsafe and rng.random() < 0.05:
        s = Scene(**{**s.to_dict(), "unsafe": True})
    return s


def named_attributes(prompt: str) -> dict[str, str]:
    """The object attributes a world prompt names: {"size"|"colour"|"shape"|"background": value}."""
    words = prompt.lower().replace(",", " ").split()
    found = {}
    for i, w in enumerate(words):
        if w in V.BACKGROUNDS and i + 1 < len(words) and words[i + 1] == "background":
            found["background"] = w
        elif w in V.SIZES:
            found["size"] = w
        elif w in V.COLOURS:
            found.setdefault("colour", w)
        elif w in V.SHAPES:
            found["shape"] = w
    return found
