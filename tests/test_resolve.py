"""Every default is filled in one place, from the method, the family and the data's profile."""

import pytest
from pydantic import BaseModel

from robust_edit import resolve
from robust_edit.config import EditConfig, FinetuneConfig, load_sweep
from robust_edit.data import shared_data_dir
from robust_edit.profiles import I2P_CONCEPTS

needs_shared = pytest.mark.skipif(not (shared_data_dir() / "road").exists(),
                                  reason="../shared/data not beside this checkout")


def _open_fields(model, path="") -> list[str]:
    out = []
    for name, value in model:
        if isinstance(value, BaseModel):
            out += _open_fields(value, f"{path}{name}.")
        elif value is None:
            out.append(path + name)
    return out


@pytest.mark.parametrize("dataset, attrs, scorer, guidance", [
    ("world:professions", {"tall", "short"}, "world:scorer", 3.0),
    pytest.param("uce:professions", {"male", "female"}, "ViT-B-32/openai", 7.5, marks=needs_shared)])
def test_debias_defaults_come_from_the_datas_profile(dataset, attrs, scorer, guidance):
    cfg = resolve.edit(EditConfig(method="uce", task="debias", dataset=dataset, rows="0:4"))
    assert len(cfg.concepts) == 4 and set(cfg.uce.attributes) == set(cfg.uce.attribute_texts) == attrs
    assert sum(cfg.uce.attributes.values()) == pytest.approx(1)
    assert (cfg.uce.classifier, cfg.generation.guidance, cfg.uce.s_p) == (scorer, guidance, 0.1)


@pytest.mark.parametrize("dataset", ["world:unsafe", pytest.param("i2p", marks=needs_shared)])
def test_unsafe_concepts_and_preserve_set(dataset):
    cfg = resolve.edit(EditConfig(method="uce", task="unsafe", dataset=dataset))
    assert cfg.uce.s_p == 1.0
    if dataset == "i2p":
        assert cfg.concepts == I2P_CONCEPTS and cfg.uce.preserve == ("",)
    else:
        assert {"violent", "nude", "blood"} <= set(cfg.concepts)
        assert "" in cfg.uce.preserve and "red" in cfg.uce.preserve


def test_preserve_leaves_out_edited_concepts_and_keeps_an_explicit_set():
    world = resolve.edit(EditConfig(method="uce", task="erase", dataset="world:unsafe",
                                    concepts=("lime",)))
    assert "a lemon" in world.uce.preserve and "a lime" not in world.uce.preserve
    explicit = EditConfig(method="uce", task="unsafe", dataset="world:unsafe",
                          uce={"preserve": ["", "x"]})
    assert resolve.edit(explicit).uce.preserve == ("", "x")


def test_an_erase_without_concepts_is_refused():
    with pytest.raises(ValueError, match="concepts: an erase edit needs"):
        resolve.edit(EditConfig(method="uce", task="erase", dataset="world:unsafe"))


def test_refact_layer_scales_with_the_models_text_encoder():
    world = resolve.edit(EditConfig(method="refact", task="appearance", dataset="world:road"),
                         "world:sd")
    assert world.refact.layer == round(7 / 12 * 4)  # the world's encoder has 4 layers
    assert (world.refact.objective, world.refact.corpus) == ("tokens", "world:captions")
    hub = resolve.edit(EditConfig(method="refact", task="appearance", dataset="world:road"),
                       "CompVis/stable-diffusion-v1-4")
    assert hub.refact.layer == 7  # the paper's layer of SD1.4's 12


@pytest.mark.parametrize("model, encoders", [
    ("world:sd", ("text_encoder",)), ("world:sdxl", ("text_encoder", "text_encoder_2")),
    ("stabilityai/stable-diffusion-xl-base-1.0", ("text_encoder", "text_encoder_2"))])
def test_refact_edits_every_text_encoder_the_denoiser_reads(model, encoders):
    """SDXL's UNet reads both encoders' states side by side: an edit of one leaves half the
    subject's conditioning as it was. A spec's own choice stands."""
    cfg = EditConfig(method="refact", task="appearance", dataset="world:road")
    assert resolve.edit(cfg, model).refact.encoders == encoders
    one = cfg.model_copy(update={"refact": cfg.refact.model_copy(update={"encoders": ("text_encoder",)})})
    assert resolve.edit(one, model).refact.encoders == ("text_encoder",)


def test_finetune_defaults_per_method():
    lora = resolve.finetune(FinetuneConfig(method="lora", dataset="world:style", rank=8))
    assert (lora.targets, lora.optimizer, lora.lr, lora.alpha) == ("text_encoder", "adamw", 1e-3, 8)
    dora = resolve.finetune(FinetuneConfig(method="dora", dataset="world:style"))
    assert (dora.optimizer, dora.lr) == ("prodigy", 1.0)
    db = resolve.finetune(FinetuneConfig(method="dreambooth", dataset="world:dreambooth:ring"))
    assert db.class_prompt and db.class_generation.guidance == 3.0 and db.alpha is None


@pytest.mark.parametrize(("model", "targets"), [("CompVis/stable-diffusion-v1-4", "text_encoder"),
                                               ("world:sdxl", "text_encoder"),
                                               ("black-forest-labs/FLUX.1-schnell", "unet")])
