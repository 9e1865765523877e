"""`mcd reproduce --config configs/synth-default.json [--publish checkpoints/mcd-synth]`: every stage of a recipe.

synth (train/val/test + a fresh test set of another seed) -> pretrain-encoders -> extract -> train -> calibrate
(with grounded_expert) -> out-of-domain calibration on fresh in-domain clips of their own seed -> evaluate the best checkpoint on the fresh test clips decoded from their mp4 files ->
publish (checkpoint + metrics.json + model card). Each stage is the same CLI command a person would type; finished
stages are skipped on a re-run, so an interrupted reproduction continues where it stopped.
"""
from __future__ import annotations

import argparse
import json
import shutil
import time
from pathlib import Path

from mcd.model.config import grounding_section
from mcd.serving.calibrate_ood import MIN_CLIPS, MIN_CONTRAST_CLIPS


EXTRACT_T = 10   # segments per clip: the `mcd extract` default, which the synth recipes train with
#: the out-of-domain calibration clips: fresh in-domain clips of their own seed, four times as many as the fresh
#: test set within these bounds (docs/ood.md; `mcd calibrate-ood` needs MIN_CLIPS)
OOD_CALIBRATION_SEED, OOD_CALIBRATION_CLIPS = 424242, 1200
#: its sound contrast set (`mcd synth-contrast`: music the world never plays, from the training soundfont), 2/5 as
#: many clips as the calibration set
OOD_CONTRAST_SEED = 99


