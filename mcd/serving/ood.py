"""Out-of-domain detection: is a clip's picture, or its sound, unlike the clips the checkpoint was trained on?

The model answers anything it is given; on a clip unlike its training world the answers mean little. This module
gives one verdict per modality ("picture", "sound"), each with a score, a threshold, a reason a person can read and
the seconds that look foreign, from two kinds of evidence:

* feature distance: every segment's encoder features against Gaussians fitted to in-domain segments held out from
  training, in several views per modality (`VIEWS`): the encoder's output (picture: the patch features of the
  frame pooled over the patches; sound: its audio feature) and, for a joined encoder (mcd.encoders.joined), each
  part's slice of it on its own: the pretrained part (ImageNet / MagnaTagATune features) knows photographs, speech
  and music the synth world never shows, the synth part what is specific to that world, and in the whole vector
  either part's deviation is diluted by the other's dimensions. Each Gaussian is probabilistic PCA: the top `k`
  principal directions keep their (Ledoit-Wolf shrunk) variances, the others share one, so it needs k*D numbers
  instead of D*D and a clip that leaves the training subspace is still seen (its residual). A segment's score is
  the root-mean-square z over the D dimensions (about 1 in domain); a view's clip score is the mean over
  segments, flagged above its calibrated threshold; a modality's score is its views' largest score/threshold
  ratio, flagged when any view is.
* contrast views, where the calibration is given a contrast set (foreign clips of a kind that lies inside the
  in-domain density, e.g. soundfont music of instruments the world does not have): a logistic read-out
  (`Contrast`) fitted to tell the contrast segments from the in-domain ones; its clip score (the mean probability
  of being foreign) is thresholded like a Gaussian view's.
* signal checks (`mcd.serving.signal_checks`): blank frames, digital silence, no audio track, noise-like spectra.
  Surer than a distance where they apply, and they name the problem.

The calibration (format 2, see `calibrate`) is split by size: its arrays (means, principal directions, variances)
are tensors in the checkpoint's model.safetensors named `ood.<modality>.<view>.<array>`, its scalars (thresholds,
view names, part widths, counts) the `ood` section of config.json, a few hundred bytes. A checkpoint with the first
format (per-dimension mean/std of clip-pooled features, `visual_mean` ...) still loads: its score is
computed as before and flags both modalities alike; the signal checks use their default thresholds.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Iterable, Sequence

import numpy as np
import torch

from mcd.serving import signal_checks

FORMAT = 2
#: the calibration's tensors in model.safetensors are named `ood.<modality>.<view index>.<array>`
TENSOR_PREFIX = "ood."
MODALITIES = ("picture", "sound")
#: the clip threshold is the `quantile` of the calibration clips' scores raised by this margin (`_with_margin`:
#: multiplied, or for a contrast view's probabilities their odds multiplied)
DEFAULT_QUANTILE = 0.995
DEFAULT_MARGIN = 1.15
#: a segment is listed as foreign above this quantile of the calibration segments' scores (raised by the margin)
SEGMENT_QUANTILE = 0.999
#: the noise check's threshold when a calibration has none (a calibration sets it from in-domain clips)
DEFAULT_NOISE_FLATNESS = 0.3
#: share of segments that must be blank / silent / noise-like for the clip's verdict to say so
MAJORITY = 0.5

REASONS = {
    "unlike": "the {m} is unlike the training clips",
    "blank": "the picture is blank",
    "silent": "the sound is silent",
    "no_audio": "the clip has no sound",
    "noise": "the sound is noise-like",
}


class OODConfigError(ValueError):
    """The checkpoint's `ood` entry is malformed (the message says what is wrong)."""


# ------------------------------------------------------------------------------------------------ features

