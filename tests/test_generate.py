import csv
import json
from importlib.metadata import version

import numpy as np
import torch
from PIL import Image

from robust_edit.cli import main
from robust_edit.generate import GenerationSettings, generate_images
from robust_edit.models import flux_sequence_length, load_pipeline
from robust_edit.provenance import lock_hash


def test_images_do_not_depend_on_batch_size(quick_world):
    pipe = load_pipeline(str(quick_world / "sd"), device="cpu")
    prompts, seeds = ["a red circle", "a lime", "the king"], [3, 4, 5]
    a = generate_images(pipe, prompts, seeds, GenerationSettings(steps=3, batch_size=3))
    b = generate_images(pipe, prompts, seeds, GenerationSettings(steps=3, batch_size=1))
    assert a.shape == (3, 32, 32, 3) and a.dtype == np.uint8
    np.testing.assert_allclose(a.astype(int), b.astype(int), atol=2)
    c = generate_images(pipe, prompts, [6, 7, 8], GenerationSettings(steps=3, batch_size=3))
    assert np.abs(a.astype(int) - c.astype(int)).mean() > 1  # other seeds, other images


def test_flux_true_cfg_guides_by_the_empty_prompt_only_when_asked():
    from tests.tiny_pipelines import tiny_flux

    pipe = tiny_flux()
    prompts, seeds = ["a red circle", "a lime"], [3, 4]

    def draw(guidance, true_cfg):
        return generate_images(pipe, prompts, seeds, GenerationSettings(
            steps=3, guidance=guidance, true_cfg=true_cfg, batch_size=2)).astype(int)

    unguided = draw(1.0, False)
    # Without a guidance embedding FluxPipeline ignores guidance_scale: only true CFG guides.
    np.testing.assert_array_equal(draw(3.0, False), unguided)
    np.testing.assert_array_equal(draw(1.0, True), unguided)
    guided = draw(3.0, True)
    assert np.abs(guided - unguided).mean() > 1
    gens = [torch.Generator().manual_seed(s) for s in seeds]
    by_hand = pipe(prompts, negative_prompt=["", ""], true_cfg_scale=3.0, generator=gens,
                   num_inference_steps=3, output_type="np",
                   max_sequence_length=flux_sequence_length(pipe)).images
    np.testing.assert_allclose(guided, (np.clip(by_hand, 0, 1) * 255).round(), atol=1)


def test_generate_cli_writes_pngs_and_manifest(quick_world, tmp_path):
    prompts = tmp_path / "prompts.csv"
    with open(prompts, "w", newline="") as f:
        w = csv.writer(f)
        w.writerow(["case_number", "prompt", "evaluation_seed"])
        w.writerows([[0, "a red circle", 11], [1, "a tall CEO", 12]])
    out = tmp_path / "images"
    main(["generate", "--model", str(quick_world / "sd"), "--prompts", str(prompts),
          "--out", str(out), "--steps", "2", "--images", "2", "--batch-size", "3"])
    manifest = json.loads((out / "manifest.json").read_text())
    assert [i["seed"] for i in manifest["images"]] == [11, 12, 12, 13]
    assert manifest["settings"]["steps"] == 2
    assert manifest["versions"]["torch"] == version("torch")
    assert manifest["versions"]["requirements.lock"] == lock_hash()
    for item in manifest["images"]:
        assert Image.open(out / item["file"]).size == (32, 32)


def test_generate_cli_rejects_csv_without_seed_column(quick_world, tmp_path, capsys):
    import pytest

    bad = tmp_path / "bad.csv"
    bad.write_text("prompt\na red circle\n")
    with pytest.raises(SystemExit):
        main(["generate", "--model", str(quick_world / "sd"), "--prompts", str(bad),
              "--out", str(tmp_path / "o")])
    assert "evaluation_seed" in capsys.readouterr().err
