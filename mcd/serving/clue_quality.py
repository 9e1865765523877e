"""How right the clues are: pure functions for the pointing game, the temporal share and the deletion test.

No scene graph or file here, only arrays and numbers (and `one_visual_path`, a hook that lets the deletion test
reach one of the model's two visual paths), so the bench (`bench/clues.py`) and the demo can share them.
Conventions (those of `MCD`'s clues and of the synth encoders):

* a spatial clue is `[P]` or `[T, P]` over a `grid x grid` cell grid of the whole frame, row-major (P = 49, 7x7:
  cell p covers rows `p // grid`, columns `p % grid`, each `size / grid` pixels wide on a `size`-pixel frame);
* a box is `(x0, y0, x1, y1)` in frame pixels (the scene graph's player boxes, camera zoom included);
* a temporal clue is `[T]` over the clip's T equal segments.

The pointing game (Zhang et al., "Top-down neural attention by excitation backprop"): a map "points at" a thing when
its most weighted cell lies on it, here: when that cell's centre lies in the thing's box grown by a margin (half a
cell by default, so a peak on the cell that holds the box's edge counts).
The deletion test: a clue is faithful when replacing the features it weighs most by the clip's mean changes the
answer more than replacing as many random ones.
"""
from __future__ import annotations

from contextlib import contextmanager
from dataclasses import dataclass
from typing import Sequence

import numpy as np

GRID = 7        # 7x7 cells (P = 49)
FRAME = 224     # synthetic frames are 224 x 224 pixels


# ------------------------------------------------------------------------------------------------- geometry

def cell_of(p: int, grid: int = GRID) -> tuple[int, int]:
    """(row, column) of cell index p in the row-major grid."""
    if not 0 <= p < grid * grid:
        raise ValueError(f"cell index {p} outside 0..{grid * grid - 1}")
    return divmod(int(p), grid)


def cell_centres(grid: int = GRID, size: float = FRAME) -> np.ndarray:
    """[grid*grid, 2] (x, y) pixel centre of every cell, row-major."""
    step = size / grid
    rows, cols = np.divmod(np.arange(grid * grid), grid)
    return np.stack([(cols + 0.5) * step, (rows + 0.5) * step], axis=1)


def _corners(box: Sequence[float]) -> tuple[float, float, float, float]:
    """(x0, y0, x1, y1) of a box as floats; a box whose corners are swapped is an error, not an empty box."""
    x0, y0, x1, y1 = (float(v) for v in box)
    if x1 < x0 or y1 < y0:
        raise ValueError(f"box {tuple(box)} must have x0 <= x1 and y0 <= y1")
    return x0, y0, x1, y1


def box_cells(box: Sequence[float], grid: int = GRID, size: float = FRAME, margin: float = 0.5) -> np.ndarray:
    """bool [grid*grid]: the cells whose centre lies in `box` (x0, y0, x1, y1 pixels) grown by `margin` cells on
    every side. With margin 0.5 these are exactly the cells the box touches (a box inside one cell gives that cell)."""
    x0, y0, x1, y1 = _corners(box)
    m = margin * size / grid
    c = cell_centres(grid, size)
    return (c[:, 0] >= x0 - m) & (c[:, 0] <= x1 + m) & (c[:, 1] >= y0 - m) & (c[:, 1] <= y1 + m)


def box_coverage(box: Sequence[float], grid: int = GRID, size: float = FRAME) -> np.ndarray:
    """float [grid*grid]: the fraction of each cell's area that `box` (x0, y0, x1, y1 pixels) covers."""
    x0, y0, x1, y1 = _corners(box)
    step = size / grid
    edges = np.arange(grid) * step
    cover_x = np.clip(np.minimum(edges + step, x1) - np.maximum(edges, x0), 0, None) / step
    cover_y = np.clip(np.minimum(edges + step, y1) - np.maximum(edges, y0), 0, None) / step
    return np.outer(cover_y, cover_x).ravel()


