"""The grounded expert's comparator and its refit on a trained model's read-outs (mcd.training.refit).

The path through `mcd calibrate` on a trained checkpoint is in tests/test_end_to_end.py.
"""
from __future__ import annotations

import pytest
import torch

from mcd.model.config import ConfigError
from mcd.training.refit import ExpertInputs, ExpertRefitError, collect_expert_inputs, refit_expert
from mcd.model import MCD
from mcd.model.grounding import GROUNDING_SCALARS, GroundedExpert
from mcd.task.vocab import answer_to_index
from tests.conftest import make_batch, small_config

EXPERT = dict(object_clues=True, object_grounding=True, grounding_classes=5, grounded_expert=True,
              referent_query=True)
YES, NO = answer_to_index("yes"), answer_to_index("no")


def test_the_comparator_moves_only_yes_against_no_by_the_weighed_scalars():
    """With the comparator the expert's logits are the plain expert's plus t on "yes" and minus t on "no", where t
    weighs only the scalar columns of each keyword's read-outs; zero-initialised, it starts as the plain expert."""
    torch.manual_seed(0)
    model = MCD(small_config(**EXPERT, expert_comparator=True))
    expert = model.expert
    mask = model.keywords.grounding.scalar_columns().repeat(2)
    assert int(mask.sum()) == 2 * len(GROUNDING_SCALARS) and expert.comparator is not None
    plain = GroundedExpert(model.config.d, model.keywords.referent_width, model.config.num_answers, 8)
    plain.load_state_dict({k: v for k, v in expert.state_dict().items() if not k.startswith("comparator.")})
    q, ref = torch.randn(6, model.config.d), torch.randn(6, 3, model.keywords.referent_width)
    with torch.no_grad():
        assert torch.equal(expert(q, ref), plain(q, ref))                 # zero init: the plain expert
        torch.nn.init.normal_(expert.comparator.weight)
        diff = expert(q, ref) - plain(q, ref)
        weights = expert.comparator(q).view(6, 8, -1)[:, :3]
        t = (weights * ref * mask).sum(dim=(1, 2))
    assert torch.allclose(diff[:, YES], t, atol=1e-4) and torch.allclose(diff[:, NO], -t, atol=1e-4)
    others = [c for c in range(diff.shape[1]) if c not in (YES, NO)]
    assert diff[:, others].abs().max() < 1e-4
    with torch.no_grad():   # the other columns do not reach t
        bumped = ref + 5.0 * (~mask).float()
        assert torch.allclose((expert(q, bumped) - plain(q, bumped))[:, YES], t, atol=1e-4)


def test_the_comparator_needs_the_expert():
    with pytest.raises(ConfigError, match="grounding.comparator needs grounding.expert"):
        small_config(object_clues=True, object_grounding=True, grounding_classes=5, expert_comparator=True)


def comparison_data(model: MCD, n: int, seed: int) -> ExpertInputs:
    """Questions "is keyword 0 louder than keyword 1?" (all one question vector), read-outs random: yes when
    keyword 0's loudness read-out (first reading) is the larger."""
    g = torch.Generator().manual_seed(seed)
    loud = int(model.keywords.grounding.scalar_columns().nonzero()[0])
    ref = torch.rand(n, 2, model.keywords.referent_width, generator=g)
    question = torch.ones(n, model.config.d)
    labels = torch.where(ref[:, 0, loud] > ref[:, 1, loud], YES, NO)
    return ExpertInputs(question, ref, labels)


def test_refit_learns_a_comparison_and_touches_nothing_else():
    """A fresh expert (with the comparator) fit on read-outs where the answer is the sign of two loudness read-outs
    answers held-out ones almost always; the plain expert, fit the same way, does worse (it can only add the two
    read-outs before its nonlinearity); no other weight of the model moves; the same seed fits the same expert."""
    torch.manual_seed(0)
    model = MCD(small_config(**EXPERT))
    before = {k: v.clone() for k, v in model.state_dict().items() if not k.startswith("keywords.expert.")}
    train, test = comparison_data(model, 2000, 0), comparison_data(model, 500, 1)

    def accuracy(m):
        with torch.no_grad():
            return float((m.expert(test.question, test.referents).argmax(-1) == test.labels).float().mean())

    losses = refit_expert(model, train, epochs=6, seed=3, comparator=True, progress=False)
    assert model.config.ext.grounding.comparator is True and model.expert.comparator is not None
    assert len(losses) == 6 and losses[-1] < losses[0]
    with_comparator = accuracy(model)
    assert with_comparator > 0.9
    after = model.state_dict()
    assert all(torch.equal(v, after[k]) for k, v in before.items())
    again = MCD(small_config(**EXPERT))
    refit_expert(again, train, epochs=6, seed=3, comparator=True, progress=False)
    assert all(torch.equal(v, again.expert.state_dict()[k]) for k, v in model.expert.state_dict().items())
    refit_expert(again, train, epochs=6, seed=3, comparator=False, progress=False)
    assert again.expert.comparator is None and again.config.ext.grounding.comparator is False
    assert accuracy(again) < with_comparator - 0.1       # measured: 0.95 against 0.69


def test_collected_inputs_are_what_the_expert_reads():
    """collect_expert_inputs keeps, per question, the pooled question and the keywords' read-outs the model's own
    expert was given; the expert fed them back reproduces the model's expert logits."""
    torch.manual_seed(0)
    model = MCD(small_config(**EXPERT)).eval()

    class Batch:
        def __init__(self, seed):
            self.inputs = make_batch(model.config, seed=seed)
            self.labels = self.inputs["labels"]

        def model_inputs(self):
            return dict(self.inputs)

    batches = [Batch(0), Batch(1)]
    data = collect_expert_inputs(model, batches)
    assert len(data) == 8 and torch.equal(data.labels, torch.cat([b.labels for b in batches]))
    with torch.no_grad():
        want = torch.cat([model(**{k: v for k, v in b.inputs.items() if k != "labels"}).expert_logits
                          for b in batches])
        assert torch.allclose(model.expert(data.question, data.referents), want, atol=1e-5)
    kinds = batches[0].inputs["objects_kind"][0]
    assert data.referents[:4, kinds == 1].abs().sum() == 0          # type words read as nothing


def test_refit_refuses_what_it_cannot_fit():
    model = MCD(small_config(**EXPERT))
    data = comparison_data(model, 10, 0)
    with pytest.raises(ExpertRefitError, match="no grounded expert"):
        refit_expert(MCD(small_config()), data, epochs=1)
    with pytest.raises(ExpertRefitError, match="no grounded expert"):
        collect_expert_inputs(MCD(small_config()), [])
    with pytest.raises(ExpertRefitError, match="at least 1 epoch"):
        refit_expert(model, data, epochs=0)
    with pytest.raises(ExpertRefitError, match="do not fit the expert"):
        refit_expert(model, ExpertInputs(data.question, data.referents[..., :-1], data.labels), epochs=1)
    with pytest.raises(ExpertRefitError, match="no questions"):
        collect_expert_inputs(model, [])
