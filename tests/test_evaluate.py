"""The per-type evaluation: every cell of the report, lookup by question_id, errors, and `mcd evaluate` end to end.

The annotations are tiny MUSIC-AVQA files (the 7-key records) written into tmp_path and read by the real loader;
the predictions are made by hand from a plan of (questions, right answers) per type. The expected accuracies are
written out as fractions computed by hand from that plan, so the test fails if the scorer counts differently.
"""
from __future__ import annotations

import json
import random
import sys
import warnings

import pytest

from mcd import cli
from mcd.data.music_avqa import load_annotations
from mcd.evaluation.evaluate import (EvaluationError, compute_report, enrich_predictions, format_table, read_predictions,
                          write_predictions, write_report)
from mcd.task.questions import QUESTION_TYPES, SLOT_DOMAINS, TEMPLATES
from mcd.task.vocab import ANSWERS, INSTRUMENTS

#: type -> (questions, answered right). Unequal counts per type so micro and macro averages differ.
PLAN = {
    "Audio/Counting": (4, 3),
    "Audio/Comparative": (2, 0),
    "Visual/Counting": (3, 1),
    "Visual/Location": (5, 5),
    "Audio-Visual/Existential": (2, 1),
    "Audio-Visual/Counting": (6, 2),
    "Audio-Visual/Location": (1, 1),
    "Audio-Visual/Comparative": (3, 2),
    "Audio-Visual/Temporal": (4, 1),
}
#: A plausible answer per type (cycled through); the scorer only compares strings, but the loader may check them.
ANSWER_CHOICES = {
    "Audio/Counting": ["yes", "two", "no"], "Audio/Comparative": ["yes", "no"],
    "Visual/Counting": ["three", "yes", "one"], "Visual/Location": ["violin", "indoor", "piano"],
    "Audio-Visual/Existential": ["no", "yes"], "Audio-Visual/Counting": ["two", "four", "zero"],
    "Audio-Visual/Location": ["left", "right"], "Audio-Visual/Comparative": ["yes", "no"],
    "Audio-Visual/Temporal": ["cello", "middle", "flute"],
}


def _slot_values(template_text: str) -> list[str]:
    values = []
    for tok in template_text.rstrip().split(" "):
        tok = tok.rstrip("?？")
        if tok == "<Object>":
            values.append(INSTRUMENTS[len(values) % len(INSTRUMENTS)])
        elif tok.startswith("<") and tok.endswith(">"):
            values.append(SLOT_DOMAINS[tok][0])
    return values


def make_annotations(plan: dict[str, tuple[int, int]]) -> list[dict]:
    """7-key MUSIC-AVQA records, interleaved across types, with sparse non-sequential question ids."""
    per_type = []
    for qtype, (n, _) in plan.items():
        modality, kind = qtype.split("/")
        templates = [t for t in TEMPLATES if t.type == qtype]
        rows = []
        for i in range(n):
            tmpl = templates[i % len(templates)]
            rows.append({
                "video_id": f"{len(per_type):04d}{i:04d}",
                "question_id": 0,  # set below
                "type": json.dumps([modality, kind]),
                "question_content": tmpl.text,
                "templ_values": json.dumps(_slot_values(tmpl.text)),
                "question_deleted": 0,
                "anser": ANSWER_CHOICES[qtype][i % len(ANSWER_CHOICES[qtype])],
            })
        per_type.append(rows)
    # interleave types (round robin) so no type sits in one block, then give ids that are not positions
    out = []
    while any(per_type):
        for rows in per_type:
            if rows:
                out.append(rows.pop(0))
    for k, row in enumerate(out):
        row["question_id"] = 5000 - 37 * k
    return out


def make_predictions(annotations: list[dict], plan: dict[str, tuple[int, int]]) -> list[dict]:
    """For each type, the first `right` questions get the true answer, the rest a different valid answer."""
    seen = {t: 0 for t in plan}
    preds = []
    for row in annotations:
        qtype = "/".join(json.loads(row["type"]))
        right = seen[qtype] < plan[qtype][1]
        seen[qtype] += 1
        wrong = next(a for a in ANSWERS if a != row["anser"])
        preds.append({"question_id": row["question_id"], "pred": row["anser"] if right else wrong})
    return preds


def write_json(path, obj):
    path.write_text(json.dumps(obj))
    return path


@pytest.fixture
def bench(tmp_path):
    annotations = make_annotations(PLAN)
    path = write_json(tmp_path / "avqa-test.json", annotations)
    return load_annotations(path), make_predictions(annotations, PLAN), path


