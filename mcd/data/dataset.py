"""Question-answer batches over cached clip features, grouped by video.

A batch holds all questions of a few videos: each clip's features are loaded once per batch and expanded to its
questions, and the model's contrastive loss knows which rows share a clip (`video_index`), so same-video pairs are
never used as negatives.
"""
from __future__ import annotations

import random
from dataclasses import dataclass
from typing import Callable, Iterator, Sequence

import torch

from mcd.data.mirror import mirror_record, mirror_visual
from mcd.data.text_bank import TextBank, object_phrases
from mcd.model.grounding import GroundingTargets
from mcd.task.questions import type_index
from mcd.task.vocab import answer_to_index


@dataclass
class Batch:
    """Model inputs for a batch of questions plus what evaluation needs to report them."""

    visual: torch.Tensor          # [V,T,P,Dv], one row per distinct clip of the batch
    audio: torch.Tensor           # [V,T,Da]
    question: torch.Tensor        # [B,L,Dt]
    question_mask: torch.Tensor   # [B,L]
    objects: torch.Tensor         # [B,K,Dt]
    objects_mask: torch.Tensor    # [B,K]
    objects_kind: torch.Tensor    # [B,K]
    labels: torch.Tensor          # [B]
    video_index: torch.Tensor     # [B], the clip row of each question
    question_ids: list[int]
    grounding: GroundingTargets | None = None   # what each keyword points at (training with object_grounding)
    question_type: torch.Tensor | None = None   # [B] index into QUESTION_TYPES (-1 unknown): the expert's weight

    def model_inputs(self) -> dict:
        inputs = dict(visual=self.visual, audio=self.audio, question=self.question, question_mask=self.question_mask,
                      objects=self.objects, objects_mask=self.objects_mask, objects_kind=self.objects_kind,
                      labels=self.labels, video_index=self.video_index)
        if self.grounding is not None:
            inputs["grounding"] = self.grounding
        if self.question_type is not None:
            inputs["question_type"] = self.question_type
        return inputs

    def to(self, device: torch.device | str, non_blocking: bool = False) -> "Batch":
        """This batch with its tensors (the grounding targets' too) on `device`; on their own device, itself."""
        from mcd.device import move

        return move(self, torch.device(device), non_blocking)

    def pin_memory(self) -> "Batch":
        """This batch in pinned memory (a DataLoader with `pin_memory=True` calls it), so `to(cuda,
        non_blocking=True)` copies while the GPU computes."""
        from mcd.device import pin

        return pin(self)


def record_objects(record) -> tuple[list[str], list[int]]:
    """The text objects of an annotated record (its keywords and type words)."""
    return object_phrases(record.keywords, record.modality, record.kind)


class VideoGroupedBatches:
    """Batches of whole videos' questions (~`batch_size` questions each); reshuffled per epoch; DDP-aware.

    With `world_size > 1` every rank builds the same shuffled batches and takes every `world_size`-th clip of each:
    the ranks' shares of a step are the questions one process would see in that step, so a run makes the same
    optimizer steps over the same questions whatever the number of processes. A batch with fewer clips than
    ranks (at most the last one) is dropped, as every rank must take part in every step (DDP would hang).

    With `mirror`, each video is seen in a mirror (see mcd.data.mirror) in about half the epochs, drawn per
    (seed, epoch, video) from its own generator, so the batches themselves are those of `mirror` off. The batch
    then holds `(index, mirrored)` pairs instead of indices.
    """

    def __init__(self, records: Sequence, batch_size: int, shuffle: bool, seed: int = 0,
                 rank: int = 0, world_size: int = 1, mirror: bool = False):
        self.by_video: dict[str, list[int]] = {}
        for i, r in enumerate(records):
            self.by_video.setdefault(r.video_id, []).append(i)
        self.batch_size, self.shuffle, self.seed = batch_size, shuffle, seed
        self.rank, self.world_size, self.epoch = rank, world_size, 0
        self.mirror = mirror

    def set_epoch(self, epoch: int) -> None:
        self.epoch = epoch

    def _batches(self) -> list[list[int]]:
        videos = sorted(self.by_video)
        if self.shuffle:
            random.Random(self.seed * 100_003 + self.epoch).shuffle(videos)
        flips = random.Random(f"mirror-{self.seed}-{self.epoch}")
        batches, current, size = [], [], 0      # a batch is a list of clips, each the list of its questions
        for v in videos:
            if self.mirror:
                mirrored = flips.random() < 0.5
                current.append([(i, mirrored) for i in self.by_video[v]])
            else:
                current.append(self.by_video[v])
            size += len(current[-1])
            if size >= self.batch_size:
                batches.append(current)
                current, size = [], 0
        if current:
            batches.append(current)
        if self.world_size > 1:
            batches = [b[self.rank::self.world_size] for b in batches if len(b) >= self.world_size]
        return [[item for clip in batch for item in clip] for batch in batches]

    def __iter__(self) -> Iterator[list[int]]:
        return iter(self._batches())

    def __len__(self) -> int:
        return len(self._batches())


