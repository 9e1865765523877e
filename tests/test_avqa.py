"""AVQA reader (hand-written records in the dataset's format) and 4-way multiple-choice scoring."""
from __future__ import annotations

import copy
import json
from pathlib import Path

import pytest
import torch

from mcd.data.avqa import (AVQAError, AVQARecord, choice_loss, load_avqa, option_texts, predict_choice,
                           score_choices)

FIXTURE = Path(__file__).parent / "fixtures" / "avqa" / "qa-sample.json"


def raw_records() -> list[dict]:
    return json.loads(FIXTURE.read_text())


def write(tmp_path: Path, data, name: str = "qa.json") -> Path:
    path = tmp_path / name
    path.write_text(json.dumps(data) if not isinstance(data, str) else data)
    return path


def test_load_fixture_keeps_every_field():
    records = load_avqa(FIXTURE)
    raw = raw_records()
    assert len(records) == len(raw)
    for rec, r in zip(records, raw):
        assert isinstance(rec, AVQARecord)
        assert (rec.id, rec.video_name, rec.video_id, rec.question_text) == \
               (r["id"], r["video_name"], r["video_id"], r["question_text"])
        assert rec.multi_choice == tuple(r["multi_choice"])
        assert rec.answer == r["answer"]
        assert rec.answer_text == r["multi_choice"][r["answer"]]
        assert (rec.question_relation, rec.question_type) == (r["question_relation"], r["question_type"])
        assert (rec.question_id, rec.question) == (r["id"], r["question_text"])
    assert records[0].answer_text == "Yacht consignment"


def test_option_texts_are_record_major():
    records = load_avqa(FIXTURE)
    texts = option_texts(records)
    assert len(texts) == 4 * len(records)
    for i, r in enumerate(records):
        assert texts[4 * i:4 * i + 4] == list(r.multi_choice)


@pytest.mark.parametrize("mutate, message", [
    (lambda r: r.pop("multi_choice"), "missing key(s) multi_choice"),
    (lambda r: r.update(multi_choice=["a", "b", "c"]), "list of 4 options"),
    (lambda r: r.update(multi_choice="a b c d"), "list of 4 options"),
    (lambda r: r.update(multi_choice=["a", "", "c", "d"]), "non-empty string"),
    (lambda r: r.update(multi_choice=["a", 2, "c", "d"]), "non-empty string"),
    (lambda r: r.update(answer=4), "option index 0-3"),
    (lambda r: r.update(answer=-1), "option index 0-3"),
    (lambda r: r.update(answer="1"), "option index 0-3"),
    (lambda r: r.update(answer=True), "option index 0-3"),
    (lambda r: r.update(id="183"), "id must be an integer"),
    (lambda r: r.update(video_id=None), "video_id must be an integer"),
    (lambda r: r.update(video_name=""), "video_name must be a non-empty string"),
    (lambda r: r.update(question_text="   "), "question_text must be a non-empty string"),
    (lambda r: r.update(question_type=3), "question_type must be a non-empty string"),
])
def test_bad_record_names_file_record_and_problem(tmp_path, mutate, message):
    data = raw_records()
    bad = copy.deepcopy(data[2])
    mutate(bad)
    data[2] = bad
    path = write(tmp_path, data)
    with pytest.raises(AVQAError) as err:
        load_avqa(path)
    text = str(err.value)
    assert message in text
    assert str(path) in text and "record 2" in text


def test_bad_files(tmp_path):
    with pytest.raises(FileNotFoundError):
        load_avqa(tmp_path / "absent.json")
    with pytest.raises(AVQAError, match="not valid JSON"):
        load_avqa(write(tmp_path, "[{"))
    with pytest.raises(AVQAError, match="expected a JSON list"):
        load_avqa(write(tmp_path, {"id": 1}))
    with pytest.raises(AVQAError, match="expected a JSON object"):
        load_avqa(write(tmp_path, [raw_records()[0], "oops"]))
    path = tmp_path / "latin1.json"
    path.write_bytes('[{"question_text": "caf\u00e9"}]'.encode("latin-1"))
    with pytest.raises(AVQAError, match="not UTF-8"):
        load_avqa(path)


def test_repeated_id_is_an_error(tmp_path):
    data = raw_records()
    data[3]["id"] = data[0]["id"]
    with pytest.raises(AVQAError, match=rf"occur more than once: {data[0]['id']}"):
        load_avqa(write(tmp_path, data))


def test_right_option_made_closest_is_predicted():
    gen = torch.Generator().manual_seed(0)
    n, d = 16, 32
    options = torch.randn(n, 4, d, generator=gen)
    answers = torch.randint(0, 4, (n,), generator=gen)
    # The answer representation: the right option, rescaled (cosine ignores norm) plus a little noise.
    right = options[torch.arange(n), answers]
    pooled = 3.0 * right + 0.1 * torch.randn(n, d, generator=gen)
    scores = score_choices(options, pooled)
    assert scores.shape == (n, 4)
    assert torch.equal(predict_choice(options, pooled), answers)
    assert torch.all(scores <= 1 + 1e-6) and torch.all(scores >= -1 - 1e-6)
    # Cosine, not dot product: scaling an option changes nothing, so a huge wrong option does not win.
    options[:, (answers[0] + 1) % 4] *= 100.0
    assert torch.allclose(score_choices(options, pooled), scores, atol=1e-5)
    assert torch.equal(predict_choice(options, pooled), answers)
    unit = torch.nn.functional.normalize
    assert torch.allclose(scores, (unit(options, dim=-1) @ unit(pooled, dim=-1)[..., None])[..., 0], atol=1e-5)


def test_choice_loss_prefers_the_right_option_and_trains():
    gen = torch.Generator().manual_seed(1)
    options = torch.randn(8, 4, 16, generator=gen)
    answers = torch.tensor([0, 1, 2, 3, 0, 1, 2, 3])
    right = options[torch.arange(8), answers]
    wrong = options[torch.arange(8), (answers + 1) % 4]
    assert choice_loss(options, right, answers) < choice_loss(options, wrong, answers)
    # A learnable answer representation trained with the loss ends up choosing the right options.
    pooled = torch.zeros(8, 16).normal_(generator=gen).requires_grad_()
    opt = torch.optim.SGD([pooled], lr=0.5)
    for _ in range(50):
        opt.zero_grad()
        choice_loss(options, pooled, answers).backward()
        opt.step()
    assert torch.equal(predict_choice(options, pooled.detach()), answers)
    with pytest.raises(ValueError, match="temperature"):
        choice_loss(options, right, answers, temperature=0.0)


@pytest.mark.parametrize("options, pooled, message", [
    (torch.zeros(2, 3, 8), torch.zeros(2, 8), r"\[N, 4, D\]"),
    (torch.zeros(2, 4), torch.zeros(2, 8), r"\[N, 4, D\]"),
    (torch.zeros(2, 4, 8), torch.zeros(2, 1, 8), r"\[N, D\]"),
    (torch.zeros(2, 4, 8), torch.zeros(3, 8), r"expected \[2, 8\]"),
    (torch.zeros(2, 4, 8), torch.zeros(2, 7), r"expected \[2, 8\]"),
])
def test_score_choices_rejects_bad_shapes(options, pooled, message):
    with pytest.raises(ValueError, match=message):
        score_choices(options, pooled)
