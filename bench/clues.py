"""Are the clues right? Where the spatial clue points, when the temporal clues listen, and whether the answer needs
what they weigh most, measured on fresh synthetic clips against their exact scene graphs.

    python bench/clues.py --checkpoint checkpoints/mcd-synth --clips 150 --seed 31031 [--style default|held-out|v1]
                          [--data DIR] [--k-cells 3] [--k-seconds 2] [--draws 4] [--json OUT]
                          [--no-deletion] [--sound-baseline clip-mean|silence] [--write-checkpoint]

The test set is generated (or reused from --data, default data/clues/<style>-seed<S>-n<N>) with the generator's
own code: `--style default|held-out` runs `mcd synth --splits test=1` (default: the shipped checkpoint's world),
`--style v1` samples world v1's scenes exactly (OpenMoji glyphs, drawn backgrounds, procedural timbres, no camera
zoom; `mcd synth` itself only offers the v2 styles) and renders them with mcd.synth. Every clip is
decoded from its mp4 and answered through `Pipeline.answer` (what the demo runs); hooks on the model read the
attention maps the pipeline does not return (per head, per text object, the referent query's).

Three measures (the pure functions are in mcd.serving.clue_quality):
* pointing game: for a question whose keywords name exactly one source and that source is a visible player
  (`mcd.synth.qa.keyword_referent`: an instrument with one player, a position, "first", ...), is the peak cell of
  a spatial map (summed over time) on the player's box (half a cell of margin)? Solo and multi-player clips apart,
  beside a centre cell and a prior cell (the one cell most often on the referent over 2000 training-split scenes of
  the same world). "issue-31 population": every question about a solo clip but the venue and the voiceover ones.
* temporal share: for a question naming one source that sounds for part of the clip, the share of a temporal
  clue inside the seconds it sounds, against those seconds' share of the clip (ratio 1 = uniform).
* deletion: the top-k cells (over all frames) or seconds of a clue are replaced by the clip mean; the drop of the
  answer's probability is compared with that of k random ones (mean of --draws draws): "beats" = larger drop.
  `--sound-baseline silence` mutes deleted seconds instead (the audio encoders' features of a silent second): a
  source that sounds in most of the clip is still in the clip's mean second, so the mean may delete little of it.
  What any map could reach, in the same run: the oracle (the named player's own cells from the scene graph, the
  named source's sounding seconds), the whole picture or sound replaced by the clip mean or by another clip's, and
  the deletion reaching one of the model's two visual paths only (patch tokens or frame means;
  `clue_quality.one_visual_path`).

"evidence+" / "audio evidence+" are the demo's "what the answer rests on" figure (`QuestionResult.evidence`,
mcd.serving.evidence: gradient x input, the deletion test's own change linearised), measured by all three tests
beside the attention maps; "shown now x evidence+" is the attention map weighted by it.

"shown now" is what the demo draws today (`QuestionResult.shown`, mcd.serving.shown_clues); "shown" and
"audio_high (shown)" are the maps it drew before issue 31, so one run gives the before/after table on the same
clips and questions. `--write-checkpoint` stores the shown clues' numbers, per source of the clue, in the
checkpoint's config.json (`clue_quality`, with this command and seed): the demo's figure captions read them.

Each map is labelled with what it is: "used" = attention the model computed and read in this forward; "read-out"
= an output the model was trained to produce (the grounding head), not a map it attended with.
"""
from __future__ import annotations

import argparse
import json
import math
import subprocess
import sys
import time
from collections import Counter, defaultdict
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from mcd.serving import clue_quality as cq  # noqa: E402
from mcd.serving.pipeline import Pipeline  # noqa: E402
from mcd.synth.qa import keyword_referent, select_questions  # noqa: E402
from mcd.synth.render import player_box  # noqa: E402
from mcd.synth.scene import (BACKGROUNDS, DURATION, SYNTH_INSTRUMENTS, Player, Scene,  # noqa: E402
                             Voiceover, _positions, _q, _sample_source, layout_players, sample_scene,
                             video_id_of, video_rng)
from mcd.synth.writer import annotation_record, read_scenes, write_json, write_scenes  # noqa: E402
from mcd.task.questions import fill_template, parse, type_index  # noqa: E402
from mcd.task.vocab import ANSWERS  # noqa: E402

T, P, GRID = 10, 49, 7
CENTRE = 24                      # the centre cell of the 7x7 grid
EXCLUDED_FROM_ISSUE = ("Where is the performance?", "Is there a voiceover?")
#: --sound-baseline: what a deleted second becomes, as the report names it
SOUND_BASELINES = {"clip-mean": "clip mean", "silence": "silence"}


# ------------------------------------------------------------------------------------------------- the test set

def sample_v1_scene(seed: int, index: int, split: str = "test") -> Scene:
    """World v1's scene of video `index` under `seed`, draw for draw (the v1 generator before the v2 styles: 10
    instruments, OpenMoji glyph boxes at zoom 1, a 25% off-screen instrument; checked against a v1 benchmark's
    scenes.jsonl: 40 of 40 scene graphs identical)."""
    rng = video_rng(seed, index, 0)
    n = int(rng.choice([1, 2, 3], p=[0.25, 0.35, 0.40]))
    instruments: list[str] = []
    for _ in range(n):
        if instruments and rng.random() < 0.22:
            instruments.append(instruments[int(rng.integers(len(instruments)))])
        else:
            choices = [i for i in SYNTH_INSTRUMENTS if i not in instruments]
            instruments.append(choices[int(rng.integers(len(choices)))])
    sources = [_sample_source(rng, inst, allow_silent=True) for inst in instruments]
    offscreen = None
    if rng.random() < 0.25:
        hidden = [i for i in SYNTH_INSTRUMENTS if i not in instruments]
        offscreen = _sample_source(rng, hidden[int(rng.integers(len(hidden)))], allow_silent=False)
    if offscreen is None and not any(s.sounds for s in sources):
        sources[int(rng.integers(n))].intervals = [(0.0, DURATION)]
    voiceover = None
    if rng.random() < 0.3:
        s = _q(rng.uniform(0.0, 5.0))
        e = _q(min(DURATION, s + rng.uniform(2.5, 6.0)))
        voiceover = Voiceover([(s, e)], loudness=round(float(rng.uniform(0.5, 0.9)), 2),
                              f0=round(float(rng.uniform(95.0, 220.0)), 1))
    background = BACKGROUNDS[int(rng.integers(2))]
    positions = _positions(rng, n)
    boxes = layout_players(rng, instruments, positions, "openmoji", 1.0, size_range=(50.0, 66.0))
    players = [Player(**vars(src), position=pos, bbox=box) for src, pos, box in zip(sources, positions, boxes)]
    return Scene(video_id=video_id_of(index), background=background, players=players, offscreen=offscreen,
                 voiceover=voiceover, split=split, seed=int(rng.integers(2**31))).validate()


def scenes_of(style: str, seed: int, n: int, split: str = "test", sound_bank: str | None = None) -> list[Scene]:
    if style == "v1":
        return [sample_v1_scene(seed, i, split) for i in range(n)]
    return [sample_scene(seed, i, split=split, style=style, sound_bank=sound_bank) for i in range(n)]


def make_test_set(out: Path, style: str, clips: int, seed: int, per_video: int, workers: int,
                  sound_bank: str | None) -> None:
    """Write a test-only benchmark to `out` (videos, avqa-test.json, scenes.jsonl, synth_config.json)."""
    if style != "v1":
        cmd = [sys.executable, "-m", "mcd", "synth", "--out", str(out), "--videos", str(clips), "--seed", str(seed),
               "--splits", "test=1", "--style", style, "--questions-per-video", str(per_video),
               "--workers", str(workers), "--quiet", "--force"]
        if sound_bank:
            cmd += ["--sound-bank", sound_bank]
        print("$", " ".join(cmd), file=sys.stderr)
        subprocess.run(cmd, check=True, cwd=Path(__file__).resolve().parent.parent)
        return
    from mcd.synth.generate import render_all
    scenes = scenes_of("v1", seed, clips)
    chosen = select_questions(scenes, per_video, seed * 31 + 2)      # mcd synth's seed for the test split
    out.mkdir(parents=True, exist_ok=True)
    render_all(scenes, out / "videos", workers, progress=False)
    write_scenes(out / "scenes.jsonl", scenes)
    records = [annotation_record(s.video_id, 0, qa) for s, qas in zip(scenes, chosen) for qa in qas]
    for i, r in enumerate(records, start=1):
        r["question_id"] = i
    write_json(out / "avqa-test.json", records)
    (out / "synth_config.json").write_text(json.dumps(
        {"videos": clips, "seed": seed, "splits": {"test": 1.0}, "questions_per_video": per_video,
         "videos_rendered": True, "world": 1, "style": "v1", "sound_bank": "procedural",
         "instruments": list(SYNTH_INSTRUMENTS), "made_by": "bench/clues.py"}) + "\n", encoding="utf-8")


