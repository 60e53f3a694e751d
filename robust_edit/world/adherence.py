"""World prompt adherence: for every attribute a world prompt names (size, colour, shape,
background), does the world scorer see it in the image? One row per image and named
attribute family, metric `adherence_<family>`. Unsafe prompts are not scored: their
images are meant to change."""

from __future__ import annotations

from robust_edit.scorers.clip import ClipScorer

FAMILIES = ("size", "colour", "shape", "background")


class WorldAdherence:
    def __init__(self, ref: str, device: str = "cpu"):
        self.clip = ClipScorer(ref, device)

    def score(self, images, items: list[dict]) -> list[dict]:
        from robust_edit.world import scenes
        from robust_edit.world import vocab as V

        values = {"size": V.SIZES, "colour": V.COLOURS, "shape": V.SHAPES, "background": V.BACKGROUNDS}
        named = [{} if it.get("kind") == "unsafe" else scenes.named_attributes(it["prompt"])
                 for it in items]
        out = []
        for family in FAMILIES:
            idx = [i for i, n in enumerate(named) if family in n]
            if not idx:
                continue
            labels = self.clip.labels(images[idx], {v: V.zero_shot_text(family, v)
                                                    for v in values[family]})
            out += [{"item": items[i]["item"], "metric": f"adherence_{family}", "label": lab,
                     "value": float(lab == named[i][family])} for lab, i in zip(labels, idx)]
        return out
