"""Running a model over batches into prediction rows (the rows `mcd evaluate` writes and reads).

Rows carry the question_id of each question, never its position, so types are looked up by id downstream
(the reference MUSIC-AVQA scripts index types by batch position and mis-assign them at batch size > 1).
"""
from __future__ import annotations

from typing import Iterable

import torch

from mcd.device import model_device, move, resolve_device
from mcd.task.vocab import ANSWERS


@torch.no_grad()
def prediction_rows(model, batches: Iterable, head: str = "student", top_k: int = 5) -> list[dict]:
    """`{question_id, pred, score, teacher_pred, teacher_score, top5}` per question; `head` picks the deciding head.
    Batches go to the model's device (non-blocking from pinned memory); the rows are made on the CPU."""
    if head not in ("student", "teacher"):
        raise ValueError(f"head must be 'student' or 'teacher', not {head!r}")
    device = model_device(model)
    was_training = model.training
    model.eval()
    rows = []
    for batch in batches:
        inputs = batch.model_inputs()
        inputs.pop("labels", None)
        if device.type != "cpu":
            inputs = move(inputs, device, non_blocking=True)
        out = model(**inputs)
        student = out.logits.float().softmax(-1).cpu()
        teacher = out.teacher_logits.float().softmax(-1).cpu()
        probs = student if head == "student" else teacher
        top_p, top_i = probs.topk(top_k, dim=-1)
        t_p, t_i = teacher.max(-1)
        for j, qid in enumerate(batch.question_ids):
            rows.append({
                "question_id": int(qid),
                "pred": ANSWERS[int(top_i[j, 0])],
                "score": round(float(top_p[j, 0]), 6),
                "teacher_pred": ANSWERS[int(t_i[j])],
                "teacher_score": round(float(t_p[j]), 6),
                "top5": [[ANSWERS[int(i)], round(float(p), 6)] for p, i in zip(top_p[j], top_i[j])],
            })
    model.train(was_training)
    return rows


def accuracy(rows: list[dict], answers: dict[int, str], key: str = "pred") -> float:
    """Fraction of rows whose `key` equals the annotated answer of their question_id."""
    if not rows:
        return 0.0
    return sum(r[key] == answers[r["question_id"]] for r in rows) / len(rows)


def predict_split(checkpoint, data, split: str = "test", features=None, batch_size: int = 128,
                  head: str | None = None, workers: int = 2, progress: bool = True, device=None):
    """Prediction rows and records for `data/avqa-<split>.json` with a checkpoint.

    Features come from `features` (a FeatureCache written with this checkpoint's encoders) or, when none is given,
    from decoding every clip of the split from its video file (`data/videos/`), exactly as the demo would.
    `device` (a torch.device or auto/cpu/cuda[:N]; default the CPU) runs the model and the encoders.
    """
    import tempfile
    from pathlib import Path

    from mcd.model.checkpoint import load_checkpoint
    from mcd.data.dataset import QADataset, record_objects
    from mcd.data.extract import benchmark_videos, encoder_meta, extract
    from mcd.data.features import FeatureCache, FeatureCacheError
    from mcd.data.music_avqa import load_annotations
    from mcd.data.text_bank import TextBank
    from mcd.encoders.encoder_set import EncoderSet

    data = Path(data)
    device = resolve_device(device or "cpu")
    loaded = load_checkpoint(checkpoint)
    model = loaded.model.eval().to(device)
    encoders = EncoderSet.from_specs(loaded.config["encoders"], loaded.extra_tensors, device=device)
    T = int(loaded.config.get("T", model.config.T))
    head = head or loaded.config.get("provenance", {}).get("head", "student")
    records = load_annotations(data / f"avqa-{split}.json")
    tmp = None
    if features is None:
        tmp = tempfile.TemporaryDirectory(prefix="mcd-eval-")
        cache = FeatureCache(tmp.name, meta=encoder_meta(encoders, T))
        result = extract(benchmark_videos(data, [split]), encoders, cache, T, workers=workers, progress=progress,
                         device=device)
        if result["failed"]:
            raise FeatureCacheError(f"{len(result['failed'])} clips could not be decoded, e.g. "
                                    f"{next(iter(result['failed'].items()))}")
    else:
        cache = FeatureCache(features)
        cache.check_meta(encoder_meta(encoders, T), checkpoint)
    try:
        bank = TextBank(encoders.text, [r.question for r in records], [record_objects(r) for r in records])
        dataset = QADataset(records, cache.load, bank)
        rows = prediction_rows(model, dataset.loader(batch_size, shuffle=False, pin_memory=device.type == "cuda"),
                               head=head)
    finally:
        if tmp is not None:
            tmp.cleanup()
    return rows, records
