import contextlib
import csv
import io
import json
import random
import re
import shutil

import numpy as np
import open_clip
import pytest
import torch
from safetensors.torch import load_file

from robust_edit.cli import main
from robust_edit.models import load_pipeline
from robust_edit.world import build, calibration, training
from robust_edit.world import vocab as V
from robust_edit.world.scorer import WorldScorer


def _weights(folder):
    return {p.relative_to(folder).as_posix(): load_file(p) for p in sorted(folder.rglob("*.safetensors"))}


@pytest.fixture(scope="module")
def quick_world(tmp_path_factory):
    """One quick build through the CLI, shared by the tests that read it (a build is a
    minute on 2 cores); a test that changes a world works on its own copy."""
    out = tmp_path_factory.mktemp("quick") / "world"
    printed = io.StringIO()
    with contextlib.redirect_stdout(printed):
        main(["world", "build", "--quick", "--out", str(out)])
    return out, json.loads(printed.getvalue())


def test_quick_build_writes_loadable_world(quick_world):
    out, printed = quick_world
    assert printed["minutes"]["total"] > 0
    record = json.loads((out / "build.json").read_text())["sd"]
    assert record["config"]["diffusion"]["steps"] == 3 and record["versions"]["torch"]
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
    # SDXL's structure: two CLIP encoders (the second with a projection: the pooled text),
    # the text_time added conditioning sized by both, its Euler sampler.
    xl = load_pipeline(str(out / "sdxl"), device="cpu")
    assert type(xl).__name__ == "StableDiffusionXLPipeline"
    assert type(xl.text_encoder_2).__name__ == "CLIPTextModelWithProjection"
    assert xl.unet.config.addition_embed_type == "text_time"
    assert xl.unet.config.cross_attention_dim == (xl.text_encoder.config.hidden_size
                                                  + xl.text_encoder_2.config.hidden_size)
    assert type(xl.scheduler).__name__ == "EulerDiscreteScheduler"
    assert xl("a red circle", num_inference_steps=2, output_type="np").images.shape == (1, 32, 32, 3)
    # FLUX's structure: CLIP (pooled) and T5 (token states) encoders, the world's own T5
    # tokenizer, a flow-matching transformer with double- and single-stream blocks, drawn
    # at the VAE's 32 pixels (not FluxPipeline's fixed default).
    flux = load_pipeline(str(out / "flux"), device="cpu")
    assert type(flux).__name__ == "FluxPipeline"
    assert type(flux.text_encoder_2).__name__ == "T5EncoderModel"
    assert flux.tokenizer_2("a CEO in ink style").input_ids[:-1] == [
        flux.tokenizer_2.convert_tokens_to_ids("\u2581" + w) for w in ("a", "CEO", "in", "ink", "style")]
    assert flux.transformer.config.num_layers >= 1 and flux.transformer.config.num_single_layers >= 1
    assert type(flux.scheduler).__name__ == "FlowMatchEulerDiscreteScheduler"
    assert flux.vae.config.shift_factor is not None
    assert flux("a red circle", num_inference_steps=2, output_type="np",
                max_sequence_length=32).images.shape == (1, 32, 32, 3)
    assert set(json.loads((out / "build.json").read_text())) == {"sd", "sdxl", "flux", "scorer"}


def test_build_is_deterministic(quick_world, tmp_path):
    """The same seed gives the same weights, bit for bit (another seed gives others: the
    next test rebuilds one model at seed 1)."""
    build.build(tmp_path / "b", build.quick_config())
    wa, wb = _weights(quick_world[0]), _weights(tmp_path / "b")
    # sd: text encoder, unet, vae; sdxl: two text encoders, unet, vae; flux: two text
    # encoders, transformer, vae; the scorer
    assert wa.keys() == wb.keys() and len(wa) == 12
    for name in wa:
        for key in wa[name]:
            assert torch.equal(wa[name][key], wb[name][key]), (name, key)


def test_building_one_model_replaces_only_its_weights_and_record(quick_world, tmp_path):
    out = tmp_path / "world"
    shutil.copytree(quick_world[0], out)
    before = _weights(out)
    record = json.loads((out / "build.json").read_text())
    build.build(out, build.quick_config(seed=1), only="sdxl")
    after, rebuilt = _weights(out), json.loads((out / "build.json").read_text())
    assert rebuilt["sd"] == record["sd"] and rebuilt["scorer"] == record["scorer"]
    assert rebuilt["sdxl"]["config"]["seed"] == 1
    for name in before:
        assert (name.startswith("sdxl/")) != all(torch.equal(before[name][k], after[name][k])
                                                for k in before[name]), name



