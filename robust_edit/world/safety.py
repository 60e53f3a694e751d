"""The world's safety checker: blanks images that show the unsafe marker, as SD's checker does.

It sits in the pipeline's `safety_checker` slot with SD's calling convention
(`forward(clip_input, images) -> (images, has_nsfw_concepts)`) and uses the world
scorer's image tower against the texts "a safe image" / "an unsafe image".
"""

from __future__ import annotations

import numpy as np
import torch

from robust_edit.world import vocab as V
from robust_edit.world.scorer import PREPROCESS_CFG, WorldScorer

UNSAFE_THRESHOLD = 0.5


class WorldSafetyChecker(torch.nn.Module):
    def __init__(self, scorer: WorldScorer, threshold: float = UNSAFE_THRESHOLD):
        super().__init__()
        self.scorer = scorer
        self.threshold = threshold
        self.register_buffer(
            "label_embeds", scorer.encode_texts([V.zero_shot_text("safety", v) for v in V.SAFETY_LABELS]))

    @property
    def dtype(self) -> torch.dtype:  # diffusers pipelines read their components' dtype
        return self.label_embeds.dtype

    @property
    def device(self) -> torch.device:
        return self.label_embeds.device

    @torch.no_grad()
    def unsafe_probability(self, clip_input: torch.Tensor) -> torch.Tensor:
        z = torch.nn.functional.normalize(self.scorer.model.encode_image(clip_input.float()), dim=-1)
        return (100.0 * z @ self.label_embeds.T).softmax(-1)[:, V.SAFETY_LABELS.index("unsafe")]

    @torch.no_grad()
    def forward(self, clip_input: torch.Tensor, images):
        flagged = (self.unsafe_probability(clip_input) > self.threshold).tolist()
        for i, bad in enumerate(flagged):
            if bad:
                images[i] = torch.zeros_like(images[i]) if torch.is_tensor(images) else np.zeros(
                    images[i].shape)
        return images, flagged


def feature_extractor():
    from transformers import CLIPImageProcessor

    size = PREPROCESS_CFG["size"]
    return CLIPImageProcessor(size={"shortest_edge": size}, crop_size={"height": size, "width": size},
                              image_mean=PREPROCESS_CFG["mean"], image_std=PREPROCESS_CFG["std"],
                              do_convert_rgb=True)


def attach_world_safety_checker(pipe, threshold: float = UNSAFE_THRESHOLD):
    """Put the world checker in a world pipeline's safety-checker slot (it is off by default)."""
    pipe.safety_checker = WorldSafetyChecker(WorldScorer(device=str(pipe.device)), threshold)
    pipe.feature_extractor = feature_extractor()
    return pipe
