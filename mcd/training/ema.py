"""An exponential moving average of a model's weights (`train.ema` in a recipe).

Why: the shipped recipe fits its training clips far better than new ones (94% against 86%), and the weights of
the last steps each sit at a slightly different point of that fit. Their running average is a cheap ensemble
that is evaluated, kept as the best checkpoint and published instead of the last step's weights; training itself
is unchanged (the optimizer keeps stepping the raw weights).

The decay ramps up as min(decay, (1 + n) / (10 + n)) after n updates, so the first steps are not frozen into the
average by a start from random weights (the schedule timm's ModelEma uses).
"""
from __future__ import annotations

import contextlib

import torch


class WeightAverage:
    """Shadow copies of a model's floating-point parameters and buffers, updated after each optimizer step."""

    def __init__(self, model: torch.nn.Module, decay: float):
        if not 0.0 < decay < 1.0:
            raise ValueError(f"train.ema must be a decay in (0, 1), e.g. 0.999; got {decay}")
        self.decay = decay
        self.updates = 0
        self.shadow = {k: v.detach().clone() for k, v in self._averaged(model).items()}

    @staticmethod
    def _averaged(model: torch.nn.Module) -> dict[str, torch.Tensor]:
        return {k: v for k, v in model.state_dict().items() if v.is_floating_point()}

    def current_decay(self) -> float:
        return min(self.decay, (1 + self.updates) / (10 + self.updates))

    @torch.no_grad()
    def update(self, model: torch.nn.Module) -> None:
        """shadow <- d * shadow + (1 - d) * weights, for every averaged tensor."""
        d = self.current_decay()
        live = self._averaged(model)
        keys = list(self.shadow)
        torch._foreach_lerp_([self.shadow[k] for k in keys], [live[k].detach() for k in keys], 1.0 - d)
        self.updates += 1

    @contextlib.contextmanager
    def applied(self, model: torch.nn.Module):
        """Inside the block the model holds the averaged weights; the raw weights come back afterwards, even on
        an error, so training continues from where the optimizer left them."""
        raw = {k: v.detach().clone() for k, v in self._averaged(model).items()}
        model.load_state_dict(self.shadow, strict=False)
        try:
            yield model
        finally:
            model.load_state_dict(raw, strict=False)

    def state_dict(self) -> dict:
        return {"decay": self.decay, "updates": self.updates, "shadow": self.shadow}

    def load_state_dict(self, state: dict) -> None:
        """Continue a saved average. Its decay must be this one's: a resumed run that changed `train.ema` would
        publish an average that no single recipe describes."""
        if set(state["shadow"]) != set(self.shadow):
            raise ValueError("the saved weight average was taken over other tensors than this model's")
        if float(state["decay"]) != self.decay:
            raise ValueError(f"the run was saved with train.ema={float(state['decay'])}, not {self.decay}; resume it "
                             "with the same value, or start afresh")
        self.updates = int(state["updates"])
        for k, v in state["shadow"].items():
            self.shadow[k].copy_(v)