def test_padding_dropout_replaces_only_eos_and_padding_of_dropped_captions():
    ids = torch.tensor([[49406, 320, 11193, 49407, 49407, 49407],
                        [49406, 320, 49407, 49407, 49407, 49407]])
    cond, empty = torch.randn(2, 6, 3), torch.randn(6, 3)
    out = training._replace_padding(cond, ids, empty, 49407, torch.tensor([True, True]))
    assert torch.equal(out[0, :3], cond[0, :3]) and torch.equal(out[0, 3:], empty[3:])
    assert torch.equal(out[1, :2], cond[1, :2]) and torch.equal(out[1, 2:], empty[2:])
    out = training._replace_padding(cond, ids, empty, 49407, torch.tensor([False, True]))
    assert torch.equal(out[0], cond[0]) and torch.equal(out[1, 2:], empty[2:])


@pytest.mark.parametrize("model", ["sd", "sdxl", "flux"])
def test_dropped_captions_encoded_through_their_eos_give_the_full_encodings_conditioning(model):
    """The build encodes captions whose padding is dropped only through their last EOS: the
    conditioning and its gradients equal encoding every position and then replacing them."""
    from robust_edit.world.architectures import CLIP_LENGTH
    from robust_edit.world.tokenizer import clip_tokenizer, t5_tokenizer

    torch.manual_seed(0)
    condition = training.Conditioning(model, t5_vocab_size=len(t5_tokenizer()))
    toks = [clip_tokenizer(CLIP_LENGTH[model])] + ([t5_tokenizer()] if model == "flux" else [])
    captions = ["a big red circle on a white background, in ink style", "a lime", "", "a teacher", "a lemon"]
    ids = [t(captions, padding="max_length", max_length=t.model_max_length, truncation=True,
             return_tensors="pt").input_ids for t in toks]
    empty_ids = [x[2] for x in ids]
    drop = torch.tensor([True, False, True, True, False])
    params = [p for e in condition.encoders for p in e.parameters()]

    def grads(cond, added):
        loss = (cond * torch.linspace(-1, 1, cond.shape[-1])).square().sum()
        loss = loss + sum(v.square().sum() for k, v in (added or {}).items() if k != "time_ids")
        return torch.autograd.grad(loss, params, allow_unused=True)

    cond, added = training.condition_dropping_padding(condition, ids, empty_ids, drop)
    full, full_added = condition(ids)  # the reference: every position encoded, then replaced
    empty_states, empty_added = condition([e[None] for e in empty_ids])
    eos_id = condition.token_encoder.config.eos_token_id
    full = training._replace_padding(full, ids[condition.token_index], empty_states[0], eos_id, drop)
    for key in ("text_embeds", "pooled"):
        if full_added and key in full_added:
            full_added[key] = torch.where(drop[:, None], empty_added[key], full_added[key])
    assert cond.shape == full.shape and torch.allclose(cond, full, atol=1e-5)
    assert (added is None) == (full_added is None)
    for key in added or {}:
        assert torch.allclose(added[key], full_added[key], atol=1e-5), key
    for g, g_full in zip(grads(cond, added), grads(full, full_added)):
        assert (g is None) == (g_full is None)
        if g is not None:
            assert torch.allclose(g, g_full, atol=1e-4, rtol=1e-4)


def test_flux_pooled_state_is_the_same_without_the_padding():
    """The FLUX build encodes CLIP only through each batch's last end-of-text: the pooled
    state of a causal encoder does not read the positions after it."""
    from robust_edit.world.architectures import CLIP_LENGTH, make_text_encoder
    from robust_edit.world.tokenizer import clip_tokenizer

    torch.manual_seed(0)
    encoder, tok = make_text_encoder(CLIP_LENGTH["flux"]).eval(), clip_tokenizer(CLIP_LENGTH["flux"])
    ids = tok(["a big red circle on a white background, in ink style", "a lime", ""],
              padding="max_length", max_length=tok.model_max_length, return_tensors="pt").input_ids
    short = training.through_eos(ids, encoder.config.eos_token_id)
    assert short.shape[1] == 14  # start, 12 words and signs, end
    with torch.no_grad():
        assert torch.allclose(encoder(short).pooler_output, encoder(ids).pooler_output, atol=1e-5)


def _world_texts() -> list[str]:
    """A large sample of the world's captions and every dataset prompt."""
    from robust_edit.world import datasets, scenes

    rng = random.Random(0)
    texts = [cap for _, cap, _ in (scenes.sample_example(rng) for _ in range(30000))]
    for file, _, _ in datasets.DATASETS.values():
        with open(datasets.DATA_DIR / file, newline="") as f:
            texts += [cell for row in csv.reader(f) for cell in row if " " in cell and not cell.startswith("{")]
    return texts


