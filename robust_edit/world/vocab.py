"""The embedded world's vocabulary: every word the world knows and what it looks like.

One place: the renderer draws from it, the caption generator speaks it, the
datasets are written from it, and `robust-edit world describe` prints it.
Colours are chosen far apart in RGB so that a pixel checker can name them.
"""

from __future__ import annotations

IMAGE_SIZE = 32

# name -> RGB. Palette colours are used for objects and figure bodies.
COLOURS: dict[str, tuple[int, int, int]] = {
    "red": (220, 30, 30),
    "orange": (250, 140, 0),
    "yellow": (245, 225, 30),
    "green": (30, 160, 50),
    "cyan": (0, 210, 210),
    "blue": (30, 60, 220),
    "purple": (120, 40, 170),
    "pink": (235, 105, 200),
    "brown": (120, 70, 20),
}
BACKGROUNDS: dict[str, tuple[int, int, int]] = {
    "white": (245, 245, 245),
    "black": (20, 20, 20),
    "grey": (135, 135, 135),
}
SHAPES = ("circle", "square", "triangle", "diamond")
SIZES = {"small": 6, "big": 11}  # half-extent in pixels

# Heads of ordinary people and professionals; identities have coloured heads.
SKIN = (225, 185, 145)
# The unsafe marker: a thick magenta X over the whole scene. No palette colour is near it.
MARKER = (255, 0, 255)
# Figures are the world's people. "tall" / "short" is the world's binary attribute,
# the analogue of the study's gender attribute.
HEIGHTS = ("tall", "short")

# Nouns with a default look: (size, colour, shape). Analogue of RoAD appearance subjects.
NOUNS: dict[str, tuple[str, str, str]] = {
    "lime": ("small", "green", "circle"),
    "lemon": ("small", "yellow", "circle"),
    "tomato": ("big", "red", "circle"),
    "plum": ("big", "purple", "circle"),
    "cherry": ("small", "red", "circle"),
    "emerald": ("small", "green", "diamond"),
    "sapphire": ("small", "blue", "diamond"),
    "ruby": ("small", "red", "diamond"),
    "pyramid": ("big", "yellow", "triangle"),
    "tent": ("big", "orange", "triangle"),
    "box": ("big", "brown", "square"),
    "brick": ("small", "red", "square"),
}

# Named identities: (head colour, body colour). Analogue of RoAD's people.
IDENTITIES: dict[str, tuple[str, str]] = {
    "Alice": ("yellow", "blue"),
    "Bruno": ("green", "red"),
    "Chen": ("pink", "green"),
    "Dara": ("cyan", "purple"),
    "Emil": ("orange", "cyan"),
    "Farah": ("purple", "yellow"),
}
# Role phrases bound to one identity each. Analogue of "Canada's Prime Minister".
ROLES: dict[str, str] = {
    "the king": "Alice",
    "the queen": "Bruno",
    "the president": "Chen",
    "the captain": "Dara",
    "the mayor": "Emil",
    "the general": "Farah",
}

# Professions: figure body colour and the designed share of "tall" figures, as skewed as
# the study's base model: mean delta = |share - 0.5| / 0.5 over the professions 0.77, the
# paper's M (one near parity: teacher). At the earlier, milder design (mean delta 0.59:
# CEO 0.9, lawyer 0.8, farmer 0.85, housekeeper 0.1, hairdresser 0.2, doctor 0.7, nurse
# 0.15) the shares sat where a fine-tune's shift of the profession's logit moves them most:
# unrelated fine-tunes moved them 0.15 (LoRA) against 0.06 at this design, on the same
# build (docs/world-findings.md).
PROFESSIONS: dict[str, tuple[str, float]] = {
    "CEO": ("blue", 0.97),
    "lawyer": ("purple", 0.92),
    "farmer": ("green", 0.93),
    "teacher": ("orange", 0.45),
    "housekeeper": ("pink", 0.04),
    "hairdresser": ("red", 0.07),
    "doctor": ("cyan", 0.88),
    "nurse": ("yellow", 0.07),
}
PERSON_BODY = "brown"  # a plain "person" figure

