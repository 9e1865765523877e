"""Matplotlib figures of one answer's clues and of an evaluation run (the demo's plots).

Every function takes plain arrays (what `mcd.serving.pipeline` returns) and returns a `matplotlib.figure.Figure`.
Figures are built with the object-oriented API (`Figure()` + an Agg canvas), never through `pyplot`: they are
not registered in pyplot's global figure list, so they cannot leak when a server draws thousands of them, and
drawing in several threads at once (the Gradio queue runs events concurrently) is safe. Figures are freed by
garbage collection like any object; `close(fig)` releases one early.

Shapes: T segments, P = 49 patches of a 7x7 grid in row-major order, K text objects.
Clue weights are attention shares: visual_low sums to 1 over all T·P patches, the temporal clues over T.
"""
from __future__ import annotations

import math
from typing import TYPE_CHECKING, Mapping, Sequence

import matplotlib

matplotlib.use("Agg")  # no display on servers; must precede any pyplot import (Gradio imports pyplot later)

import numpy as np  # noqa: E402
from matplotlib import colormaps  # noqa: E402
from matplotlib.backends.backend_agg import FigureCanvasAgg  # noqa: E402
from matplotlib.figure import Figure  # noqa: E402
from matplotlib.ticker import MaxNLocator  # noqa: E402

from mcd.serving.shown_clues import (EVIDENCE_TITLE, QUESTION_TOKENS, ShownClue,  # noqa: E402
                                     evidence_quality_line, spatial_quality_line, spatial_title,
                                     temporal_quality_line, temporal_title)

if TYPE_CHECKING:
    from mcd.serving.pipeline import QuestionResult

STUDENT_COLOR = "#1f77b4"
TEACHER_COLOR = "#ff7f0e"
AUDIO_COLOR = "#2ca02c"
VISUAL_COLOR = "#9467bd"
HEATMAP_CMAP = "turbo"
HEATMAP_ALPHA = 0.65     # blend weight at the most attended patch; 0 where attention is 0
DPI = 100


class VizInputError(ValueError):
    """Arrays whose shapes do not fit the figure asked for (the message names the array and the shapes)."""


# ------------------------------------------------------------------------------------------------ helpers

def new_figure(width: float, height: float, **margins: float) -> Figure:
    """A pyplot-free figure with an Agg canvas (see module docstring) and fixed margins.

    Fixed margins rather than a layout engine: constrained/tight layout doubles the drawing time of these small
    figures, and the demo draws six of them per selected question.
    """
    fig = Figure(figsize=(width, height), dpi=DPI)
    FigureCanvasAgg(fig)
    if margins:
        fig.subplots_adjust(**margins)
    return fig


def close(fig: Figure) -> None:
    """Drop the figure's artists now instead of waiting for garbage collection."""
    fig.clear()


def figure_to_array(fig: Figure) -> np.ndarray:
    """The rendered figure as uint8 RGB [H, W, 3] (for tests and for image outputs)."""
    canvas = fig.canvas if isinstance(fig.canvas, FigureCanvasAgg) else FigureCanvasAgg(fig)
    canvas.draw()
    return np.asarray(canvas.buffer_rgba())[..., :3].copy()


def _as_1d(name: str, values, length: int | None = None) -> np.ndarray:
    arr = np.asarray(values, dtype=np.float64)
    if arr.ndim != 1 or (length is not None and arr.shape[0] != length):
        want = f"[{length}]" if length is not None else "1-D"
        raise VizInputError(f"{name} must be {want}, got shape {list(arr.shape)}")
    return arr


def _grid_side(p: int) -> int:
    side = int(round(math.sqrt(p)))
    if side * side != p:
        raise VizInputError(f"visual attention has {p} patches per segment, not a square grid (7x7 = 49)")
    return side


def _few_ticks(axis, n: int = 4) -> None:
    """At most n numeric ticks: each tick is a handful of artists, and they dominate drawing time here."""
    axis.set_major_locator(MaxNLocator(n))


