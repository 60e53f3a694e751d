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