def test_set(args) -> Path:
    out = args.data or Path("data/clues") / f"{args.style}-seed{args.seed}-n{args.clips}"
    if (out / "avqa-test.json").is_file() and (out / "scenes.jsonl").is_file():
        print(f"reusing {out}", file=sys.stderr)
    else:
        t0 = time.perf_counter()
        make_test_set(out, args.style, args.clips, args.seed, args.questions_per_video, args.workers, args.sound_bank)
        print(f"generated {out} in {time.perf_counter() - t0:.0f} s", file=sys.stderr)
    return out


# ------------------------------------------------------------------------------------------------- targets

@dataclass
class Question:
    """One question of the test set with its targets from the scene graph."""

    clip: str
    text: str
    template: str
    type: str
    answer: str
    keywords: tuple[str, ...]
    solo: bool
    player: Player | None = None          # the one visible player the keywords name
    source_slot: int | None = None        # the keyword slot that names the referent (first one)
    source: object | None = None          # the one source the keywords name (any, also off-screen)
    issue_player: Player | None = None    # issue 31's population: the solo clip's player
    data: dict = field(default_factory=dict)


def targets(scene: Scene, rec: dict) -> Question:
    values = tuple(json.loads(rec["templ_values"]))
    modality, kind = json.loads(rec["type"])
    text = fill_template(rec["question_content"], list(values)) + "?"
    q = Question(scene.video_id, text, rec["question_content"].strip(), f"{modality}/{kind}", rec["anser"], values,
                 solo=len(scene.players) == 1)
    named: dict[int, tuple[int, object]] = {}
    for j, word in enumerate(values):
        src = keyword_referent(scene, word)
        if src is not None and id(src) not in named:
            named[id(src)] = (j, src)
    if len(named) == 1:
        (j, src), = named.values()
        q.source, q.source_slot = src, j
        if isinstance(src, Player):
            q.player = src
    if q.solo and q.template not in EXCLUDED_FROM_ISSUE:
        q.issue_player = scene.players[0]
    return q


def prior_cells(style: str, n: int, per_video: int, person_aspect: float) -> dict[tuple[str, str], int]:
    """(population, box kind) -> the one cell most often on the named player over n training-split scenes (seed 0,
    the recipes' generation seed) of the same world: the best constant guess a map could learn from the data."""
    scenes = scenes_of(style, 0, n, split="train")
    chosen = select_questions(scenes, per_video, 0)
    cells: dict[tuple[str, str], list[np.ndarray]] = defaultdict(list)
    for scene, qas in zip(scenes, chosen):
        for qa in qas:
            rec = annotation_record(scene.video_id, 0, qa)
            q = targets(scene, rec)
            for pop, player in (("solo" if q.solo else "multi", q.player), ("issue", q.issue_player)):
                if player is not None:
                    cells[(pop, "instrument")].append(cq.box_cells(player.bbox))
                    cells[(pop, "player")].append(cq.box_cells(player_box(player, person_aspect)))
    return {key: cq.best_constant_cell(v) for key, v in cells.items()}


# ------------------------------------------------------------------------------------------------- model internals

class Probe:
    """Forward hooks that keep, for the model's last forward, the attention the clues are built from: every
    aggregator attention call (visual then audio; its inputs, to recompute per-head weights) and the referent
    query's inputs. Removed with `close`."""

    def __init__(self, model):
        self.model = model
        self.calls: dict[str, list] = defaultdict(list)
        self.inputs: dict = {}
        self.handles = [model.register_forward_pre_hook(self._model_inputs, with_kwargs=True)]
        aggs = [model.aggregator] + ([model.aggregator_audio] if hasattr(model, "aggregator_audio") else [])
        for agg in aggs:
            for level in ("low", "high"):
                mod = getattr(agg, f"attn_{level}", None)
                if mod is not None:
                    self.handles.append(mod.register_forward_hook(self._attention(level, mod), with_kwargs=True))
        rq = getattr(getattr(model, "keywords", None), "referent_query", None)
        self.referent_query = rq
        if rq is not None:
            self.handles.append(rq.register_forward_hook(self._referent, with_kwargs=True))

    def _model_inputs(self, module, args, kwargs):
        self.calls.clear()
        self.inputs = {k: kwargs.get(k) for k in ("question_mask", "objects_mask", "objects_kind")}

    def _attention(self, level, mod):
        def hook(module, args, kwargs, output):
            x, context = args[0], args[1]
            self.calls[level].append({"x": x.detach(), "context": context.detach(), "weights": output[1].detach(),
                                      "mod": mod, "index": kwargs.get("context_index")})
        return hook

    def _referent(self, module, args, kwargs, output):
        instrument, visual, audio = args[:3]
        self.calls["referent"].append({"instrument": instrument.detach(), "visual": visual.detach(),
                                       "audio": audio.detach()})

    def close(self):
        for h in self.handles:
            h.remove()

    @staticmethod
    def per_head(call) -> torch.Tensor:
        """[B,h,Lq,N] the call's attention per head (eval mode: no dropout; context shared by all rows)."""
        mod, x, ctx = call["mod"], call["x"], call["context"]
        B, Lq, _ = x.shape
        h, dh = mod.n_heads, mod.d_head
        q = mod.q_proj(x).view(B, Lq, h, dh).transpose(1, 2)
        k = mod.k_proj(ctx).view(ctx.shape[0], ctx.shape[1], h, dh).transpose(1, 2)
        return ((q @ k.transpose(-2, -1)) / math.sqrt(dh)).softmax(-1)

    def referent_weights(self) -> tuple[torch.Tensor, torch.Tensor] | None:
        """([B,K,N_visual], [B,K,T]): where each keyword's instrument looked in the second hop (the first call)."""
        if not self.calls.get("referent"):
            return None
        c, rq = self.calls["referent"][0], self.referent_query
        q = rq.query(c["instrument"])

        def look(qq, ctx):
            if ctx.shape[0] != qq.shape[0]:
                ctx = ctx.expand(qq.shape[0], -1, -1)
            return (qq @ ctx.transpose(1, 2) / math.sqrt(qq.shape[-1])).softmax(-1)
        return look(rq.q_visual(q), c["visual"]), look(rq.q_audio(q), c["audio"])


