"""`hf-ast` audio encoder: Audio Spectrogram Transformer, pooled output per 1-s window.

The model's own feature extractor makes the Kaldi fbank it was trained on; it pads each window to the model's
`max_length` frames because AST's position embeddings are fixed to that length. Windows arrive at 16 kHz
(contracts.md) and are resampled when the extractor expects another rate.
"""
from __future__ import annotations

from pathlib import Path

import numpy as np
import torch

from mcd.encoders.base import (
    SAMPLE_RATE,
    AudioEncoder,
    EncoderLoadError,
    EncoderSpecError,
    PathSpecMixin,
    as_segments,
    chunks,
    load_hf_model,
)


class HFASTAudioEncoder(PathSpecMixin, AudioEncoder):
    backend = "hf-ast"
    id_prefix = "hf-ast"

    def __init__(self, path: str | Path, device: torch.device = torch.device("cpu"), batch_size: int = 16):
        from transformers import ASTFeatureExtractor, ASTModel

        self.path = str(path)
        if not self.path:
            raise EncoderSpecError("the hf-ast audio encoder needs a model path or hub id")
        local = Path(self.path).exists()
        self.model = load_hf_model(ASTModel, self.path, local, "an Audio Spectrogram Transformer")
        try:
            self.extractor = ASTFeatureExtractor.from_pretrained(self.path, local_files_only=local)
        except (OSError, ValueError) as exc:
            raise EncoderLoadError(
                f"could not load the AST feature extractor from {self.path!r}: {exc}. Save it next to the model "
                "(ASTFeatureExtractor.save_pretrained)."
            ) from exc
        cfg = self.model.config
        if self.extractor.num_mel_bins != cfg.num_mel_bins:
            raise EncoderLoadError(
                f"{self.path}: the feature extractor makes {self.extractor.num_mel_bins} mel bins but the model "
                f"expects {cfg.num_mel_bins}"
            )
        # the patch grid (and position embeddings) are sized for exactly cfg.max_length frames
        self.extractor.max_length = cfg.max_length
        self.device = device
        self.model.to(device).eval()
        for p in self.model.parameters():
            p.requires_grad_(False)
        self.dim = int(cfg.hidden_size)
        self.batch_size = batch_size

    def _resampled(self, audio: torch.Tensor) -> torch.Tensor:
        rate = int(self.extractor.sampling_rate)
        if rate == SAMPLE_RATE:
            return audio
        import torchaudio

        return torchaudio.functional.resample(audio, SAMPLE_RATE, rate)

    @torch.inference_mode()
    def encode(self, audio_segments: np.ndarray | torch.Tensor) -> torch.Tensor:
        audio = self._resampled(as_segments(audio_segments))
        out = []
        for sl in chunks(audio.shape[0], self.batch_size):
            waves = [w.numpy() for w in audio[sl]]
            inputs = self.extractor(waves, sampling_rate=self.extractor.sampling_rate, return_tensors="pt")
            values = inputs["input_values"].to(self.device)
            out.append(self.model(input_values=values).pooler_output.float().cpu())
        return torch.cat(out)
