"""UCE and ReFACT through every architecture family, on tiny random-weight pipelines."""

import pytest
import torch

from robust_edit.edit import refact, text_keys, uce
from robust_edit.models import FAMILIES
from tests.tiny_pipelines import tiny_flux, tiny_sdxl

PIPES = {"sdxl": tiny_sdxl, "flux": tiny_flux}


@pytest.mark.parametrize("family_name", ["sdxl", "flux"])
def test_uce_erase_maps_concept_to_guide_in_every_layer(family_name):
    pipe, family = PIPES[family_name](), FAMILIES[family_name]
    denoiser = getattr(pipe, family.denoiser)
    layers = uce.edited_layers(denoiser, family)
    expected = 2 * sum(n.endswith("attn2") for n, _ in denoiser.named_modules()) if family_name == "sdxl" else 2
    assert len(layers) == expected
    if family_name == "flux":
        assert {l.reads for l in layers} == {"tokens", "pooled"}
    modules = dict(denoiser.named_modules())
    before = {l.name: modules[l.name].weight.detach().clone().double() for l in layers}
    enc = {p: text_keys.encode(pipe, family, [p]) for p in ("a red cat", "a dog", "")}
    new = uce.erase(pipe, family, ["a red cat"], guide="a dog", preserve=[""], lam=1e-8,
                    key_policy="last")
    assert set(new) == {l.name for l in layers}
    for l in layers:
        W0, W1 = before[l.name], modules[l.name].weight.detach().double()
        k = {p: text_keys.keys(e, 0, l.reads, "last").double() for p, e in enc.items()}
        target = k["a dog"] @ W0.T
        assert ((k["a red cat"] @ W1.T - target).norm() / target.norm()) < 1e-4
        assert ((k[""] @ W1.T - k[""] @ W0.T).norm() / (k[""] @ W0.T).norm()) < 1e-4
        assert (W1 - W0).abs().max() > 0
    kwargs = dict(height=16, width=16, max_sequence_length=32) if family_name == "flux" else dict(height=32, width=32)
    img = pipe("a red cat", num_inference_steps=1, output_type="np", **kwargs).images
    assert img.shape[-1] == 3 and torch.isfinite(torch.as_tensor(img)).all()


@pytest.mark.parametrize("objective", ["pooled", "tokens"])
def test_refact_edits_both_sdxl_text_encoders_rank_one(objective):
    pipe, family = tiny_sdxl(), FAMILIES["sdxl"]
    words = "a the photo of cat dog red blue king queen on white background small big tree".split()
    g = torch.Generator().manual_seed(0)
    corpus = [" ".join(words[i] for i in torch.randint(0, len(words), (6,), generator=g))
              for _ in range(400)]  # enough distinct tokens for a full-rank covariance
    cfg = refact.RefactConfig(encoders=("text_encoder", "text_encoder_2"), layer=1, max_steps=60,
                              objective=objective)
    fc2s = {e: refact.mlp(getattr(pipe, e), family, 1)[1] for e in cfg.encoders}
    before = {e: m.weight.detach().clone() for e, m in fc2s.items()}
    covs = {}

    def cov(name, te, tok, fc2):
        covs[name] = refact.covariance(te, tok, fc2, corpus)
        return covs[name]

    tensors, log = refact.edit(pipe, family, [("a cat", "a cat", "a dog")], cfg, cov, progress=False)
    assert set(tensors) == {"text_encoder.encoder.layers.1.mlp.fc2.weight",
                            "text_encoder_2.text_model.encoder.layers.1.mlp.fc2.weight"}
    assert [s.encoder for s in log] == list(cfg.encoders)
    for e, fc2 in fc2s.items():
        dW = (fc2.weight.detach() - before[e]).double()
        assert torch.linalg.matrix_rank(dW, rtol=1e-5).item() == 1
        assert covs[e].shape == (fc2.in_features, fc2.in_features)
    # v* optimisation moved the subject's embedding towards the new text in each encoder
    # (W' k0 = v* itself is tested on exact layers in test_refact.py).
    assert all(s.p_new > s.p_new_start + 0.2 for s in log), log


