"""`mcd calibrate-ood --checkpoint DIR --data FOLDER`: calibrate a checkpoint's out-of-domain detector in place.

FOLDER holds in-domain clips the checkpoint was *not* trained on (any *.mp4 below it, e.g. a fresh `mcd synth`
test split of the training world). Each clip is decoded and encoded exactly as the demo does (`Pipeline`), then
`mcd.serving.ood.calibrate` fits the per-modality Gaussians (and, with --contrast-sound, a sound contrast view)
and thresholds: its scalars replace the `ood` section of
the checkpoint's config.json, its arrays every `ood.*` tensor of model.safetensors (`update_config_section`: written
to a temporary copy of the folder, checked by loading it, then renamed into place). The model's weights, the
encoders' and every other config key keep their values; `model_sha256` follows the weights file.
"""
from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import numpy as np

from mcd.serving import ood

MIN_CLIPS = 50
MIN_CONTRAST_CLIPS = 10


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--checkpoint", required=True, type=Path, help="checkpoint folder, rewritten in place")
    p.add_argument("--data", required=True, type=Path, help="folder of held-out in-domain clips (*.mp4, recursive)")
    p.add_argument("--quantile", type=float, default=ood.DEFAULT_QUANTILE,
                   help="quantile of the held-back clips' scores the threshold is set at (default %(default)s)")
    p.add_argument("--margin", type=float, default=ood.DEFAULT_MARGIN,
                   help="the threshold is the quantile times this (default %(default)s)")
    p.add_argument("--contrast-sound", type=Path,
                   help="folder of clips whose sound is foreign in a way the feature distance misses (e.g. music of "
                        "instruments the world lacks, from the training soundfont): adds a sound contrast view")
    p.add_argument("--cache", type=Path, help="keep the clips' features here (shared with bench/ood.py's --cache)")
    p.add_argument("--dry-run", action="store_true", help="print the thresholds, write nothing")


def clip_inputs(pipe, path: Path, cache: Path | None = None) -> dict:
    """What `ood.calibrate` takes for one clip: its features and its signal measures (plus its timestamps and
    path). With `cache`, the features are kept there by the clip's content hash and the encoders' ids, so the
    bench and a re-calibration with other views do not encode the clip again."""
    import torch

    from mcd import media
    from mcd.serving import signal_checks
    f = None
    if cache is not None:
        import hashlib
        enc = hashlib.sha256(f"{pipe.encoders.visual.id}|{pipe.encoders.audio.id}|{pipe.T}".encode()).hexdigest()
        f = cache / enc[:12] / f"{media.content_hash(path)}.pt"
    if f is not None and f.is_file():
        rec = torch.load(f, weights_only=False)
    else:
        feats = pipe.clip_features(path)
        c = feats.clip
        stats = signal_checks.measure(c.frames, c.audio_segments, c.has_audio)
        rec = {"visual": feats.visual.half(), "audio": feats.audio.half(), "stats": stats.to_dict(),
               "timestamps": [float(t) for t in c.timestamps]}
        pipe.clear_cache()
        if f is not None:
            f.parent.mkdir(parents=True, exist_ok=True)
            torch.save(rec, f)
    st = rec["stats"]
    stats = signal_checks.SignalStats(np.asarray(st["frame_std"]), np.asarray(st["rms"]),
                                      np.asarray(st["flatness"]), bool(st["has_audio"]))
    return {"visual": rec["visual"].float(), "audio": rec["audio"].float(), "stats": stats,
            "timestamps": rec["timestamps"], "path": str(path)}


def calibrate_checkpoint(checkpoint: Path, data: Path, quantile: float = ood.DEFAULT_QUANTILE,
                         margin: float = ood.DEFAULT_MARGIN, write: bool = True, min_clips: int = MIN_CLIPS,
                         views: dict | None = None, cache: Path | None = None,
                         contrast_sound: Path | None = None) -> dict:
    """The new `ood` section (written into the checkpoint with its tensors unless `write` is false)."""
    from mcd.model.checkpoint import update_config_section
    from mcd.serving.pipeline import Pipeline
    if not data.is_dir():
        raise FileNotFoundError(f"--data {data} is not a folder")
    clips = sorted(data.rglob("*.mp4"))
    if len(clips) < min_clips:
        raise ValueError(f"{data} holds {len(clips)} clips (*.mp4); calibration needs at least {min_clips}")
    foreign = []
    if contrast_sound is not None:
        if not contrast_sound.is_dir():
            raise FileNotFoundError(f"--contrast-sound {contrast_sound} is not a folder")
        foreign = sorted(contrast_sound.rglob("*.mp4"))
        if len(foreign) < MIN_CONTRAST_CLIPS:
            raise ValueError(f"{contrast_sound} holds {len(foreign)} clips (*.mp4); a contrast set needs at least "
                             f"{MIN_CONTRAST_CLIPS}")
    pipe = Pipeline(checkpoint, device="cpu")
    parts = {"picture": ood.part_dims(pipe.encoders.visual), "sound": ood.part_dims(pipe.encoders.audio)}
    contrast = {"sound": [clip_inputs(pipe, p, cache) for p in foreign]} if foreign else None
    section, tensors = ood.calibrate((clip_inputs(pipe, p, cache) for p in clips), views, quantile, margin, parts,
                                     contrast)
    section["data"] = data.name
    if foreign:
        section["contrast_sound"] = contrast_sound.name
    if write:
        update_config_section(checkpoint, "ood", section, tensors)
    return section


def summary(section: dict) -> dict:
    """The thresholds and counts of a section."""
    return {"n_clips": section["n_clips"], "checks": section["checks"],
            **{m: section[m]["views"] for m in ood.MODALITIES}}


def run(args: argparse.Namespace) -> int:
    from mcd.cli import CLIError
    from mcd.model.checkpoint import CheckpointError
    try:
        section = calibrate_checkpoint(args.checkpoint, args.data, args.quantile, args.margin,
                                       write=not args.dry_run, cache=args.cache, contrast_sound=args.contrast_sound)
    except (CheckpointError, FileNotFoundError, ValueError) as exc:
        raise CLIError(str(exc)) from exc
    print(json.dumps(summary(section), indent=1))
    size = len(json.dumps(section))
    print(f"{'would write' if args.dry_run else 'wrote'} ood section ({size / 1024:.1f} KB) "
          f"{'for' if args.dry_run else 'into'} {args.checkpoint / 'config.json'}", file=sys.stderr)
    return 0
