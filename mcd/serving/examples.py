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


#: The bundled evaluation run the demo's Analysis tab opens with "Load example run" (clips: `assets/`).
EXAMPLE_RUN_FILE = EXAMPLES_FILE.parent / "example-run.jsonl"


def example_run_rows(pipe, examples_file: Path = EXAMPLES_FILE) -> list[dict]:
    """The example clips' questions as rows of an `mcd evaluate` predictions file (question_id, video_id, question,
    type, answer, pred, score, teacher_pred, correct), so the Analysis tab can show a real run of the checkpoint
    whose clips ship with the repository (video_id = the clip's file stem under `assets/`)."""
    examples = json.loads(Path(examples_file).read_text())
    root = Path(examples_file).resolve().parent.parent
    rows = []
    for example in examples:
        results = pipe.answer(root / example["video"], example["questions"]).results
        for r, gold in zip(results, example["answers"]):
            rows.append({"question_id": len(rows) + 1, "video_id": Path(example["video"]).stem,
                         "question": r.question, "type": r.type, "answer": gold, "pred": r.answer,
                         "score": round(r.confidence, 6), "teacher_pred": r.teacher_answer,
                         "correct": r.answer == gold})
    return rows


def main(argv: list[str] | None = None) -> int:
    """`python -m mcd.serving.examples [--checkpoint DIR] [--out FILE]`: write the example run."""
    import argparse

    from mcd.evaluation.evaluate import write_predictions
    from mcd.serving.pipeline import DEFAULT_CHECKPOINT, Pipeline

    p = argparse.ArgumentParser(description=main.__doc__)
    p.add_argument("--checkpoint", default=str(DEFAULT_CHECKPOINT))
    p.add_argument("--out", default=str(EXAMPLE_RUN_FILE))
    args = p.parse_args(argv)
    rows = example_run_rows(Pipeline(args.checkpoint))
    write_predictions(args.out, rows)
    print(f"{args.out}: {len(rows)} predictions, {sum(r['correct'] for r in rows)} right")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