def segment_features(visual: torch.Tensor | np.ndarray, audio: torch.Tensor | np.ndarray) -> dict[str, np.ndarray]:
    """Per-segment feature vectors of one clip: picture [T,Dv] (patch features pooled over the frame) and sound
    [T,Da]."""
    visual = torch.as_tensor(visual).float()
    audio = torch.as_tensor(audio).float()
    if visual.ndim != 3 or audio.ndim != 2:
        raise ValueError(f"visual must be [T,P,Dv] and audio [T,Da], got {tuple(visual.shape)} and "
                         f"{tuple(audio.shape)}")
    return {"picture": visual.mean(dim=1).numpy().astype(np.float64), "sound": audio.numpy().astype(np.float64)}


#: per modality, the views a calibration fits (each a list of inputs, concatenated) and its principal directions.
#: "final" is the encoder output, "partI" the slice of it from a joined encoder's part I; a view whose inputs an
#: encoder does not provide is left out at calibration.
VIEWS: dict[str, list[tuple[list[str], int]]] = {
    "picture": [(["final"], 24), (["part0"], 24), (["part1"], 24)],
    "sound": [(["final"], 24), (["part0"], 24), (["part1"], 24)],
}
#: per modality, the inputs a contrast view reads when the calibration is given a contrast set for it: the first
#: an encoder provides (a joined encoder's pretrained part, where sound the world lacks is told apart; else the
#: whole output).
CONTRAST_INPUTS: dict[str, list[list[str]]] = {"picture": [["part0"], ["final"]], "sound": [["part0"], ["final"]]}
#: the contrast views' L2 penalty (docs/ood.md says how it and the calibration sizes were chosen)
CONTRAST_L2 = 1e-2


def part_dims(encoder) -> list[int] | None:
    """The widths of a joined encoder's parts, in the order its features concatenates them (None: not joined)."""
    parts = getattr(encoder, "parts", None)
    return [int(p.dim) for p in parts] if parts else None


def view_inputs(visual, audio, parts: dict[str, Sequence[int] | None] | None = None) -> dict[str, dict]:
    """{modality: {input name: [T,D]}}: "final" from the encoder outputs and, where `parts` gives a modality's part
    widths, "part0", "part1", ... its slices."""
    final = segment_features(visual, audio)
    out = {}
    for m in MODALITIES:
        out[m] = {"final": final[m]}
        widths = (parts or {}).get(m)
        if widths:
            if sum(widths) != final[m].shape[1]:
                raise ValueError(f"{m}: parts of widths {list(widths)} do not add up to the features' "
                                 f"{final[m].shape[1]}")
            edges = np.cumsum([0, *widths])
            out[m].update({f"part{i}": final[m][:, a:b] for i, (a, b) in enumerate(zip(edges, edges[1:]))})
    return out


# ------------------------------------------------------------------------------------------------ the Gaussian

def ledoit_wolf(x: np.ndarray) -> tuple[np.ndarray, float]:
    """The Ledoit-Wolf shrunk covariance of rows `x` [N,D] and its shrinkage (0 = sample covariance)."""
    n, d = x.shape
    xc = x - x.mean(0)
    s = xc.T @ xc / n
    mu = np.trace(s) / d
    delta = ((s - mu * np.eye(d)) ** 2).sum() / d
    beta = (((xc ** 2).T @ (xc ** 2)) / n - s ** 2).sum() / (d * n)
    shrink = 0.0 if delta == 0 else float(min(beta, delta) / delta)
    return shrink * mu * np.eye(d) + (1 - shrink) * s, shrink


def _arrays_to_tensors(model, prefix: str) -> dict[str, torch.Tensor]:
    """A view model's `ARRAYS` as float32 tensors named `<prefix>.<array>`."""
    return {f"{prefix}.{k}": torch.from_numpy(np.ascontiguousarray(getattr(model, k), np.float32))
            for k in model.ARRAYS}


def _arrays_from_tensors(names: Sequence[str], tensors: dict[str, torch.Tensor], prefix: str) -> list[np.ndarray]:
    """The arrays `<prefix>.<name>` as float64, or a clear error naming those the checkpoint lacks."""
    missing = [f"{prefix}.{k}" for k in names if f"{prefix}.{k}" not in tensors]
    if missing:
        raise OODConfigError(f"ood: the checkpoint's weights lack {', '.join(missing)} (calibrate it again "
                             "with `mcd calibrate-ood`)")
    return [tensors[f"{prefix}.{k}"].detach().cpu().double().numpy() for k in names]


