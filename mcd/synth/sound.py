"""Procedural sound of a synthetic clip: one timbre per instrument, a speech-like voiceover, the mono mix.

Every instrument family gets its own recipe so the timbres are told apart by their spectra and envelopes, as
real instruments are: bowed (violin: sawtooth-like harmonics, body resonances, delayed vibrato), blown (flute:
nearly sinusoidal with breath noise), brass (trumpet: harmonics peaking around the 3rd-4th, pitch scoop), reed
(saxophone: odd-heavy harmonics, formant, breath), free reed (accordion: square-ish detuned voices that beat,
an octave below, no vibrato), struck strings (piano: inharmonic partials, two-stage decay), plucked strings
(guitar: low, mellow, medium decay; banjo: bright, very short, membrane twang) and membranes (drum: pitch drop
plus snare noise; congas: higher modal tones with a slap).

Loudness is exact: every note is normalised to a peak short-time RMS of 1 and the source is scaled by
`loudness_gain(loudness)`, so "louder" in a question means the same thing as in the scene graph. The soundfont
banks (`soundfont.py`) keep the same contract; `mixer.py` picks the bank a scene names and makes the stereo mix.
"""
from __future__ import annotations

import numpy as np

from mcd.synth.scene import SAMPLE_RATE, Source, Voiceover, note_onsets

SR = SAMPLE_RATE
NYQUIST_GUARD = 7200.0   # highest partial synthesised (Hz), safely below 8 kHz
LOUDNESS_DB_SPAN = 30.0  # loudness 1.0 -> 0 dB, 0.0 -> -30 dB
MASTER_GAIN = 0.25
GATE_FADE = 0.015        # seconds of fade at interval edges


def loudness_gain(loudness: float) -> float:
    """Linear gain of a source: loudness is a dB scale (a difference of 0.2 is 6 dB)."""
    return float(10.0 ** ((loudness - 1.0) * LOUDNESS_DB_SPAN / 20.0))


def midi_hz(m: float) -> float:
    return float(440.0 * 2.0 ** ((m - 69.0) / 12.0))


# ----------------------------------------------------------------------------------------------- building blocks

def _attack_release(n: int, attack: float, release: float) -> np.ndarray:
    env = np.ones(n, np.float32)
    a, r = min(n, int(attack * SR)), min(n, int(release * SR))
    if a > 0:
        env[:a] = 0.5 - 0.5 * np.cos(np.linspace(0, np.pi, a))
    if r > 0:
        env[n - r:] *= 0.5 + 0.5 * np.cos(np.linspace(0, np.pi, r))
    return env


_NOISE_BANK: dict[tuple[float, float], np.ndarray] = {}
_NOISE_LEN = 1 << 17  # 8 s of noise per band


def _band_noise(n: int, lo: float, hi: float, rng: np.random.Generator) -> np.ndarray:
    """Unit-RMS noise band-limited to lo..hi Hz: a random stretch of a per-band bank made once per process.

    Filtering fresh noise for every note was the slowest step of the synthesis; a random offset into a fixed
    8-s band-limited buffer sounds the same and costs one gather.
    """
    bank = _NOISE_BANK.get((lo, hi))
    if bank is None:
        spec = np.fft.rfft(np.random.default_rng([int(lo), int(hi)]).standard_normal(_NOISE_LEN))
        f = np.fft.rfftfreq(_NOISE_LEN, 1.0 / SR)
        spec[(f < lo) | (f > hi)] = 0
        x = np.fft.irfft(spec, _NOISE_LEN)
        _NOISE_BANK[(lo, hi)] = bank = (x / np.sqrt(np.mean(x ** 2))).astype(np.float32)
    start = int(rng.integers(_NOISE_LEN))
    if start + n <= _NOISE_LEN:
        return bank[start:start + n]
    return np.take(bank, np.arange(start, start + n) % _NOISE_LEN)


