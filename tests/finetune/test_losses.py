"""The SDXL noise-prediction and FLUX flow-matching losses train tiny random pipelines."""

import pytest
import torch

from robust_edit import finetune, resolve
from robust_edit.config import FinetuneConfig
from robust_edit.finetune import full
from robust_edit.models import FAMILIES
from tests.tiny_pipelines import tiny_flux, tiny_sdxl


@pytest.mark.parametrize("family_name, make, size", [("sdxl", tiny_sdxl, 32), ("flux", tiny_flux, 16)])
def test_loop_trains_every_family(family_name, make, size, tmp_path):
    pipe, family = make(), FAMILIES[family_name]
    cfg = resolve.finetune(FinetuneConfig(method="full", dataset="x", steps=3, batch_size=2,
                                          checkpoint_every=3, targets="unet", lr=1e-3))
    params = full.prepare(pipe, family, cfg)
    before = {k: v.detach().clone() for k, v in params.items()}
    images = (torch.rand(4, size, size, 3, generator=torch.Generator().manual_seed(0)) * 255).byte().numpy()
    latents = finetune.encode_latents(pipe, images)
    losses = finetune.train(pipe, family, params, cfg, latents, ["a red cat", "a dog", "a tree", "a king"],
                        tmp_path, progress=False)
    assert len(losses) == 3 and all(torch.isfinite(torch.tensor(losses)))
    assert any((params[k] - before[k]).abs().max() > 0 for k in params)
    assert all(k.startswith(family.denoiser + ".") for k in params)
    assert finetune.completed_checkpoints(tmp_path) == [3]


def test_sdxl_loss_noises_latents_by_ddpm_not_by_the_euler_sampler():
    """SDXL pipelines sample with Euler, whose add_noise is z + sigma * noise (a sampling-time
    scaling the UNet never reads unscaled); training noises as DDPM does on the same betas."""
    from diffusers import DDPMScheduler

    pipe = tiny_sdxl()
    assert type(pipe.scheduler).__name__ == "EulerDiscreteScheduler"
    seen = []
    forward = pipe.unet.forward
    pipe.unet.forward = lambda noisy, t, *a, **k: seen.append((noisy, t)) or forward(noisy, t, *a, **k)
    z = torch.randn(2, 4, 4, 4, generator=torch.Generator().manual_seed(1))
    finetune.sd_loss(pipe, FAMILIES["sdxl"], z, ["a cat", "a dog"], torch.Generator().manual_seed(0))
    gen = torch.Generator().manual_seed(0)  # the loss's own draws, in its order
    noise = torch.randn(z.shape, generator=gen)
    t = torch.randint(0, 1000, (2,), generator=gen)
    (noisy, t_seen), = seen
    assert torch.equal(t_seen, t)
    ddpm = DDPMScheduler.from_config(pipe.scheduler.config)
    assert torch.allclose(noisy, ddpm.add_noise(z, noise, t), atol=1e-6)
    assert not torch.allclose(noisy, pipe.scheduler.add_noise(z, noise, t), atol=1e-3)
