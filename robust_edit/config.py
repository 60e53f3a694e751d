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


class Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class UCEParams(Strict):
    key_policy: Literal["last", "span"] = "span"
    lam: float = Field(0.5, gt=0)
    s_e: float = Field(1.0, gt=0)
    s_p: float | None = Field(None, gt=0, description="default: 1 (erase/unsafe), 0.1 (debias)")
    guide: str = ""
    preserve: tuple[str, ...] | None = Field(None, description="default: the data's vocabulary")
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
    max_steps: int = Field(100, ge=1)
    # None: the paper's settings (pooled, lr 0.05, ||delta|| <= 4 ||v||) for real models,
    # the data's own on a profile's data (robust_edit.resolve, robust_edit.profiles).
    objective: Literal["pooled", "tokens"] | None = None
    lr: float | None = Field(None, gt=0)
    max_norm_ratio: float | None = Field(None, gt=0)


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
        return row_slice(self.rows)


def row_slice(rows: str | None) -> slice:
    if rows is None:
        return slice(None)
    a, b = (int(p) if p.strip() else None for p in rows.split(":"))
    return slice(a, b)


class PromptSet(Strict):
    """What an edit task is evaluated on (robust_edit.edit.evaluate.items) and how its images
    are drawn: shared by every variant and every edit of the same task and data, so M and
    M_ft images are generated once per prompt set."""

    task: Literal["appearance", "role", "time", "debias", "unsafe", "erase"]
    dataset: str
    rows: str | None = None
    concepts: tuple[str, ...] | None = None
    attributes: dict[str, float] | None = None
    attribute_texts: dict[str, str] | None = None
    generation: GenerationConfig

    @classmethod
    def of(cls, edit: EditConfig, generation: GenerationConfig) -> PromptSet:
        """The prompt set of a resolved edit, drawn with `generation` (guidance resolved)."""
        debias = edit.task == "debias"  # the only task whose items read concepts, attributes
        return cls(task=edit.task, dataset=edit.dataset, rows=edit.rows,
                   concepts=edit.concepts if debias else None,
                   attributes=edit.uce.attributes if debias else None,
                   attribute_texts=edit.uce.attribute_texts if debias else None,
                   generation=generation)

    def row_slice(self) -> slice:
        return row_slice(self.rows)


FINETUNE_DEFAULTS = {
    # method: (what it trains, optimizer, learning rate)
    "full": ("both", "adamw", 1e-4),
    "dreambooth": ("unet", "adamw", 5e-5),
    "lora": ("text_encoder", "adamw", 1e-3),
    "dora": ("text_encoder", "prodigy", 1.0),
}


class FinetuneConfig(Strict):
    """One fine-tuning run. `targets`, `optimizer` and `lr` default per method
    (FINETUNE_DEFAULTS: LoRA/DoRA on the text encoder as in the study, DoRA with Prodigy),
    filled in by robust_edit.resolve."""

    name: str | None = None
    method: Literal["full", "dreambooth", "lora", "dora"]
    dataset: str
    steps: int = Field(200, ge=1)
    batch_size: int = Field(16, ge=1)
    lr: float | None = Field(None, gt=0)
    optimizer: Literal["adamw", "prodigy"] | None = None
    targets: Literal["text_encoder", "unet", "both"] | None = None
    rank: int = Field(4, ge=1)
    alpha: float | None = Field(None, gt=0, description="default: the rank")
    weight_decay: float = Field(1e-2, ge=0)
    max_grad_norm: float = Field(1.0, gt=0)
    checkpoint_every: int = Field(50, ge=1)
    seed: int = 0
    # DreamBooth
    instance_prompt: str | None = None
    class_prompt: str | None = None
    prior_preservation: bool = True
    prior_loss_weight: float = Field(1.0, ge=0)
    class_images: int = Field(50, ge=1)
    class_generation: GenerationConfig = GenerationConfig()  # how the class images are drawn

    @model_validator(mode="after")
    def _consistent(self):
        if self.method in ("full", "dreambooth") and self.alpha is not None:
            raise ValueError(f"alpha: only LoRA/DoRA have an alpha; remove it for method {self.method!r}")
        from robust_edit.profiles import check_finetune_dataset

        field = f"finetunes[{self.name}].dataset" if self.name else "dataset"
        if self.method == "dreambooth" and self.prior_preservation and self.class_prompt is None \
                and check_finetune_dataset(self.dataset, field) is None:
            raise ValueError("class_prompt: DreamBooth with prior preservation needs the class "
                             "prompt (e.g. 'a dog'), or set prior_preservation: false")
        return self


# --- sweeps -------------------------------------------------------------------------------

class FinetuneSpec(FinetuneConfig):
    """A fine-tuning axis of a sweep: a FinetuneConfig whose rank and seed may be lists."""

    ranks: tuple[int, ...] | None = None
    seeds: tuple[int, ...] | None = None

    @field_validator("ranks", "seeds")
    @classmethod
    def _non_empty(cls, v, info):
        if v is not None and not v:
            raise ValueError(f"{info.field_name}: give at least one value or leave it out")
        if v is not None and info.field_name == "ranks" and any(r < 1 for r in v):
            raise ValueError(f"ranks {list(v)}: every rank must be a positive integer")
        if v is not None and len(set(v)) != len(v):
            raise ValueError(f"{info.field_name} {list(v)}: values repeat")
        return v

    @model_validator(mode="after")
    def _ranks_only_for_adapters(self):
        if self.ranks is not None and self.method not in ("lora", "dora"):
            raise ValueError(f"ranks: method {self.method!r} has no rank; ranks are for lora and dora")
        return self

    def expand(self) -> list[FinetuneConfig]:
        base = self.model_dump(exclude={"ranks", "seeds"})
        return [FinetuneConfig.model_validate({**base, "rank": r, "seed": s})
                for r in (self.ranks or (self.rank,)) for s in (self.seeds or (self.seed,))]


