"""What the answer rests on (mcd.serving.evidence): the linearised deletion test, per question of a request."""
from __future__ import annotations

from types import SimpleNamespace

import numpy as np
import pytest
import torch

from mcd.serving import clue_quality as cq
from mcd.serving.evidence import answer_evidence, answer_log_odds, positive_part


class TwoWayLinear(torch.nn.Module):
    """Two answers whose logits are linear in the features (so the log-odds are too) and depend on the question:
    gradient x (feature - mean) is then exactly the change a deletion by the clip mean makes."""

    def __init__(self, T=4, P=9, Dv=5, Da=3):
        super().__init__()
        g = torch.Generator().manual_seed(0)
        self.wv = torch.nn.Parameter(torch.randn(2, T, P, Dv, generator=g))
        self.wa = torch.nn.Parameter(torch.randn(2, T, Da, generator=g))
        self.scale = torch.nn.Parameter(torch.tensor([1.0, -0.5, 2.0]))

    def forward(self, visual, audio, question_type):
        s = self.scale[question_type][:, None]
        logits = (torch.einsum("ntpd,ctpd->nc", visual, self.wv) + torch.einsum("ntd,ctd->nc", audio, self.wa)) * s
        return SimpleNamespace(logits=logits)


def _log_odds(model, visual, audio, qtype, answers):
    with torch.no_grad():
        out = model(visual=visual.unsqueeze(0).expand(len(qtype), *visual.shape),
                    audio=audio.unsqueeze(0).expand(len(qtype), *audio.shape), question_type=qtype)
        return answer_log_odds(out.logits, answers)


def test_log_odds_without_forming_one_minus_p():
    logits = torch.tensor([[2.0, 0.0, -1.0], [50.0, 0.0, 0.0]])
    lo = answer_log_odds(logits, torch.tensor([0, 0]))
    p = logits.softmax(-1)[0, 0]
    assert lo[0] == pytest.approx(float(torch.log(p / (1 - p))), rel=1e-5)
    assert lo[1] == pytest.approx(50.0 - np.log(2.0), rel=1e-6)      # p rounds to 1 in float, the log-odds do not


def test_evidence_is_the_deletion_change_for_a_linear_model():
    torch.manual_seed(1)
    model = TwoWayLinear().eval()
    visual, audio = torch.randn(4, 9, 5), torch.randn(4, 3)
    qtype = torch.tensor([0, 1, 2])
    answers = torch.tensor([0, 1, 0])
    ev = answer_evidence(model, visual, audio, answers, question_type=qtype)
    assert ev.visual.shape == (3, 4, 9) and ev.audio.shape == (3, 4)
    before = _log_odds(model, visual, audio, qtype, answers)
    for cell in (0, 4, 8):
        after = _log_odds(model, cq.replace_with_mean(visual, [cell], axis=1), audio, qtype, answers)
        np.testing.assert_allclose(before - after, ev.visual[:, :, cell].sum(1), rtol=1e-4, atol=1e-4)
    for second in (0, 3):
        after = _log_odds(model, visual, cq.replace_with_mean(audio, [second], axis=0), qtype, answers)
        np.testing.assert_allclose(before - after, ev.audio[:, second], rtol=1e-4, atol=1e-4)
    assert all(p.grad is None for p in model.parameters())      # the model's parameters are left as they were


def test_each_question_gets_its_own_gradient():
    model = TwoWayLinear().eval()
    visual, audio = torch.randn(4, 9, 5), torch.randn(4, 3)
    qtype, answers = torch.tensor([0, 1, 2]), torch.tensor([0, 1, 1])
    together = answer_evidence(model, visual, audio, answers, question_type=qtype)
    for i in range(3):
        alone = answer_evidence(model, visual, audio, answers[i:i + 1], question_type=qtype[i:i + 1])
        torch.testing.assert_close(alone.visual[0], together.visual[i])
        torch.testing.assert_close(alone.audio[0], together.audio[i])


def test_positive_part_is_a_distribution_or_zero():
    r = torch.tensor([[[1.0, -2.0], [3.0, 0.0]], [[-1.0, -1.0], [-0.5, 0.0]]])
    pos = positive_part(r)
    torch.testing.assert_close(pos[0], torch.tensor([[0.25, 0.0], [0.75, 0.0]]))
    assert torch.count_nonzero(pos[1]) == 0
