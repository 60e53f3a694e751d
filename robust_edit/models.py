"""Model references -> diffusers pipelines, through one code path.

A reference is a hub id (`CompVis/stable-diffusion-v1-4`), a local pipeline folder, or
`<profile>:<name>` for a model a profile ships (`world:sd`, robust_edit.profiles). All of
them are loaded with the pipeline class's own `from_pretrained`; a profile only names the
folder.

Each architecture family declares, in one place, the module names later methods need.
"""

from __future__ import annotations

import json
from contextlib import contextmanager
from dataclasses import dataclass, replace
from functools import cache
from pathlib import Path

import torch

from robust_edit import profiles


@dataclass(frozen=True)
class Family:
    """Module names an architecture family exposes to edit and fine-tuning methods."""

    name: str
    pipeline_class: str
    # UCE edits these linear layers: (module-name suffix within the denoiser, what it reads:
    # the text "tokens" or the "pooled" text embedding).
    uce_layers: tuple[tuple[str, str], ...]
    # ReFACT edits `text_encoder_mlp.format(layer=L)` in each listed text encoder
    # (transformers 5 module names: CLIPTextModel has no `text_model.` prefix).
    text_encoders: tuple[str, ...]
    text_encoder_mlp: str
    lora_text_targets: tuple[str, ...]
    lora_denoiser_targets: tuple[str, ...]
    denoiser: str
    text_encoder_layers: int = 12  # depth of the released models' first text encoder (CLIP)
    # The text encoders' token states the denoiser reads: the last layer's (SD), or the
    # penultimate layer's (SDXL, before the final layer norm).
    token_states: str = "last"
    # What LoRA and DoRA train unless a run says (FinetuneConfig.targets): the study's text
    # encoder, where the family's LoRA format holds the encoder its denoiser reads.
    adapter_targets: str = "text_encoder"


_SD = Family(
    name="sd",
    pipeline_class="StableDiffusionPipeline",
    uce_layers=(("attn2.to_k", "tokens"), ("attn2.to_v", "tokens")),
    text_encoders=("text_encoder",),
    text_encoder_mlp="encoder.layers.{layer}.mlp.fc2",
    lora_text_targets=("q_proj", "k_proj", "v_proj", "out_proj"),
    lora_denoiser_targets=("to_q", "to_k", "to_v", "to_out.0"),
    denoiser="unet",
)
FAMILIES: dict[str, Family] = {
    "sd": _SD,
    "sdxl": replace(_SD, name="sdxl", pipeline_class="StableDiffusionXLPipeline",
                    text_encoders=("text_encoder", "text_encoder_2"), token_states="penultimate"),
    # context_embedder reads T5 token embeddings; linear_1 reads the pooled CLIP embedding.
    "flux": replace(_SD, name="flux", pipeline_class="FluxPipeline",
                    uce_layers=(("context_embedder", "tokens"),
                                ("time_text_embed.text_embedder.linear_1", "pooled")),
                    # diffusers' FLUX LoRA format holds the transformer and CLIP, not T5; FLUX
                    # reads CLIP only as the pooled embedding, so a CLIP adapter barely moves
                    # what it draws (world:flux: 0 % styled; on the transformer 99 %).
                    denoiser="transformer", adapter_targets="unet"),
}
_FAMILY_BY_PIPELINE = {f.pipeline_class: f for f in FAMILIES.values()}

# Well-known hub ids, so a reference's family is known before anything is downloaded.
KNOWN_HUB_MODELS = {
    "CompVis/stable-diffusion-v1-4": "sd",
    "stable-diffusion-v1-5/stable-diffusion-v1-5": "sd",
    "stabilityai/stable-diffusion-2-1": "sd",
    "stabilityai/stable-diffusion-xl-base-1.0": "sdxl",
    "black-forest-labs/FLUX.1-schnell": "flux",
}


class ModelReferenceError(ValueError):
    pass


def resolve(ref: str) -> str:
    """A reference -> what `from_pretrained` takes (a folder path or a hub id)."""
    if found := profiles.split(ref):
        profile, name = found
        try:
            return str(profile.model_folder(name))
        except ValueError as err:
            raise ModelReferenceError(str(err)) from None
    path = Path(ref).expanduser()
    if path.exists():
        if not (path / "model_index.json").exists():
            raise ModelReferenceError(
                f"model reference {ref!r}: folder has no model_index.json; "
                "pass a diffusers pipeline folder (pipeline.save_pretrained output)")
        return str(path)
    if ref.count("/") == 1 and not ref.startswith(("/", ".")):
        return ref  # a hub id: only resolvable where the hub is reachable
    raise ModelReferenceError(
        f"model reference {ref!r} is neither '<profile>:<name>' (profiles: "
        f"{sorted(profiles.registered())}), an existing pipeline folder, nor a hub id 'org/name'")