@dataclass
class Gaussian:
    """Probabilistic PCA of one modality's in-domain segment features."""

    mean: np.ndarray          # [D]
    basis: np.ndarray         # [k,D] orthonormal principal directions
    variances: np.ndarray     # [k] their (shrunk) variances
    residual_variance: float  # the mean variance of the other D-k directions

    @classmethod
    def fit(cls, x: np.ndarray, components: int = 24) -> "Gaussian":
        x = np.asarray(x, np.float64)
        if x.ndim != 2 or len(x) < 2:
            raise ValueError(f"need [N,D] features with N >= 2, got shape {x.shape}")
        k = min(components, x.shape[1] - 1, len(x) - 1)
        cov, _ = ledoit_wolf(x)
        vals, vecs = np.linalg.eigh(cov)
        order = np.argsort(vals)[::-1]
        vals, vecs = np.maximum(vals[order], 1e-12), vecs[:, order]
        return cls(x.mean(0), vecs[:, :k].T.copy(), vals[:k], float(max(vals[k:].mean(), 1e-12)))

    def score(self, x: np.ndarray) -> np.ndarray:
        """[N,D] -> [N]: root-mean-square z (Mahalanobis distance / sqrt(D))."""
        xc = np.atleast_2d(x) - self.mean
        proj = xc @ self.basis.T
        residual = (xc ** 2).sum(1) - (proj ** 2).sum(1)
        d2 = (proj ** 2 / self.variances).sum(1) + np.maximum(residual, 0.0) / self.residual_variance
        return np.sqrt(d2 / len(self.mean))

    ARRAYS = ("mean", "basis", "variances")

    def tensors(self, prefix: str) -> dict[str, torch.Tensor]:
        """The arrays as float32 tensors named `<prefix>.mean|basis|variances` (for model.safetensors)."""
        return _arrays_to_tensors(self, prefix)

    @classmethod
    def from_tensors(cls, tensors: dict[str, torch.Tensor], prefix: str, residual_variance: float) -> "Gaussian":
        g = cls(*_arrays_from_tensors(cls.ARRAYS, tensors, prefix), float(residual_variance))
        if g.mean.ndim != 1 or g.basis.ndim != 2 or g.basis.shape != (len(g.variances), len(g.mean)):
            raise OODConfigError(f"ood: {prefix}: basis {tuple(g.basis.shape)} does not match "
                                 f"{len(g.variances)} variances and a {len(g.mean)}-dim mean")
        if not g.residual_variance > 0 or not (g.variances > 0).all():
            raise OODConfigError(f"ood: {prefix}: variances must be positive")
        return g

    def rounded(self) -> "Gaussian":
        """The Gaussian as stored (float32), so thresholds are set with the arrays the detector will load."""
        return Gaussian(*(getattr(self, k).astype(np.float32).astype(np.float64) for k in self.ARRAYS),
                        self.residual_variance)


