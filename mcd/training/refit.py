"""Refit the grounded expert on a trained model's own read-outs of the train split (`mcd calibrate`, recipe field
`train.expert_refit_epochs`).

Why: the expert (mcd.model.grounding.GroundedExpert) reads only the question and the grounding head's read-outs,
detached, so it never teaches the rest of the model, and the rest never needs it. During training it chases
read-outs that change every step and carry dropout; at inference it meets the converged model's. Refitting it
from scratch on the trained model's eval-mode read-outs of the train split fits the inputs it will be given.
Measured on v8 (`bench/expert_refit.py`; weights per type chosen on val as before; fresh test set): the
co-trained expert 85.68%, a refit plain expert 86.64%, a refit expert with the comparator (`expert_comparator`)
86.84%; Audio/Comparative 74.4% -> 83.9%. On a second run of the recipe: 85.68% -> 86.86%. Only the train split
is read to fit it; val still only picks the weights. The model's other weights do not change.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Iterable

import torch
import torch.nn.functional as F
from tqdm import tqdm


class ExpertRefitError(ValueError):
    """A model or split the expert cannot be refit on; the message says why."""


@dataclass
class ExpertInputs:
    """What the expert reads for each question, and the answer: question [N,d], referents [N,K,width] (keywords
    past a question's own are zero), labels [N]."""

    question: torch.Tensor
    referents: torch.Tensor
    labels: torch.Tensor

    def __len__(self) -> int:
        return int(self.labels.shape[0])


@torch.no_grad()
def collect_expert_inputs(model, batches: Iterable) -> ExpertInputs:
    """Run `model` in eval mode over labelled batches and keep the expert's inputs (a forward hook on it)."""
    if model.expert is None:
        raise ExpertRefitError("the model has no grounded expert (extensions.grounding.expert is off or it has no grounding "
                               "head): there is nothing to refit")
    seen: list[tuple[torch.Tensor, torch.Tensor]] = []
    hook = model.keywords.expert.register_forward_hook(lambda module, args, out: seen.append((args[0], args[1])))
    was_training = model.training
    model.eval()
    questions, referents, labels = [], [], []
    try:
        for batch in batches:
            inputs = batch.model_inputs()
            inputs.pop("labels", None)
            inputs.pop("grounding", None)
            seen.clear()
            model(**inputs)
            q, r = seen[-1]
            questions.append(q.float())
            referents.append(r.float())
            labels.append(batch.labels)
    finally:
        hook.remove()
        model.train(was_training)
    if not labels:
        raise ExpertRefitError("the train split has no questions to refit the expert on")
    K = max(r.shape[1] for r in referents)
    referents = [F.pad(r, (0, 0, 0, K - r.shape[1])) for r in referents]   # zero keywords read as nothing
    return ExpertInputs(torch.cat(questions), torch.cat(referents), torch.cat(labels))


def refit_expert(model, data: ExpertInputs, epochs: int, seed: int = 0, comparator: bool | None = None,
                 lr: float = 1e-3, weight_decay: float = 1e-4, batch_size: int = 80,
                 progress: bool = True) -> list[float]:
    """Replace `model.expert` by a fresh one (with the comparator if `comparator`, default: the config's) trained
    for `epochs` passes over `data` with Adam; deterministic in `seed`. Sets `model.config.expert_comparator` to
    match. Returns the mean loss of each epoch."""
    if model.expert is None:
        raise ExpertRefitError("the model has no grounded expert: there is nothing to refit")
    if epochs < 1:
        raise ExpertRefitError(f"refitting the expert needs at least 1 epoch, got {epochs}")
    old = model.keywords.expert
    comparator = model.config.ext.grounding.comparator if comparator is None else bool(comparator)
    width, d = old.slot_maps.shape[1], old.slot_maps.shape[2]
    if tuple(data.referents.shape[2:]) != (width,) or data.question.shape[1] != d:
        raise ExpertRefitError(f"expert inputs of width {tuple(data.referents.shape[2:])} and question size "
                               f"{data.question.shape[1]} do not fit the expert ({width}, {d})")
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        expert = model.keywords.build_expert(comparator)
    expert.to(old.slot_maps.device)
    opt = torch.optim.Adam(expert.parameters(), lr=lr, weight_decay=weight_decay)
    order = torch.Generator().manual_seed(seed)
    losses = []
    expert.train()
    for _ in tqdm(range(epochs), desc="refit expert", unit="epoch", disable=not progress):
        total, n = 0.0, 0
        for idx in torch.randperm(len(data), generator=order).split(batch_size):
            loss = F.cross_entropy(expert(data.question[idx], data.referents[idx]), data.labels[idx])
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
            total, n = total + loss.item() * len(idx), n + len(idx)
        losses.append(total / n)
    expert.eval()
    model.keywords.expert = expert
    model.config.ext.grounding.comparator = comparator
    return losses
