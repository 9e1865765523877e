"""mcd.serving.clue_quality: box -> cells, the pointing game, the temporal share and the deletion arithmetic, on toy
arrays whose answers can be worked out by hand."""
from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from mcd.serving import clue_quality as cq


# ------------------------------------------------------------------------------------------------- geometry

def test_cells_are_row_major_32_pixels_on_a_224_frame():
    assert cq.cell_of(0) == (0, 0)
    assert cq.cell_of(8) == (1, 1)
    assert cq.cell_of(48) == (6, 6)
    c = cq.cell_centres()
    assert c.shape == (49, 2)
    assert tuple(c[0]) == (16.0, 16.0)
    assert tuple(c[10]) == (3 * 32 + 16.0, 1 * 32 + 16.0)   # row 1, column 3
    with pytest.raises(ValueError):
        cq.cell_of(49)


def test_box_inside_one_cell_gives_that_cell_with_half_a_cell_margin():
    # a small box inside cell (row 5, col 2): x 64..96, y 160..192
    cells = cq.box_cells((70, 165, 90, 185))
    assert np.flatnonzero(cells).tolist() == [5 * 7 + 2]
    # without a margin its centre-less box holds no cell centre at all
    assert not cq.box_cells((70, 165, 78, 175), margin=0).any()


def test_box_cells_are_the_cells_the_box_touches():
    # x 50..120 touches columns 1..3, y 150..200 touches rows 4..6
    cells = cq.box_cells((50, 150, 120, 200)).reshape(7, 7)
    rows, cols = np.nonzero(cells)
    assert sorted(set(rows.tolist())) == [4, 5, 6]
    assert sorted(set(cols.tolist())) == [1, 2, 3]
    assert cells.sum() == 9


def test_box_cells_scale_with_the_frame_and_reject_bad_boxes():
    # the same box in a 448-pixel frame covers the same cells as half of it in 224
    assert (cq.box_cells((100, 300, 240, 400), size=448) == cq.box_cells((50, 150, 120, 200))).all()
    with pytest.raises(ValueError):
        cq.box_cells((10, 10, 5, 20))


def test_box_coverage_is_the_covered_share_of_each_cell():
    cover = cq.box_coverage((32, 64, 80, 80)).reshape(7, 7)   # all of cell (2, 1), half of (2, 2), in row 2 only
    assert cover[2, 1] == pytest.approx(0.5) and cover[2, 2] == pytest.approx(0.25)
    assert cover.sum() == pytest.approx(48 * 16 / 32 ** 2)
    assert (cover > 0).sum() == 2
    assert cq.box_coverage((0, 0, 224, 224)).min() == pytest.approx(1.0)
    with pytest.raises(ValueError):
        cq.box_coverage((10, 10, 5, 20))


def test_oracle_cells_rank_the_player_by_coverage_then_the_nearest_cells():
    instrument = (150, 140, 210, 200)          # columns 4..6, rows 4..6; covers (5, 5) whole
    player = (150, 60, 210, 200)               # the person above it: rows 1..6
    order = list(cq.top_k(cq.oracle_cells(instrument, player), 49))
    assert order[:2] == [5 * 7 + 5, 4 * 7 + 5]     # covered whole by both, then by both but less of the instrument
    touched = np.flatnonzero(cq.box_coverage(player) > 0)
    assert set(order[:len(touched)]) == set(touched)
    # a fully covered person cell outranks an instrument cell the box barely touches
    assert order.index(2 * 7 + 5) < order.index(6 * 7 + 6)
    # the cells neither touches: the one next to the instrument before the far corner
    assert order.index(5 * 7 + 3) < order.index(0)


def test_pointing_hit_and_miss():
    box = (150, 140, 210, 200)                     # right player: columns 4..6, rows 4..6
    clue = np.zeros((10, 49))
    clue[3, 5 * 7 + 5] = 0.6                        # peak on (5, 5): inside
    clue[:, 0] = 0.04                               # 0.4 spread over time at (0, 0): less than the peak
    assert cq.peak_cell(clue) == 40
    assert cq.pointing_hit(clue, box)
    clue[:, 0] = 0.07                               # now (0, 0) sums to 0.7 over time: the peak moves off the box
    assert cq.peak_cell(clue) == 0
    assert not cq.pointing_hit(clue, box)


def test_pointing_counts_the_edge_cell_within_half_a_cell():
    # the box ends at x = 95: column 2 (64..96) holds its edge; column 3's centre (112) is 17 px away
    box = (40, 150, 95, 200)
    assert cq.pointing_hit(cq.one_hot(5 * 7 + 2), box)
    assert not cq.pointing_hit(cq.one_hot(5 * 7 + 3), box)
    assert cq.pointing_hit(cq.one_hot(5 * 7 + 3), box, margin=1.0)


