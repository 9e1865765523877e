"""MUSIC-AVQA annotation reader: the real file's counts, the shipped excerpt, and every malformed-input error."""
from __future__ import annotations

import json
from collections import Counter
from pathlib import Path

import pytest

from mcd.data.music_avqa import AnnotationError, QARecord, load_annotations, records_by_id, type_counts
from mcd.task.questions import TEMPLATES, fill_template
from mcd.task.vocab import ANSWERS

FIXTURE = Path(__file__).parent / "fixtures" / "music-avqa" / "avqa-val-excerpt.json"
REAL_VAL = Path(__file__).resolve().parents[2] / "shared" / "data" / "music-avqa" / "avqa-val.json"


def _check_against_raw(records: list[QARecord], path: Path) -> None:
    """Each record equals what the raw JSON says, decoded here independently of the loader."""
    raw = json.loads(path.read_text(encoding="utf-8"))
    assert len(records) == len(raw)
    for rec, r in zip(records, raw):
        values = tuple(json.loads(r["templ_values"]))
        modality, kind = json.loads(r["type"])
        assert rec == QARecord(question_id=r["question_id"], video_id=r["video_id"], template=r["question_content"],
                               question=fill_template(r["question_content"], values), type=f"{modality}/{kind}",
                               modality=modality, kind=kind, keywords=values, answer=r["anser"])
        assert not rec.question.endswith(("?", "？", " "))
    assert all(rec.answer in ANSWERS for rec in records)
    assert len(records_by_id(records)) == len(records)


def test_fixture_excerpt():
    records = load_annotations(FIXTURE)
    _check_against_raw(records, FIXTURE)
    assert {r.template for r in records} == {t.text for t in TEMPLATES}
    per_template = Counter(r.template for r in records)
    assert set(per_template.values()) == {2}
    expected = Counter()
    for t in TEMPLATES:
        expected[t.type] += 2
    assert type_counts(records) == expected


@pytest.mark.skipif(not REAL_VAL.exists(), reason=f"full MUSIC-AVQA val file not present at {REAL_VAL} "
                    "(only in the shared workspace, not in CI clones); test_fixture_excerpt covers the reader")
def test_real_validation_file():
    records = load_annotations(REAL_VAL)
    assert len(records) == 4568
    assert len({r.template for r in records}) == 33
    assert type_counts(records) == {
        "Audio-Visual/Counting": 633, "Visual/Location": 613, "Visual/Counting": 600,
        "Audio-Visual/Comparative": 549, "Audio/Counting": 511, "Audio-Visual/Existential": 495,
        "Audio-Visual/Location": 461, "Audio-Visual/Temporal": 411, "Audio/Comparative": 295,
    }
    _check_against_raw(records, REAL_VAL)


# --- errors --------------------------------------------------------------------------------------------------

def _good(question_id: int = 7, **changes) -> dict:
    record = {"video_id": "00000028", "question_id": question_id, "type": '["Audio-Visual", "Existential"]',
              "question_content": "Is the <Object> in the video always playing?", "templ_values": '["ukulele"]',
              "question_deleted": 0, "anser": "yes"}
    record.update(changes)
    return record


def _write(tmp_path: Path, data, name: str = "avqa-bad.json") -> Path:
    path = tmp_path / name
    path.write_text(data if isinstance(data, str) else json.dumps(data), encoding="utf-8")
    return path


def test_good_records_load(tmp_path):
    records = load_annotations(_write(tmp_path, [_good(1), _good(2, templ_values='["acoustic_guitar"]')]))
    assert [r.question for r in records] == ["Is the ukulele in the video always playing",
                                             "Is the acoustic_guitar in the video always playing"]
    assert records[1].keywords == ("acoustic_guitar",)


def test_deleted_questions_are_skipped(tmp_path):
    records = load_annotations(_write(tmp_path, [_good(1), _good(2, question_deleted=1, anser="banana"), _good(3)]))
    assert [r.question_id for r in records] == [1, 3]


