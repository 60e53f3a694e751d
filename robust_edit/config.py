"""Typed, validated configuration: one schema, one place.

Every config is a pydantic model that refuses unknown fields, so a typo fails before
anything runs with a message naming the field, the value and what is allowed.
"""

from __future__ import annotations

import types
import typing
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
    # allow_inf_nan: `lr: .inf` is a typo, not a learning rate
    model_config = ConfigDict(extra="forbid", frozen=True, allow_inf_nan=False)

    @model_validator(mode="before")
    @classmethod
    def _no_booleans_for_numbers(cls, data):
        """YAML's `true` is 1 to pydantic: `steps: true` would run one step."""
        if isinstance(data, dict):
            for name, value in data.items():
                field = cls.model_fields.get(name)
                if isinstance(value, bool) and field is not None and bool not in _types(field.annotation):
                    raise ValueError(f"{name}: {value} is a boolean; give a number")
        return data


def _types(annotation) -> set:
    """The types an annotation admits (`int | None` -> {int, NoneType})."""
    union = typing.get_origin(annotation) in (typing.Union, types.UnionType)
    return set(typing.get_args(annotation)) if union else {annotation}


class UCEParams(Strict):
    key_policy: Literal["last", "span"] = "span"
    lam: float = Field(0.5, gt=0)
    s_e: float = Field(1.0, gt=0)
    s_p: float | None = Field(None, gt=0, description="default: max(0.1, 1/len(preserve)) "
                              "(erase/unsafe; the world's: 1), 0.1 (debias)")
    guide: str = ""
    preserve: tuple[str, ...] | None = Field(None, description="default: the data's (resolve.edit)")
    # Which token positions of a preserve prompt give preserve keys: "all" (every position,
    # the paper-era reference) or "from_last" (the key policy's: from the last real token).
    preserve_positions: Literal["all", "from_last"] | None = Field(
        None, description="default: the data's; the study's: the reference's for the key policy")
    # debias
    attributes: dict[str, float] | None = None  # value -> desired share; default from dataset
    attribute_texts: dict[str, str] | None = None  # value -> classifier text
    classifier: str | None = None  # scorer reference; default the data's (study: ViT-B-32/openai)
    images_per_concept: int = Field(50, ge=1)
    tolerance: float = Field(0.05, gt=0, lt=1)
    max_iterations: int = Field(30, ge=0)
    step: float = Field(0.1, gt=0)


class RefactParams(Strict):
    layer: int | None = Field(None, ge=0, description="default: the paper's layer 7 of 12, scaled")
    encoders: tuple[str, ...] | None = Field(
        None, description="pipeline attributes of the edited text encoders; default: the "
        "model family's (SD: text_encoder; SDXL: both, as its UNet reads both side by side)")
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
    true_cfg: bool | None = Field(None, description=(
        "FLUX without a guidance embedding: guide by a negative-prompt pass at `guidance` "
        "(default: the data's: the world's FLUX yes, real data no, as FLUX.1-schnell samples unguided)"))
    batch_size: int = Field(64, ge=1)
    # Sampling under torch.autocast in this dtype (fp32: none). "auto" (robust_edit.resolve)
    # takes bf16 where the machine computes it natively, else fp32: on a CPU with AVX512-BF16
    # bf16 draws 1.6-1.9x faster with the same profession label on 800 of 800 paired items,
    # on an AVX2-only CPU it draws 10x slower (docs/world-findings.md).
    precision: Literal["auto", "fp32", "bf16", "fp16"] = "fp32"


MODELS_FILTER = Field(None, description="the sweep's models this axis runs on (default: all of them)")


def runs_on(axis, model: str) -> bool:
    """Whether an edit or fine-tuning axis of a sweep runs on `model` (its `models` filter)."""
    return axis.models is None or model in axis.models


class EditConfig(Strict):
    name: str | None = None
    models: tuple[str, ...] | None = MODELS_FILTER
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

    @classmethod
    def quality(cls, spec: QualitySpec, generation: GenerationConfig) -> PromptSet:
        """The image-quality prompts: the dataset's first `images` rows."""
        return cls(task="quality", dataset=spec.dataset, rows=f"0:{spec.images}", generation=generation)

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

    task: Literal["appearance", "role", "time", "debias", "unsafe", "erase", "quality"]
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

    @classmethod
    def quality(cls, spec: QualitySpec, generation: GenerationConfig) -> PromptSet:
        """The image-quality prompts: the dataset's first `images` rows."""
        return cls(task="quality", dataset=spec.dataset, rows=f"0:{spec.images}", generation=generation)

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
    # The learning rate over the run (diffusers' get_scheduler, the text-to-image example's
    # --lr_scheduler; its default, constant): a decaying rate ends on settled weights.
    lr_scheduler: Literal["constant", "linear", "cosine"] = "constant"
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
    models: tuple[str, ...] | None = MODELS_FILTER

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
        base = self.model_dump(exclude={"ranks", "seeds", "models"})
        return [FinetuneConfig.model_validate({**base, "rank": r, "seed": s})
                for r in (self.ranks or (self.rank,)) for s in (self.seeds or (self.seed,))]


