import json

import numpy as np
import open_clip
import torch
from safetensors.torch import load_file

from robust_edit.cli import main
from robust_edit.models import load_pipeline
from robust_edit.world import build
from robust_edit.world.scorer import WorldScorer


def _weights(folder):
    return {p.relative_to(folder).as_posix(): load_file(p) for p in sorted(folder.rglob("*.safetensors"))}


def test_quick_build_writes_loadable_world(tmp_path, capsys):
    out = tmp_path / "world"
    main(["world", "build", "--quick", "--out", str(out)])
    assert json.loads(capsys.readouterr().out)["minutes"]["total"] > 0
    record = json.loads((out / "build.json").read_text())["sd"]
    assert record["config"]["diffusion_steps"] == 3 and record["versions"]["torch"]
    for csv_name in ("road_world.csv", "profession_prompts_world.csv", "unsafe_prompts_world.csv"):
        assert (out / "data" / csv_name).stat().st_size > 100
    # The scorer loads with open_clip's own API; the pipeline with diffusers'.
    model, _, preprocess = open_clip.create_model_and_transforms(f"local-dir:{out / 'scorer'}")
    assert model.visual.image_size == (32, 32)
    scorer = WorldScorer(out / "scorer")
    assert scorer.probs(np.zeros((2, 32, 32, 3), np.uint8), ["a red object", "a blue object"]).shape == (2, 2)
    pipe = load_pipeline(str(out / "sd"), device="cpu")
    img = pipe("a red circle", num_inference_steps=2, output_type="np").images
    assert img.shape == (1, 32, 32, 3)


def test_build_is_deterministic(tmp_path):
    build.build(tmp_path / "a", build.quick_config())
    build.build(tmp_path / "b", build.quick_config())
    wa, wb = _weights(tmp_path / "a"), _weights(tmp_path / "b")
    assert wa.keys() == wb.keys() and len(wa) == 4  # text encoder, unet, vae, scorer
    for name in wa:
        for key in wa[name]:
            assert torch.equal(wa[name][key], wb[name][key]), (name, key)
    wc = _weights((build.build(tmp_path / "c", build.quick_config(seed=1)), tmp_path / "c")[1])
    assert not torch.equal(wa["sd/unet/diffusion_pytorch_model.safetensors"]["conv_in.weight"],
                           wc["sd/unet/diffusion_pytorch_model.safetensors"]["conv_in.weight"])


def test_padding_dropout_replaces_only_eos_and_padding_of_dropped_captions():
    ids = torch.tensor([[49406, 320, 11193, 49407, 49407, 49407],
                        [49406, 320, 49407, 49407, 49407, 49407]])
    cond, empty = torch.randn(2, 6, 3), torch.randn(6, 3)
    gen = torch.Generator().manual_seed(0)
    out = build._drop_padding(cond, ids, empty, 49407, 1.0, gen)
    assert torch.equal(out[0, :3], cond[0, :3]) and torch.equal(out[0, 3:], empty[3:])
    assert torch.equal(out[1, :2], cond[1, :2]) and torch.equal(out[1, 2:], empty[2:])
    assert torch.equal(build._drop_padding(cond, ids, empty, 49407, 0.0, gen), cond)
