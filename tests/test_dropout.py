"""mcd.model.dropout: the packed-bits dropout that every MCD module uses in place of nn.Dropout."""
from __future__ import annotations

import pytest
import torch

from mcd.model import MCD
from mcd.model.dropout import LANES, Dropout, keep_mask
from tests.conftest import make_batch, small_config


def test_every_lane_drops_at_the_rate_asked():
    """Each of the four 16-bit lanes of a 64-bit draw drops ~p of its elements (int64 draws leave their top bit
    zero: without the 15-bit mask, every fourth element would never be dropped)."""
    torch.manual_seed(0)
    keep = keep_mask((400_000,), round(0.1 * LANES))
    for lane in range(4):
        rate = 1 - keep[lane::4].float().mean().item()
        assert abs(rate - 0.1) < 0.003, (lane, rate)


def test_training_drops_and_rescales_eval_is_identity():
    torch.manual_seed(0)
    drop = Dropout(0.25)
    x = torch.rand(200, 500) + 0.5
    y = drop(x)
    dropped = y == 0
    assert abs(dropped.float().mean().item() - 0.25) < 0.005
    torch.testing.assert_close(y[~dropped], x[~dropped] * (LANES / (LANES - drop.threshold)))
    assert abs(y.mean().item() / x.mean().item() - 1) < 0.01           # the expectation is kept
    assert drop.eval()(x) is x and Dropout(0.0).train()(x) is x


def test_gradient_is_the_mask_and_the_draw_follows_the_seed():
    drop = Dropout(0.5)
    x = torch.ones(1000, requires_grad=True)
    torch.manual_seed(3)
    y = drop(x)
    y.sum().backward()
    torch.testing.assert_close(x.grad, y.detach())                     # d(x·m·s)/dx = m·s, which is y at x = 1
    torch.manual_seed(3)
    assert torch.equal(drop(x), y)


def test_bad_probability_is_refused():
    for p in (-0.1, 1.0):
        with pytest.raises(ValueError, match="dropout probability"):
            Dropout(p)


def test_the_model_uses_it_and_eval_is_deterministic():
    """No nn.Dropout is left in MCD (a module that kept one would pay the slow masks), training draws differ per
    step and evaluation does not draw at all."""
    cfg = small_config(object_clues=True, object_grounding=True, grounding_classes=5, grounded_expert=True,
                       dropout=0.1)
    model = MCD(cfg)
    assert not any(type(m) is torch.nn.Dropout for m in model.modules())
    assert sum(isinstance(m, Dropout) for m in model.modules()) > 10
    batch = make_batch(cfg)
    assert not torch.equal(model.train()(**batch).logits, model(**batch).logits)
    model.eval()
    with torch.no_grad():
        assert torch.equal(model(**batch).logits, model(**batch).logits)


def test_drawn_as_and_layout_come_together():
    """A mask drawn in another shape without the map back to x's layout (or a map without the shape) is refused,
    in eval too, where nothing is drawn: the mistake is the caller's either way."""
    drop = Dropout(0.1)
    x = torch.ones(2, 3, 4)
    for module in (drop.train(), drop.eval()):
        with pytest.raises(ValueError, match="drawn_as and layout come together"):
            module(x, drawn_as=(2, 4, 3))
        with pytest.raises(ValueError, match="drawn_as and layout come together"):
            module(x, layout=lambda m: m)
    torch.manual_seed(0)
    moved = drop.train()(x, drawn_as=(2, 4, 3), layout=lambda m: m.transpose(1, 2))
    torch.manual_seed(0)
    plain = drop(x.transpose(1, 2)).transpose(1, 2)
    assert torch.equal(moved, plain)