def masked_mean(w: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """Mean of w [B,L,...] over the rows where mask [B,L] is True."""
    m = mask.to(w.dtype).reshape(*mask.shape, *([1] * (w.dim() - 2)))
    return (w * m).sum(1) / m.sum(1).clamp_min(1)


def read_maps(probe: Probe, n: int) -> dict[str, np.ndarray]:
    """Per question: every map the bench compares, as numpy arrays ([n, ...]; keyword maps [n, K, ...])."""
    q_mask = probe.inputs["question_mask"].bool()
    L = q_mask.shape[1]
    low_v, low_a = probe.calls["low"][0], probe.calls["low"][1]
    high_v, high_a = probe.calls["high"][0], probe.calls["high"][1]
    out = {}
    with torch.no_grad():
        hv = Probe.per_head(low_v)                                   # [B,h,L+K,T*P]
        out["low_v_heads"] = torch.stack([masked_mean(hv[:, h, :L], q_mask) for h in range(hv.shape[1])], 1)
        out["kw_low_v_heads"] = hv[:, :, L:]                          # [B,h,K,T*P]
        # the heads' mean is what the model returned (its question rows are the shown clue): checked here
        real = q_mask[..., None]
        if not torch.allclose(hv.mean(1)[:, :L] * real, low_v["weights"][:, :L] * real, atol=1e-5):
            raise SystemExit("recomputed per-head attention does not match the model's own weights")
        out["kw_low_v"] = hv.mean(1)[:, L:]                           # [B,K,T*P]
        o_kind = probe.inputs["objects_kind"]
        o_mask = probe.inputs["objects_mask"].bool() & (o_kind == 1)  # the type words' rows
        out["type_low_v"] = masked_mean(hv.mean(1)[:, L:], o_mask)     # [B,T*P]
        out["kw_low_a"] = Probe.per_head(low_a).mean(1)[:, L:]        # [B,K,T]
        out["kw_high_v"] = Probe.per_head(high_v).mean(1)[:, L:]
        out["kw_high_a"] = Probe.per_head(high_a).mean(1)[:, L:]
        ref = probe.referent_weights()
        if ref is not None:
            out["ref_v"], out["ref_a"] = ref
    return {k: v.float().numpy() for k, v in out.items()}


# ------------------------------------------------------------------------------------------------- measuring

def rollout(low: np.ndarray, high: np.ndarray) -> np.ndarray:
    """[P] the low-level map rolled over the hierarchy: each frame's spatial distribution, weighted by the high
    level's attention to that second (what the question gathered from where, through both levels)."""
    per_t = low / np.clip(low.sum(axis=1, keepdims=True), 1e-12, None)
    return (high[:, None] * per_t).sum(axis=0)


SPATIAL_LABELS = {
    "shown now": "used; what the demo shows now (Pipeline's shown spatial clue): the referent-query map of the "
                 "keyword read as on screen, else the type words' map",
    "shown now: referent query": "the same, questions where it is the referent-query map",
    "shown now: type words": "the same, questions where it is the type words' map",
    "shown": "used; the demo before issue 31: visual_low summed over time, mean of question tokens and heads",
    "shown head {h}": "used; the same attention, head {h} only",
    "shown rolled": "used; visual_low per frame weighted by visual_high (rolled over the hierarchy)",
    "type words": "used; the low-level attention of the two type words (e.g. 'Visual', 'Location'), mean",
    "evidence": "gradient x input: the answer's log-odds gradient times (patch - clip mean), summed over frames "
                "(the deletion test's change, linearised; signed)",
    "evidence+": "the same, its positive part per frame and patch (what the demo's evidence figure draws)",
    "shown now x evidence+": "the shown map weighted by evidence+ (the shown map where evidence+ is zero everywhere)",
    "evidence+ where it looked (>= 1/4 peak)": "evidence+ inside the cells where the shown map has at least 1/4 of its "
                                               "peak (ties broken by the shown map)",
    "evidence+ where it looked (>= 1/2 peak)": "the same, at least 1/2 of its peak",
    "keyword": "used; the referent keyword's own low-level attention (its clue feeds the grounding head)",
    "keyword head {h}": "used; the keyword's attention, head {h} only",
    "keyword rolled": "used; the keyword's low map weighted by its high-level attention",
    "referent query": "used; the grounding head's instrument read-out looking the patches up again (2nd hop)",
    "keyword, model-chosen": "used; the keyword map of the keyword the grounding head reads as on screen "
                             "(most confident), else the shown map: needs no scene graph",
    "referent query, model-chosen": "used; the same choice for the referent-query map, else the shown map",
    "referent query, model-chosen, else type words": "used; as above, but the type words' map where no keyword "
                                                     "is read as on screen",
    "keyword in read slot": "used map ∩ read-out: the keyword map inside the slot the position read-out names",
    "referent query in read slot": "used map ∩ read-out: the referent-query map inside the read slot",
    "position read-out (slot)": "read-out trained for it: grounding head position (left/middle/right), slot = column",
    "centre cell": "baseline: always the centre cell",
    "prior cell": "baseline: the one cell most often on the referent in 2000 training-split scenes",
}


EVIDENCE_SPATIAL = ("evidence", "evidence+", "shown now x evidence+", "evidence+ where it looked (>= 1/4 peak)",
                    "evidence+ where it looked (>= 1/2 peak)")


#: what replaces the whole picture or sound: the clip mean (every cell or second), or the previous clip's
WHOLE = ("picture", "sound", "picture of another clip", "sound of another clip")

#: the deletion test's oracles: the scene graph's named player (cells) and the seconds its source sounds
ORACLE = {"cells": "oracle: the named player (scene graph)",
          "audio seconds": "oracle: its sounding seconds (scene graph)"}


#: the maps whose deletion curves are measured (the demo's figures and the maps they replaced)
CURVE_CELLS = ("shown now", "shown", "evidence+", "shown now x evidence+")
CURVE_SECONDS = ("shown now (audio)", "audio_high (shown)", "audio evidence+")


def _normalised_positive(x: np.ndarray) -> np.ndarray:
    r = np.clip(np.asarray(x, dtype=np.float64), 0, None)
    return r / r.sum() if r.sum() > 0 else r


def evidence_spatial(shown_now: np.ndarray, relevance: np.ndarray) -> dict[str, np.ndarray]:
    """[P] maps from the answer's gradient x input relevance [T,P] (mcd.serving.evidence): its signed sum over
    frames (the deletion test's linearised change), its positive part, and the shown map weighted by it."""
    signed = relevance.sum(0)
    pos = _normalised_positive(relevance).sum(0)
    both = np.asarray(shown_now) * pos
    looked = np.asarray(shown_now, dtype=np.float64)
    inside = {f"evidence+ where it looked (>= {name} peak)": cq.restrict(pos + 1e-12 * looked, looked >= f * looked.max())
              for name, f in (("1/4", 0.25), ("1/2", 0.5))}
    return {"evidence": signed, "evidence+": pos,
            "shown now x evidence+": both if both.sum() > 0 else np.asarray(shown_now), **inside}


def evidence_temporal(shown_now: np.ndarray, relevance: np.ndarray) -> dict[str, np.ndarray]:
    """[T] audio maps from the answer's relevance per second: signed, positive part, the shown curve weighted."""
    pos = _normalised_positive(relevance)
    both = np.asarray(shown_now) * pos
    return {"audio evidence": np.asarray(relevance, dtype=np.float64), "audio evidence+": pos,
            "shown now (audio) x evidence+": both if both.sum() > 0 else np.asarray(shown_now)}


def spatial_maps(q: Question, i: int, res, maps: dict, n_heads: int) -> dict[str, np.ndarray]:
    """name -> [P] map for question i (keyword maps only when a keyword names its referent)."""
    low = res.clues["visual_low"]                                        # [T,P]
    now = res.shown["spatial"]
    out = {"shown now": now.weights.sum(0), f"shown now: {now.source}": now.weights.sum(0),
           "shown": low.sum(0), "shown rolled": rollout(low, res.clues["visual_high"]),
           "type words": maps["type_low_v"][i].reshape(T, P).sum(0)}
    for h in range(n_heads):
        out[f"shown head {h}"] = maps["low_v_heads"][i, h].reshape(T, P).sum(0)
    j = model_slot(res, q)
    if j is not None:   # what the demo can do without a scene graph: the keyword the model reads as on screen
        out["keyword, model-chosen"] = maps["kw_low_v"][i, j].reshape(T, P).sum(0)
        if "ref_v" in maps:
            out["referent query, model-chosen"] = maps["ref_v"][i, j].reshape(T, P).sum(0)
        out["referent query, model-chosen, else type words"] = out.get("referent query, model-chosen",
                                                                      out["keyword, model-chosen"])
    else:
        out["keyword, model-chosen"] = out["referent query, model-chosen"] = out["shown"]
        out["referent query, model-chosen, else type words"] = out["type words"]
    j = q.source_slot
    if j is not None:
        kw = maps["kw_low_v"][i, j].reshape(T, P)
        out["keyword"] = kw.sum(0)
        out["keyword rolled"] = rollout(kw, maps["kw_high_v"][i, j])
        for h in range(n_heads):
            out[f"keyword head {h}"] = maps["kw_low_v_heads"][i, h, j].reshape(T, P).sum(0)
        if "ref_v" in maps:
            out["referent query"] = maps["ref_v"][i, j].reshape(T, P).sum(0)
    return out


def model_slot(res, q: Question) -> int | None:
    """The keyword slot a demo would show without a scene graph: among the question's keywords, the one the
    grounding head most confidently reads as a visible player (left/middle/right); None if none is."""
    best, best_p = None, 0.0
    for j, word in enumerate(q.keywords):
        r = (res.referents or {}).get(word)
        if r is not None and r["position"] in ("left", "middle", "right") and r["position_p"] > best_p:
            best, best_p = j, r["position_p"]
    return best


def model_sounding_slot(res, q: Question) -> int | None:
    """The keyword a demo would take the seconds of: the one the grounding head most confidently reads as sounding
    (and not absent); None if the question has no keyword."""
    best, best_p = None, -1.0
    for j, word in enumerate(q.keywords):
        r = (res.referents or {}).get(word)
        if r is not None and r["position"] != "absent" and r["sounds_p"] > best_p:
            best, best_p = j, r["sounds_p"]
    return best


def read_slot(res, q: Question) -> str | None:
    if q.source_slot is None or not res.referents:
        return None
    word = q.keywords[q.source_slot]
    r = res.referents.get(word)
    return None if r is None else r["position"]


TEMPORAL_LABELS = {
    "shown now (audio)": "used; what the demo shows now (Pipeline's shown temporal clue): the referent query's "
                         "audio weights of the keyword read as most surely sounding, else audio_high",
    "shown now (audio): referent query": "the same, questions where it is the referent query's",
    "shown now (audio): question tokens": "the same, questions where it is audio_high",
    "audio_high (shown)": "used; the demo's audio seconds before issue 31: high-level audio attention, question "
                          "tokens",
    "audio_low (shown)": "used; low-level audio attention, question tokens",
    "visual_high (shown)": "used; the demo's visual seconds: high-level visual attention",
    "visual_low over time (shown)": "used; visual_low summed over patches",
    "keyword audio_high": "used; the referent keyword's high-level audio attention",
    "keyword audio_low": "used; the referent keyword's low-level audio attention",
    "keyword visual_high": "used; the referent keyword's high-level visual attention",
    "referent query audio": "used; the referent query's look-up over the audio seconds (2nd hop)",
    "referent query audio, model-chosen": "used; the referent query of the keyword read as most surely sounding, "
                                          "else audio_high: needs no scene graph",
    "referent query audio x read-out, model-chosen": "used x read-out: the model-chosen referent query's audio "
                                                     "weights times the same keyword's P(sounds in segment t)",
    "referent query audio in read-out seconds, model-chosen": "used ∩ read-out: the model-chosen referent query's "
                                                              "audio weights inside the seconds read as sounding "
                                                              "(P > 0.5; all seconds if none)",
    "sounding read-out, model-chosen": "read-out: the model-chosen keyword's P(sounds in segment t), normalised",
    "audio evidence+": "gradient x input per second, positive part (what the demo's evidence figure draws)",
    "shown now (audio) x evidence+": "the shown audio curve weighted by audio evidence+",
    "sounding read-out": "read-out trained for it: grounding head P(sounds in segment t), normalised",
    "sounding read-out > 0.5": "read-out: the seconds the demo already lists as 'sounding' (P > 0.5), uniform",
}


def temporal_maps(q: Question, i: int, res, maps: dict) -> dict[str, np.ndarray]:
    c = res.clues
    now = res.shown["temporal"]
    out = {"shown now (audio)": now.weights, f"shown now (audio): {now.source}": now.weights,
           "audio_high (shown)": c["audio_high"], "audio_low (shown)": c["audio_low"],
           "visual_high (shown)": c["visual_high"], "visual_low over time (shown)": c["visual_low"].sum(1)}
    j = model_sounding_slot(res, q)
    if j is not None and "ref_a" in maps:
        out["referent query audio, model-chosen"] = ref = maps["ref_a"][i, j]
        seg = np.asarray(res.referents[q.keywords[j]]["segments"], dtype=np.float64)
        out["sounding read-out, model-chosen"] = seg
        out["referent query audio x read-out, model-chosen"] = ref * seg if (ref * seg).sum() > 0 else ref
        inside = ref * (seg > 0.5)
        out["referent query audio in read-out seconds, model-chosen"] = inside if inside.sum() > 0 else ref
    else:
        out["referent query audio, model-chosen"] = c["audio_high"]
    j = q.source_slot
    if j is not None:
        out["keyword audio_high"] = maps["kw_high_a"][i, j]
        out["keyword audio_low"] = maps["kw_low_a"][i, j]
        out["keyword visual_high"] = maps["kw_high_v"][i, j]
        if "ref_a" in maps:
            out["referent query audio"] = maps["ref_a"][i, j]
        word = q.keywords[j]
        if res.referents and word in res.referents:
            seg = np.asarray(res.referents[word]["segments"], dtype=np.float64)
            out["sounding read-out"] = seg
            out["sounding read-out > 0.5"] = (seg > 0.5).astype(np.float64) if (seg > 0.5).any() else np.ones_like(seg)
    return out


def forward_probs(pipeline: Pipeline, text, rows: list[int], visual: torch.Tensor, audio: torch.Tensor,
                  qtype: torch.Tensor, chunk: int = 48) -> np.ndarray:
    """[M, C] answer log-probabilities for question rows `rows` (indices into the request's questions) on per-row
    features visual [M,T,P,D], audio [M,T,D]: the Pipeline's forward with distinct features per row."""
    out = []
    with torch.no_grad():
        for s in range(0, len(rows), chunk):
            r = torch.tensor(rows[s:s + chunk])
            o = pipeline.model(visual=visual[s:s + chunk], audio=audio[s:s + chunk],
                               question=text.tokens.float()[r], question_mask=text.mask[r],
                               objects=text.objects[r], objects_mask=text.objects_mask[r],
                               objects_kind=text.objects_kind[r], question_type=qtype[r])
            out.append(o.logits.double().log_softmax(-1).numpy())
    return np.concatenate(out) if out else np.zeros((0, len(ANSWERS)))


#: the deletion test with the change reaching one visual path of the model only (the other sees the whole clip)
PATHS = {"cells, patch tokens only": "patches", "cells, frame means only": "frames"}
PATH_MAPS = ("shown now", "evidence+")
PATH_ROWS = ("random", *PATH_MAPS, ORACLE["cells"])       # the "cells" rows measured again per path


def deletion_pair(lp0: np.ndarray, answer: int, lp: np.ndarray, random: list[np.ndarray]) -> tuple:
    """The deletion test of one clue for `answer`, in probability and in log-odds: `lp0` the log-probabilities on
    the whole clip, `lp` after deleting the clue's top entries, `random` after each random draw."""
    return (cq.deletion(math.exp(lp0[answer]), math.exp(lp[answer]), [math.exp(r[answer]) for r in random]),
            cq.deletion(cq.log_odds(lp0, answer), cq.log_odds(lp, answer), [cq.log_odds(r, answer) for r in random]))


# ------------------------------------------------------------------------------------------------- tables

def table(header: list[str], rows: list[list[str]]) -> str:
    lines = ["| " + " | ".join(header) + " |", "|" + "|".join("---" for _ in header) + "|"]
    lines += ["| " + " | ".join(str(c) for c in r) + " |" for r in rows]
    return "\n".join(lines)


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--checkpoint", type=Path, default=Path("checkpoints/mcd-synth"))
    p.add_argument("--clips", type=int, default=150)
    p.add_argument("--seed", type=int, default=31031)
    p.add_argument("--style", default="default", choices=("v1", "default", "held-out"),
                   help="default/held-out: mcd synth's (default: the shipped checkpoint's training world); v1: world "
                        "v1, for a checkpoint trained there")
    p.add_argument("--sound-bank", default=None, help="mcd synth --sound-bank (v2 styles only)")
    p.add_argument("--data", type=Path, default=None, help="test-set folder (generated there if absent)")
    p.add_argument("--questions-per-video", type=int, default=20)
    p.add_argument("--workers", type=int, default=1, help="rendering processes")
    p.add_argument("--k-cells", type=int, default=3, help="cells deleted (over all frames) in the deletion test")
    p.add_argument("--k-seconds", type=int, default=2, help="seconds deleted in the deletion test")
    p.add_argument("--draws", type=int, default=4, help="random deletions per question")
    p.add_argument("--sound-baseline", default="clip-mean", choices=tuple(SOUND_BASELINES),
                   help="what a deleted second becomes: the clip's mean second (the issue's test, like the cells) "
                        "or the audio encoder's features of a silent second (the second muted)")
    p.add_argument("--prior-scenes", type=int, default=2000)
    p.add_argument("--no-deletion", action="store_true")
    p.add_argument("--no-curve", dest="curve", action="store_false",
                   help="skip the deletion curves (cells and seconds deleted in the clue's order, step by step)")
    p.add_argument("--json", type=Path, default=None, help="write the summary numbers here")
    p.add_argument("--write-checkpoint", action="store_true",
                   help="store the shown clues' numbers in the checkpoint's config.json (key clue_quality): the "
                        "demo's figure captions read them")
    args = p.parse_args()
    if args.write_checkpoint and args.sound_baseline != "clip-mean":
        p.error("--write-checkpoint stores the issue's test: deleted seconds become the clip mean")
    torch.manual_seed(0)
    start = time.perf_counter()

    root = test_set(args)
    scenes = {s.video_id: s for s in read_scenes(root / "scenes.jsonl")}
    records = json.loads((root / "avqa-test.json").read_text(encoding="utf-8"))
    by_clip: dict[str, list[dict]] = defaultdict(list)
    for r in records:
        by_clip[r["video_id"]].append(r)

    from mcd.synth import glyphs
    person = glyphs.glyph("openmoji", glyphs.person_key())   # v1's person (v2 styles: an approximation)
    person_aspect = person.width / person.height
    prior = prior_cells(args.style, args.prior_scenes, args.questions_per_video, person_aspect)

    pipeline = Pipeline(args.checkpoint)
    model = pipeline.model
    n_heads = model.config.n_heads
    probe = Probe(model)
    rng = np.random.default_rng(args.seed)
    crng = np.random.default_rng([args.seed, 1])     # the curves' random orders: the top-k test's draws unchanged
    steps_c, steps_s = cq.curve_steps(P), cq.curve_steps(T)
    silent = (pipeline.encoders.audio.encode(np.zeros((T, 16000), np.float32)).float()
              if args.sound_baseline == "silence" else None)

    def delete_seconds(audio: torch.Tensor, index) -> torch.Tensor:
        """`audio` [T,D] with the seconds `index` deleted as --sound-baseline says."""
        if silent is None:
            return cq.replace_with_mean(audio, index, axis=0)
        out = audio.clone()
        idx = torch.as_tensor(np.asarray(index), dtype=torch.long)
        out[idx] = silent[idx]
        return out

    # results: pointing[map][population][box] -> list of (question, hit)
    pointing: dict = defaultdict(lambda: defaultdict(lambda: defaultdict(list)))
    temporal: dict = defaultdict(list)             # map -> [(question, TemporalShare)]
    deletions: dict = defaultdict(list)            # (kind, map) -> [(question, Deletion)]
    wholes: list = []                              # (question, one of WHOLE, drop of p, answer changed)
    other_clip = None                              # the previous clip's (visual, audio): the swap rows
    correct, parse_mismatch, peaks = [], 0, Counter()
    shown_mismatch = 0     # the pipeline's shown map differs from the bench's recomputation of the recommended one
    n_questions = 0

    for vid in sorted(by_clip)[: args.clips]:
        scene = scenes[vid]
        qs = [targets(scene, r) for r in by_clip[vid]][:20]
        if not qs:
            continue
        answers = pipeline.answer(root / "videos" / f"{vid}.mp4", [q.text for q in qs])
        maps = read_maps(probe, len(qs))
        parsed = [parse(q.text) for q in qs]
        for q, pq in zip(qs, parsed):
            if pq.template is None or pq.template.text.strip() != q.template or tuple(pq.keywords) != q.keywords:
                parse_mismatch += 1
        feats = answers.clip
        understood = pipeline.understand([q.text for q in qs])   # as Pipeline.answer asked them
        if not all(u.answered for u in understood):
            raise SystemExit(f"{vid}: a test question was refused: "
                             f"{[u.text for u in understood if not u.answered]}")
        text = pipeline._text_worker.submit(pipeline._encode_text, understood).result()
        qtype = torch.tensor([type_index(u.type) for u in understood], dtype=torch.long)
        for i, (q, res) in enumerate(zip(qs, answers.results)):
            n_questions += 1
            correct.append((q, res.answer == q.answer))
            spat = spatial_maps(q, i, res, maps, n_heads)
            spat.update(evidence_spatial(spat["shown now"], res.evidence["visual"]))
            peaks[cq.peak_cell(spat["shown"])] += 1
            slot = read_slot(res, q)
            if slot in ("left", "middle", "right"):
                cells = cq.slot_columns(slot, zoom=scene.zoom)
                if "keyword" in spat:
                    spat["keyword in read slot"] = cq.restrict(spat["keyword"], cells)
                if "referent query" in spat:
                    spat["referent query in read slot"] = cq.restrict(spat["referent query"], cells)
            for pop, player in (("solo" if q.solo else "multi", q.player), ("issue", q.issue_player)):
                if player is None:
                    continue
                boxes = {"instrument": player.bbox, "player": player_box(player, person_aspect)}
                for box_kind, box in boxes.items():
                    for name, m in spat.items():
                        pointing[name][pop][box_kind].append((q, cq.pointing_hit(m, box)))
                    pointing["centre cell"][pop][box_kind].append((q, bool(cq.box_cells(box)[CENTRE])))
                    pointing["prior cell"][pop][box_kind].append(
                        (q, bool(cq.box_cells(box)[prior[(pop, box_kind)]])))
                    if pop != "issue":
                        pointing["position read-out (slot)"][pop][box_kind].append((q, slot == player.position))
            tmaps = temporal_maps(q, i, res, maps)
            tmaps.update(evidence_temporal(tmaps["shown now (audio)"], res.evidence["audio"]))
            if q.source is not None:
                sounding = cq.segment_fractions(q.source.intervals, scene.duration, T)
                if 0.05 < sounding.mean() < 0.95:
                    for name, m in tmaps.items():
                        if np.any(np.asarray(m) < 0):   # a signed relevance is not a distribution of weight
                            continue
                        temporal[name].append((q, cq.temporal_share(m, sounding)))
            oracle = {}
            if q.player is not None:
                oracle["cells"] = cq.oracle_cells(q.player.bbox, player_box(q.player, person_aspect))
            if q.source is not None:
                sounding_all = cq.segment_fractions(q.source.intervals, scene.duration, T)
                if sounding_all.any():
                    oracle["audio seconds"] = sounding_all
            if not np.allclose(spat["shown now"], spat["referent query, model-chosen, else type words"], atol=1e-5):
                shown_mismatch += 1
            q.data = {"spatial": spat, "temporal": tmaps, "answer": ANSWERS.index(res.answer), "oracle": oracle,
                      "sources": {"spatial": res.shown["spatial"].source, "temporal": res.shown["temporal"].source}}

        if args.no_deletion:
            continue
        # deletion test: per question, every map's top-k and the same random draws
        V, A = feats.visual, feats.audio
        rows, vis, aud, keys = [], [], [], []

        def add(i, v, a, key):
            rows.append(i)
            vis.append(v)
            aud.append(a)
            keys.append(key)
        for i, q in enumerate(qs):
            add(i, V, A, (i, "p0"))
            add(i, cq.replace_with_mean(V, np.arange(P), axis=1), A, (i, "whole", "picture"))
            add(i, V, delete_seconds(A, np.arange(T)), (i, "whole", "sound"))
            if other_clip is not None:
                add(i, other_clip[0], A, (i, "whole", "picture of another clip"))
                add(i, V, other_clip[1], (i, "whole", "sound of another clip"))
            rc = cq.random_k(rng, P, args.k_cells, args.draws)
            rs = cq.random_k(rng, T, args.k_seconds, args.draws)
            for d in range(args.draws):
                add(i, cq.replace_with_mean(V, rc[d], axis=1), A, (i, "cells", "random", d))
                add(i, V, delete_seconds(A, rs[d]), (i, "audio seconds", "random", d))
                add(i, cq.replace_with_mean(V, rs[d], axis=0), A, (i, "visual seconds", "random", d))
            for name in ("shown now", "shown", "keyword", "referent query", "shown rolled", "keyword, model-chosen",
                         "referent query, model-chosen", "type words",
                         "referent query, model-chosen, else type words", *EVIDENCE_SPATIAL):
                if name in q.data["spatial"]:
                    idx = cq.top_k(q.data["spatial"][name], args.k_cells)
                    add(i, cq.replace_with_mean(V, idx, axis=1), A, (i, "cells", name))
            for kind, m in q.data["oracle"].items():
                idx = cq.top_k(m, args.k_cells if kind == "cells" else args.k_seconds)
                add(i, *((cq.replace_with_mean(V, idx, axis=1), A) if kind == "cells"
                         else (V, delete_seconds(A, idx))), (i, kind, ORACLE[kind]))
            for name, m in q.data["temporal"].items():
                if ": " in name:      # a per-source subset of another map: the same rows
                    continue
                idx = cq.top_k(m, args.k_seconds)
                if "audio" in name or name.startswith("sounding read-out"):
                    add(i, V, delete_seconds(A, idx), (i, "audio seconds", name))
                if "visual" in name:
                    add(i, cq.replace_with_mean(V, idx, axis=0), A, (i, "visual seconds", name))
            if args.curve:
                for d in range(args.draws):
                    perm_c, perm_s = crng.permutation(P), crng.permutation(T)
                    for k in steps_c:
                        add(i, cq.replace_with_mean(V, perm_c[:k], axis=1), A, (i, "cells curve", "random", d, k))
                    for k in steps_s:
                        add(i, V, delete_seconds(A, perm_s[:k]),
                            (i, "audio seconds curve", "random", d, k))
                for name in CURVE_CELLS:
                    if name in q.data["spatial"]:
                        order = cq.top_k(q.data["spatial"][name], P)
                        for k in steps_c:
                            add(i, cq.replace_with_mean(V, order[:k], axis=1), A, (i, "cells curve", name, k))
                if "cells" in q.data["oracle"]:
                    order = cq.top_k(q.data["oracle"]["cells"], P)
                    for k in steps_c:
                        add(i, cq.replace_with_mean(V, order[:k], axis=1), A, (i, "cells curve", ORACLE["cells"], k))
                if "audio seconds" in q.data["oracle"]:
                    order = cq.top_k(q.data["oracle"]["audio seconds"], T)
                    for k in steps_s:
                        add(i, V, delete_seconds(A, order[:k]),
                            (i, "audio seconds curve", ORACLE["audio seconds"], k))
                for name in CURVE_SECONDS:
                    if name in q.data["temporal"]:
                        order = cq.top_k(q.data["temporal"][name], T)
                        for k in steps_s:
                            add(i, V, delete_seconds(A, order[:k]),
                                (i, "audio seconds curve", name, k))
        logp = forward_probs(pipeline, text, rows, torch.stack(vis), torch.stack(aud), qtype)
        # the same cell deletions (random, the path maps', the oracle's) again, reaching one visual path only
        path_rows = [r for r, key in enumerate(keys) if key[1] == "cells" and key[2] in PATH_ROWS]
        got_path = {}
        for kind, path in PATHS.items():
            with cq.one_visual_path(model, V, path):
                lp_path = forward_probs(pipeline, text, [rows[r] for r in path_rows],
                                        torch.stack([vis[r] for r in path_rows]), A.expand(len(path_rows), -1, -1),
                                        qtype)
            got_path.update({(kind, keys[r][0], *keys[r][2:]): lp for r, lp in zip(path_rows, lp_path)})
        other_clip = (V, A)
        got = {key: logp[r] for r, key in enumerate(keys)}
        for i, q in enumerate(qs):
            lp0 = got[(i, "p0")]
            a = int(np.argmax(lp0))
            if abs(math.exp(lp0[a]) - answers.results[i].student_probs[a]) > 1e-4:
                raise SystemExit(f"the bench's forward disagrees with the pipeline's on {q.text!r}")
            for kind in PATHS:
                rnd = [got_path[(kind, i, "random", d)] for d in range(args.draws)]
                for name in (*PATH_MAPS, ORACLE["cells"]):
                    if (kind, i, name) in got_path:
                        lp = got_path[(kind, i, name)]
                        deletions[(kind, name)].append((q, deletion_pair(lp0, a, lp, rnd)))
            for what in WHOLE:
                if (i, "whole", what) not in got:
                    continue
                lp = got[(i, "whole", what)]
                wholes.append((q, what, math.exp(lp0[a]) - math.exp(lp[a]), int(np.argmax(lp)) != a))
            for kind in ("cells", "audio seconds", "visual seconds"):
                rnd = [got[(i, kind, "random", d)] for d in range(args.draws)]
                for key, lp in got.items():
                    if key[0] == i and len(key) == 3 and key[1] == kind:
                        deletions[(kind, key[2])].append((q, deletion_pair(lp0, a, lp, rnd)))

            if args.curve:
                for kind, steps, names in (("cells curve", steps_c, (*CURVE_CELLS, ORACLE["cells"])),
                                           ("audio seconds curve", steps_s, (*CURVE_SECONDS, ORACLE["audio seconds"]))):
                    rnd = [[got[(i, kind, "random", d, k)] for k in steps] for d in range(args.draws)]
                    for name in names:
                        if (i, kind, name, steps[0]) not in got:
                            continue
                        top = [got[(i, kind, name, k)] for k in steps]
                        deletions[(kind, name)].append((q, (
                            cq.deletion_curve(math.exp(lp0[a]), [math.exp(x[a]) for x in top],
                                              [[math.exp(x[a]) for x in r] for r in rnd]),
                            cq.deletion_curve(cq.log_odds(lp0, a), [cq.log_odds(x, a) for x in top],
                                              [[cq.log_odds(x, a) for x in r] for r in rnd]))))

    probe.close()
    if shown_mismatch:
        print(f"WARNING: on {shown_mismatch} questions the pipeline's shown map is not the bench's recommended map",
              file=sys.stderr)
    out = report(args, root, pointing, temporal, deletions, correct, parse_mismatch, peaks, prior, n_questions,
                 time.perf_counter() - start, wholes)
    if args.write_checkpoint:
        record = clue_quality_record(args, out, pointing, temporal, deletions)
        write_clue_quality(args.checkpoint, record)
        print(f"\nwrote clue_quality to {args.checkpoint / 'config.json'}", file=sys.stderr)


# ------------------------------------------------------------------------------------------------- the report

def report(args, root, pointing, temporal, deletions, correct, parse_mismatch, peaks, prior, n_questions, seconds,
           wholes=()):
    out = {"data": str(root), "style": args.style, "seed": args.seed, "clips": args.clips,
           "questions": n_questions, "accuracy": float(np.mean([c for _, c in correct])) if correct else None,
           "pointing": {}, "temporal": {}, "deletion": {}, "sound_baseline": args.sound_baseline}
    print(f"# bench/clues.py: {args.checkpoint} on {root} ({args.style}, seed {args.seed}): {n_questions} questions "
          f"about {args.clips} clips; answer accuracy {100 * out['accuracy']:.1f}%; "
          f"{parse_mismatch} questions parsed to another template/keywords; {seconds:.0f} s; deleted seconds: "
          f"{SOUND_BASELINES[args.sound_baseline]}\n")
    top_peak, top_n = peaks.most_common(1)[0]
    print(f"The shown map's most frequent peak: cell {top_peak} (row {top_peak // GRID}, column {top_peak % GRID}) "
          f"in {100 * top_n / max(1, sum(peaks.values())):.0f}% of all questions. Prior cells (training-split "
          f"scenes): " + ", ".join(f"{k[0]}/{k[1]} {v}" for k, v in sorted(prior.items())) + ".\n")

    def hits(lst):
        return [h for _, h in lst]

    names = [n for n in SPATIAL_LABELS if n in pointing]
    head_names = [n for n in pointing if n.startswith(("shown head", "keyword head"))]
    print("## Pointing game: the peak cell on the named player's box (half a cell of margin)\n")
    print("Instrument box = the scene graph's box; player box = it grown by the person drawn behind it. "
          "Solo/multi: questions whose keywords name exactly one source, a visible player.\n")
    rows = []
    for name in names + sorted(head_names):
        pops = pointing[name]
        label = SPATIAL_LABELS.get(name) or SPATIAL_LABELS[name.rsplit(" ", 1)[0] + " {h}"].format(
            h=name.rsplit(" ", 1)[1])
        row = [name]
        for pop in ("solo", "multi", "issue"):
            row += [cq.pct(hits(pops[pop]["instrument"])), cq.pct(hits(pops[pop]["player"]))]
        rows.append(row + [label])
        out["pointing"][name] = {pop: {b: cq.rate(hits(pops[pop][b])) for b in ("instrument", "player")}
                                 for pop in ("solo", "multi", "issue")}
    print(table(["map", "solo: instrument", "solo: player", "multi: instrument", "multi: player",
                 "issue-31 pop.: instrument", "issue-31 pop.: player", "what it is"], rows))

    show = [n for n in ("shown now", "shown", "keyword", "referent query", "referent query, model-chosen",
                        "referent query, model-chosen, else type words", "position read-out (slot)", "prior cell")
            if n in pointing]
    for group, key in (("question type", lambda q: q.type), ("template", lambda q: q.template)):
        print(f"\n### Pointing game per {group} (instrument box; solo / multi)\n")
        cells = defaultdict(lambda: defaultdict(lambda: {"solo": [], "multi": []}))
        for name in show:
            for pop in ("solo", "multi"):
                for q, h in pointing[name][pop]["instrument"]:
                    cells[key(q)][name][pop].append(h)
        rows = [[g] + [f"{cq.pct(cells[g][n]['solo'])} / {cq.pct(cells[g][n]['multi'])}" for n in show]
                for g in sorted(cells)]
        print(table([group] + show, rows))

    print("\n## Temporal clues: share of the clue inside the seconds the named source sounds\n")
    print("Questions whose keywords name one source (on or off screen) that sounds for 5-95% of the clip. "
          "share = the clue's weight there; base = those seconds' share of the clip; ratio = mean share / mean "
          "base; ceiling = 1 / mean base (all weight inside); gain = mean (share - base) / (1 - base), "
          "0 = uniform, 1 = "
          "all inside; 'share > base' = questions where the clue beats a uniform one.\n")
    rows = []
    for name in TEMPORAL_LABELS:
        if name not in temporal:
            continue
        v = temporal[name]
        share = float(np.mean([t.share for _, t in v]))
        base = float(np.mean([t.base for _, t in v]))
        above = [t.share > t.base for _, t in v]
        gain = float(np.mean([(t.share - t.base) / (1 - t.base) for _, t in v]))
        rows.append([name, len(v), f"{share:.3f}", f"{base:.3f}", f"{share / base:.2f}", f"{1 / base:.2f}",
                     f"{gain:.2f}", cq.pct(above), TEMPORAL_LABELS[name]])
        out["temporal"][name] = {"n": len(v), "share": share, "base": base, "ratio": share / base,
                                 "above": cq.rate(above)[0]}
    print(table(["clue", "n", "share", "base", "ratio", "ceiling", "gain", "share > base", "what it is"], rows))
    tshow = [n for n in ("shown now (audio)", "audio_high (shown)", "visual_high (shown)", "keyword audio_high", "referent query audio",
                         "referent query audio, model-chosen", "sounding read-out") if n in temporal]
    print("\n### Temporal share ratio per question type\n")
    groups = defaultdict(lambda: defaultdict(list))
    for name in tshow:
        for q, t in temporal[name]:
            groups[q.type][name].append(t)
    rows = [[g] + [f"{np.mean([t.share for t in groups[g][n]]) / np.mean([t.base for t in groups[g][n]]):.2f} "
                   f"({len(groups[g][n])})" if groups[g][n] else "-" for n in tshow] for g in sorted(groups)]
    print(table(["type"] + tshow, rows))

    if deletions:
        print(f"\n## Deletion test: the top-{args.k_cells} cells (all frames) or top-{args.k_seconds} seconds "
              f"replaced by the clip mean, against {args.draws} random draws of as many\n")
        print("drop = the answer's probability before minus after (the answer = the model's own on the whole "
              "clip). 'beats' = the top-k drop is larger than the mean random drop. 'all' = every question the map "
              "exists for; 'named' = questions naming one source.\n")
        rows = []
        for (kind, name), v in sorted(deletions.items()):
            for pop, sel in (("all", v), ("named", [(q, d) for q, d in v if q.source is not None]),
                             ("named player", [(q, d) for q, d in v if q.player is not None])):
                if not sel or (pop != "all" and len(sel) == len(v)):
                    continue
                top = float(np.mean([d.drop_top for _, (d, _) in sel]))
                rnd = float(np.mean([d.drop_random for _, (d, _) in sel]))
                beats = [d.beats_random for _, (d, _) in sel]
                lo_top = float(np.mean([d.drop_top for _, (_, d) in sel]))
                lo_rnd = float(np.mean([d.drop_random for _, (_, d) in sel]))
                lo_beats = [d.beats_random for _, (_, d) in sel]
                decisive = [(d.beats_random, lo.beats_random) for _, (d, lo) in sel
                            if max(abs(d.drop_top), abs(d.drop_random)) >= 0.01]
                rows.append([kind, name, pop, len(sel), f"{top:.4f}", f"{rnd:.4f}", cq.pct(beats),
                             f"{lo_top:.2f}", f"{lo_rnd:.2f}", cq.pct(lo_beats), cq.pct([b for b, _ in decisive])])
                out["deletion"][f"{kind} | {name} | {pop}"] = {
                    "n": len(sel), "drop_top": top, "drop_random": rnd, "beats": cq.rate(beats)[0],
                    "logodds_drop_top": lo_top, "logodds_drop_random": lo_rnd, "logodds_beats": cq.rate(lo_beats)[0],
                    "decisive_beats": cq.rate([b for b, _ in decisive])}
        print(table(["deleted", "by clue", "questions", "n", "drop p top-k", "drop p random", "beats (p)",
                     "drop log-odds top-k", "drop log-odds random", "beats (log-odds)",
                     "beats (p), where a deletion moves p ≥ 0.01"], rows))
        print("\n### Deletion per question type (beats random in log-odds; shown maps: cells by visual_low, "
              "audio seconds by "
              "audio_high, visual seconds by visual_high)\n")
        pick = [("cells", "shown now"), ("cells", ORACLE["cells"]), ("cells", "shown"), ("cells", "keyword"),
                ("cells", "referent query"),
                ("cells", "referent query, model-chosen"),
                ("audio seconds", "shown now (audio)"), ("audio seconds", ORACLE["audio seconds"]),
                ("audio seconds", "audio_high (shown)"),
                ("audio seconds", "keyword audio_high"),
                ("visual seconds", "visual_high (shown)")]
        pick = [k for k in pick if k in deletions]
        groups = defaultdict(lambda: defaultdict(list))
        for k in pick:
            for q, (_, d) in deletions[k]:
                groups[q.type][k].append(d.beats_random)
        rows = [[g] + [cq.pct(groups[g][k]) for k in pick] for g in sorted(groups)]
        print(table(["type"] + [f"{k[0]}: {k[1]}" for k in pick], rows))

    if wholes:
        print_whole_input(out, wholes)
    print("\n### Accuracy per question type on these clips\n")
    acc = defaultdict(list)
    for q, c in correct:
        acc[q.type].append(c)
    print(table(["type", "accuracy"], [[t, cq.pct(v)] for t, v in sorted(acc.items())]))
    print_before_after(out, pointing, temporal, deletions)
    if args.json:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps(out, indent=1) + "\n", encoding="utf-8")
    return out


