import json
import shutil

import pytest
import torch

from robust_edit import models
from robust_edit.world.profile import WORLD


def test_resolve_world_and_hub_and_errors(tmp_path):
    assert models.resolve("CompVis/stable-diffusion-v1-4") == "CompVis/stable-diffusion-v1-4"
    assert models.family_of("stabilityai/stable-diffusion-xl-base-1.0").name == "sdxl"
    assert models.family_of("black-forest-labs/FLUX.1-schnell").uce_layers == (
        ("context_embedder", "tokens"), ("time_text_embed.text_embedder.linear_1", "pooled"))
    with pytest.raises(models.ModelReferenceError, match="world:nope"):
        models.resolve("world:nope")
    with pytest.raises(models.ModelReferenceError, match="model_index.json"):
        models.resolve(str(tmp_path))
    with pytest.raises(models.ModelReferenceError, match="neither"):
        models.resolve("not a reference")


def test_families_declare_every_name_later_methods_need():
    for fam in models.FAMILIES.values():
        assert fam.uce_layers and fam.text_encoders and fam.lora_text_targets
        assert "{layer}" in fam.text_encoder_mlp


def test_local_folder_loads_through_from_pretrained(quick_world, tmp_path):
    folder = tmp_path / "my-model"
    shutil.copytree(quick_world / "sd", folder)
    assert models.family_of(str(folder)).name == "sd"
    pipe = models.load_pipeline(str(folder), device="cpu")
    assert type(pipe).__name__ == "StableDiffusionPipeline" and pipe.safety_checker is None
    assert pipe.unet.dtype == torch.float32  # shipped fp16, loaded as asked
    # The family's module names exist in the loaded model.
    fam = models.FAMILIES["sd"]
    names = [n for n, _ in pipe.unet.named_modules()]
    assert sum(n.endswith(tuple(s for s, _ in fam.uce_layers)) for n in names) == 2 * sum(
        n.endswith("attn2") for n in names) > 0
    te_names = dict(pipe.text_encoder.named_modules())
    assert fam.text_encoder_mlp.format(layer=1) in te_names
    index = json.loads((folder / "model_index.json").read_text())
    index["_class_name"] = "SomethingElsePipeline"
    (folder / "model_index.json").write_text(json.dumps(index))
    with pytest.raises(models.ModelReferenceError, match="not supported"):
        models.family_of(str(folder))


def test_shipped_world_loads_by_reference():
    if "sd" not in WORLD.model_names():
        pytest.skip("shipped world not built in this checkout")
    pipe = models.load_pipeline("world:sd", device="cpu")
    assert pipe.vae.config.scaling_factor != 1.0
    assert pipe.tokenizer("a red circle").input_ids[:3] == [49406, 320, 736]  # real CLIP ids


def test_shipped_sdxl_world_loads_by_reference_as_sdxl():
    """world:sdxl goes through the same loading code as the hub ids, to SDXL's pipeline
    class, and its family names both text encoders for ReFACT."""
    if "sdxl" not in WORLD.model_names():
        pytest.skip("shipped SDXL world not built in this checkout")
    pipe = models.load_pipeline("world:sdxl", device="cpu")
    assert type(pipe).__name__ == "StableDiffusionXLPipeline"
    assert models.family_of("world:sdxl") is models.FAMILIES["sdxl"]
    from robust_edit.edit.refact import mlp

    for name in models.FAMILIES["sdxl"].text_encoders:
        layers = models.text_encoder_layers("world:sdxl", name)
        assert mlp(getattr(pipe, name), models.FAMILIES["sdxl"], layers - 1)[1].out_features == (
            getattr(pipe, name).config.hidden_size)
    assert pipe.tokenizer_2("a red circle").input_ids[:3] == [49406, 320, 736]
    # The pipeline pads prompts to its tokenizers' length: the encoders were trained at it.
    from robust_edit.world.architectures import CLIP_LENGTH

    for tok, enc in ((pipe.tokenizer, pipe.text_encoder), (pipe.tokenizer_2, pipe.text_encoder_2)):
        assert tok.model_max_length == enc.config.max_position_embeddings == CLIP_LENGTH["sdxl"]


def test_shipped_flux_world_loads_by_reference_as_flux():
    """world:flux goes through the same loading code as the hub ids, to FLUX's pipeline
    class, draws at its VAE's 32 pixels, and is read at its T5 tokenizer's length."""
    if "flux" not in WORLD.model_names():
        pytest.skip("shipped FLUX world not built in this checkout")
    pipe = models.load_pipeline("world:flux", device="cpu")
    assert type(pipe).__name__ == "FluxPipeline"
    assert models.family_of("world:flux") is models.FAMILIES["flux"]
    assert pipe.default_sample_size * pipe.vae_scale_factor == 32
    assert models.flux_sequence_length(pipe) == pipe.tokenizer_2.model_max_length == 16
    # The UCE layers the FLUX family edits exist and read what the encoders write.
    assert pipe.transformer.context_embedder.in_features == pipe.text_encoder_2.config.d_model
    assert pipe.transformer.time_text_embed.text_embedder.linear_1.in_features == (
        pipe.text_encoder.config.hidden_size)


def test_flux_prompts_are_encoded_at_one_length_everywhere():
    """FLUX's T5 runs unmasked, so the padding length changes every token state: generation,
    fine-tuning and edit keys all encode at models.flux_sequence_length (schnell: 256)."""
    import torch

    from robust_edit.edit import text_keys
    from robust_edit.finetune import flux_loss
    from robust_edit.generate import GenerationSettings, generate_images
    from tests.tiny_pipelines import tiny_flux

    pipe = tiny_flux()
    pipe.tokenizer_2.model_max_length = 40  # the world's tokenizer is shorter than schnell's 256
    assert models.flux_sequence_length(pipe) == 40
    lengths, encode = [], pipe.encode_prompt

    def spy(*args, **kwargs):
        lengths.append(kwargs.get("max_sequence_length"))
        return encode(*args, **kwargs)

    pipe.encode_prompt = spy
    generate_images(pipe, ["a red circle"], [0], GenerationSettings(steps=1, guidance=1.0), desc="t")
    flux_loss(pipe, models.FAMILIES["flux"], torch.zeros(1, 1, 2, 2), ["a red circle"],
              torch.Generator().manual_seed(0))
    text_keys.encode(pipe, models.FAMILIES["flux"], ["a red circle"])
    assert lengths == [40, 40, 40]
    pipe.tokenizer_2.model_max_length = 512  # a real T5 tokenizer's
    assert models.flux_sequence_length(pipe) == 256
