"""The three frozen basic encoders of one model, persisted together.

A checkpoint must rebuild exactly the encoders its model was trained on, so the set travels as one unit: specs go
into `config.json["encoders"]`, trainable-once weights (the synth CNNs) into `model.safetensors` under
`encoders.<modality>.*`. `mcd pretrain-encoders` writes the same layout to a folder (`encoders.json` +
`<modality>.safetensors`), which `mcd extract --encoders DIR` reads.
"""
from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

import torch
from safetensors.torch import load_file

from mcd.encoders import build_encoder

MODALITIES = ("visual", "audio", "text")
PREFIX = "encoders."


class EncoderSetError(ValueError):
    """The encoder folder or checkpoint section is missing or inconsistent."""


@dataclass
class EncoderSet:
    visual: object
    audio: object
    text: object

    def specs(self) -> dict:
        return {m: getattr(self, m).spec() for m in MODALITIES}

    def state_tensors(self) -> dict[str, torch.Tensor]:
        """Weights of the encoders that have any (synth CNNs, a join's statistics), prefixed for a checkpoint;
        weights that ship in a package (EfficientNet-Lite0, MusiCNN, MiniLM) stay out."""
        out = {}
        for m in MODALITIES:
            enc = getattr(self, m)
            if isinstance(enc, torch.nn.Module):
                out.update({f"{PREFIX}{m}.{k}": v.detach().cpu().contiguous() for k, v in enc.state_dict().items()})
        return out

    @classmethod
    def from_specs(cls, specs: dict, tensors: dict[str, torch.Tensor] | None = None,
                   device: torch.device | str = "cpu") -> "EncoderSet":
        """The three encoders, built on `device` (their `encode` outputs come back on the CPU)."""
        missing = [m for m in MODALITIES if m not in specs]
        if missing:
            raise EncoderSetError(f"encoder specs lack {missing}; found {sorted(specs)}")
        tensors = tensors or {}
        built = {}
        for m in MODALITIES:
            prefix = f"{PREFIX}{m}."
            state = {k[len(prefix):]: v for k, v in tensors.items() if k.startswith(prefix)}
            built[m] = build_encoder(specs[m], state_dict=state or None, device=device)
        return cls(**built)

    @classmethod
    def from_folder(cls, folder: str | Path, device: torch.device | str = "cpu") -> "EncoderSet":
        """Load `encoders.json` (+ `<modality>.safetensors` where present) written by `mcd pretrain-encoders`."""
        folder = Path(folder)
        spec_path = folder / "encoders.json"
        if not spec_path.exists():
            raise EncoderSetError(f"{folder} has no encoders.json; pass a folder written by `mcd pretrain-encoders`")
        specs = json.loads(spec_path.read_text())
        tensors = {}
        for m in MODALITIES:
            weights = folder / f"{m}.safetensors"
            if weights.exists():
                tensors.update({f"{PREFIX}{m}.{k}": v for k, v in load_file(weights).items()})
        return cls.from_specs(specs, tensors, device)
