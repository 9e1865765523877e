"""`mcd pretrain-encoders --data OUT --out DIR`: train the synth visual and audio CNNs, then freeze them.

Our stand-in for ImageNet/AudioSet pretraining: the visual CNN learns which instrument (or which
background) fills each 7x7 grid cell of a frame, the audio CNN which instruments (and voiceover) sound in each
1-s window and how loud and how fast they play. Only the frozen backbones are kept; the heads are thrown away.

Every clip is decoded once (DataLoader workers), frames are stored at the CNN's input size and audio as log-mel,
and training draws random batches of frames / windows for a fixed number of steps, so the run time does not
grow with the benchmark. Held-out accuracies are measured on the benchmark's `val` split (else `test`, else
every 10th video).

Measured on a 300-video benchmark (`mcd synth --videos 300 --seed 1`) with the defaults, one torch thread on
the shared 2-core machine: decode 22 s, training 8.4 min; held-out (val) instrument-cell accuracy 0.987,
single-instrument audio accuracy 1.000. `bench/encoders.py` probes the frozen features on the test split.
"""
from __future__ import annotations

import argparse
import json
import math
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from safetensors.torch import save_file
from torch import nn
from tqdm import tqdm

from mcd.encoders.labels import (
    IGNORE,
    PRESENT,
    LabelSpace,
    SceneLabelError,
    SceneRecord,
    audio_targets,
    cell_labels,
    read_scenes,
    single_instrument,
)
from mcd.encoders.base import EncoderError, EncoderSpecError, build_encoder
from mcd.encoders.synth import SynthAudioEncoder, SynthVisualEncoder, normalise_frames, resize_frames
from mcd.encoders.text import minilm_spec


# ----------------------------------------------------------------------------- decoding


class _ClipReader(torch.utils.data.Dataset):
    """Decodes one clip per item in a worker process: frames resized for the CNN (uint8), raw audio windows."""

    def __init__(self, items: list[tuple[SceneRecord, Path]], T: int, size: int):
        self.items, self.T, self.size = items, T, size

    def __len__(self) -> int:
        return len(self.items)

    def __getitem__(self, i: int):
        from mcd import media

        scene, path = self.items[i]
        try:
            clip = media.decode(path, T=self.T)
        except media.MediaError as e:
            return scene, None, f"{path.name}: {e.user_message}"
        frames = resize_frames(torch.from_numpy(clip.frames), self.size).round().clamp(0, 255).to(torch.uint8)
        return scene, (frames, torch.from_numpy(clip.audio_segments), clip.timestamps), None


def _as_is(item):
    return item


@dataclass
class ClipSet:
    """Decoded clips of one split, flattened to frames and windows, with their targets."""

    video_ids: list[str]
    frames: torch.Tensor        # uint8 [N, 3, S, S]   (N = clips * T)
    cells: torch.Tensor         # int64 [N, 49], labels.IGNORE for ambiguous cells
    logmel: torch.Tensor        # float16 [N, 1, mels, frames]
    presence: torch.Tensor      # float [N, Ca]
    loudness: torch.Tensor      # float [N, Ca]
    log_rate: torch.Tensor      # float [N, Ca]
    level_mask: torch.Tensor    # bool [N, Ca]
    single: torch.Tensor        # int64 [N]: the only sounding instrument, -1 otherwise
    clip_of: torch.Tensor       # int64 [N]: index into video_ids
    waves: torch.Tensor | None = None   # float [N, samples]: the 1-s windows, kept only to mix them (audio_mix)

    def __len__(self) -> int:
        return len(self.frames)


