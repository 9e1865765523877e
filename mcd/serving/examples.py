"""The example clips' questions answered by a checkpoint: a record stored in `metrics.json` at publication, so a
fresh load of the checkpoint can be checked against what it answered when it was published (answers and their
probabilities), on clips that ship with the repository."""
from __future__ import annotations

import json
from pathlib import Path

EXAMPLES_FILE = Path(__file__).resolve().parents[2] / "assets" / "examples.json"


def answer_examples(pipe, examples_file: Path = EXAMPLES_FILE) -> dict:
    """{"right", "total", "clips": {video: [[answer, probability], ...]}} for every example question; probabilities
    rounded to 9 decimals (a reload must reproduce them to 1e-6 whatever the thread count)."""
    examples = json.loads(Path(examples_file).read_text())
    root = Path(examples_file).resolve().parent.parent
    clips, right, total = {}, 0, 0
    for example in examples:
        results = pipe.answer(root / example["video"], example["questions"]).results
        clips[example["video"]] = [[r.answer, round(r.confidence, 9)] for r in results]
        right += sum(r.answer == a for r, a in zip(results, example["answers"]))
        total += len(results)
    return {"right": right, "total": total, "clips": clips}
