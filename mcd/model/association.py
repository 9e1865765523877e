"""Audio-visual association: enhanced self-attention over segment tokens + contrastive loss.

The attention primitive used by every part of MCD also lives here, because we need the attention weights
(they are the clues the demo draws) and `nn.MultiheadAttention` only returns them on its slow path.
"""
from __future__ import annotations

import math

import torch
import torch.nn as nn
import torch.nn.functional as F

from mcd.model.dropout import Dropout


class MultiHeadAttention(nn.Module):
    """Multi-head attention that also returns its weights averaged over heads.

    The context may have batch size 1 while the queries have batch size B: keys and values are then projected
    once and broadcast, which is what makes B questions about one clip cheap.
    """

    def __init__(self, d: int, n_heads: int, dropout: float = 0.0):
        super().__init__()
        assert d % n_heads == 0
        self.n_heads, self.d_head = n_heads, d // n_heads
        self.q_proj = nn.Linear(d, d)
        self.k_proj = nn.Linear(d, d)
        self.v_proj = nn.Linear(d, d)
        self.out_proj = nn.Linear(d, d)
        self.attn_drop = Dropout(dropout)

    def forward(self, x: torch.Tensor, context: torch.Tensor, key_mask: torch.Tensor | None = None,
                context_index: torch.Tensor | None = None, query_mask: torch.Tensor | None = None
                ) -> tuple[torch.Tensor, torch.Tensor]:
        """x [B,Lq,d] attends to context [B|1,N,d]; key_mask [B|1,N] bool, True = a real key.

        With `context_index` [B], context is [V,N,d] (one row per clip, key_mask then [V,N]) and query row i
        attends to clip context_index[i]: keys and values are projected once per clip and each clip's questions
        are folded into one attention over them (a training batch holds several questions per clip, and copying
        every clip's T*P patch keys to each of its questions, and back in the backward, cost 9% of a step).

        With `query_mask` [B,Lq] (True = a real query row), the rows that are padding are not computed: they get
        a zero output (before out_proj, as a query with no real key) and zero weights. Why: a batch's questions are
        padded to its longest and its keyword lists to its most keywords, and on the recipe's batches 40% of the rows
        that query the T*P patch tokens were padding, whose results nothing reads (tests/test_model.py,
        test_padding_changes_nothing). The real rows' results, and the dropout mask they see, are those of the
        unmasked call.

        Returns (out [B,Lq,d], weights [B,Lq,N] averaged over heads). Queries with no real key get a zero
        output and zero weights, so an empty object list adds nothing instead of NaN.
        """
        B, Lq, _ = x.shape
        Bc, N, _ = context.shape
        h, dh = self.n_heads, self.d_head
        q = self.q_proj(x).view(B, Lq, h, dh).transpose(1, 2)            # [B,h,Lq,dh]
        k = self.k_proj(context).view(Bc, N, h, dh).transpose(1, 2)      # [Bc,h,N,dh]
        v = self.v_proj(context).view(Bc, N, h, dh).transpose(1, 2)
        if query_mask is not None and bool(query_mask.all()):
            query_mask = None                                            # nothing to skip
        if context_index is None:
            out, weights = self._attend(q, k, v, key_mask, query_mask)
        else:
            groups = ClipGroups(context_index)
            rows = groups.split(query_mask) if query_mask is not None else [None] * len(groups.clips)
            parts = [self._attend(q_clip, k[c:c + 1], v[c:c + 1], None if key_mask is None else key_mask[c:c + 1],
                                  rows_clip)
                     for c, q_clip, rows_clip in zip(groups.clips, groups.split(q), rows)]
            out, weights = groups.merge([o for o, _ in parts]), groups.merge([w for _, w in parts])
        out = out.transpose(1, 2).reshape(B, Lq, h * dh)
        return self.out_proj(out), weights

    def _attend(self, q: torch.Tensor, k: torch.Tensor, v: torch.Tensor, key_mask: torch.Tensor | None,
                query_mask: torch.Tensor | None = None) -> tuple[torch.Tensor, torch.Tensor]:
        """q [B,h,Lq,dh] over k, v [B|1,h,N,dh] -> (out [B,h,Lq,dh], weights [B,Lq,N] averaged over heads).

        With one clip's K/V and B questions, the B*Lq query rows are folded into one matmul per head and the
        scores stay [1,h,B*Lq,N] from the matmul to the head average: over the T*P patch tokens these are the
        largest tensors of a step, and transposing them to [B,h,Lq,N] (and back, and again in the backward)
        made a training step about 4% slower (244 against 253 ms, batch 80 over 4 clips, interleaved). Dropout
        still draws its mask as [B,h,Lq,N] and only the (bool) mask is moved into the folded layout, so the
        arithmetic, the dropped weights included, is bitwise that of the per-question layout the shipped
        checkpoint was trained with (tests/test_model.py checks that both layouts drop the same weights).

        `query_mask` [B,Lq] (True = real row): in the folded layout only the real rows enter the products (the
        mask is still drawn for every row, so the real rows drop what they dropped before); otherwise every row
        is computed and the padded ones are zeroed.
        """
        if k.shape[0] == 1 and q.shape[0] > 1:
            return self._attend_folded(q, k, v, key_mask, query_mask)
        out, weights = self._weigh(q, k, v, key_mask, self.attn_drop)
        weights = weights.mean(dim=1)
        if query_mask is not None:
            out = out * query_mask[:, None, :, None].to(out.dtype)
            weights = weights * query_mask[..., None].to(weights.dtype)
        return out, weights

    def _attend_folded(self, q: torch.Tensor, k: torch.Tensor, v: torch.Tensor, key_mask: torch.Tensor | None,
                       query_mask: torch.Tensor | None) -> tuple[torch.Tensor, torch.Tensor]:
        """One clip's K/V [1,h,N,dh], B questions: B is folded into the query axis so K/V are never copied B
        times, and only the real query rows (all of them without `query_mask`) are computed."""
        B, h, Lq, dh = q.shape
        N = k.shape[2]
        q = q.transpose(0, 1).reshape(1, h, B * Lq, dh)
        rows = None if query_mask is None else query_mask.reshape(-1).nonzero().squeeze(1)   # folded row indices
        if rows is not None:
            q = q.index_select(2, rows)

        def drop(weights: torch.Tensor) -> torch.Tensor:
            def layout(mask: torch.Tensor) -> torch.Tensor:
                mask = mask.transpose(0, 1).reshape(1, h, B * Lq, N)
                return mask if rows is None else mask.index_select(2, rows)
            return self.attn_drop(weights, drawn_as=(B, h, Lq, N), layout=layout)

        out, weights = self._weigh(q, k, v, key_mask, drop)            # [1,h,R,dh], [1,h,R,N]
        weights = weights[0].mean(dim=0)                                # [R,N]
        if rows is not None:
            out = out.new_zeros(1, h, B * Lq, dh).index_copy(2, rows, out)
            weights = weights.new_zeros(B * Lq, N).index_copy(0, rows, weights)
        return out.view(h, B, Lq, dh).transpose(0, 1), weights.view(B, Lq, N)

    @staticmethod
    def _weigh(q: torch.Tensor, k: torch.Tensor, v: torch.Tensor, key_mask: torch.Tensor | None, drop
               ) -> tuple[torch.Tensor, torch.Tensor]:
        """softmax(q k^T / sqrt(dh)) over the real keys -> (drop(weights) @ v, weights), per head."""
        scores = (q @ k.transpose(-2, -1)) / math.sqrt(q.shape[-1])
        if key_mask is not None:
            key_mask = key_mask[:, None, None, :]
            # finfo.min rather than -inf: masked keys get exactly zero weight, all-masked rows stay finite
            scores = scores.masked_fill(~key_mask, torch.finfo(scores.dtype).min)
        weights = scores.softmax(dim=-1)
        if key_mask is not None:
            weights = weights * key_mask.any(dim=-1, keepdim=True)       # all-masked rows -> zeros
        return drop(weights) @ v, weights