def _caption(fig: Figure, text: str | None, fontsize: float = 7.0) -> None:
    """One line at the bottom of the figure (how often such clues were right on the benchmark)."""
    if text:
        width_pt = fig.get_figwidth() * 72 * 0.97
        fontsize = min(fontsize, width_pt / (0.56 * len(text)))     # a long line shrinks rather than clips
        fig.text(0.5, 0.012, text, ha="center", va="bottom", fontsize=fontsize, color="0.25")


def _message(ax, text: str) -> None:
    ax.text(0.5, 0.5, text, ha="center", va="center", transform=ax.transAxes, color="0.4")
    ax.set_axis_off()


# ------------------------------------------------------------------------------------------------ answers

def top5_bars(top5: Sequence[tuple[str, float]], title: str = "Student top-5") -> Figure:
    """Horizontal bars of the answer candidates, best on top, with their probabilities written beside."""
    fig = new_figure(4.6, 2.4, left=0.3, bottom=0.2, top=0.87)
    ax = fig.add_subplot()
    if not top5:
        _message(ax, "no answers")
        return fig
    labels = [a for a, _ in top5][::-1]
    probs = [float(p) for _, p in top5][::-1]
    colors = ["0.7"] * (len(probs) - 1) + [STUDENT_COLOR]
    ax.barh(labels, probs, color=colors)
    for y, p in enumerate(probs):
        ax.text(p, y, f" {p:.1%}", va="center", fontsize=8)
    ax.set_xlim(0, max(probs) * 1.3 + 1e-6)  # room for the labels
    ax.set_xlabel("probability")
    _few_ticks(ax.xaxis)
    ax.set_title(title, fontsize=10)
    return fig


def teacher_student(student_probs, teacher_probs, answers: Sequence[str], k: int = 5,
                    agree: bool | None = None, js: float | None = None) -> Figure:
    """The student's and the teacher's distributions side by side over the top-k answers of either.

    Why the union: when the two heads disagree, the interesting answers are the ones either of them believes in.
    """
    s = _as_1d("student_probs", student_probs)
    t = _as_1d("teacher_probs", teacher_probs, len(s))
    if len(answers) != len(s):
        raise VizInputError(f"{len(answers)} answer names for {len(s)} probabilities")
    picked = sorted(set(np.argsort(-s)[:k].tolist()) | set(np.argsort(-t)[:k].tolist()),
                    key=lambda i: -max(s[i], t[i]))
    height = 0.28 * len(picked) + 1.0
    fig = new_figure(4.8, height + 0.3, left=0.3, bottom=0.85 / (height + 0.3), top=1 - 0.3 / (height + 0.3))
    ax = fig.add_subplot()
    y = np.arange(len(picked))[::-1]
    h = 0.4
    ax.barh(y + h / 2, s[picked], height=h, color=STUDENT_COLOR, label="student (answers)")
    ax.barh(y - h / 2, t[picked], height=h, color=TEACHER_COLOR, label="teacher (AV fusion)")
    ax.set_yticks(y, [answers[i] for i in picked], fontsize=8)
    ax.set_xlim(0, min(1.0, max(s[picked].max(), t[picked].max()) * 1.2 + 1e-6))
    ax.set_xlabel("probability")
    _few_ticks(ax.xaxis)
    fig.legend(fontsize=7, loc="lower center", ncol=2, frameon=False)
    title = "Student vs teacher"
    if agree is not None:
        title += " - agree" if agree else " - disagree"
    if js is not None:
        title += f" (JS {js:.3f} bits)"
    ax.set_title(title, fontsize=10)
    return fig