@pytest.mark.parametrize("family_name", ["sd", "sdxl"])
def test_refact_token_objective_reads_the_states_the_denoiser_reads(family_name):
    """The "tokens" objective compares the states the UNet is given: SDXL's pipeline hands it
    each encoder's penultimate states, not the last layer's (which nothing reads)."""
    pipe, family = tiny_sdxl(), FAMILIES[family_name]
    cfg = refact.RefactConfig(objective="tokens", token_states=family.token_states)
    ids = pipe.tokenizer(["a red cat"], padding="max_length", max_length=pipe.tokenizer.model_max_length,
                         return_tensors="pt").input_ids
    with torch.no_grad():
        emb = refact._embedding(pipe.text_encoder, ids, cfg, torch.tensor([0]), pipe.tokenizer.eos_token_id)
        if family_name == "sdxl":
            states = pipe.encode_prompt("a red cat", do_classifier_free_guidance=False)[0]
            states = states[..., :pipe.text_encoder.config.hidden_size]
        else:  # what StableDiffusionPipeline.encode_prompt returns: the last layer's states
            states = pipe.text_encoder(ids)[0]
    n = emb.shape[1] // states.shape[-1]  # from the first token through end-of-text
    assert torch.allclose(emb.view(n, -1), states[0, :n], atol=1e-5)


def test_refact_covariance_cache_is_keyed_by_layer(tmp_path):
    pipe, family = tiny_sdxl(), FAMILIES["sdxl"]
    te, tok = pipe.text_encoder, pipe.tokenizer
    corpus = ["a red cat", "a blue dog on a white background", "the king"]
    for layer in (0, 1):  # same width, one cache folder: each layer gets its own statistics
        fc2 = refact.mlp(te, family, layer)[1]
        C, _ = refact.cached_covariance(te, tok, fc2, corpus, "test", tmp_path)
        assert torch.allclose(C, refact.covariance(te, tok, fc2, corpus))
    assert len(list(tmp_path.glob("refact-cov-*.safetensors"))) == 2


def test_refact_token_objective_reads_subject_to_eos_aligned():
    pipe = tiny_sdxl()
    te, tok = pipe.text_encoder, pipe.tokenizer
    prompts = ["{}", "a photo of {}", "{} on a white background"]
    texts = [p.format("a cat") for p in prompts]
    ids = refact._ids(tok, texts)
    starts = torch.tensor(refact._subject_positions(tok, prompts, "a cat"))
    with torch.no_grad():
        emb = refact._embedding(te, ids, refact.RefactConfig(objective="tokens"), starts, tok.eos_token_id)
        states = te(ids).last_hidden_state
    d = states.shape[-1]
    tails = [len(tok(t).input_ids) - s for t, s in zip(texts, starts.tolist())]  # subject..EOS
    assert emb.shape == (3, max(tails) * d)
    for b, n in enumerate(tails):
        row = emb[b].view(-1, d)
        assert torch.equal(row[:n], states[b, starts[b]:starts[b] + n])
        assert not row[n:].any()  # nothing past EOS


def test_refact_sequence_aims_every_edit_at_the_clean_encoders_targets(monkeypatch):
    """The second edit's NEW text is the first edit's subject: its target must be what the
    unedited encoder makes of it, not what the first edit turned it into."""
    pipe, family = tiny_sdxl(), FAMILIES["sdxl"]
    cfg = refact.RefactConfig(encoders=("text_encoder",), layer=1, max_steps=20, objective="tokens")
    g = torch.Generator().manual_seed(0)
    d = refact.mlp(pipe.text_encoder, family, 1)[1].in_features
    keys = torch.randn(4 * d, d, generator=g, dtype=torch.float64)
    seen = []
    real = refact._target_value

    def recording(te, tok, fc2, subject, e_new, e_old, *rest):
        seen.append((subject, e_new, e_old))
        return real(te, tok, fc2, subject, e_new, e_old, *rest)

    monkeypatch.setattr(refact, "_target_value", recording)
    edits = [("a cat", "a cat", "a dog"), ("a king", "a king", "a cat")]
    refact.edit(pipe, family, edits, cfg, lambda *_: keys.T @ keys / len(keys), progress=False)
    clean_new, clean_old = refact.targets(tiny_sdxl().text_encoder, pipe.tokenizer,
                                          "a king", "a cat", cfg)
    edited_new, _ = refact.targets(pipe.text_encoder, pipe.tokenizer, "a king", "a cat", cfg)
    assert [s for s, _, _ in seen] == ["a cat", "a king"]
    _, e_new, e_old = seen[1]
    assert torch.allclose(e_new, clean_new, atol=1e-6) and torch.allclose(e_old, clean_old, atol=1e-6)
    assert (edited_new - clean_new).norm() > 1e-3 * clean_new.norm()  # the first edit did move it