class ClipGroups:
    """The rows of a batch grouped by the clip each reads (`clip_index` [B]), so a clip's keys serve all its rows.

    Training and evaluation batches hold whole clips' questions in a row (mcd.data.dataset), so the rows are
    usually sorted already and `split`/`merge` are slicing and concatenation; otherwise they sort and unsort.
    """

    def __init__(self, clip_index: torch.Tensor):
        index = clip_index
        self.order = None
        if index.numel() > 1 and not bool((index[1:] >= index[:-1]).all()):
            self.order = torch.argsort(index, stable=True)
            index = index[self.order]
        clips, counts = torch.unique_consecutive(index, return_counts=True)
        self.clips, self.counts = clips.tolist(), counts.tolist()

    def split(self, x: torch.Tensor) -> tuple[torch.Tensor, ...]:
        """x [B,...] -> one [n_clip,...] part per clip, in `clips` order."""
        if self.order is not None:
            x = x.index_select(0, self.order)
        return x.split(self.counts)

    def merge(self, parts: list[torch.Tensor]) -> torch.Tensor:
        """The parts of `split` (transformed) back to [B,...] in the rows' original order."""
        x = torch.cat(parts)
        if self.order is None:
            return x
        inverse = torch.empty_like(self.order)
        inverse[self.order] = torch.arange(len(self.order), device=self.order.device)
        return x.index_select(0, inverse)