def text_objects(objects: Sequence[str], weights) -> Figure:
    """How much the question's hint attended to each text object (its keywords and its two type words)."""
    height = 0.3 * max(len(objects), 1) + 1.2
    fig = new_figure(4.2, height, left=0.3, bottom=0.7 / height, top=1 - 0.3 / height)
    ax = fig.add_subplot()
    if len(objects) == 0:
        _message(ax, "this question has no text objects")
        return fig
    w = _as_1d("object weights", weights, len(objects))
    y = np.arange(len(objects))[::-1]
    ax.barh(y, w, color="#8c564b")
    ax.set_yticks(y, list(objects), fontsize=8)
    for yy, v in zip(y, w):
        ax.text(v, yy, f" {v:.2f}", va="center", fontsize=8)
    ax.set_xlim(0, max(1.0, float(w.max()) * 1.2))
    ax.set_xlabel("attention", labelpad=1)
    _few_ticks(ax.xaxis)
    ax.set_title("Text objects", fontsize=10)
    _caption(fig, "used: how much the question drew on each word; benchmark: not measured", fontsize=6.5)
    return fig


# ------------------------------------------------------------------------------------------------ clues

def temporal_clues(timestamps, audio_low, audio_high, visual_low, visual_high,
                   duration: float | None = None, shown_audio=None, attention=None, sounding=None,
                   title: str | None = None, caption: str | None = None) -> Figure:
    """Which seconds the model listened to and looked at: low level (unimodal) and high level (associated).

    `visual_low` may be [T, P] (patch attention; summed over patches here) or already [T]. With `shown_audio` [T]
    (the demo's audio clue, mcd.serving.shown_clues) the audio panel draws it instead: `attention` [T] (the
    referent query's weights over all seconds) as bars, solid inside the seconds the read-out `sounding` [T] says
    the keyword sounds in (shaded, P > 0.5), faint outside; the question words' audio_high as a thin grey line.
    `title` says what the clue is, `caption` how often such clues were right on the benchmark (one line each).
    """
    ts = _as_1d("timestamps", timestamps)
    n = len(ts)
    vl = np.asarray(visual_low, dtype=np.float64)
    if vl.ndim == 2:
        if vl.shape[0] != n:
            raise VizInputError(f"visual_low must be [T={n}, P], got shape {list(vl.shape)}")
        vl = vl.sum(axis=1)
    series = {"audio": (_as_1d("audio_low", audio_low, n), _as_1d("audio_high", audio_high, n), AUDIO_COLOR),
              "visual": (_as_1d("visual_low", vl, n), _as_1d("visual_high", visual_high, n), VISUAL_COLOR)}
    fig = new_figure(7.6, 3.5, left=0.09, right=0.98, bottom=0.19 if caption else 0.13, top=0.9)
    axes = fig.subplots(2, 1, sharex=True)
    end = float(duration) if duration else float(ts[-1] + (ts[0] if n else 0.5))
    width = (end / n) * 0.8 if n else 0.5
    if shown_audio is not None:
        _shown_audio_panel(axes[0], ts, width, _as_1d("shown_audio", shown_audio, n),
                           None if attention is None else _as_1d("attention", attention, n),
                           None if sounding is None else _as_1d("sounding", sounding, n),
                           series["audio"][1])
        series.pop("audio")
        axes_left = axes[1:]
        axes[1].text(0.01, 0.95, "visual seconds: not validated (flat on the benchmark)",
                     transform=axes[1].transAxes, fontsize=6.5, va="top", color="0.35")
    else:
        axes_left = axes
    for ax, (name, (low, high, color)) in zip(axes_left, series.items()):
        ax.bar(ts, low, width=width, color=color, alpha=0.35, label="low level (unimodal)")
        ax.plot(ts, high, color=color, marker="o", lw=1.8, label="high level (associated)")
        ax.set_ylabel(name)
        _few_ticks(ax.yaxis, 3)
        ax.set_ylim(0, max(low.max(), high.max(), 1e-6) * 1.5)
        ax.legend(fontsize=7, loc="upper right", ncol=2, framealpha=0.9)
    axes[-1].set_xlim(0, end)
    axes[-1].set_xlabel("time (s)", labelpad=1)
    axes[0].set_title(title or "Temporal clues: where the model listened and looked",
                      fontsize=10 if not title or len(title) < 80 else 8.5)
    _caption(fig, caption)
    return fig


