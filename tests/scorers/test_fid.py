"""FID / KID (robust_edit.scorers.fid): torch-fidelity's formulas against the closed form,
the CLIP feature extractor on the world scorer, and reference images."""

import json

import numpy as np
import pytest
import scipy.linalg
import torch
from torch_fidelity.registry import FEATURE_EXTRACTORS_REGISTRY

from robust_edit.data import read_rows, shared_data_dir
from robust_edit.scorers import fid
from robust_edit.scorers.clip import ClipScorer
from robust_edit.world import datasets
from robust_edit.world.render import Scene, render


def gaussian(n, mean, cov_scale, seed, dim=8):
    rng = np.random.default_rng(seed)
    a = rng.normal(size=(dim, dim)) * cov_scale
    return rng.normal(size=(n, dim)) @ a.T + mean


def closed_form_fid(x, y):
    mu1, mu2 = x.mean(0), y.mean(0)
    s1, s2 = np.cov(x, rowvar=False), np.cov(y, rowvar=False)
    covmean = scipy.linalg.sqrtm(s1 @ s2).real
    return float(((mu1 - mu2) ** 2).sum() + np.trace(s1 + s2 - 2 * covmean))


def test_fid_equals_the_closed_form_on_known_features():
    x = gaussian(400, 0.0, 1.0, seed=1)
    y = gaussian(300, 0.7, 0.6, seed=2)
    got = fid.fid(fid.statistics(x), fid.statistics(y))
    want = closed_form_fid(x, y)
    assert want > 1.0
    assert got == pytest.approx(want, rel=1e-6)


def test_statistics_are_mean_and_covariance():
    x = gaussian(200, 0.3, 1.0, seed=3)
    stats = fid.statistics(x)
    assert np.allclose(stats["mu"], x.mean(0)) and np.allclose(stats["sigma"], np.cov(x, rowvar=False))


def test_fid_of_a_set_with_itself_is_zero():
    x = gaussian(300, 0.5, 1.0, seed=4)
    assert abs(fid.fid(fid.statistics(x), fid.statistics(x))) < 1e-6


def test_kid_is_zero_for_identical_sets_and_positive_for_shifted_ones():
    x = gaussian(600, 0.0, 0.35, seed=5)  # about unit variance per dimension
    same_mean, same_std = fid.kid(x, x, subsets=50, subset_size=100, seed=0)
    halves_mean, _ = fid.kid(x[:300], x[300:], subsets=50, subset_size=100, seed=0)
    shifted_mean, _ = fid.kid(x, x + 1.0, subsets=50, subset_size=100, seed=0)
    assert shifted_mean > 1.0 and same_std >= 0
    assert abs(same_mean) < 0.02 * shifted_mean and abs(halves_mean) < 0.02 * shifted_mean


def test_kid_refuses_a_subset_larger_than_a_set():
    x = gaussian(50, 0.0, 1.0, seed=6)
    with pytest.raises(ValueError, match="subset size 100 exceeds the 50"):
        fid.kid(x, x, subsets=2, subset_size=100)


@pytest.fixture(scope="module")
def world_extractor():
    return fid.load_extractor("world:scorer")


def test_the_clip_extractor_is_registered_with_torch_fidelity():
    assert FEATURE_EXTRACTORS_REGISTRY[fid.CLIP] is fid.ClipImageFeatures


def test_world_extractor_gives_n_by_dim_features(world_extractor):
    rng = np.random.default_rng(0)
    images = rng.integers(0, 256, size=(5, 32, 32, 3), dtype=np.uint8)
    feats = fid.features(images, world_extractor, batch_size=2)
    assert feats.shape == (5, 96) and feats.dtype == np.float64 and np.isfinite(feats).all()
    # the scorer's own image embedding, before normalisation
    want = ClipScorer("world:scorer").encode_images(images).numpy()
    got = feats / np.linalg.norm(feats, axis=1, keepdims=True)
    assert np.allclose(got, want, atol=1e-5)


def test_identity_names_what_was_used(world_extractor):
    ident = fid.identity(world_extractor, (32, 32), n_generated=10, n_reference=12,
                         kid_subsets=5, kid_subset_size=10, kid_seed=1)
    assert ident["extractor"] == "robust-edit-clip" and ident["model"] == "world:scorer"
    assert ident["feature_layer"] == "embedding" and ident["feature_dim"] == 96
    assert ident["image_size"] == [32, 32] and ident["extractor_input_size"] == [32, 32]
    assert (ident["kid_subsets"], ident["kid_subset_size"], ident["kid_seed"]) == (5, 10, 1)
    json.dumps(ident)  # recordable as is


