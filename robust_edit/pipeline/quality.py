"""Image quality per variant, in the aggregate: FID and KID of each cell's image-quality
sets (`evaluation.quality`) against the prompts' reference images (robust_edit.scorers.fid),
into the results database's `quality_sets` table; analysis/quality.sql reads it beside the
sets' CLIP score.

FID and KID are per set, not per image, so they are not scorer rows. FID's 95 % interval
comes from the sweep's own paired bootstrap of the quality items (`resamples`: the same
draws as the items' CLIP scores), its first FID_RESAMPLES resamples, the reference set fixed.
A resample repeats images, which lowers the set's diversity and raises its FID by a bias of
its own (measured on the world: +2 to +4 at 200 images), so the resampled FIDs are centred
on the estimate before their percentiles are taken (the bias-corrected percentile interval).
KID is reported with its own spread over random subsets of half a set."""

from __future__ import annotations

import io
import json

import numpy as np
import pandas as pd

from robust_edit.atomic import write_atomic
from robust_edit.config import QualitySpec
from robust_edit.pipeline.graph import AXES, Graph, content_key
from robust_edit.pipeline.stages import IMAGES, decode
from robust_edit.pipeline.store import Store

FID_RESAMPLES = 200


def write_sets(db, graph: Graph, store: Store, spec: QualitySpec) -> None:
    from tqdm.auto import tqdm

    from robust_edit.scorers import fid

    ref = spec.extractor or fid.default_extractor(spec.dataset)
    extractor = fid.load_extractor(ref, spec.inception_weights)
    keys = sorted({k for c in graph.cells for k in c.get("quality", {}).values()})
    sets = {}
    for key in tqdm(keys, desc="FID features", mininterval=2):
        frame = pd.read_parquet(store.dir(graph.stages[key]) / IMAGES, columns=["item", "image"])
        images = decode(frame["image"])
        sets[key] = (frame["item"].to_numpy(), fid.features(images, extractor))
    size = images.shape[1]
    reference = reference_features(store, spec, extractor, size)
    ref_stats = fid.statistics(reference)
    n = len(next(iter(sets.values()))[1])
    # Subsets of half a set (at most torch-fidelity's 1,000): subsets of a whole set are all
    # the same set, and KID's spread over them would read 0.
    kid_size = min(fid.KID_SUBSET_SIZE, n // 2, len(reference) // 2)
    identity = json.dumps(fid.identity(extractor, (size, size), n_generated=n, n_reference=len(reference),
                                       kid_subset_size=kid_size))
    weights = db.execute("SELECT edit, item, b, w FROM resamples WHERE b <= ?", [FID_RESAMPLES]).df()
    rows, done = [], {}
    for cell in graph.cells:
        for variant, key in cell.get("quality", {}).items():
            if (cell["edit"], key) not in done:  # M's and M_ft's sets recur across cells
                items, feats = sets[key]
                kid_mean, kid_std = fid.kid(feats, reference, subset_size=kid_size)
                out = [(0, fid.fid(fid.statistics(feats), ref_stats), kid_mean, kid_std)]
                drawn = weights[weights["edit"] == cell["edit"]]
                resampled = [fid.fid(fid.statistics(np.repeat(
                    feats, w.set_index("item")["w"].reindex(items, fill_value=0).to_numpy(), axis=0)),
                    ref_stats) for _, w in drawn.groupby("b")]
                # Centred on the estimate: a resample's repeated images add their own bias.
                shift = np.mean(resampled) - out[0][1] if resampled else 0.0
                out += [(b, f - shift, None, None) for b, f in enumerate(resampled, start=1)]
                done[(cell["edit"], key)] = out
            rows += [{"sweep": graph.spec.name, "cell": cell["cell"], **{a: cell[a] for a in AXES},
                      "variant": variant, "b": b, "fid": f, "kid": k, "kid_std": ks, "images": n,
                      "generate_key": key, "identity": identity}
                     for b, f, k, ks in done[(cell["edit"], key)]]
    db.register("quality_frame", pd.DataFrame(rows))
    db.execute("INSERT INTO quality_sets BY NAME SELECT * FROM quality_frame")
    db.unregister("quality_frame")


def reference_features(store: Store, spec: QualitySpec, extractor, size: int) -> np.ndarray:
    """The reference images' features, computed once per (data, rows, extractor, size) and
    kept in the store's cache, keyed by content like a stage."""
    from robust_edit.scorers import fid

    rows = slice(0, spec.images)
    key = content_key("fid-reference", {"dataset": spec.dataset, "rows": [0, spec.images],
                                        "extractor": fid.describe(extractor), "size": size,
                                        "folder": spec.reference_folder})
    path = store.root / "cache" / "fid-reference" / f"{key}.npy"
    if path.exists():
        return np.load(path)
    images = fid.reference_images(spec.dataset, rows, folder=spec.reference_folder, size=size)
    feats = fid.features(images, extractor)
    path.parent.mkdir(parents=True, exist_ok=True)
    buf = io.BytesIO()
    np.save(buf, feats)
    write_atomic(path, buf.getvalue())
    return feats
