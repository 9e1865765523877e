"""mcd.serving.viz: figures build from synthetic clue arrays, show what the arrays say, and keep the frames' colours.

The arrays are made by hand so the right picture is known: one attended patch, one attended second, a student
and a teacher that prefer different answers. Checks read the figure's own artists (image data, bar heights, tick
labels, line data), so they fail if a figure draws the wrong numbers, not merely if it fails to draw.
"""
from __future__ import annotations

import threading
from types import SimpleNamespace

import matplotlib
import matplotlib.pyplot as plt
import numpy as np
import pytest

from mcd.serving import viz
from mcd.task.questions import QUESTION_TYPES
from mcd.task.vocab import ANSWERS

T, P, SIDE = 10, 49, 7
RED = np.array([255, 0, 0], dtype=np.uint8)
BLUE = np.array([0, 0, 255], dtype=np.uint8)


def two_colour_frames(n: int = T, h: int = 112, w: int = 112) -> np.ndarray:
    """Top half pure red, bottom half pure blue: a channel swap (RGB <-> BGR) turns the top blue."""
    frames = np.zeros((n, h, w, 3), dtype=np.uint8)
    frames[:, : h // 2] = RED
    frames[:, h // 2:] = BLUE
    return frames


def one_hot_attention(segment: int, patch: int, n: int = T) -> np.ndarray:
    vl = np.zeros((n, P))
    vl[segment, patch] = 1.0
    return vl


def tick_labels(axis) -> list[str]:
    return [t.get_text() for t in axis.get_ticklabels()]


# ------------------------------------------------------------------------------------------------ heatmaps

def test_overlay_keeps_exact_colours_where_attention_is_zero():
    frame = two_colour_frames(1)[0]
    weights = np.zeros(P)
    weights[0] = 1.0                              # top-left patch only (row-major 7x7)
    out = viz.overlay_heatmap(frame, weights)
    assert out.dtype == np.uint8 and out.shape == frame.shape
    # far from the top-left cell: untouched, still red on top and blue below (no tint, no channel swap)
    assert (out[:56, 60:] == RED).all()
    assert (out[60:, :] == BLUE).all()
    # at the attended cell the colour moved toward the colormap's top colour
    # at the attended cell: frame * (1 - a) + colormap(level) * a with a = alpha * level (level 1 = the peak)
    level = viz.upsample_grid(weights, *frame.shape[:2])[8, 8]
    assert level > 0.9
    a = viz.HEATMAP_ALPHA * level
    expected = RED * (1 - a) + np.array(plt.get_cmap(viz.HEATMAP_CMAP)(level)[:3]) * 255 * a
    assert np.abs(out[8, 8].astype(float) - expected).max() <= 1.0


def test_overlay_of_zero_attention_is_the_frame_itself():
    frame = np.random.default_rng(0).integers(0, 256, (30, 40, 3), dtype=np.uint8)
    assert np.array_equal(viz.overlay_heatmap(frame, np.zeros(P)), frame)


def test_overlay_rejects_bad_inputs():
    with pytest.raises(viz.VizInputError, match="uint8"):
        viz.overlay_heatmap(np.zeros((8, 8, 3), dtype=np.float32), np.zeros(P))
    with pytest.raises(viz.VizInputError, match="square grid"):
        viz.overlay_heatmap(np.zeros((8, 8, 3), dtype=np.uint8), np.zeros(50))


def test_upsample_grid_maps_row_major_cells_to_their_place():
    w = np.zeros(P)
    w[SIDE - 1] = 1.0                              # row 0, last column = top-right cell
    up = viz.upsample_grid(w, 70, 70)
    assert up.shape == (70, 70)
    assert up[3, 66] == pytest.approx(1.0, abs=0.05)   # inside the top-right cell
    assert up[66, 3] == 0.0 and up[3, 3] == 0.0


def test_spatial_heatmaps_shows_the_three_most_attended_seconds_in_rgb():
    frames = two_colour_frames()
    vl = np.full((T, P), 1e-4)
    vl[7, 0], vl[2, 48], vl[5, 24] = 0.5, 0.3, 0.2     # seconds 7, 2, 5 carry the attention
    vl /= vl.sum()
    timestamps = np.arange(T) + 0.5
    assert viz.top_segments(vl) == [2, 5, 7]
    fig = viz.spatial_heatmaps(frames, vl, timestamps)
    axes = [ax for ax in fig.axes if ax.images and ax.get_title().startswith("t =")]
    assert [ax.get_title().split(" s")[0] for ax in axes] == ["t = 2.5", "t = 5.5", "t = 7.5"]
    first = np.asarray(axes[0].images[0].get_array())
    # segment 2 attends the bottom-right patch only: the top stays exactly red, the far bottom-left exactly blue
    assert (first[:40, :] == RED).all()
    assert (first[100:, :40] == BLUE).all()
    assert not (first[-5:, -5:] == BLUE).all()     # the attended corner is coloured
    assert viz.figure_to_array(fig).shape[2] == 3


def test_flat_attention_draws_no_overlay_and_says_so():
    frames = two_colour_frames()
    fig = viz.spatial_heatmaps(frames, np.full((T, P), 1.0 / (T * P)), np.arange(T) + 0.5)
    for ax in (a for a in fig.axes if a.images and a.get_title().startswith("t =")):
        assert np.array_equal(np.asarray(ax.images[0].get_array()), frames[0])
    assert "nearly uniform" in fig._suptitle.get_text()


def test_spatial_heatmaps_rejects_mismatched_shapes():
    with pytest.raises(viz.VizInputError, match="visual_low"):
        viz.spatial_heatmaps(two_colour_frames(), np.zeros((T - 1, P)), np.arange(T))


# ------------------------------------------------------------------------------------------------ other clues

def test_temporal_clues_plot_every_series_over_seconds():
    ts = np.arange(T) * 2.0 + 1.0                  # a 20-s clip: segments of 2 s
    audio_low, audio_high = np.eye(T)[3], np.eye(T)[4]
    visual_low, visual_high = one_hot_attention(6, 10), np.eye(T)[8]
    fig = viz.temporal_clues(ts, audio_low, audio_high, visual_low, visual_high, duration=20.0)
    audio_ax, visual_ax = fig.axes
    assert audio_ax.get_ylabel() == "audio" and visual_ax.get_ylabel() == "visual"
    assert np.array_equal(audio_ax.lines[0].get_xdata(), ts)
    assert np.argmax(audio_ax.lines[0].get_ydata()) == 4
    assert np.argmax([b.get_height() for b in audio_ax.patches]) == 3
    assert np.argmax([b.get_height() for b in visual_ax.patches]) == 6   # [T,P] summed over patches
    assert np.argmax(visual_ax.lines[0].get_ydata()) == 8
    assert visual_ax.get_xlim() == (0.0, 20.0)
    with pytest.raises(viz.VizInputError, match="audio_high"):
        viz.temporal_clues(ts, audio_low, audio_high[:5], visual_low, visual_high)


def test_association_matrix_labels_visual_and_audio_blocks():
    m = np.random.default_rng(1).random((2 * T, 2 * T))
    fig = viz.association_matrix(m, np.arange(T) + 0.5)
    ax = fig.axes[0]
    assert np.allclose(np.asarray(ax.images[0].get_array()), m)
    at = dict(zip(ax.get_yticks(), tick_labels(ax.yaxis)))
    assert at[0] == "V1" and at[T - 1] == f"V{T}" and at[T] == "A1" and at[2 * T - 1] == f"A{T}"
    assert dict(zip(ax.get_xticks(), tick_labels(ax.xaxis))) == at
    texts = {t.get_text() for t in ax.texts}
    assert {"V->V", "V->A", "A->V", "A->A"} <= texts
    with pytest.raises(viz.VizInputError):
        viz.association_matrix(np.zeros((5, 5)))


def test_teacher_student_shows_the_top_answers_of_either_head():
    student = np.full(len(ANSWERS), 1e-3)
    teacher = np.full(len(ANSWERS), 1e-3)
    student[ANSWERS.index("yes")] = 0.9
    teacher[ANSWERS.index("no")] = 0.8
    fig = viz.teacher_student(student / student.sum(), teacher / teacher.sum(), ANSWERS, k=1, agree=False, js=0.7)
    ax = fig.axes[0]
    assert set(tick_labels(ax.yaxis)) == {"yes", "no"}
    assert "disagree" in ax.get_title() and "0.700" in ax.get_title()
    heights = {(round(b.get_y(), 2), round(b.get_width(), 3)) for b in ax.patches}
    assert len(heights) == 4                       # two answers x two heads


def test_top5_and_text_objects_draw_their_values():
    fig = viz.top5_bars([("yes", 0.6), ("no", 0.3), ("two", 0.05), ("one", 0.03), ("left", 0.02)])
    ax = fig.axes[0]
    assert tick_labels(ax.yaxis)[-1] == "yes"      # best on top
    assert max(b.get_width() for b in ax.patches) == pytest.approx(0.6)
    fig = viz.text_objects(["violin", "Audio", "Counting"], [0.7, 0.2, 0.1])
    ax = fig.axes[0]
    by_height = sorted(zip(ax.get_yticks(), tick_labels(ax.yaxis)), reverse=True)
    assert [label for _, label in by_height] == ["violin", "Audio", "Counting"]   # question order, top down
    widths = {round(b.get_y() + b.get_height() / 2): b.get_width() for b in ax.patches}
    assert [widths[round(y)] for y, _ in by_height] == pytest.approx([0.7, 0.2, 0.1])
    empty = viz.text_objects([], np.zeros(0))
    assert "no text objects" in empty.axes[0].texts[0].get_text()
    with pytest.raises(viz.VizInputError):
        viz.text_objects(["violin"], [0.5, 0.5])


def test_question_figures_from_a_result_object():
    rng = np.random.default_rng(2)
    probs = rng.dirichlet(np.ones(len(ANSWERS)))
    result = SimpleNamespace(
        top5=[(ANSWERS[i], float(probs[i])) for i in np.argsort(-probs)[:5]], student_probs=probs,
        teacher_probs=rng.dirichlet(np.ones(len(ANSWERS))), agree=False, js_divergence=0.2,
        objects=["violin", "Audio", "Counting"],
        clues={"association": rng.random((2 * T, 2 * T)), "visual_low": rng.dirichlet(np.ones(T * P)).reshape(T, P),
               "audio_low": rng.dirichlet(np.ones(T)), "visual_high": rng.dirichlet(np.ones(T)),
               "audio_high": rng.dirichlet(np.ones(T)), "objects": rng.dirichlet(np.ones(3))})
    before = len(plt.get_fignums())
    figs = viz.question_figures(result, two_colour_frames(), np.arange(T) + 0.5, duration=10.0)
    assert tuple(figs) == viz.FIGURE_NAMES
    for fig in figs.values():
        image = viz.figure_to_array(fig)
        assert image.ndim == 3 and image.shape[0] > 100 and image.shape[1] > 100
    assert len(plt.get_fignums()) == before        # never registered with pyplot: nothing to leak


def test_figures_draw_in_parallel_threads():
    errors = []

    def work():
        try:
            for _ in range(3):
                viz.figure_to_array(viz.spatial_heatmaps(two_colour_frames(), one_hot_attention(1, 3),
                                                         np.arange(T) + 0.5))
        except Exception as exc:  # pragma: no cover - reported below
            errors.append(exc)

    threads = [threading.Thread(target=work) for _ in range(3)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert not errors


# ------------------------------------------------------------------------------------------------ evaluation

def test_confusion_matrix_counts_pairs_and_pools_rare_answers():
    gold = ["yes", "yes", "no", "two", "two", "two"]
    pred = ["yes", "no", "no", "two", "three", "two"]
    fig = viz.confusion_matrix(gold, pred, order=ANSWERS)
    ax = fig.axes[0]
    labels = tick_labels(ax.yaxis)
    assert labels == [a for a in ANSWERS if a in {"yes", "no", "two", "three"}]   # canonical order
    share = np.asarray(ax.images[0].get_array())
    assert share[labels.index("two"), labels.index("two")] == pytest.approx(2 / 3)
    assert share[labels.index("yes"), labels.index("no")] == pytest.approx(1 / 2)
    assert "accuracy 66.7%" in ax.get_title()
    pooled = viz.confusion_matrix([f"a{i}" for i in range(30)], [f"a{i}" for i in range(30)], max_labels=5)
    assert tick_labels(pooled.axes[0].yaxis)[-1] == "other" and len(tick_labels(pooled.axes[0].yaxis)) == 5
    with pytest.raises(viz.VizInputError):
        viz.confusion_matrix(["yes"], [])


def test_per_type_accuracy_marks_unmeasured_types():
    acc = {t: 0.5 for t in QUESTION_TYPES}
    acc["Visual/Location"] = None
    fig = viz.per_type_accuracy(acc, counts={t: 4 for t in QUESTION_TYPES}, teacher={t: 0.25 for t in QUESTION_TYPES})
    ax = fig.axes[0]
    texts = [t.get_text() for t in ax.texts]
    assert sum("n/a" in t for t in texts) == 1 and sum("50%" in t for t in texts) == 8
    assert len(ax.patches) == 2 * len(QUESTION_TYPES)


def _figure_texts(fig) -> str:
    """Every text the figure draws: its own texts, its suptitle and its axes' titles."""
    texts = [t.get_text() for t in fig.texts] + [ax.get_title() for ax in fig.axes]
    return " | ".join(texts)


def _shown_result(quality):
    """A result whose shown clues are the referent query's (keyword 'violin'), with a checkpoint record or none."""
    from mcd.serving.shown_clues import REFERENT_QUERY, ShownClue
    rng = np.random.default_rng(3)
    spatial = one_hot_attention(4, 10)
    attention = rng.dirichlet(np.ones(T))
    sounding = np.where(np.arange(T) < 5, 0.9, 0.1)
    clues = {"association": rng.random((2 * T, 2 * T)), "visual_low": rng.dirichlet(np.ones(T * P)).reshape(T, P),
             "audio_low": rng.dirichlet(np.ones(T)), "visual_high": rng.dirichlet(np.ones(T)),
             "audio_high": rng.dirichlet(np.ones(T)), "objects": rng.dirichlet(np.ones(3))}
    probs = rng.dirichlet(np.ones(len(ANSWERS)))
    return SimpleNamespace(
        top5=[(ANSWERS[i], float(probs[i])) for i in np.argsort(-probs)[:5]], student_probs=probs,
        teacher_probs=probs, agree=True, js_divergence=0.0, objects=["violin", "Audio", "Counting"], clues=clues,
        shown={"spatial": ShownClue(REFERENT_QUERY, "violin", spatial),
               "temporal": ShownClue(REFERENT_QUERY, "violin", attention * (sounding > 0.5), attention=attention,
                                     sounding=sounding)},
        clue_quality=quality)


def test_clue_figures_say_what_they_are_and_carry_the_checkpoints_numbers():
    quality = {"spatial": {"referent query": {"solo": 1.0, "multi": 0.866, "deletion_beats": 0.59}},
               "temporal": {"referent query": {"ratio": 1.52, "ceiling": 1.65, "deletion_beats": 0.48}}}
    figs = viz.question_figures(_shown_result(quality), two_colour_frames(), np.arange(T) + 0.5, duration=10.0)
    assert tuple(figs) == viz.FIGURE_NAMES
    heat = _figure_texts(figs["heatmap"])
    assert "used: where the model looked for 'violin'" in heat and "100% (solo) / 87% (multi)" in heat
    # the heatmap draws the shown map: its one attended second is the first frame shown, at full colour
    assert "t = 4.5 s  (100% of attention)" in heat
    temporal = _figure_texts(figs["temporal"])
    assert "listened for 'violin'" in temporal and "1.52x" in temporal and "not proof" in temporal
    assert "not measured" in _figure_texts(figs["association"]) and "not measured" in _figure_texts(figs["objects"])


def test_clue_figures_of_an_unmeasured_checkpoint_say_so():
    figs = viz.question_figures(_shown_result(None), two_colour_frames(), np.arange(T) + 0.5, duration=10.0)
    assert "not measured for this checkpoint" in _figure_texts(figs["heatmap"])
    assert "not measured for this checkpoint" in _figure_texts(figs["temporal"])


def test_temporal_panel_draws_the_shown_audio_solid_only_inside_the_sounding_seconds():
    attention = np.full(T, 0.1)
    sounding = np.where(np.arange(T) < 4, 0.9, 0.1)
    fig = viz.temporal_clues(np.arange(T) + 0.5, np.full(T, 0.1), np.full(T, 0.1), np.full((T, P), 1 / (T * P)),
                             np.full(T, 0.1), shown_audio=attention * (sounding > 0.5), attention=attention,
                             sounding=sounding, title="t", caption="c")
    audio_ax = fig.axes[0]
    solid = [b for b in audio_ax.patches if type(b).__name__ == "Rectangle" and b.get_alpha() in (None, 1.0)
             and b.get_height() > 0]
    assert len(solid) == 4


def test_evidence_figure_draws_the_strongest_seconds_and_the_sound_bars():
    visual = np.zeros((T, P))
    visual[7, 10], visual[2, 30], visual[5, 0] = 3.0, 1.0, -4.0          # the picture: seconds 7 and 2 speak for it
    audio = np.linspace(-1.0, 1.0, T)
    fig = viz.evidence_clues(two_colour_frames(), visual, audio, np.arange(T) + 0.5, k=2,
                             title="what the answer rests on", caption="benchmark: x")
    texts = _figure_texts(fig)
    assert "t = 2.5 s  (25% of the picture's evidence)" in texts and "t = 7.5 s  (75% of the picture's evidence)" in texts
    bars = fig.axes[-1].patches
    assert len(bars) == T and [b.get_height() for b in bars] == pytest.approx(audio)
    colours = {matplotlib.colors.to_hex(b.get_facecolor()) for b, v in zip(bars, audio) if v > 0}
    assert colours == {viz.EVIDENCE_FOR}
    flat = viz.evidence_clues(two_colour_frames(), -np.ones((T, P)), audio, np.arange(T) + 0.5)
    assert "no patch speaks for the answer" in _figure_texts(flat)
    with pytest.raises(viz.VizInputError):
        viz.evidence_clues(two_colour_frames(), np.zeros((T - 1, P)), audio, np.arange(T) + 0.5)


def test_evidence_figure_carries_the_checkpoints_deletion_numbers():
    quality = {"evidence": {"solo": 0.45, "multi": 0.41, "cells_deletion_beats": 0.876,
                            "seconds_deletion_beats": 0.846}}
    result = _shown_result(quality)
    result.evidence = {"visual": np.ones((T, P)), "audio": np.ones(T)}
    texts = _figure_texts(viz.question_figures(result, two_colour_frames(), np.arange(T) + 0.5)["evidence"])
    assert "top cells beats random in 88%" in texts and "top seconds in 85%" in texts
    assert "what the answer rests on" in texts
    result.clue_quality = None
    assert "not measured for this checkpoint" in _figure_texts(viz.evidence_figure(result, two_colour_frames(),
                                                                                 np.arange(T) + 0.5))