def test_best_constant_cell_and_union():
    a = cq.box_cells((0, 0, 20, 20))                # cell 0
    b = cq.box_cells((0, 0, 60, 20))                # cells 0, 1
    c = cq.box_cells((40, 0, 60, 20))               # cell 1
    assert cq.best_constant_cell([a, b, c, c]) == 1
    assert np.flatnonzero(cq.union_cells([(0, 0, 20, 20), (200, 200, 220, 220)])).tolist() == [0, 48]


def test_slot_columns_and_restrict():
    assert np.flatnonzero(cq.slot_columns("left").reshape(7, 7)[0]).tolist() == [1]      # x 42 -> column 1
    assert np.flatnonzero(cq.slot_columns("middle").reshape(7, 7)[0]).tolist() == [3]
    assert np.flatnonzero(cq.slot_columns("right").reshape(7, 7)[0]).tolist() == [5]
    assert np.flatnonzero(cq.slot_columns("right", zoom=1.3).reshape(7, 7)[0]).tolist() == [6]   # 112 + 70*1.3
    m = np.zeros(49)
    m[0], m[7 * 4 + 1] = 0.9, 0.1                  # peak at (0, 0), a little at (4, 1)
    assert (cq.restrict(m, cq.slot_columns("right")) == m).all()        # nothing in the slot: unchanged
    assert cq.peak_cell(cq.restrict(m, cq.slot_columns("left"))) == 7 * 4 + 1
    with pytest.raises(ValueError):
        cq.slot_columns("offscreen")


# ------------------------------------------------------------------------------------------------- time

def test_segment_fractions():
    f = cq.segment_fractions([(2.5, 5.0), (9.0, 10.0)], 10.0, 10)
    assert f.tolist() == [0, 0, 0.5, 1, 1, 0, 0, 0, 0, 1]
    assert cq.segment_fractions([], 10.0, 5).tolist() == [0] * 5
    assert cq.segment_fractions([(0.0, 10.0)], 10.0, 4).tolist() == [1, 1, 1, 1]


def test_temporal_share_against_the_sounding_seconds_share():
    sounding = np.array([0, 0, 1, 1, 0.5])
    clue = np.array([0.1, 0.1, 0.3, 0.3, 0.2])
    s = cq.temporal_share(clue, sounding)
    assert s.share == pytest.approx(0.3 + 0.3 + 0.1)
    assert s.base == pytest.approx(2.5 / 5)
    assert s.ratio == pytest.approx(0.7 / 0.5)
    # a uniform clue gets exactly the base; an unnormalised read-out is normalised
    assert cq.temporal_share(np.ones(5), sounding).ratio == pytest.approx(1.0)
    assert cq.temporal_share(clue * 7, sounding).share == pytest.approx(0.7)
    # [T, P] clues are summed over patches
    assert cq.temporal_share(np.tile(clue[:, None], (1, 3)) / 3, sounding).share == pytest.approx(0.7)
    with pytest.raises(ValueError):
        cq.temporal_share(np.ones(4), sounding)
    with pytest.raises(ValueError):
        cq.temporal_share(-clue, sounding)


# ------------------------------------------------------------------------------------------------- deletion

def test_top_k_and_random_k():
    assert cq.top_k(np.array([0.1, 0.5, 0.2, 0.5]), 3).tolist() == [1, 3, 2]
    assert cq.top_k(np.arange(12).reshape(3, 4), 2).tolist() == [11, 10]
    r = cq.random_k(np.random.default_rng(0), 49, 3, 5)
    assert r.shape == (5, 3)
    assert all(len(set(row)) == 3 for row in r.tolist())
    with pytest.raises(ValueError):
        cq.top_k(np.ones(3), 4)


