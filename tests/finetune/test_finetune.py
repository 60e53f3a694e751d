"""Fine-tuning on the quick world (a few steps): determinism, resume, adapters, M_ed_ft."""

import json
from importlib.metadata import version

import numpy as np
import pytest
import torch
from safetensors.torch import load_file

from robust_edit import edit, finetune, resolve
from robust_edit.config import EditConfig, FinetuneConfig
from robust_edit.models import FAMILIES, load_pipeline
from robust_edit.provenance import lock_hash

SMALL = dict(dataset="world:style", steps=4, batch_size=4, checkpoint_every=2, seed=3)


def _final(run_dir, steps=4):
    return load_file(str(finetune.checkpoint_dir(run_dir, steps) / "trainable.safetensors"))


def _max_diff(a, b):
    assert a.keys() == b.keys()
    return max((a[k] - b[k]).abs().max().item() for k in a)


@pytest.mark.parametrize("method", ["full", "lora", "dora"])
def test_same_seed_same_weights_and_resume_after_kill_matches(method, quick_world, tmp_path):
    ref = str(quick_world / "sd")
    cfg = FinetuneConfig(method=method, **SMALL)
    final = {"keep_steps": [4], "progress": False}  # the last step's trainable tensors stay
    finetune.run(cfg, ref, tmp_path / "a", **final)
    finetune.run(cfg, ref, tmp_path / "b", **final)
    assert _max_diff(_final(tmp_path / "a"), _final(tmp_path / "b")) <= 1e-6
    # Interrupted after the step-2 checkpoint, then the same command again.
    partial = finetune.run(cfg, ref, tmp_path / "c", progress=False, stop_after=2)
    assert partial["status"] == "running" and finetune.completed_checkpoints(tmp_path / "c") == [2]
    resumed = finetune.run(cfg, ref, tmp_path / "c", **final)
    assert resumed["status"] == "complete" and resumed["checkpoints"] == [4]
    assert _max_diff(_final(tmp_path / "a"), _final(tmp_path / "c")) <= 1e-5
    other = FinetuneConfig(method=method, **{**SMALL, "seed": 4})
    finetune.run(other, ref, tmp_path / "d", **final)
    assert _max_diff(_final(tmp_path / "a"), _final(tmp_path / "d")) > 1e-4
    manifest = json.loads((tmp_path / "a" / "manifest.json").read_text())
    assert manifest["dataset"]["id"] == "world:style" and len(manifest["dataset"]["hash"]) == 24
    assert manifest["base_model"]["ref"] == ref
    assert manifest["versions"]["peft"] == version("peft")
    assert manifest["versions"]["requirements.lock"] == lock_hash()


def test_a_decaying_learning_rate_resumes_where_it_stopped(quick_world, tmp_path):
    """The schedule's position is part of a checkpoint: resumed at step 2 of a cosine decay,
    the run continues at step 2's rate, not the start's (which would change the weights)."""
    ref = str(quick_world / "sd")
    cfg = FinetuneConfig(method="full", lr_scheduler="cosine", **SMALL)
    final = {"keep_steps": [4], "progress": False}
    finetune.run(cfg, ref, tmp_path / "whole", **final)
    finetune.run(cfg, ref, tmp_path / "resumed", progress=False, stop_after=2)
    finetune.run(cfg, ref, tmp_path / "resumed", **final)
    assert _max_diff(_final(tmp_path / "whole"), _final(tmp_path / "resumed")) <= 1e-5
    constant = FinetuneConfig(method="full", **SMALL)
    finetune.run(constant, ref, tmp_path / "constant", **final)
    assert _max_diff(_final(tmp_path / "whole"), _final(tmp_path / "constant")) > 1e-4


@pytest.mark.parametrize("method", ["lora", "dora"])
@pytest.mark.parametrize("rank", [4, 8, 16])
def test_trainable_parameters_follow_the_formula(method, rank, quick_world):
    pipe = load_pipeline(str(quick_world / "sd"))
    cfg = resolve.finetune(FinetuneConfig(method=method, dataset="world:style", rank=rank))
    params = finetune.METHODS[method].prepare(pipe, FAMILIES["sd"], cfg)
    te = pipe.text_encoder.config
    # 4 attention projections (h -> h) per layer: r (h + h) each, plus h magnitudes for DoRA.
    per_module = rank * 2 * te.hidden_size + (te.hidden_size if method == "dora" else 0)
    assert sum(p.numel() for p in params.values()) == te.num_hidden_layers * 4 * per_module
    assert all(not p.requires_grad for p in pipe.unet.parameters())


@pytest.mark.parametrize("method", ["lora", "dora"])
def test_adapters_load_on_a_fresh_base_and_merged_equals_unmerged(method, quick_world, tmp_path):
    ref = str(quick_world / "sd")
    # AdamW so that four steps move DoRA visibly (Prodigy starts from a tiny step size).
    cfg = FinetuneConfig(method=method, **{**SMALL, "lr": 5e-2, "optimizer": "adamw"})
    finetune.run(cfg, ref, tmp_path / "run", progress=False)
    assert (tmp_path / "run" / "lora" / "pytorch_lora_weights.safetensors").exists()
    pipe = load_pipeline(ref)
    base_img = pipe("a red circle", num_inference_steps=3, output_type="np",
                    generator=torch.Generator().manual_seed(0)).images
    pipe.load_lora_weights(str(tmp_path / "run" / "lora"))
    unmerged = pipe("a red circle", num_inference_steps=3, output_type="np",
                    generator=torch.Generator().manual_seed(0)).images
    pipe.fuse_lora()
    merged = pipe("a red circle", num_inference_steps=3, output_type="np",
                  generator=torch.Generator().manual_seed(0)).images
    assert np.abs(merged - unmerged).max() <= 1e-3
    assert np.abs(unmerged - base_img).max() > 1e-3  # the adapter does something