@dataclass
class Contrast:
    """A logistic read-out that tells in-domain segments from a *contrast set* of foreign ones (segment -> the
    probability it is foreign). Where a foreign kind of input lies inside the in-domain density (soundfont music of
    instruments the world does not have: the same kind of sound to the encoders, so no distance separates it), a
    direction that tells them apart still can; the Gaussian views keep catching what no contrast set shows."""

    mean: np.ndarray          # [D] the in-domain fit segments' mean
    scale: np.ndarray         # [D] and standard deviation (the inputs are standardised)
    weight: np.ndarray        # [D]
    bias: np.ndarray          # [1]

    @classmethod
    def fit(cls, inside: np.ndarray, foreign: np.ndarray, l2: float = 1e-2, steps: int = 500) -> "Contrast":
        """L2-regularised logistic regression, the two classes weighted equally (full-batch L-BFGS)."""
        inside, foreign = np.asarray(inside, np.float64), np.asarray(foreign, np.float64)
        if inside.ndim != 2 or foreign.ndim != 2 or inside.shape[1] != foreign.shape[1] or not (
                len(inside) and len(foreign)):
            raise ValueError(f"need [N,D] in-domain and [M,D] foreign features, got {inside.shape} and "
                             f"{foreign.shape}")
        mean, scale = inside.mean(0), inside.std(0) + 1e-6
        x = torch.from_numpy(np.concatenate([inside, foreign]) - mean) / torch.from_numpy(scale)
        y = torch.cat([torch.zeros(len(inside)), torch.ones(len(foreign))]).double()
        w = torch.zeros(x.shape[1], dtype=torch.float64, requires_grad=True)
        b = torch.zeros(1, dtype=torch.float64, requires_grad=True)
        opt = torch.optim.LBFGS([w, b], max_iter=steps, line_search_fn="strong_wolfe")
        balance = torch.tensor(len(inside) / len(foreign), dtype=torch.float64)

        def closure():
            opt.zero_grad()
            loss = torch.nn.functional.binary_cross_entropy_with_logits(x @ w + b, y, pos_weight=balance)
            loss = loss + l2 * (w ** 2).sum()
            loss.backward()
            return loss

        opt.step(closure)
        return cls(mean, scale, w.detach().numpy().copy(), b.detach().numpy().copy())

    def score(self, x: np.ndarray) -> np.ndarray:
        """[N,D] -> [N]: the probability that each segment is foreign."""
        z = ((np.atleast_2d(x) - self.mean) / self.scale) @ self.weight + float(self.bias[0])
        return 1.0 / (1.0 + np.exp(-np.clip(z, -60, 60)))

    ARRAYS = ("mean", "scale", "weight", "bias")

    def tensors(self, prefix: str) -> dict[str, torch.Tensor]:
        """The arrays as float32 tensors named `<prefix>.mean|scale|weight|bias` (for model.safetensors)."""
        return _arrays_to_tensors(self, prefix)

    @classmethod
    def from_tensors(cls, tensors: dict[str, torch.Tensor], prefix: str) -> "Contrast":
        c = cls(*_arrays_from_tensors(cls.ARRAYS, tensors, prefix))
        if c.mean.ndim != 1 or not (c.scale.shape == c.weight.shape == c.mean.shape) or c.bias.shape != (1,):
            raise OODConfigError(f"ood: {prefix}: mean, scale and weight must be [D] and bias [1]")
        if not (c.scale > 0).all():
            raise OODConfigError(f"ood: {prefix}: scales must be positive")
        return c

    def rounded(self) -> "Contrast":
        return Contrast(*(getattr(self, k).astype(np.float32).astype(np.float64) for k in self.ARRAYS))


# ------------------------------------------------------------------------------------------------ verdicts

@dataclass
class Verdict:
    """One modality's verdict. `score`/`threshold` are the feature distance's (flagged by distance when score >
    threshold); a signal check can flag it too, and then `reason` names that check."""

    flagged: bool
    score: float
    threshold: float | None
    reason: str | None = None                     # a key of REASONS, None when not flagged
    seconds: list[float] = field(default_factory=list)   # segment centres that look foreign

    def sentence(self, modality: str) -> str | None:
        return None if self.reason is None else REASONS[self.reason].format(m=modality)

    def to_json(self, modality: str) -> dict:
        return {"flagged": self.flagged, "score": round(float(self.score), 3),
                "threshold": None if self.threshold is None else round(float(self.threshold), 3),
                "reason": self.sentence(modality), "seconds": self.seconds}


