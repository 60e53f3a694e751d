"""The world's model architectures: the VAE, the CLIP and T5 text encoders, the UNets and
the FLUX transformer that make up its Stable Diffusion, SDXL and FLUX pipelines, and the
noise schedule SD and SDXL are trained and sampled with. (The scorer's architecture is
robust_edit.world.scorer's.)"""

from __future__ import annotations

from robust_edit.world import vocab as V


def make_vae():
    from diffusers import AutoencoderKL

    return AutoencoderKL(
        in_channels=3, out_channels=3, latent_channels=4, sample_size=V.IMAGE_SIZE,
        down_block_types=("DownEncoderBlock2D",) * 3, up_block_types=("UpDecoderBlock2D",) * 3,
        block_out_channels=(16, 32, 64), layers_per_block=1, norm_num_groups=16)


# The CLIP sequence length (tokenizer and position embeddings) per world model. SD and FLUX
# keep CLIP's 77. The SDXL world reads 32: the world's longest caption or dataset prompt is
# 17 tokens (a test keeps every one within 22), and its UNet cross-attends over every
# position: at 77 its training step is 1.13x as slow, for padding alone
# (benchmarks/world_build_step.py).
CLIP_LENGTH = {"sd": 77, "sdxl": 32, "flux": 77}


def make_text_encoder(max_length: int):
    from transformers import CLIPTextConfig, CLIPTextModel

    return CLIPTextModel(CLIPTextConfig(
        vocab_size=49408, hidden_size=64, intermediate_size=256, num_hidden_layers=4,
        num_attention_heads=4, max_position_embeddings=max_length, hidden_act="quick_gelu",
        projection_dim=64, bos_token_id=49406, eos_token_id=49407, pad_token_id=49407))


def make_text_encoder_2(max_length: int):
    """SDXL's second encoder: a CLIP text model with a projection, whose projected EOS state
    is the pooled text embedding SDXL's UNet adds to its time embedding."""
    from transformers import CLIPTextConfig, CLIPTextModelWithProjection

    return CLIPTextModelWithProjection(CLIPTextConfig(
        vocab_size=49408, hidden_size=32, intermediate_size=128, num_hidden_layers=4,
        num_attention_heads=4, max_position_embeddings=max_length, hidden_act="gelu",
        projection_dim=SDXL_POOLED_DIM, bos_token_id=49406, eos_token_id=49407, pad_token_id=49407))


SDXL_POOLED_DIM = 32
SDXL_TIME_EMBED_DIM = 8  # per size/crop id: (original h, w, crop top, left, target h, w)


def make_unet(sdxl: bool = False):
    """SD's UNet; with sdxl, SDXL's: cross-attention over both encoders' states side by side
    (64 + 32) and the "text_time" added conditioning (pooled text + the six size/crop ids)."""
    from diffusers import UNet2DConditionModel

    extra = {"cross_attention_dim": 64 + 32, "addition_embed_type": "text_time",
             "addition_time_embed_dim": SDXL_TIME_EMBED_DIM,
             "projection_class_embeddings_input_dim": SDXL_POOLED_DIM + 6 * SDXL_TIME_EMBED_DIM,
             } if sdxl else {"cross_attention_dim": 64}
    return UNet2DConditionModel(
        sample_size=V.IMAGE_SIZE // 4, in_channels=4, out_channels=4, layers_per_block=1,
        block_out_channels=(64, 128), norm_num_groups=16, attention_head_dim=4,
        down_block_types=("CrossAttnDownBlock2D", "CrossAttnDownBlock2D"),
        up_block_types=("CrossAttnUpBlock2D", "CrossAttnUpBlock2D"), **extra)


def make_t5_encoder(vocab_size: int):
    """FLUX's token-state encoder: a small T5 encoder over the world tokenizer's vocabulary."""
    from transformers import T5Config, T5EncoderModel

    return T5EncoderModel(T5Config(
        vocab_size=vocab_size, d_model=64, d_ff=256, d_kv=16, num_layers=4, num_heads=4,
        feed_forward_proj="gated-gelu", dropout_rate=0.0, pad_token_id=0, eos_token_id=1, decoder_start_token_id=0))


def make_flux_transformer():
    """FLUX's denoiser: double-stream (text and image apart) then single-stream blocks over
    2 x 2 patches of the 8 x 8 latent (16 image tokens), reading the T5 states (64) and the
    CLIP pooled state (64); no guidance embedding, as in FLUX.1-schnell. Four double and
    eight single blocks (about the SD UNet's parameters): at half that depth held-out shape
    was 69 %, at this 81 % (90 % trained at batch 64 for twice the steps, 99 % sampled with
    true guidance); deeper would not fit the 60-minute build (docs/world-findings.md)."""
    from diffusers import FluxTransformer2DModel

    return FluxTransformer2DModel(
        patch_size=1, in_channels=16, num_layers=4, num_single_layers=8, attention_head_dim=32,
        num_attention_heads=4, joint_attention_dim=64, pooled_projection_dim=64,
        guidance_embeds=False, axes_dims_rope=(8, 12, 12))


def noise_scheduler_config() -> dict:
    # Stable Diffusion v1's training schedule.
    return dict(num_train_timesteps=1000, beta_start=0.00085, beta_end=0.012,
                beta_schedule="scaled_linear", clip_sample=False, steps_offset=1)