def test_every_world_text_fits_the_t5_sequence_length():
    """The FLUX world's T5 length is the world's longest text, not FLUX's 256: a caption or
    dataset prompt longer than it would be cut."""
    from robust_edit.world.tokenizer import t5_tokenizer

    tok, texts = t5_tokenizer(), _world_texts()
    lengths = [len(ids) for ids in tok(texts).input_ids]
    assert max(lengths) <= tok.model_max_length, texts[int(np.argmax(lengths))]
    assert max(lengths) >= tok.model_max_length - 2  # and not much longer than needed


def test_every_world_text_fits_the_sdxl_worlds_clip_length_with_room():
    """The SDXL world reads 32 CLIP positions, not 77: every world text fits, with room for a
    user's longer prompt (a caption longer than the length would be cut)."""
    from robust_edit.world.architectures import CLIP_LENGTH
    from robust_edit.world.tokenizer import clip_tokenizer

    texts = _world_texts()
    lengths = [len(ids) for ids in clip_tokenizer()(texts).input_ids]
    assert max(lengths) <= CLIP_LENGTH["sdxl"] - 10, texts[int(np.argmax(lengths))]


@pytest.mark.parametrize("tokenizer", ["clip_tokenizer", "t5_tokenizer"])
def test_profession_tokens_appear_only_where_a_profession_is_named(tokenizer):
    """Calibration moves only these tokens' embeddings (in the CLIP and T5 encoders), so no
    other word may use them."""
    from robust_edit.world import datasets, scenes
    from robust_edit.world import tokenizer as tokenizers

    tok = getattr(tokenizers, tokenizer)()
    token_of = dict(zip(V.PROFESSIONS, calibration.profession_token_ids(tok)))
    assert len(set(token_of.values())) == len(token_of)
    rng = random.Random(0)
    texts = [cap for _, cap, _ in (scenes.sample_example(rng) for _ in range(5000))]
    for file, _, _ in datasets.DATASETS.values():
        with open(datasets.DATA_DIR / file, newline="") as f:
            texts += [cell for row in csv.reader(f) for cell in row]
    named = 0
    for text, ids in zip(texts, tok(texts).input_ids):
        words = set(re.findall(r"[A-Za-z]+", text))
        expected = {t for prof, t in token_of.items() if prof in words}
        assert set(ids) & set(token_of.values()) == expected, text
        named += bool(expected)
    assert named > 500  # professions are named in training, the professions and style sets


def _logit(p):
    return np.log(p / (1 - p))


def _known_share(offset: float) -> float:
    """The known response the calibration tests put in place of a measurement: the logit
    of the tall share is 5 x the offset."""
    return float(1 / (1 + np.exp(-5 * offset)))


def _calibrate(response, rounds: int) -> list[dict]:
    """next_offsets' rounds against a known tall-share response, measured exactly."""
    history = [{"offsets": {p: 0.0 for p in V.PROFESSIONS}}]
    for r in range(rounds + 1):
        history[-1]["rates"] = {p: response(x) for p, x in history[-1]["offsets"].items()}
        if r < rounds:
            history.append({"offsets": calibration.next_offsets(history, n_images=10**6)})
    return history


def test_next_offsets_steps_at_the_prior_slope_then_interpolates_the_bracket():
    response = lambda x: float(1 / (1 + np.exp(-(20.0 * x - 0.4))))  # logit linear in x
    history = _calibrate(response, rounds=2)
    for p, (_, design) in V.PROFESSIONS.items():
        # First step: (logit(design) - logit(rate)) / 5, at most 0.3 either way; with this
        # steep response it overshoots, so the designed rate is bracketed...
        step = np.clip((_logit(design) - _logit(response(0.0))) / 5, -0.3, 0.3)
        assert history[1]["offsets"][p] == pytest.approx(step, abs=1e-9)
        # ...and interpolating a linear logit inside the bracket is exact.
        assert history[2]["rates"][p] == pytest.approx(design, abs=1e-6), p