def _partials(phase: np.ndarray, f0: float, amps: np.ndarray, rng: np.random.Generator,
              ratios: np.ndarray | None = None, decays: np.ndarray | None = None) -> np.ndarray:
    """Sum of a few partials (ratio r_k, optional exponential decay in 1/s) of a running phase (radians).

    Direct synthesis costs one sine per partial and sample, so it is used only for a handful of partials
    (inharmonic modes, decaying low partials); rich harmonic spectra go through `_wavetable`.
    """
    k = np.arange(1, len(amps) + 1, dtype=np.float64) if ratios is None else np.asarray(ratios, np.float64)
    keep = k * f0 < NYQUIST_GUARD
    k, amps = k[keep], np.asarray(amps, np.float64)[keep]
    phi = rng.uniform(0, 2 * np.pi, len(k))
    out = np.zeros(phase.size, np.float32)
    t = np.arange(phase.size, dtype=np.float32) / SR
    for j in range(len(k)):
        wave = np.sin((k[j] * phase + phi[j]).astype(np.float32))
        if decays is not None:
            wave *= np.exp(np.float32(-np.asarray(decays)[keep][j]) * t)
        out += np.float32(amps[j]) * wave
    return out


TABLE_SIZE = 2048
_TABLES: dict[bytes, np.ndarray] = {}


def _wavetable(amps: np.ndarray) -> np.ndarray:
    """One period of a harmonic waveform (harmonic k has amplitude amps[k-1]), cached per spectrum.

    Phases are fixed (a quadratic sequence, like a Schroeder phase, to keep the crest factor moderate) so that
    the same spectrum is computed once per process and reused for every note of that pitch.
    """
    key = np.asarray(amps, np.float64).tobytes()
    table = _TABLES.get(key)
    if table is None:
        k = np.arange(1, len(amps) + 1)
        phi = np.pi * k * (k - 1) / len(amps)
        grid = 2 * np.pi * np.arange(TABLE_SIZE) / TABLE_SIZE
        table = (np.asarray(amps)[:, None] * np.sin(k[:, None] * grid[None, :] + phi[:, None])).sum(axis=0)
        if len(_TABLES) > 4096:
            _TABLES.clear()
        _TABLES[key] = table = table.astype(np.float32)
    return table


def _osc(table: np.ndarray, phase: np.ndarray) -> np.ndarray:
    """Read a wavetable along a running phase (radians): O(samples) whatever the number of harmonics."""
    pos = phase * (TABLE_SIZE / (2 * np.pi))
    i = np.floor(pos)
    frac = pos - i
    i = i.astype(np.int64) % TABLE_SIZE
    return (table[i] * (1 - frac) + table[(i + 1) % TABLE_SIZE] * frac).astype(np.float32)


def _phase(f0: float, n: int, vibrato_hz: float = 0.0, depth: float = 0.0, delay: float = 0.0,
           scoop: float = 0.0, scoop_time: float = 0.04) -> np.ndarray:
    """Running phase for a pitch with optional delayed vibrato (depth as a fraction) and an initial scoop."""
    t = np.arange(n) / SR
    f = np.full(n, f0)
    if depth:
        f *= 1.0 + depth * np.clip((t - delay) / 0.2, 0, 1) * np.sin(2 * np.pi * vibrato_hz * t)
    if scoop:
        f *= 1.0 - scoop * np.exp(-t / scoop_time)
    return 2 * np.pi * np.cumsum(f) / SR


def _n_harm(f0: float, cap: int = 40) -> int:
    """How many harmonics of f0 fit under the guard frequency (vibrato and scoops stay below Nyquist)."""
    return max(1, min(cap, int(NYQUIST_GUARD / (f0 * 1.01))))


# ----------------------------------------------------------------------------------------------- the timbres
# Each recipe returns one note of n samples; `sustain` instruments hold for n, the others decay on their own.

def _violin(f0: float, n: int, rng: np.random.Generator) -> np.ndarray:
    k = np.arange(1, _n_harm(f0) + 1)
    fk = k * f0
    body = 1 + 1.8 * np.exp(-((fk - 480) / 180) ** 2) + 1.4 * np.exp(-((fk - 2900) / 700) ** 2)
    t = np.arange(n) / SR
    x = _osc(_wavetable(body / k), _phase(f0, n, 6.0, 0.009, 0.0))
    scratch = 0.05 + 0.3 * np.exp(-t / 0.05)  # the bow bites at the start of each stroke
    x += scratch * _band_noise(n, 2000, 7000, rng) * np.abs(x).max()
    return x * _attack_release(n, 0.07, 0.05)


