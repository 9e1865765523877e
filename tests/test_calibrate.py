"""The grounded expert's weight per question type: the model's lookup, the choice on val, the config's checks.

The end-to-end path (`mcd calibrate` on a trained checkpoint, then `mcd evaluate` reproducing the calibrated val
accuracy through the model's own lookup) is in tests/test_end_to_end.py, which has a trained grounded model.
"""
from __future__ import annotations


import pytest
import torch

from mcd.training.calibrate import ExpertScores, choose_type_weights, per_question_weights
from mcd.model.config import ConfigError
from mcd.model import MCD
from mcd.model.mcd import MCDInputError
from mcd.task.questions import QUESTION_TYPES, UNKNOWN_TYPE, UNKNOWN_TYPE_INDEX, type_index
from tests.conftest import make_batch, small_config

EXPERT = dict(object_clues=True, object_grounding=True, grounding_classes=5, grounded_expert=True)


def test_each_question_gets_its_types_weight():
    """logits = log p_student + w · log p_expert with w from expert_type_weights by question_type; a type not
    listed and an unknown question (-1) use expert_weight; no question_type means expert_weight for all."""
    torch.manual_seed(0)
    weights = {"Audio/Counting": 0.0, "Visual/Location": 4.0}
    model = MCD(small_config(**EXPERT, expert_weight=1.5, expert_type_weights=weights)).eval()
    inputs = make_batch(model.config)
    kinds = torch.tensor([type_index("Audio/Counting"), type_index("Visual/Location"), UNKNOWN_TYPE_INDEX,
                          type_index("Audio-Visual/Temporal")])
    student = []
    hook = model.header.register_forward_hook(lambda m, args, out: student.append(out))
    with torch.no_grad():
        out = model(**inputs, question_type=kinds)
        uniform = model(**inputs)
    hook.remove()
    s, e = student[0].log_softmax(-1), out.expert_logits.log_softmax(-1)
    want = torch.tensor([0.0, 4.0, 1.5, 1.5])[:, None]
    assert torch.allclose(out.logits, s + want * e)
    assert torch.allclose(uniform.logits, s + 1.5 * e)
    assert torch.allclose(out.logits[0], s[0])                     # weight 0: the student alone


@pytest.mark.parametrize("bad, why", [(torch.tensor([0, 1, 2]), "shape"), (torch.zeros(4), "shape"),
                                      (torch.tensor([0, 1, 9, 0]), "-1 \\(unknown\\) or 0..8"),
                                      (torch.tensor([0, -2, 0, 0]), "-1 \\(unknown\\) or 0..8")])
def test_a_bad_question_type_is_refused(bad, why):
    model = MCD(small_config(**EXPERT))
    with pytest.raises(MCDInputError, match=f"question_type.*{why}"):
        model(**make_batch(model.config), question_type=bad)


def test_type_index_round_trips_and_knows_unknown():
    assert [type_index(t) for t in QUESTION_TYPES] == list(range(9))
    assert type_index(UNKNOWN_TYPE) == type_index("Audio/Location") == UNKNOWN_TYPE_INDEX == -1


def test_config_checks_expert_type_weights():
    with pytest.raises(ConfigError, match="unknown question type 'Audio/Location'"):
        small_config(**EXPERT, expert_type_weights={"Audio/Location": 1.0})
    with pytest.raises(ConfigError, match="must be >= 0"):
        small_config(**EXPERT, expert_type_weights={"Audio/Counting": -1.0})
    with pytest.raises(ConfigError, match="must be float"):
        small_config(**EXPERT, expert_type_weights={"Audio/Counting": "2"})
    with pytest.raises(ConfigError, match="needs grounding.expert"):
        small_config(object_clues=True, object_grounding=True, grounding_classes=5,
                     expert_type_weights={"Audio/Counting": 1.0})
    cfg = small_config(**EXPERT, expert_type_weights={"Audio/Counting": 1})
    weights = cfg.ext.grounding.expert_type_weights
    assert weights == {"Audio/Counting": 1.0} and type(weights["Audio/Counting"]) is float
    assert type(cfg).from_dict(cfg.to_dict()).ext.grounding.expert_type_weights == weights