def test_next_offset_illinois_halves_the_end_kept_twice():
    points = [(0.0, -2.0), (1.0, 4.0), (0.5, -1.0)]
    assert calibration.next_offset(points, 0.0) == pytest.approx(0.5 + 0.5 * 1 / 5)  # regula falsi
    # Two points in a row below the target: the upper end's residual (4) is halved;
    # plain regula falsi would give 0.6 + 0.4 * 0.5 / 4.5.
    points.append((0.6, -0.5))
    assert calibration.next_offset(points, 0.0) == pytest.approx(0.6 + 0.4 * 0.5 / 2.5)
    assert calibration.next_offset([(0.0, -2.0), (0.2, -1.0)], 0.0) == pytest.approx(0.2 + 0.2)
    assert calibration.next_offset([(0.0, -3.0)], 0.0) == pytest.approx(0.3)  # capped step
    # Where the share is flat, step on from the point furthest towards the target.
    assert calibration.next_offset([(0.0, 1.0), (-0.05, 1.0)], 0.0) == pytest.approx(-0.25)


def test_next_offsets_converge_where_the_response_is_steep_on_one_side_and_flat_below():
    # Shaped like the shipped world's farmer: 0.98 tall at 0, 0.71 at -0.18, 0.58 at -0.3.
    def response(x):
        y = 3.84 + 25 * x if x > -0.1 else 1.34 + 4 * (x + 0.1)
        return float(1 / (1 + np.exp(-y)))

    history = _calibrate(response, rounds=6)
    for p, (_, design) in V.PROFESSIONS.items():
        assert min(abs(h["rates"][p] - design) for h in history if p in h["rates"]) < 0.01, p


@pytest.mark.parametrize("model", ["world:sd", "sdxl", "flux"])
def test_calibration_moves_only_profession_rows_along_tall_and_keeps_the_best_round(model, monkeypatch):
    """SD's one encoder, or each of SDXL's two (CLIP, CLIP) or FLUX's two (CLIP, T5), each
    along its own "tall" - "short" and at its own tokenizer's rows. The measurement is
    replaced by a known response to the first encoder's rows (logit of the tall share = 5 x
    the offset), so the offsets are non-trivial."""
    pipe = (load_pipeline(model, device="cpu") if model == "world:sd"
            else build.train_pipeline(build.quick_config(), model)[0])
    encoders = calibration.calibration_encoders(pipe)
    rows = {m: calibration.profession_token_ids(getattr(pipe, calibration.TOKENIZER_OF[m])) for m in encoders}
    start = pipe.text_encoder.get_input_embeddings().weight[rows["text_encoder"]].clone()
    unit = calibration.tall_direction(pipe)

    asked = []

    def measured(pipe, scorer, prompts, seeds, professions, settings):
        asked.append(set(professions))
        moved = pipe.text_encoder.get_input_embeddings().weight[rows["text_encoder"]] - start
        return {p: _known_share(x) for p, x in zip(V.PROFESSIONS, (moved @ unit / (unit @ unit)).tolist())
                if p in professions}

    monkeypatch.setattr(calibration, "profession_tall_rates", measured)
    denoiser = "transformer" if model == "flux" else "unet"
    modules = (*encoders, denoiser)
    assert len(encoders) == (1 if model == "world:sd" else 2)
    before = {f"{m}.{k}": v.clone() for m in modules for k, v in getattr(pipe, m).state_dict().items()}
    directions = {m: calibration.tall_direction(pipe, m) for m in encoders}
    result = calibration.calibrate_professions(pipe, WorldScorer(None),
                                               build.quick_config(calibration_rounds=2))
    assert result["images_per_profession"] == 5
    # Each round measures the professions not yet settled (within one standard error of
    # design at 5 images, at least half an image), and the rounds stop when all are.
    settled = {p: calibration.settled(r, V.PROFESSIONS[p][1], 5) for h in result["rounds"] for p, r in h["rates"].items()}
    assert asked == [set(h["rates"]) for h in result["rounds"]] and asked[0] == set(V.PROFESSIONS)
    for before_round, now in zip(result["rounds"], result["rounds"][1:]):
        assert set(now["rates"]) == {p for p, r in before_round["rates"].items()
                                     if not calibration.settled(r, V.PROFESSIONS[p][1], 5)}
    assert len(result["rounds"]) == 3 or all(settled.values())
    # At offset 0 the share is 0.5: exactly the professions not settled there moved.
    assert {p: o != 0 for p, o in result["offsets"].items()} == {
        p: not calibration.settled(0.5, design, 5) for p, (_, design) in V.PROFESSIONS.items()}
    after = {f"{m}.{k}": v for m in modules for k, v in getattr(pipe, m).state_dict().items()}
    # Each encoder's input-embedding table (T5 ties it under two names).
    tables = {f"{m}.{k}": m for m in encoders for k, v in getattr(pipe, m).state_dict().items()
              if v.data_ptr() == getattr(pipe, m).get_input_embeddings().weight.data_ptr()}
    assert set(tables.values()) == set(encoders)
    for key in before:
        if key not in tables:
            assert torch.equal(before[key], after[key]), key
    for table, m in tables.items():
        unchanged = torch.ones(len(after[table]), dtype=torch.bool)
        unchanged[rows[m]] = False
        assert torch.equal(before[table][unchanged], after[table][unchanged])
        for i, (prof, (_, design)) in enumerate(V.PROFESSIONS.items()):
            measured_in = [h for h in result["rounds"] if prof in h["rates"]]
            kept = min(measured_in, key=lambda h: abs(h["rates"][prof] - design))["offsets"][prof]
            assert result["offsets"][prof] == kept
            # The row moved by exactly that offset along "tall" - "short" (fp16, as shipped).
            expected = (before[table][rows[m][i]] + kept * directions[m]).half().float()
            assert torch.equal(after[table][rows[m][i]], expected), (m, prof)