class CheckpointSpec(Strict):
    """Fine-tuning checkpoints evaluated as variants M_ft@<step> and M_ed_ft@<step> (decay
    over steps, the paper's Fig. 5). `[100, 200]` is short for {steps: [100, 200]}."""

    steps: tuple[int, ...] | None = Field(None, description="default: every saved checkpoint")
    every: int | None = Field(None, ge=1, description="every N steps instead of a list")
    edits: tuple[str, ...] | None = Field(None, description="default: every edit")
    # M_ft@step is the decay table's control (the unedited model at the same step); a
    # spec may leave it out to halve the checkpoints' images.
    variants: tuple[Literal["M_ft", "M_ed_ft"], ...] = Field(("M_ft", "M_ed_ft"), min_length=1)

    @model_validator(mode="before")
    @classmethod
    def _list_is_steps(cls, v):
        return {"steps": v} if isinstance(v, list | tuple) else v

    @model_validator(mode="after")
    def _steps_or_every(self):
        if self.steps is not None and self.every is not None:
            raise ValueError("evaluation.checkpoints: give steps or every, not both")
        if self.steps is not None and (not self.steps or min(self.steps) < 1):
            raise ValueError(f"evaluation.checkpoints.steps {list(self.steps)}: give positive steps")
        return self

    def of(self, ft) -> tuple[int, ...]:
        """The checkpoint steps evaluated for a fine-tune run (its final step is M_ft)."""
        if self.steps is not None:
            return tuple(sorted(set(self.steps)))
        every = self.every or ft.checkpoint_every
        return tuple(range(every, ft.steps, every))


class QualitySpec(Strict):
    """Image quality per variant (the paper's §4.5): each variant draws the first `images`
    prompts of a dataset with reference images; FID and KID against those references
    (robust_edit.scorers.fid) and CLIP score per image."""

    dataset: str = Field(description="prompts with reference images: world:coco, coco30k")
    images: int = Field(200, ge=10)
    extractor: str | None = Field(None, description="default: the data's (fid.default_extractor)")
    inception_weights: str | None = Field(None, description="local Inception weights file (real data)")
    reference_folder: str | None = Field(None, description="local folder of the reference images (real data)")
    edits: tuple[str, ...] | None = Field(None, description="default: every edit's cells")

    @field_validator("dataset")
    @classmethod
    def _has_references(cls, v):
        from robust_edit.data import dataset_format

        if dataset_format(v) != "coco":
            raise ValueError(f"evaluation.quality.dataset {v!r}: FID needs a COCO-format prompt set "
                             "with reference images (world:coco, coco30k)")
        return v


VARIANTS = ("M", "M_ed", "M_ft", "M_ed_ft")


class EvaluationSpec(Strict):
    seeds: int = Field(10, ge=1, description="seeds per RoAD prompt (0..seeds-1)")
    row_seeds: int = Field(1, ge=1, description="draws of each debias / unsafe row, at its own "
                           "seed and row_seeds - 1 more (robust_edit.edit.evaluate.items)")
    # A control study (sweeps/controls.yaml) draws M and M_ft only: no edit runs, and every
    # image goes to a larger sample of the controls.
    variants: tuple[Literal[VARIANTS], ...] = Field(VARIANTS, min_length=1)
    scorer: str = Field("world:scorer", description="scorer reference (robust_edit.scorers.clip)")
    generation: GenerationConfig = GenerationConfig()
    checkpoints: CheckpointSpec | None = None
    quality: QualitySpec | None = None


class ResourcesSpec(Strict):
    cpus_per_trial: float = Field(1.0, gt=0)
    gpus_per_trial: float = Field(0.0, ge=0)
    max_concurrent_trials: int = Field(2, ge=1)
    scorer_actors: int = Field(1, ge=1, description="actors per scorer")
    cpus_per_scorer_actor: float = Field(1.0, gt=0)
    gpus_per_scorer_actor: float = Field(0.0, ge=0)
    max_failures: int = Field(2, ge=0, description="retries per failed trial")