def _shown_audio_panel(ax, ts: np.ndarray, width: float, shown: np.ndarray, attention: np.ndarray | None,
                       sounding: np.ndarray | None, question_audio: np.ndarray) -> None:
    """The audio panel of the demo's temporal clue: the read-out's sounding seconds shaded, the attention as bars
    (solid where it is shown, faint where the read-out says the keyword is silent), the question words' curve."""
    bars = attention if attention is not None else shown
    scale = bars.sum() or 1.0
    kept = shown > 0
    if sounding is not None:
        for t, on in zip(ts, sounding > 0.5):
            if on:
                ax.axvspan(t - width / 1.6, t + width / 1.6, color="#ffe08a", alpha=0.5, lw=0)
    ax.bar(ts[kept], bars[kept] / scale, width=width, color=AUDIO_COLOR, label="where it listened (shown)")
    if (~kept).any():
        ax.bar(ts[~kept], bars[~kept] / scale, width=width, color=AUDIO_COLOR, alpha=0.25,
               label="outside the sounding seconds")
    q = question_audio / (question_audio.sum() or 1.0)
    ax.plot(ts, q, color="0.45", lw=1.0, marker=".", label="question words (audio_high)")
    ax.set_ylabel("audio")
    _few_ticks(ax.yaxis, 3)
    ax.set_ylim(0, max(float((bars / scale).max()), float(q.max()), 1e-6) * 1.5)
    ax.legend(fontsize=6.5, loc="upper right", ncol=3, framealpha=0.9)


def upsample_grid(weights, height: int, width: int) -> np.ndarray:
    """A [side*side] patch grid (row-major) -> float32 [height, width], bilinear, values kept in range."""
    from PIL import Image

    w = np.asarray(weights, dtype=np.float32).reshape(-1)
    side = _grid_side(w.size)
    grid = Image.fromarray(w.reshape(side, side), mode="F")
    up = np.asarray(grid.resize((int(width), int(height)), Image.BILINEAR), dtype=np.float32)
    return np.clip(up, float(w.min()), float(w.max()))


def overlay_heatmap(frame: np.ndarray, weights, vmin: float = 0.0, vmax: float | None = None,
                    alpha: float = HEATMAP_ALPHA, cmap: str = HEATMAP_CMAP) -> np.ndarray:
    """Blend a patch-attention heatmap onto an RGB frame; uint8 [H, W, 3].

    The blend weight at each pixel is `alpha * (w - vmin) / (vmax - vmin)`: pixels at or below `vmin` (zero
    attention by default) keep the frame's exact colours (no global tint), so the picture stays readable and a
    red instrument is still red. Frames are RGB (decord/PyAV order) and stay RGB; nothing here swaps channels.
    """
    frame = np.asarray(frame)
    if frame.ndim != 3 or frame.shape[2] != 3 or frame.dtype != np.uint8:
        raise VizInputError(f"frame must be uint8 [H, W, 3], got {frame.dtype} {list(frame.shape)}")
    h, w = frame.shape[:2]
    heat = upsample_grid(weights, h, w)
    top = float(vmax) if vmax is not None else float(heat.max())
    span = top - float(vmin)
    norm = np.clip((heat - vmin) / span, 0.0, 1.0) if span > 0 else np.zeros_like(heat)
    colours = colormaps[cmap](norm)[..., :3]                  # float [H, W, 3] in 0..1
    a = (alpha * norm)[..., None]
    out = frame.astype(np.float32) / 255.0 * (1.0 - a) + colours * a
    return np.clip(np.rint(out * 255.0), 0, 255).astype(np.uint8)


def top_segments(visual_low, k: int = 3) -> list[int]:
    """Indices of the k segments with the most visual attention, in time order."""
    per_segment = np.asarray(visual_low, dtype=np.float64).sum(axis=1)
    best = np.argsort(-per_segment, kind="stable")[:k]
    return sorted(int(i) for i in best)