def load_clips(scenes: list[SceneRecord], data: Path, space: LabelSpace, visual: SynthVisualEncoder,
               audio: SynthAudioEncoder, T: int, workers: int, desc: str,
               keep_waves: bool = False) -> tuple[ClipSet, list[str]]:
    """Decode and label clips; returns the set and the human messages of clips that could not be used.
    `keep_waves` also keeps the raw windows, which mixing needs: float32 (64 kB a window), because float16 moved
    the log-mel of near-silent bands by up to 2 (natural log) against the features extraction computes."""
    items, problems = [], []
    for s in scenes:
        path = data / "videos" / f"{s.video_id}.mp4"
        if path.is_file():
            items.append((s, path))
        else:
            problems.append(f"{path.name}: missing")
    reader = _ClipReader(items, T, visual.arch["input_size"])
    loader = torch.utils.data.DataLoader(reader, batch_size=None, num_workers=workers, collate_fn=_as_is)
    parts: dict[str, list] = {k: [] for k in ("frames", "cells", "logmel", "presence", "loudness", "log_rate",
                                               "level_mask", "single", "clip_of")}
    if keep_waves:
        parts["waves"] = []
    ids: list[str] = []
    for scene, decoded, problem in tqdm(loader, total=len(reader), desc=desc, unit="clip"):
        if decoded is None:
            problems.append(problem)
            continue
        frames, segments, timestamps = decoded
        targets = audio_targets(scene, np.asarray(timestamps), space)
        n = len(frames)
        parts["frames"].append(frames)
        parts["cells"].append(torch.from_numpy(cell_labels(scene, space)).expand(n, -1))
        parts["logmel"].append(audio.preprocess(segments).half())
        parts["presence"].append(torch.from_numpy(targets.presence))
        parts["loudness"].append(torch.from_numpy(targets.loudness))
        parts["log_rate"].append(torch.from_numpy(targets.log_rate))
        parts["level_mask"].append(torch.from_numpy(targets.mask))
        parts["single"].append(torch.from_numpy(single_instrument(targets)))
        parts["clip_of"].append(torch.full((n,), len(ids), dtype=torch.long))
        if keep_waves:
            parts["waves"].append(torch.as_tensor(segments, dtype=torch.float32))
        ids.append(scene.video_id)
    if not ids:
        return None, problems  # type: ignore[return-value]
    return ClipSet(ids, **{k: torch.cat(v) for k, v in parts.items()}), problems


def split_scenes(scenes: list[SceneRecord]) -> tuple[list[SceneRecord], list[SceneRecord], str]:
    """Train on `train`; hold out `val` (else `test`, else every 10th training video)."""
    train = [s for s in scenes if s.split == "train"]
    for name in ("val", "test"):
        held = [s for s in scenes if s.split == name]
        if held:
            return train, held, name
    return [s for i, s in enumerate(train) if i % 10], train[::10], "every 10th train video"


# ----------------------------------------------------------------------------- training


def _steps_bar(steps: int, desc: str) -> tqdm:
    return tqdm(range(steps), desc=desc, unit="step")