# -- the expected report, by hand from PLAN --------------------------------------------------------------------
EXPECTED_TYPES = {
    "Audio/Counting": 3 / 4,
    "Audio/Comparative": 0 / 2,
    "Visual/Counting": 1 / 3,
    "Visual/Location": 5 / 5,
    "Audio-Visual/Existential": 1 / 2,
    "Audio-Visual/Counting": 2 / 6,
    "Audio-Visual/Location": 1 / 1,
    "Audio-Visual/Comparative": 2 / 3,
    "Audio-Visual/Temporal": 1 / 4,
}
EXPECTED_GROUPS = {  # pooled over questions
    "Audio": (3 + 0) / (4 + 2),
    "Visual": (1 + 5) / (3 + 5),
    "Audio-Visual": (1 + 2 + 1 + 2 + 1) / (2 + 6 + 1 + 3 + 4),
}
EXPECTED_N = 30
EXPECTED_OVERALL = 16 / 30


def test_every_cell_of_the_report(bench):
    records, preds, _ = bench
    report = compute_report(preds, records)
    assert set(report) == {"n", "overall", "groups", "types"}
    assert report["n"] == EXPECTED_N
    assert report["overall"] == pytest.approx(EXPECTED_OVERALL)
    assert list(report["types"]) == list(QUESTION_TYPES)
    for qtype in QUESTION_TYPES:
        assert report["types"][qtype] == pytest.approx(EXPECTED_TYPES[qtype]), qtype
    assert list(report["groups"]) == ["Audio", "Visual", "Audio-Visual"]
    for group, acc in EXPECTED_GROUPS.items():
        assert report["groups"][group] == pytest.approx(acc), group
    # the plan makes micro and macro differ: a mean of per-type means would fail the checks above
    for group in EXPECTED_GROUPS:
        types = [t for t in QUESTION_TYPES if t.startswith(group + "/")]
        macro = sum(EXPECTED_TYPES[t] for t in types) / len(types)
        assert abs(macro - EXPECTED_GROUPS[group]) > 0.01
    assert json.loads(json.dumps(report)) == report  # JSON-ready as is


def test_lookup_is_by_question_id_not_position(bench):
    records, preds, _ = bench
    shuffled = list(preds)
    random.Random(0).shuffle(shuffled)
    assert [p["question_id"] for p in shuffled] != [p["question_id"] for p in preds]
    assert compute_report(shuffled, records) == compute_report(preds, records)
    # the annotations' order does not matter either
    assert compute_report(preds, list(reversed(records))) == compute_report(preds, records)


def test_string_question_ids_are_accepted(bench):
    records, preds, _ = bench
    as_strings = [{**p, "question_id": str(p["question_id"])} for p in preds]
    assert compute_report(as_strings, records) == compute_report(preds, records)


def test_types_without_questions_are_null(tmp_path):
    plan = {"Audio/Counting": (3, 2), "Audio-Visual/Temporal": (2, 1)}
    annotations = make_annotations(plan)
    records = load_annotations(write_json(tmp_path / "a.json", annotations))
    report = compute_report(make_predictions(annotations, plan), records)
    assert report["types"]["Audio/Counting"] == pytest.approx(2 / 3)
    assert report["types"]["Audio-Visual/Temporal"] == pytest.approx(1 / 2)
    for qtype in QUESTION_TYPES:
        if qtype not in plan:
            assert report["types"][qtype] is None, qtype
    assert report["groups"] == {"Audio": pytest.approx(2 / 3), "Visual": None, "Audio-Visual": pytest.approx(1 / 2)}
    assert report["overall"] == pytest.approx(3 / 5)
    assert report["n"] == 5
    assert "n/a" in format_table(report)


def test_missing_predictions_are_an_error(bench):
    records, preds, _ = bench
    dropped = [preds[3]["question_id"], preds[10]["question_id"]]
    kept = [p for p in preds if p["question_id"] not in dropped]
    with pytest.raises(EvaluationError) as err:
        compute_report(kept, records)
    msg = str(err.value)
    assert f"2 of {EXPECTED_N}" in msg and "no prediction" in msg
    assert all(str(q) in msg for q in dropped)


def test_duplicate_predictions_are_an_error(bench):
    records, preds, _ = bench
    dup = preds[5]["question_id"]
    with pytest.raises(EvaluationError, match=rf"1 question_id\(s\) predicted more than once: {dup}"):
        compute_report(preds + [{"question_id": dup, "pred": "yes"}], records)


def test_unknown_predictions_are_an_error(bench):
    records, preds, _ = bench
    with pytest.raises(EvaluationError, match=r"2 predicted question_id\(s\) not in the annotations: 123456, 123457"):
        compute_report(preds + [{"question_id": 123456, "pred": "yes"}, {"question_id": 123457, "pred": "no"}],
                       records)


