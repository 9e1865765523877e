"""`train.faithfulness`: teach the answer to depend on the players its question names, from the scene graphs.

Why: the deletion test of `bench/clues.py` (docs/clues.md) found that replacing the cells the shown map weighs most
by the clip mean changed the answer hardly more than replacing random cells. Two terms on the training questions
whose keywords name visible players (their boxes from the scene graph, grown by the person drawn behind each one:
`mcd.synth.render.player_box`), each computed by a second forward of those questions on edited features:

* context: KL(answer | answer with `cells` random cells off those players replaced by the clip's mean cell): the
  rest of the picture should not move the answer;
* oracle: softplus(lo_deleted - lo + margin), the gold answer's log-odds (against every other answer) asked to
  fall by `margin` when every cell of those players is the clip's mean cell: the answer should need them.

Both are what the model was trained for, so the deletion test measures the model, not a read-out; they need the
synthetic generator's scene graphs (model.extensions.grounding), like the grounding itself.
"""
from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F

from mcd.serving.clue_quality import FRAME, box_cells
from mcd.synth import glyphs
from mcd.synth.grounding import SceneGrounding
from mcd.synth.qa import keyword_referent
from mcd.synth.render import player_box
from mcd.synth.scene import Player

#: the inputs a second forward repeats unchanged: everything but the clip's features
TEXT_INPUTS = ("question", "question_mask", "objects", "objects_mask", "objects_kind", "question_type")


class FaithfulnessError(ValueError):
    """A `train.faithfulness` section that cannot be used."""


@dataclass(frozen=True)
class FaithfulnessConfig:
    context: float = 1.0          # weight of the context KL
    oracle: float = 1.0           # weight of the oracle margin
    margin: float = 1.0           # log-odds fall the oracle asks for
    cells: tuple[int, int] = (3, 24)   # the context deletes between these many random cells (inclusive)

    @classmethod
    def from_dict(cls, d: dict) -> "FaithfulnessConfig":
        if not isinstance(d, dict):
            raise FaithfulnessError(f"train.faithfulness must be an object, got {type(d).__name__}")
        known = {"context", "oracle", "margin", "cells"}
        unknown = sorted(set(d) - known)
        if unknown:
            raise FaithfulnessError(f"train.faithfulness has unknown fields {unknown}; known: {sorted(known)}")
        for key in ("context", "oracle", "margin"):
            v = d.get(key, getattr(cls, key))
            if isinstance(v, bool) or not isinstance(v, (int, float)) or v < 0:
                raise FaithfulnessError(f"train.faithfulness.{key} must be a number >= 0, got {v!r}")
        cells = d.get("cells", list(cls.cells))
        if (not isinstance(cells, (list, tuple)) or len(cells) != 2
                or not all(isinstance(c, int) and not isinstance(c, bool) for c in cells)
                or not 1 <= cells[0] <= cells[1]):
            raise FaithfulnessError(f"train.faithfulness.cells must be [low, high] whole numbers with "
                                    f"1 <= low <= high, got {cells!r}")
        if d.get("context", cls.context) == 0 and d.get("oracle", cls.oracle) == 0:
            raise FaithfulnessError("train.faithfulness: context and oracle are both 0; leave the section out")
        return cls(context=float(d.get("context", cls.context)), oracle=float(d.get("oracle", cls.oracle)),
                   margin=float(d.get("margin", cls.margin)), cells=(cells[0], cells[1]))


def named_player_cells(records, grounding: SceneGrounding, P: int) -> dict[int, torch.Tensor]:
    """question id -> bool [P]: the cells of every visible player the question's keywords name (union of the
    instrument boxes and the players' boxes, each grown by half a cell); questions naming none are left out."""
    grid = round(P ** 0.5)
    if grid * grid != P:
        raise FaithfulnessError(f"train.faithfulness needs a square grid of patches, got P={P}")
    person = glyphs.glyph("openmoji", glyphs.person_key())
    aspect = person.width / person.height
    out = {}
    for r in records:
        scene = grounding.scene(r.video_id)
        cells = None
        for word in r.keywords:
            src = keyword_referent(scene, word)
            if isinstance(src, Player):
                size = getattr(scene, "size", FRAME)
                c = box_cells(src.bbox, grid, size) | box_cells(player_box(src, aspect), grid, size)
                cells = c if cells is None else cells | c
        if cells is not None:
            out[r.question_id] = torch.as_tensor(cells)
    return out


def mean_filled(visual: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """visual [B,T,P,D] with the cells `mask` [B,P] of every frame replaced by each clip's mean cell."""
    mean = visual.mean(dim=(1, 2), keepdim=True)
    return torch.where(mask[:, None, :, None], mean, visual)


def log_odds(logits: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
    """[B] log p(gold) - log p(any other answer)."""
    lp = logits.float().log_softmax(-1)
    pick = lp.gather(1, labels[:, None])[:, 0]
    rest = lp.masked_fill(F.one_hot(labels, lp.shape[-1]).bool(), float("-inf")).logsumexp(-1)
    return pick - rest


class SceneDeletion:
    """The two terms for one training set: built once from its records and scene graphs, then `loss` per batch."""

    NAMES = ("faith_context", "faith_oracle", "drop_players", "drop_context")

    def __init__(self, config: FaithfulnessConfig, player_cells: dict[int, torch.Tensor]):
        if not player_cells:
            raise FaithfulnessError("train.faithfulness: no training question names a visible player, so there "
                                    "is nothing to delete")
        self.config = config
        self.player_cells = player_cells

    def loss(self, model, out, batch, inputs: dict) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
        """(weighted sum of the terms, each term and the mean log-odds drops, detached) for one batch; `out` is the
        model's output on `inputs` (the unedited batch). Zero when no question of the batch names a player."""
        rows = [i for i, q in enumerate(batch.question_ids) if q in self.player_cells]
        zero = out.logits.new_zeros(())
        if not rows:
            return zero, {k: zero.detach() for k in self.NAMES}
        device = inputs["visual"].device
        idx = torch.tensor(rows, device=device)
        players = torch.stack([self.player_cells[batch.question_ids[i]] for i in rows]).to(device)   # [n,P]
        clips = inputs["video_index"][idx]
        visual, audio = inputs["visual"][clips], inputs["audio"][clips]
        n, P = players.shape
        low, high = self.config.cells
        score = torch.rand(n, P, device=device).masked_fill(players, 2.0)   # players rank last
        k = torch.randint(low, high + 1, (n, 1), device=device)
        context = (score.argsort(1).argsort(1) < k) & ~players
        edited = torch.cat([mean_filled(visual, context), mean_filled(visual, players)])
        rest = {key: torch.cat([v[idx], v[idx]]) for key, v in inputs.items() if key in TEXT_INPUTS and v is not None}
        out2 = model(visual=edited, audio=torch.cat([audio, audio]), **rest)
        y = inputs["labels"][idx]
        ref = out.logits[idx].detach().float()
        kl = F.kl_div(out2.logits[:n].float().log_softmax(-1), ref.log_softmax(-1), log_target=True,
                      reduction="none").sum(-1).mean()
        lo0, lo_ctx, lo_del = log_odds(ref, y), log_odds(out2.logits[:n], y), log_odds(out2.logits[n:], y)
        margin = F.softplus(lo_del - lo0 + self.config.margin).mean()
        total = self.config.context * kl + self.config.oracle * margin
        logs = {"faith_context": kl.detach(), "faith_oracle": margin.detach(),
                "drop_players": (lo0 - lo_del).mean().detach(), "drop_context": (lo0 - lo_ctx).mean().detach()}
        return total, logs