MLFLOW_SCHEMES = ("sqlite", "file", "http", "https", "postgresql", "mysql", "mssql", "databricks")


class TrackingSpec(Strict):
    mlflow_uri: str | None = Field(None, description="default: sqlite:///<storage>/mlflow.db")
    experiment: str | None = Field(None, min_length=1, description="default: the sweep's name")
    duckdb: str | None = Field(None, min_length=1, description="default: <storage>/results.duckdb")

    @field_validator("mlflow_uri")
    @classmethod
    def _tracking_uri(cls, v):
        from urllib.parse import urlparse

        if v is None:
            return v
        uri = urlparse(v)
        scheme = uri.scheme.split("+")[0]  # postgresql+psycopg2://
        if scheme not in MLFLOW_SCHEMES or (scheme in ("http", "https") and not uri.netloc) \
                or (scheme == "sqlite" and not v.startswith("sqlite:///")):
            raise ValueError(f"mlflow_uri {v!r}: not a tracking URI; give sqlite:///<path>.db, "
                             "http(s)://<server> or a database URI (schemes: "
                             f"{', '.join(MLFLOW_SCHEMES)})")
        return v


class SweepSpec(Strict):
    name: str = Field(pattern=r"^[A-Za-z0-9][A-Za-z0-9_.-]*$")
    models: tuple[str, ...] = Field(min_length=1)
    edits: tuple[EditConfig, ...] = Field(min_length=1)
    finetunes: tuple[FinetuneSpec, ...] = Field(min_length=1)
    evaluation: EvaluationSpec = EvaluationSpec()
    resources: ResourcesSpec = ResourcesSpec()
    storage: str = Field(min_length=1, description="output root: a local path, on clusters a shared mount "
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
        for kind, items in (("edits", self.edits), ("finetunes", self.finetunes)):
            for x in items:
                unknown = sorted(set(x.models or ()) - set(self.models))
                if unknown:
                    raise ValueError(f"{kind}[{x.name}].models {unknown}: not among the sweep's "
                                     f"models {list(self.models)}; list them there too, or drop them")
        for model in self.models:
            for kind, items in (("edits", self.edits), ("finetunes", self.finetunes)):
                if not any(runs_on(x, model) for x in items):
                    raise ValueError(f"models: {model!r} has no {kind[:-1]} (every {kind[:-1]}'s "
                                     f"models leave it out): it would have no cells")
        for e in self.edits:
            fmt = dataset_format(e.dataset)
            if fmt not in TASK_FORMATS[e.task]:
                raise ValueError(f"edits[{e.name}].dataset {e.dataset!r} is a {fmt} dataset; task "
                                 f"{e.task!r} reads {list(TASK_FORMATS[e.task])} datasets")
        from robust_edit.profiles import check_finetune_dataset

        for f in self.finetunes:
            check_finetune_dataset(f.dataset, f"finetunes[{f.name}].dataset")
        for field, chosen in (("checkpoints", self.evaluation.checkpoints),
                              ("quality", self.evaluation.quality)):
            unknown = sorted(set(chosen and chosen.edits or ()) - {e.name for e in self.edits})
            if unknown:
                raise ValueError(f"evaluation.{field}.edits {unknown}: no such edit; the "
                                 f"spec's edits are {[e.name for e in self.edits]}")
        variants = self.evaluation.variants
        if "M" not in variants or not {"M_ft", "M_ed_ft"} & set(variants) or len(set(variants)) < len(variants):
            raise ValueError(f"evaluation.variants {list(variants)}: give M (every Δ and control reads "
                             "it), M_ft or M_ed_ft (a cell is a fine-tuning run), each once")
        if (ck := self.evaluation.checkpoints) is not None:
            if missing := sorted(set(ck.variants) - set(variants)):
                raise ValueError(f"evaluation.checkpoints.variants {missing}: not among "
                                 f"evaluation.variants {list(variants)}; add them there, or drop them here")
            for f in self.finetunes:
                for run in f.expand():
                    bad = [s for s in ck.of(run) if s % run.checkpoint_every or s >= run.steps]
                    if bad:
                        raise ValueError(
                            f"evaluation.checkpoints {bad}: finetunes[{f.name}] saves a checkpoint "
                            f"every {run.checkpoint_every} of its {run.steps} steps; give multiples "
                            f"of {run.checkpoint_every} below {run.steps} (or 'every')")
        return self


def load_sweep(path) -> SweepSpec:
    """Read and validate a sweep YAML; errors are one line naming the file, the field, the
    bad value and the fix."""
    return validate(SweepSpec, read_yaml(path), str(path))


def validate(model: type[Strict], raw: dict, source: str):
    """`model` from raw input (YAML, CLI): ValueError of one line on the first problem."""
    from pydantic import ValidationError

    if model is SweepSpec:
        for i, item in enumerate(raw.get("edits") or []):
            _method_fields(item, f"edits[{_label(item, i)}]", EDIT_ONLY)
        for i, item in enumerate(raw.get("finetunes") or []):
            _method_fields(item, f"finetunes[{_label(item, i)}]", FINETUNE_ONLY)
    elif model in (EditConfig, FinetuneConfig):
        _method_fields(raw, model.__name__, EDIT_ONLY if model is EditConfig else FINETUNE_ONLY)
    try:
        return model.model_validate(raw)
    except ValidationError as err:
        first = err.errors()[0]
        where = _location(first["loc"], raw)
        got = "" if first["type"] == "value_error" else f" (got {first['input']!r})"
        more = f" (+{err.error_count() - 1} more)" if err.error_count() > 1 else ""
        msg = first["msg"].removeprefix("Value error, ")
        raise ValueError(f"{source}: {where + ': ' if where else ''}{msg}{got}{more}") from None


# Fields that only some methods read: given to another method, they would be ignored.
EDIT_ONLY = {"uce": ("uce",), "refact": ("refact",)}
FINETUNE_ONLY = {"rank": ("lora", "dora"), "ranks": ("lora", "dora"), "alpha": ("lora", "dora"),
                 **{f: ("dreambooth",) for f in ("instance_prompt", "class_prompt",
                                                  "prior_preservation", "prior_loss_weight",
                                                  "class_images", "class_generation")}}


def _method_fields(item, where: str, only: dict) -> None:
    if not isinstance(item, dict) or not isinstance(item.get("method"), str):
        return  # the schema's own error says what is missing
    for name, methods in only.items():
        if name in item and item["method"] not in methods:
            raise ValueError(f"{where}.{name}: method {item['method']!r} does not read it (only "
                             f"{' and '.join(methods)} do); remove it")


def _label(item, index: int) -> str:
    return str(item["name"]) if isinstance(item, dict) and item.get("name") else str(index)


def _location(loc: tuple, raw) -> str:
    """('edits', 0, 'uce', 'lam') -> 'edits[debias].uce.lam' (the entry's name where it has one)."""
    out, node = "", raw
    for part in loc:
        if isinstance(node, dict):
            node = node.get(part)
        elif isinstance(node, list) and isinstance(part, int) and part < len(node):
            node = node[part]
        else:
            node = None
        if isinstance(part, int):
            out += f"[{_label(node, part)}]"
        else:
            out += f".{part}" if out else str(part)
    return out


def read_yaml(path) -> dict:
    """A YAML mapping from a file; one-line errors for a missing file, a folder, a syntax
    error or a key given twice (PyYAML would keep the last one silently)."""
    from pathlib import Path

    import yaml

    class UniqueKeys(yaml.SafeLoader):
        def construct_mapping(self, node, deep=False):
            seen = set()
            for key_node, _ in node.value:
                key = self.construct_object(key_node, deep=deep)
                if key in seen:
                    raise yaml.MarkedYAMLError(problem=f"key {key!r} is given twice",
                                               problem_mark=key_node.start_mark)
                seen.add(key)
            return super().construct_mapping(node, deep)

    path = Path(path)
    if not path.exists():
        raise FileNotFoundError(f"{path}: no such file")
    if path.is_dir():
        raise ValueError(f"{path}: is a folder; give a YAML file, e.g. sweeps/quickstart.yaml")
    try:
        raw = yaml.load(path.read_text(), Loader=UniqueKeys)  # a SafeLoader subclass
    except yaml.MarkedYAMLError as err:
        mark = err.problem_mark
        raise ValueError(f"{path}:{mark.line + 1}:{mark.column + 1}: YAML: {err.problem}") from None
    except (yaml.YAMLError, UnicodeDecodeError) as err:
        raise ValueError(f"{path}: not a YAML file ({err})") from None
    if raw is None:
        return {}
    if not isinstance(raw, dict):  # input, not a type error: the CLI's one-line message
        raise ValueError(f"{path}: expected a mapping of fields (name: ..., models: ...), "
                         f"got a {type(raw).__name__}")
    return raw
