"""Two or more encoders of one modality side by side: their features standardised and concatenated.

The encoder table (docs/encoders.md) found the pretrained encoders far ahead of the synth CNNs, and each
pretrained encoder better still with a synth CNN beside it: ImageNet/MagnaTagATune features carry the real-world
look and sound, the synth CNN what is specific to the training world. The parts give features on very different
scales (MusiCNN's pooled activations are tens, a synth CNN's units near one), so each feature is standardised with
a mean and standard deviation measured once on training clips (`fit_standardisation`); those statistics are
weights of this encoder and travel in the checkpoint with the synth parts' weights.
"""
from __future__ import annotations

from typing import Any, Sequence

import numpy as np
import torch
from torch import nn

from mcd.encoders.base import (
    AudioEncoder,
    EncoderSpecError,
    VisualEncoder,
    build_encoder,
    check_dim,
    weights_digest,
)

STATS = ("feature_mean", "feature_std")
MIN_STD = 1e-3   # features constant on the fitting clips are centred, not blown up


class _JoinedEncoder(nn.Module):
    """What the visual and audio joins share; listed before the modality base class."""

    backend = "joined"

    def __init__(self, parts: Sequence[Any]):
        nn.Module.__init__(self)
        if len(parts) < 2:
            raise EncoderSpecError(f"a joined encoder needs at least two parts, got {len(parts)}")
        wrong = [p.modality for p in parts if p.modality != self.modality]
        if wrong:
            raise EncoderSpecError(f"a joined {self.modality} encoder cannot hold {wrong[0]} encoders")
        self.parts = list(parts)
        for i, p in enumerate(self.parts):       # synth CNNs are modules: their weights become ours (parts.i.*)
            if isinstance(p, nn.Module):
                self.add_module(f"part{i}", p)
        self.dim = sum(p.dim for p in self.parts)
        self.register_buffer("feature_mean", torch.zeros(self.dim))
        self.register_buffer("feature_std", torch.ones(self.dim))
        self._id: str | None = None

    @classmethod
    def from_spec(cls, spec: dict, state_dict=None, device=torch.device("cpu")):
        parts_specs = spec.get("parts")
        if not isinstance(parts_specs, list) or len(parts_specs) < 2:
            raise EncoderSpecError(f"a joined {spec.get('modality')} encoder spec needs a list of at least two "
                                   "'parts'")
        state = dict(state_dict or {})
        parts = []
        for i, part_spec in enumerate(parts_specs):
            prefix = f"part{i}."
            part_state = {k[len(prefix):]: v for k, v in state.items() if k.startswith(prefix)}
            parts.append(build_encoder(part_spec, state_dict=part_state or None, device=device))
        enc = cls(parts)
        check_dim(spec, enc.dim)
        missing = [k for k in STATS if k not in state]
        if state_dict is not None and missing:
            raise EncoderSpecError(f"joined {enc.modality} encoder weights lack {', '.join(missing)}")
        if state_dict is not None:
            enc.feature_mean.copy_(state["feature_mean"])
            enc.feature_std.copy_(state["feature_std"])
        want = spec.get("digest")
        if want is not None and enc.digest() != want:
            raise EncoderSpecError(f"joined {enc.modality} encoder statistics (digest {enc.digest()}) are not the "
                                   f"ones its spec was written with (digest {want})")
        return enc.to(device)

    def digest(self) -> str:
        return weights_digest({k: getattr(self, k) for k in STATS})

    @property
    def id(self) -> str:
        if self._id is None:
            self._id = f"joined-{self.modality}({'+'.join(p.id for p in self.parts)})-{self.digest()}"
        return self._id

    def spec(self) -> dict[str, Any]:
        return {"modality": self.modality, "backend": self.backend, "dim": self.dim,
                "parts": [p.spec() for p in self.parts], "digest": self.digest()}

    @property
    def device(self) -> torch.device:  # type: ignore[override]
        return self.feature_mean.device

    def to(self, *args, **kwargs):
        """Moves the statistics and the synth parts (whose `to` also moves their log-mel); the pretrained parts
        are built on their device by `from_spec`."""
        super().to(*args, **kwargs)
        for p in self.parts:
            if isinstance(p, nn.Module):
                p.to(self.device)
        return self

    def raw(self, x) -> torch.Tensor:
        """The parts' features concatenated, before standardisation."""
        return torch.cat([p.encode(x) for p in self.parts], dim=-1)

    @torch.inference_mode()
    def encode(self, x) -> torch.Tensor:
        return (self.raw(x) - self.feature_mean.cpu()) / self.feature_std.cpu()

    @torch.inference_mode()
    def fit_standardisation(self, inputs: Sequence[np.ndarray | torch.Tensor]) -> dict[str, float]:
        """Measure each feature's mean and standard deviation over `inputs` (clips' frames or windows); returns
        the mean |feature| of each part before, so the imbalance being corrected is on record."""
        feats = torch.cat([self.raw(x).reshape(-1, self.dim) for x in inputs]).double()
        self.feature_mean.copy_(feats.mean(0).float())
        self.feature_std.copy_(feats.std(0).clamp_min(MIN_STD).float())
        self._id = None
        widths = np.cumsum([0] + [p.dim for p in self.parts])
        return {p.id: round(float(feats[:, a:b].abs().mean()), 4) for p, a, b in zip(self.parts, widths, widths[1:])}


class JoinedVisualEncoder(_JoinedEncoder, VisualEncoder):
    """Frames -> [T, 49, sum of the parts' dims]; every part gives the same 7x7 patch grid."""


class JoinedAudioEncoder(_JoinedEncoder, AudioEncoder):
    """1-s windows -> [T, sum of the parts' dims]."""
