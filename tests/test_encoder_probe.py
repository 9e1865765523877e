"""bench/encoder_probe.py's probe and metrics: the presence scores must not be carried by the absent majority."""
from __future__ import annotations

import importlib.util
import math
from pathlib import Path

import pytest
import torch

ROOT = Path(__file__).resolve().parent.parent


@pytest.fixture(scope="module")
def bench():
    spec = importlib.util.spec_from_file_location("encoder_probe", ROOT / "bench" / "encoder_probe.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_predicting_all_absent_scores_zero_though_pairs_are_mostly_right(bench):
    y = torch.zeros(100, 4)
    y[:5, 0] = 1
    y[5:10, 1] = 1
    logits = torch.full((100, 4), -5.0)  # "nothing anywhere"
    r = bench.multilabel_scores(logits, y)
    assert r["pair_acc"] == pytest.approx(0.975)          # the majority-dominated number looks great...
    assert r["macro_f1"] == 0 and r["exact_set"] == 0      # ...the reported ones do not
    assert r["classes"] == 2 and r["items"] == 10          # classes without positives are not averaged


def test_perfect_and_masked_predictions(bench):
    y = torch.tensor([[1, 0], [0, 1], [1, 1], [0, 0]]).float()
    logits = (y * 2 - 1) * 3
    r = bench.multilabel_scores(logits, y)
    assert r["macro_f1"] == 1 and r["macro_ap"] == 1 and r["exact_set"] == 1 and r["items"] == 3
    wrong = logits.clone()
    wrong[2, 1] = -3                                        # one miss on item 2 ...
    assert bench.multilabel_scores(wrong, y)["exact_set"] == pytest.approx(2 / 3)
    mask = torch.ones_like(y, dtype=torch.bool)
    mask[2, 1] = False                                      # ... that is not scored when masked
    assert bench.multilabel_scores(wrong, y, mask)["exact_set"] == 1


def test_average_precision(bench):
    assert bench.average_precision(torch.tensor([0.9, 0.8, 0.1]), torch.tensor([1, 0, 1])) == pytest.approx(
        (1 + 2 / 3) / 2)
    assert math.isnan(bench.average_precision(torch.tensor([0.5]), torch.tensor([0])))


def test_window_presence_masks_partly_sounding_windows(bench):
    p = torch.tensor([[1.0, 0.0, 0.3], [0.5, 0.2, 0.0]])
    y, m = bench.window_presence(p, [0, 2])
    assert y.tolist() == [[1, 0], [1, 0]]
    assert m.tolist() == [[True, False], [True, True]]


def test_probe_learns_a_separable_task_deterministically(bench):
    torch.set_num_threads(1)
    g = torch.Generator().manual_seed(0)
    x = torch.randn(400, 8, generator=g)
    y = torch.stack([x[:, 0] > 0.5, x[:, 1] + x[:, 2] > 0], 1).float()
    a = bench.fit_multilabel_probe(x[:300], y[:300], steps=200, seed=1)(x[300:])
    b = bench.fit_multilabel_probe(x[:300], y[:300], steps=200, seed=1)(x[300:])
    assert torch.equal(a, b)
    assert bench.multilabel_scores(a, y[300:])["macro_f1"] > 0.9
