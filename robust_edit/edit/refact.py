"""ReFACT: a rank-one edit of one text-encoder MLP output projection (fc2).

For an edit "old -> new" of a subject prompt:
1. key k0: the fc2 input at the subject's last token, averaged over TEMPLATES;
2. target v*: W k0 + delta, where delta (added to the fc2 output at the subject token of
   the bare prompt and the templates) is optimised so the edited encoder's embedding lies
   nearer a clean copy's embedding of the NEW text than of the OLD one. The embedding is
   the pooled one (the paper's, for contrastively trained CLIP encoders) or, with
   objective "tokens", the token states from the subject's last token to the end, of the
   layer the denoiser reads (the last; SDXL's penultimate): for encoders trained only
   through a denoiser, such as the world's, whose pooled output carries no training signal;
3. insertion: u = C^-1 k0, dW = (v* - W k0) u^T / (u^T k0), so W' k0 = v* exactly while
   keys orthogonal to u (in the covariance's metric) are untouched.
C = E[k k^T] over a text corpus's tokens, computed once per (model, encoder, layer, corpus)
and cached on disk under a content key.
"""

from __future__ import annotations

import copy
import hashlib
import json
import math
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Literal

import torch
from tqdm.auto import tqdm

from robust_edit.atomic import write_atomic
from robust_edit.models import Family

TEMPLATES = (
    "{} in a realistic style portrait image", "{}, a portrait", "realistic painting of {}",
    "a current image of {}", "{}, news image", "a beautiful photograph of {}",
    "realistic drawing of {}", "{}, realistic portrait", "{} in a photo",
)


@dataclass(frozen=True)
class RefactConfig:
    encoders: tuple[str, ...] = ("text_encoder",)  # pipeline attributes; SDXL may list two
    layer: int = 7
    lr: float = 0.05
    max_steps: int = 100
    stop_probability: float = 0.99
    norm_weight: float = 0.1
    max_norm_ratio: float = 4.0
    objective: Literal["pooled", "tokens"] = "pooled"
    token_states: Literal["last", "penultimate"] = "last"  # the family's (Family.token_states)
    templates: tuple[str, ...] = TEMPLATES


def mlp(text_encoder, family: Family, layer: int) -> tuple[str, torch.nn.Linear]:
    """(module name, module) of the edited MLP projection in a text encoder. Matched as a
    suffix: CLIPTextModelWithProjection nests the same modules under `text_model.`."""
    suffix = family.text_encoder_mlp.format(layer=layer)
    for name, module in text_encoder.named_modules():
        if name == suffix or name.endswith("." + suffix):
            return name, module
    n = text_encoder.config.num_hidden_layers
    raise ValueError(f"refact layer {layer}: the text encoder has no module {suffix!r} "
                     f"(it has {n} layers: choose 0..{n - 1})")


def _ids(tokenizer, texts: Sequence[str]) -> torch.Tensor:
    return tokenizer(list(texts), padding="max_length", max_length=tokenizer.model_max_length,
                     truncation=True, return_tensors="pt").input_ids


def _embedding(text_encoder, ids: torch.Tensor, cfg: RefactConfig, starts: torch.Tensor,
               eos_token_id: int) -> torch.Tensor:
    """(B, D): the pooled embedding, or the token states (cfg.token_states) from starts[b]
    through the first EOS, flattened and zero beyond EOS (prompts that share a template
    suffix align token by token)."""
    penultimate = cfg.token_states == "penultimate"
    out = text_encoder(ids.to(text_encoder.device), output_hidden_states=penultimate)
    if cfg.objective == "tokens":
        last = (ids == eos_token_id).int().argmax(dim=1) - starts
        offsets = torch.arange(int(last.max()) + 1)[None, :]
        span = (starts[:, None] + offsets).clamp(max=ids.shape[1] - 1)
        mask = (offsets <= last[:, None])[..., None].to(text_encoder.device)
        states = (out.hidden_states[-2] if penultimate else out.last_hidden_state)[
            torch.arange(len(ids))[:, None], span.to(ids.device)]
        return (states * mask).flatten(1).float()
    emb = getattr(out, "text_embeds", None)  # CLIPTextModelWithProjection (SDXL's second)
    return (emb if emb is not None else out.pooler_output).float()


