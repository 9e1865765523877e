"""Are the 10 procedural timbres distinguishable? A simple classifier on spectral statistics says.

The benchmark's audio questions are only fair if each instrument sounds like itself and unlike the others. We
check it the way a sceptic would: synthesise single-instrument clips with random pitch, note rate and loudness,
cut them into 1-s segments, and train a multinomial logistic regression on gain-invariant spectral statistics
(log-mel means and spreads, onset strength, flatness, centroid) using some clips, testing on other clips.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from mcd.synth.scene import LOUDNESS_RANGE, PITCH_RANGE, RATE_RANGE, SYNTH_INSTRUMENTS, Source
from mcd.synth.sound import SR, loudness_gain, source_signal

N_FFT, HOP, N_MELS = 512, 160, 40


def _mel_filterbank(n_mels: int = N_MELS, n_fft: int = N_FFT, fmin: float = 50.0, fmax: float = SR / 2) -> np.ndarray:
    def mel(f): return 2595.0 * np.log10(1.0 + f / 700.0)
    def hz(m): return 700.0 * (10 ** (m / 2595.0) - 1.0)
    edges = hz(np.linspace(mel(fmin), mel(fmax), n_mels + 2))
    freqs = np.fft.rfftfreq(n_fft, 1.0 / SR)
    fb = np.zeros((n_mels, freqs.size))
    for i in range(n_mels):
        lo, c, hi = edges[i:i + 3]
        fb[i] = np.clip(np.minimum((freqs - lo) / (c - lo), (hi - freqs) / (hi - c)), 0, None)
    return fb


_FB = _mel_filterbank()
_DCT = np.cos(np.pi / N_MELS * (np.arange(N_MELS)[None, :] + 0.5) * np.arange(1, 14)[:, None])  # MFCC 1..13


def segment_features(x: np.ndarray) -> np.ndarray:
    """Gain-invariant spectral statistics of one 1-s segment (float32 vector).

    Timbre is measured on the frames where the instrument sounds (within 35 dB of the segment's peak), as the
    shape of each frame's spectrum (its own peak removed), so a slow rhythm's silences and the loudness do not
    pass for timbre; the rhythm and the envelope get their own statistics.
    """
    x = np.asarray(x, np.float64)
    frames = np.lib.stride_tricks.sliding_window_view(x, N_FFT)[::HOP] * np.hanning(N_FFT)
    power = np.abs(np.fft.rfft(frames, axis=1)) ** 2 + 1e-12
    logmel = 10 * np.log10(_FB @ power.T + 1e-12).T                          # [frames, mels]
    energy = 10 * np.log10(power.sum(axis=1))
    energy -= energy.max()                                                  # gain invariance
    active = energy > -35.0
    if active.sum() < 3:
        active[:] = True
    shape = logmel - logmel.max(axis=1, keepdims=True)
    shape = np.maximum(shape, -60.0)[active]                                # [active frames, mels]
    mfcc = shape @ _DCT.T / N_MELS                                          # spectral envelope, pitch-robust
    lm = np.maximum(logmel - logmel.max(), -80.0)
    flux = np.maximum(np.diff(lm, axis=0), 0).mean(axis=1)
    freqs = np.fft.rfftfreq(N_FFT, 1.0 / SR)
    centroid = ((power * freqs).sum(axis=1) / power.sum(axis=1))[active]
    flatness = np.log(np.exp(np.log(power).mean(axis=1)) / power.mean(axis=1))[active]
    return np.concatenate([
        shape.mean(axis=0), shape.std(axis=0), mfcc.mean(axis=0), mfcc.std(axis=0),
        [flux.mean(), flux.std(), flux.max(), active.mean(), energy.std() / 10.0],
        np.percentile(energy, [10, 25, 50, 75]) / 10.0,
        [centroid.mean() / 1000, centroid.std() / 1000, flatness.mean(), flatness.std()],
    ]).astype(np.float32)


def single_instrument_clip(instrument: str, rng: np.random.Generator, duration: float = 10.0) -> np.ndarray:
    """One instrument alone, sounding the whole clip, with random pitch, rate and loudness."""
    lo, hi = PITCH_RANGE[instrument]
    src = Source(instrument, float(rng.uniform(*LOUDNESS_RANGE)),
                 float(np.exp(rng.uniform(np.log(RATE_RANGE[0]), np.log(RATE_RANGE[1])))),
                 int(rng.integers(lo, hi + 1)), [(0.0, duration)])
    return source_signal(src, rng, duration) * loudness_gain(src.loudness)


def clip_segments(x: np.ndarray, min_db: float = -30.0) -> list[np.ndarray]:
    """The clip's 1-s segments in which the instrument is audibly playing (within min_db of the loudest)."""
    segs = [x[i * SR:(i + 1) * SR] for i in range(len(x) // SR)]
    rms = np.array([np.sqrt(np.mean(s.astype(np.float64) ** 2)) + 1e-12 for s in segs])
    db = 20 * np.log10(rms / rms.max())
    return [s for s, d in zip(segs, db) if d > min_db]


def dataset(clips_per_instrument: int, seed: int, duration: float = 10.0) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Features, labels and clip ids of segments from `clips_per_instrument` random clips per instrument."""
    feats, labels, clips = [], [], []
    for c in range(clips_per_instrument):
        for k, inst in enumerate(SYNTH_INSTRUMENTS):
            rng = np.random.default_rng([seed, c, k])
            for seg in clip_segments(single_instrument_clip(inst, rng, duration)):
                feats.append(segment_features(seg))
                labels.append(k)
                clips.append(c * len(SYNTH_INSTRUMENTS) + k)
    return np.stack(feats), np.array(labels), np.array(clips)


@dataclass
class LogisticRegression:
    """Multinomial logistic regression (standardised inputs, L2), trained by full-batch gradient descent."""

    mean: np.ndarray
    std: np.ndarray
    w: np.ndarray
    b: np.ndarray

    @classmethod
    def fit(cls, x: np.ndarray, y: np.ndarray, n_classes: int, steps: int = 600, lr: float = 0.5,
            l2: float = 1e-3) -> "LogisticRegression":
        mean, std = x.mean(axis=0), x.std(axis=0) + 1e-6
        z = (x - mean) / std
        w = np.zeros((z.shape[1], n_classes))
        b = np.zeros(n_classes)
        onehot = np.eye(n_classes)[y]
        for _ in range(steps):
            logits = z @ w + b
            p = np.exp(logits - logits.max(axis=1, keepdims=True))
            p /= p.sum(axis=1, keepdims=True)
            g = (p - onehot) / len(y)
            w -= lr * (z.T @ g + l2 * w)
            b -= lr * g.sum(axis=0)
        return cls(mean, std, w, b)

    def predict(self, x: np.ndarray) -> np.ndarray:
        return (((x - self.mean) / self.std) @ self.w + self.b).argmax(axis=1)


@dataclass
class SeparabilityResult:
    accuracy: float
    confusion: np.ndarray         # [true, predicted] counts over held-out segments
    n_train: int
    n_test: int

    def table(self) -> str:
        """The confusion matrix as text (rows: true instrument, columns: predicted)."""
        short = [i[:6] for i in SYNTH_INSTRUMENTS]
        lines = [f"held-out segment accuracy: {self.accuracy:.3f} (train {self.n_train}, test {self.n_test} segments)",
                 " " * 16 + " ".join(f"{s:>6}" for s in short)]
        for name, row in zip(SYNTH_INSTRUMENTS, self.confusion):
            lines.append(f"{name:>15} " + " ".join(f"{int(v):6d}" for v in row))
        return "\n".join(lines)


def evaluate_separability(train_clips: int = 8, test_clips: int = 4, seed: int = 0,
                          duration: float = 10.0) -> SeparabilityResult:
    """Train on segments of `train_clips` clips per instrument, test on segments of different clips."""
    x_tr, y_tr, _ = dataset(train_clips, seed, duration)
    x_te, y_te, _ = dataset(test_clips, seed + 1_000_003, duration)
    model = LogisticRegression.fit(x_tr, y_tr, len(SYNTH_INSTRUMENTS))
    pred = model.predict(x_te)
    k = len(SYNTH_INSTRUMENTS)
    confusion = np.zeros((k, k), np.int64)
    np.add.at(confusion, (y_te, pred), 1)
    return SeparabilityResult(float((pred == y_te).mean()), confusion, len(y_tr), len(y_te))


__all__ = ["evaluate_separability", "segment_features", "single_instrument_clip", "SeparabilityResult"]
