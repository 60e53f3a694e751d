"""Edit artifacts: save -> load -> apply reproduces M_ed bit-exactly; other bases refused."""

from importlib.metadata import version

import pytest
import torch

from robust_edit import edit
from robust_edit.config import EditConfig, RefactParams
from robust_edit.edit.artifact import EditArtifact, EditArtifactError
from robust_edit.models import load_pipeline
from robust_edit.provenance import lock_hash

CONFIGS = {
    "uce": EditConfig(method="uce", task="erase", dataset="world:unsafe", concepts=("lime",)),
    "refact": EditConfig(method="refact", task="appearance", dataset="world:road", rows="0:1",
                         refact=RefactParams(max_steps=10)),
}


def _state(pipe):
    return {f"{c}.{k}": v for c in ("unet", "text_encoder", "vae")
            for k, v in getattr(pipe, c).state_dict().items()}


@pytest.mark.parametrize("method", ["uce", "refact"])
def test_round_trip_is_bit_exact_and_other_bases_are_refused(method, quick_world, tmp_path):
    base_ref = str(quick_world / "sd")
    artifact, edited = edit.run(CONFIGS[method], base_ref, cache_dir=tmp_path / "cache",
                                progress=False)
    folder = artifact.save(tmp_path / "artifact")
    assert sorted(p.name for p in folder.iterdir()) == ["edit.json", "edit.safetensors"]
    loaded = EditArtifact.load(folder)
    assert loaded.manifest["base_model"]["ref"] == base_ref
    assert loaded.manifest["config"]["method"] == method
    assert loaded.manifest["versions"]["torch"] == version("torch")
    assert loaded.manifest["versions"]["requirements.lock"] == lock_hash()

    base = _state(load_pipeline(base_ref, device="cpu"))
    applied = _state(loaded.apply(load_pipeline(base_ref, device="cpu")))
    want = _state(edited)
    assert all(torch.equal(applied[k], want[k]) for k in want)
    changed = [k for k in want if not torch.equal(base[k], want[k])]
    assert changed and set(changed) <= set(loaded.tensors)

    with pytest.raises(EditArtifactError) as err:
        loaded.apply(load_pipeline("world:sd", device="cpu"))
    assert base_ref in str(err.value) and "world/assets/sd" in str(err.value)