def print_whole_input(out: dict, wholes) -> None:
    """How much the answer rests on the picture or the sound at all: every cell (or second) replaced by the clip
    mean, or by another clip's. A question whose answer does not move when every cell is the clip mean cannot have
    a spatial clue that beats random deletions except by chance, whatever the map; if it moves when the picture is
    another clip's, the answer uses what the clip-mean replacement keeps (each frame's mean feature)."""
    print("\n### The whole picture or sound replaced by the clip mean, or by the previous clip's, per question type\n")
    print("'moves' = the answer's probability falls or rises by >= 0.01; 'changes' = another answer wins.\n")
    groups = defaultdict(lambda: defaultdict(list))
    for q, what, drop, changed in wholes:
        for g in (q.type, "all"):
            groups[g][what].append((abs(drop) >= 0.01, changed))
    rows = []
    for g in sorted(groups, key=lambda g: (g == "all", g)):
        row = [g, len(groups[g]["picture"])]
        for what in WHOLE:
            v = groups[g][what]
            row += [cq.pct([m for m, _ in v]), cq.pct([c for _, c in v])]
            out.setdefault("whole_input", {}).setdefault(g, {})[what] = {
                "n": len(v), "moves": cq.rate([m for m, _ in v])[0], "changes": cq.rate([c for _, c in v])[0]}
        rows.append(row)
    names = {"picture": "picture = clip mean",
             "sound": f"sound = {SOUND_BASELINES[out['sound_baseline']]}",
             "picture of another clip": "another clip's picture", "sound of another clip": "another clip's sound"}
    print(table(["type", "n"] + [f"{names[w]}: {x}" for w in WHOLE for x in ("moves", "changes")], rows))


