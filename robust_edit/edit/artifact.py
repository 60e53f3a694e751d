"""Edit artifacts: the changed tensors (safetensors) plus a JSON manifest.

An artifact folder holds `edit.safetensors` (tensor names are `<component>.<parameter>`,
e.g. `unet.down_blocks.0.attentions.0.transformer_blocks.0.attn2.to_k.weight`) and
`edit.json` (method, task, hyper-parameters, logs, provenance, and the base model's
reference and content hash). Applying it to the same base reproduces `M_ed` exactly;
any other base is refused.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
from pathlib import Path

import torch

from robust_edit.atomic import claim_output, write_atomic

WEIGHTS = "edit.safetensors"
MANIFEST = "edit.json"
HASHED_COMPONENTS = ("text_encoder", "text_encoder_2", "unet", "transformer", "vae")


class EditArtifactError(ValueError):
    pass


def base_hash(pipe) -> str:
    """Content hash of a pipeline's weights (float32 view, so an fp16 checkpoint loaded in
    fp16 or fp32 hashes the same)."""
    h = hashlib.sha256()
    for comp in HASHED_COMPONENTS:
        module = getattr(pipe, comp, None)
        if module is None:
            continue
        for name, t in sorted(module.state_dict().items()):
            h.update(f"{comp}.{name}".encode())
            h.update(t.detach().float().cpu().contiguous().numpy().tobytes())
    return h.hexdigest()[:24]


def model_name(pipe) -> str:
    return str(getattr(pipe, "name_or_path", None) or pipe.config.get("_name_or_path", "?"))


@dataclass
class EditArtifact:
    tensors: dict[str, torch.Tensor]
    manifest: dict

    def save(self, folder: Path) -> Path:
        """Write atomically: a temporary sibling folder renamed into place. It may replace
        an earlier artifact, never a folder of anything else."""
        from safetensors.torch import save_file

        claim_output(folder, MANIFEST, force=True)

        def write(tmp: Path) -> None:
            save_file({k: v.contiguous() for k, v in self.tensors.items()}, str(tmp / WEIGHTS))
            (tmp / MANIFEST).write_text(json.dumps(self.manifest, indent=2, default=str))

        return write_atomic(Path(folder), write, folder=True)

    @classmethod
    def load(cls, folder: Path) -> "EditArtifact":
        from safetensors import SafetensorError
        from safetensors.torch import load_file

        folder = Path(folder)
        if not (folder / WEIGHTS).exists() or not (folder / MANIFEST).exists():
            raise EditArtifactError(f"{folder}: not an edit artifact (needs {WEIGHTS} and {MANIFEST})")
        try:
            manifest = json.loads((folder / MANIFEST).read_text())
        except (ValueError, OSError) as err:
            raise EditArtifactError(f"{folder / MANIFEST}: not readable JSON ({err})") from None
        base = manifest.get("base_model") if isinstance(manifest, dict) else None
        if not (isinstance(base, dict) and {"ref", "hash"} <= base.keys() and "method" in manifest
                and "task" in manifest):
            raise EditArtifactError(f"{folder / MANIFEST}: not an edit manifest (needs method, task "
                                    "and base_model.ref/hash); write artifacts with robust-edit edit")
        try:
            tensors = load_file(str(folder / WEIGHTS))
        except (SafetensorError, OSError) as err:
            raise EditArtifactError(f"{folder / WEIGHTS}: not a complete safetensors file "
                                    f"({err})") from None
        return cls(tensors, manifest)

    def apply(self, pipe, *, check_base: bool = True):
        """Write the edited tensors into `pipe` (in place) and return it; nothing is written
        unless every tensor names a parameter of the pipeline with its shape."""
        targets = {}
        for name, value in self.tensors.items():
            comp, _, param = name.partition(".")
            try:
                targets[name] = getattr(pipe, comp).get_parameter(param)
            except AttributeError:
                raise EditArtifactError(f"edit artifact tensor {name!r}: {model_name(pipe)!r} has "
                                        "no such parameter; apply it to the model it was made "
                                        "from") from None
            if targets[name].shape != value.shape:
                raise EditArtifactError(f"edit artifact tensor {name!r}: shape {tuple(value.shape)}, "
                                        f"the model's is {tuple(targets[name].shape)}")
        if check_base:
            want, have = self.manifest["base_model"]["hash"], base_hash(pipe)
            if want != have:
                raise EditArtifactError(
                    f"edit artifact ({self.manifest['method']}, {self.manifest.get('task')}) was made "
                    f"for base model {self.manifest['base_model']['ref']!r} (hash {want}); this "
                    f"pipeline is {model_name(pipe)!r} (hash {have}). Apply it to the model it was "
                    "made from.")
        with torch.no_grad():
            for name, value in self.tensors.items():
                targets[name].copy_(value.to(targets[name].dtype).to(targets[name].device))
        return pipe

