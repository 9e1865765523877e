"""Ground truth of the synthetic benchmark: hand-built scene graphs with answers worked out by hand."""
from __future__ import annotations

import json

import pytest

from mcd.task.questions import TEMPLATES
from mcd.synth.qa import QAError, answer, candidates
from mcd.synth.scene import Player, Scene, SceneError, Source, Voiceover, sample_scene
from mcd.task.vocab import ANSWERS

FULL = [(0.0, 10.0)]


def player(instrument: str, position: str, intervals=FULL, loudness: float = 0.6, rate: float = 2.0) -> Player:
    return Player(instrument, loudness, rate, 60, list(intervals), position=position, bbox=(0, 0, 10, 10))


def scene(*players: Player, offscreen: Source | None = None, voice: bool = False, background: str = "indoor") -> Scene:
    return Scene("hand", background, list(players), offscreen=offscreen,
                 voiceover=Voiceover([(1.0, 4.0)]) if voice else None).validate()


# A: violin (loud, fast, always) | piano (quiet, slow, enters at 3 s) | drum (never sounds); flute off screen 6-9 s.
A = scene(player("violin", "left", loudness=0.9, rate=4.0),
          player("piano", "middle", [(3.0, 10.0)], loudness=0.35, rate=1.0),
          player("drum", "right", [], loudness=0.3),
          offscreen=Source("flute", 0.6, 1.5, 80, [(6.0, 9.0)]))
# B: two violins, the right one first (0 s, with a gap), the left one from 2 s; a voiceover; outdoors.
B = scene(player("violin", "left", [(2.0, 10.0)], loudness=0.5, rate=1.0),
          player("violin", "right", [(0.0, 4.0), (6.0, 10.0)], loudness=0.8, rate=3.0),
          voice=True, background="outdoor")
# C: two trumpets start together; accordion 0-5 s; banjo off screen 7-10 s.
C = scene(player("trumpet", "left", loudness=0.7), player("trumpet", "middle", loudness=0.4),
          player("accordion", "right", [(0.0, 5.0)], rate=1.0),
          offscreen=Source("banjo", 0.5, 2.0, 70, [(7.0, 10.0)]))
# D: a single flute in the middle.
D = scene(player("flute", "middle"))

CASES = [
    # Audio / Counting
    (A, 0, ["violin"], "yes"), (A, 0, ["drum"], "no"), (A, 0, ["flute"], "yes"), (A, 0, ["trumpet"], "no"),
    (A, 1, ["violin", "flute"], "yes"), (A, 1, ["violin", "drum"], "no"), (A, 1, ["violin", "violin"], None),
    (A, 2, [], "three"), (B, 2, [], "two"), (D, 2, [], "one"),
    # Audio / Comparative
    (A, 3, ["violin", "piano"], "yes"), (A, 3, ["piano", "violin"], "no"), (A, 3, ["piano", "flute"], "no"),
    (A, 3, ["violin", "drum"], None), (B, 3, ["violin", "violin"], None),
    (A, 4, ["violin", "piano"], "yes"), (A, 4, ["piano", "flute"], None), (A, 4, ["flute", "violin"], "no"),
    (A, 5, ["violin", "piano"], "yes"), (A, 5, ["piano", "flute"], "yes"), (A, 5, ["flute", "violin"], "no"),
    # Visual / Counting
    (A, 6, ["drum"], "yes"), (A, 6, ["flute"], "no"), (A, 7, ["violin", "drum"], "yes"),
    (A, 7, ["violin", "flute"], "no"), (A, 8, ["violin"], "one"), (A, 8, ["flute"], "zero"), (B, 8, ["violin"], "two"),
    (A, 9, [], "three"), (B, 9, [], "one"),
    # Visual / Location
    (A, 10, ["left", "piano"], "violin"), (A, 10, ["right", "piano"], "drum"), (A, 10, ["left", "violin"], None),
    (A, 10, ["middle", "piano"], None), (B, 10, ["left", "violin"], None), (C, 10, ["left", "accordion"], "trumpet"),
    (A, 11, [], "indoor"), (B, 11, [], "outdoor"),
    (A, 12, ["leftest"], "violin"), (A, 12, ["rightest"], "drum"), (D, 12, ["leftest"], None),
    (A, 13, [], None), (B, 13, [], "violin"), (D, 13, [], "flute"),
    # Audio-Visual / Existential
    (A, 14, ["violin"], "yes"), (A, 14, ["piano"], "no"), (A, 14, ["drum"], "no"), (A, 14, ["flute"], None),
    (B, 14, ["violin"], None),
    (A, 15, [], "no"), (B, 15, [], "yes"), (A, 16, [], "no"), (B, 16, [], "yes"),
    # Audio-Visual / Counting
    (A, 17, ["violin"], "one"), (A, 17, ["drum"], "zero"), (A, 17, ["flute"], "zero"), (A, 17, ["banjo"], None),
    (B, 17, ["violin"], "two"),
    (A, 18, [], "two"), (B, 18, [], "one"), (A, 19, [], "two"), (B, 19, [], "two"), (A, 20, [], "one"), (B, 20, [], "zero"),
    # Audio-Visual / Location
    (A, 21, ["violin"], None), (C, 21, ["accordion"], "trumpet"), (C, 21, ["banjo"], "trumpet"), (C, 21, ["trumpet"], None),
    (A, 22, ["loudest"], "left"), (A, 22, ["lowest"], "middle"), (B, 22, ["loudest"], "right"),
    (B, 22, ["lowest"], "left"), (D, 22, ["loudest"], "middle"), (D, 22, ["lowest"], None),
    (A, 23, ["first", "left"], "yes"), (A, 23, ["first", "middle"], "no"), (A, 23, ["first", "right"], "no"),
    (A, 23, ["last", "middle"], "no"), (B, 23, ["first", "right"], "yes"), (D, 23, ["first", "left"], None),
    (A, 24, ["right", "first"], "piano"), (A, 24, ["left", "first"], None), (A, 24, ["left", "last"], None),
    (B, 24, ["left", "first"], "violin"),
    # Audio-Visual / Comparative
    (A, 25, ["left", "middle"], "yes"), (A, 25, ["middle", "left"], "no"), (A, 25, ["left", "right"], None),
    (A, 25, ["left", "left"], None),
    (A, 26, ["left", "middle"], "yes"), (A, 26, ["middle", "left"], "no"), (B, 26, ["right", "left"], "yes"),
    (A, 27, ["violin", "left", "piano", "middle"], "yes"), (A, 27, ["piano", "left", "violin", "middle"], None),
    (B, 27, ["violin", "left", "violin", "right"], "no"),
    (A, 28, ["piano", "middle", "violin", "left"], "no"), (B, 28, ["violin", "right", "violin", "left"], "yes"),
    # Audio-Visual / Temporal
    (A, 29, ["first"], "violin"), (A, 29, ["second"], "piano"), (A, 29, ["third"], "flute"), (A, 29, ["fourth"], None),
    (C, 29, ["first"], None), (B, 29, ["second"], "violin"),
    (A, 30, ["first"], "left"), (A, 30, ["last"], None), (B, 30, ["last"], "left"), (D, 30, ["first"], "middle"),
    (D, 30, ["last"], None),
    (A, 31, ["after", "violin"], "piano"), (A, 31, ["before", "piano"], "violin"), (A, 31, ["after", "piano"], "flute"),
    (A, 31, ["before", "violin"], None), (A, 31, ["after", "flute"], None), (C, 31, ["before", "banjo"], None),
    (B, 32, ["violin", "first"], "right"), (B, 32, ["violin", "last"], "left"), (C, 32, ["trumpet", "first"], "simultaneously"),
    (C, 32, ["trumpet", "last"], "simultaneously"), (A, 32, ["violin", "first"], None),
]


