"""Regenerate the demo's example clips: `python -m mcd.synth.assets [--out assets]`.

Five clips chosen to show the world's range (a solo, a duet with a voiceover, a trio with an off-screen
instrument, a trio with two identical instruments, a late entry), each with 4-6 questions of different types,
written to OUT/*.mp4 and OUT/examples.json:
    [{"video": "assets/<name>.mp4", "title": ..., "questions": [...], "answers": [...], "scene": {...}}, ...]
Deterministic: the same command always writes the same files.
"""
from __future__ import annotations

import argparse
import json
from pathlib import Path
from typing import Callable

import numpy as np

from mcd.task.questions import TEMPLATES
from mcd.synth.generate import render_clip
from mcd.synth.qa import QA, candidates
from mcd.synth.scene import Scene, sample_scene

SEED = 2024
MAX_QUESTIONS = 6

def _kinds(s: Scene) -> int:
    return len({p.instrument for p in s.players})


def _solo(s: Scene) -> bool:
    return (len(s.players) == 1 and s.background == "outdoor" and s.offscreen is None and s.voiceover is None
            and s.players[0].always())


def _duet_voiceover(s: Scene) -> bool:
    return (len(s.players) == 2 and s.background == "indoor" and s.voiceover is not None and s.offscreen is None
            and _kinds(s) == 2 and all(p.sounds for p in s.players))


def _trio_offscreen(s: Scene) -> bool:
    return (len(s.players) == 3 and s.background == "outdoor" and s.offscreen is not None and s.voiceover is None
            and _kinds(s) == 3)


def _trio_twins(s: Scene) -> bool:
    return (len(s.players) == 3 and s.background == "indoor" and s.offscreen is None and _kinds(s) == 2
            and all(p.sounds for p in s.players))


def _duet_late_entry(s: Scene) -> bool:
    return (len(s.players) == 2 and s.background == "outdoor" and s.offscreen is None and s.voiceover is None
            and _kinds(s) == 2 and all(p.sounds for p in s.players)
            and min(p.onset for p in s.players) == 0.0 and max(p.onset for p in s.players) >= 2.5)


#: (file name, title shown by the demo, what the clip must show)
EXAMPLES: tuple[tuple[str, str, Callable[[Scene], bool]], ...] = (
    ("solo_outdoor", "Solo, outdoors", _solo),
    ("duet_voiceover_indoor", "Duet with a voiceover, indoors", _duet_voiceover),
    ("trio_offscreen_outdoor", "Trio and an off-screen instrument, outdoors", _trio_offscreen),
    ("trio_twins_indoor", "Trio with two of a kind, indoors", _trio_twins),
    ("duet_late_entry_outdoor", "Duet with a late entry, outdoors", _duet_late_entry),
)


def pick_questions(scene: Scene, rng: np.random.Generator) -> list[QA]:
    """Up to MAX_QUESTIONS questions about `scene`, at most one per type, audio-visual types first."""
    cands = candidates(scene)
    ties = rng.random(len(TEMPLATES))
    order = sorted(cands, key=lambda t: (TEMPLATES[t].modality != "Audio-Visual", ties[t]))
    chosen: list[QA] = []
    types: set[str] = set()
    for tid in order:
        if len(chosen) < MAX_QUESTIONS:
            qa = cands[tid][int(rng.integers(len(cands[tid])))]
            if qa.template.type not in types:
                chosen.append(qa)
                types.add(qa.template.type)
    return chosen


def build(out: Path, prefix: str = "assets") -> list[dict]:
    """Render the example clips into `out` and return the examples.json entries."""
    out.mkdir(parents=True, exist_ok=True)
    entries = []
    index = 0
    for name, title, wanted in EXAMPLES:
        while True:
            scene = sample_scene(SEED, index, split="example")
            index += 1
            if wanted(scene):
                break
        scene.video_id = name
        questions = pick_questions(scene, np.random.default_rng([SEED, index]))
        render_clip(scene, out / f"{name}.mp4")
        entries.append({"video": f"{prefix}/{name}.mp4", "title": title,
                        "questions": [q.question for q in questions], "answers": [q.answer for q in questions],
                        "scene": scene.to_dict()})
    (out / "examples.json").write_text(json.dumps(entries, indent=2) + "\n", encoding="utf-8")
    return entries


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--out", type=Path, default=Path("assets"), help="folder for the clips and examples.json")
    args = ap.parse_args(argv)
    entries = build(args.out, prefix=args.out.as_posix().rstrip("/"))
    for e in entries:
        size = (args.out / Path(e["video"]).name).stat().st_size
        pairs = "; ".join(f"{q} -> {a}" for q, a in zip(e["questions"], e["answers"]))
        print(f"{e['video']} ({size / 1024:.0f} KiB): {pairs}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