def test_bad_prediction_values_are_errors(bench):
    records, preds, _ = bench
    with pytest.raises(EvaluationError, match="must be an answer string"):
        compute_report([{**preds[0], "pred": 7}] + preds[1:], records)
    with pytest.raises(EvaluationError, match="question_id must be an integer"):
        compute_report([{**preds[0], "question_id": "q7"}] + preds[1:], records)
    with pytest.raises(EvaluationError, match="needs at least 'question_id' and 'pred'"):
        compute_report([{"question_id": preds[0]["question_id"]}] + preds[1:], records)


def test_pred_outside_the_answers_is_wrong_and_warned_once(bench):
    records, preds, _ = bench
    # replace two right answers with spellings that are not classes
    right = [i for i, p in enumerate(preds) if p["pred"] == next(
        r.answer for r in records if r.question_id == p["question_id"])]
    changed = list(preds)
    for i in right[:2]:
        changed[i] = {**preds[i], "pred": "acoustic guitar"}
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        report = compute_report(changed, records)
    assert len(caught) == 1 and "2 prediction(s) are not among the 42 answers" in str(caught[0].message)
    assert report["overall"] == pytest.approx((16 - 2) / 30)


def test_format_table(bench):
    records, preds, _ = bench
    lines = format_table(compute_report(preds, records)).splitlines()
    assert len(lines) == 3
    header = [c.strip() for c in lines[0].strip("|").split("|")]
    row = [c.strip() for c in lines[2].strip("|").split("|")]
    assert header[1:] == ["Audio Counting", "Audio Comparative", "Audio Avg",
                          "Visual Counting", "Visual Location", "Visual Avg",
                          "Audio-Visual Existential", "Audio-Visual Counting", "Audio-Visual Location",
                          "Audio-Visual Comparative", "Audio-Visual Temporal", "Audio-Visual Avg", "Overall", "n"]
    expected = [EXPECTED_TYPES["Audio/Counting"], EXPECTED_TYPES["Audio/Comparative"], EXPECTED_GROUPS["Audio"],
                EXPECTED_TYPES["Visual/Counting"], EXPECTED_TYPES["Visual/Location"], EXPECTED_GROUPS["Visual"],
                *(EXPECTED_TYPES[t] for t in QUESTION_TYPES[4:]), EXPECTED_GROUPS["Audio-Visual"],
                EXPECTED_OVERALL]
    assert row[1:-1] == [f"{100 * v:.2f}" for v in expected]
    assert row[-1] == str(EXPECTED_N)
    assert row[1] == "75.00" and row[-2] == "53.33"  # spot check of the formatting itself


def test_enrich_predictions(bench):
    records, preds, _ = bench
    by_id = {r.question_id: r for r in records}
    rows = [{**p, "score": 0.5, "teacher_pred": "yes", "top5": [["yes", 0.5]], "correct": "stale"} for p in preds]
    enriched = enrich_predictions(rows, records)
    assert [e["question_id"] for e in enriched] == [p["question_id"] for p in preds]
    for e, p in zip(enriched, preds):
        rec = by_id[p["question_id"]]
        assert list(e) == ["question_id", "video_id", "question", "type", "answer", "pred",
                           "score", "teacher_pred", "top5", "correct"]
        assert (e["video_id"], e["question"], e["type"], e["answer"]) == (rec.video_id, rec.question, rec.type,
                                                                           rec.answer)
        assert e["correct"] is (p["pred"] == rec.answer)
        assert (e["score"], e["teacher_pred"], e["top5"]) == (0.5, "yes", [["yes", 0.5]])
    assert sum(e["correct"] for e in enriched) == 16
    # a subset is fine to enrich; an unknown id is not
    assert len(enrich_predictions(rows[:3], records)) == 3
    with pytest.raises(EvaluationError, match="not in the annotations"):
        enrich_predictions([{"question_id": -1, "pred": "yes"}], records)


def test_predictions_round_trip(tmp_path, bench):
    records, preds, _ = bench
    rows = enrich_predictions(preds, records)
    path = tmp_path / "out" / "pred.jsonl"
    write_predictions(path, rows)
    assert read_predictions(path) == rows
    assert list(path.parent.iterdir()) == [path]  # no temp file left behind


def test_read_predictions_errors_name_the_line(tmp_path):
    good = json.dumps({"question_id": 1, "pred": "yes"})
    bad_json = tmp_path / "bad.jsonl"
    bad_json.write_text(good + "\n\n" + '{"question_id": 2, "pred": "no"\n')
    with pytest.raises(EvaluationError, match=r"bad\.jsonl, line 3: not valid JSON"):
        read_predictions(bad_json)
    no_pred = tmp_path / "nopred.jsonl"
    no_pred.write_text(good + "\n" + json.dumps({"question_id": 2}) + "\n")
    with pytest.raises(EvaluationError, match=r"line 2: missing key\(s\) pred"):
        read_predictions(no_pred)
    not_obj = tmp_path / "list.jsonl"
    not_obj.write_text("[1, 2]\n")
    with pytest.raises(EvaluationError, match="line 1: expected a JSON object"):
        read_predictions(not_obj)
    with pytest.raises(EvaluationError, match="not found"):
        read_predictions(tmp_path / "nope.jsonl")


