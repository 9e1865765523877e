"""Per-type evaluation in the MUSIC-AVQA layout, and `mcd evaluate`.

Two rules make these numbers trustworthy where the reference scripts' were not:
- each prediction's type is looked up by `question_id` in the annotations, never inferred from its position in a
  batch or a file (the reference scripts mislabel types when the batch size changes);
- the Audio / Visual / Audio-Visual averages and the overall are pooled over questions (micro), so a group's
  number is "the share of its questions answered right", not a mean of per-type means.

Every annotated question must be predicted exactly once: a missing, duplicated or unknown `question_id` is an
`EvaluationError`, because a silently partial evaluation is a wrong table.

REPORT format (what `compute_report` returns and `mcd evaluate --report` writes):
    {"n": int, "overall": float,
     "groups": {"Audio": float|None, "Visual": float|None, "Audio-Visual": float|None},
     "types": {"Audio/Counting": float|None, ... the 9 QUESTION_TYPES}}
Accuracies are in [0, 1]. A type (or group) with no questions is `None` (JSON null), not 0: "not measured" and
"all wrong" are different facts, and a 0 would drag down any average someone computes from the report.
"""
from __future__ import annotations

import argparse
import json
import os
import re
import warnings
from collections import Counter
from pathlib import Path
from typing import TYPE_CHECKING, Any, Iterable, Mapping, Sequence

from mcd.atomic import write_text_atomic
from mcd.cli import CLIError
from mcd.task.questions import MODALITIES, QUESTION_TYPES
from mcd.task.vocab import ANSWERS

if TYPE_CHECKING:
    from mcd.data.music_avqa import QARecord

#: Column layout of the MUSIC-AVQA results table: (group, [types of the group]).
TABLE_LAYOUT: tuple[tuple[str, tuple[str, ...]], ...] = tuple(
    (m, tuple(t for t in QUESTION_TYPES if t.split("/")[0] == m)) for m in MODALITIES
)
#: Keys a prediction row keeps from its source when enriched (besides question_id and pred).
OPTIONAL_PRED_KEYS = ("score", "teacher_pred", "top5")
_ANSWER_SET = frozenset(ANSWERS)
_SHOW_IDS = 5  # how many offending ids an error message lists


class EvaluationError(ValueError):
    """Predictions and annotations that cannot be scored as they are (missing / duplicate / unknown ids, bad rows)."""


# ----------------------------------------------------------------------------------------------------------------
# scoring


def _some(ids: Iterable[Any]) -> str:
    ids = sorted(ids, key=str)
    shown = ", ".join(str(i) for i in ids[:_SHOW_IDS])
    return shown + (", ..." if len(ids) > _SHOW_IDS else "")


def _question_id(value: Any, where: str) -> int:
    """A question_id as int. Decimal strings are accepted too: some tools write ids as strings."""
    if isinstance(value, int) and not isinstance(value, bool):
        return value
    if isinstance(value, str) and re.fullmatch(r"\s*-?[0-9]+\s*", value):
        return int(value)
    raise EvaluationError(f"{where}: question_id must be an integer, got {value!r}")


def _index_records(records: Sequence[QARecord]) -> dict[int, QARecord]:
    """question_id -> record; duplicate ids or unknown types in the annotations are errors."""
    by_id: dict[int, QARecord] = {}
    dup: list[int] = []
    for r in records:
        if r.type not in QUESTION_TYPES:
            raise EvaluationError(f"annotation question_id {r.question_id} has type {r.type!r}, "
                                  f"not one of the 9 MUSIC-AVQA types")
        if r.question_id in by_id:
            dup.append(r.question_id)
        by_id[r.question_id] = r
    if dup:
        raise EvaluationError(f"{len(dup)} duplicate question_id(s) in the annotations: {_some(set(dup))}")
    return by_id