def scores_of(groups: list[tuple[int, int, list[float], list[float], int]]) -> ExpertScores:
    """ExpertScores from (type index, count, student probs, expert probs, label) groups of identical questions."""
    rows = [(t, s, e, y) for t, n, s, e, y in groups for _ in range(n)]
    return ExpertScores(student=torch.tensor([s for _, s, _, _ in rows]).log(),
                        expert=torch.tensor([e for _, _, e, _ in rows]).log(),
                        labels=torch.tensor([y for *_, y in rows]), types=torch.tensor([t for t, *_ in rows]))


def test_choose_type_weights_per_type_with_ties_to_the_default():
    """Audio/Counting: the student is right and the expert wrong; right only while w·log 8 < log 3, i.e. w <= 0.5
    in the grid; the tie between 0 and 0.5 goes to 0.5, nearer the default 2. Visual/Counting: the expert is right
    and must outweigh the student's 2.5·log 2 margin, so w >= 3 (3 is nearest 2). Visual/Location: both
    answerers agree, every w ties and the default stays. Audio/Comparative: 10 questions, under min_questions,
    left out. A type mixing groups picks the w that answers most of them right."""
    helpful = [0.5, 0.25, 0.25]                       # expert: class 0 by log 2
    student_wrong = [1.0, 2 ** 2.5, 1.0]              # student: class 1 by 2.5 · log 2 (normalised below)
    student_wrong = [p / sum(student_wrong) for p in student_wrong]
    groups = [
        (type_index("Audio/Counting"), 60, [0.6, 0.2, 0.2], [0.1, 0.8, 0.1], 0),
        (type_index("Visual/Counting"), 60, student_wrong, helpful, 0),
        (type_index("Visual/Location"), 60, [0.8, 0.1, 0.1], [0.8, 0.1, 0.1], 0),
        (type_index("Audio/Comparative"), 10, student_wrong, helpful, 0),
        # mixed: 40 questions need w >= 3, 30 need w <= 0.5: w = 3 wins 40 to 30
        (type_index("Audio-Visual/Temporal"), 40, student_wrong, helpful, 0),
        (type_index("Audio-Visual/Temporal"), 30, [0.6, 0.2, 0.2], [0.1, 0.8, 0.1], 0),
        (UNKNOWN_TYPE_INDEX, 80, student_wrong, helpful, 0),   # untyped questions never choose a type's weight
    ]
    scores = scores_of(groups)
    chosen = choose_type_weights(scores, default=2.0, min_questions=50)
    assert chosen == {"Audio/Counting": 0.5, "Visual/Counting": 3.0, "Visual/Location": 2.0,
                      "Audio-Visual/Temporal": 3.0}
    # the lookup the model makes: listed types get theirs, the rest (and unknown) the default
    w = per_question_weights(scores, 2.0, chosen)
    assert w[:60].eq(0.5).all() and w[60:120].eq(3.0).all() and w[180:190].eq(2.0).all() and w[-80:].eq(2.0).all()
    right = scores.correct(w)
    assert int(right.sum()) == 60 + 60 + 60 + 0 + 40 + 0 + 0     # one weight (2) for all: 60
    assert int(scores.correct(2.0).sum()) == 60


def test_calibrating_a_model_without_expert_says_so():
    from mcd.training.calibrate import CalibrationError, expert_scores
    with pytest.raises(CalibrationError, match="no grounded expert"):
        expert_scores(MCD(small_config()), [])
    with pytest.raises(CalibrationError, match="no questions"):
        expert_scores(MCD(small_config(**EXPERT)), [])


def test_features_of_other_encoders_are_refused(tmp_path):
    """The check `mcd calibrate` and `mcd evaluate --features` share: a cache written for other encoders or T."""
    from mcd.data.features import FeatureCache, FeatureCacheError
    meta = {"T": 10, "encoders": {"visual": {"id": "synth", "digest": "a"}, "audio": {"id": "synth", "digest": "b"}}}
    FeatureCache(tmp_path, meta=meta)
    cache = FeatureCache(tmp_path)
    cache.check_meta(meta, "ck")
    with pytest.raises(FeatureCacheError, match=f"{tmp_path} was extracted with other encoders or T than ck"):
        cache.check_meta({**meta, "T": 8}, "ck")
