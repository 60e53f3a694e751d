"""Image quality of a generated set against reference images: FID and KID (torch-fidelity).

FID and KID are set-level metrics, not per-image scores, so this module is not a
`robust_edit.scorers.SCORERS` entry; a caller computes features once per image set, keeps
the reference set's statistics, and records `identity(...)` beside every number, since an
FID is only comparable to another FID of the same extractor, layer, image size and set
sizes.

1. Feature extractors, from one reference string (`load_extractor`):
   - `inception-v3-compat`: torch-fidelity's Inception (the standard FID), from a LOCAL
     weights file; it is never downloaded at run time.
   - any CLIP scorer reference (`world:scorer`, `ViT-B-32/openai`, a local open_clip folder,
     robust_edit.scorers.clip): the image tower of that `ClipScorer`, wrapped as a
     torch-fidelity feature extractor registered as `robust-edit-clip`. The embedded world
     measures with its own scorer (`TaskDefaults.fid_extractor`), as an Inception trained on
     photographs says little about 32x32 renders.
2. `features(images, extractor)`: uint8 (N, H, W, 3) -> (N, dim).
3. `statistics`, `fid`, `kid`: torch-fidelity's own functions (metric_fid, metric_kid).
4. `reference_images(dataset, rows)`: the real images a prompt set's images are compared
   with: a profile's (the world renders `world:coco` rows from their scenes), else a local
   image folder matched to the rows by `coco_id`.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch
import torch_fidelity
from torch_fidelity import metric_fid, metric_kid
from torch_fidelity.feature_extractor_base import FeatureExtractorBase
from torch_fidelity.helpers import vassert
from torch_fidelity.registry import FEATURE_EXTRACTORS_REGISTRY
from torch_fidelity.utils import create_feature_extractor

from robust_edit import profiles
from robust_edit.cache import file_sha256

INCEPTION = "inception-v3-compat"  # torch-fidelity's registry name for the standard FID network
INCEPTION_LAYER = "2048"  # its pool3 features, the standard FID/KID layer
INCEPTION_WEIGHTS = "weights-inception-2015-12-05-6726825d.pth"
INCEPTION_URL = ("https://github.com/toshas/torch-fidelity/releases/download/v0.2.0/"
                 + INCEPTION_WEIGHTS)
CLIP = "robust-edit-clip"  # the registry name of ClipImageFeatures (stable: in result rows)
CLIP_LAYER = "embedding"
# torch-fidelity's KID defaults (defaults.py): 100 subsets of 1000, polynomial kernel of degree 3.
KID_SUBSETS = 100
KID_SUBSET_SIZE = 1000
KID_SEED = 2020


# -- 1. feature extractors ------------------------------------------------------------------

class ClipImageFeatures(FeatureExtractorBase):
    """A CLIP scorer's image tower as a torch-fidelity feature extractor: uint8 (B, 3, H, W)
    -> its image embedding (B, embed_dim), unnormalised (as torch-fidelity's own clip-*
    extractors), after the scorer's preprocessing (resize to its input size, mean/std)."""

    def __init__(self, name, features_list, feature_extractor_scorer: str = "world:scorer",
                 **kwargs):
        super().__init__(name, features_list)
        from robust_edit.scorers.clip import ClipScorer

        scorer = ClipScorer(feature_extractor_scorer, device="cpu")
        self.scorer_ref = feature_extractor_scorer
        self.model = scorer.model
        self.input_size = scorer.size
        self.feature_dim = int(self.model.visual.output_dim)
        # Buffers, not the scorer's plain tensors, so that .to(device) / .cuda() moves them.
        self.register_buffer("mean", scorer.mean.clone())
        self.register_buffer("std", scorer.std.clone())
        self.requires_grad_(False)
        self.eval()

    def forward(self, x):
        vassert(torch.is_tensor(x) and x.dtype == torch.uint8,
                "Expecting image as torch.Tensor with dtype=torch.uint8")
        vassert(x.dim() == 4 and x.shape[1] == 3, f"Input is not Bx3xHxW: {x.shape}")
        x = x.float() / 255.0  # the same steps as ClipScorer.preprocess
        if tuple(x.shape[-2:]) != self.input_size:
            x = torch.nn.functional.interpolate(x, size=self.input_size, mode="bicubic",
                                                antialias=True, align_corners=False).clamp(0, 1)
        z = self.model.encode_image((x - self.mean) / self.std, normalize=False)
        return (z.float(),)

    @staticmethod
    def get_provided_features_list():
        return (CLIP_LAYER,)

    @staticmethod
    def get_default_feature_layer_for_metric(metric):
        return {"isc": CLIP_LAYER, "fid": CLIP_LAYER, "kid": CLIP_LAYER, "prc": CLIP_LAYER}[metric]

    @staticmethod
    def can_be_compiled():
        return False

    @staticmethod
    def get_dummy_input_for_compile():
        return (torch.rand([1, 3, 4, 4]) * 255).to(torch.uint8)