@dataclass
class DomainReport:
    """Both verdicts of one clip; `score` is the larger score/threshold ratio (> 1: some modality is foreign)."""

    picture: Verdict
    sound: Verdict
    calibrated: bool

    @property
    def flagged(self) -> bool:
        return self.picture.flagged or self.sound.flagged

    @property
    def score(self) -> float:
        ratios = [v.score / v.threshold for v in (self.picture, self.sound) if v.threshold]
        return float(max(ratios)) if ratios else 0.0

    def to_json(self) -> dict:
        return {"picture": self.picture.to_json("picture"), "sound": self.sound.to_json("sound")}

    def warning(self) -> str | None:
        """One sentence for a person, or None when neither modality is flagged."""
        parts = [v.sentence(m) for m, v in (("picture", self.picture), ("sound", self.sound)) if v.flagged]
        if not parts:
            return None
        text = " and ".join(parts)
        return text[0].upper() + text[1:] + ": answers are unreliable."


# ------------------------------------------------------------------------------------------------ the detector

class Detector:
    """A loaded calibration (format 2): `config` is the `ood` section, `tensors` the checkpoint's extra tensors
    (those named `ood.*` are read). `judge(visual, audio, stats, timestamps)` -> DomainReport.

    A modality's verdict: score = the largest score/threshold ratio over its views (so its threshold is 1), the
    flagged seconds those where any view's segment score passes its segment threshold."""

    def __init__(self, config: dict, tensors: dict[str, torch.Tensor] | None = None):
        if config.get("format") != FORMAT:
            raise OODConfigError(f"ood: format {config.get('format')!r} is not {FORMAT}")
        tensors = tensors or {}
        try:
            self.parts = {m: (list(map(int, config[m]["parts"])) if config[m].get("parts") else None)
                          for m in MODALITIES}
            self.views = {m: [View.from_dict(v, tensors, f"{TENSOR_PREFIX}{m}.{i}")
                              for i, v in enumerate(config[m]["views"])] for m in MODALITIES}
            checks = config.get("checks", {})
            self.noise_flatness = float(checks.get("noise_flatness", DEFAULT_NOISE_FLATNESS))
        except (KeyError, TypeError, ValueError, AttributeError) as exc:
            raise OODConfigError(f"ood: missing or bad entry {exc}") from None
        if not all(self.views.values()):
            raise OODConfigError("ood: every modality needs at least one view")
        self.config = config

    def ratios(self, visual, audio) -> dict[str, tuple[np.ndarray, np.ndarray]]:
        """{modality: (clip ratio per view [V], foreign segments [T] bool)}."""
        inputs = view_inputs(visual, audio, self.parts)
        out = {}
        for m in MODALITIES:
            ratios, foreign = [], np.zeros(len(inputs[m]["final"]), bool)
            for v in self.views[m]:
                seg = v.segment_scores(inputs[m])
                ratios.append(seg.mean() / v.threshold)
                foreign |= seg > v.segment_threshold
            out[m] = (np.asarray(ratios), foreign)
        return out

    def judge(self, visual, audio, stats: signal_checks.SignalStats | None = None,
              timestamps: Sequence[float] | None = None) -> DomainReport:
        r = self.ratios(visual, audio)
        T = len(r["picture"][1])
        times = np.arange(T) + 0.5 if timestamps is None else np.asarray(timestamps, np.float64)
        verdicts = {m: _verdict(float(r[m][0].max()), 1.0, r[m][1], times) for m in MODALITIES}
        return _with_checks(DomainReport(verdicts["picture"], verdicts["sound"], True), stats, times,
                            self.noise_flatness)


@dataclass
class View:
    """One view of a modality: which inputs (concatenated), the model that scores its segments (a Gaussian: the
    RMS z; a Contrast: the probability of being foreign) and its thresholds."""

    inputs: list[str]
    model: "Gaussian | Contrast"
    threshold: float
    segment_threshold: float

    @property
    def dim(self) -> int:
        return len(self.model.mean)

    def segment_scores(self, inputs: dict[str, np.ndarray]) -> np.ndarray:
        return self.model.score(self.stack(inputs))

    def stack(self, inputs: dict[str, np.ndarray]) -> np.ndarray:
        missing = [k for k in self.inputs if k not in inputs]
        if missing:
            raise ValueError(f"view {'+'.join(self.inputs)} needs {', '.join(missing)}, which these encoders do "
                             "not give: calibrated for other encoders")
        x = np.concatenate([np.asarray(inputs[k], np.float64) for k in self.inputs], axis=1)
        if x.shape[1] != self.dim:
            raise ValueError(f"view {'+'.join(self.inputs)} has dim {x.shape[1]}, the calibration "
                             f"{self.dim}: calibrated for other encoders")
        return x

    @classmethod
    def from_dict(cls, d: dict, tensors: dict[str, torch.Tensor], prefix: str) -> "View":
        kind = d.get("kind", "gaussian")
        if kind == "gaussian":
            model = Gaussian.from_tensors(tensors, prefix, d["residual_variance"])
        elif kind == "contrast":
            model = Contrast.from_tensors(tensors, prefix)
        else:
            raise OODConfigError(f"ood: unknown view kind {kind!r} (expected 'gaussian' or 'contrast')")
        return cls(list(d["inputs"]), model, float(d["threshold"]), float(d["segment_threshold"]))