def test_recalibration_starts_from_the_trained_rows_and_the_previous_offsets(tmp_path, monkeypatch):
    """`--only calibrate` on a calibrated world recalibrates every built model: each
    profession row goes back to its trained value (stored row - recorded offset x direction),
    the first round measures the previous offsets, and the new best offset is applied to
    the trained row. A known response stands in for the measurement: the logit of the tall
    share is 5 x the offset from the rows as trained (captured at a model's first measurement)."""
    trained = {}

    def encoders(pipe):
        return {e: (calibration.profession_token_ids(getattr(pipe, calibration.TOKENIZER_OF[e])),
                    calibration.tall_direction(pipe, e)) for e in calibration.calibration_encoders(pipe)}

    def offsets(pipe):
        table = pipe.text_encoder.get_input_embeddings().weight.detach()
        rows, direction = encoders(pipe)["text_encoder"]
        return ((table[rows] - trained[type(pipe).__name__]["text_encoder"]) @ direction
                / (direction @ direction)).tolist()

    def measured(pipe, scorer, prompts, seeds, professions, settings):
        trained.setdefault(type(pipe).__name__, {e: getattr(pipe, e).get_input_embeddings().weight[rows].detach().clone()
                                                 for e, (rows, _) in encoders(pipe).items()})
        return {p: _known_share(x) for p, x in zip(V.PROFESSIONS, offsets(pipe)) if p in professions}

    monkeypatch.setattr(calibration, "profession_tall_rates", measured)
    out = tmp_path / "world"
    build.build(out, build.quick_config())
    before = json.loads((out / "build.json").read_text())
    models = ("sd", "sdxl", "flux")
    assert all(any(before[m]["calibration"]["offsets"].values()) for m in models)
    stored = {m: load_pipeline(str(out / m), device="cpu") for m in models}
    unet = _weights(out / "sd" / "unet")
    build.build(out, build.quick_config(calibration_rounds=3), only="calibrate")
    after = json.loads((out / "build.json").read_text())
    for model in models:
        record = after[model]["calibration"]
        assert record["rounds"][0]["offsets"] == before[model]["calibration"]["offsets"]
        # Every round ran, or the rounds stopped because every profession was settled.
        assert len(record["rounds"]) == 4 or not calibration.next_offsets(record["rounds"], 5)
        assert after[model]["config"]["calibration_rounds"] == 3
        parts = after[model]["minutes"]  # the recalibration's minutes replace the first's
        assert parts["calibration"] != before[model]["minutes"]["calibration"]
        assert parts["total"] == pytest.approx(sum(v for k, v in parts.items() if k != "total"))
        assert record["design"] == {p: d for p, (_, d) in V.PROFESSIONS.items()}
        new = load_pipeline(str(out / model), device="cpu")
        for encoder, (rows, direction) in encoders(new).items():
            old_table = getattr(stored[model], encoder).get_input_embeddings().weight
            table = getattr(new, encoder).get_input_embeddings().weight
            amount = torch.tensor(list(record["offsets"].values()))[:, None]
            expected = (trained[type(new).__name__][encoder] + amount * direction).half().float()
            assert torch.allclose(table[rows], expected, atol=2e-3), (model, encoder)
            others = torch.ones(len(table), dtype=torch.bool)
            others[rows] = False
            assert torch.equal(table[others], old_table[others])
        assert all(calibration.settled(_known_share(x), d, 5)
                   for x, (_, d) in zip(offsets(new), V.PROFESSIONS.values()))
    unet_after = _weights(out / "sd" / "unet")
    assert all(torch.equal(w, unet_after[f][k]) for f in unet for k, w in unet[f].items())  # not rewritten
