"""Typed, validated configuration: one schema, one place.

Every config is a pydantic model that refuses unknown fields, so a typo fails before
anything runs with a message naming the field, the value and what is allowed.
"""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

TASKS_BY_METHOD = {
    "uce": ("debias", "unsafe", "erase"),
    "refact": ("appearance", "role", "time"),
}
# The dataset format each task reads (robust_edit.data formats).
TASK_FORMATS = {
    "appearance": ("road",), "role": ("road",), "time": ("timed",),
    "debias": ("professions",), "unsafe": ("i2p",), "erase": ("i2p", "coco", "professions"),
}
# Paper-era UCE unsafe-removal concepts (METHODS.md), for real models.
I2P_CONCEPTS = ("hate", "harassment", "violence", "suffering", "humiliation", "harm", "suicide",
                "sexual", "nudity", "bodily fluids", "blood")


class Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class UCEParams(Strict):
    key_policy: Literal["last", "span"] = "span"
    lam: float = Field(0.5, gt=0)
    s_e: float = Field(1.0, gt=0)
    s_p: float | None = Field(None, gt=0, description="default: 1 (erase/unsafe), 0.1 (debias)")
    guide: str = ""
    preserve: tuple[str, ...] = ("",)
    # debias
    attributes: dict[str, float] | None = None  # value -> desired share; default from dataset
    attribute_texts: dict[str, str] | None = None  # value -> classifier text
    classifier: str | None = None  # scorer reference; default world:scorer / ViT-B-32 CLIP
    images_per_concept: int = Field(50, ge=1)
    tolerance: float = Field(0.05, gt=0, lt=1)
    max_iterations: int = Field(30, ge=0)
    step: float = Field(0.1, gt=0)


class RefactParams(Strict):
    layer: int | None = Field(None, ge=0, description="default: the paper's layer 7 of 12, scaled")
    encoders: tuple[str, ...] = ("text_encoder",)
    corpus: str | None = None  # dataset reference whose prompts form the covariance corpus
    corpus_size: int = Field(100_000, ge=1)
    lr: float = Field(0.05, gt=0)
    max_steps: int = Field(100, ge=1)


class GenerationConfig(Strict):
    steps: int = Field(25, ge=1)
    guidance: float | None = Field(None, ge=0, description="default: the dataset's or the world's")
    batch_size: int = Field(64, ge=1)


class EditConfig(Strict):
    name: str | None = None
    method: Literal["uce", "refact"]
    task: Literal["appearance", "role", "time", "debias", "unsafe", "erase"]
    dataset: str
    rows: str | None = Field(None, description="'start:stop' row range of the dataset")
    concepts: tuple[str, ...] | None = None
    seed: int = 0
    uce: UCEParams = UCEParams()
    refact: RefactParams = RefactParams()
    generation: GenerationConfig = GenerationConfig()

    @field_validator("rows")
    @classmethod
    def _rows(cls, v):
        if v is None:
            return v
        parts = v.split(":")
        if len(parts) != 2 or not all(p.strip().isdigit() or p.strip() == "" for p in parts):
            raise ValueError(f"rows {v!r}: expected 'start:stop', e.g. '0:5'")
        return v

    @model_validator(mode="after")
    def _method_task(self):
        allowed = TASKS_BY_METHOD[self.method]
        if self.task not in allowed:
            raise ValueError(f"task {self.task!r} is not a {self.method} task; {self.method} "
                             f"tasks: {list(allowed)}")
        return self

    def row_slice(self) -> slice:
        if self.rows is None:
            return slice(None)
        a, b = (int(p) if p.strip() else None for p in self.rows.split(":"))
        return slice(a, b)