def test_replace_with_mean_patches_and_seconds_numpy_and_torch():
    T, P, D = 2, 3, 2
    v = np.arange(T * P * D, dtype=np.float64).reshape(T, P, D)
    out = cq.replace_with_mean(v, [1], axis=1)        # patch 1 of every frame -> the clip's mean patch
    mean = v.reshape(-1, D).mean(0)
    assert np.allclose(out[:, 1], mean)
    assert np.allclose(out[:, [0, 2]], v[:, [0, 2]])
    assert np.allclose(v, np.arange(T * P * D).reshape(T, P, D))        # the input is untouched
    out = cq.replace_with_mean(v, [0], axis=0)        # frame 0 -> the clip's mean frame (per patch)
    assert np.allclose(out[0], v.mean(0))
    assert np.allclose(out[1], v[1])
    a = torch.arange(12, dtype=torch.float32).reshape(4, 3)              # audio [T, D]
    out = cq.replace_with_mean(a, [0, 3], axis=0)
    assert isinstance(out, torch.Tensor)
    assert torch.allclose(out[0], a.mean(0)) and torch.allclose(out[3], a.mean(0))
    assert torch.equal(out[1:3], a[1:3])
    tv = torch.as_tensor(v)
    assert np.allclose(cq.replace_with_mean(tv, [1], axis=1).numpy(), cq.replace_with_mean(v, [1], axis=1))
    with pytest.raises(ValueError):
        cq.replace_with_mean(v, [0], axis=2)           # the channel axis is never replaced


def test_deletion_arithmetic():
    d = cq.deletion(0.9, 0.4, [0.85, 0.8, 0.9, 0.85])
    assert d.drop_top == pytest.approx(0.5)
    assert d.drop_random == pytest.approx(0.05)
    assert d.beats_random
    d = cq.deletion(0.9, 0.9, [0.9])                    # a tie does not beat random
    assert not d.beats_random
    assert not cq.deletion(0.9, 0.8, [0.5, 0.7]).beats_random
    with pytest.raises(ValueError):
        cq.deletion(0.9, 0.8, [])


def test_curve_steps_grow_geometrically_and_stop_before_deleting_everything():
    assert cq.curve_steps(49) == (1, 2, 3, 4, 7, 11, 18, 30, 48)
    assert cq.curve_steps(10) == (1, 2, 3, 4, 5, 7, 9)
    with pytest.raises(ValueError, match="at least 2"):
        cq.curve_steps(1)


def test_deletion_curve_compares_the_areas_of_the_clue_order_and_the_random_orders():
    # the clue's order drops the answer at the first step; the random orders only at the last
    d = cq.deletion_curve(0.9, [0.2, 0.2, 0.1], [[0.9, 0.9, 0.1], [0.9, 0.8, 0.2]])
    assert d.drop_top == pytest.approx(0.9 - 0.5 / 3) and d.drop_random == pytest.approx(0.9 - 3.8 / 6)
    assert d.beats_random
    # the same end point reached later by the clue's order does not beat random
    assert not cq.deletion_curve(0.9, [0.9, 0.9, 0.1], [[0.2, 0.2, 0.1]]).beats_random
    with pytest.raises(ValueError, match="same steps"):
        cq.deletion_curve(0.9, [0.2, 0.1], [[0.5, 0.4, 0.3]])
    with pytest.raises(ValueError, match="same steps"):
        cq.deletion_curve(0.9, [0.2, 0.1], [])


def test_log_odds_stays_finite_where_the_probability_is_one():
    logits = torch.tensor([40.0, 0.0, -5.0], dtype=torch.float64)
    lp = logits.log_softmax(-1).numpy()
    assert math.exp(lp[0]) == 1.0                      # the probability is saturated...
    lo = cq.log_odds(lp, 0)
    assert lo == pytest.approx(40.0 - math.log(1 + math.exp(-5.0)))   # ...its log-odds are not
    assert cq.log_odds(np.log([0.5, 0.25, 0.25]), 0) == pytest.approx(0.0)


def test_rate_and_pct():
    assert cq.rate([True, False, True, True]) == (0.75, 4)
    assert math.isnan(cq.rate([])[0])
    assert cq.pct([True, False]) == "50.0% (2)"
    assert cq.pct([]) == "-"


# ------------------------------------------------------------------------------------------------- the shown clues

from mcd.serving import shown_clues as sc  # noqa: E402


def _referent(position: str, position_p: float, sounds_p: float = 0.5, segments=None) -> dict:
    return {"instrument": "violin", "instrument_p": 0.9, "position": position, "position_p": position_p,
            "sounds_p": sounds_p, "segments": np.full(4, 0.9) if segments is None else np.asarray(segments)}


def _object_maps(K: int, T: int = 4, P: int = 49) -> dict[str, np.ndarray]:
    """Per-object maps where object k puts all its weight on cell k of second 0 (so maps are told apart)."""
    low = np.zeros((K, T, P))
    ref = np.zeros((K, T, P))
    for k in range(K):
        low[k, 0, k] = 1.0
        ref[k, 1, 10 + k] = 1.0
    audio = np.tile(np.array([0.1, 0.2, 0.3, 0.4]), (K, 1))
    return {"visual_low": low, "referent_visual": ref, "referent_audio": audio}


