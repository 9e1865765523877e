"""Read MUSIC-AVQA annotation files (avqa-{train,val,test}.json and the json_update variants) into records.

Each file is a JSON list of 7-key records:
    video_id, question_id, type ('["Audio-Visual", "Existential"]', a JSON string), question_content (the
    template), templ_values ('["ukulele"]', a JSON string), question_deleted (0/1), anser (sic: the answer).
The filled question is built exactly as the public loaders build it (`mcd.task.questions.fill_template`).

Records with question_deleted == 1 are skipped: the dataset authors marked them as withdrawn and the public
loaders never train or evaluate on them. Everything else must be well formed; a malformed record raises
`AnnotationError` naming the file, the record and the problem, because a silently dropped or mislabelled
question would skew the per-type accuracies that MUSIC-AVQA results are compared on.
"""
from __future__ import annotations

import json
from collections import Counter
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, NoReturn

from mcd.task.questions import QUESTION_TYPES, SLOT_DOMAINS, TEMPLATE_BY_TEXT, fill_template
from mcd.task.vocab import ANSWERS, INSTRUMENTS

REQUIRED_KEYS = ("video_id", "question_id", "type", "question_content", "templ_values", "question_deleted", "anser")
_ANSWER_SET = frozenset(ANSWERS)


class AnnotationError(ValueError):
    """A MUSIC-AVQA annotation file or record that cannot be read as the format defines it."""


@dataclass(frozen=True)
class QARecord:
    """One question about one clip; `type` is "Modality/Kind", `keywords` the template slot values in order."""

    question_id: int
    video_id: str
    template: str
    question: str
    type: str
    modality: str
    kind: str
    keywords: tuple[str, ...]
    answer: str


def _json_list(value: Any, what: str, fail: Callable[[str], NoReturn]) -> list:
    """Decode a field stored as a JSON string list (an already-decoded list is accepted as is)."""
    if isinstance(value, str):
        try:
            value = json.loads(value)
        except json.JSONDecodeError as e:
            fail(f"{what} {value!r} is not valid JSON ({e.msg})")
    if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
        fail(f"{what} {value!r} is not a JSON list of strings")
    return value


def _record(raw: Any, index: int, path: Path) -> QARecord | None:
    """Validate and convert one raw record; None for a deleted question."""
    qid = raw.get("question_id") if isinstance(raw, dict) else None

    def fail(problem: str) -> NoReturn:
        raise AnnotationError(f"{path}: record {index} (question_id {qid!r}): {problem}")

    if not isinstance(raw, dict):
        fail(f"expected a JSON object, got {type(raw).__name__}")
    missing = [k for k in REQUIRED_KEYS if k not in raw]
    if missing:
        fail(f"missing key(s) {', '.join(missing)}")
    if raw["question_deleted"] not in (0, 1):  # True/False compare equal to 1/0 and are accepted too
        fail(f"question_deleted must be 0 or 1, got {raw['question_deleted']!r}")
    if raw["question_deleted"] == 1:
        return None
    if isinstance(qid, bool) or not isinstance(qid, int):
        fail(f"question_id must be an integer, got {qid!r}")
    if not isinstance(raw["video_id"], str) or not raw["video_id"]:
        fail(f"video_id must be a non-empty string, got {raw['video_id']!r}")

    template_text = raw["question_content"]
    template = TEMPLATE_BY_TEXT.get(template_text) if isinstance(template_text, str) else None
    if template is None:
        fail(f"unknown template {template_text!r} (not one of the 33 MUSIC-AVQA templates)")

    type_parts = _json_list(raw["type"], "type", fail)
    qtype = "/".join(type_parts)
    if len(type_parts) != 2 or qtype not in QUESTION_TYPES:
        fail(f"type {raw['type']!r} is not one of the 9 question types ([modality, kind])")
    if qtype != template.type:
        fail(f"type {qtype!r} does not match the type {template.type!r} of template {template.text!r}")

    values = _json_list(raw["templ_values"], "templ_values", fail)
    if len(values) != len(template.slots):
        fail(f"template {template.text!r} has {len(template.slots)} slot(s) but templ_values has "
             f"{len(values)}: {values}")
    for slot, value in zip(template.slots, values):
        domain = INSTRUMENTS if slot == "<Object>" else SLOT_DOMAINS[slot]
        if value not in domain:
            fail(f"templ_values item {value!r} is not a valid {slot} value ({', '.join(domain)})")

    answer = raw["anser"]
    if answer not in _ANSWER_SET:
        fail(f"answer {answer!r} is not one of the {len(ANSWERS)} MUSIC-AVQA answers")

    return QARecord(question_id=qid, video_id=raw["video_id"], template=template.text,
                    question=fill_template(template.text, values), type=qtype, modality=template.modality,
                    kind=template.kind, keywords=tuple(values), answer=answer)


def load_annotations(path: str | Path) -> list[QARecord]:
    """All non-deleted records of a MUSIC-AVQA annotation file, in file order.

    Raises FileNotFoundError for a missing file and AnnotationError for anything malformed, including
    question_ids that occur more than once (listed, never merged: evaluation looks types up by question_id).
    """
    path = Path(path)
    try:
        with path.open(encoding="utf-8") as f:
            data = json.load(f)
    except json.JSONDecodeError as e:
        raise AnnotationError(f"{path}: not valid JSON ({e.msg} at line {e.lineno}, column {e.colno})") from None
    except UnicodeDecodeError as e:
        raise AnnotationError(f"{path}: not UTF-8 text ({e.reason} at byte {e.start})") from None
    if not isinstance(data, list):
        raise AnnotationError(f"{path}: expected a JSON list of records, got a JSON {type(data).__name__}")

    records = [r for i, raw in enumerate(data) if (r := _record(raw, i, path)) is not None]

    counts = Counter(r.question_id for r in records)
    duplicates = sorted(q for q, n in counts.items() if n > 1)
    if duplicates:
        shown = ", ".join(f"{q} (x{counts[q]})" for q in duplicates[:20])
        more = f" and {len(duplicates) - 20} more" if len(duplicates) > 20 else ""
        raise AnnotationError(f"{path}: {len(duplicates)} question_id(s) occur more than once: {shown}{more}")
    return records


def records_by_id(records: list[QARecord]) -> dict[int, QARecord]:
    """Records keyed by question_id; raises ValueError on a repeated id rather than keeping one silently."""
    out: dict[int, QARecord] = {}
    for r in records:
        if r.question_id in out:
            raise ValueError(f"question_id {r.question_id} occurs more than once")
        out[r.question_id] = r
    return out


def type_counts(records: list[QARecord]) -> Counter[str]:
    """Number of records per question type ("Modality/Kind")."""
    return Counter(r.type for r in records)