def _flute(f0: float, n: int, rng: np.random.Generator) -> np.ndarray:
    t = np.arange(n) / SR
    k = _n_harm(f0, 4)
    x = _osc(_wavetable(np.array([1.0, 0.3, 0.1, 0.04])[:k]), _phase(f0, n, 5.0, 0.004, 0.15))
    x *= 1 + 0.08 * np.sin(2 * np.pi * 5.0 * t)
    breath = _band_noise(n, 1500, 6500, rng)
    chiff = np.exp(-t / 0.03)
    x = x + (0.18 + 0.5 * chiff) * breath
    return x * _attack_release(n, 0.07, 0.06)


def _trumpet(f0: float, n: int, rng: np.random.Generator) -> np.ndarray:
    k = np.arange(1, _n_harm(f0, 30) + 1)
    amps = k ** 1.5 * np.exp(-k / 3.5)
    x = _osc(_wavetable(amps), _phase(f0, n, 5.5, 0.002, 0.25, scoop=0.03))
    x = np.tanh(1.8 * x / (np.abs(x).max() + 1e-9))
    return x * _attack_release(n, 0.03, 0.04)


def _saxophone(f0: float, n: int, rng: np.random.Generator) -> np.ndarray:
    k = np.arange(1, _n_harm(f0) + 1)
    fk = k * f0
    amps = (1.0 / k ** 0.8) * np.where(k % 2 == 1, 1.5, 0.4) * (1 + 2.5 * np.exp(-((fk - 1200) / 350) ** 2))
    x = _osc(_wavetable(amps), _phase(f0, n, 4.8, 0.007, 0.12))
    x += 0.16 * _band_noise(n, 1000, 5000, rng) * np.abs(x).max()
    return x * _attack_release(n, 0.04, 0.05)


def _accordion(f0: float, n: int, rng: np.random.Generator) -> np.ndarray:
    k = np.arange(1, _n_harm(f0) + 1)
    amps = np.where(k % 2 == 1, 1.0, 0.25) / k
    table = _wavetable(amps)
    x = _osc(table, _phase(f0 * 2 ** (8 / 1200), n)) + _osc(table, _phase(f0 * 2 ** (-8 / 1200), n))
    k2 = np.arange(1, _n_harm(f0 / 2) + 1)
    x += 0.5 * _osc(_wavetable(np.where(k2 % 2 == 1, 1.0, 0.25) / k2), _phase(f0 / 2, n))
    t = np.arange(n) / SR
    x *= 1 + 0.1 * np.sin(2 * np.pi * 0.7 * t)  # bellows
    return x * _attack_release(n, 0.04, 0.04)


def _struck(f0: float, n: int, rng: np.random.Generator, amps: np.ndarray, bright_decay: float,
            dull_decay: float, low_partials: int, inharmonicity: float = 0.0) -> np.ndarray:
    """A struck or plucked string: a bright spectrum that dies fast over a dull one that rings on.

    The lowest partials are synthesised directly (with inharmonicity, which a wavetable cannot carry); the
    rest come from a wavetable under a fast decay, which is what makes the attack bright and the tail mellow.
    """
    t = np.arange(n) / SR
    phase = 2 * np.pi * f0 * t
    k = np.arange(1, low_partials + 1, dtype=np.float64)
    ratios = k * np.sqrt(1 + inharmonicity * k ** 2)
    low = _partials(phase, f0, amps[:low_partials], rng, ratios, decays=dull_decay * (1 + 0.4 * (k - 1)))
    high_amps = np.concatenate([np.zeros(low_partials), amps[low_partials:]])
    high = _osc(_wavetable(high_amps), phase) * np.exp(-bright_decay * t) if len(amps) > low_partials else 0.0
    return low + high


def _piano(f0: float, n: int, rng: np.random.Generator) -> np.ndarray:
    k = np.arange(1, _n_harm(f0, 30) + 1).astype(np.float64)
    amps = (np.abs(np.sin(np.pi * k * 0.12)) + 0.05) / k ** 1.1
    scale = (f0 / 262.0) ** 0.5
    t = np.arange(n) / SR
    x = _struck(f0, n, rng, amps, 5.0 * scale, 0.5 * scale, 3, inharmonicity=0.002)
    for cents in (-2.5, 2.5):  # the other strings of the note, slightly out of tune: slow beats
        x += 0.7 * _struck(f0 * 2 ** (cents / 1200), n, rng, amps[:2], 5.0 * scale, 0.5 * scale, 2, inharmonicity=0.002)
    hammer = _band_noise(n, 300, 3000, rng) * np.exp(-t / 0.01) * 0.5
    return (x / (np.abs(x).max() + 1e-9) + hammer) * _attack_release(n, 0.002, 0.08)