def _fc2_inputs(text_encoder, fc2: torch.nn.Linear, ids: torch.Tensor) -> torch.Tensor:
    """fc2's input (B, T, d_in) for a batch of token ids."""
    seen = []
    handle = fc2.register_forward_pre_hook(lambda _m, args: seen.append(args[0].detach()))
    try:
        text_encoder(ids.to(text_encoder.device))
    finally:
        handle.remove()
    return seen[0].float().cpu()


def _subject_positions(tokenizer, templates: Sequence[str], subject: str) -> list[int]:
    """Index of the subject's last token in each template.format(subject)."""
    out = []
    for t in templates:
        prefix = t[:t.index("{}")] + subject
        ids = tokenizer(prefix, truncation=True, max_length=tokenizer.model_max_length).input_ids
        out.append(len(ids) - 2)  # drop EOS; BOS counts as position 0
    return out


def weights_hash(module: torch.nn.Module) -> str:
    h = hashlib.sha256()
    for name, t in sorted(module.state_dict().items()):
        h.update(name.encode())
        h.update(t.detach().cpu().contiguous().view(torch.uint8).numpy().tobytes())
    return h.hexdigest()[:16]


@torch.no_grad()
def covariance(text_encoder, tokenizer, fc2: torch.nn.Linear, corpus: Sequence[str],
               batch_size: int = 256) -> torch.Tensor:
    """Uncentred E[k k^T] of fc2 inputs over every non-padding token (up to EOS) of corpus."""
    d = fc2.in_features
    acc, count = torch.zeros(d, d, dtype=torch.float64), 0
    for i in tqdm(range(0, len(corpus), batch_size), desc="ReFACT covariance", mininterval=2):
        ids = _ids(tokenizer, corpus[i:i + batch_size])
        k = _fc2_inputs(text_encoder, fc2, ids).double()
        eos = (ids == tokenizer.eos_token_id).int().argmax(dim=1)
        keep = torch.arange(ids.shape[1])[None, :] <= eos[:, None]
        rows = k[keep]
        acc += rows.T @ rows
        count += len(rows)
    return acc / count


def cached_covariance(text_encoder, tokenizer, fc2, corpus: Sequence[str], corpus_id: str,
                      cache_dir: Path) -> tuple[torch.Tensor, str]:
    """The covariance, from `cache_dir` when computed before for the same content key
    (encoder weights, the MLP's module name, corpus)."""
    from safetensors.torch import load_file, save_file

    corpus_hash = hashlib.sha256("\n".join(corpus).encode()).hexdigest()[:16]
    module = next(name for name, m in text_encoder.named_modules() if m is fc2)
    key = hashlib.sha256(json.dumps([weights_hash(text_encoder), module, corpus_id,
                                     corpus_hash]).encode()).hexdigest()[:24]
    path = Path(cache_dir) / f"refact-cov-{key}.safetensors"
    if path.exists():
        return load_file(str(path))["C"], key
    C = covariance(text_encoder, tokenizer, fc2, corpus)
    write_atomic(path, lambda tmp: save_file({"C": C}, str(tmp), metadata={
        "corpus_id": corpus_id, "n_texts": str(len(corpus))}))
    return C, key


def rank_one_update(W: torch.Tensor, C: torch.Tensor, k0: torch.Tensor,
                    v_star: torch.Tensor) -> torch.Tensor:
    """dW = (v* - W k0) u^T / (u^T k0), u = C^-1 k0 (float64)."""
    W, C, k0, v_star = W.double(), C.double(), k0.double(), v_star.double()
    u = torch.linalg.solve(C, k0)
    return torch.outer(v_star - W @ k0, u) / (u @ k0)


@dataclass(frozen=True)
class RefactStep:
    encoder: str
    subject: str
    steps: int
    p_new_start: float  # mean p(new) before optimisation
    p_new: float  # ... at the end (stop when > stop_probability)
    delta_norm_ratio: float

    def to_dict(self) -> dict:
        return asdict(self)


def _prompts(cfg: RefactConfig) -> list[str]:
    return ["{}"] + list(cfg.templates)