def ood_clip_counts(test_videos: int) -> tuple[int, int]:
    """(in-domain calibration clips, sound contrast clips) for a recipe with this many fresh test clips."""
    clips = max(MIN_CLIPS, min(OOD_CALIBRATION_CLIPS, 4 * test_videos))
    return clips, max(MIN_CONTRAST_CLIPS, clips * 2 // 5)


def _stage(name: str, argv: list[str], timing_path: Path, done: bool = False) -> None:
    """Run one stage; its time is saved at once, so an interrupted reproduction keeps the times it measured."""
    from mcd.cli import CLIError, main

    if done:
        print(f"== {name}: already done, skipped", flush=True)
        return
    print(f"== {name}: mcd {' '.join(argv)}", flush=True)
    start = time.perf_counter()
    rc = main(argv)
    if rc != 0:
        raise CLIError(f"stage {name} failed (exit {rc})")
    seconds = json.loads(timing_path.read_text()) if timing_path.exists() else {}
    seconds[name] = round(time.perf_counter() - start, 1)
    timing_path.parent.mkdir(parents=True, exist_ok=True)
    timing_path.write_text(json.dumps(seconds, indent=2))


def _features_ready(root: Path, encoders: str, features: str) -> bool:
    """True when `features` was written by these encoders and holds every clip of the benchmark: extraction would
    encode nothing, so its stage keeps the time measured when it did the work."""
    from mcd.data.extract import benchmark_videos, encoder_meta, load_encoders
    from mcd.data.features import FeatureCache

    meta_path = Path(features) / FeatureCache.META
    if not meta_path.exists() or not encoders_ready(Path(encoders)):
        return False
    try:
        videos = benchmark_videos(root, None, None)
        same = json.loads(meta_path.read_text()) == encoder_meta(load_encoders(encoders), EXTRACT_T)
    except (OSError, ValueError):
        return False
    cache = FeatureCache(features)
    return same and all(cache.has(v) for v in videos)


def _training_finished(out: Path, epochs: int, patience: int | None) -> bool:
    """True when `out/last.pt` records a run that ran all its epochs or stopped early, and `out/best` exists."""
    import torch

    last = out / "last.pt"
    if not (last.exists() and (out / "best" / "config.json").exists()):
        return False
    try:
        state = json.loads(torch.load(last, map_location="cpu", weights_only=True)["state"])
    except Exception:  # an unreadable last.pt: let `mcd train --resume` say what is wrong
        return False
    return state["epoch"] >= epochs or (patience is not None and state["stale"] >= patience)


def _calibrated(best: Path) -> bool:
    """True when the checkpoint already carries per-type expert weights (`mcd calibrate` ran on this best)."""
    try:
        return bool(grounding_section(json.loads((best / "config.json").read_text())["model"]).get("expert_type_weights"))
    except (OSError, ValueError, KeyError):
        return False


def _ood_calibrated(best: Path) -> bool:
    """True when the checkpoint carries a calibrated out-of-domain detector (`mcd calibrate-ood` ran on it)."""
    try:
        return (json.loads((best / "config.json").read_text()).get("ood") or {}).get("format") == 2
    except (OSError, ValueError):
        return False


def carry_ood(source: Path, dest: Path) -> bool:
    """Give a fine-tune (`dest`) the out-of-domain calibration of the checkpoint it started from (`source`) when
    both hold the same encoders: the detector reads only the encoders' features, so calibrating again on the same
    clips would write the same section. Copies the `ood` config section and every `ood.*` tensor; returns False
    and writes nothing when the source has no calibration or the encoders (specs or weights) differ."""
    import torch
    from safetensors.torch import load_file

    from mcd.model.checkpoint import CONFIG_FILE, MODEL_PREFIX, WEIGHTS_FILE, update_config_section

    if not _ood_calibrated(source):
        return False
    src_config = json.loads((source / CONFIG_FILE).read_text())
    if src_config.get("encoders") != json.loads((dest / CONFIG_FILE).read_text()).get("encoders"):
        return False
    src, dst = (load_file(str(d / WEIGHTS_FILE), device="cpu") for d in (source, dest))

    def encoder_tensors(tensors: dict) -> dict:
        return {k: v for k, v in tensors.items() if not k.startswith((MODEL_PREFIX, "ood."))}

    a, b = encoder_tensors(src), encoder_tensors(dst)
    if a.keys() != b.keys() or not all(torch.equal(a[k], b[k]) for k in a):
        return False
    update_config_section(dest, "ood", src_config["ood"], {k: v for k, v in src.items() if k.startswith("ood.")})
    return True


def encoders_ready(encoders: Path) -> bool:
    """True when `encoders` holds encoders already: a `mcd pretrain-encoders` folder, or a checkpoint (the frozen
    encoders of the model a fine-tune starts from)."""
    return (encoders / "encoders.json").exists() or (encoders / "config.json").exists()


def _newer(path: Path, than: Path) -> bool:
    return path.exists() and than.exists() and path.stat().st_mtime >= than.stat().st_mtime


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--config", required=True, help="recipe JSON")
    p.add_argument("--publish", type=Path, help="copy the result here with metrics.json and a model card")
    p.add_argument("--workers", type=int, default=2, help="processes for synth and decoding")
    p.add_argument("--device", default=None, metavar="auto|cpu|cuda[:N]",
                   help="passed to extract, train and evaluate (default: auto for extract and evaluate, the "
                        "recipe's train.device for train)")


def run(args: argparse.Namespace) -> int:
    from mcd.model.checkpoint import load_checkpoint
    from mcd.cli import CLIError
    from mcd.device import resolve_device
    from mcd.evaluation.evaluate import format_table
    from mcd.training.model_card import render
    from mcd.training.recipe import RecipeError, load_recipe

    try:
        recipe = load_recipe(args.config)
    except RecipeError as exc:
        raise CLIError(str(exc)) from exc
    resolve_device(args.device or recipe.train.device)   # a device this machine lacks fails before any stage
    init = recipe.train.init
    if init is not None and not (Path(init) / "config.json").exists():
        raise CLIError(f"train.init: {init} is not a checkpoint yet; this recipe fine-tunes it, so reproduce the "
                       "recipe that makes it first")
    dev = [f"--device={args.device}"] if args.device else []
    s, root = recipe.synth, Path(recipe.data.root)
    fresh = Path(f"{recipe.data.root}-fresh-test")
    out = Path(recipe.out)
    seconds = out / "stage-seconds.json"
    w = str(args.workers)
    _stage("synth", ["synth", "--out", str(root), "--videos", str(s.videos), "--seed", str(s.seed), "--splits",
                     s.splits, "--questions-per-video", str(s.questions_per_video), "--workers", w, "--quiet"],
           seconds, done=(root / "scenes.jsonl").exists())
    _stage("synth-fresh-test", ["synth", "--out", str(fresh), "--videos", str(s.test_videos), "--seed",
                                str(s.test_seed), "--splits", "test=1", "--questions-per-video",
                                str(s.questions_per_video), "--workers", w, "--quiet"],
           seconds, done=(fresh / "scenes.jsonl").exists())
    pre = [f"--{k.replace('_', '-')}={json.dumps(v) if isinstance(v, (dict, list)) else v}"
           for k, v in recipe.pretrain.items()]
    _stage("pretrain-encoders", ["pretrain-encoders", "--data", str(root), "--out", recipe.encoders,
                                 "--workers", w, *pre], seconds,
           done=encoders_ready(Path(recipe.encoders)))
    _stage("extract", ["extract", "--data", str(root), "--encoders", recipe.encoders, "--cache",
                       recipe.data.features, "--workers", w, "--T", str(EXTRACT_T), *dev], seconds,
           done=_features_ready(root, recipe.encoders, recipe.data.features))
    _stage("train", ["train", "--config", args.config, "--quiet", "--resume", *dev], seconds,
           done=_training_finished(out, recipe.train.epochs, recipe.train.patience))
    if grounding_section(recipe.model).get("expert"):
        _stage("calibrate", ["calibrate", "--config", args.config], seconds, done=_calibrated(out / "best"))
    ood_clips, contrast = Path(f"{recipe.data.root}-ood-calibration"), Path(f"{recipe.data.root}-ood-contrast")
    n_ood, n_contrast = ood_clip_counts(s.test_videos)
    if init is not None and not _ood_calibrated(out / "best") and carry_ood(Path(init), out / "best"):
        print(f"== calibrate-ood: carried over from train.init {init} (the same encoders)", flush=True)
    ood_done = _ood_calibrated(out / "best")
    _stage("synth-ood-calibration", ["synth", "--out", str(ood_clips), "--videos", str(n_ood), "--seed",
                                     str(OOD_CALIBRATION_SEED), "--splits", "test=1", "--questions-per-video", "1",
                                     "--workers", w, "--quiet"], seconds,
           done=ood_done or (ood_clips / "scenes.jsonl").exists())
    _stage("synth-ood-contrast", ["synth-contrast", "--out", str(contrast), "--clips", str(n_contrast), "--seed",
                                  str(OOD_CONTRAST_SEED)], seconds,
           done=ood_done or (contrast / "contrast.json").exists())
    _stage("calibrate-ood", ["calibrate-ood", "--checkpoint", str(out / "best"), "--data", str(ood_clips / "videos"),
                             "--contrast-sound", str(contrast)], seconds, done=_ood_calibrated(out / "best"))
    report_path = out / "fresh-test-report.json"
    _stage("evaluate", ["evaluate", "--checkpoint", str(out / "best"), "--data", str(fresh), "--split", "test",
                        "--predictions", str(out / "fresh-test-predictions.jsonl"), "--report", str(report_path),
                        *dev],
           seconds, done=_newer(report_path, out / "best" / "model.safetensors")
           and _newer(report_path, out / "best" / "config.json"))
    report = json.loads(report_path.read_text())
    seconds = json.loads(seconds.read_text())
    print(format_table(report, label=recipe.name))
    if args.publish:
        ckpt = load_checkpoint(out / "best")
        dest = args.publish
        tmp = dest.with_name(dest.name + ".tmp")
        if tmp.exists():
            shutil.rmtree(tmp)
        shutil.copytree(out / "best", tmp)
        if (out / "log.jsonl").exists():   # the per-epoch record behind the card's numbers travels with it
            shutil.copy(out / "log.jsonl", tmp / "train-log.jsonl")
        metrics = {"fresh_test": report, "val": ckpt.metrics.get("val", {}), "stage_seconds": seconds,
                   "fresh_test_data": {"videos": s.test_videos, "seed": s.test_seed}}
        if ckpt.metrics.get("expert_refit"):
            metrics["expert_refit"] = ckpt.metrics["expert_refit"]
        from mcd.serving.examples import answer_examples
        from mcd.serving.pipeline import Pipeline
        metrics["examples"] = answer_examples(Pipeline(tmp))
        (tmp / "metrics.json").write_text(json.dumps(metrics, indent=2))
        card = render(recipe.name, recipe.to_dict(), f"mcd reproduce --config {args.config} --publish {dest}",
                      seconds, report, metrics["val"], f"{report['n']} questions",
                      sum(p.numel() for p in ckpt.model.parameters()), refit=metrics.get("expert_refit"),
                      encoders=ckpt.config.get("encoders"), instruments=ckpt.config.get("instruments"))
        (tmp / "README.md").write_text(card)
        if dest.exists():
            shutil.rmtree(dest)
        tmp.rename(dest)
        print(f"published {dest}")
    return 0

