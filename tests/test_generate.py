import csv
import json
from importlib.metadata import version

import numpy as np
from PIL import Image

from robust_edit.cli import main
from robust_edit.generate import GenerationSettings, generate_images
from robust_edit.models import load_pipeline
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