def test_shown_spatial_is_the_referent_query_map_of_the_keyword_read_as_on_screen():
    keywords = ["violin", "left"]
    refs = {"violin": _referent("offscreen", 0.99), "left": _referent("left", 0.8)}
    maps = _object_maps(K=4)
    clue = sc.shown_spatial(keywords, ["Visual", "Location"], refs, maps, question_map=np.ones((4, 49)))
    assert (clue.source, clue.keyword) == (sc.REFERENT_QUERY, "left")
    np.testing.assert_array_equal(clue.weights, maps["referent_visual"][1])
    # the more confident on-screen reading wins
    refs["violin"] = _referent("right", 0.95)
    assert sc.shown_spatial(keywords, ["Visual", "Location"], refs, maps, np.ones((4, 49))).keyword == "violin"


def test_shown_spatial_falls_back_to_the_type_words_then_the_question_words():
    refs = {"banjo": _referent("absent", 0.99)}
    maps = _object_maps(K=3)
    clue = sc.shown_spatial(["banjo"], ["Visual", "Existential"], refs, maps, np.ones((4, 49)))
    assert clue.source == sc.TYPE_WORDS and clue.words == ("Visual", "Existential")
    np.testing.assert_allclose(clue.weights, maps["visual_low"][1:3].mean(axis=0))
    question_map = np.full((4, 49), 1 / (4 * 49))
    bare = sc.shown_spatial(["banjo"], ["Visual", "Existential"], {}, {}, question_map)
    assert bare.source == sc.QUESTION_TOKENS and bare.weights is question_map


def test_shown_temporal_is_the_sounding_keywords_attention_inside_its_read_out_seconds():
    refs = {"violin": _referent("left", 0.9, sounds_p=0.4),
            "flute": _referent("right", 0.9, sounds_p=0.95, segments=[0.9, 0.1, 0.8, 0.2]),
            "banjo": _referent("absent", 0.9, sounds_p=0.99)}       # absent: never the one listened for
    maps = _object_maps(K=5)
    clue = sc.shown_temporal(["violin", "flute", "banjo"], refs, maps, question_audio=np.full(4, 0.25))
    assert (clue.source, clue.keyword) == (sc.REFERENT_QUERY, "flute")
    np.testing.assert_allclose(clue.weights, [0.1, 0.0, 0.3, 0.0])
    np.testing.assert_allclose(clue.attention, maps["referent_audio"][1])
    # no second read as sounding: the attention over all seconds
    np.testing.assert_allclose(sc.in_sounding_seconds([0.5, 0.5], [0.1, 0.2]), [0.5, 0.5])
    fallback = sc.shown_temporal(["banjo"], {"banjo": refs["banjo"]}, maps, np.full(4, 0.25))
    assert fallback.source == sc.QUESTION_TOKENS


QUALITY = {"spatial": {"referent query": {"solo": 1.0, "multi": 0.866, "issue": None, "deletion_beats": 0.594},
                       "type words": {"solo": None, "multi": None, "issue": 1.0}},
           "temporal": {"referent query": {"ratio": 1.52, "ceiling": 1.65, "deletion_beats": 0.48}}}