def _optimiser(params, lr: float, steps: int):
    opt = torch.optim.AdamW(params, lr=lr, weight_decay=1e-4)
    warm, total = max(1, steps // 20), max(1, steps)  # 0 steps (leave a CNN untrained) is allowed
    sched = torch.optim.lr_scheduler.LambdaLR(
        opt, lambda s: min(1.0, (s + 1) / warm) * 0.5 * (1 + math.cos(math.pi * min(s, total) / total)))
    return opt, sched


def _update(opt: torch.optim.Optimizer, sched, loss: torch.Tensor, bar: tqdm) -> None:
    """One optimiser step on `loss` and the scheduler's step; the running loss goes on the progress bar."""
    opt.zero_grad(set_to_none=True)
    loss.backward()
    opt.step()
    sched.step()
    bar.set_postfix(loss=f"{loss.item():.3f}")


def _augment(x: torch.Tensor, gen: torch.Generator) -> torch.Tensor:
    """Brightness/contrast jitter and a shift of a few pixels (well under a 16-px cell, labels stay right)."""
    b = x.shape[0]
    gain = 1 + 0.2 * (torch.rand(b, 1, 1, 1, generator=gen) - 0.5)
    bias = 20 * (torch.rand(b, 1, 1, 1, generator=gen) - 0.5)
    x = (x * gain + bias).clamp(0, 255)
    dy, dx = (int(v) for v in torch.randint(-3, 4, (2,), generator=gen))
    return torch.roll(x, shifts=(dy, dx), dims=(2, 3))


def train_visual(enc: SynthVisualEncoder, data: ClipSet, num_classes: int, steps: int, batch: int, lr: float,
                 seed: int) -> nn.Module:
    head = nn.Conv2d(enc.dim, num_classes, 1)
    params = [*enc.net.parameters(), *head.parameters()]
    for p in params:
        p.requires_grad_(True)
    enc.net.train()
    opt, sched = _optimiser(params, lr, steps)
    gen = torch.Generator().manual_seed(seed)
    bar = _steps_bar(steps, "visual CNN")
    for _ in bar:
        idx = torch.randint(len(data), (min(batch, len(data)),), generator=gen)
        x = normalise_frames(_augment(data.frames[idx].float(), gen))
        logits = head(F.dropout(enc.net(x), 0.1))                    # [b, C, 7, 7]
        loss = F.cross_entropy(logits.flatten(2), data.cells[idx].view(len(idx), -1), ignore_index=IGNORE)
        _update(opt, sched, loss, bar)
    enc.freeze()
    return head.eval()


class AudioHead(nn.Module):
    """Presence logits, loudness and (standardised) log-rate for every audio class."""

    def __init__(self, dim: int, num_classes: int):
        super().__init__()
        self.out = nn.Linear(dim, 3 * num_classes)

    def forward(self, h: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        return self.out(F.dropout(h, 0.1, self.training)).chunk(3, dim=-1)


def _audio_loss(head_out, targets: tuple[torch.Tensor, ...], rate_stats: tuple[float, float]) -> torch.Tensor:
    """`targets`: presence, loudness, log_rate and level_mask of the batch's windows."""
    presence, loud, rate = head_out
    want_presence, want_loudness, want_log_rate, mask = targets
    loss = F.binary_cross_entropy_with_logits(presence, want_presence)
    if mask.any():
        mu, sd = rate_stats
        loss = loss + 0.5 * F.mse_loss(loud[mask], want_loudness[mask])
        loss = loss + 0.5 * F.mse_loss(rate[mask], (want_log_rate[mask] - mu) / sd)
    return loss


def rate_stats(data: ClipSet) -> tuple[float, float]:
    r = data.log_rate[data.level_mask]
    return (float(r.mean()), float(r.std().clamp_min(0.1))) if r.numel() > 1 else (0.0, 1.0)


def mix_windows(enc: SynthAudioEncoder, data: ClipSet, idx: torch.Tensor, gen: torch.Generator, p: float):
    """Each window of the batch, with probability `p`, summed with another random training window.

    Why: the frozen audio features of the shipped recipe tell which classes sound in a 1-s window right for 97%
    of the (window, class) pairs, but get the whole set right for only 74% of test windows, 35% where three
    instruments sound (a linear probe, `bench/audio_mixtures.py`; 86% on the windows it was fitted on), and the
    counting questions about sound need that set. The CNN sees only the 10,000 mixtures of its training clips.
    Sound adds, so the sum of two windows is another honest mixture, and its labels follow from theirs: a class
    sounds in the sum if it sounds in either (the larger fraction), and where both have it the louder player's
    loudness and rate stand, as `audio_targets` does for two players of one instrument. Returns the log-mel and
    the targets `_audio_loss` takes."""
    other = torch.randint(len(data), (len(idx),), generator=gen)
    mixed = torch.rand(len(idx), generator=gen) < p
    wave = data.waves[idx] + mixed[:, None] * data.waves[other]
    pres_a, pres_b = data.presence[idx], data.presence[other] * mixed[:, None]
    mask_a, mask_b = data.level_mask[idx], data.level_mask[other] & mixed[:, None]
    loud_a, loud_b = data.loudness[idx], data.loudness[other]
    take_b = mask_b & (~mask_a | (loud_b > loud_a))
    loudness = torch.where(take_b, loud_b, loud_a)
    log_rate = torch.where(take_b, data.log_rate[other], data.log_rate[idx])
    return enc.preprocess(wave), (torch.maximum(pres_a, pres_b), loudness, log_rate, mask_a | mask_b)


def train_audio(enc: SynthAudioEncoder, data: ClipSet, num_classes: int, steps: int, batch: int, lr: float,
                seed: int, mix: float = 0.0) -> AudioHead:
    head = AudioHead(enc.dim, num_classes)
    params = [*enc.net.parameters(), *head.parameters()]
    for p in params:
        p.requires_grad_(True)
    enc.net.train()
    head.train()
    opt, sched = _optimiser(params, lr, steps)
    gen = torch.Generator().manual_seed(seed + 1)
    stats = rate_stats(data)
    bar = _steps_bar(steps, "audio CNN")
    for _ in bar:
        idx = torch.randint(len(data), (min(batch, len(data)),), generator=gen)
        if mix > 0:
            x, targets = mix_windows(enc, data, idx, gen, mix)
        else:
            x = data.logmel[idx].float()
            targets = (data.presence[idx], data.loudness[idx], data.log_rate[idx], data.level_mask[idx])
        x = x + 0.3 * (torch.rand(len(idx), 1, 1, 1, generator=gen) - 0.5)  # +-0.15 in log: small gain jitter
        loss = _audio_loss(head(enc.net(x)), targets, stats)
        _update(opt, sched, loss, bar)
    enc.freeze()
    return head.eval()


# ----------------------------------------------------------------------------- evaluation


@torch.inference_mode()
def evaluate_visual(enc: SynthVisualEncoder, head: nn.Module, data: ClipSet, num_backgrounds: int) -> dict[str, float]:
    preds = []
    for sl in range(0, len(data), 256):
        x = normalise_frames(data.frames[sl:sl + 256].float())
        preds.append(head(enc.net(x)).argmax(1).flatten(1))
    pred, true = torch.cat(preds), data.cells
    known = true != IGNORE
    pred, true = pred[known], true[known]
    inst = true >= num_backgrounds
    return {
        "cell_accuracy": float((pred == true).float().mean()),
        "instrument_cell_accuracy": float((pred[inst] == true[inst]).float().mean()) if inst.any() else float("nan"),
        "background_cell_accuracy": float((pred[~inst] == true[~inst]).float().mean()) if (~inst).any() else float("nan"),
    }


@torch.inference_mode()
def evaluate_audio(enc: SynthAudioEncoder, head: AudioHead, data: ClipSet, stats: tuple[float, float]) -> dict[str, float]:
    outs = [head(enc.net(data.logmel[sl:sl + 512].float())) for sl in range(0, len(data), 512)]
    presence, loud, rate = (torch.cat(o) for o in zip(*outs))
    truth = data.presence >= PRESENT
    guess = presence.sigmoid() >= 0.5
    single = data.single >= 0
    mask = data.level_mask & truth
    mu, sd = stats
    return {
        "label_accuracy": float((guess == truth).float().mean()),
        "segment_exact_match": float((guess == truth).all(dim=1).float().mean()),
        "single_instrument_accuracy": (float((presence[single, :-1].argmax(1) == data.single[single]).float().mean())
                                       if single.any() else float("nan")),
        "single_instrument_segments": int(single.sum()),
        "loudness_mae": float((loud[mask] - data.loudness[mask]).abs().mean()) if mask.any() else float("nan"),
        "log_rate_mae": float((rate[mask] * sd + mu - data.log_rate[mask]).abs().mean()) if mask.any() else float("nan"),
    }


# ----------------------------------------------------------------------------- command


def _json_object(text: str) -> dict:
    try:
        value = json.loads(text)
    except json.JSONDecodeError as e:
        raise argparse.ArgumentTypeError(f"not JSON ({e})") from None
    if not isinstance(value, dict):
        raise argparse.ArgumentTypeError(f"a JSON object of architecture fields, got {text}")
    return value


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--data", required=True, type=Path, help="benchmark folder written by `mcd synth` (scenes.jsonl, videos/)")
    p.add_argument("--out", required=True, type=Path, help="folder for encoders.json, visual.safetensors, audio.safetensors")
    p.add_argument("--T", type=int, default=10, help="segments per clip (frames and 1-s windows), as in extraction")
    p.add_argument("--visual-dim", type=int, default=128)
    p.add_argument("--audio-dim", type=int, default=128)
    p.add_argument("--visual-steps", type=int, default=1200, help="optimiser steps for the visual CNN")
    p.add_argument("--audio-steps", type=int, default=1000, help="optimiser steps for the audio CNN")
    p.add_argument("--audio-mix", type=float, default=0.0,
                   help="probability that a training window is summed with another one (0 = never; see mix_windows)")
    p.add_argument("--audio-arch", type=_json_object, default=None, metavar="JSON",
                   help='synth audio architecture fields, e.g. \'{"freq_strides": [2, 1, 2, 1]}\' (default: the original net)')
    p.add_argument("--batch-size", type=int, default=64)
    p.add_argument("--lr", type=float, default=2e-3)
    p.add_argument("--max-videos", type=int, default=None, help="use at most this many training videos")
    p.add_argument("--workers", type=int, default=2, help="decoding worker processes (0 = decode in this process)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--join-visual", type=_json_object, default=None, metavar="JSON",
                   help='a pretrained visual encoder to put beside the synth CNN, e.g. \'{"backend": '
                        '"efficientnet-lite0"}\' (features standardised and concatenated; see mcd/encoders/joined.py)')
    p.add_argument("--join-audio", type=_json_object, default=None, metavar="JSON",
                   help='a pretrained audio encoder to put beside the synth CNN, e.g. \'{"backend": "musicnn"}\'')
    p.add_argument("--join-clips", type=int, default=64,
                   help="training clips whose features set a join's standardisation (mean and std per feature)")


def _check_args(args: argparse.Namespace) -> None:
    from mcd.cli import CLIError

    for name in ("T", "visual_dim", "audio_dim", "batch_size"):
        if getattr(args, name) < 1:
            raise CLIError(f"--{name.replace('_', '-')} must be at least 1, got {getattr(args, name)}")
    for name in ("visual_steps", "audio_steps", "workers"):
        if getattr(args, name) < 0:
            raise CLIError(f"--{name.replace('_', '-')} must not be negative, got {getattr(args, name)}")
    if args.lr <= 0:
        raise CLIError(f"--lr must be positive, got {args.lr}")
    if not 0 <= args.audio_mix <= 1:
        raise CLIError(f"--audio-mix is a probability between 0 and 1, got {args.audio_mix}")
    try:
        SynthAudioEncoder(args.audio_dim, arch=args.audio_arch)
    except EncoderSpecError as e:
        raise CLIError(f"--audio-arch: {e}") from None
    if args.join_clips < 1:
        raise CLIError(f"--join-clips must be at least 1, got {args.join_clips}")
    for modality in ("visual", "audio"):
        spec = getattr(args, f"join_{modality}")
        if spec is not None:
            try:
                build_encoder({**spec, "modality": modality})
            except EncoderError as e:
                raise CLIError(f"--join-{modality}: {e}") from None
    if not args.data.is_dir():
        raise CLIError(f"--data {args.data} is not a folder; generate one with `mcd synth --out {args.data}`")
    if args.out.exists() and not args.out.is_dir():
        raise CLIError(f"--out {args.out} exists and is not a folder")


def run(args: argparse.Namespace) -> int:
    from mcd.cli import CLIError

    _check_args(args)
    torch.manual_seed(args.seed)
    try:
        scenes = read_scenes(args.data / "scenes.jsonl")
    except SceneLabelError as e:
        raise CLIError(str(e)) from None
    space = LabelSpace.from_scenes(scenes)
    train_scenes, held_scenes, held_name = split_scenes(scenes)
    if args.max_videos is not None:
        train_scenes = train_scenes[: args.max_videos]
    if not train_scenes:
        raise CLIError(f"{args.data}/scenes.jsonl has no training videos (split 'train')")

    provenance = {"data": args.data.resolve().name, "visual_classes": list(space.visual),
                  "audio_classes": list(space.audio), "T": args.T}
    visual = SynthVisualEncoder(args.visual_dim, provenance=provenance)
    audio = SynthAudioEncoder(args.audio_dim, arch=args.audio_arch, provenance=provenance)

    start = time.time()
    train, bad_train = load_clips(train_scenes, args.data, space, visual, audio, args.T, args.workers, "decode train",
                                  keep_waves=args.audio_mix > 0)
    held, bad_held = load_clips(held_scenes, args.data, space, visual, audio, args.T, args.workers,
                                f"decode held-out ({held_name})")
    for problem in (bad_train + bad_held)[:10]:
        print(f"skipped {problem}")
    if bad_train or bad_held:
        print(f"skipped {len(bad_train) + len(bad_held)} clips that could not be read")
    if train is None:
        raise CLIError(f"none of the {len(train_scenes)} training clips under {args.data}/videos could be decoded")
    decode_s = time.time() - start

    start = time.time()
    v_head = train_visual(visual, train, len(space.visual), args.visual_steps, args.batch_size, args.lr, args.seed)
    a_head = train_audio(audio, train, len(space.audio), args.audio_steps, args.batch_size, args.lr, args.seed,
                         mix=args.audio_mix)
    train_s = time.time() - start

    metrics: dict[str, Any] = {"train_videos": len(train.video_ids), "train_frames": len(train),
                               "held_out": held_name, "held_out_videos": len(held.video_ids) if held else 0,
                               "decode_s": round(decode_s, 1), "train_s": round(train_s, 1),
                               "visual_steps": args.visual_steps, "audio_steps": args.audio_steps,
                               **({"audio_mix": args.audio_mix} if args.audio_mix else {})}
    if held is not None:
        metrics["visual"] = evaluate_visual(visual, v_head, held, space.num_backgrounds)
        metrics["audio"] = evaluate_audio(audio, a_head, held, rate_stats(train))
    if args.join_visual or args.join_audio:
        visual, audio, metrics["join"] = join_pretrained(visual, audio, args.join_visual, args.join_audio,
                                                         train_scenes[: args.join_clips], args.data, args.T)
    save_encoders(args.out, visual, audio, metrics)
    print(format_metrics(metrics))
    print(f"wrote {args.out}/encoders.json, visual.safetensors, audio.safetensors ({visual.id}, {audio.id})")
    return 0


def join_pretrained(visual, audio, visual_spec: dict | None, audio_spec: dict | None, scenes: list[SceneRecord],
                    data: Path, T: int) -> tuple[Any, Any, dict]:
    """The trained synth CNNs, each joined after the pretrained encoder its spec names (where one is named), with
    the join's standardisation measured on `scenes`' clips decoded as extraction decodes them."""
    from mcd import media
    from mcd.encoders.joined import JoinedAudioEncoder, JoinedVisualEncoder

    start = time.time()
    clips = [media.decode(data / "videos" / f"{s.video_id}.mp4", T=T) for s in scenes]
    report: dict[str, Any] = {"clips": len(clips)}
    if visual_spec:
        visual = JoinedVisualEncoder([build_encoder({**visual_spec, "modality": "visual"}), visual])
        report["visual_mean_abs"] = visual.fit_standardisation([c.frames for c in clips])
    if audio_spec:
        audio = JoinedAudioEncoder([build_encoder({**audio_spec, "modality": "audio"}), audio])
        report["audio_mean_abs"] = audio.fit_standardisation([c.audio_segments for c in clips])
    report["seconds"] = round(time.time() - start, 1)
    return visual, audio, report


def save_encoders(out: Path, visual, audio, metrics: dict) -> None:
    """The folder layout `EncoderSet.from_folder` and `mcd extract --encoders` read (text = the default minilm)."""
    out.mkdir(parents=True, exist_ok=True)
    save_file({k: v.contiguous() for k, v in visual.state_dict().items()}, str(out / "visual.safetensors"))
    save_file({k: v.contiguous() for k, v in audio.state_dict().items()}, str(out / "audio.safetensors"))
    specs = {"visual": visual.spec(), "audio": audio.spec(), "text": minilm_spec()}
    (out / "encoders.json").write_text(json.dumps(specs, indent=2) + "\n")
    (out / "metrics.json").write_text(json.dumps(metrics, indent=2) + "\n")


def format_metrics(m: dict[str, Any]) -> str:
    lines = [f"held-out ({m['held_out']}, {m['held_out_videos']} videos):"]
    if "visual" in m:
        v, a = m["visual"], m["audio"]
        lines += [
            f"  visual  cell accuracy {v['cell_accuracy']:.3f}   instrument cells {v['instrument_cell_accuracy']:.3f}"
            f"   background cells {v['background_cell_accuracy']:.3f}",
            f"  audio   label accuracy {a['label_accuracy']:.3f}   exact match {a['segment_exact_match']:.3f}"
            f"   single-instrument top-1 {a['single_instrument_accuracy']:.3f} ({a['single_instrument_segments']} segs)"
            f"   loudness MAE {a['loudness_mae']:.3f}   log-rate MAE {a['log_rate_mae']:.3f}",
        ]
    else:
        lines.append("  (no held-out clips could be decoded)")
    return "\n".join(lines)