if CLIP not in FEATURE_EXTRACTORS_REGISTRY:  # once per process, re-imports included
    torch_fidelity.register_feature_extractor(CLIP, ClipImageFeatures)


def load_extractor(ref: str, weights: str | Path | None = None,
                   device: str = "cpu") -> FeatureExtractorBase:
    """`inception-v3-compat` (with `weights`, a local file of torch-fidelity's Inception) or
    a CLIP scorer reference, built through torch-fidelity's registry, in eval mode on
    `device`."""
    if ref == INCEPTION:
        if weights is None or not Path(weights).is_file():
            given = f"{weights} does not exist" if weights else "no weights path was given"
            raise ValueError(
                f"FID extractor {INCEPTION!r} needs its weights as a local file ({given}); "
                f"it is never downloaded at run time: fetch {INCEPTION_URL} once where the "
                "network is reachable and give that file's path as the FID weights")
        extractor = create_feature_extractor(
            INCEPTION, [INCEPTION_LAYER], cuda=False,
            feature_extractor_weights_path=str(weights), verbose=False)
        extractor.weights_path = Path(weights).resolve()
    else:
        extractor = create_feature_extractor(CLIP, [CLIP_LAYER], cuda=False,
                                             feature_extractor_scorer=ref, verbose=False)
    return extractor.to(device)


def describe(extractor: FeatureExtractorBase) -> dict:
    """What the features are: registry name, model (scorer reference, or the weights file
    and its sha256), layer, dimension and the size images are resized to."""
    layer = extractor.get_requested_features_list()[0]
    if isinstance(extractor, ClipImageFeatures):
        return {"extractor": extractor.get_name(), "model": extractor.scorer_ref,
                "feature_layer": layer, "feature_dim": extractor.feature_dim,
                "extractor_input_size": list(extractor.input_size)}
    weights = getattr(extractor, "weights_path", None)
    size = getattr(extractor, "INPUT_IMAGE_SIZE", None)
    return {"extractor": extractor.get_name(),
            "model": f"{weights.name} sha256:{file_sha256(weights)}" if weights else None,
            "feature_layer": layer, "feature_dim": int(layer) if layer.isdigit() else None,
            "extractor_input_size": [size, size] if size else None}


def identity(extractor: FeatureExtractorBase, image_size: tuple[int, int] | list[int], *,
             n_generated: int, n_reference: int, kid_subsets: int = KID_SUBSETS,
             kid_subset_size: int = KID_SUBSET_SIZE, kid_seed: int = KID_SEED) -> dict:
    """Everything an FID/KID number depends on besides the images: record it beside each."""
    return {**describe(extractor), "image_size": [int(s) for s in image_size],
            "n_generated": int(n_generated), "n_reference": int(n_reference),
            "kid_subsets": int(kid_subsets), "kid_subset_size": int(kid_subset_size),
            "kid_seed": int(kid_seed), "kid_kernel": "poly3",
            "torch_fidelity": torch_fidelity.__version__}


# -- 2. features ----------------------------------------------------------------------------

@torch.no_grad()
def features(images: np.ndarray, extractor: FeatureExtractorBase,
             batch_size: int = 256) -> np.ndarray:
    """uint8 images (N, H, W, 3) -> float64 features (N, dim) of the extractor's layer."""
    images = np.asarray(images)
    if images.dtype != np.uint8 or images.ndim != 4 or images.shape[-1] != 3:
        raise ValueError(f"features: expected uint8 images (N, H, W, 3), got {images.dtype} "
                         f"{images.shape}")
    device = next(extractor.parameters()).device
    out = []
    for i in range(0, len(images), batch_size):
        x = torch.from_numpy(images[i:i + batch_size]).permute(0, 3, 1, 2).contiguous()
        out.append(extractor(x.to(device))[0].double().cpu())
    return torch.cat(out).numpy()


# -- 3. the metrics: torch-fidelity's ---------------------------------------------------------