# ------------------------------------------------------------------------------------------------- before / after

BEFORE_AFTER = (("spatial", "shown", "shown now"), ("temporal", "audio_high (shown)", "shown now (audio)"))


def deletion_rates(deletions, kind: str, name: str, source: tuple[str, str] | None = None,
                   named_player: bool = False) -> dict:
    """beats (probability), and beats where a deletion moves p by >= 0.01, of one map's deletion rows; `source`
    = ("spatial"|"temporal", source) keeps the questions where the shown clue came from it, `named_player` those
    naming one visible player (the oracle's questions)."""
    sel = [(q, d) for q, (d, _) in deletions.get((kind, name), [])
           if (source is None or q.data.get("sources", {}).get(source[0]) == source[1])
           and (not named_player or q.player is not None)]
    decisive = [d.beats_random for _, d in sel if max(abs(d.drop_top), abs(d.drop_random)) >= 0.01]
    return {"n": len(sel), "beats": cq.rate([d.beats_random for _, d in sel])[0] if sel else None,
            "decisive_beats": cq.rate(decisive)[0] if decisive else None, "decisive_n": len(decisive)}


def pointing_rates(pointing, name: str) -> dict:
    """Pointing-game hit rates (instrument box) of one map per population, with their counts."""
    out = {}
    for pop in ("solo", "multi", "issue"):
        hits = [h for _, h in pointing.get(name, {}).get(pop, {}).get("instrument", [])]
        out[pop], out[f"n_{pop}"] = (cq.rate(hits)[0] if hits else None), len(hits)
    return out


