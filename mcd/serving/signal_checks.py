"""Low-level facts about a decoded clip that say "out of domain" more surely than any feature distance.

The encoders were trained on clips that always have a drawn picture and a sounding soundtrack; a learned feature
of a black frame or of digital silence can land anywhere, so these cases are checked on the signal itself, and the
verdict can name the problem ("the sound is silent"), which a distance cannot. Every measure is per segment (the
pipeline's T frames and 1-s audio windows), so the flagged seconds come for free.

* blank picture: the frame's pixel standard deviation (grey levels, 0..255) is below `BLANK_STD`: black, white or
  flat-colour frames. Drawn backgrounds never are.
* silence: the window's RMS is below `SILENCE_RMS` (about -80 dBFS): digital silence, not a quiet instrument.
* noise-like sound: the spectral flatness of the window (geometric over arithmetic mean of the power spectrum,
  averaged over its 32-ms frames, 0 = pure tone, 1 = white noise). The world's instruments are harmonic; the
  threshold is calibrated on in-domain clips (`mcd.serving.ood.calibrate`), not fixed here.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

BLANK_STD = 4.0
SILENCE_RMS = 1e-4
FRAME = 512              # 32 ms at 16 kHz
HOP = 256


@dataclass
class SignalStats:
    """Per-segment measures of one clip (all [T], float64)."""

    frame_std: np.ndarray      # pixel standard deviation of each segment's frame
    rms: np.ndarray            # RMS of each 1-s audio window
    flatness: np.ndarray       # mean spectral flatness of each window's voiced frames (0 for a silent window)
    has_audio: bool

    def to_dict(self) -> dict:
        return {"frame_std": self.frame_std.tolist(), "rms": self.rms.tolist(), "flatness": self.flatness.tolist(),
                "has_audio": self.has_audio}


def frame_std(frames: np.ndarray) -> np.ndarray:
    """uint8 [T,H,W,3] -> [T]: the standard deviation of each frame's grey levels (subsampled to <= ~64x64)."""
    frames = np.asarray(frames)
    if frames.ndim != 4 or frames.shape[-1] != 3:
        raise ValueError(f"frames must be [T,H,W,3], got shape {frames.shape}")
    step = max(1, min(frames.shape[1], frames.shape[2]) // 64)
    small = frames[:, ::step, ::step].astype(np.float64)
    grey = small @ np.array([0.299, 0.587, 0.114])
    return grey.reshape(len(frames), -1).std(axis=1)


def rms(segments: np.ndarray) -> np.ndarray:
    """float [T,N] audio windows -> [T] RMS."""
    segments = np.asarray(segments, dtype=np.float64)
    if segments.ndim != 2:
        raise ValueError(f"audio segments must be [T,N], got shape {segments.shape}")
    return np.sqrt((segments ** 2).mean(axis=1))


def spectral_flatness(segments: np.ndarray, floor: float = SILENCE_RMS) -> np.ndarray:
    """float [T,N] -> [T]: mean spectral flatness over each window's frames louder than `floor` (0 if none).

    Frames that are (nearly) silent are left out: their spectrum is quantisation noise, which is flat."""
    segments = np.asarray(segments, dtype=np.float64)
    if segments.ndim != 2:
        raise ValueError(f"audio segments must be [T,N], got shape {segments.shape}")
    T, n = segments.shape
    if n < FRAME:
        return np.zeros(T)
    starts = np.arange(0, n - FRAME + 1, HOP)
    frames = segments[:, starts[:, None] + np.arange(FRAME)] * np.hanning(FRAME)   # [T,F,FRAME]
    power = np.abs(np.fft.rfft(frames, axis=-1)) ** 2 + 1e-20
    flat = np.exp(np.log(power).mean(-1)) / power.mean(-1)                            # [T,F]
    loud = np.sqrt((segments[:, starts[:, None] + np.arange(FRAME)] ** 2).mean(-1)) > floor
    counts = loud.sum(1)
    return np.where(counts > 0, (flat * loud).sum(1) / np.maximum(counts, 1), 0.0)


def measure(frames: np.ndarray, audio_segments: np.ndarray, has_audio: bool) -> SignalStats:
    """The per-segment measures of a decoded clip (`media.DecodedClip`'s frames and audio_segments)."""
    return SignalStats(frame_std(frames), rms(audio_segments), spectral_flatness(audio_segments), bool(has_audio))