def test_failed_writes_leave_the_old_file(tmp_path, monkeypatch):
    target = tmp_path / "pred.jsonl"
    target.write_text("OLD\n")
    with pytest.raises(TypeError):
        write_predictions(target, [{"question_id": 1, "pred": object()}])
    import mcd.evaluation.evaluate as ev

    def broken_replace(src, dst):
        raise OSError("disk full")

    monkeypatch.setattr(ev.os, "replace", broken_replace)
    with pytest.raises(OSError, match="disk full"):
        write_report(target, {"n": 1})
    assert target.read_text() == "OLD\n"
    assert list(tmp_path.iterdir()) == [target]


# -- the CLI -------------------------------------------------------------------------------------------------------


def run_cli(monkeypatch, argv):
    monkeypatch.setattr(sys, "argv", ["mcd"])  # cli.main rewrites sys.argv; restore it after the test
    return cli.main(argv)


def test_cli_scores_a_predictions_file(tmp_path, bench, monkeypatch, capsys):
    records, preds, ann_path = bench
    pred_path = tmp_path / "pred.jsonl"
    shuffled = list(preds)
    random.Random(1).shuffle(shuffled)
    pred_path.write_text("".join(json.dumps(p) + "\n" for p in shuffled))
    report_path = tmp_path / "reports" / "report.json"
    rc = run_cli(monkeypatch, ["evaluate", "--predictions", str(pred_path), "--annotations", str(ann_path),
                               "--report", str(report_path)])
    assert rc == 0
    report = json.loads(report_path.read_text())
    assert report == compute_report(preds, records)
    assert report["overall"] == pytest.approx(EXPECTED_OVERALL)
    out = capsys.readouterr().out
    assert out.strip() == format_table(report)
    assert "| 53.33 | 30 |" in out


def test_cli_failure_leaves_no_report(tmp_path, bench, monkeypatch, capsys):
    _, preds, ann_path = bench
    pred_path = tmp_path / "pred.jsonl"
    pred_path.write_text("".join(json.dumps(p) + "\n" for p in preds[:-1]))  # one question unanswered
    new_report = tmp_path / "new.json"
    rc = run_cli(monkeypatch, ["evaluate", "--predictions", str(pred_path), "--annotations", str(ann_path),
                               "--report", str(new_report)])
    assert rc == 2
    assert "1 of 30 annotated question_id(s) have no prediction" in capsys.readouterr().err
    assert not new_report.exists()
    old_report = tmp_path / "old.json"
    old_report.write_text("OLD")
    rc = run_cli(monkeypatch, ["evaluate", "--predictions", str(pred_path), "--annotations", str(ann_path),
                               "--report", str(old_report)])
    assert rc == 2 and old_report.read_text() == "OLD"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["avqa-test.json", "old.json", "pred.jsonl"]


def test_cli_user_errors(tmp_path, bench, monkeypatch, capsys):
    _, preds, ann_path = bench
    pred_path = tmp_path / "pred.jsonl"
    pred_path.write_text("{not json}\n")
    assert run_cli(monkeypatch, ["evaluate", "--predictions", str(pred_path), "--annotations", str(ann_path)]) == 2
    assert "line 1: not valid JSON" in capsys.readouterr().err
    pred_path.write_text("".join(json.dumps(p) + "\n" for p in preds))
    assert run_cli(monkeypatch, ["evaluate", "--predictions", str(pred_path),
                                 "--annotations", str(tmp_path / "missing.json")]) == 2
    assert "annotations file not found" in capsys.readouterr().err
    broken = write_json(tmp_path / "broken.json", [{"video_id": "1"}])
    assert run_cli(monkeypatch, ["evaluate", "--predictions", str(pred_path), "--annotations", str(broken)]) == 2
    assert "cannot load annotations" in capsys.readouterr().err
    assert run_cli(monkeypatch, ["evaluate", "--predictions", str(pred_path)]) == 2
    assert "--annotations" in capsys.readouterr().err
    assert run_cli(monkeypatch, ["evaluate", "--predictions", str(pred_path), "--annotations", str(ann_path),
                                 "--data", str(tmp_path)]) == 2
    assert "only make(s) sense with --checkpoint" in capsys.readouterr().err
    assert run_cli(monkeypatch, ["evaluate", "--checkpoint", str(tmp_path), "--data", str(tmp_path),
                                 "--predictions", str(pred_path), "--report", str(tmp_path / "r.json")]) == 2
    err = capsys.readouterr().err  # tmp_path is no checkpoint: the error names the folder, and nothing is written
    assert "error" in err and str(tmp_path) in err
    assert not (tmp_path / "r.json").exists()