@pytest.mark.parametrize("weights", [None, "/nonexistent/inception.pth"])
def test_inception_needs_local_weights(weights):
    with pytest.raises(ValueError, match="never downloaded at run time"):
        fid.load_extractor(fid.INCEPTION, weights=weights)


def test_default_extractors():
    assert fid.default_extractor("world:coco") == "world:scorer"
    assert fid.default_extractor("coco30k") == fid.INCEPTION


def test_world_reference_images_are_the_rows_scenes_rendered():
    images = fid.reference_images("world:coco", slice(3, 7))
    rows = read_rows(datasets.path("coco"))[3:7]
    want = np.stack([render(Scene(**json.loads(r["scene"]))) for r in rows])
    assert images.dtype == np.uint8 and images.shape == (4, 32, 32, 3)
    assert np.array_equal(images, want)


def test_world_prompt_sets_without_scenes_have_no_reference():
    with pytest.raises(ValueError, match="no reference images.*world:coco"):
        fid.reference_images("world:road")


def test_real_reference_needs_a_folder_and_coco_rows(tmp_path):
    with pytest.raises(ValueError, match="local folder"):
        fid.reference_images("coco30k", slice(0, 2), folder=tmp_path / "none")
    with pytest.raises(ValueError, match="COCO-format"):
        fid.reference_images("i2p", folder=tmp_path)


@pytest.mark.skipif(not (shared_data_dir() / "uce" / "coco_30k.csv").exists(),
                    reason="no shared copy of coco_30k.csv")
def test_real_reference_images_are_found_by_coco_id_and_cropped(tmp_path):
    from PIL import Image

    rows = read_rows(shared_data_dir() / "uce" / "coco_30k.csv")[:3]
    for i, r in enumerate(rows):
        Image.new("RGB", (40 + 10 * i, 30), (50 * i, 0, 0)).save(
            tmp_path / f"COCO_val2014_{int(r['coco_id']):012d}.jpg")
    images = fid.reference_images("coco30k", slice(0, 3), folder=tmp_path, size=16)
    assert images.shape == (3, 16, 16, 3) and images.dtype == np.uint8
    assert images[2, 8, 8, 0] > images[1, 8, 8, 0] > images[0, 8, 8, 0]  # each row its own file
    with pytest.raises(ValueError, match="differ in size"):
        fid.reference_images("coco30k", slice(0, 3), folder=tmp_path)
    with pytest.raises(ValueError, match="not in"):
        fid.reference_images("coco30k", slice(0, 4), folder=tmp_path, size=16)


def test_features_refuse_float_images(world_extractor):
    with pytest.raises(ValueError, match="uint8"):
        fid.features(torch.zeros(2, 32, 32, 3).numpy(), world_extractor)


def test_inception_loads_from_the_given_local_file(tmp_path, monkeypatch):
    """The cluster path, with random weights (the real file is 91 MB and not shipped): the
    file given is the one loaded, and features are pool3's 2048."""
    from torch_fidelity import feature_extractor_inceptionv3 as tf_inception

    monkeypatch.setenv("ROBUST_EDIT_CACHE", str(tmp_path / "cache"))  # file_sha256's index
    weights = tmp_path / fid.INCEPTION_WEIGHTS
    weights.write_bytes(b"stand-in")
    loaded = []
    monkeypatch.setattr(tf_inception.torch, "load", lambda path, **kw: loaded.append(path) or {})
    monkeypatch.setattr(tf_inception.FeatureExtractorInceptionV3, "load_state_dict",
                        lambda self, state: None)
    extractor = fid.load_extractor(fid.INCEPTION, weights=weights)
    assert loaded == [str(weights)]
    feats = fid.features(np.zeros((2, 32, 32, 3), np.uint8), extractor)
    assert feats.shape == (2, 2048)
    ident = fid.describe(extractor)
    assert ident["extractor"] == fid.INCEPTION and ident["feature_dim"] == 2048
    assert ident["model"].startswith(fid.INCEPTION_WEIGHTS + " sha256:")
    assert ident["extractor_input_size"] == [299, 299]