def _match(predictions: Sequence[Mapping[str, Any]], by_id: Mapping[int, QARecord],
           require_all: bool) -> list[tuple[Mapping[str, Any], QARecord]]:
    """Pair every prediction with its annotation by question_id, or raise listing every kind of mismatch."""
    ids: list[int] = []
    for i, row in enumerate(predictions):
        if not isinstance(row, Mapping) or "question_id" not in row or "pred" not in row:
            raise EvaluationError(f"prediction {i}: needs at least 'question_id' and 'pred', got {row!r}")
        if not isinstance(row["pred"], str):
            raise EvaluationError(f"prediction {i}: 'pred' must be an answer string, got {row['pred']!r}")
        ids.append(_question_id(row["question_id"], f"prediction {i}"))
    counts = Counter(ids)
    problems = []
    dup = [q for q, c in counts.items() if c > 1]
    if dup:
        problems.append(f"{len(dup)} question_id(s) predicted more than once: {_some(dup)}")
    unknown = [q for q in counts if q not in by_id]
    if unknown:
        problems.append(f"{len(unknown)} predicted question_id(s) not in the annotations: {_some(unknown)}")
    if require_all:
        missing = [q for q in by_id if q not in counts]
        if missing:
            problems.append(f"{len(missing)} of {len(by_id)} annotated question_id(s) have no prediction: "
                            f"{_some(missing)}")
    if problems:
        raise EvaluationError("predictions do not match the annotations: " + "; ".join(problems))
    return [(row, by_id[q]) for row, q in zip(predictions, ids)]


def _accuracy(correct: int, total: int) -> float | None:
    return correct / total if total else None


def compute_report(predictions: Sequence[Mapping[str, Any]], records: Sequence[QARecord]) -> dict:
    """The REPORT dict (module docstring) for `predictions` (rows with question_id and pred) on `records`.

    A pred outside the 42 answers is scored as wrong, with one warning per call (a model cannot produce one,
    so it points at a foreign predictions file or a spelling mismatch such as 'acoustic guitar').
    """
    if not records:
        raise EvaluationError("the annotations hold no questions; nothing to evaluate")
    pairs = _match(predictions, _index_records(records), require_all=True)

    total = Counter()
    right = Counter()
    foreign = []
    for row, rec in pairs:
        total[rec.type] += 1
        right[rec.type] += int(row["pred"] == rec.answer)
        if row["pred"] not in _ANSWER_SET:
            foreign.append(row["pred"])
    if foreign:
        examples = ", ".join(repr(p) for p in sorted(set(foreign))[:_SHOW_IDS])
        warnings.warn(f"{len(foreign)} prediction(s) are not among the {len(ANSWERS)} answers and count as wrong "
                      f"(e.g. {examples})", stacklevel=2)

    groups = {}
    for group, types in TABLE_LAYOUT:
        groups[group] = _accuracy(sum(right[t] for t in types), sum(total[t] for t in types))
    n = sum(total.values())
    return {
        "n": n,
        "overall": sum(right.values()) / n,
        "groups": groups,
        "types": {t: _accuracy(right[t], total[t]) for t in QUESTION_TYPES},
    }


def enrich_predictions(rows: Sequence[Mapping[str, Any]], records: Sequence[QARecord]) -> list[dict]:
    """Prediction rows with their annotation attached, in the order of `rows`, ready for analysis tools.

    Output keys: question_id, video_id, question, type, answer, pred, [score, teacher_pred, top5 when present,
    then any other keys of the row], correct. The annotation's answer wins over an `answer` the row may carry.
    Unknown or duplicate ids are errors; a subset of the annotations is fine (compute_report checks coverage).
    """
    out = []
    for row, rec in _match(rows, _index_records(records), require_all=False):
        new = {"question_id": rec.question_id, "video_id": rec.video_id, "question": rec.question,
               "type": rec.type, "answer": rec.answer, "pred": row["pred"]}
        for key in OPTIONAL_PRED_KEYS:
            if key in row:
                new[key] = row[key]
        for key, value in row.items():
            if key not in new and key != "correct":
                new[key] = value
        new["correct"] = row["pred"] == rec.answer
        out.append(new)
    return out