def spatial_heatmaps(frames: np.ndarray, visual_low, timestamps, k: int = 3, title: str | None = None,
                     caption: str | None = None) -> Figure:
    """Patch attention on the frames of the k most attended seconds (one colour scale across them).

    `visual_low` is any [T, P] map that sums to 1 over all T·P patches (the demo's: mcd.serving.shown_clues).
    `title` says what the map is, `caption` how often such maps were right on the benchmark (one line each)."""
    frames = np.asarray(frames)
    vl = np.asarray(visual_low, dtype=np.float64)
    ts = _as_1d("timestamps", timestamps)
    if frames.ndim != 4 or frames.shape[-1] != 3:
        raise VizInputError(f"frames must be uint8 [T, H, W, 3], got shape {list(frames.shape)}")
    if vl.ndim != 2 or vl.shape[0] != frames.shape[0] or len(ts) != frames.shape[0]:
        raise VizInputError(f"visual_low must be [T, P] with T = {frames.shape[0]} frames and timestamps, "
                            f"got {list(vl.shape)} and {len(ts)} timestamps")
    side = _grid_side(vl.shape[1])
    picked = top_segments(vl, k)
    # One colour scale for the shown frames, in multiples of uniform attention (1/(T*P) of the total): patches at
    # or below uniform get no overlay, full colour is reached at the top patch or at 2x uniform, whichever is
    # higher. So an uninformative (flat) attention draws almost nothing instead of tinting whole frames.
    total = float(vl.sum()) or 1.0
    uniform = total / vl.size
    peak = float(vl[picked].max()) / uniform
    vmax_ratio = max(peak, 2.0)
    fig = new_figure(3.0 * len(picked) + 0.8, 3.5 if caption else 3.3, left=0.02, right=0.98,
                     bottom=0.09 if caption else 0.04, top=0.84)
    axes = np.atleast_1d(fig.subplots(1, len(picked)))
    for ax, i in zip(axes, picked):
        ax.imshow(overlay_heatmap(frames[i], vl[i] / uniform, vmin=1.0, vmax=vmax_ratio))
        ax.set_title(f"t = {ts[i]:.1f} s  ({vl[i].sum() / total:.0%} of attention)", fontsize=9)
        ax.set_xticks([])
        ax.set_yticks([])
    scale = matplotlib.cm.ScalarMappable(cmap=HEATMAP_CMAP, norm=matplotlib.colors.Normalize(1.0, vmax_ratio))
    fig.colorbar(scale, ax=list(axes), shrink=0.8, label=f"attention, x uniform ({side}x{side} patches)")
    title = title or "Where the model looked (most attended seconds)"
    if peak < 1.5:
        title += f": nearly uniform (peak {peak:.2f}x), no spatial focus"
    fig.suptitle(title, fontsize=9 if len(title) > 90 else 10)
    _caption(fig, caption)
    return fig


EVIDENCE_FOR = "#2ca02c"
EVIDENCE_AGAINST = "#b0b0b0"


