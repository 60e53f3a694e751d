"""Faithful protocols: every setting of docs/protocol.md's table is recorded in each edit
artifact's manifest under the same name; the study's defaults are the references'; the
preserve-position setting does what it says."""

import re
from pathlib import Path

import pytest
import torch

from robust_edit import edit, resolve
from robust_edit.config import EditConfig, GenerationConfig, RefactParams, UCEParams
from robust_edit.data import load, shared_data_dir
from robust_edit.edit import text_keys, uce
from robust_edit.models import FAMILIES
from tests.tiny_pipelines import tiny_sdxl

TABLE = Path(__file__).resolve().parents[2] / "docs" / "protocol.md"
needs_shared = pytest.mark.skipif(not (shared_data_dir() / "uce").exists(),
                                  reason="../shared/data not beside this checkout")


def table() -> dict[str, set[str]]:
    """method -> the settings the table names for it ("UCE", "UCE debias", "ReFACT")."""
    rows: dict[str, set[str]] = {}
    for line in TABLE.read_text().splitlines():
        m = re.match(r"\|\s*`([a-z_]+)`\s*\|\s*([^|]+?)\s*\|", line)
        if m:
            rows.setdefault(m.group(2), set()).add(m.group(1))
    return rows


def test_the_table_names_each_methods_settings():
    rows = table()
    assert set(rows) == {"UCE", "UCE debias", "ReFACT"}
    assert {"key_policy", "preserve", "s_p", "preserve_positions", "lam", "s_e",
            "layers"} <= rows["UCE"] and rows["UCE debias"] == {"classifier"}
    assert {"layer", "encoders", "corpus", "templates", "objective", "token_states", "lr",
            "max_norm_ratio", "target_encoder"} <= rows["ReFACT"]


ARTIFACTS = {
    "erase": (EditConfig(method="uce", task="erase", dataset="world:unsafe", concepts=("lime",)),
              ("UCE",)),
    "debias": (EditConfig(method="uce", task="debias", dataset="world:professions", rows="0:1",
                          uce=UCEParams(images_per_concept=1, max_iterations=1),
                          generation=GenerationConfig(steps=1, batch_size=8)),
               ("UCE", "UCE debias")),
    "refact": (EditConfig(method="refact", task="appearance", dataset="world:road", rows="0:1",
                          refact=RefactParams(max_steps=2, corpus_size=400)),
               ("ReFACT",)),
}


@pytest.mark.parametrize("name", list(ARTIFACTS))
def test_every_artifact_records_its_methods_protocol_settings(name, tmp_path):
    cfg, methods = ARTIFACTS[name]
    artifact, _ = edit.run(cfg, "world:sd", cache_dir=tmp_path / "cache", progress=False)
    protocol = artifact.manifest["protocol"]
    want = set().union(*(table()[m] for m in methods))
    assert set(protocol) == want, set(protocol) ^ want
    resolved = resolve.edit(cfg, "world:sd")
    if cfg.method == "uce":
        p = resolved.uce
        assert (protocol["key_policy"], protocol["preserve"], protocol["s_p"],
                protocol["preserve_positions"], protocol["lam"], protocol["s_e"]) == (
            p.key_policy, list(p.preserve), p.s_p, p.preserve_positions, p.lam, p.s_e)
        assert protocol["layers"] and {f"{l}.weight" for l in protocol["layers"]} == set(artifact.tensors)
        # the world's measured settings, set explicitly in its profile
        assert (protocol["preserve_positions"], protocol["s_p"]) == (
            "from_last", 0.1 if cfg.task == "debias" else 1.0)
        if cfg.task == "debias":
            assert protocol["classifier"] == p.classifier == "world:scorer"
    else:
        assert protocol["layer"] == resolved.refact.layer == 2
        assert protocol["corpus"] == {"dataset": "world:captions", "size": 400}
        assert len(protocol["templates"]) == 9 and protocol["target_encoder"] == "clean"
        assert (protocol["objective"], protocol["lr"], protocol["max_norm_ratio"]) == ("tokens", 0.2, 20.0)