def temporal_rates(temporal, name: str) -> dict | None:
    v = temporal.get(name)
    if not v:
        return None
    share, base = float(np.mean([t.share for _, t in v])), float(np.mean([t.base for _, t in v]))
    return {"n": len(v), "share": share, "base": base, "ratio": share / base, "ceiling": 1 / base,
            "above": cq.rate([t.share > t.base for _, t in v])[0]}


def print_before_after(out, pointing, temporal, deletions) -> None:
    """The issue's must-show table: the demo's clues before and after, on the same clips and questions."""
    print("\n## Before / after: what the demo shows (same clips, same questions)\n")
    rows = []
    for label, name in (("before: question tokens' visual_low", "shown"),
                        ("after: referent query, else type words", "shown now"),
                        ("evidence figure: gradient x input, positive part", "evidence+")):
        r = pointing_rates(pointing, name)
        d = deletion_rates(deletions, "cells", name)
        rows.append([label] + [f"{100 * r[p]:.1f}% ({r[f'n_{p}']})" if r[p] is not None else "-"
                               for p in ("solo", "multi", "issue")]
                    + [cq_pct(d["beats"]), cq_pct(d["decisive_beats"])])
    print(table(["spatial map", "pointing solo (≥85%)", "pointing multi (≥70%)", "issue-31 population",
                 "deletion beats random (≥80%)", "beats where p moves ≥ 0.01"], rows))
    rows = []
    for label, name in (("before: question tokens' audio_high", "audio_high (shown)"),
                        ("after: referent query audio in read-out seconds, else audio_high", "shown now (audio)"),
                        ("evidence figure: gradient x input per second, positive part", "audio evidence+")):
        r = temporal_rates(temporal, name)
        d = deletion_rates(deletions, "audio seconds", name)
        if r:
            rows.append([label, r["n"], f"{r['ratio']:.2f}", f"{r['ceiling']:.2f}", cq_pct(r["above"]),
                         cq_pct(d["beats"]), cq_pct(d["decisive_beats"])])
    print()
    print(table(["audio seconds", "n", "ratio (≥1.5)", "ceiling", "share > base", "deletion beats random (≥80%)",
                 "beats where p moves ≥ 0.01"], rows))


