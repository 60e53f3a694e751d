"""The real CLIP BPE tokenizer, built offline from the vocabulary file open_clip ships.

Gives the same token ids as `openai/clip-vit-large-patch14`'s tokenizer without the hub.
"""

from __future__ import annotations

import gzip
from pathlib import Path

from transformers import CLIPTokenizer


def _bytes_to_unicode() -> list[str]:
    # CLIP's byte-level alphabet: printable bytes map to themselves, the rest to 256+.
    bs = list(range(ord("!"), ord("~") + 1)) + list(range(ord("¡"), ord("¬") + 1)) + list(
        range(ord("®"), ord("ÿ") + 1))
    cs = bs[:]
    n = 0
    for b in range(256):
        if b not in bs:
            bs.append(b)
            cs.append(256 + n)
            n += 1
    return [chr(c) for c in cs]


def clip_tokenizer(model_max_length: int = 77) -> CLIPTokenizer:
    import open_clip

    vocab_file = Path(open_clip.__file__).parent / "bpe_simple_vocab_16e6.txt.gz"
    lines = gzip.open(vocab_file).read().decode("utf-8").split("\n")
    merges = [tuple(m.split()) for m in lines[1:49152 - 256 - 2 + 1]]
    alphabet = _bytes_to_unicode()
    tokens = alphabet + [t + "</w>" for t in alphabet] + ["".join(m) for m in merges]
    tokens += ["<|startoftext|>", "<|endoftext|>"]
    return CLIPTokenizer(vocab={t: i for i, t in enumerate(tokens)}, merges=merges,
                         model_max_length=model_max_length)


def world_words() -> list[str]:
    """Every word the world's captions and prompts use (sorted): its vocabulary, caption
    templates and a large sample of generator captions."""
    import random

    from robust_edit.world import scenes
    from robust_edit.world import vocab as V

    rng = random.Random(0)
    texts = [scenes.sample_example(rng)[1] for _ in range(20_000)]
    texts += list(V.PROFESSIONS) + list(V.ROLES) + list(V.IDENTITIES) + list(V.NOUNS)
    texts += V.unsafe_words() + list(V.FRAMINGS) + list(V.PROFESSION_TEMPLATES)
    texts += [f"a {V.SUBJECT_TOKEN} {s['class_noun']} {s['look']}" for s in V.SUBJECTS.values()]
    texts += [f"{V.STYLE_NAME} style", "a an the of on in with"]
    words = {w.strip("{}") for t in texts for w in t.replace(",", " ").split()}
    return sorted(w for w in words if w)


def t5_tokenizer(model_max_length: int = 16):
    """A T5 (Unigram) tokenizer over the world's words, built offline, for the FLUX world's
    T5 encoder; any other text falls back to single characters. The world's captions and
    dataset prompts are at most 15 tokens with the end-of-text, so its sequence length is 16
    (a test keeps it so; FLUX.1-schnell's is 256: models.flux_sequence_length)."""
    from transformers import T5TokenizerFast

    chars = sorted(set("abcdefghijklmnopqrstuvwxyz" "ABCDEFGHIJKLMNOPQRSTUVWXYZ" "0123456789" ",.'-:;!?()"))
    vocab = [("<pad>", 0.0), ("</s>", 0.0), ("<unk>", 0.0), ("\u2581", -2.0)]
    vocab += [("\u2581" + w, -1.0) for w in world_words()] + [(c, -5.0) for c in chars]
    return T5TokenizerFast(vocab=vocab, extra_ids=0, model_max_length=model_max_length)
