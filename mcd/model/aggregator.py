"""The hierarchical aggregator: the question gathers key audio-visual clues.

One aggregator serves both branches (visual and audio) when `shared_aggregator` is on [F]. Per question token:
the question queries the low level (unimodal features; for vision the T·P patch tokens, which gives spatial
clues), the updated query queries the high level (the associated segment features), the gathered clue is the
hint written back into the question tokens, and the hinted tokens then attend to the text objects.

Nothing mixes question tokens with each other here, so padded question tokens cannot influence real ones;
they are excluded again when the clues are averaged over question tokens.
"""
from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn as nn

from mcd.model.association import FeedForward, MultiHeadAttention
from mcd.model.dropout import Dropout


@dataclass
class BranchOutput:
    """What one branch hands back: the clue-attached tokens and the raw attention maps (per question token)."""

    tokens: torch.Tensor                 # [B,L,d] t_x: what the branch adds to the question
    low: torch.Tensor | None             # [B,L,N_low] attention over the low level, None if not used
    high: torch.Tensor | None            # [B,L,T] attention over the high level
    objects: torch.Tensor | None         # [B,L,K] attention over the text objects
    object_clues: torch.Tensor | None = None   # [B,K,d] what each text object gathered (with `object_clues`)
    object_low: torch.Tensor | None = None     # [B,K,N_low] each text object's own low-level attention
    object_high: torch.Tensor | None = None    # [B,K,T] and its high-level attention (with `object_clues`)


class Aggregator(nn.Module):
    """Low -> high -> hint -> text objects, for one modality at a time.

    hierarchy: "both" | "low" | "high" picks the levels queried. With `hints` off the gathered clue is not
    written into the question tokens before the text-object fusion; it is added to the branch output
    afterwards instead, so the object attention and the FFN cannot condition on it.

    With `gate`, each token multiplies its gathered clue per channel by W·LN(q) (FiLM-style, plain Linear init).
    Attention picks *when* to look, but its values are the same for every query: the token "violin" receives
    every instrument's loudness from a segment and, without a multiplicative read-out, cannot keep only the
    violin's. The gate is that read-out: clue ⊙ Wq summed by a later linear layer is the bilinear form
    q^T B f, which is how a linear probe reads "the violin's loudness" off the audio features. (A gate that
    starts as the identity, 1 + tanh with W = 0, left the comparatives at chance for 8 epochs here.)

    With `object_clues`, the text objects query the low and high levels too (in the same attention call as the
    question tokens, so keys and values are projected once) and the question then fuses objects that carry
    their own clue: the keyword "violin" holds what the violin sounds like here, bound to its slot.
    """

    def __init__(self, d: int, n_heads: int, ffn_mult: int, dropout: float, hierarchy: str, hints: bool,
                 use_objects: bool, gate: bool = False, object_clues: bool = False):
        super().__init__()
        self.object_clues = object_clues and use_objects
        self.gate = None
        if gate:
            self.gate = nn.Sequential(nn.LayerNorm(d), nn.Linear(d, d))

        self.use_low = hierarchy in ("both", "low")
        self.use_high = hierarchy in ("both", "high")
        self.hints = hints
        if self.use_low:
            self.ln_low = nn.LayerNorm(d)
            self.attn_low = MultiHeadAttention(d, n_heads, dropout)
        if self.use_high:
            self.ln_high = nn.LayerNorm(d)
            self.attn_high = MultiHeadAttention(d, n_heads, dropout)
        self.use_objects = use_objects
        if use_objects:
            self.ln_obj = nn.LayerNorm(d)
            self.attn_obj = MultiHeadAttention(d, n_heads, dropout)
        self.ln_ffn = nn.LayerNorm(d)
        self.ffn = FeedForward(d, ffn_mult, dropout)
        self.drop = Dropout(dropout)

    def forward(self, q: torch.Tensor, low: torch.Tensor, high: torch.Tensor,
                objects: torch.Tensor | None, objects_mask: torch.Tensor | None,
                clip_index: torch.Tensor | None = None, query_rows: torch.Tensor | None = None) -> BranchOutput:
        """q [B,L,d]; low [B|1,N,d]; high [B|1,T,d]; objects [B,K,d] with objects_mask [B,K] (True = real).
        With clip_index [B], low/high are [V,...] (one row per clip) and question i reads clip clip_index[i].

        query_rows [B,L+K] (True = a real question token or a real text object; [B,L] without objects): the rows
        whose low- and high-level clues anything reads. The padding rows are not computed there (their clue is
        zero); see MultiHeadAttention's `query_mask`."""
        L = q.shape[1]
        with_objects = self.object_clues and objects is not None and objects.shape[1] > 0
        x = torch.cat([q, objects], dim=1) if with_objects else q     # objects gather clues beside the tokens
        rows = None if query_rows is None else query_rows[:, :x.shape[1]]
        u = x
        w_low = w_high = w_obj = None
        if self.use_low:
            a, w_low = self.attn_low(self.ln_low(u), low, context_index=clip_index, query_mask=rows)
            u = u + self.drop(a)
        if self.use_high:
            a, w_high = self.attn_high(self.ln_high(u), high, context_index=clip_index, query_mask=rows)
            u = u + self.drop(a)
        clue = u - x
        if self.gate is not None:
            clue = clue * self.gate(x)
            u = x + clue
        object_clue = object_low = object_high = None
        if with_objects:
            objects, object_clue = u[:, L:], clue[:, L:]
            u, clue = u[:, :L], clue[:, :L]
            object_low = w_low[:, L:] if w_low is not None else None
            object_high = w_high[:, L:] if w_high is not None else None
            w_low = w_low[:, :L] if w_low is not None else None
            w_high = w_high[:, :L] if w_high is not None else None
        y = u if self.hints else q                       # the hint written back into the question tokens
        if self.use_objects and objects is not None and objects.shape[1] > 0:
            a, w_obj = self.attn_obj(self.ln_obj(y), objects, objects_mask)
            y = y + self.drop(a)
        y = y + self.ffn(self.ln_ffn(y))
        tokens = y - q if self.hints else y - q + clue
        return BranchOutput(tokens, w_low, w_high, w_obj, object_clue, object_low, object_high)


def masked_token_mean(x: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """Mean of x [B,L,...] over the real tokens (mask [B,L] True) -> [B,...]; padded tokens have no say."""
    m = mask.to(x.dtype).reshape(*mask.shape, *([1] * (x.dim() - 2)))
    return (x * m).sum(dim=1) / m.sum(dim=1).clamp_min(1.0)