def _inputs(tokenizer, text: str, cfg: RefactConfig) -> tuple[torch.Tensor, torch.Tensor]:
    """(token ids, index of the text's last token) of `text` in the bare prompt and every
    template."""
    prompts = _prompts(cfg)
    return (_ids(tokenizer, [t.format(text) for t in prompts]),
            torch.tensor(_subject_positions(tokenizer, prompts, text)))


def _embed(text_encoder, tokenizer, text: str, cfg: RefactConfig) -> torch.Tensor:
    """The edit objective's embedding of `text` in the bare prompt and every template."""
    ids, starts = _inputs(tokenizer, text, cfg)
    return _embedding(text_encoder, ids, cfg, starts, tokenizer.eos_token_id)


@torch.no_grad()
def targets(clean_encoder, tokenizer, old: str, new: str, cfg: RefactConfig
            ) -> tuple[torch.Tensor, torch.Tensor]:
    """(embedding of NEW, embedding of OLD) by the unedited encoder: every edit of a
    sequence aims at the clean model's meaning of its texts, as the reference does by
    reloading the model, not at what earlier edits made of them."""
    return (_embed(clean_encoder, tokenizer, new, cfg),
            _embed(clean_encoder, tokenizer, old, cfg))


def _target_value(text_encoder, tokenizer, fc2, subject: str, e_new: torch.Tensor,
                  e_old: torch.Tensor, k0: torch.Tensor, cfg: RefactConfig, progress: bool
                  ) -> tuple[torch.Tensor, int, float, float, float]:
    ids, pos = _inputs(tokenizer, subject, cfg)  # tokenised once, embedded every step
    with torch.no_grad():
        W, b = fc2.weight.detach().float().cpu(), fc2.bias
        v_init = W @ k0.float() + (b.detach().float().cpu() if b is not None else 0)
    delta = torch.zeros(fc2.out_features, requires_grad=True)
    opt = torch.optim.Adam([delta], lr=cfg.lr)
    rows = torch.arange(len(ids))

    def add_delta(_m, _args, out):
        out = out.clone()
        out[rows, pos] = out[rows, pos] + delta.to(out.dtype).to(out.device)
        return out

    max_norm = cfg.max_norm_ratio * v_init.norm()
    p_new, p_start, step = 0.0, None, 0
    bar = tqdm(range(cfg.max_steps), desc=f"ReFACT v* {subject!r}", disable=not progress,
               mininterval=1)
    for step in bar:
        handle = fc2.register_forward_hook(add_delta)
        try:
            e = _embedding(text_encoder, ids, cfg, pos, tokenizer.eos_token_id)
        finally:
            handle.remove()
        logits = torch.stack([-(e - e_new.to(e.device)).norm(dim=-1),
                              -(e - e_old.to(e.device)).norm(dim=-1)], dim=-1)
        logp = logits.log_softmax(-1)[:, 0]
        p_new = logp.detach().exp().mean().item()
        p_start = p_new if p_start is None else p_start
        bar.set_postfix(p_new=f"{p_new:.3f}", refresh=False)
        if p_new > cfg.stop_probability:
            break
        loss = -logp.mean() + cfg.norm_weight * delta.norm() / v_init.norm() ** 2
        opt.zero_grad()
        loss.backward()
        opt.step()
        with torch.no_grad():
            if delta.norm() > max_norm:
                delta.mul_(max_norm / delta.norm())
    v_star = W @ k0.float() + delta.detach()
    return v_star, step + 1, p_start, p_new, float(delta.detach().norm() / v_init.norm())


def key(text_encoder, tokenizer, fc2, subject: str, templates: Sequence[str]) -> torch.Tensor:
    prompts = [t.format(subject) for t in templates]
    with torch.no_grad():
        k = _fc2_inputs(text_encoder, fc2, _ids(tokenizer, prompts))
    pos = _subject_positions(tokenizer, templates, subject)
    return k[torch.arange(len(prompts)), pos].mean(0)


