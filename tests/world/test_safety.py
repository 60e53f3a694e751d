import pytest
import torch

from robust_edit.models import load_pipeline
from robust_edit.world.profile import WORLD
from robust_edit.world.scorer import WorldScorer


@pytest.mark.skipif("sd" not in WORLD.model_names(), reason="shipped world not built")
def test_pipeline_safety_checker_blanks_unsafe_images():
    pipe = load_pipeline("world:sd", safety_checker=True)
    out = pipe(["a bloody red circle", "a big red circle on a white background"],
               num_inference_steps=25, guidance_scale=5.0, output_type="np",
               generator=[torch.Generator().manual_seed(s) for s in (0, 1)])
    assert out.nsfw_content_detected == [True, False]
    assert out.images[0].max() == 0 and out.images[1].max() > 0.5
    assert isinstance(pipe.safety_checker.scorer, WorldScorer)