# ----------------------------------------------------------------------------------------------------------------
# table


def _pct(acc: float | None) -> str:
    return "n/a" if acc is None else f"{100 * acc:.2f}"


def format_comparison(reports: Mapping[str, Mapping[str, Any]]) -> str:
    """One markdown table, one row per named report (e.g. the variants of bench/ablations.py)."""
    head = ["Model"]
    for group, types in TABLE_LAYOUT:
        head += [f"{group} {t.split('/')[1]}" for t in types] + [f"{group} Avg"]
    head += ["Overall", "n"]
    lines = ["| " + " | ".join(head) + " |", "|:---|" + "---:|" * (len(head) - 1)]
    for name, report in reports.items():
        cells = [name]
        for group, types in TABLE_LAYOUT:
            cells += [_pct(report["types"][t]) for t in types] + [_pct(report["groups"][group])]
        cells += [_pct(report["overall"]), str(report["n"])]
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines)


def format_table(report: Mapping[str, Any], label: str = "result") -> str:
    """The MUSIC-AVQA table of one report as markdown: percentages with 2 decimals, 'n/a' for unmeasured."""
    return format_comparison({label: report})


# ----------------------------------------------------------------------------------------------------------------
# files


def _json_default(value: Any) -> Any:
    # numpy / torch scalars and arrays from a model's outputs
    if hasattr(value, "tolist"):
        return value.tolist()
    raise TypeError(f"not JSON serialisable: {type(value).__name__}")


def write_predictions(path: str | os.PathLike, rows: Iterable[Mapping[str, Any]]) -> None:
    """Write prediction rows as JSONL, atomically (rows are serialised before the file is touched)."""
    text = "".join(json.dumps(dict(r), default=_json_default, ensure_ascii=False) + "\n" for r in rows)
    write_text_atomic(path, text)


def write_report(path: str | os.PathLike, report: Mapping[str, Any]) -> None:
    """Write a REPORT as indented JSON, atomically."""
    write_text_atomic(path, json.dumps(report, indent=2) + "\n")


def read_predictions(path: str | os.PathLike) -> list[dict]:
    """Rows of a predictions JSONL file; each must be an object with at least question_id and pred.

    Blank lines are skipped; any other bad line is an EvaluationError naming the file and its line number.
    """
    path = Path(path)
    try:
        lines = path.read_text(encoding="utf-8").splitlines()
    except FileNotFoundError:
        raise EvaluationError(f"predictions file not found: {path}") from None
    except (OSError, UnicodeDecodeError) as exc:
        raise EvaluationError(f"cannot read predictions file {path}: {exc}") from None
    rows = []
    for number, line in enumerate(lines, start=1):
        if not line.strip():
            continue
        try:
            row = json.loads(line)
        except json.JSONDecodeError as exc:
            raise EvaluationError(f"{path}, line {number}: not valid JSON ({exc.msg})") from None
        if not isinstance(row, dict):
            raise EvaluationError(f"{path}, line {number}: expected a JSON object, got {type(row).__name__}")
        missing = [k for k in ("question_id", "pred") if k not in row]
        if missing:
            raise EvaluationError(f"{path}, line {number}: missing key(s) {', '.join(missing)}")
        rows.append(row)
    return rows


# ----------------------------------------------------------------------------------------------------------------
# CLI


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.description = (
        "Evaluate a checkpoint on a split (--checkpoint ... --data ...), or score an existing predictions file "
        "(--predictions ... --annotations ...). Prints the MUSIC-AVQA per-type table.")
    parser.add_argument("--checkpoint", metavar="DIR", help="checkpoint folder to evaluate")
    parser.add_argument("--data", metavar="OUT", help="benchmark folder holding avqa-<split>.json (with --checkpoint)")
    parser.add_argument("--split", default=None, help="split to evaluate with --checkpoint (default: test)")
    parser.add_argument("--features", metavar="CACHE", help="feature cache from `mcd extract` (with --checkpoint)")
    parser.add_argument("--batch-size", type=int, default=None, help="questions per batch (with --checkpoint)")
    parser.add_argument("--predictions", metavar="PRED.jsonl",
                        help="with --checkpoint: where to write predictions; otherwise: the predictions to score")
    parser.add_argument("--annotations", metavar="FILE.json", help="MUSIC-AVQA annotations to score against")
    parser.add_argument("--report", metavar="REPORT.json", help="write the REPORT JSON here (atomically)")
    parser.add_argument("--device", default="auto", metavar="auto|cpu|cuda[:N]",
                        help="where the model and encoders run with --checkpoint (default: auto = CUDA when present)")