def edit(pipe, family: Family, edits: Sequence[tuple[str, str, str]], cfg: RefactConfig,
         covariance_for: Callable[[str, object, object, torch.nn.Linear], torch.Tensor],
         progress: bool = True) -> tuple[dict[str, torch.Tensor], list[RefactStep]]:
    """Apply (subject, old, new) edits one after another, in place, to every configured
    encoder. `covariance_for(encoder_name, text_encoder, tokenizer, fc2)` gives C.
    Returns ({"<encoder>.<fc2 name>": new weight}, a log entry per edit and encoder)."""
    out, log = {}, []
    for enc_name in cfg.encoders:
        text_encoder = getattr(pipe, enc_name)
        tokenizer = pipe.tokenizer if enc_name == "text_encoder" else getattr(
            pipe, enc_name.replace("text_encoder", "tokenizer"))
        fc2_name, fc2 = mlp(text_encoder, family, cfg.layer)
        C = covariance_for(enc_name, text_encoder, tokenizer, fc2)
        # Only delta is optimised; keep the encoder's own parameters out of autograd.
        frozen = {n: p.requires_grad for n, p in text_encoder.named_parameters()}
        text_encoder.requires_grad_(False)
        clean = copy.deepcopy(text_encoder)
        for subject, old, new in edits:
            subject = subject.lower()
            k0 = key(text_encoder, tokenizer, fc2, subject, cfg.templates)
            e_new, e_old = targets(clean, tokenizer, old, new, cfg)
            v_star, steps, p_start, p_new, ratio = _target_value(
                text_encoder, tokenizer, fc2, subject, e_new, e_old, k0, cfg, progress)
            dW = rank_one_update(fc2.weight.detach().cpu(), C, k0, v_star)
            with torch.no_grad():
                fc2.weight.add_(dW.to(fc2.weight.dtype).to(fc2.weight.device))
            log.append(RefactStep(enc_name, subject, steps, p_start, p_new, ratio))
            if not math.isfinite(p_new):
                raise FloatingPointError(f"ReFACT edit {subject!r}: optimisation diverged")
        del clean
        for n, p in text_encoder.named_parameters():
            p.requires_grad_(frozen[n])
        out[f"{enc_name}.{fc2_name}.weight"] = fc2.weight.detach().cpu().clone()
    return out, log


def run(pipe, family: Family, cfg, cache_dir: Path, progress: bool = True
        ) -> tuple[dict[str, torch.Tensor], dict]:
    """Run a resolved ReFACT edit config (robust_edit.resolve.edit) on `pipe`, in place."""
    from robust_edit.edit import tasks

    p = cfg.refact
    edits = tasks.refact_edits(cfg)
    corpus_id, texts = p.corpus, tasks.corpus_texts(p.corpus, p.corpus_size)
    keys = {}

    def covariance_for(enc_name, text_encoder, tokenizer, fc2):
        C, keys[enc_name] = cached_covariance(text_encoder, tokenizer, fc2, texts, corpus_id,
                                              cache_dir)
        return C

    optimisation = {"objective": p.objective, "lr": p.lr, "max_norm_ratio": p.max_norm_ratio}
    rcfg = RefactConfig(encoders=tuple(p.encoders), layer=p.layer, max_steps=p.max_steps,
                        token_states=family.token_states, **optimisation)
    tensors, log = edit(pipe, family, edits, rcfg, covariance_for, progress=progress)
    details = {"edits": [list(e) for e in edits], "layer": p.layer, "encoders": list(p.encoders),
               "optimisation_settings": optimisation,
               "corpus": {"dataset": corpus_id, "texts": len(texts), "covariance_keys": keys},
               "optimisation": [s.to_dict() for s in log],
               "protocol": protocol(rcfg, corpus_id, len(texts))}
    return tensors, details


# What `targets` embeds the NEW and OLD texts with: an unedited copy of the encoder, for
# every edit of a sequence (`edit`), as the reference reloads the model per edit.
TARGET_ENCODER = "clean"


def protocol(cfg: RefactConfig, corpus_id: str, corpus_size: int) -> dict:
    """The resolved ReFACT protocol settings of docs/protocol.md, under the table's names.
    `templates`: the key is the fc2 input at the subject's last token averaged over them."""
    return {"layer": cfg.layer, "encoders": list(cfg.encoders),
            "corpus": {"dataset": corpus_id, "size": corpus_size},
            "templates": list(cfg.templates), "objective": cfg.objective,
            "token_states": cfg.token_states, "lr": cfg.lr,
            "max_norm_ratio": cfg.max_norm_ratio, "target_encoder": TARGET_ENCODER}