def statistics(feats: np.ndarray) -> dict[str, np.ndarray]:
    """{mu, sigma}: the features' mean and covariance (torch-fidelity's FID statistics)."""
    return metric_fid.fid_features_to_statistics(torch.from_numpy(np.asarray(feats)))


def fid(stats_a: dict, stats_b: dict) -> float:
    """Fréchet distance of two `statistics`."""
    out = metric_fid.fid_statistics_to_metric(stats_a, stats_b, verbose=False)
    return float(out[metric_fid.KEY_METRIC_FID])


def kid(feat_a: np.ndarray, feat_b: np.ndarray, subsets: int = KID_SUBSETS,
        subset_size: int = KID_SUBSET_SIZE, seed: int = KID_SEED) -> tuple[float, float]:
    """Kernel distance (unbiased MMD², cubic polynomial kernel) over `subsets` random subsets
    of `subset_size` rows of each set: (mean, std)."""
    smaller = min(len(feat_a), len(feat_b))
    if subset_size > smaller:
        raise ValueError(f"KID subset size {subset_size} exceeds the {smaller} images of the "
                         f"smaller set; pass subset_size <= {smaller}")
    out = metric_kid.kid_features_to_metric(
        torch.from_numpy(np.asarray(feat_a)), torch.from_numpy(np.asarray(feat_b)),
        kid_subsets=subsets, kid_subset_size=subset_size, rng_seed=seed, verbose=False)
    return float(out[metric_kid.KEY_METRIC_KID_MEAN]), float(out[metric_kid.KEY_METRIC_KID_STD])


# -- 4. reference images ----------------------------------------------------------------------

def default_extractor(dataset: str) -> str:
    """The extractor reference FID uses on this data (the world: its scorer; else Inception)."""
    return profiles.defaults_for(dataset).fid_extractor


def reference_images(dataset: str, rows: slice = slice(None), *, folder: str | Path | None = None,
                     size: int | None = None) -> np.ndarray:
    """uint8 (N, H, W, 3): the real image of each of the dataset's rows `rows` (in order).
    A profile's dataset asks its profile (the world renders each row's scene); a real one
    (COCO format, with `coco_id`) reads `folder`, files named by COCO id
    (`COCO_val2014_000000203564.jpg`, `000000203564.jpg`, `203564.png`, ...), resized on
    the shorter side and centre-cropped to `size` (needed when sizes differ)."""
    if found := profiles.split(dataset):
        profile, name = found
        if not hasattr(profile, "reference_images"):
            raise ValueError(f"dataset {dataset!r}: its profile gives no reference images")
        return profile.reference_images(name, rows)
    from robust_edit import data

    if data.dataset_format(dataset) != "coco":
        raise ValueError(f"dataset {dataset!r}: reference images need a COCO-format prompt set "
                         "with a coco_id column (e.g. coco30k)")
    if folder is None or not Path(folder).is_dir():
        given = f"{folder} is not a folder" if folder else "no folder was given"
        raise ValueError(f"dataset {dataset!r}: reference images are read from a local folder of "
                         f"its COCO images ({given}); give the folder holding them (MS-COCO "
                         "val2014, files named by COCO id)")
    table = data.read_rows(data.locate(dataset)[1])
    data.require_columns(table, ["coco_id"], dataset)
    by_id = {}
    for p in Path(folder).iterdir():
        if p.suffix.lower() in (".jpg", ".jpeg", ".png") and (tail := p.stem.split("_")[-1]).isdigit():
            by_id[int(tail)] = p
    wanted = [int(float(r["coco_id"])) for r in table[rows]]
    missing = [i for i in wanted if i not in by_id]
    if missing:
        raise ValueError(f"dataset {dataset!r}: {len(missing)} of {len(wanted)} reference images "
                         f"are not in {folder} (COCO ids {missing[:5]}...)")
    images = [_load_image(by_id[i], size) for i in wanted]
    if len({im.shape for im in images}) > 1:
        raise ValueError(f"dataset {dataset!r}: the reference images in {folder} differ in size; "
                         "give `size` (the generated images' side) to resize and crop them")
    return np.stack(images)


def _load_image(path: Path, size: int | None) -> np.ndarray:
    from PIL import Image

    with Image.open(path) as im:
        im = im.convert("RGB")
        if size is not None:
            scale = size / min(im.size)
            w, h = max(size, round(im.width * scale)), max(size, round(im.height * scale))
            im = im.resize((w, h), Image.BICUBIC)
            left, top = (w - size) // 2, (h - size) // 2
            im = im.crop((left, top, left + size, top + size))
        return np.asarray(im, dtype=np.uint8)
