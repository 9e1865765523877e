"""Read the AVQA dataset (Yang et al., ACM MM 2022) and answer it as 4-way multiple choice.

AVQA annotation files (`train_qa.json`, `val_qa.json`) are JSON lists of records such as
    {"id": 183, "video_name": "-HG3Omg_89c_000030", "video_id": 341, "question_text": "What happened in the video?",
     "multi_choice": ["motorboat", "Yacht consignment", "Sailboat set sail", "Consignment car"], "answer": 1,
     "question_relation": "View", "question_type": "Happening"}
`answer` indexes `multi_choice`. Unlike MUSIC-AVQA there is no closed answer vocabulary: every question brings its
own four options, so a 42-way classifier does not apply.

How we answer it (our choice; the MCD paper does not say): the options are encoded by the same frozen text
encoder as the questions, the model produces one pooled answer representation per question (projected to the
text-embedding width by the caller), and each option is scored by the cosine between the two. `predict_choice`
takes the highest-scoring option; training uses cross-entropy over the four scores divided by a temperature
(`choice_loss`). Cosine keeps option scores comparable across questions whatever the embedding norms, which is
also how sentence-embedding models such as MiniLM are meant to be compared.
"""
from __future__ import annotations

import json
from collections import Counter
from dataclasses import dataclass
from pathlib import Path
from typing import Any, NoReturn, Sequence

import torch
import torch.nn.functional as F

NUM_CHOICES = 4
REQUIRED_KEYS = ("id", "video_name", "video_id", "question_text", "multi_choice", "answer",
                 "question_relation", "question_type")


class AVQAError(ValueError):
    """An AVQA annotation file or record that cannot be read as the format defines it."""


@dataclass(frozen=True)
class AVQARecord:
    """One AVQA question with its four options; `answer` is the index of the correct option."""

    id: int
    video_name: str
    video_id: int
    question_text: str
    multi_choice: tuple[str, str, str, str]
    answer: int
    question_relation: str
    question_type: str

    @property
    def answer_text(self) -> str:
        return self.multi_choice[self.answer]

    # The names the shared QA pipeline reads (TextBank, evaluation reports), so AVQA records travel the same way.
    @property
    def question_id(self) -> int:
        return self.id

    @property
    def question(self) -> str:
        return self.question_text


def _is_int(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _record(raw: Any, index: int, path: Path) -> AVQARecord:
    rid = raw.get("id") if isinstance(raw, dict) else None

    def fail(problem: str) -> NoReturn:
        raise AVQAError(f"{path}: record {index} (id {rid!r}): {problem}")

    if not isinstance(raw, dict):
        fail(f"expected a JSON object, got {type(raw).__name__}")
    missing = [k for k in REQUIRED_KEYS if k not in raw]
    if missing:
        fail(f"missing key(s) {', '.join(missing)}")
    for key in ("id", "video_id"):
        if not _is_int(raw[key]):
            fail(f"{key} must be an integer, got {raw[key]!r}")
    for key in ("video_name", "question_text", "question_relation", "question_type"):
        if not isinstance(raw[key], str) or not raw[key].strip():
            fail(f"{key} must be a non-empty string, got {raw[key]!r}")
    choices = raw["multi_choice"]
    if not isinstance(choices, list) or len(choices) != NUM_CHOICES:
        fail(f"multi_choice must be a list of {NUM_CHOICES} options, got {choices!r}")
    if not all(isinstance(c, str) and c.strip() for c in choices):
        fail(f"every multi_choice option must be a non-empty string, got {choices!r}")
    answer = raw["answer"]
    if not _is_int(answer) or not 0 <= answer < NUM_CHOICES:
        fail(f"answer must be an option index 0-{NUM_CHOICES - 1}, got {answer!r}")
    return AVQARecord(id=raw["id"], video_name=raw["video_name"], video_id=raw["video_id"],
                      question_text=raw["question_text"], multi_choice=tuple(choices), answer=answer,
                      question_relation=raw["question_relation"], question_type=raw["question_type"])


def load_avqa(path: str | Path) -> list[AVQARecord]:
    """All records of an AVQA annotation file, in file order.

    Raises FileNotFoundError for a missing file and AVQAError for malformed JSON, a malformed record (named by its
    position and id) or an id that occurs more than once (evaluation looks records up by id).
    """
    path = Path(path)
    try:
        with path.open(encoding="utf-8") as f:
            data = json.load(f)
    except json.JSONDecodeError as e:
        raise AVQAError(f"{path}: not valid JSON ({e.msg} at line {e.lineno}, column {e.colno})") from None
    except UnicodeDecodeError as e:
        raise AVQAError(f"{path}: not UTF-8 text ({e.reason} at byte {e.start})") from None
    if not isinstance(data, list):
        raise AVQAError(f"{path}: expected a JSON list of records, got a JSON {type(data).__name__}")
    records = [_record(raw, i, path) for i, raw in enumerate(data)]
    counts = Counter(r.id for r in records)
    repeated = sorted(i for i, n in counts.items() if n > 1)
    if repeated:
        raise AVQAError(f"{path}: {len(repeated)} id(s) occur more than once: {', '.join(map(str, repeated[:20]))}")
    return records


def option_texts(records: Sequence[AVQARecord]) -> list[str]:
    """The options of `records` flattened record-major (`4 * len(records)` strings), ready for `encode_phrases`."""
    return [c for r in records for c in r.multi_choice]


def score_choices(option_embeddings: torch.Tensor, answer_embedding: torch.Tensor) -> torch.Tensor:
    """Cosine similarity `[N, 4]` between each question's answer representation `[N, D]` and its options `[N, 4, D]`."""
    if option_embeddings.ndim != 3 or option_embeddings.shape[1] != NUM_CHOICES:
        raise ValueError(f"option_embeddings must be [N, {NUM_CHOICES}, D], got {tuple(option_embeddings.shape)}")
    if answer_embedding.ndim != 2:
        raise ValueError(f"answer_embedding must be [N, D], got {tuple(answer_embedding.shape)}")
    n, _, d = option_embeddings.shape
    if answer_embedding.shape != (n, d):
        raise ValueError(f"answer_embedding {tuple(answer_embedding.shape)} does not match option_embeddings "
                         f"{tuple(option_embeddings.shape)}: expected [{n}, {d}]")
    return F.cosine_similarity(option_embeddings, answer_embedding[:, None, :], dim=-1)


def predict_choice(option_embeddings: torch.Tensor, answer_embedding: torch.Tensor) -> torch.Tensor:
    """Index `[N]` of the best-scoring option per question."""
    return score_choices(option_embeddings, answer_embedding).argmax(dim=-1)


def choice_loss(option_embeddings: torch.Tensor, answer_embedding: torch.Tensor, answers: torch.Tensor,
                temperature: float = 0.07) -> torch.Tensor:
    """Cross-entropy over the four cosine scores (sharpened by `temperature`) against the correct option index."""
    if temperature <= 0:
        raise ValueError(f"temperature must be positive, got {temperature}")
    return F.cross_entropy(score_choices(option_embeddings, answer_embedding) / temperature, answers)