class EvaluationSpec(Strict):
    seeds: int = Field(10, ge=1, description="seeds per RoAD prompt (0..seeds-1)")
    scorer: str = Field("world:scorer", description="scorer reference (robust_edit.scorers.clip)")
    generation: GenerationConfig = GenerationConfig()


class ResourcesSpec(Strict):
    cpus_per_trial: float = Field(1.0, gt=0)
    gpus_per_trial: float = Field(0.0, ge=0)
    max_concurrent_trials: int = Field(2, ge=1)
    scorer_actors: int = Field(1, ge=1, description="actors per scorer")
    cpus_per_scorer_actor: float = Field(1.0, gt=0)
    gpus_per_scorer_actor: float = Field(0.0, ge=0)
    max_failures: int = Field(2, ge=0, description="retries per failed trial")


class TrackingSpec(Strict):
    mlflow_uri: str | None = Field(None, description="default: sqlite:///<storage>/mlflow.db")
    experiment: str | None = Field(None, description="default: the sweep's name")
    duckdb: str | None = Field(None, description="default: <storage>/results.duckdb")


class SweepSpec(Strict):
    name: str = Field(pattern=r"^[A-Za-z0-9][A-Za-z0-9_.-]*$")
    models: tuple[str, ...] = Field(min_length=1)
    edits: tuple[EditConfig, ...] = Field(min_length=1)
    finetunes: tuple[FinetuneSpec, ...] = Field(min_length=1)
    evaluation: EvaluationSpec = EvaluationSpec()
    resources: ResourcesSpec = ResourcesSpec()
    storage: str = Field(description="output root: a local path, on clusters a shared mount "
                                     "every node sees (NFS, EFS, a PVC)")
    tracking: TrackingSpec = TrackingSpec()

    @field_validator("models")
    @classmethod
    def _models_resolve(cls, v):
        from robust_edit.models import ModelReferenceError, family_of

        for ref in v:
            try:
                family_of(ref)
            except ModelReferenceError as err:
                raise ValueError(f"models: {err}") from None
        if len(set(v)) != len(v):
            raise ValueError(f"models {list(v)}: a model is listed twice")
        return v

    @field_validator("storage")
    @classmethod
    def _storage_is_a_path(cls, v):
        if "://" in v:
            raise ValueError(f"storage {v!r}: stages are files that every worker reads and writes; "
                             "give a path on a filesystem all nodes mount (e.g. /mnt/shared/<sweep>, "
                             "an s3/gcs bucket mounted with a CSI driver), not a URI")
        return v

    @model_validator(mode="after")
    def _names_and_datasets(self):
        from robust_edit.data import dataset_format

        for kind, items in (("edits", self.edits), ("finetunes", self.finetunes)):
            names = [x.name for x in items]
            if any(n is None for n in names):
                raise ValueError(f"{kind}: every entry needs a name (used in result rows)")
            dup = sorted({n for n in names if names.count(n) > 1})
            if dup:
                raise ValueError(f"{kind}: duplicate name(s) {dup}; names must be unique")
        for e in self.edits:
            fmt = dataset_format(e.dataset)
            if fmt not in TASK_FORMATS[e.task]:
                raise ValueError(f"edits[{e.name}].dataset {e.dataset!r} is a {fmt} dataset; task "
                                 f"{e.task!r} reads {list(TASK_FORMATS[e.task])} datasets")
        from robust_edit.profiles import check_finetune_dataset

        for f in self.finetunes:
            check_finetune_dataset(f.dataset, f"finetunes[{f.name}].dataset")
        return self


def check_runtime(spec: SweepSpec) -> None:
    """What only the machine that runs the sweep can check, before any compute: the
    storage root is writable and local dataset folders exist."""
    import os
    from pathlib import Path

    probe = Path(spec.storage).expanduser()
    while not probe.exists():
        probe = probe.parent
    if not probe.is_dir() or not os.access(probe, os.W_OK):
        raise ValueError(f"storage {spec.storage!r}: {probe} is not a writable directory; "
                         "choose a path you can write to")
    from robust_edit.finetune.data import check

    for f in spec.finetunes:
        check(f.dataset, f"finetunes[{f.name}].dataset")


def load_sweep(path) -> SweepSpec:
    """Read and validate a sweep YAML; errors name the file, the field and the fix."""
    from pathlib import Path

    import yaml
    from pydantic import ValidationError

    path = Path(path)
    if not path.exists():
        raise FileNotFoundError(f"sweep spec {path} does not exist")
    raw = yaml.safe_load(path.read_text()) or {}
    try:
        return SweepSpec.model_validate(raw)
    except ValidationError as err:
        raise ValueError(f"{path}: invalid sweep spec\n{err}") from None