class LegacyDetector:
    """The first format: mean |z| of clip-pooled features against per-dimension training statistics. It cannot
    tell picture from sound, so one score flags both; the signal checks are added with default thresholds."""

    def __init__(self, config: dict):
        try:
            self.stats = {k: np.asarray(config[k], np.float64)
                          for k in ("visual_mean", "visual_std", "audio_mean", "audio_std")}
            self.threshold = float(config["threshold"])
        except (KeyError, TypeError, ValueError) as exc:
            raise OODConfigError(f"ood: missing or bad entry {exc} (format 1)") from None

    def score(self, visual, audio) -> float:
        v, a = pooled(visual, audio)
        z_v = np.abs((v - self.stats["visual_mean"]) / self.stats["visual_std"])
        z_a = np.abs((a - self.stats["audio_mean"]) / self.stats["audio_std"])
        return float(np.concatenate([z_v, z_a]).mean())

    def judge(self, visual, audio, stats: signal_checks.SignalStats | None = None,
              timestamps: Sequence[float] | None = None) -> DomainReport:
        score = self.score(visual, audio)
        T = torch.as_tensor(visual).shape[0]
        times = np.arange(T) + 0.5 if timestamps is None else np.asarray(timestamps, np.float64)
        no_seconds = np.zeros(T, bool)
        v = _verdict(score, self.threshold, no_seconds, times)
        s = _verdict(score, self.threshold, no_seconds, times)
        return _with_checks(DomainReport(v, s, True), stats, times, DEFAULT_NOISE_FLATNESS)


class Uncalibrated:
    """No calibration at all: only the signal checks speak (with their default thresholds)."""

    def judge(self, visual, audio, stats: signal_checks.SignalStats | None = None,
              timestamps: Sequence[float] | None = None) -> DomainReport:
        T = torch.as_tensor(visual).shape[0]
        times = np.arange(T) + 0.5 if timestamps is None else np.asarray(timestamps, np.float64)
        clear = lambda: Verdict(False, 0.0, None)   # noqa: E731
        return _with_checks(DomainReport(clear(), clear(), False), stats, times, DEFAULT_NOISE_FLATNESS)


def load(config: dict | None, tensors: dict[str, torch.Tensor] | None = None
         ) -> Detector | LegacyDetector | Uncalibrated:
    """The detector of a checkpoint's `ood` entry (format 2 with its `ood.*` tensors, format 1 without a `format`
    key, or none)."""
    if not config:
        return Uncalibrated()
    if not isinstance(config, dict):
        raise OODConfigError(f"ood: expected a JSON object, got {type(config).__name__}")
    if "format" not in config:
        return LegacyDetector(config)
    return Detector(config, tensors)


def _verdict(score: float, threshold: float, foreign: np.ndarray, times: np.ndarray) -> Verdict:
    flagged = bool(score > threshold)
    return Verdict(flagged, score, threshold, "unlike" if flagged else None,
                   [round(float(t), 2) for t in times[foreign]])