def oracle_cells(instrument: Sequence[float], player: Sequence[float], grid: int = GRID,
                 size: float = FRAME) -> np.ndarray:
    """float [grid*grid] ranking score of the cells by the scene graph, for the deletion test's oracle: how much of
    each cell the instrument (counted twice) and its player cover, and the cells neither touches nearest the
    instrument first. Why: if deleting the named player's own cells does not beat deleting random ones, no map that
    points at the player can pass that test on this model, whatever the map."""
    near = -np.hypot(*(cell_centres(grid, size) - [(instrument[0] + instrument[2]) / 2,
                                                   (instrument[1] + instrument[3]) / 2]).T) / (1e3 * size)
    return 2 * box_coverage(instrument, grid, size) + box_coverage(player, grid, size) + near


def union_cells(boxes: Sequence[Sequence[float]], **kw) -> np.ndarray:
    """bool [grid*grid]: cells of any of the boxes."""
    out = np.zeros(kw.get("grid", GRID) ** 2, dtype=bool)
    for b in boxes:
        out |= box_cells(b, **kw)
    return out


def spatial(clue: np.ndarray) -> np.ndarray:
    """[P] spatial map of a `[P]` or `[T, P]` clue (summed over time)."""
    a = np.asarray(clue, dtype=np.float64)
    if a.ndim == 2:
        return a.sum(axis=0)
    if a.ndim != 1:
        raise ValueError(f"a spatial clue is [P] or [T, P], got shape {a.shape}")
    return a


def peak_cell(clue: np.ndarray) -> int:
    """The most weighted cell of a `[P]` or `[T, P]` clue (summed over time); the first on a tie."""
    return int(np.argmax(spatial(clue)))


def pointing_hit(clue: np.ndarray, box: Sequence[float], grid: int = GRID, size: float = FRAME,
                 margin: float = 0.5) -> bool:
    """Does the clue's peak cell lie on the box (margin in cells)?"""
    return bool(box_cells(box, grid, size, margin)[peak_cell(clue)])


def best_constant_cell(target_cells: Sequence[np.ndarray]) -> int:
    """The one cell that lies on the most targets (bool [P] each): the prior baseline of the pointing game."""
    counts = np.sum(np.stack([np.asarray(t, dtype=bool) for t in target_cells]), axis=0)
    return int(np.argmax(counts))


def one_hot(p: int, n: int = GRID * GRID) -> np.ndarray:
    """A map with all its weight on cell p (a baseline's "clue")."""
    out = np.zeros(n)
    out[p] = 1.0
    return out