def evidence_clues(frames: np.ndarray, visual, audio, timestamps, k: int = 3, title: str | None = None,
                   caption: str | None = None) -> Figure:
    """What the answer rests on (mcd.serving.evidence): the positive visual evidence on the frames of the k seconds
    with the most of it, and the audio evidence per second as bars (green: removing that second would lower the
    answer's odds; grey: raise them).

    `visual` [T, P] and `audio` [T] are signed relevances in log-odds of the answer."""
    frames = np.asarray(frames)
    vis = np.asarray(visual, dtype=np.float64)
    ts = _as_1d("timestamps", timestamps)
    aud = _as_1d("audio evidence", audio, len(ts))
    if frames.ndim != 4 or frames.shape[-1] != 3:
        raise VizInputError(f"frames must be uint8 [T, H, W, 3], got shape {list(frames.shape)}")
    if vis.ndim != 2 or vis.shape[0] != frames.shape[0] or len(ts) != frames.shape[0]:
        raise VizInputError(f"visual evidence must be [T, P] with T = {frames.shape[0]} frames and timestamps, "
                            f"got {list(vis.shape)} and {len(ts)} timestamps")
    pos = np.clip(vis, 0.0, None)
    picked = top_segments(pos, k)
    fig = new_figure(3.0 * len(picked) + 0.8, 4.9 if caption else 4.7, left=0.07, right=0.98,
                     bottom=0.1 if caption else 0.07, top=0.88)
    grid = fig.add_gridspec(2, len(picked), height_ratios=[2.2, 1.0], hspace=0.35)
    top = float(pos[picked].max())
    for col, i in enumerate(picked):
        ax = fig.add_subplot(grid[0, col])
        ax.imshow(overlay_heatmap(frames[i], pos[i], vmin=0.0, vmax=top if top > 0 else None))
        share = pos[i].sum() / (pos.sum() or 1.0)
        ax.set_title(f"t = {ts[i]:.1f} s  ({share:.0%} of the picture's evidence)", fontsize=8)
        ax.set_xticks([])
        ax.set_yticks([])
    ax = fig.add_subplot(grid[1, :])
    width = float(np.median(np.diff(ts))) * 0.8 if len(ts) > 1 else 0.5
    ax.bar(ts, aud, width=width, color=[EVIDENCE_FOR if v > 0 else EVIDENCE_AGAINST for v in aud])
    ax.axhline(0.0, color="0.3", lw=0.6)
    ax.set_ylabel("sound\n(log-odds)", fontsize=7)
    ax.set_xlabel("time (s)", labelpad=1, fontsize=7)
    ax.tick_params(labelsize=7)
    _few_ticks(ax.yaxis, 3)
    if top <= 0:
        title = (title or "What the answer rests on") + ": no patch speaks for the answer"
    fig.suptitle(title or "What the answer rests on (removing these would lower its odds most)",
                 fontsize=9 if title and len(title) > 90 else 10)
    _caption(fig, caption)
    return fig


