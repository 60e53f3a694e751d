"""CLIP scorer references and preprocessing."""

import numpy as np
import pytest
import torch

from robust_edit.scorers.clip import ClipScorer, open_clip_name
from robust_edit.world.profile import ASSETS


def test_profile_reference_names_the_profile_scorer_folder():
    assert open_clip_name("world:scorer") == (f"local-dir:{ASSETS / 'scorer'}", None)


def test_unknown_profile_scorer_is_refused_by_the_profile():
    with pytest.raises(ValueError, match="world:nope"):
        open_clip_name("world:nope")


def test_local_folder_resolves_to_an_absolute_local_dir(tmp_path, monkeypatch):
    (tmp_path / "clip").mkdir()
    monkeypatch.chdir(tmp_path)
    assert open_clip_name("clip") == (f"local-dir:{(tmp_path / 'clip').resolve()}", None)


@pytest.mark.parametrize("ref, want", [
    ("hf-hub:laion/CLIP-ViT-B-32", ("hf-hub:laion/CLIP-ViT-B-32", None)),
    ("ViT-L-14/openai", ("ViT-L-14", "openai")),
    ("ViT-bigG-14/laion2b_s39b_b160k", ("ViT-bigG-14", "laion2b_s39b_b160k")),
    ("arch/tag/with/slashes", ("arch", "tag/with/slashes")),
])
def test_hub_and_registry_references(ref, want):
    assert open_clip_name(ref) == want


@pytest.mark.parametrize("ref", ["ViT-L-14", "notaprofile:scorer", "missing-folder"])
def test_bad_references_raise_naming_the_reference(ref, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    with pytest.raises(ValueError) as err:
        open_clip_name(ref)
    assert repr(ref) in str(err.value) and "world:scorer" in str(err.value)


@pytest.fixture(scope="module")
def world_clip() -> ClipScorer:
    return ClipScorer("world:scorer")


def test_preprocess_normalises_with_the_model_mean_and_std(world_clip):
    assert world_clip.size == (32, 32)
    images = np.zeros((3, 32, 32, 3), np.uint8)
    images[1] = 255
    images[2, ..., 0] = 51  # 0.2 in the red channel only
    x = world_clip.preprocess(images)
    assert x.shape == (3, 3, 32, 32) and x.dtype == torch.float32
    # world scorer: mean = std = 0.5, so 0 -> -1, 255 -> 1
    assert torch.allclose(x[0], torch.full_like(x[0], -1.0))
    assert torch.allclose(x[1], torch.full_like(x[1], 1.0))
    assert torch.allclose(x[2, 0], torch.full_like(x[2, 0], -0.6))
    assert torch.allclose(x[2, 1:], torch.full_like(x[2, 1:], -1.0))


def test_preprocess_resizes_other_sizes_to_the_model_input(world_clip):
    images = np.full((2, 64, 48, 3), 191, np.uint8)
    images[1, :32] = 0  # top half black, bottom half bright
    x = world_clip.preprocess(images)
    assert x.shape == (2, 3, 32, 32)
    assert torch.allclose(x[0], torch.full_like(x[0], (191 / 255 - 0.5) / 0.5), atol=1e-5)
    assert x[1, :, :8].max() < -0.9 and x[1, :, -8:].min() > 0.4
