"""The committed default checkpoint loads and answers the example clips' questions as the model card says."""
from __future__ import annotations

import json
from pathlib import Path

import pytest

from mcd.cli import main

ROOT = Path(__file__).resolve().parent.parent
CHECKPOINT = ROOT / "checkpoints" / "mcd-synth"
EXAMPLES = json.loads((ROOT / "assets" / "examples.json").read_text())


def test_checkpoint_card_and_metrics_meet_the_bar():
    metrics = json.loads((CHECKPOINT / "metrics.json").read_text())
    report = metrics["fresh_test"]
    assert report["overall"] >= 0.90
    assert all(acc >= 0.75 for acc in report["types"].values()), report["types"]
    card = (CHECKPOINT / "README.md").read_text()
    assert f"{report['overall'] * 100:.2f}" in card and "out of domain" in card


@pytest.mark.parametrize("example", EXAMPLES, ids=[Path(e["video"]).stem for e in EXAMPLES])
def test_predict_answers_example_questions(example, tmp_path, capsys):
    out = tmp_path / "pred.json"
    argv = ["predict", "--checkpoint", str(CHECKPOINT), "--video", str(ROOT / example["video"]), "--out", str(out)]
    for q in example["questions"]:
        argv += ["--question", q]
    assert main(argv) == 0
    answers = json.loads(out.read_text())["answers"]
    assert [a["question"] for a in answers] == example["questions"]
    predicted = [a["answer"] for a in answers]
    right = sum(p == a for p, a in zip(predicted, example["answers"]))
    # the card's accuracy is ~90%+: allow at most one miss per clip, and report which
    assert right >= len(example["answers"]) - 1, list(zip(example["questions"], predicted, example["answers"]))
