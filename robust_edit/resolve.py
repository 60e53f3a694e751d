"""Every default, filled in one place. A config leaves here with no field left open: method
defaults (config.FINETUNE_DEFAULTS, UCE's preserve scale), per-family ones (ReFACT's layer and
encoders, LoRA/DoRA targets) and the data's (robust_edit.profiles: the study's for real data, a
profile's for its own).
Sweep stages hash and run what this returns; nothing reads a default later. Resolving a
resolved config changes nothing."""

from __future__ import annotations

from robust_edit.config import FINETUNE_DEFAULTS, EditConfig, FinetuneConfig, GenerationConfig
from robust_edit.edit import tasks
from robust_edit.edit.text_keys import REFERENCE_PRESERVE_POSITIONS
from robust_edit.profiles import check_finetune_dataset, defaults_for

# The protocol settings and their reference values are listed in docs/protocol.md.
# UCE debias's preserve scale s_p when the config gives none (both references: 0.1).
UCE_DEBIAS_PRESERVE_SCALE = 0.1
# ReFACT's layer of SD1.4's 12-layer text encoder per task (the paper's best: RoAD 7, TIME 9).
REFACT_LAYER_OF_12 = {"appearance": 7, "role": 7, "time": 9}


def uce_preserve_scale(task: str, preserve: tuple[str, ...], erase_s_p: float | None) -> float:
    """s_p when the config gives none: debias 0.1; erase/unsafe the data's, else the paper-era
    max(0.1, 1/len(preserve))."""
    if task == "debias":
        return UCE_DEBIAS_PRESERVE_SCALE
    if erase_s_p is not None:
        return erase_s_p
    return max(0.1, 1 / max(len(preserve), 1))


def edit(cfg: EditConfig, model: str | None = None) -> EditConfig:
    """`model` fills the per-model defaults (ReFACT's layer); without it they stay open."""
    tasks.check_dataset(cfg)
    d = defaults_for(cfg.dataset)
    update: dict = {"generation": generation(cfg.generation, cfg.dataset)}
    if cfg.method == "uce":
        uce: dict = {"classifier": cfg.uce.classifier or d.debias_classifier or d.classifier,
                     "preserve_positions": (cfg.uce.preserve_positions or d.preserve_positions
                                            or REFERENCE_PRESERVE_POSITIONS[cfg.uce.key_policy])}
        concepts = cfg.concepts
        if cfg.task == "debias":
            concepts = concepts or tuple(tasks.debias_concepts(cfg))
            if cfg.uce.attributes is None:
                uce |= {"attributes": dict(d.debias_attributes),
                        "attribute_texts": dict(d.debias_texts)}
            elif cfg.uce.attribute_texts is None:
                uce["attribute_texts"] = {a: f"a {a} person" for a in cfg.uce.attributes}
        elif concepts is None:
            if cfg.task == "erase":
                raise ValueError("concepts: an erase edit needs the concepts to erase, "
                                 "e.g. ['lime']")
            concepts = tuple(d.unsafe_concepts)
        preserve = cfg.uce.preserve
        if preserve is None and cfg.task == "debias" and d.debias_preserve == "other_concepts":
            # the paper-era reference: every other concept (profession) of the data
            edited = {c.lower() for c in concepts}
            everyone = tasks.debias_concepts(cfg.model_copy(update={"rows": None}))
            preserve = tuple(c for c in everyone if c.lower() not in edited)
        elif preserve is None:  # the data's vocabulary, less what names an edited concept
            edited = {w for c in concepts for w in c.lower().split()}
            preserve = tuple(p for p in d.preserve_vocabulary
                             if not edited & set(p.lower().split()))
        uce |= {"preserve": preserve,
                "s_p": (uce_preserve_scale(cfg.task, preserve, d.erase_s_p)
                        if cfg.uce.s_p is None else cfg.uce.s_p)}
        update |= {"concepts": tuple(concepts), "uce": cfg.uce.model_copy(update=uce)}
    else:
        p = cfg.refact
        refact = {"corpus": p.corpus or d.refact_corpus,
                  "objective": p.objective or d.refact_objective,
                  "lr": p.lr or d.refact_lr}
        if model is not None:
            from robust_edit.models import family_of, text_encoder_layers

            family = family_of(model)
            refact["max_norm_ratio"] = p.max_norm_ratio or d.refact_max_norm_ratio_by_family.get(
                family.name, d.refact_max_norm_ratio)
            encoders = refact["encoders"] = p.encoders or family.text_encoders
            if p.layer is None:
                # the data's layer for the family, else the paper's best layer of SD1.4's 12
                # for the task, scaled to the encoder's depth
                refact["layer"] = d.refact_layer_by_family.get(family.name, round(
                    REFACT_LAYER_OF_12[cfg.task] / 12 * text_encoder_layers(model, encoders[0])))
        update["refact"] = p.model_copy(update=refact)
    return cfg.model_copy(update=update)


def generation(cfg: GenerationConfig, dataset: str) -> GenerationConfig:
    """Drawing prompts of `dataset`: guidance and true CFG as configured, else the data's;
    precision "auto" made this machine's (sampling_precision)."""
    update = {}
    if cfg.guidance is None:
        update["guidance"] = defaults_for(dataset).guidance
    if cfg.true_cfg is None:
        update["true_cfg"] = defaults_for(dataset).true_cfg
    if cfg.precision == "auto":
        update["precision"] = sampling_precision()
    return cfg.model_copy(update=update)


def sampling_precision() -> str:
    """bf16 where this machine computes it natively (a CUDA GPU that supports it, a CPU with
    AVX512-BF16 or AMX), else fp32: without native bf16, autocast emulates it (an AVX2-only
    CPU sampled world:sd 10x slower in bf16 than in fp32). Resolved where the sweep is
    resolved (its driver), so each stage's key names the precision it ran with; a cluster
    whose workers differ from its driver should name a precision."""
    import torch

    if torch.cuda.is_available():
        return "bf16" if torch.cuda.is_bf16_supported() else "fp32"
    native = (getattr(torch.cpu, name, lambda: False)()
              for name in ("_is_avx512_bf16_supported", "_is_amx_tile_supported"))
    return "bf16" if any(native) else "fp32"


def evaluation_scorer(dataset: str) -> str:
    """The scorer an edit's own evaluation (`robust-edit edit --evaluate`) labels with (not
    the debias loop's classifier, `TaskDefaults.debias_classifier`)."""
    return defaults_for(dataset).classifier


def finetune(cfg: FinetuneConfig, model: str | None = None) -> FinetuneConfig:
    """Fill in the method's defaults; with `model`, its family's (LoRA/DoRA targets)."""
    from robust_edit.finetune.data import pinned

    targets, optimizer, lr = FINETUNE_DEFAULTS[cfg.method]
    if cfg.method in ("lora", "dora") and model is not None:
        from robust_edit.models import family_of

        targets = family_of(model).adapter_targets
    optimizer = cfg.optimizer or optimizer
    update = {"dataset": pinned(cfg.dataset), "targets": cfg.targets or targets, "optimizer": optimizer,
              "lr": cfg.lr if cfg.lr is not None else (1.0 if optimizer == "prodigy" else lr),
              "class_generation": generation(cfg.class_generation, cfg.dataset)}
    if cfg.method in ("lora", "dora") and cfg.alpha is None:
        update["alpha"] = float(cfg.rank)
    if cfg.method == "dreambooth" and cfg.prior_preservation and cfg.class_prompt is None:
        update["class_prompt"] = check_finetune_dataset(cfg.dataset, "dataset")
    return cfg.model_copy(update=update)
