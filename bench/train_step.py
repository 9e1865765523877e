"""Time of one training step (forward, backward, fused AdamW) of a recipe's model, with each dropout implementation.

    python bench/train_step.py --config configs/synth-default.json          # the shipped recipe's model
    python bench/train_step.py --config configs/synth-default.json --threads 2 --steps 20

The batch is random but shaped like a training batch of the recipe: `--batch` questions over `--clips` clips
(mcd.data.dataset groups whole clips' questions), every keyword slot filled, grounding targets absent (their
loss is a few small heads). "torch" swaps every mcd.model.dropout.Dropout for nn.Dropout of the same p, which is
what the model used before; "packed" is the model as it is. Prints median milliseconds per step.
"""
from __future__ import annotations

import argparse
import statistics
import time

import torch

from mcd.model.config import MCDConfig
from mcd.synth.grounding import GROUNDING_INSTRUMENTS
from mcd.model import MCD
from mcd.model.dropout import Dropout
from mcd.training.recipe import load_recipe


def parse_args() -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--config", default="configs/synth-default.json", help="recipe whose `model` section is timed")
    p.add_argument("--batch", type=int, default=64, help="questions per step (the recipe's batch_size by default)")
    p.add_argument("--clips", type=int, default=4, help="clips per batch (~batch / questions per clip)")
    p.add_argument("--L", type=int, default=14, help="question tokens")
    p.add_argument("--K", type=int, default=4, help="text objects (keywords + 2 type words)")
    p.add_argument("--steps", type=int, default=15)
    p.add_argument("--warmup", type=int, default=3)
    p.add_argument("--threads", type=int, default=None, help="torch threads (default: torch's choice)")
    return p.parse_args()


class TorchDropout(torch.nn.Dropout):
    """nn.Dropout that takes the packed Dropout's call: it draws its mask in x's own shape, so `drawn_as` and
    `layout` (the packed mask's shape and its map onto x) have nothing to do here."""

    def forward(self, x: torch.Tensor, drawn_as=None, layout=None) -> torch.Tensor:
        return super().forward(x)


def with_torch_dropout(model: MCD) -> MCD:
    """The same model with nn.Dropout wherever it has the packed Dropout."""
    for module in list(model.modules()):
        for name, child in list(module.named_children()):
            if isinstance(child, Dropout):
                setattr(module, name, TorchDropout(child.p))
    return model


def training_batch(cfg: MCDConfig, B: int, V: int, L: int, K: int) -> dict:
    g = torch.Generator().manual_seed(0)
    return dict(visual=torch.randn(V, cfg.T, cfg.P, cfg.visual_dim, generator=g),
                audio=torch.randn(V, cfg.T, cfg.audio_dim, generator=g),
                question=torch.randn(B, L, cfg.text_dim, generator=g),
                question_mask=torch.ones(B, L, dtype=torch.bool),
                objects=torch.randn(B, K, cfg.text_dim, generator=g),
                objects_mask=torch.ones(B, K, dtype=torch.bool),
                objects_kind=torch.tensor([0] * (K - 2) + [1, 1]).expand(B, K).clone(),
                labels=torch.randint(0, cfg.num_answers, (B,), generator=g),
                video_index=torch.arange(B) * V // B)


def median_step_ms(model: MCD, batch: dict, steps: int, warmup: int) -> float:
    model.train()
    optimizer = torch.optim.AdamW(model.parameters(), lr=1e-4, fused=True)   # as mcd.training.train does
    times = []
    for i in range(warmup + steps):
        start = time.perf_counter()
        out = model(**batch)
        optimizer.zero_grad(set_to_none=True)
        out.loss.backward()
        optimizer.step()
        if i >= warmup:
            times.append((time.perf_counter() - start) * 1000)
    return statistics.median(times)


def main() -> None:
    args = parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    recipe = load_recipe(args.config)
    fields = {"grounding_classes": len(GROUNDING_INSTRUMENTS)} if recipe.model.get("object_grounding") else {}
    cfg = MCDConfig.from_dict({**fields, **recipe.model})
    batch = training_batch(cfg, args.batch, args.clips, args.L, args.K)
    print(f"{recipe.name}: d={cfg.d}, T={cfg.T}, P={cfg.P}, {args.batch} questions over {args.clips} clips, "
          f"{torch.get_num_threads()} threads, median of {args.steps} steps")
    print("| dropout | ms per step |\n|---|---|")
    for label, build in (("torch (nn.Dropout)", lambda: with_torch_dropout(MCD(cfg))), ("packed (mcd)", lambda: MCD(cfg))):
        torch.manual_seed(0)
        print(f"| {label} | {median_step_ms(build(), batch, args.steps, args.warmup):.0f} |")


if __name__ == "__main__":
    main()