def test_m_ed_ft_starts_from_the_edit(quick_world, tmp_path):
    ref = str(quick_world / "sd")
    artifact, _ = edit.run(EditConfig(method="uce", task="erase", dataset="world:unsafe",
                                      concepts=("lime",)), ref, progress=False)
    artifact.save(tmp_path / "edit")
    cfg = FinetuneConfig(method="lora", **SMALL)
    manifest = finetune.run(cfg, ref, tmp_path / "run", edit_artifact=tmp_path / "edit",
                            progress=False, keep_steps=[2])
    assert manifest["edit"]["method"] == "uce" and manifest["edit"]["hash"] != manifest["base_model"]["hash"]
    pipe = finetune.load_variant(tmp_path / "run")  # M_ed_ft: edit + fused adapters
    unet = dict(pipe.unet.named_parameters())
    for name, value in artifact.tensors.items():  # LoRA on the text encoder leaves the edit
        assert torch.equal(unet[name.removeprefix("unet.")], value)
    at_2 = finetune.load_variant(tmp_path / "run", step=2)
    assert torch.equal(dict(at_2.unet.named_parameters())[next(iter(artifact.tensors)).removeprefix("unet.")],
                       next(iter(artifact.tensors.values())))


def test_dreambooth_with_prior_preservation_caches_class_images(quick_world, tmp_path):
    ref = str(quick_world / "sd")
    cfg = FinetuneConfig(method="dreambooth", dataset="world:dreambooth:ring", steps=2, batch_size=2,
                         checkpoint_every=2, class_images=4)
    manifest = finetune.run(cfg, ref, tmp_path / "run", cache_dir=tmp_path / "cache", progress=False)
    assert manifest["status"] == "complete" and manifest["targets"] == "unet"
    cached = list((tmp_path / "cache").glob("class-images-*.npy"))
    assert len(cached) == 1 and np.load(cached[0]).shape[0] == 4
    assert (tmp_path / "run" / "pipeline" / "model_index.json").exists()


def test_rerun_of_a_finished_run_recomputes_nothing(quick_world, tmp_path):
    ref = str(quick_world / "sd")
    cfg = FinetuneConfig(method="lora", **SMALL)
    first = finetune.run(cfg, ref, tmp_path / "run", progress=False)
    mtime = (tmp_path / "run" / "manifest.json").stat().st_mtime_ns
    assert finetune.run(cfg, ref, tmp_path / "run", progress=False) == first
    assert (tmp_path / "run" / "manifest.json").stat().st_mtime_ns == mtime
    with pytest.raises(ValueError, match="different fine-tuning run"):
        finetune.run(FinetuneConfig(method="dora", **SMALL), ref, tmp_path / "run", progress=False)


def test_only_the_last_checkpoint_is_kept_while_training_and_none_after(quick_world, tmp_path):
    """Resume needs only the last complete checkpoint; the finished run's outputs hold the
    model, so only the steps a caller keeps (keep_steps) outlive the run."""
    ref = str(quick_world / "sd")
    cfg = FinetuneConfig(method="lora", **{**SMALL, "steps": 6})
    on_disk = []

    def record(step, folder):
        on_disk.append(sorted(p.name for p in folder.parent.iterdir()))

    manifest = finetune.run(cfg, ref, tmp_path / "kept", progress=False, keep_steps=[2],
                            on_checkpoint=record)
    assert on_disk == [["step-000002"], ["step-000002", "step-000004"], ["step-000002", "step-000006"]]
    assert manifest["checkpoints"] == [2] and finetune.completed_checkpoints(tmp_path / "kept") == [2]
    assert [p.name for p in (tmp_path / "kept" / "checkpoints").iterdir()] == ["step-000002"]
    finetune.load_variant(tmp_path / "kept", step=2)

    # Interrupted after step 4, resumed: still one checkpoint at a time, none at the end.
    partial = finetune.run(cfg, ref, tmp_path / "run", progress=False, stop_after=4)
    assert partial["checkpoints"] == [4]
    (tmp_path / "run" / "checkpoints" / ".step-000006.1.ab.tmp").mkdir()  # a killed write's
    done = finetune.run(cfg, ref, tmp_path / "run", progress=False)
    assert done["status"] == "complete" and done["checkpoints"] == []
    assert list((tmp_path / "run" / "checkpoints").iterdir()) == []
    tuned = finetune.load_variant(tmp_path / "run")
    kept = finetune.load_variant(tmp_path / "kept")
    for name, value in tuned.text_encoder.state_dict().items():  # the same model either way
        assert torch.allclose(value, kept.text_encoder.state_dict()[name], atol=1e-5), name
