"""How fast does `mcd synth` generate clips, and how long would 6,000 take on 2 cores? How long does the note
bank take to build?

    PYTHONPATH=. .venv/bin/python bench/synth_speed.py [--videos 40] [--workers 2] [--style default|held-out]
                                                       [--sound-bank B] [--bank-build]

`--bank-build` first builds both soundfont note banks from scratch in a temporary cache folder and times it
(what a fresh machine pays once).

Prints a per-stage breakdown of one process (scene + questions, frames, sound, encoding), then a real run
of the generator with `--workers` processes: wall-clock clips/s and CPU seconds per clip. The projection for
6,000 clips uses CPU seconds (what the clips cost) divided by the cores, because on a shared machine the
wall clock also measures everybody else's jobs; both numbers are printed, with the load average.
"""
from __future__ import annotations

import argparse
import os
import resource
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from mcd.synth.generate import clip_comment, plan, prepare_assets, render_all  # noqa: E402
from mcd.synth.mixer import mix_stereo  # noqa: E402
from mcd.synth.render import frames  # noqa: E402
from mcd.synth.scene import SAMPLE_RATE  # noqa: E402
from mcd.synth.writer import write_clip  # noqa: E402

TARGET_CLIPS, TARGET_S, CORES = 6000, 30 * 60, 2


def _cpu(who: int) -> float:
    r = resource.getrusage(who)
    return r.ru_utime + r.ru_stime


def bank_build_time() -> None:
    """Build both note banks into an empty cache folder (the glyph assets stay where they are)."""
    from mcd.synth import soundfont
    from mcd.synth.glyphs import fluent_dir

    os.environ.setdefault("MCD_FLUENT_EMOJI_DIR", str(fluent_dir()))
    old = os.environ.get("MCD_CACHE_DIR")
    with tempfile.TemporaryDirectory() as tmp:
        os.environ["MCD_CACHE_DIR"] = tmp
        for bank in soundfont.SOUNDFONTS:
            t0 = time.perf_counter()
            soundfont.ensure_bank(bank, progress=False)
            size = sum(f.stat().st_size for f in soundfont.bank_dir(bank).glob("*.npy"))
            print(f"note bank {bank}: built from scratch in {time.perf_counter() - t0:.1f} s wall "
                  f"({size / 2**20:.0f} MiB, {len(soundfont.VOICES)} instruments x notes x {len(soundfont.VELOCITIES)} "
                  f"velocities; font {soundfont.font_path(bank)})")
    if old is None:
        os.environ.pop("MCD_CACHE_DIR")
    else:
        os.environ["MCD_CACHE_DIR"] = old


def stage_breakdown(n: int, seed: int, out: Path, style: str, bank: str | None) -> None:
    t0 = time.process_time()
    p = plan(n, seed, {"test": 1.0}, 8, style=style, sound_bank=bank)
    t_plan = (time.process_time() - t0) / n
    prepare_assets(p.scenes, progress=False)
    t_frames = t_sound = t_encode = 0.0
    for scene in p.scenes:
        t0 = time.process_time()
        imgs = list(frames(scene))
        t1 = time.process_time()
        audio = mix_stereo(scene)
        t2 = time.process_time()
        write_clip(out / "stage.mp4", imgs, audio, scene.fps, SAMPLE_RATE, comment=clip_comment(scene))
        t3 = time.process_time()
        t_frames += t1 - t0
        t_sound += t2 - t1
        t_encode += t3 - t2
    print(f"per-clip CPU seconds, one process, {n} clips: plan {t_plan:.3f}, frames {t_frames / n:.3f}, "
          f"sound {t_sound / n:.3f}, encode {t_encode / n:.3f}, "
          f"total {t_plan + (t_frames + t_sound + t_encode) / n:.3f}")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--videos", type=int, default=40)
    ap.add_argument("--workers", type=int, default=CORES)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--stage-clips", type=int, default=8, help="clips for the per-stage breakdown (0: skip)")
    ap.add_argument("--style", default="default", choices=("default", "held-out"))
    ap.add_argument("--sound-bank", default=None, choices=("procedural", "fluidr3", "musescore"))
    ap.add_argument("--bank-build", action="store_true", help="time building both note banks from scratch first")
    args = ap.parse_args()
    if args.bank_build:
        bank_build_time()
    print(f"style {args.style}, sound bank {args.sound_bank or 'the style default'}")
    with tempfile.TemporaryDirectory() as tmp:
        out = Path(tmp)
        if args.stage_clips:
            stage_breakdown(args.stage_clips, args.seed + 1, out, args.style, args.sound_bank)
        load0 = os.getloadavg()[0]
        cpu0, cpu_children0 = _cpu(resource.RUSAGE_SELF), _cpu(resource.RUSAGE_CHILDREN)
        t0 = time.perf_counter()
        p = plan(args.videos, args.seed, {"train": 0.8, "val": 0.1, "test": 0.1}, 8, style=args.style,
                 sound_bank=args.sound_bank)
        plan_s = time.perf_counter() - t0
        render_s = render_all(p.scenes, out / "videos", args.workers, progress=False)
        wall = time.perf_counter() - t0
        cpu = (_cpu(resource.RUSAGE_SELF) - cpu0) + (_cpu(resource.RUSAGE_CHILDREN) - cpu_children0)
        load1 = os.getloadavg()[0]
        size = sum(f.stat().st_size for f in (out / "videos").glob("*.mp4")) / args.videos
    per_clip_cpu = cpu / args.videos
    projected_cpu = TARGET_CLIPS * per_clip_cpu / CORES
    projected_wall = TARGET_CLIPS * wall / args.videos
    print(f"generated {args.videos} clips with {args.workers} workers in {wall:.1f} s wall (planning {plan_s:.1f} s, "
          f"rendering {render_s:.1f} s): {args.videos / wall:.2f} clips/s; mean clip size {size / 1024:.0f} KiB")
    print(f"CPU: {per_clip_cpu:.3f} s per clip (all processes); load average {load0:.1f} -> {load1:.1f} on "
          f"{os.cpu_count()} cores")
    print(f"projected time for {TARGET_CLIPS} clips on {CORES} cores: {projected_cpu / 60:.1f} min from CPU time "
          f"(target <= {TARGET_S / 60:.0f} min: {'ok' if projected_cpu <= TARGET_S else 'TOO SLOW'}); "
          f"{projected_wall / 60:.1f} min at this run's wall-clock rate under the current load")


if __name__ == "__main__":
    main()