@cache
def hub_revision(hub_id: str) -> str:
    """The commit a hub id resolves to now: asked of the hub, else the one the local
    Hugging Face cache holds for `main`, else 'unresolved' (nothing can be loaded then)."""
    from huggingface_hub import HfApi
    from huggingface_hub.constants import HF_HUB_CACHE

    try:
        return HfApi().model_info(hub_id, timeout=10).sha
    except Exception:  # offline, or no such model: fall back to the local cache
        main = Path(HF_HUB_CACHE) / f"models--{hub_id.replace('/', '--')}" / "refs" / "main"
        return main.read_text().strip() if main.exists() else "unresolved"


def family_of(ref: str) -> Family:
    """The architecture family of a reference, read from model_index.json where local."""
    if ref in KNOWN_HUB_MODELS:
        return FAMILIES[KNOWN_HUB_MODELS[ref]]
    target = Path(resolve(ref))
    index = target / "model_index.json"
    if not index.exists():
        raise ModelReferenceError(
            f"model reference {ref!r}: family unknown offline; known hub ids: "
            f"{sorted(KNOWN_HUB_MODELS)}")
    cls = json.loads(index.read_text())["_class_name"]
    if cls not in _FAMILY_BY_PIPELINE:
        raise ModelReferenceError(
            f"model reference {ref!r}: pipeline class {cls} is not supported; "
            f"supported: {sorted(_FAMILY_BY_PIPELINE)}")
    return _FAMILY_BY_PIPELINE[cls]


def text_encoder_layers(ref: str, encoder: str) -> int:
    """Depth of a model's text encoder: from a local folder's config, else its family's."""
    config = Path(resolve(ref)) / encoder / "config.json"
    if config.exists():
        return json.loads(config.read_text())["num_hidden_layers"]
    return family_of(ref).text_encoder_layers


@contextmanager
def _no_loading_bars():
    """diffusers' and transformers' per-component loading bars are noise in every stage's
    log (a sweep loads hundreds of pipelines)."""
    import diffusers
    import transformers

    libraries = [lib.utils.logging for lib in (diffusers, transformers)
                 if lib.utils.logging.is_progress_bar_enabled()]
    for logging in libraries:
        logging.disable_progress_bar()
    try:
        yield
    finally:
        for logging in libraries:
            logging.enable_progress_bar()


def load_pipeline(ref: str, *, dtype: torch.dtype = torch.float32, device: str | None = None,
                  safety_checker: bool = False):
    """Load a reference as a diffusers pipeline. The safety checker is off unless asked for
    (evaluation protocol: generate unfiltered, record black images separately)."""
    import diffusers

    family = family_of(ref)
    pipeline_cls = getattr(diffusers, family.pipeline_class)
    kwargs: dict = {"dtype": dtype}
    if family.name == "sd" and not safety_checker:
        kwargs.update(safety_checker=None, requires_safety_checker=False)
    target = resolve(ref)
    if not Path(target).exists():  # a hub id: the revision its stages were keyed with
        kwargs["revision"] = hub_revision(target)
        if kwargs["revision"] == "unresolved":
            raise ModelReferenceError(
                f"model {ref!r}: not in the local Hugging Face cache and the hub cannot be "
                f"reached; download it where it can (hf download {ref}) or set HF_HOME")
    with _no_loading_bars():
        pipe = pipeline_cls.from_pretrained(target, use_safetensors=True, **kwargs)
    if safety_checker and (profile := profiles.owner(ref)):
        profile.attach_safety_checker(pipe)
    if device is None:
        device = "cuda" if torch.cuda.is_available() else "cpu"
    if family.name == "flux":
        # FluxPipeline draws at a fixed 128 latent pixels unless told; the VAE's own sample
        # size says what the model was trained at (FLUX.1: 1024 pixels, the world: 32).
        pipe.default_sample_size = pipe.vae.config.sample_size // pipe.vae_scale_factor
    pipe.to(device)
    pipe.set_progress_bar_config(disable=True)
    return pipe


FLUX_MAX_SEQUENCE_LENGTH = 256  # FLUX.1-schnell's T5 length


def flux_sequence_length(pipe) -> int:
    """T5 tokens a FLUX pipeline reads. Its T5 runs without an attention mask, so the padding
    changes every token's state: prompts must be encoded at one length everywhere
    (generation, fine-tuning, edit keys). schnell's 256, or the tokenizer's own length where
    it is shorter (the world's 32)."""
    return min(FLUX_MAX_SEQUENCE_LENGTH, pipe.tokenizer_2.model_max_length)