@pytest.mark.parametrize("s,tid,values,expected", CASES,
                         ids=[f"t{t}-{'-'.join(v) or 'none'}-{i}" for i, (_, t, v, _) in enumerate(CASES)])
def test_hand_built_answers(s: Scene, tid: int, values: list[str], expected: str | None) -> None:
    assert answer(s, tid, values) == expected


def test_every_template_has_a_known_answer() -> None:
    """The hand-built cases cover all 33 templates with at least one real (non-None) answer."""
    covered = {tid for _, tid, _, expected in CASES if expected is not None}
    assert covered == {t.id for t in TEMPLATES}


def test_near_ties_are_not_asked() -> None:
    """Entries 0.5 s apart are too close to call 'first'; loudness 0.1 apart is too close to compare."""
    s = scene(player("violin", "left", [(0.0, 10.0)], loudness=0.6),
              player("flute", "right", [(0.5, 10.0)], loudness=0.7))
    assert answer(s, 30, ["first"]) is None
    assert answer(s, 29, ["first"]) is None
    assert answer(s, 25, ["left", "right"]) is None
    assert answer(s, 3, ["violin", "flute"]) is None


def test_candidates_agree_with_answer_and_vocabulary() -> None:
    for s in (A, B, C, D, *(sample_scene(11, i) for i in range(20))):
        for tid, qas in candidates(s).items():
            for qa in qas:
                assert qa.template.id == tid
                assert qa.answer in ANSWERS
                assert answer(s, tid, qa.values) == qa.answer
                assert qa.question.endswith("?") and "<" not in qa.question


def test_bad_questions_raise_typed_errors() -> None:
    with pytest.raises(QAError, match="slot"):
        answer(A, 0, [])
    with pytest.raises(QAError, match="cello"):
        answer(A, 0, ["cello"])  # a MUSIC-AVQA instrument, but not one of this world's ten
    with pytest.raises(QAError, match="unknown template"):
        answer(A, "Is it raining?", [])
    with pytest.raises(QAError, match="unknown template"):
        answer(A, 33, [])


def test_scene_round_trip_and_contract_fields() -> None:
    s = sample_scene(5, 3)
    d = json.loads(json.dumps(s.to_dict()))
    for key in ("video_id", "split", "duration", "fps", "size", "background", "players", "offscreen", "voiceover"):
        assert key in d
    for p in d["players"]:
        assert {"instrument", "position", "bbox", "loudness", "rate", "intervals"} <= set(p)
        x0, y0, x1, y1 = p["bbox"]
        assert 0 <= x0 < x1 <= 224 and 0 <= y0 < y1 <= 224
    assert Scene.from_dict(d) == s
    assert s.video_id == "synth_000003" and d["duration"] == 10.0 and d["size"] == 224


def test_bad_scenes_raise_scene_error() -> None:
    with pytest.raises(SceneError, match="positions"):
        scene(player("violin", "right"), player("flute", "left"))
    with pytest.raises(SceneError, match="intervals"):
        scene(player("violin", "left", [(5.0, 3.0)]))
    with pytest.raises(SceneError, match="cello"):
        scene(player("cello", "left"))
    with pytest.raises(SceneError, match="malformed"):
        Scene.from_dict({"video_id": "x", "players": [{"instrument": "violin"}]})