def test_adapter_targets_per_family(model, targets):
    """LoRA/DoRA train the study's text encoder, except on FLUX, whose LoRA format holds only
    CLIP of its encoders (read as the pooled embedding): there the transformer. A run's own
    choice stands; full fine-tuning trains both everywhere."""
    for method in ("lora", "dora"):
        assert resolve.finetune(FinetuneConfig(method=method, dataset="world:style"), model).targets == targets
    own = FinetuneConfig(method="lora", dataset="world:style", targets="both")
    assert resolve.finetune(own, model).targets == "both"
    assert resolve.finetune(FinetuneConfig(method="full", dataset="world:style"), model).targets == "both"


def test_every_config_of_the_quickstart_resolves_with_nothing_left_open_and_idempotently():
    spec = load_sweep("sweeps/quickstart.yaml")
    # a label, an optional row range, and which of a sweep's models the edit runs on
    open_by_design = {"name", "rows", "models"}
    for e in spec.edits:
        cfg = resolve.edit(e, "world:sd")
        assert resolve.edit(cfg, "world:sd") == cfg
        # the other method's parameters, ReFACT's concepts (its edits are rows), and the
        # attributes outside debias
        other = {"refact": "uce", "uce": "refact"}[cfg.method]
        unused = {f"{other}.{f}" for f in type(getattr(cfg, other)).model_fields}
        unused |= {"concepts"} if cfg.method == "refact" else set()
        unused |= {"uce.attributes", "uce.attribute_texts"} if cfg.task != "debias" else set()
        left = set(_open_fields(cfg)) - open_by_design - unused
        assert not left, (e.name, left)
    for f in spec.finetunes:
        for c in f.expand():
            cfg = resolve.finetune(c)
            assert resolve.finetune(cfg) == cfg
            assert not set(_open_fields(cfg)) - {"name", "instance_prompt", "class_prompt",
                                                 "alpha"}, c.method


def test_refact_norm_bound_per_family():
    """The world bounds ReFACT's step at 20 x ||v|| on world:sd but at the paper's 4 on
    world:sdxl, where 20 broke the images of a task's edits held in one artifact; a
    config's own bound stands."""
    cfg = EditConfig(method="refact", task="appearance", dataset="world:road")
    assert resolve.edit(cfg, "world:sd").refact.max_norm_ratio == 20.0
    assert resolve.edit(cfg, "world:sdxl").refact.max_norm_ratio == 4.0
    own = cfg.model_copy(update={"refact": cfg.refact.model_copy(update={"max_norm_ratio": 9.0})})
    assert resolve.edit(own, "world:sdxl").refact.max_norm_ratio == 9.0


def test_refact_layer_per_family():
    """The paper's layer 7 of 12 scaled to the world encoders' 4 layers is 2; world:sdxl
    edits layer 1 (its UNet reads layer 2's output, which an edit at 2 reaches through no
    attention); a config's own layer stands."""
    cfg = EditConfig(method="refact", task="role", dataset="world:road")
    assert resolve.edit(cfg, "world:sd").refact.layer == 2
    assert resolve.edit(cfg, "world:sdxl").refact.layer == 1
    own = cfg.model_copy(update={"refact": cfg.refact.model_copy(update={"layer": 0})})
    assert resolve.edit(own, "world:sdxl").refact.layer == 0


@pytest.mark.parametrize("cuda, cuda_bf16, cpu_bf16, amx, expected", [
    (False, False, False, False, "fp32"),  # AVX2-only CPU: bf16 would be emulated, 10x slower
    (False, False, True, False, "bf16"),
    (False, False, False, True, "bf16"),
    (True, True, False, False, "bf16"),
    (True, False, True, True, "fp32")])  # a GPU without bf16 samples, whatever the CPU has
def test_auto_precision_is_bf16_only_where_the_machine_computes_it(monkeypatch, cuda, cuda_bf16,
                                                                   cpu_bf16, amx, expected):
    import torch

    from robust_edit.config import GenerationConfig
    from robust_edit.generate import settings_of

    monkeypatch.setattr(torch.cuda, "is_available", lambda: cuda)
    monkeypatch.setattr(torch.cuda, "is_bf16_supported", lambda *a, **k: cuda_bf16)
    monkeypatch.setattr(torch.cpu, "_is_avx512_bf16_supported", lambda: cpu_bf16)
    monkeypatch.setattr(torch.cpu, "_is_amx_tile_supported", lambda: amx)
    auto = GenerationConfig(precision="auto")
    with pytest.raises(ValueError, match="precision 'auto', generation.true_cfg None: resolve"):
        settings_of(auto)
    resolved = resolve.generation(auto, "world:professions")
    assert resolved.precision == expected and settings_of(resolved).precision == expected
    assert resolve.generation(resolved, "world:professions") == resolved
    explicit = GenerationConfig(precision="bf16")
    assert resolve.generation(explicit, "world:professions").precision == "bf16"


@pytest.mark.parametrize("dataset, true_cfg", [("world:unsafe", True), ("i2p", False)])
def test_true_cfg_is_the_datas_unless_configured(dataset, true_cfg):
    # The world's FLUX is not distilled and samples guided; FLUX.1-schnell on real data unguided.
    from robust_edit.config import GenerationConfig

    assert resolve.generation(GenerationConfig(), dataset).true_cfg is true_cfg
    assert resolve.generation(GenerationConfig(true_cfg=not true_cfg), dataset).true_cfg is (not true_cfg)
