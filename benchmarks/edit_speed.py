"""Edit speed at real size: SD1.4's UNet and CLIP-L text encoder from their published configs,
random weights, on this CPU.

Prints the UCE edit time for all 32 cross-attention K/V matrices (keys encoded by the real
text encoder, span policy, one concept + the '' preserve term), beside a baseline that
forms the explicit inverse, and the ReFACT times: covariance (once), then with the
covariance cached: key + v* optimisation + insertion, and the insertion alone.

    python benchmarks/edit_speed.py [--threads 2] [--refact-steps 20]
"""

from __future__ import annotations

import argparse
import time

import torch

# CompVis/stable-diffusion-v1-4 unet/config.json and text_encoder/config.json.
SD14_UNET = dict(
    sample_size=64, in_channels=4, out_channels=4, layers_per_block=2,
    block_out_channels=(320, 640, 1280, 1280), cross_attention_dim=768, attention_head_dim=8,
    down_block_types=("CrossAttnDownBlock2D", "CrossAttnDownBlock2D", "CrossAttnDownBlock2D",
                      "DownBlock2D"),
    up_block_types=("UpBlock2D", "CrossAttnUpBlock2D", "CrossAttnUpBlock2D", "CrossAttnUpBlock2D"))
CLIP_L_TEXT = dict(vocab_size=49408, hidden_size=768, intermediate_size=3072, num_hidden_layers=12,
                   num_attention_heads=12, max_position_embeddings=77, hidden_act="quick_gelu",
                   projection_dim=768, bos_token_id=49406, eos_token_id=49407, pad_token_id=49407)


def sd14_pipeline():
    from diffusers import AutoencoderKL, DDIMScheduler, StableDiffusionPipeline, UNet2DConditionModel
    from transformers import CLIPTextConfig, CLIPTextModel

    from robust_edit.world.tokenizer import clip_tokenizer

    torch.manual_seed(0)
    unet = UNet2DConditionModel(**SD14_UNET).eval()
    text_encoder = CLIPTextModel(CLIPTextConfig(**CLIP_L_TEXT)).eval()
    vae = AutoencoderKL(block_out_channels=(8,), norm_num_groups=8)  # not used by edits
    return StableDiffusionPipeline(vae=vae, text_encoder=text_encoder, tokenizer=clip_tokenizer(),
                                   unet=unet, scheduler=DDIMScheduler(), safety_checker=None,
                                   feature_extractor=None, requires_safety_checker=False)


def timed(fn, repeat: int = 3) -> tuple[float, object]:
    best, out = float("inf"), None
    for _ in range(repeat):
        t = time.perf_counter()
        out = fn()
        best = min(best, time.perf_counter() - t)
    return best, out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--refact-steps", type=int, default=20)
    ap.add_argument("--corpus", type=int, default=2000, help="texts for the covariance")
    args = ap.parse_args()
    torch.set_num_threads(args.threads)

    from robust_edit.edit import refact, text_keys, uce
    from robust_edit.models import FAMILIES
    from robust_edit.world import scenes

    family = FAMILIES["sd"]
    t = time.perf_counter()
    pipe = sd14_pipeline()
    n_unet = sum(p.numel() for p in pipe.unet.parameters()) / 1e6
    print(f"built SD1.4 UNet ({n_unet:.0f} M params) + CLIP-L text encoder in "
          f"{time.perf_counter() - t:.1f} s")
    layers = uce.edited_layers(pipe.unet, family)
    print(f"UCE layers: {len(layers)} (attn2.to_k / attn2.to_v)")

    originals = {l.name: dict(pipe.unet.named_modules())[l.name].weight.detach().clone()
                 for l in layers}

    def restore():
        modules = dict(pipe.unet.named_modules())
        with torch.no_grad():
            for name, w in originals.items():
                modules[name].weight.copy_(w)

    def uce_edit():
        restore()
        return uce.erase(pipe, family, ["a photo of a violent scene"], guide="", preserve=[""],
                         key_policy="span")

    t_uce, _ = timed(uce_edit)

    # Baseline: the same edit with an explicit inverse instead of a solve, keys pre-encoded.
    enc_c = text_keys.encode(pipe, family, ["a photo of a violent scene"])
    enc_g = text_keys.encode(pipe, family, [""])
    ce, cg = text_keys.aligned(enc_c, 0, enc_g, 0, "tokens", "span")
    cp = text_keys.keys(enc_g, 0, "tokens", "span")

    def solve_only():
        return [uce.closed_form(w, ce, cg.double() @ w.double().T, cp, lam=0.5)
                for w in originals.values()]

    def inverse_baseline():
        out = []
        for w in originals.values():
            W = w.double()
            A = 0.5 * W + (cg.double() @ W.T).T @ ce.double() + (cp.double() @ W.T).T @ cp.double()
            B = 0.5 * torch.eye(W.shape[1], dtype=torch.float64) + ce.double().T @ ce.double() \
                + cp.double().T @ cp.double()
            out.append((A @ torch.linalg.inv(B)).float())
        return out

    t_solve, _ = timed(solve_only)
    t_inv, _ = timed(inverse_baseline)
    print(f"UCE edit, 32 K/V matrices, keys encoded + solved + written: {t_uce:.3f} s "
          f"(target <= 2 s)")
    print(f"  solves only: {t_solve:.3f} s; explicit-inverse baseline: {t_inv:.3f} s "
          f"(ratio solve/inverse {t_solve / t_inv:.2f})")

    import random
    rng = random.Random(0)
    corpus = [scenes.sample_example(rng)[1] for _ in range(args.corpus)]
    _, fc2 = refact.mlp(pipe.text_encoder, family, 7)
    t = time.perf_counter()
    C = refact.covariance(pipe.text_encoder, pipe.tokenizer, fc2, corpus)
    t_cov = time.perf_counter() - t
    cfg = refact.RefactConfig(layer=7, max_steps=args.refact_steps, stop_probability=1.1)
    fc2_original = fc2.weight.detach().clone()

    def refact_edit():
        with torch.no_grad():
            fc2.weight.copy_(fc2_original)
        return refact.edit(pipe, family, [("a lime", "a lime", "a lemon")], cfg,
                           lambda *_: C, progress=False)

    t_refact, _ = timed(refact_edit, repeat=1)
    k0 = refact.key(pipe.text_encoder, pipe.tokenizer, fc2, "a lime", refact.TEMPLATES)
    v = fc2_original.double() @ k0.double() + 1.0
    t_insert, _ = timed(lambda: refact.rank_one_update(fc2_original, C, k0, v))
    print(f"ReFACT covariance ({args.corpus} texts, layer 7, 3072x3072): {t_cov:.2f} s (cached after)")
    print(f"ReFACT edit with cached covariance (key + {args.refact_steps} v* steps + insertion): "
          f"{t_refact:.2f} s")
    print(f"  insertion alone (solve C u = k0, rank-one update 768x3072): {t_insert * 1000:.1f} ms")


if __name__ == "__main__":
    main()