def _guitar(f0: float, n: int, rng: np.random.Generator) -> np.ndarray:
    k = np.arange(1, _n_harm(f0, 30) + 1).astype(np.float64)
    fk = k * f0
    body_formant = 1 + 2.0 * np.exp(-((fk - 220) / 90) ** 2) + 0.8 * np.exp(-((fk - 450) / 120) ** 2)
    amps = (np.abs(np.sin(np.pi * k * 0.2)) + 0.02) / k ** 1.8 * body_formant
    t = np.arange(n) / SR
    x = _struck(f0, n, rng, amps, 10.0, 2.8, 4)
    body = np.sin(2 * np.pi * 105 * t) * np.exp(-t / 0.12) * 0.4
    pick = _band_noise(n, 2000, 6000, rng) * np.exp(-t / 0.006) * 0.4
    return (x / (np.abs(x).max() + 1e-9) + body + pick) * _attack_release(n, 0.003, 0.06)


def _banjo(f0: float, n: int, rng: np.random.Generator) -> np.ndarray:
    k = np.arange(1, _n_harm(f0, 30) + 1).astype(np.float64)
    amps = (np.abs(np.sin(np.pi * k * 0.08)) + 0.1) / k ** 0.6
    t = np.arange(n) / SR
    x = _struck(f0, n, rng, amps, 20.0, 10.0, 3)
    twang = _band_noise(n, 2200, 4200, rng) * np.exp(-t / 0.06) * 1.0
    return (x / (np.abs(x).max() + 1e-9) + twang) * _attack_release(n, 0.002, 0.03)


def _drum(f0: float, n: int, rng: np.random.Generator) -> np.ndarray:
    t = np.arange(n) / SR
    f = f0 * (1 + 1.0 * np.exp(-t / 0.02))
    tone = np.sin(2 * np.pi * np.cumsum(f) / SR) * np.exp(-t / 0.09)
    snare = _band_noise(n, 1500, 7500, rng) * np.exp(-t / 0.22) * 0.8
    return ((tone + snare) * _attack_release(n, 0.001, 0.02)).astype(np.float32)


def _congas(f0: float, n: int, rng: np.random.Generator) -> np.ndarray:
    t = np.arange(n) / SR
    ph = 2 * np.pi * np.cumsum(f0 * (1 - 0.04 * np.exp(-t / 0.05))) / SR
    x = _partials(ph, f0, np.array([1.0, 0.5, 0.3, 0.2]), rng, ratios=np.array([1.0, 1.59, 2.14, 2.65]),
                  decays=np.array([5.0, 9.0, 12.0, 16.0]))  # circular-membrane modes, not a harmonic series
    slap = _band_noise(n, 800, 3500, rng) * np.exp(-t / 0.012) * 0.8
    return ((x / (np.abs(x).max() + 1e-9) + slap) * _attack_release(n, 0.001, 0.02)).astype(np.float32)


#: recipe, natural note length in seconds (None = sustained: holds until the next note), and how long a
#: decaying note may ring on after the next one starts (the piano's sustain pedal lets notes overlap; a
#: guitarist's next pluck damps the string).
TIMBRES: dict[str, tuple] = {
    "violin": (_violin, None, 0.0), "flute": (_flute, None, 0.0), "trumpet": (_trumpet, None, 0.0),
    "saxophone": (_saxophone, None, 0.0), "accordion": (_accordion, None, 0.0),
    "piano": (_piano, 2.0, 2.0), "acoustic_guitar": (_guitar, 1.2, 0.05), "banjo": (_banjo, 0.5, 0.1),
    "drum": (_drum, 0.6, 0.3), "congas": (_congas, 0.8, 0.3),
}
_SCALE = np.array([0, 2, 4, 7, 9])  # major pentatonic: melodies, not noise


