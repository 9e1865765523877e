"""Encoded question texts and text objects, shared by training, evaluation and the demo.

MUSIC-AVQA questions are templated, so a dataset of 60k questions holds a few thousand distinct strings and a few
dozen distinct text objects: each string is encoded once and looked up by index. Training and inference build text
objects through the same `object_phrases`, so the model sees at test time exactly what it was trained on.
"""
from __future__ import annotations

from typing import Sequence

import torch

KEYWORD, TYPE_WORD = 0, 1


def object_phrases(keywords: Sequence[str], modality: str | None, kind: str | None) -> tuple[list[str], list[int]]:
    """Text objects of one question: its keywords, then its two type words, with their kinds."""
    phrases = [k.replace("_", " ") for k in keywords]
    kinds = [KEYWORD] * len(phrases)
    for word in (modality, kind):
        if word:
            phrases.append(word.replace("-", " "))
            kinds.append(TYPE_WORD)
    return phrases, kinds


class TextBank:
    """Questions encoded once into a padded table; text objects into a phrase table."""

    def __init__(self, text_encoder, questions: Sequence[str], objects: Sequence[tuple[Sequence[str], Sequence[int]]],
                 batch_size: int = 256):
        unique_q = sorted(set(questions))
        self.question_index = {q: i for i, q in enumerate(unique_q)}
        token_chunks, mask_chunks = [], []
        for start in range(0, len(unique_q), batch_size):
            tokens, mask = text_encoder.encode_questions(list(unique_q[start:start + batch_size]))
            token_chunks.append(tokens)
            mask_chunks.append(mask)
        max_len = max((t.shape[1] for t in token_chunks), default=1)
        dim = text_encoder.dim
        self.question_tokens = torch.zeros(len(unique_q), max_len, dim)
        self.question_mask = torch.zeros(len(unique_q), max_len, dtype=torch.bool)
        row = 0
        for tokens, mask in zip(token_chunks, mask_chunks):
            n, length = tokens.shape[:2]
            self.question_tokens[row:row + n, :length] = tokens.float()
            self.question_mask[row:row + n, :length] = mask
            row += n
        unique_p = sorted({p for phrases, _ in objects for p in phrases})
        self.phrase_index = {p: i for i, p in enumerate(unique_p)}
        self.phrase_table = (text_encoder.encode_phrases(unique_p).float() if unique_p
                             else torch.zeros(0, dim))
        self.dim = dim

    def questions(self, texts: Sequence[str]) -> tuple[torch.Tensor, torch.Tensor]:
        """`[N,L,Dt]` tokens and `[N,L]` mask, trimmed to the longest question among `texts`."""
        idx = torch.tensor([self.question_index[t] for t in texts], dtype=torch.long)
        mask = self.question_mask[idx]
        length = max(int(mask.sum(1).max()), 1)
        return self.question_tokens[idx, :length], mask[:, :length]

    def objects(self, batch: Sequence[tuple[Sequence[str], Sequence[int]]]) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """`[N,K,Dt]` object embeddings, `[N,K]` mask and `[N,K]` kinds, padded to the most objects in the batch."""
        k = max([len(p) for p, _ in batch] + [1])
        emb = torch.zeros(len(batch), k, self.dim)
        mask = torch.zeros(len(batch), k, dtype=torch.bool)
        kinds = torch.zeros(len(batch), k, dtype=torch.long)
        for i, (phrases, phrase_kinds) in enumerate(batch):
            if phrases:
                rows = torch.tensor([self.phrase_index[p] for p in phrases])
                emb[i, :len(phrases)] = self.phrase_table[rows]
                mask[i, :len(phrases)] = True
                kinds[i, :len(phrases)] = torch.tensor(list(phrase_kinds))
        return emb, mask, kinds