def association_matrix(association, timestamps=None) -> Figure:
    """The 2T x 2T self-attention of the association block: rows attend to columns; V = visual, A = audio."""
    m = np.asarray(association, dtype=np.float64)
    if m.ndim != 2 or m.shape[0] != m.shape[1] or m.shape[0] % 2:
        raise VizInputError(f"association must be [2T, 2T], got shape {list(m.shape)}")
    n = m.shape[0] // 2
    labels = [f"V{i + 1}" for i in range(n)] + [f"A{i + 1}" for i in range(n)]
    fig = new_figure(4.8, 4.4, left=0.12, right=0.92, bottom=0.13, top=0.93)
    ax = fig.add_subplot()
    im = ax.imshow(m, cmap="viridis", interpolation="nearest")
    for pos in (n - 0.5,):
        ax.axhline(pos, color="white", lw=1.5)
        ax.axvline(pos, color="white", lw=1.5)
    # first, middle and last segment of each block: every tick is a costly artist, and V/A + number is enough
    ticks = sorted({b * n + i for b in (0, 1) for i in (0, (n - 1) // 2, n - 1)})
    ax.set_xticks(ticks, [labels[i] for i in ticks], fontsize=7, rotation=90)
    ax.set_yticks(ticks, [labels[i] for i in ticks], fontsize=7)
    for (r, c), text in {(0, 0): "V->V", (0, 1): "V->A", (1, 0): "A->V", (1, 1): "A->A"}.items():
        ax.text(c * n + (n - 1) / 2, r * n + (n - 1) / 2, text, color="white", ha="center", va="center",
                fontsize=9, alpha=0.8, fontweight="bold")
    ax.set_xlabel("key segment")
    ax.set_ylabel("query segment")
    title = "Audio-visual association"
    if timestamps is not None and len(timestamps) == n > 1:
        title += f" (segments of {float(timestamps[1] - timestamps[0]):.1f} s)"
    ax.set_title(title, fontsize=10)
    fig.colorbar(im, ax=ax, shrink=0.8, label="attention")
    _caption(fig, "used (question-free); benchmark: not measured (no ground truth for it)")
    return fig


def question_figures(result: "QuestionResult", frames: np.ndarray, timestamps, duration: float | None = None,
                     answers: Sequence[str] | None = None) -> dict[str, Figure]:
    """All figures of one answered question, keyed by name (the order the demo shows them)."""
    from mcd.task.vocab import ANSWERS

    c = result.clues
    return {
        "top5": top5_bars(result.top5),
        "teacher_student": teacher_student(result.student_probs, result.teacher_probs, answers or ANSWERS,
                                           agree=result.agree, js=result.js_divergence),
        "temporal": temporal_figure(result, timestamps, duration),
        "heatmap": heatmap_figure(result, frames, timestamps),
        "evidence": evidence_figure(result, frames, timestamps),
        "association": association_matrix(c["association"], timestamps),
        "objects": text_objects(result.objects, c["objects"]),
    }


FIGURE_NAMES = ("top5", "teacher_student", "temporal", "heatmap", "evidence", "association", "objects")


def _shown(result: "QuestionResult", kind: str):
    """The result's shown clue of `kind` ("spatial"/"temporal"), or the question tokens' map for a result that
    carries none (an older caller's object)."""
    shown = getattr(result, "shown", None) or {}
    if kind in shown:
        return shown[kind]
    c = result.clues
    return ShownClue(QUESTION_TOKENS, None, c["visual_low"] if kind == "spatial" else c["audio_high"])


def heatmap_figure(result: "QuestionResult", frames: np.ndarray, timestamps) -> Figure:
    """The demo's spatial clue, titled with what it is and captioned with the checkpoint's benchmark numbers."""
    clue = _shown(result, "spatial")
    quality = getattr(result, "clue_quality", None)
    return spatial_heatmaps(frames, clue.weights, timestamps, title=spatial_title(clue),
                            caption=spatial_quality_line(clue.source, quality))


def evidence_figure(result: "QuestionResult", frames: np.ndarray, timestamps) -> Figure:
    """What the answer rests on, captioned with how often deleting its top parts beat deleting random ones; a note
    for a result that carries no evidence (an older caller's object)."""
    evidence = getattr(result, "evidence", None) or {}
    if "visual" not in evidence:
        fig = new_figure(6.0, 1.2)
        _message(fig.subplots(), "evidence not computed for this answer")
        return fig
    return evidence_clues(frames, evidence["visual"], evidence["audio"], timestamps,
                          title=EVIDENCE_TITLE,
                          caption=evidence_quality_line(getattr(result, "clue_quality", None)))


def temporal_figure(result: "QuestionResult", timestamps, duration: float | None = None) -> Figure:
    """The demo's temporal clue (audio: the shown clue; visual: the attention curves, which the benchmark found
    flat), titled with what it is and captioned with the checkpoint's benchmark numbers."""
    clue = _shown(result, "temporal")
    c = result.clues
    quality = getattr(result, "clue_quality", None)
    shown = None if clue.source == QUESTION_TOKENS else clue.weights
    return temporal_clues(timestamps, c["audio_low"], c["audio_high"], c["visual_low"], c["visual_high"],
                          duration=duration, shown_audio=shown, attention=clue.attention, sounding=clue.sounding,
                          title=temporal_title(clue), caption=temporal_quality_line(clue.source, quality))


# ------------------------------------------------------------------------------------------------ evaluation

def confusion_matrix(gold: Sequence[str], pred: Sequence[str], order: Sequence[str] | None = None,
                     max_labels: int = 24) -> Figure:
    """Counts of (correct answer, predicted answer), rows coloured by their share of the row.

    Only answers that occur are shown (in `order`, e.g. the canonical answer order); with more than
    `max_labels`, the most frequent ones are kept and the rest pooled into "other".
    """
    if len(gold) != len(pred):
        raise VizInputError(f"{len(gold)} gold answers but {len(pred)} predictions")
    fig = new_figure(6.4, 5.6, left=0.2, right=0.97, bottom=0.2, top=0.94)
    ax = fig.add_subplot()
    if not gold:
        _message(ax, "no rows to show")
        return fig
    counts: dict[str, int] = {}
    for a in list(gold) + list(pred):
        counts[a] = counts.get(a, 0) + 1
    rank = {a: i for i, a in enumerate(order or [])}
    labels = sorted(counts, key=lambda a: (rank.get(a, len(rank)), a))
    if len(labels) > max_labels:
        keep = set(sorted(labels, key=lambda a: -counts[a])[:max_labels - 1])
        labels = [a for a in labels if a in keep] + ["other"]
    index = {a: i for i, a in enumerate(labels)}
    other = index.get("other")
    m = np.zeros((len(labels), len(labels)), dtype=np.int64)
    for g, p in zip(gold, pred):
        m[index.get(g, other), index.get(p, other)] += 1
    share = m / np.maximum(m.sum(axis=1, keepdims=True), 1)
    im = ax.imshow(share, cmap="Blues", vmin=0, vmax=1, interpolation="nearest")
    if len(labels) <= 16:
        for r in range(len(labels)):
            for c in range(len(labels)):
                if m[r, c]:
                    ax.text(c, r, str(m[r, c]), ha="center", va="center", fontsize=7,
                            color="white" if share[r, c] > 0.5 else "black")
    ax.set_xticks(range(len(labels)), labels, rotation=90, fontsize=7)
    ax.set_yticks(range(len(labels)), labels, fontsize=7)
    ax.set_xlabel("predicted")
    ax.set_ylabel("correct answer")
    acc = float(np.trace(m)) / max(int(m.sum()), 1)
    ax.set_title(f"Confusion matrix ({len(gold)} questions, accuracy {acc:.1%})", fontsize=10)
    fig.colorbar(im, ax=ax, shrink=0.7, label="share of the row")
    return fig


def per_type_accuracy(accuracies: Mapping[str, float | None], counts: Mapping[str, int] | None = None,
                      teacher: Mapping[str, float | None] | None = None) -> Figure:
    """Accuracy per question type (None = not measured, drawn as an empty slot), optionally beside the teacher's."""
    types = list(accuracies)
    fig = new_figure(6.4, 3.4, left=0.1, right=0.98, bottom=0.2, top=0.9)
    ax = fig.add_subplot()
    if not types:
        _message(ax, "no question types")
        return fig
    x = np.arange(len(types))
    width = 0.4 if teacher else 0.7
    student = [accuracies[t] if accuracies[t] is not None else 0.0 for t in types]
    ax.bar(x - (width / 2 if teacher else 0), student, width=width, color=STUDENT_COLOR, label="student (MCD)")
    if teacher:
        tvals = [teacher.get(t) or 0.0 for t in types]
        ax.bar(x + width / 2, tvals, width=width, color=TEACHER_COLOR, label="teacher")
        ax.legend(fontsize=7)
    for i, t in enumerate(types):
        label = "n/a" if accuracies[t] is None else f"{accuracies[t]:.0%}"
        if counts is not None:
            label += f"\nn={counts.get(t, 0)}"
        ax.text(x[i] - (width / 2 if teacher else 0), student[i] + 0.02, label, ha="center", fontsize=7)
    ax.set_xticks(x, [t.replace("Audio-Visual", "AV").replace("/", "\n") for t in types], fontsize=7)
    ax.set_ylim(0, 1.15)
    ax.set_ylabel("accuracy")
    ax.set_title("Accuracy per question type", fontsize=10)
    ax.grid(axis="y", alpha=0.3)
    return fig