@needs_shared
def test_study_defaults_are_the_references():
    debias = resolve.edit(EditConfig(method="uce", task="debias", dataset="uce:professions",
                                     rows="0:4"))
    assert debias.uce.classifier == "ViT-B-32/openai"
    assert resolve.evaluation_scorer("uce:professions") == "ViT-L-14/openai"  # the labeller stays
    assert (debias.uce.s_p, debias.uce.preserve_positions) == (0.1, "all")
    professions = list(dict.fromkeys(r.group for r in load("uce:professions")))
    assert set(debias.uce.preserve) == set(professions) - set(debias.concepts)  # the others
    for preserve in [None, ("", "a cat"), tuple(f"p{i}" for i in range(25))]:
        erase = resolve.edit(EditConfig(method="uce", task="erase", dataset="coco30k",
                                        concepts=("dog",), uce=UCEParams(preserve=preserve)))
        assert erase.uce.s_p == pytest.approx(max(0.1, 1 / len(erase.uce.preserve)))
        assert erase.uce.preserve_positions == "all"
    last = resolve.edit(EditConfig(method="uce", task="unsafe", dataset="i2p",
                                   uce=UCEParams(key_policy="last")))
    assert last.uce.preserve_positions == "from_last"  # the current reference's, with its keys
    time = resolve.edit(EditConfig(method="refact", task="time", dataset="timed:test"),
                        "CompVis/stable-diffusion-v1-4")
    assert (time.refact.layer, time.refact.corpus, time.refact.objective) == (9, "coco30k", "pooled")


def _short(pipe, length: int):
    """Encode `length` tokens instead of 77, so the keys of a few prompts stay fewer than
    the key width and the closed form's properties hold exactly."""
    for tok in (pipe.tokenizer, pipe.tokenizer_2):
        tok.model_max_length = length
    return pipe


def test_preserve_positions_all_keeps_every_position_of_a_preserve_prompt():
    family = FAMILIES["sdxl"]
    pipe = _short(tiny_sdxl(), 8)
    enc = text_keys.encode(pipe, family, ["a red cat"])
    last = enc.last[0]
    counts = {pos: len(text_keys.preserve_keys(enc, 0, "tokens", "span", pos))
              for pos in text_keys.PRESERVE_POSITIONS}
    assert counts == {"all": 8, "from_last": 8 - last} and last > 0
    assert len(text_keys.preserve_keys(enc, 0, "tokens", "last", "from_last")) == 1
    full = text_keys.encode(tiny_sdxl(), family, ["a red cat"])  # the usual 77 positions
    assert len(text_keys.preserve_keys(full, 0, "tokens", "span", "all")) == 77

    denoiser = pipe.unet
    layers = uce.edited_layers(denoiser, family)
    modules = dict(denoiser.named_modules())
    before = {l.name: modules[l.name].weight.detach().clone().double() for l in layers}
    keys = enc.tokens[0].double()  # (8, d): every position of the preserve prompt
    change = {}
    for pos in text_keys.PRESERVE_POSITIONS:
        for l in layers:
            with torch.no_grad():
                modules[l.name].weight.copy_(before[l.name].to(modules[l.name].weight.dtype))
        uce.erase(pipe, family, ["a dog"], guide="a blue square", preserve=["a red cat"],
                  lam=1e-8, key_policy="span", preserve_positions=pos)
        change[pos] = torch.stack([
            ((keys @ modules[l.name].weight.detach().double().T - keys @ before[l.name].T).norm(dim=-1)
             / (keys @ before[l.name].T).norm(dim=-1)) for l in layers])  # (layers, 8)
    assert change["all"].max() < 1e-4  # every position's output kept
    assert change["from_last"][:, last:].max() < 1e-4  # the span's kept ...
    assert change["from_last"][:, :last].max() > 1e-2  # ... the leading positions' not


def test_preserve_positions_is_validated():
    from pydantic import ValidationError

    with pytest.raises(ValidationError, match="preserve_positions"):
        EditConfig(method="uce", task="unsafe", dataset="i2p", uce={"preserve_positions": "first"})
    with pytest.raises(ValueError, match="preserve_positions 'first'"):
        uce.erase(None, FAMILIES["sdxl"], ["a dog"], preserve_positions="first")