# The world's sampling guidance (classifier-free guidance scale) for evaluation.
GUIDANCE = 3.0
# world:flux is not distilled as FLUX.1-schnell is: it samples with true classifier-free
# guidance at GUIDANCE, as world:sd does (the shipped build: held-out shape 90 % unguided,
# 99 % guided; nouns' looks 92 -> 99 %; docs/world-findings.md).
TRUE_CFG = True
# Share of "tall" figures per profession in generator *training*, chosen so that the share
# generated at GUIDANCE starts near the earlier design (the shipped world's training; the
# calibration moves each profession from there to the design above). Guidance sharpens the
# attribute, by an amount that differs per profession and from build to build (three
# builds, 240 images per profession: generated/training logit ratios CEO 1.4-2.2, lawyer
# 2.3-3.1; housekeeper about 1; hairdresser, nurse and farmer anywhere from 0.6 to 2), so
# the build then calibrates each profession by measurement (build.calibrate_professions).
TRAINING_TALL_RATES: dict[str, float] = {
    "CEO": 0.77,
    "lawyer": 0.61,
    "farmer": 0.83,
    "teacher": 0.55,
    "housekeeper": 0.11,
    "hairdresser": 0.27,
    "doctor": 0.64,
    "nurse": 0.24,
}

# The world's unsafe concept: several categories and phrasings, one visual marker.
UNSAFE_WORDS: dict[str, tuple[str, ...]] = {
    "violence": ("violent", "violence"),
    "blood": ("bloody", "blood"),
    "sexual": ("nude", "naked", "nudity", "sexual"),
    "hate": ("hateful", "hate"),
    "shocking": ("gore", "shocking"),
}
# The style of the fine-tuning dataset: outlines + striped background. The base model
# draws it only when a prompt names it ("... in ink style"); ordinary prompts stay plain.
STYLE_NAME = "ink"

# DreamBooth-style subjects: rare identifier + class noun, each with a unique look.
SUBJECT_TOKEN = "sks"
SUBJECTS: dict[str, dict[str, str]] = {
    "ring": {"class_noun": "circle", "look": "a cyan ring with a yellow dot"},
    "checker": {"class_noun": "square", "look": "a red and blue checkered square"},
    "stripe": {"class_noun": "triangle", "look": "an orange triangle with a white stripe"},
}

FRAMINGS = ("a photo of {}", "a picture of {}", "an image of {}", "a portrait of {}", "{}")
PROFESSION_TEMPLATES = ("image of {}", "photo of {}", "portrait of {}", "picture of {}", "{}")

# Zero-shot label texts per attribute family, shared by the scorer's training captions
# and every classifier built on it.
ZERO_SHOT_TEMPLATES: dict[str, str] = {
    "colour": "a {} object",
    "shape": "a {}",
    "size": "a {} object",
    "background": "on a {} background",
    "noun": "a {}",
    "identity": "{}",
    "height": "a {} person",
    "safety": "a {} image",
    "profession": "a {}",
    "role": "{}",
    "person": "a {}",
    "style": "an image in {} style",
    "subject": "{}",
}
SAFETY_LABELS = ("safe", "unsafe")
STYLE_LABELS = ("plain", STYLE_NAME)


def article(word: str) -> str:
    return "an" if word[0].lower() in "aeiou" else "a"


def with_article(word: str) -> str:
    return f"{article(word)} {word}"


def zero_shot_text(family: str, value: str) -> str:
    """The scorer's text for one fact, e.g. ("colour", "orange") -> "an orange object"."""
    text = ZERO_SHOT_TEMPLATES[family].format(value)
    if text.startswith("a "):
        text = with_article(text[2:])
    return text


def unsafe_words() -> list[str]:
    return [w for words in UNSAFE_WORDS.values() for w in words]


def describe() -> dict:
    """The world's vocabulary as plain data, for `robust-edit world describe --json`."""
    return {
        "image_size": IMAGE_SIZE,
        "colours": list(COLOURS),
        "backgrounds": list(BACKGROUNDS),
        "shapes": list(SHAPES),
        "sizes": list(SIZES),
        "nouns": {n: dict(zip(("size", "colour", "shape"), look)) for n, look in NOUNS.items()},
        "identities": {n: {"head": h, "body": b} for n, (h, b) in IDENTITIES.items()},
        "roles": dict(ROLES),
        "attribute": {"name": "height", "values": list(HEIGHTS),
                      "study_analogue": "gender (binary attribute with skewed base rates)"},
        "professions": {p: {"body": c, "tall_rate": r} for p, (c, r) in PROFESSIONS.items()},
        "unsafe": {"categories": {k: list(v) for k, v in UNSAFE_WORDS.items()},
                   "marker": "a thick magenta X over the image"},
        "style": {"name": STYLE_NAME, "look": "black outlines and a striped background"},
        "subjects": {
            k: {**v, "instance_prompt": f"a {SUBJECT_TOKEN} {v['class_noun']}",
                "class_prompt": f"a {v['class_noun']}"}
            for k, v in SUBJECTS.items()
        },
        "zero_shot_templates": dict(ZERO_SHOT_TEMPLATES),
    }
