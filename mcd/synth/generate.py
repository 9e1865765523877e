"""Generate a benchmark: plan (scenes, splits, balanced questions) in one process, render clips in many.

Planning is cheap and sequential, so the questions and their balance never depend on how many workers render.
Rendering a clip is a pure function of its scene graph (the scene carries its own seed), so any worker can
render any clip and the files are identical whatever `workers` is.
"""
from __future__ import annotations

import multiprocessing as mp
import time
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from mcd.synth.qa import QA, select_questions
from mcd.synth.scene import SAMPLE_RATE, Scene, sample_scene
from mcd.synth.world import STYLES

SPLIT_NAMES = ("train", "val", "test")
DEFAULT_SPLITS = {"train": 0.8, "val": 0.1, "test": 0.1}


class SynthError(ValueError):
    """Bad generation settings (split spec, counts, output folder)."""


def parse_splits(text: str) -> dict[str, float]:
    """'train=0.8,val=0.1,test=0.1' -> fractions that sum to 1 (names among train/val/test)."""
    out: dict[str, float] = {}
    for part in text.split(","):
        name, sep, value = part.strip().partition("=")
        if not sep or name not in SPLIT_NAMES:
            raise SynthError(f"bad split {part.strip()!r} in {text!r}: expected NAME=FRACTION with NAME in "
                             f"{', '.join(SPLIT_NAMES)}")
        if name in out:
            raise SynthError(f"split {name!r} given twice in {text!r}")
        try:
            frac = float(value)
        except ValueError:
            raise SynthError(f"split {name!r}: {value!r} is not a number") from None
        if not 0 < frac <= 1:
            raise SynthError(f"split {name!r}: fraction {frac} must be in (0, 1]")
        out[name] = frac
    if abs(sum(out.values()) - 1.0) > 1e-6:
        raise SynthError(f"split fractions {text!r} sum to {sum(out.values()):g}, not 1")
    return out


def assign_splits(n: int, splits: dict[str, float], seed: int) -> list[str]:
    """Split name per video index: a seeded shuffle cut into the given fractions (splits are by video)."""
    names = [s for s in SPLIT_NAMES if s in splits]
    counts = [int(round(n * splits[s])) for s in names]
    counts[-1] = n - sum(counts[:-1])
    if min(counts) < 0:
        raise SynthError(f"cannot split {n} videos as {splits}")
    labels = np.repeat(np.arange(len(names)), counts)
    order = np.random.default_rng([int(seed), 5]).permutation(n)
    out = [""] * n
    for idx, lab in zip(order, labels):
        out[int(idx)] = names[int(lab)]
    return out


@dataclass
class Plan:
    """Everything but the pixels and samples: scenes (video order) and their questions."""

    scenes: list[Scene]
    questions: dict[str, list[QA]] = field(default_factory=dict)   # video_id -> questions

    def records(self, split: str, first_id: int) -> list[dict]:
        from mcd.synth.writer import annotation_record

        out = []
        for scene in self.scenes:
            if scene.split == split:
                for qa in self.questions[scene.video_id]:
                    out.append(annotation_record(scene.video_id, first_id + len(out), qa))
        return out


def plan(videos: int, seed: int, splits: dict[str, float], questions_per_video: int, style: str = "default",
         sound_bank: str | None = None) -> Plan:
    """Scenes, splits and balanced questions, without rendering anything (and without reading any asset)."""
    if videos < 1:
        raise SynthError(f"--videos must be at least 1, got {videos}")
    if style not in STYLES:
        raise SynthError(f"--style {style!r}: expected one of {', '.join(STYLES)}")
    spec = STYLES[style]
    if sound_bank is not None and sound_bank not in spec.sound_banks:
        raise SynthError(f"--sound-bank {sound_bank!r} is not available in the {style!r} style "
                         f"(it plays {' or '.join(spec.sound_banks)}; the held-out bank is never used for training)")
    labels = assign_splits(videos, splits, seed)
    scenes = [sample_scene(seed, i, split=labels[i], style=style, sound_bank=sound_bank) for i in range(videos)]
    result = Plan(scenes)
    for split in SPLIT_NAMES:
        members = [s for s in scenes if s.split == split]
        chosen = select_questions(members, questions_per_video, seed * 31 + SPLIT_NAMES.index(split))
        for scene, qas in zip(members, chosen):
            result.questions[scene.video_id] = qas
    return result


FLUIDSYNTH_NOTE = "rendered with FluidSynth (LGPL-2.1+)"


def clip_comment(scene: Scene) -> str:
    """The mp4 comment tag: the clip's style and the attributions of the assets it was made from."""
    from mcd.synth.glyphs import ATTRIBUTION
    from mcd.synth.soundfont import SOUNDFONTS

    st = scene.style
    bank = st["sound_bank"]
    sound = (f"{SOUNDFONTS[bank].attribution}, {FLUIDSYNTH_NOTE}" if bank in SOUNDFONTS
             else "procedural timbres (mcd.synth.sound)")
    return (f"MCD-AVQA synthetic clip {scene.video_id}; style {st['name']} (glyphs {st['glyphs']}, "
            f"sound bank {bank}, backdrop {st['backdrop']}); glyphs: {ATTRIBUTION[st['glyphs']]}; sound: {sound}; "
            f"backgrounds procedural")


def render_clip(scene: Scene, path: Path) -> None:
    """Render and write one clip (runs in worker processes): frames, the stereo soundtrack, attributions."""
    from mcd.synth.mixer import mix_stereo
    from mcd.synth.render import frames
    from mcd.synth.writer import write_clip

    write_clip(path, frames(scene), mix_stereo(scene), scene.fps, SAMPLE_RATE, comment=clip_comment(scene))


def prepare_assets(scenes: list[Scene], progress: bool = True) -> float:
    """Check that every glyph set the scenes use is installed and build the note banks they play (once, in
    this process, before any worker starts); raises AssetError naming the set-up command. Returns the seconds
    spent building note banks."""
    from mcd.synth.glyphs import check_assets
    from mcd.synth.soundfont import ensure_bank

    for glyph_set in sorted({s.style["glyphs"] for s in scenes}):
        check_assets(glyph_set)
    return sum(ensure_bank(bank, progress) for bank in sorted({s.sound_bank for s in scenes}))


def _render_task(task: tuple[dict, str]) -> str:
    scene_dict, path = task
    render_clip(Scene.from_dict(scene_dict), Path(path))
    return path


def render_all(scenes: list[Scene], videos_dir: Path, workers: int, progress: bool = True) -> float:
    """Render every clip into videos_dir with `workers` processes; returns the seconds it took."""
    from tqdm import tqdm

    videos_dir.mkdir(parents=True, exist_ok=True)
    prepare_assets(scenes, progress)
    tasks = [(s.to_dict(), str(videos_dir / f"{s.video_id}.mp4")) for s in scenes]
    start = time.perf_counter()
    bar = tqdm(total=len(tasks), unit="clip", desc="rendering", disable=not progress)
    if workers <= 1:
        for task in tasks:
            _render_task(task)
            bar.update(1)
    else:
        # spawn, not fork: the caller may hold threads (torch, a web server) that fork would copy half-alive
        with mp.get_context("spawn").Pool(workers) as pool:
            for _ in pool.imap_unordered(_render_task, tasks, chunksize=4):
                bar.update(1)
    bar.close()
    return time.perf_counter() - start