def normalise_note(x: np.ndarray) -> np.ndarray:
    """Scale so the loudest 40-ms window has RMS 1 (what 'as loud as' means for every timbre)."""
    w = 640
    m = x[: (x.size // w) * w].reshape(-1, w) if x.size >= w else x[None, :]
    peak = float(np.sqrt((m.astype(np.float64) ** 2).mean(axis=1)).max())
    return (x / (peak + 1e-9)).astype(np.float32)


def gate(intervals: list[tuple[float, float]], n: int) -> np.ndarray:
    """1 inside the sounding intervals, 0 outside, with short fades: nothing leaks outside an interval."""
    g = np.zeros(n, np.float32)
    fade = int(GATE_FADE * SR)
    for s, e in intervals:
        a, b = int(round(s * SR)), min(n, int(round(e * SR)))
        g[a:b] = 1.0
        if fade and b - a > 2 * fade:
            g[a:a + fade] *= np.linspace(0, 1, fade, dtype=np.float32)
            g[b - fade:b] *= np.linspace(1, 0, fade, dtype=np.float32)
    return g


def source_signal(src: Source, rng: np.random.Generator, duration: float) -> np.ndarray:
    """One source at unit loudness (peak window RMS 1 per note), silent outside its intervals."""
    n = int(round(duration * SR))
    out = np.zeros(n, np.float32)
    recipe, natural, ring = TIMBRES[src.instrument]
    onsets = note_onsets(src)
    degree = int(rng.integers(len(_SCALE)))
    for i, onset in enumerate(onsets):
        degree = int(np.clip(degree + rng.integers(-2, 3), -3, len(_SCALE) + 2))
        octave, step = divmod(degree, len(_SCALE))
        f0 = midi_hz(src.pitch + 12 * octave + _SCALE[step] - 5)
        if src.instrument == "drum":
            f0 = midi_hz(src.pitch)
        nxt = onsets[i + 1] if i + 1 < len(onsets) and onsets[i + 1] - onset < 1.5 / src.rate else np.inf
        length = (min(nxt - onset, 4.0) + 0.02) if natural is None else min(natural, nxt - onset + ring)
        a = int(round(onset * SR))
        m = min(n - a, max(1, int(round(length * SR))))
        if m <= 16:
            continue
        out[a:a + m] += normalise_note(recipe(f0, m, rng))
    return out * gate(src.intervals, n)


def voice_signal(vo: Voiceover, rng: np.random.Generator, duration: float) -> np.ndarray:
    """Speech-like sound: glottal harmonics shaped by moving vowel formants, syllable rhythm, consonant noise."""
    n = int(round(duration * SR))
    out = np.zeros(n, np.float32)
    vowels = np.array([[730, 1090, 2440], [530, 1840, 2480], [270, 2290, 3010], [570, 840, 2410], [300, 870, 2240]])
    for s, e in vo.intervals:
        t = s
        while t < e - 0.1:
            dur = float(rng.uniform(0.12, 0.3))
            m = int(min(dur, e - t) * SR)
            f1, f2, f3 = vowels[int(rng.integers(len(vowels)))] * rng.uniform(0.9, 1.1)
            f0 = vo.f0 * (1 + 0.12 * np.sin(2 * np.pi * t / 1.7)) * rng.uniform(0.93, 1.07)
            k = np.arange(1, int(4000 // f0) + 1)
            fk = k * f0
            amps = sum(g / (1 + ((fk - F) / bw) ** 2) for g, F, bw in ((1.0, f1, 90), (0.6, f2, 120), (0.25, f3, 160)))
            amps = amps / k ** 0.3
            tt = np.arange(m) / SR
            ph = 2 * np.pi * np.cumsum(f0 * (1 - 0.1 * tt / max(dur, 1e-3))) / SR
            syl = _partials(ph, f0, amps, rng) * np.sin(np.pi * np.arange(m) / m) ** 0.7
            if rng.random() < 0.5:  # a fricative or plosive before the vowel
                c = min(m, int(rng.uniform(0.03, 0.07) * SR))
                syl[:c] += 0.4 * np.abs(syl).max() * _band_noise(c, 2500, 7000, rng)
            a = int(round(t * SR))
            out[a:a + m] += normalise_note(syl)[: n - a]
            t += dur + (float(rng.uniform(0.08, 0.25)) if rng.random() < 0.25 else 0.01)
    return out * gate(vo.intervals, n)


_normalise_note = normalise_note   # world v1 names
_gate = gate
__all__ = ["SR", "TIMBRES", "gate", "loudness_gain", "midi_hz", "normalise_note", "note_onsets", "source_signal",
           "voice_signal"]
