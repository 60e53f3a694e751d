"""Tiny random-weight SD / SDXL / FLUX pipelines built from configs (no hub), in the spirit
of diffusers' `get_dummy_components`, for exercising every family's code path on CPU."""

from __future__ import annotations

import torch

from robust_edit.world.tokenizer import clip_tokenizer

CLIP_VOCAB = 49408


def _clip_config(hidden: int = 32, layers: int = 3):
    from transformers import CLIPTextConfig

    return CLIPTextConfig(vocab_size=CLIP_VOCAB, hidden_size=hidden, intermediate_size=37,
                          num_hidden_layers=layers, num_attention_heads=4, projection_dim=32,
                          max_position_embeddings=77, bos_token_id=49406, eos_token_id=49407,
                          pad_token_id=49407, hidden_act="quick_gelu")


def _eval(pipe):
    """Modules built from configs start in training mode (dropout on); loaded ones do not."""
    for component in pipe.components.values():
        if isinstance(component, torch.nn.Module):
            component.eval()
    pipe.set_progress_bar_config(disable=True)
    return pipe


def t5_tokenizer():
    """A small Unigram T5 tokenizer over the words tests use (transformers 5 constructor)."""
    from transformers import T5Tokenizer

    words = ("a photo of an image the red blue green circle square cat dog king queen "
             "violent blood nude art tall short ceo teacher person lime lemon").split()
    vocab = [("<pad>", 0.0), ("</s>", 0.0), ("<unk>", 0.0), ("▁", -2.0)]
    vocab += [("▁" + w, -1.0) for w in words] + [(c, -5.0) for c in "abcdefghijklmnopqrstuvwxyz,"]
    return T5Tokenizer(vocab=vocab, extra_ids=0)


def tiny_sdxl(seed: int = 0):
    from diffusers import AutoencoderKL, EulerDiscreteScheduler, StableDiffusionXLPipeline, UNet2DConditionModel
    from transformers import CLIPTextModel, CLIPTextModelWithProjection

    torch.manual_seed(seed)
    unet = UNet2DConditionModel(
        block_out_channels=(32, 64), layers_per_block=1, sample_size=8, in_channels=4, out_channels=4,
        down_block_types=("DownBlock2D", "CrossAttnDownBlock2D"),
        up_block_types=("CrossAttnUpBlock2D", "UpBlock2D"), attention_head_dim=(2, 4),
        use_linear_projection=True, addition_embed_type="text_time", addition_time_embed_dim=8,
        transformer_layers_per_block=(1, 2), projection_class_embeddings_input_dim=6 * 8 + 32,
        cross_attention_dim=64, norm_num_groups=8)
    vae = AutoencoderKL(block_out_channels=(8, 16), in_channels=3, out_channels=3,
                        down_block_types=("DownEncoderBlock2D",) * 2,
                        up_block_types=("UpDecoderBlock2D",) * 2, latent_channels=4,
                        norm_num_groups=8, sample_size=16)
    return _eval(StableDiffusionXLPipeline(
        vae=vae, text_encoder=CLIPTextModel(_clip_config()),
        text_encoder_2=CLIPTextModelWithProjection(_clip_config()),
        tokenizer=clip_tokenizer(), tokenizer_2=clip_tokenizer(), unet=unet,
        scheduler=EulerDiscreteScheduler(), force_zeros_for_empty_prompt=False))


def tiny_flux(seed: int = 0):
    from diffusers import AutoencoderKL, FlowMatchEulerDiscreteScheduler, FluxPipeline, FluxTransformer2DModel
    from transformers import CLIPTextModel, T5Config, T5EncoderModel

    torch.manual_seed(seed)
    transformer = FluxTransformer2DModel(
        patch_size=1, in_channels=4, num_layers=1, num_single_layers=1, attention_head_dim=16,
        num_attention_heads=2, joint_attention_dim=32, pooled_projection_dim=32,
        axes_dims_rope=[4, 4, 8])
    t5_tok = t5_tokenizer()
    t5 = T5EncoderModel(T5Config(vocab_size=len(t5_tok), d_model=32, d_ff=37, d_kv=8, num_layers=2,
                                 num_heads=4, decoder_start_token_id=0, pad_token_id=0,
                                 eos_token_id=1))
    vae = AutoencoderKL(sample_size=32, in_channels=3, out_channels=3, block_out_channels=(4,),
                        layers_per_block=1, latent_channels=1, norm_num_groups=1,
                        use_quant_conv=False, use_post_quant_conv=False, shift_factor=0.0609,
                        scaling_factor=1.5035)
    return _eval(FluxPipeline(scheduler=FlowMatchEulerDiscreteScheduler(), vae=vae,
                              text_encoder=CLIPTextModel(_clip_config()), tokenizer=clip_tokenizer(),
                              text_encoder_2=t5, tokenizer_2=t5_tok, transformer=transformer))