def _with_checks(report: DomainReport, stats: signal_checks.SignalStats | None, times: np.ndarray,
                 noise_flatness: float) -> DomainReport:
    """Apply the signal checks: a check that fires sets the reason (it says more than "unlike") and its seconds."""
    if stats is None:
        return report
    blank = stats.frame_std < signal_checks.BLANK_STD
    if blank.mean() >= MAJORITY:
        _override(report.picture, "blank", blank, times)
    silent = stats.rms < signal_checks.SILENCE_RMS
    noisy = (stats.flatness > noise_flatness) & ~silent
    if not stats.has_audio:
        _override(report.sound, "no_audio", np.ones(len(times), bool), times)
    elif silent.mean() >= 1.0:
        _override(report.sound, "silent", silent, times)
    elif noisy.mean() >= MAJORITY:
        _override(report.sound, "noise", noisy, times)
    return report


def _override(v: Verdict, reason: str, where: np.ndarray, times: np.ndarray) -> None:
    v.flagged, v.reason = True, reason
    v.seconds = sorted(set(v.seconds) | {round(float(t), 2) for t in times[where]})


# ------------------------------------------------------------------------------------------------ calibration

def pooled(visual, audio) -> tuple[np.ndarray, np.ndarray]:
    """Clip-pooled features (the first format's)."""
    visual, audio = torch.as_tensor(visual).float(), torch.as_tensor(audio).float()
    return visual.mean(dim=(0, 1)).numpy(), audio.mean(dim=0).numpy()


def _with_margin(score: float, margin: float, probability: bool) -> float:
    """`score` raised by `margin`: a distance is multiplied by it; a probability (a contrast view's score) has its
    odds multiplied, so the threshold stays below 1 however close to 1 the calibration's quantile is (0.905 x 1.15
    would be 1.04, a threshold no segment can reach; on the odds it is 0.917)."""
    if not probability:
        return score * margin
    if score >= 1.0:
        return 1.0
    odds = score / (1.0 - score) * margin
    return odds / (1.0 + odds)


def _thresholds(held_segment_scores: list[np.ndarray], quantile: float, margin: float,
                probability: bool = False) -> dict:
    """A view's thresholds from the held-back clips' segment scores: the clip threshold is the `quantile` of their
    clip scores (mean over segments) raised by `margin`, the segment threshold SEGMENT_QUANTILE of all segments'
    (`_with_margin`: on the odds when the scores are probabilities)."""
    clip_scores = np.array([x.mean() for x in held_segment_scores])
    raise_ = lambda x: round(_with_margin(float(x), margin, probability), 4)   # noqa: E731
    return {"threshold": raise_(np.quantile(clip_scores, quantile)),
            "segment_threshold": raise_(np.quantile(np.concatenate(held_segment_scores), SEGMENT_QUANTILE)),
            "calibration_max": round(float(clip_scores.max()), 4)}


