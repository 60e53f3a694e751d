"""FID / KID on the embedded world: does the metric order what it should? Slow: generates
2 x 300 images (1.7 minutes on one core, measured).

Three figures, each set of 300 images against 300 reference renders (world:coco rows drawn
from their scenes), with the world scorer's image features:
- two disjoint halves of 600 reference renders: the floor at this set size;
- `world:sd` (M) on rows 0-299 against those rows' renders;
- the quickstart's plain full style fine-tune (M_ft: ink style, no edit) on the same rows.
Expected: halves < M < M_ft. Printed with `-s`; docs/results.md quotes them.
"""

import json
import time
from pathlib import Path

import pytest

from robust_edit import data
from robust_edit.generate import generate_images
from robust_edit.models import load_pipeline
from robust_edit.scorers import fid
from robust_edit.world import vocab as V
from robust_edit.world.profile import WORLD
from robust_edit.world.sampling import world_sampling

N = 300
STEPS = 15
KID = {"subsets": 100, "subset_size": 100, "seed": 0}
STORE = Path(__file__).resolve().parents[2] / "outputs" / "sweeps" / "quickstart"


def plain_full_finetune(store: Path = STORE) -> Path | None:
    """The quickstart's full fine-tune of M (no edit), complete (its stage.json written)."""
    for manifest in sorted(store.glob("stages/finetune/*/run/manifest.json")):
        m = json.loads(manifest.read_text())
        if (m["config"]["method"] == "full" and m["edit"] is None
                and (manifest.parent.parent / "stage.json").exists()):
            return manifest.parent
    return None


pytestmark = [pytest.mark.slow,
              pytest.mark.skipif("sd" not in WORLD.model_names(), reason="shipped world not built"),
              pytest.mark.skipif(plain_full_finetune() is None,
                                 reason="no quickstart store with the plain full fine-tune "
                                        "(run `robust-edit quickstart` first)")]


@pytest.fixture(scope="module")
def figures():
    from robust_edit.finetune import load_variant

    start = time.time()
    rows = data.load("world:coco")[:2 * N]
    prompts, seeds = [r.prompt for r in rows[:N]], [r.evaluation_seed for r in rows[:N]]
    settings = world_sampling(steps=STEPS, batch_size=100)
    reference = fid.reference_images("world:coco", slice(0, 2 * N))
    m_images = generate_images(load_pipeline("world:sd", device="cpu"), prompts, seeds, settings)
    run_dir = plain_full_finetune()
    ft_images = generate_images(load_variant(run_dir, device="cpu"), prompts, seeds, settings)

    extractor = fid.load_extractor(fid.default_extractor("world:coco"))
    ref_a, ref_b, m, ft = (fid.features(x, extractor) for x in
                           (reference[:N], reference[N:], m_images, ft_images))
    stats_a = fid.statistics(ref_a)

    def measure(feats, against, stats_against):
        kid_mean, kid_std = fid.kid(feats, against, **KID)
        return {"fid": fid.fid(fid.statistics(feats), stats_against),
                "kid_mean": kid_mean, "kid_std": kid_std}

    out = {"halves (ref 300-599 vs ref 0-299)": measure(ref_b, ref_a, stats_a),
           "M (world:sd) vs ref 0-299": measure(m, ref_a, stats_a),
           "M_ft (full style fine-tune) vs ref 0-299": measure(ft, ref_a, stats_a),
           "identity": fid.identity(extractor, reference.shape[1:3], n_generated=N,
                                    n_reference=N, kid_subsets=KID["subsets"],
                                    kid_subset_size=KID["subset_size"], kid_seed=KID["seed"]),
           "sampling": {"steps": STEPS, "guidance": V.GUIDANCE, "fine_tune": run_dir.parent.name},
           "minutes": round((time.time() - start) / 60, 2)}
    print(json.dumps(out, indent=2))
    return out


def test_fid_orders_reference_halves_below_m_below_the_styled_fine_tune(figures):
    halves, m, ft = (figures[k]["fid"] for k in list(figures)[:3])
    assert halves < m < ft, (halves, m, ft)


def test_kid_orders_them_the_same_way(figures):
    halves, m, ft = (figures[k]["kid_mean"] for k in list(figures)[:3])
    assert halves < m < ft, (halves, m, ft)