class FeedForward(nn.Module):
    def __init__(self, d: int, mult: int, dropout: float):
        super().__init__()
        self.net = nn.Sequential(nn.Linear(d, mult * d), nn.GELU(), nn.Linear(mult * d, d), Dropout(dropout))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.net(x)


class AssociationBlock(nn.Module):
    """Pre-LN transformer block (self-attention + FFN, each with a residual)."""

    def __init__(self, d: int, n_heads: int, ffn_mult: int, dropout: float):
        super().__init__()
        self.ln1 = nn.LayerNorm(d)
        self.attn = MultiHeadAttention(d, n_heads, dropout)
        self.ln2 = nn.LayerNorm(d)
        self.ffn = FeedForward(d, ffn_mult, dropout)
        self.drop = Dropout(dropout)

    def forward(self, x: torch.Tensor, key_mask: torch.Tensor | None = None) -> tuple[torch.Tensor, torch.Tensor]:
        """x [B,N,d]; key_mask [B,N] (True = real token) keeps padded tokens out of every token's attention."""
        y = self.ln1(x)
        a, w = self.attn(y, y, key_mask)
        x = x + self.drop(a)
        x = x + self.ffn(self.ln2(x))
        return x, w


class Association(nn.Module):
    """N stacked blocks over the 2T segment tokens [visual ; audio], plus the outer ("enhanced") residual.

    Attention runs over segment tokens only, never patches: 2T = 20 tokens instead of T·P + T = 500.
    With `residual`, the output is x0 + LN(blocks(x0)): the unimodal features enhanced by their soft
    associations, rather than replaced by them.
    """

    def __init__(self, d: int, n_heads: int, n_blocks: int, ffn_mult: int, dropout: float, residual: bool):
        super().__init__()
        self.blocks = nn.ModuleList(AssociationBlock(d, n_heads, ffn_mult, dropout) for _ in range(n_blocks))
        self.ln_f = nn.LayerNorm(d)
        self.residual = residual

    def forward(self, x0: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """x0 [B,2T,d] -> (associated tokens [B,2T,d], attention [B,2T,2T] averaged over heads and blocks).

        With no blocks the association map is the identity (each token keeps to itself).
        """
        x = x0
        maps = []
        for block in self.blocks:
            x, w = block(x)
            maps.append(w)
        x = self.ln_f(x)
        out = x0 + x if self.residual else x
        if maps:
            assoc = torch.stack(maps).mean(dim=0)
        else:
            n = x0.shape[1]
            assoc = torch.eye(n, dtype=x0.dtype, device=x0.device).expand(x0.shape[0], n, n)
        return out, assoc


def info_nce(anchor: torch.Tensor, other: torch.Tensor, temperature: float,
             video_index: torch.Tensor | None = None, symmetric: bool = True) -> torch.Tensor:
    """InfoNCE between paired rows of anchor [B,D] and other [B,D] (cosine similarity / temperature).

    Rows i != j of the same video (equal `video_index`) are masked out as negatives: B questions about one
    clip share its features, and pushing a clip away from itself would teach noise. A row with no negative
    left contributes zero loss.
    """
    a = F.normalize(anchor, dim=-1)
    b = F.normalize(other, dim=-1)
    logits = a @ b.t() / temperature                                     # [B,B]
    B = logits.shape[0]
    if video_index is None:
        video_index = torch.arange(B, device=logits.device)
    same = video_index[:, None] == video_index[None, :]
    off_diag = ~torch.eye(B, dtype=torch.bool, device=logits.device)
    logits = logits.masked_fill(same & off_diag, float("-inf"))
    target = torch.arange(B, device=logits.device)
    loss = F.cross_entropy(logits, target)
    if symmetric:
        loss = 0.5 * (loss + F.cross_entropy(logits.t(), target))
    return loss