def test_quality_lines_read_the_checkpoints_record_or_say_not_measured():
    line = sc.spatial_quality_line(sc.REFERENT_QUERY, QUALITY)
    assert "100% (solo) / 87% (multi)" in line and "59%" in line
    assert "100%" in sc.spatial_quality_line(sc.TYPE_WORDS, QUALITY)
    assert sc.NOT_MEASURED in sc.spatial_quality_line(sc.QUESTION_TOKENS, QUALITY)
    assert sc.NOT_MEASURED in sc.spatial_quality_line(sc.REFERENT_QUERY, None)
    t = sc.temporal_quality_line(sc.REFERENT_QUERY, QUALITY)
    assert "1.52x" in t and "48%" in t
    assert sc.NOT_MEASURED in sc.temporal_quality_line(sc.REFERENT_QUERY, {})
    # too few measured questions: the rate is not stated
    few = {"spatial": {"type words": {"multi": 0.5, "n_multi": 4, "issue": 1.0, "n_issue": 339}}}
    assert "(multi)" not in sc.spatial_quality_line(sc.TYPE_WORDS, few)
    # where a player is named: the map's rate beside that player's own cells' (the oracle), stated only with both
    # and enough questions
    oracle = {"spatial": {"referent query": {**QUALITY["spatial"]["referent query"], "named_deletion_beats": 0.701,
                                             "oracle_deletion_beats": 0.634, "n_named_deletion": 876}}}
    line = sc.spatial_quality_line(sc.REFERENT_QUERY, oracle)
    assert "59% (70% where a player is named; the player's own cells: 63%)" in line
    assert "player is named" not in sc.spatial_quality_line(sc.REFERENT_QUERY, QUALITY)
    oracle["spatial"]["referent query"]["n_named_deletion"] = 4
    assert "player is named" not in sc.spatial_quality_line(sc.REFERENT_QUERY, oracle)
    # the deletion curve, where the record has it (bench runs with curves), beside the top-k test
    assert "sooner than" not in line
    curved = {"spatial": {"referent query": {**QUALITY["spatial"]["referent query"], "curve_beats": 0.811}},
              "temporal": {"referent query": {**QUALITY["temporal"]["referent query"], "curve_beats": 0.514}},
              sc.EVIDENCE: {"cells_deletion_beats": 0.887, "cells_curve_beats": 0.747, "seconds_curve_beats": 0.854}}
    assert "random orders in 81%" in sc.spatial_quality_line(sc.REFERENT_QUERY, curved)
    assert "48%; deleted step by step in its order, sooner than random in 51%" in sc.temporal_quality_line(
        sc.REFERENT_QUERY, curved)
    evidence = sc.evidence_quality_line(curved)
    assert "beats random in 89%" in evidence and "cells 75%, seconds 85%" in evidence
    assert "sooner" not in sc.evidence_quality_line({sc.EVIDENCE: {"cells_deletion_beats": 0.887}})
    # the temporal title says the seconds are no proof
    clue = sc.ShownClue(sc.REFERENT_QUERY, "first", np.ones(4))
    assert "'first'" in sc.temporal_title(clue) and "not proof" in sc.temporal_title(clue)


# --- one_visual_path: the deletion test reaching one of the model's two visual paths -------------------------------

def _logits(model, visual, batch):
    with torch.no_grad():
        return model(**{**batch, "visual": visual}).logits


@pytest.mark.parametrize("hierarchy", ["both", "high"])
def test_one_visual_path_sends_the_change_through_that_path_only(hierarchy):
    from mcd.model import MCD
    from tests.conftest import make_batch, small_config
    torch.manual_seed(0)
    cfg = small_config(hierarchy=hierarchy)
    model = MCD(cfg).eval()
    batch = make_batch(cfg, B=3, labels=False)
    V = batch["visual"][0]                                            # one clip [T,P,D], asked 3 questions
    deleted = cq.replace_with_mean(V, [0, 2], axis=1)
    whole = _logits(model, V.expand(3, -1, -1, -1), batch)
    changed = _logits(model, deleted.expand(3, -1, -1, -1), batch)
    assert not torch.allclose(whole, changed)
    with cq.one_visual_path(model, V, "patches"):
        patches = _logits(model, deleted.expand(3, -1, -1, -1), batch)
        assert torch.allclose(_logits(model, V.expand(3, -1, -1, -1), batch), whole, atol=1e-6)
    with cq.one_visual_path(model, V, "frames"):
        frames = _logits(model, deleted.expand(3, -1, -1, -1), batch)
    if hierarchy == "high":       # no patch tokens: the change reaches the answer through the frame means alone
        assert torch.allclose(patches, whole, atol=1e-6) and torch.allclose(frames, changed, atol=1e-6)
    else:                         # both paths read the deleted cells, and neither alone gives the whole change
        for one in (patches, frames):
            assert not torch.allclose(one, whole) and not torch.allclose(one, changed)
    # the hook is gone after the block
    assert torch.allclose(_logits(model, deleted.expand(3, -1, -1, -1), batch), changed, atol=1e-6)
    with pytest.raises(ValueError, match="path"):
        with cq.one_visual_path(model, V, "pixels"):
            pass


def test_without_frame_features_the_picture_reaches_the_answer_through_the_patches_only():
    from mcd.model import MCD
    from tests.conftest import make_batch, small_config
    torch.manual_seed(0)
    cfg = small_config(frame_features=False)
    model = MCD(cfg).eval()
    batch = make_batch(cfg, B=3, labels=False)
    V = batch["visual"][0]
    deleted = cq.replace_with_mean(V, [1, 3], axis=1)
    whole = _logits(model, V.expand(3, -1, -1, -1), batch)
    with cq.one_visual_path(model, V, "frames"):          # the change reaches the (unused) frame means only
        assert torch.allclose(_logits(model, deleted.expand(3, -1, -1, -1), batch), whole, atol=1e-6)
    assert not torch.allclose(_logits(model, deleted.expand(3, -1, -1, -1), batch), whole)
