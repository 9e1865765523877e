"""The moving average of the weights (`train.ema`, mcd/training/ema.py): its arithmetic, the swap for evaluation, resume."""
from __future__ import annotations

import pytest
import torch

from mcd.training.ema import WeightAverage


class Tiny(torch.nn.Module):
    def __init__(self):
        super().__init__()
        self.lin = torch.nn.Linear(3, 2)
        self.register_buffer("scale", torch.ones(2))
        self.register_buffer("count", torch.zeros((), dtype=torch.long))


def _set(model: Tiny, value: float) -> None:
    with torch.no_grad():
        for p in model.parameters():
            p.fill_(value)
        model.scale.fill_(value)
        model.count.fill_(int(value))


@pytest.mark.parametrize("decay", [0.0, 1.0, -0.5, 1.5])
def test_decay_outside_the_open_unit_interval_is_refused(decay):
    with pytest.raises(ValueError, match="train.ema"):
        WeightAverage(Tiny(), decay)


def test_average_follows_the_ramped_decay_and_skips_integer_buffers():
    model = Tiny()
    _set(model, 0.0)
    average = WeightAverage(model, decay=0.9)
    expected = 0.0
    for n, value in enumerate([1.0, 2.0, 4.0, -1.0, 3.0] * 4):
        _set(model, value)
        d = min(0.9, (1 + n) / (10 + n))
        assert average.current_decay() == pytest.approx(d)
        average.update(model)
        expected = d * expected + (1 - d) * value
    assert average.updates == 20
    for name in ("lin.weight", "lin.bias", "scale"):
        assert torch.allclose(average.shadow[name], torch.full_like(average.shadow[name], expected), atol=1e-6)
    assert "count" not in average.shadow
    # the ramp is still below the requested decay after 20 updates (21/30) and reaches it after 80
    assert average.current_decay() == pytest.approx(0.7)
    average.updates = 80
    assert average.current_decay() == pytest.approx(0.9)


def test_applied_swaps_the_average_in_and_restores_the_raw_weights_even_on_error():
    model = Tiny()
    _set(model, 0.0)
    average = WeightAverage(model, decay=0.5)
    _set(model, 8.0)
    average.update(model)                      # first update: d = min(0.5, 1/10), mostly the new weights
    raw = {k: v.clone() for k, v in model.state_dict().items()}
    weight_param = model.lin.weight
    with average.applied(model):
        assert torch.allclose(model.lin.weight, torch.full_like(model.lin.weight, 0.1 * 0 + 0.9 * 8.0))
        assert model.count.item() == 8          # integer buffers are not averaged
    for k, v in model.state_dict().items():
        assert torch.equal(v, raw[k])
    assert model.lin.weight is weight_param     # the optimizer's parameter objects are kept
    with pytest.raises(RuntimeError, match="boom"):
        with average.applied(model):
            raise RuntimeError("boom")
    assert torch.equal(model.lin.weight, raw["lin.weight"])


def test_state_round_trip_and_a_foreign_state_or_another_decay_is_refused():
    model = Tiny()
    average = WeightAverage(model, decay=0.99)
    for value in (1.0, 2.0, 3.0):
        _set(model, value)
        average.update(model)
    saved = average.state_dict()
    restored = WeightAverage(Tiny(), decay=0.99)
    restored.load_state_dict({k: (dict(v) if isinstance(v, dict) else v) for k, v in saved.items()})
    assert restored.decay == 0.99 and restored.updates == 3
    for k in saved["shadow"]:
        assert torch.equal(restored.shadow[k], average.shadow[k])

    other = WeightAverage(torch.nn.Linear(3, 2), decay=0.99)
    with pytest.raises(ValueError, match="other tensors"):
        other.load_state_dict(saved)
    # a resume that changed train.ema would publish an average no single recipe describes
    changed = WeightAverage(Tiny(), decay=0.5)
    with pytest.raises(ValueError, match=r"saved with train.ema=0.99, not 0.5"):
        changed.load_state_dict(saved)
    assert changed.updates == 0 and changed.decay == 0.5