def slot_columns(position: str, grid: int = GRID, size: float = FRAME, zoom: float = 1.0,
                 slot_x: dict[str, float] | None = None) -> np.ndarray:
    """bool [grid*grid]: the cells of the grid columns nearest to a slot's centre (left/middle/right at the synth
    world's x = 42/112/182 px at zoom 1, scaled about the centre by the zoom): the column band a slot read-out
    points at (no row: the read-out says which slot, not where in it)."""
    xs = slot_x or {"left": 42.0, "middle": 112.0, "right": 182.0}
    if position not in xs:
        raise ValueError(f"unknown slot {position!r}; expected one of {tuple(xs)}")
    x = size / 2 + (xs[position] * size / FRAME - size / 2) * zoom
    step = size / grid
    col = min(grid - 1, max(0, int(x // step)))
    cols = np.arange(grid * grid) % grid
    return cols == col


def restrict(clue: np.ndarray, cells: np.ndarray) -> np.ndarray:
    """[P] the spatial map with every cell outside `cells` set to zero (unchanged if that would empty it)."""
    s = spatial(clue)
    out = np.where(np.asarray(cells, dtype=bool), s, 0.0)
    return out if out.sum() > 0 else s


# ------------------------------------------------------------------------------------------------- time

def segment_fractions(intervals: Sequence[Sequence[float]], duration: float, T: int) -> np.ndarray:
    """[T] the fraction of each of T equal segments of the clip covered by the (disjoint) intervals."""
    if T < 1 or duration <= 0:
        raise ValueError(f"need T >= 1 and a positive duration, got T={T}, duration={duration}")
    seg = duration / T
    out = np.zeros(T)
    for t in range(T):
        lo, hi = t * seg, (t + 1) * seg
        out[t] = sum(max(0.0, min(b, hi) - max(a, lo)) for a, b in intervals) / seg
    return np.clip(out, 0.0, 1.0)


@dataclass(frozen=True)
class TemporalShare:
    """share: the clue's weight inside the sounding time; base: the sounding time's share of the clip (what a
    uniform clue would get). ratio = share / base (1 = no better than uniform)."""

    share: float
    base: float

    @property
    def ratio(self) -> float:
        return self.share / self.base if self.base > 0 else float("nan")


def temporal_share(clue: np.ndarray, sounding: np.ndarray) -> TemporalShare:
    """The share of a [T] (or [T, P], summed over patches) clue that falls where the referent sounds.

    `sounding` [T] is the fraction of each segment in which it sounds (0..1): a segment half sounding counts half.
    The clue is normalised here (a read-out such as per-segment probabilities may be given as it is)."""
    w = np.asarray(clue, dtype=np.float64)
    if w.ndim == 2:
        w = w.sum(axis=1)
    s = np.asarray(sounding, dtype=np.float64)
    if w.shape != s.shape or w.ndim != 1:
        raise ValueError(f"clue {w.shape} and sounding {s.shape} must both be [T]")
    if np.any(w < 0):
        raise ValueError("a clue's weights must be non-negative")
    total = w.sum()
    share = float((w * s).sum() / total) if total > 0 else float(s.mean())
    return TemporalShare(share, float(s.mean()))


# ------------------------------------------------------------------------------------------------- deletion

def top_k(weights: np.ndarray, k: int) -> np.ndarray:
    """Indices of the k largest weights (largest first; ties by index)."""
    w = np.asarray(weights, dtype=np.float64).ravel()
    if not 0 < k <= w.size:
        raise ValueError(f"k = {k} must be in 1..{w.size}")
    return np.argsort(-w, kind="stable")[:k]


def random_k(rng: np.random.Generator, n: int, k: int, draws: int) -> np.ndarray:
    """[draws, k] random index sets (k distinct of n each)."""
    if not 0 < k <= n:
        raise ValueError(f"k = {k} must be in 1..{n}")
    return np.stack([rng.choice(n, size=k, replace=False) for _ in range(draws)])


def replace_with_mean(features, index: Sequence[int], axis: int):
    """A copy of `features` (numpy array or torch tensor) in which the entries `index` along `axis` are replaced by
    the clip mean: the mean of the features over that axis and, for the patch axis of a [T, P, D] visual clip, over
    time too (every axis before the last that is not kept). The last axis (channels) is never averaged.

    Examples: visual [T, P, D], axis 1 (patches): patches `index` of every frame become the mean patch of the clip;
    visual axis 0 (seconds): frames `index` become the clip's mean frame; audio [T, D], axis 0: seconds `index`
    become the clip's mean second."""
    nd = features.ndim
    if not 0 <= axis < nd - 1:
        raise ValueError(f"axis {axis} must be a non-channel axis of a {nd}-d clip")
    reduce = tuple(a for a in range(nd - 1) if a <= axis)   # the axis and those before it (time for patches)
    try:
        import torch
        is_torch = isinstance(features, torch.Tensor)
    except ImportError:  # pragma: no cover - torch is a dependency of the package
        is_torch = False
    if is_torch:
        mean = features.mean(dim=reduce, keepdim=True)
        out = features.clone()
        idx = torch.as_tensor(list(index), dtype=torch.long, device=features.device)
        sl = [slice(None)] * nd
        sl[axis] = idx
        out[tuple(sl)] = mean.expand_as(out[tuple(sl)])
        return out
    a = np.asarray(features)
    mean = a.mean(axis=reduce, keepdims=True)
    out = a.copy()
    sl = [slice(None)] * nd
    sl[axis] = np.asarray(list(index), dtype=np.int64)
    out[tuple(sl)] = np.broadcast_to(mean, out[tuple(sl)].shape)
    return out


@dataclass(frozen=True)
class Deletion:
    """One question's deletion test: the answer's probability before, and its drops when the top-k and when k random
    entries are replaced (mean over the random draws)."""

    p0: float
    drop_top: float
    drop_random: float

    @property
    def beats_random(self) -> bool:
        """Deleting what the clue weighs most hurts the answer more than deleting at random."""
        return self.drop_top > self.drop_random


def curve_steps(n: int, points: int = 9) -> tuple[int, ...]:
    """How many entries the deletion curve deletes at each of its steps: about `points` geometric steps from 1 to
    n - 1 (deleting all n leaves every ordering at the same input, so that step tells nothing)."""
    if n < 2:
        raise ValueError(f"a deletion curve needs at least 2 entries, got {n}")
    return tuple(int(k) for k in np.unique(np.round(np.geomspace(1, n - 1, points))))


def deletion_curve(p0: float, p_top: Sequence[float], p_random: Sequence[Sequence[float]]) -> Deletion:
    """The deletion curve (Petsiuk et al., RISE, 2018) summarised as one Deletion: the answer's value p0 on the whole
    clip, p_top[s] after deleting the clue's first k_s entries and p_random[d][s] after the first k_s entries of
    random order d, at the same steps. The drops are the mean over the steps (the area between the curve and p0,
    per step), the random one also over the orders; "beats" = the clue's order lowers the answer sooner.

    Why beside the single top-k test: deleting k entries of a clue whose object covers more than k of them is a
    partial occlusion the model can read through; the curve keeps deleting in the clue's order until the object is
    gone, and asks whether that order removes what the answer needs sooner than a random order does."""
    top = np.asarray(p_top, dtype=np.float64)
    rnd = np.asarray(p_random, dtype=np.float64)
    if top.ndim != 1 or top.size == 0 or rnd.ndim != 2 or rnd.shape[0] == 0 or rnd.shape[1] != top.size:
        raise ValueError(f"need p_top [steps] and p_random [draws, steps] at the same steps, got "
                         f"{top.shape} and {rnd.shape}")
    return Deletion(float(p0), float(p0 - top.mean()), float(p0 - rnd.mean()))


def log_odds(log_probs: np.ndarray, answer: int) -> float:
    """log(p / (1 - p)) of `answer` from a [C] vector of log-probabilities, computed without forming 1 - p (which
    is 0 in float arithmetic once an answer is certain, and a deletion test on probabilities then sees only ties)."""
    lp = np.asarray(log_probs, dtype=np.float64)
    rest = np.delete(lp, answer)
    m = rest.max()
    return float(lp[answer] - (m + np.log(np.exp(rest - m).sum())))


def deletion(p0: float, p_top: float, p_random: Sequence[float]) -> Deletion:
    """The answer's probability p0 on the whole clip, p_top with the top-k deleted, p_random per random draw."""
    pr = np.asarray(p_random, dtype=np.float64)
    if pr.size == 0:
        raise ValueError("need at least one random draw")
    return Deletion(float(p0), float(p0 - p_top), float(p0 - pr.mean()))


# ------------------------------------------------------------------------------------------------- summaries

def rate(hits: Sequence[bool]) -> tuple[float, int]:
    """(share of True, count); nan for none."""
    n = len(hits)
    return (float(np.mean(hits)) if n else float("nan")), n


def pct(hits: Sequence[bool]) -> str:
    """'73.4% (n)' or '-' for none."""
    r, n = rate(hits)
    return "-" if n == 0 else f"{100 * r:.1f}% ({n})"


# ------------------------------------------------------------------------------------------------- model paths

@contextmanager
def one_visual_path(model, original, path: str):
    """Within the block, the model's visual features reach one path as given and the other as `original` [T,P,D]:
    path "patches" = the deleted features reach the patch tokens (where every spatial clue attends) and the pooled
    frame features are the original clip's; "frames" = the other way round. Why: the deletion test replaces cells
    by the clip mean, which barely moves a frame's mean feature; this says which path the answer read the deleted
    cells through. The model projects both paths with `visual_proj` (mcd.model.mcd, steps 1 and 3): [M,T,D] input
    = the pooled frames, [M,T,P,D] = the patches."""
    if path not in ("patches", "frames"):
        raise ValueError(f"path must be 'patches' or 'frames', got {path!r}")

    def swap(module, args):
        x = args[0]
        if path == "patches" and x.dim() == 3:
            return (original.mean(dim=1).to(x.dtype).expand_as(x),)
        if path == "frames" and x.dim() == 4:
            return (original.to(x.dtype).expand_as(x),)
        return None
    handle = model.visual_proj.register_forward_pre_hook(swap)
    try:
        yield
    finally:
        handle.remove()