def calibrate(features: Iterable[dict], views: dict | None = None, quantile: float = DEFAULT_QUANTILE,
              margin: float = DEFAULT_MARGIN, parts: dict[str, Sequence[int] | None] | None = None,
              contrast: dict[str, Sequence[dict]] | None = None) -> tuple[dict, dict[str, torch.Tensor]]:
    """The `ood` entry (format 2) and its tensors, from in-domain clips held out from training.

    Each item is `{"visual": [T,P,Dv], "audio": [T,Da]}`, optionally `"stats": SignalStats` (the signal measures of
    its decoded clip; with them the noise check's threshold is set above every in-domain clip's flatness, else it
    keeps its default). `parts` gives each modality's joined-encoder part widths (`part_dims`), which add the
    per-part views. `views` defaults to VIEWS; a view whose inputs the clips lack is left out. Alternate clips fit
    the Gaussians, the others set the thresholds, so thresholds are set on clips the Gaussians did not see: the
    `quantile` of those clips' scores times `margin` (segments: SEGMENT_QUANTILE). `contrast` gives, per modality,
    foreign clips (same item format; only that modality is read): a `Contrast` view is fitted to tell them from
    the fit clips' segments and thresholded on the other clips like the Gaussian views. The section is small
    JSON; the arrays are the tensors, named `ood.<modality>.<view index>.<array>`.
    """
    items = list(features)
    if len(items) < 10:
        raise ValueError(f"calibration needs at least 10 in-domain clips, got {len(items)}")
    views = VIEWS if views is None else views
    parts = parts or {}
    inputs = [view_inputs(f["visual"], f["audio"], parts) for f in items]
    fit_idx, held_idx = range(0, len(items), 2), range(1, len(items), 2)
    out: dict = {"format": FORMAT, "n_clips": len(items), "n_fit": len(fit_idx), "n_threshold": len(held_idx),
                 "quantile": quantile, "margin": margin}
    tensors: dict[str, torch.Tensor] = {}
    for m in MODALITIES:
        out[m] = {"parts": list(map(int, parts[m])) if parts.get(m) else None, "views": []}
        for names, components in views[m]:
            if not all(k in x[m] for x in inputs for k in names):
                continue
            stack = lambda i: np.concatenate([inputs[i][m][k] for k in names], axis=1)   # noqa: E731
            g = Gaussian.fit(np.concatenate([stack(i) for i in fit_idx]), components).rounded()
            tensors.update(g.tensors(f"{TENSOR_PREFIX}{m}.{len(out[m]['views'])}"))
            out[m]["views"].append({
                "inputs": list(names), "dim": int(len(g.mean)), "components": int(len(g.variances)),
                "residual_variance": float(g.residual_variance),
                **_thresholds([g.score(stack(i)) for i in held_idx], quantile, margin)})
        foreign_items = (contrast or {}).get(m) or []
        if foreign_items:
            foreign = [view_inputs(f["visual"], f["audio"], parts)[m] for f in foreign_items]
            names = next((n for n in CONTRAST_INPUTS[m] if all(k in x[m] for x in inputs for k in n)
                          and all(k in x for x in foreign for k in n)), None)
            if names is None:
                raise ValueError(f"contrast set for the {m}: the clips lack every input of {CONTRAST_INPUTS[m]}")
            stack = lambda x: np.concatenate([x[k] for k in names], axis=1)   # noqa: E731
            c = Contrast.fit(np.concatenate([stack(inputs[i][m]) for i in fit_idx]),
                             np.concatenate([stack(x) for x in foreign]), CONTRAST_L2).rounded()
            tensors.update(c.tensors(f"{TENSOR_PREFIX}{m}.{len(out[m]['views'])}"))
            out[m]["views"].append({
                "kind": "contrast", "inputs": list(names), "dim": int(len(c.mean)), "n_contrast_clips": len(foreign),
                "l2": CONTRAST_L2, **_thresholds([c.score(stack(inputs[i][m])) for i in held_idx], quantile, margin,
                                                probability=True)})
    flat = [f["stats"].flatness[f["stats"].rms >= signal_checks.SILENCE_RMS] for f in items if "stats" in f]
    checks = {"blank_std": signal_checks.BLANK_STD, "silence_rms": signal_checks.SILENCE_RMS,
              "noise_flatness": DEFAULT_NOISE_FLATNESS}
    if flat:
        per_clip = [float(np.median(x)) if len(x) else 0.0 for x in flat]
        checks["noise_flatness"] = round(max(DEFAULT_NOISE_FLATNESS, float(np.max(per_clip)) * 1.5), 4)
        checks["calibration_flatness_max"] = round(float(np.max(per_clip)), 4)
    out["checks"] = checks
    return out, tensors


def score(config: dict | None, visual: torch.Tensor, audio: torch.Tensor,
          tensors: dict[str, torch.Tensor] | None = None) -> float:
    """The clip's feature score (0.0 without calibration): format 2's larger score/threshold ratio, format 1's
    mean |z|."""
    return detector_score(load(config, tensors), visual, audio)


def detector_score(detector, visual: torch.Tensor, audio: torch.Tensor) -> float:
    """`score` for a detector already loaded (a pipeline loads its checkpoint's once)."""
    if isinstance(detector, LegacyDetector):
        return detector.score(visual, audio)
    return detector.judge(visual, audio).score