@pytest.mark.parametrize("record, problem", [
    ("not a record", "expected a JSON object"),
    ({k: v for k, v in _good(42).items() if k not in ("anser", "templ_values")}, "missing key(s) templ_values, anser"),
    (_good(42, type="[Audio-Visual"), "type '[Audio-Visual' is not valid JSON"),
    (_good(42, type='"Audio-Visual"'), "is not a JSON list of strings"),
    (_good(42, type='["Audio-Visual", "Existential", "x"]'), "is not one of the 9 question types"),
    (_good(42, type='["Visual", "Counting"]'), "does not match the type 'Audio-Visual/Existential'"),
    (_good(42, templ_values="ukulele"), "templ_values 'ukulele' is not valid JSON"),
    (_good(42, templ_values='[1]'), "is not a JSON list of strings"),
    (_good(42, question_content="Is the <Object> dancing?"), "unknown template 'Is the <Object> dancing?'"),
    (_good(42, templ_values='["ukulele", "piano"]'), "has 1 slot(s) but templ_values has 2"),
    (_good(42, templ_values='[]'), "has 1 slot(s) but templ_values has 0"),
    (_good(42, templ_values='["guitar"]'), "'guitar' is not a valid <Object> value"),
    (_good(42, anser="banana"), "answer 'banana' is not one of the 42"),
    (_good(42, anser="Yes"), "answer 'Yes'"),
    (_good(42, question_deleted=2), "question_deleted must be 0 or 1"),
    (_good("42"), "question_id must be an integer"),
    (_good(42, video_id=28), "video_id must be a non-empty string"),
])
def test_malformed_record_names_file_record_and_problem(tmp_path, record, problem):
    path = _write(tmp_path, [_good(1), record])
    with pytest.raises(AnnotationError) as e:
        load_annotations(path)
    message = str(e.value)
    assert str(path) in message and "record 1" in message and problem in message
    if isinstance(record, dict):
        assert "42" in message


@pytest.mark.parametrize("text, problem", [
    ('{"video_id": "1"}', "expected a JSON list of records, got a JSON dict"),
    ('[{"video_id": ', "not valid JSON"),
    ("", "not valid JSON"),
])
def test_malformed_file(tmp_path, text, problem):
    path = _write(tmp_path, text)
    with pytest.raises(AnnotationError, match="not valid JSON|expected a JSON list") as e:
        load_annotations(path)
    assert str(path) in str(e.value) and problem in str(e.value)


def test_not_utf8(tmp_path):
    path = tmp_path / "binary.json"
    path.write_bytes(b"\xff\xfe\x00[")
    with pytest.raises(AnnotationError, match="UTF-8"):
        load_annotations(path)


def test_missing_file(tmp_path):
    with pytest.raises(FileNotFoundError):
        load_annotations(tmp_path / "nope.json")


def test_duplicate_question_ids_are_listed_not_merged(tmp_path):
    path = _write(tmp_path, [_good(5), _good(9), _good(5), _good(11), _good(9), _good(9)])
    with pytest.raises(AnnotationError) as e:
        load_annotations(path)
    message = str(e.value)
    assert str(path) in message and "2 question_id(s)" in message
    listed = message.split("more than once:", 1)[1]      # the path itself may contain any digits
    assert listed.strip().split(", ") == ["5 (x2)", "9 (x3)"]


def test_records_by_id_and_type_counts():
    records = load_annotations(FIXTURE)
    by_id = records_by_id(records)
    assert all(by_id[r.question_id] is r for r in records)
    with pytest.raises(ValueError, match=str(records[0].question_id)):
        records_by_id([records[0], records[1], records[0]])
    counts = type_counts(records)
    assert sum(counts.values()) == len(records)
    assert counts["Audio/Counting"] == sum(1 for r in records if r.modality == "Audio" and r.kind == "Counting")
