"""The analysis of an evaluation run (`mcd evaluate --predictions`): load and score a predictions file per type,
filter its rows, export them, find a row's clip. The demo's Analysis tab shows what this returns."""
from __future__ import annotations

import csv
import json
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Sequence

import pandas as pd

ANALYSIS_COLUMNS = ["question_id", "video_id", "type", "question", "answer", "pred", "score", "teacher_pred",
                    "correct"]
TYPE_COLUMNS = ["type", "questions", "accuracy (%)", "teacher accuracy (%)"]
ALL = "All"
VIDEO_ID = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]*$")


@dataclass
class Analysis:
    rows: list[dict]
    report: dict
    teacher_report: dict | None
    note: str


def load_analysis(predictions: str | Path, annotations: str | Path | None = None) -> Analysis:
    """Rows of an `mcd evaluate` predictions file, scored per type (ValueError with a readable message).

    Files written by `mcd evaluate --checkpoint` already carry type and answer; bare rows (question_id + pred)
    need the annotations. Annotations covering more questions than were predicted are restricted to the
    predicted ones, and the note says so.
    """
    from mcd.data.music_avqa import QARecord, load_annotations
    from mcd.evaluation.evaluate import EvaluationError, compute_report, enrich_predictions, read_predictions

    try:
        rows = read_predictions(predictions)
    except EvaluationError as exc:
        raise ValueError(str(exc)) from None
    if not rows:
        raise ValueError("the predictions file holds no rows")
    note = f"{len(rows)} predictions"
    if annotations:
        try:
            records = load_annotations(annotations)
        except (ValueError, OSError) as exc:
            raise ValueError(f"cannot read the annotations: {exc}") from None
        predicted = set()
        for r in rows:
            try:
                predicted.add(int(r["question_id"]))
            except (TypeError, ValueError):
                raise ValueError(f"question_id {r['question_id']!r} is not an integer") from None
        kept = [r for r in records if r.question_id in predicted]
        if len(kept) < len(records):
            note += f"; scored against {len(kept)} of the {len(records)} annotated questions (the predicted ones)"
        records = kept
    else:
        missing = [k for k in ("type", "answer", "video_id", "question") if any(k not in r for r in rows)]
        if missing:
            raise ValueError(f"the rows lack {', '.join(missing)}: load the annotations file too (or use the "
                             "predictions written by `mcd evaluate --checkpoint ... --predictions`)")
        records = []
        for r in rows:
            modality, _, kind = str(r["type"]).partition("/")
            records.append(QARecord(question_id=int(r["question_id"]), video_id=str(r["video_id"]), template="",
                                    question=str(r["question"]), type=str(r["type"]), modality=modality,
                                    kind=kind, keywords=(), answer=str(r["answer"])))
    try:
        enriched = enrich_predictions(rows, records)
        report = compute_report(enriched, records)
        teacher = None
        if all("teacher_pred" in r for r in enriched):
            teacher = compute_report([{**r, "pred": r["teacher_pred"]} for r in enriched], records)
    except EvaluationError as exc:
        raise ValueError(str(exc)) from None
    return Analysis(enriched, report, teacher, note)


def type_table(analysis: Analysis) -> pd.DataFrame:
    from mcd.evaluation.evaluate import TABLE_LAYOUT

    counts: dict[str, int] = {}
    for r in analysis.rows:
        counts[r["type"]] = counts.get(r["type"], 0) + 1

    def pct(v):
        return None if v is None else round(100 * v, 2)

    rows = []
    for group, types in TABLE_LAYOUT:
        for t in types:
            rows.append([t, counts.get(t, 0), pct(analysis.report["types"][t]),
                         pct(analysis.teacher_report["types"][t]) if analysis.teacher_report else None])
        rows.append([f"{group} (all)", sum(counts.get(t, 0) for t in types), pct(analysis.report["groups"][group]),
                     pct(analysis.teacher_report["groups"][group]) if analysis.teacher_report else None])
    rows.append(["Overall", analysis.report["n"], pct(analysis.report["overall"]),
                 pct(analysis.teacher_report["overall"]) if analysis.teacher_report else None])
    return pd.DataFrame(rows, columns=TYPE_COLUMNS)


def filter_rows(rows: Sequence[dict], wrong_only: bool = False, disagree_only: bool = False,
                qtype: str | None = ALL, gold: str | None = ALL, pred: str | None = ALL) -> list[dict]:
    """The rows that pass every active filter (ALL or None = no filter on that field)."""
    out = []
    for r in rows:
        if wrong_only and r.get("correct"):
            continue
        if disagree_only and ("teacher_pred" not in r or r["teacher_pred"] == r["pred"]):
            continue
        if qtype not in (None, ALL) and r.get("type") != qtype:
            continue
        if gold not in (None, ALL) and r.get("answer") != gold:
            continue
        if pred not in (None, ALL) and r.get("pred") != pred:
            continue
        out.append(r)
    return out


def analysis_frame(rows: Sequence[dict]) -> pd.DataFrame:
    def cell(r: dict, c: str):
        v = r.get(c)
        return round(v, 3) if isinstance(v, float) else v

    return pd.DataFrame([[cell(r, c) for c in ANALYSIS_COLUMNS] for r in rows], columns=ANALYSIS_COLUMNS)


def write_csv(rows: Sequence[dict], path: str | Path) -> Path:
    """The rows as CSV with the table's columns first, then any other keys (lists as JSON)."""
    extra = sorted({k for r in rows for k in r} - set(ANALYSIS_COLUMNS))
    columns = ANALYSIS_COLUMNS + extra
    path = Path(path)
    with open(path, "w", newline="", encoding="utf-8") as f:
        writer = csv.writer(f)
        writer.writerow(columns)
        for r in rows:
            writer.writerow([json.dumps(r[c]) if isinstance(r.get(c), (list, dict)) else r.get(c, "")
                             for c in columns])
    return path


def clip_for(folder: str | None, video_id: str) -> Path | None:
    """`<folder>/videos/<video_id>.mp4` (or `<folder>/<video_id>.mp4`) if it exists; None otherwise.

    video_id comes from an uploaded file, so it must be a plain name: no separators, no leading dot.
    """
    if not folder or not VIDEO_ID.match(str(video_id)):
        return None
    base = Path(folder).expanduser()
    for candidate in (base / "videos" / f"{video_id}.mp4", base / f"{video_id}.mp4"):
        if candidate.is_file():
            return candidate
    return None