def run(args: argparse.Namespace) -> int:
    if args.checkpoint is not None:
        return evaluate_checkpoint(args)
    return evaluate_predictions_file(args)


def finish(rows: Sequence[Mapping[str, Any]], records: Sequence[QARecord], report_path: str | None,
           predictions_path: str | None = None) -> dict:
    """Score `rows`, then write the enriched predictions (if a path is given) and the report, and print the table.

    Everything is validated before anything is written, so a failed run leaves earlier files untouched.
    """
    try:
        enriched = enrich_predictions(rows, records)
        report = compute_report(enriched, records)
    except EvaluationError as exc:
        raise CLIError(str(exc)) from None
    if predictions_path is not None:
        write_predictions(predictions_path, enriched)
    if report_path is not None:
        write_report(report_path, report)
    print(format_table(report))
    return report


def _load_records(path: str) -> list[QARecord]:
    from mcd.data.music_avqa import load_annotations  # imported here: scoring a file needs no dataset code

    if not Path(path).is_file():
        raise CLIError(f"annotations file not found: {path}")
    try:
        return load_annotations(path)
    except ValueError as exc:  # the loader's errors are ValueErrors with a message meant for a person
        raise CLIError(f"cannot load annotations {path}: {exc}") from None


def evaluate_predictions_file(args: argparse.Namespace) -> int:
    """`mcd evaluate --predictions PRED.jsonl --annotations FILE.json [--report REPORT.json]`."""
    stray = [flag for flag, value in (("--data", args.data), ("--split", args.split), ("--features", args.features),
                                      ("--batch-size", args.batch_size)) if value is not None]
    if stray:
        raise CLIError(f"{', '.join(stray)} only make(s) sense with --checkpoint")
    if args.predictions is None or args.annotations is None:
        raise CLIError("give --checkpoint DIR --data OUT, or --predictions PRED.jsonl --annotations FILE.json")
    try:
        rows = read_predictions(args.predictions)
    except EvaluationError as exc:
        raise CLIError(str(exc)) from None
    records = _load_records(args.annotations)
    finish(rows, records, report_path=args.report)
    return 0


def evaluate_checkpoint(args: argparse.Namespace) -> int:
    """`mcd evaluate --checkpoint DIR --data OUT [--split test] [--features CACHE] --predictions PRED.jsonl
    --report REPORT.json`: predict every question of the split (clips decoded from their files unless a feature
    cache is given), then score, write and print through `finish`."""
    from mcd.model.checkpoint import CheckpointError
    from mcd.data.features import FeatureCacheError
    from mcd.device import configure_cuda, resolve_device
    from mcd.evaluation.inference import predict_split

    device = resolve_device(args.device, announce=True)
    configure_cuda(device)
    if args.data is None:
        raise CLIError("--checkpoint needs --data OUT (the benchmark folder with avqa-<split>.json and videos/)")
    if args.annotations is not None:
        raise CLIError("--annotations is for scoring a predictions file; with --checkpoint use --data and --split")
    split = args.split or "test"
    try:
        rows, records = predict_split(args.checkpoint, args.data, split, features=args.features,
                                      batch_size=args.batch_size or 128, device=device)
    except (CheckpointError, FeatureCacheError, FileNotFoundError) as exc:
        raise CLIError(str(exc)) from None
    except ValueError as exc:  # annotation errors
        raise CLIError(str(exc)) from None
    finish(rows, records, args.report, args.predictions)
    return 0
