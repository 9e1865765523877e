"""The 10 procedural timbres are distinguishable, and loudness in the scene graph is loudness in the signal."""
from __future__ import annotations

import numpy as np
import pytest

from mcd.synth.scene import SYNTH_INSTRUMENTS, Source
from mcd.synth.separability import evaluate_separability
from mcd.synth.sound import SR, loudness_gain, source_signal


def test_timbres_are_separable_on_held_out_clips() -> None:
    """Logistic regression on spectral statistics of 1-s single-instrument segments, tested on other clips."""
    result = evaluate_separability(train_clips=30, test_clips=10, seed=123, duration=2.0)
    print(result.table())
    assert result.n_test >= 180
    assert result.accuracy >= 0.95, result.table()
    # every instrument is recognised on most of its own segments, not just on average
    per_class = result.confusion.diagonal() / result.confusion.sum(axis=1)
    assert per_class.min() >= 0.8, dict(zip(SYNTH_INSTRUMENTS, per_class.round(2)))


def test_sources_are_silent_outside_their_intervals_and_scaled_by_loudness() -> None:
    quiet = source_signal(Source("violin", 0.4, 2.0, 64, [(2.0, 5.0)]), np.random.default_rng(1), 10.0)
    assert np.abs(quiet[: int(1.99 * SR)]).max() == 0 and np.abs(quiet[int(5.01 * SR):]).max() == 0
    assert np.abs(quiet[int(2.5 * SR): int(4.5 * SR)]).max() > 0.1
    # loudness 0.2 apart is a fixed 6 dB, and every note peaks at the same level before the gain
    assert 20 * np.log10(loudness_gain(0.9) / loudness_gain(0.7)) == pytest.approx(6.0)
    for instrument in SYNTH_INSTRUMENTS:
        x = source_signal(Source(instrument, 1.0, 1.0, 60, [(0.0, 3.0)]), np.random.default_rng(2), 3.0)
        windows = x[: 3 * SR].reshape(-1, 640)
        peak_rms = np.sqrt((windows.astype(np.float64) ** 2).mean(axis=1)).max()
        assert 0.8 < peak_rms < 1.6, (instrument, peak_rms)