class QADataset(torch.utils.data.Dataset):
    """Indexable records; `collate` turns a list of indices' items into a `Batch`.

    `load_features(video_id) -> {"visual": [T,P,Dv], "audio": [T,Da]}` is a FeatureCache.load or a reader of the
    released MUSIC-AVQA features; `text_bank` holds the encoded questions and objects; `grounding` (a
    mcd.synth.grounding.SceneGrounding, training with object_grounding) adds what each keyword points at.
    """

    def __init__(self, records: Sequence, load_features: Callable[[str], dict], text_bank: TextBank,
                 grounding=None):
        self.records = list(records)
        self.load_features = load_features
        self.text_bank = text_bank
        self.grounding = grounding

    def __len__(self) -> int:
        return len(self.records)

    def __getitem__(self, i: int | tuple[int, bool]):
        """A record, or a `(record, mirrored)` pair for an `(index, mirrored)` item of a mirroring sampler."""
        if isinstance(i, tuple):
            return self.records[i[0]], bool(i[1])
        return self.records[i]

    def collate(self, items: Sequence) -> Batch:
        """Records (or `(record, mirrored)` pairs, whole videos at a time) -> one Batch."""
        pairs = [x if isinstance(x, tuple) else (x, False) for x in items]
        records = [r for r, _ in pairs]
        mirrored = {r.video_id for r, m in pairs if m}
        video_ids = list(dict.fromkeys(r.video_id for r in records))
        feats = [self.load_features(v) for v in video_ids]
        if mirrored:
            feats = [{**f, "visual": mirror_visual(f["visual"])} if v in mirrored else f
                     for v, f in zip(video_ids, feats)]
            records = [mirror_record(r) if r.video_id in mirrored else r for r in records]
        slot = {v: i for i, v in enumerate(video_ids)}
        video_index = torch.tensor([slot[r.video_id] for r in records], dtype=torch.long)
        # each clip once: the model runs its audio-visual part per clip and indexes questions into it
        visual = torch.stack([f["visual"] for f in feats])
        audio = torch.stack([f["audio"] for f in feats])
        question, question_mask = self.text_bank.questions([r.question for r in records])
        objects, objects_mask, objects_kind = self.text_bank.objects([record_objects(r) for r in records])
        labels = torch.tensor([answer_to_index(r.answer) for r in records], dtype=torch.long)
        grounding = None
        if self.grounding is not None:
            grounding = self.grounding.targets([r.video_id for r in records], [r.keywords for r in records],
                                               objects.shape[1])
        question_type = torch.tensor([type_index(r.type) for r in records], dtype=torch.long)
        return Batch(visual, audio, question, question_mask, objects, objects_mask, objects_kind, labels,
                     video_index, [r.question_id for r in records], grounding, question_type)

    def loader(self, batch_size: int, shuffle: bool, seed: int = 0, num_workers: int = 0,
               rank: int = 0, world_size: int = 1, mirror: bool = False,
               pin_memory: bool = False) -> torch.utils.data.DataLoader:
        """Video-grouped batches; `mirror` (training only) sees each clip in a mirror in about half the epochs;
        `pin_memory` (for a CUDA model) hands out batches in page-locked memory."""
        sampler = VideoGroupedBatches(self.records, batch_size, shuffle, seed, rank, world_size, mirror)
        return torch.utils.data.DataLoader(self, batch_sampler=sampler, collate_fn=self.collate,
                                           num_workers=num_workers, persistent_workers=num_workers > 0,
                                           pin_memory=pin_memory)
