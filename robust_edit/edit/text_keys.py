"""What the denoiser reads from a prompt, as keys for closed-form edits.

A prompt is encoded with the pipeline's own `encode_prompt`, so the keys are exactly what
the edited layers see at generation time: the token embeddings (SD/SDXL cross-attention,
FLUX `context_embedder`) and, for FLUX, the pooled CLIP embedding.

Key-token policies (METHODS.md):
- `last`: one key per prompt, the last real token (just before EOS);
- `span`: every token from the last real token to the end of the sequence. CLIP's text
  attention is causal, so EOS and padding carry the concept too; editing only the last
  token leaves them, and pairs of prompts are aligned token by token from there.

Preserve-prompt positions (`preserve_keys`):
- `all`: every position of the sequence (BOS, the prompt's words, EOS, padding), as the
  paper-era reference preserves each retain prompt's whole embedding;
- `from_last`: the key policy's positions, from the last real token (`last`: that token,
  as the current reference; `span`: through the end of the sequence).
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

from robust_edit.models import Family, flux_sequence_length

KEY_POLICIES = ("last", "span")
PRESERVE_POSITIONS = ("all", "from_last")
# The preserve positions of the reference that uses each key policy: the paper-era code
# (span keys) preserves every position of each retain prompt, the current code (last-token
# keys) the last token.
REFERENCE_PRESERVE_POSITIONS = {"span": "all", "last": "from_last"}


@dataclass(frozen=True)
class PromptEncoding:
    tokens: torch.Tensor  # (B, T, D): what token-reading layers see
    pooled: torch.Tensor | None  # (B, D'): what pooled-reading layers see (FLUX)
    last: tuple[int, ...]  # per prompt, index of its last real token in `tokens`

    @property
    def size(self) -> int:
        return self.tokens.shape[0]


def _last_real_token(tokenizer, prompts: list[str], max_length: int) -> tuple[int, ...]:
    ids = tokenizer(prompts, padding="max_length", max_length=max_length, truncation=True,
                    return_tensors="pt").input_ids
    out = []
    for row in ids.tolist():
        eos = row.index(tokenizer.eos_token_id) if tokenizer.eos_token_id in row else len(row)
        out.append(max(eos - 1, 0))
    return tuple(out)


@torch.no_grad()
def encode(pipe, family: Family, prompts: list[str]) -> PromptEncoding:
    device = pipe.device
    if family.name == "sd":
        tokens, _ = pipe.encode_prompt(prompts, device, 1, False)
        pooled, tokenizer, length = None, pipe.tokenizer, pipe.tokenizer.model_max_length
    elif family.name == "sdxl":
        tokens, _, _, _ = pipe.encode_prompt(prompts, device=device, num_images_per_prompt=1,
                                             do_classifier_free_guidance=False)
        pooled, tokenizer, length = None, pipe.tokenizer, pipe.tokenizer.model_max_length
    elif family.name == "flux":
        tokenizer, length = pipe.tokenizer_2, flux_sequence_length(pipe)
        tokens, pooled, _ = pipe.encode_prompt(prompts, prompt_2=None, device=device,
                                               max_sequence_length=length)
    else:
        raise ValueError(f"family {family.name!r}: no prompt encoding for UCE keys")
    return PromptEncoding(tokens.float().cpu(), None if pooled is None else pooled.float().cpu(),
                          _last_real_token(tokenizer, prompts, length))


def positions(enc: PromptEncoding, row: int, policy: str) -> list[int]:
    if policy == "last":
        return [enc.last[row]]
    if policy == "span":
        return list(range(enc.last[row], enc.tokens.shape[1]))
    raise ValueError(f"key_policy {policy!r}: allowed {KEY_POLICIES}")


def keys(enc: PromptEncoding, row: int, reads: str, policy: str) -> torch.Tensor:
    """The keys (n, d) prompt `row` contributes to a layer that reads `reads`."""
    if reads == "pooled":
        return enc.pooled[row:row + 1]
    return enc.tokens[row, positions(enc, row, policy)]


def preserve_keys(enc: PromptEncoding, row: int, reads: str, policy: str,
                  preserve_positions: str) -> torch.Tensor:
    """The keys (n, d) preserve prompt `row` contributes to a layer that reads `reads`."""
    if preserve_positions == "from_last":
        return keys(enc, row, reads, policy)
    if preserve_positions != "all":
        raise ValueError(f"preserve_positions {preserve_positions!r}: allowed {PRESERVE_POSITIONS}")
    if reads == "pooled":
        return enc.pooled[row:row + 1]
    return enc.tokens[row]


def aligned(a: PromptEncoding, row_a: int, b: PromptEncoding, row_b: int, reads: str,
            policy: str) -> tuple[torch.Tensor, torch.Tensor]:
    """Keys of two prompts paired position by position from their last real tokens."""
    ka, kb = keys(a, row_a, reads, policy), keys(b, row_b, reads, policy)
    n = min(len(ka), len(kb))
    return ka[:n], kb[:n]
