"""What the answer needed: per patch and per second, how much the answer's log-odds would fall if that part of the
clip were replaced by the clip's mean (gradient x input, the first-order estimate of exactly that deletion).

Why beside the attention maps: attention says where the model looked, not what its answer rests on; a map made
from the attention alone beat random deletions only about as often as a coin flip (bench/clues.py). The gradient
of the answer's log-odds times the feature's distance from the clip mean is the deletion test's own change,
linearised, so its top cells are the ones whose deletion should hurt the answer most, and one backward pass gives
it for every question of a request.
"""
from __future__ import annotations

from dataclasses import dataclass

import torch


@dataclass(frozen=True)
class Evidence:
    """Per question of a request: `visual` [n,T,P] and `audio` [n,T] relevance, in log-odds of the question's own
    answer; positive = replacing that part by the clip mean would lower the answer's log-odds."""

    visual: torch.Tensor
    audio: torch.Tensor


def answer_log_odds(logits: torch.Tensor, answers: torch.Tensor) -> torch.Tensor:
    """[n] log(p / (1 - p)) of each row's answer, from logits [n, C], without forming 1 - p (0 in float arithmetic
    once an answer is certain)."""
    rows = torch.arange(logits.shape[0])
    chosen = logits[rows, answers]
    rest = logits.clone()
    rest[rows, answers] = float("-inf")
    return chosen - torch.logsumexp(rest, dim=-1)


def answer_evidence(model: torch.nn.Module, visual: torch.Tensor, audio: torch.Tensor, answers: torch.Tensor,
                    **text_inputs) -> Evidence:
    """Gradient x (feature - clip mean) of each question's answer log-odds, summed over channels.

    `visual` [T,P,D] and `audio` [T,D] are one clip's features, shared by the n questions in `text_inputs` (the
    model's question/objects/type inputs, batched); `answers` [n] the answer index of each question. The clip mean
    is the one the deletion test puts in: over all frames and patches for a patch, over all seconds for a second.
    """
    return _answer_and_evidence(model, visual, audio, answers, text_inputs)[1]


def answers_with_evidence(model: torch.nn.Module, visual: torch.Tensor, audio: torch.Tensor,
                          **text_inputs) -> tuple[object, Evidence]:
    """One grad-enabled forward for the n questions: the model's output (detached) and the evidence of each
    question's own answer (the argmax of its logits). Saves the second forward `answer_evidence` needs after an
    answering forward."""
    return _answer_and_evidence(model, visual, audio, None, text_inputs)


def _answer_and_evidence(model, visual, audio, answers, text_inputs) -> tuple[object, Evidence]:
    from mcd.device import detach

    # every text input is batched over the n questions
    n = answers.shape[0] if answers is not None else next(
        t for t in text_inputs.values() if isinstance(t, torch.Tensor)).shape[0]
    v = visual.detach().float().unsqueeze(0).repeat(n, 1, 1, 1).requires_grad_(True)
    a = audio.detach().float().unsqueeze(0).repeat(n, 1, 1).requires_grad_(True)
    with torch.enable_grad():
        out = model(visual=v, audio=a, **text_inputs)
        if answers is None:
            answers = out.logits.detach().argmax(-1)
        # rows are independent in eval mode, so the sum's gradient holds each question's own gradient in its row;
        # autograd.grad leaves the parameters' .grad untouched
        g_v, g_a = torch.autograd.grad(answer_log_odds(out.logits.float(), answers).sum(), (v, a))
    v_mean = visual.float().mean(dim=(0, 1), keepdim=True)
    a_mean = audio.float().mean(dim=0, keepdim=True)
    return detach(out), Evidence(visual=(g_v * (visual.float() - v_mean)).sum(-1).detach(),
                                 audio=(g_a * (audio.float() - a_mean)).sum(-1).detach())


def positive_part(relevance: torch.Tensor) -> torch.Tensor:
    """The evidence for the answer as a distribution over the last axes (all zeros stay zeros): what a figure
    draws. Parts whose removal would raise the answer's odds carry no weight."""
    r = relevance.clamp(min=0)
    flat = r.reshape(r.shape[0], -1)
    total = flat.sum(-1, keepdim=True)
    return (flat / torch.where(total > 0, total, torch.ones_like(total))).reshape(r.shape)