def cq_pct(x: float | None) -> str:
    return "-" if x is None else f"{100 * x:.1f}%"


def clue_quality_record(args, out: dict, pointing, temporal, deletions) -> dict:
    """What the demo's captions read (mcd.serving.shown_clues): per source of a shown clue, how often such clues
    were right on this run, with the command that measured it."""
    from mcd.serving.shown_clues import EVIDENCE, QUESTION_TOKENS, REFERENT_QUERY, TYPE_WORDS
    cmd = (f"PYTHONPATH=$PWD .venv/bin/python bench/clues.py --checkpoint {args.checkpoint} --clips {args.clips} "
           f"--seed {args.seed} --style {args.style}" + (" --no-deletion" if args.no_deletion else "")
           + " --write-checkpoint")
    measured = not args.no_deletion

    def spatial(name, source):
        rec = pointing_rates(pointing, name)
        if measured:
            shown, only = ("shown now", ("spatial", source)) if source else (name, None)
            rec["deletion_beats"] = deletion_rates(deletions, "cells", shown, only)["beats"]
            # on the questions naming a visible player: the map against that player's own cells (the ceiling of
            # any map that points at the player)
            named = deletion_rates(deletions, "cells", shown, only, named_player=True)
            oracle = deletion_rates(deletions, "cells", ORACLE["cells"], only)
            rec.update(named_deletion_beats=named["beats"], oracle_deletion_beats=oracle["beats"],
                       n_named_deletion=named["n"])
            curve = deletion_rates(deletions, "cells curve", shown, only)["beats"]
            if curve is not None:         # None with --no-curve, or for a map whose curve is not measured
                rec["curve_beats"] = curve
        return rec

    def temporal_rec(name, source):
        rec = temporal_rates(temporal, name)
        if rec is not None and measured:
            shown, only = ("shown now (audio)", ("temporal", source)) if source else (name, None)
            rec["deletion_beats"] = deletion_rates(deletions, "audio seconds", shown, only)["beats"]
            curve = deletion_rates(deletions, "audio seconds curve", shown, only)["beats"]
            if curve is not None:
                rec["curve_beats"] = curve
        return rec

    def evidence_rec():
        rec = {k: v for k, v in pointing_rates(pointing, "evidence+").items() if k != "issue" and k != "n_issue"}
        if measured:
            rec["cells_deletion_beats"] = deletion_rates(deletions, "cells", "evidence+")["beats"]
            rec["seconds_deletion_beats"] = deletion_rates(deletions, "audio seconds", "audio evidence+")["beats"]
            curves = {"cells_curve_beats": deletion_rates(deletions, "cells curve", "evidence+")["beats"],
                      "seconds_curve_beats": deletion_rates(deletions, "audio seconds curve", "audio evidence+")["beats"]}
            rec.update({k: v for k, v in curves.items() if v is not None})
        return rec

    return {
        "command": cmd, "bench": "bench/clues.py", "style": args.style, "seed": args.seed, "clips": args.clips,
        "questions": out["questions"], "answer_accuracy": out["accuracy"], "deletion_measured": measured,
        "measured_on": time.strftime("%Y-%m-%d"),
        "spatial": {REFERENT_QUERY: spatial(f"shown now: {REFERENT_QUERY}", REFERENT_QUERY),
                    TYPE_WORDS: spatial(f"shown now: {TYPE_WORDS}", TYPE_WORDS),
                    QUESTION_TOKENS: spatial("shown", None), "shown": spatial("shown now", None)},
        "temporal": {REFERENT_QUERY: temporal_rec(f"shown now (audio): {REFERENT_QUERY}", REFERENT_QUERY),
                     QUESTION_TOKENS: temporal_rec("audio_high (shown)", None),
                     "shown": temporal_rec("shown now (audio)", None)},
        EVIDENCE: evidence_rec(),
    }


def rounded(x, digits: int = 4):
    """The record with its floats to `digits` places (config.json stays readable)."""
    if isinstance(x, float):
        return round(x, digits)
    if isinstance(x, dict):
        return {k: rounded(v, digits) for k, v in x.items()}
    return x


def write_clue_quality(checkpoint: Path, record: dict) -> None:
    """Set config.json's `clue_quality` (the weights and every other key stay as they are)."""
    path = checkpoint / "config.json"
    config = json.loads(path.read_text(encoding="utf-8"))
    config["clue_quality"] = rounded(record)
    path.write_text(json.dumps(config, indent=2) + "\n", encoding="utf-8")


if __name__ == "__main__":
    main()
