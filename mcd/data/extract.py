"""`mcd extract`: encode every clip of a dataset once into a FeatureCache.

Decoding runs in DataLoader worker processes while the main process encodes, so the two overlap. Each video's
features land in their own file, which makes the job resumable (finished videos are skipped) and shardable
(`--shard i/n` takes every n-th video), so many machines can split one dataset without talking to each other.

`--device` (mcd/device.py) puts the encoders on a GPU; decoding stays on the CPU workers. On CUDA the frames and
audio windows of several clips (`--clips-per-batch`, default 16 there) are gathered in pinned memory and encoded
as one batch, copied without blocking; on the CPU each clip is encoded on its own, as before (default 1).
"""
from __future__ import annotations

import argparse
import json
import time
from pathlib import Path
from typing import Iterable, Sequence

import torch
from tqdm import tqdm

from mcd import media
from mcd.data.features import FeatureCache
from mcd.device import add_device_argument, configure_cuda, resolve_device

CUDA_CLIPS_PER_BATCH = 16   # clips encoded together on a GPU (T frames each: 160 frames of 10-segment clips)


def benchmark_videos(data: Path, splits: Sequence[str] | None = None, videos_dir: Path | None = None) -> dict[str, Path]:
    """video_id -> clip path for the videos referenced by `data/avqa-<split>.json` (all splits found by default)."""
    videos_dir = videos_dir or data / "videos"
    files = [data / f"avqa-{s}.json" for s in splits] if splits else sorted(data.glob("avqa-*.json"))
    if not files:
        raise FileNotFoundError(f"no avqa-*.json annotation files in {data}")
    ids: set[str] = set()
    for f in files:
        if not f.exists():
            raise FileNotFoundError(f"annotation file {f} does not exist")
        ids.update(str(r["video_id"]) for r in json.loads(f.read_text()))
    return {v: _find_clip(videos_dir, v) for v in sorted(ids)}


def _find_clip(videos_dir: Path, video_id: str) -> Path:
    for ext in (".mp4", ".webm", ".mkv", ".mov", ".avi"):
        p = videos_dir / f"{video_id}{ext}"
        if p.exists():
            return p
    return videos_dir / f"{video_id}.mp4"  # reported as missing when decoded


def encoder_meta(encoders, T: int) -> dict:
    """What identifies a cache's features: the encoder specs and T."""
    return {"T": T, "encoders": {"visual": encoders.visual.spec(), "audio": encoders.audio.spec()}}


class _DecodeJob(torch.utils.data.Dataset):
    def __init__(self, items: list[tuple[str, Path]], T: int):
        self.items, self.T = items, T

    def __len__(self) -> int:
        return len(self.items)

    def __getitem__(self, i: int):
        video_id, path = self.items[i]
        try:
            clip = media.decode(path, T=self.T)
        except media.MediaError as exc:
            return video_id, None, exc.user_message
        return video_id, (clip.frames, clip.audio_segments), None


@torch.no_grad()
def encode_clip(encoders, frames, audio_segments) -> tuple[torch.Tensor, torch.Tensor]:
    """`visual [T,P,Dv]`, `audio [T,Da]` of one decoded clip."""
    return encoders.visual.encode(frames), encoders.audio.encode(audio_segments)


def _stacked(arrays: list, pin: bool) -> torch.Tensor:
    """The arrays (same trailing shape) one after another in one tensor, allocated pinned when `pin`: one copy."""
    first = torch.as_tensor(arrays[0])
    out = torch.empty((sum(len(a) for a in arrays), *first.shape[1:]), dtype=first.dtype, pin_memory=pin)
    start = 0
    for a in arrays:
        out[start:start + len(a)] = torch.as_tensor(a)
        start += len(a)
    return out


@torch.no_grad()
def encode_clips(encoders, clips: list[tuple], pin: bool = False) -> list[tuple[torch.Tensor, torch.Tensor]]:
    """`(visual, audio)` per decoded clip `(frames, audio_segments)`, the clips' frames and windows encoded as one
    batch each (frames of one size: callers group clips by frame shape)."""
    if len(clips) == 1:
        return [encode_clip(encoders, *clips[0])]
    lengths = [len(frames) for frames, _ in clips]
    visual = encoders.visual.encode(_stacked([f for f, _ in clips], pin)).split(lengths)
    audio = encoders.audio.encode(_stacked([a for _, a in clips], pin)).split([len(a) for _, a in clips])
    return list(zip(visual, audio))


def extract(videos: dict[str, Path], encoders, cache: FeatureCache, T: int, workers: int = 2,
            shard: tuple[int, int] = (0, 1), progress: bool = True, device: torch.device | None = None,
            clips_per_batch: int | None = None) -> dict:
    """Encode the videos of this shard missing from `cache`; returns counts and the failed videos with reasons.

    `device`: where the encoders are (default the CPU; the caller moved them); `clips_per_batch`: clips encoded
    together (default 1 on the CPU, CUDA_CLIPS_PER_BATCH on CUDA)."""
    device = torch.device(device or "cpu")
    on_cuda = device.type == "cuda"
    per_batch = max(1, clips_per_batch or (CUDA_CLIPS_PER_BATCH if on_cuda else 1))
    index, count = shard
    todo = [(v, p) for i, (v, p) in enumerate(sorted(videos.items())) if i % count == index and not cache.has(v)]
    skipped = sum(1 for i, v in enumerate(sorted(videos)) if i % count == index) - len(todo)
    loader = torch.utils.data.DataLoader(_DecodeJob(todo, T), batch_size=None, num_workers=workers,
                                         prefetch_factor=4 if workers else None)
    failed: dict[str, str] = {}
    pending: list[tuple[str, tuple]] = []

    def flush() -> None:
        for (video_id, _), (visual, audio) in zip(pending, encode_clips(encoders, [d for _, d in pending], on_cuda)):
            cache.save(video_id, visual, audio)
        pending.clear()

    start = time.perf_counter()
    for video_id, decoded, error in tqdm(loader, total=len(todo), desc="extract", unit="clip", disable=not progress):
        if error is not None:
            failed[video_id] = error
            continue
        if pending and tuple(pending[0][1][0].shape[1:]) != tuple(decoded[0].shape[1:]):
            flush()                     # frames of another size: a batch holds one size
        pending.append((video_id, decoded))
        if len(pending) >= per_batch:
            flush()
    if pending:
        flush()
    seconds = time.perf_counter() - start
    return {"encoded": len(todo) - len(failed), "skipped": skipped, "failed": failed, "seconds": seconds,
            "clips_per_s": (len(todo) - len(failed)) / seconds if seconds > 0 and todo else 0.0}


def load_encoders(source: str | Path, device: torch.device | str = "cpu"):
    """An EncoderSet from a `mcd pretrain-encoders` folder or from a checkpoint folder, on `device`."""
    from mcd.encoders.encoder_set import EncoderSet

    source = Path(source)
    if (source / "encoders.json").exists():
        return EncoderSet.from_folder(source, device)
    if (source / "config.json").exists():
        from mcd.model.checkpoint import load_checkpoint

        ckpt = load_checkpoint(source)
        return EncoderSet.from_specs(ckpt.config["encoders"], ckpt.extra_tensors, device)
    raise FileNotFoundError(f"{source} is neither an encoder folder (encoders.json) nor a checkpoint (config.json)")


def parse_shard(text: str) -> tuple[int, int]:
    try:
        i, n = (int(x) for x in text.split("/"))
    except ValueError:
        raise argparse.ArgumentTypeError(f"--shard wants i/n, e.g. 0/4; got {text!r}") from None
    if not (n >= 1 and 0 <= i < n):
        raise argparse.ArgumentTypeError(f"--shard {text}: need 0 <= i < n")
    return i, n


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--data", required=True, type=Path, help="benchmark folder (avqa-*.json + videos/)")
    p.add_argument("--videos", type=Path, help="clip folder (default DATA/videos)")
    p.add_argument("--encoders", required=True, type=Path,
                   help="a `mcd pretrain-encoders` folder or a checkpoint folder whose encoders to use")
    p.add_argument("--cache", required=True, type=Path, help="feature cache folder to write")
    p.add_argument("--split", action="append", help="only these splits (repeatable; default all)")
    p.add_argument("--T", type=int, default=10, help="segments per clip")
    p.add_argument("--workers", type=int, default=2, help="decode worker processes")
    p.add_argument("--shard", type=parse_shard, default=(0, 1), help="i/n: this machine's share")
    add_device_argument(p)
    p.add_argument("--clips-per-batch", type=int, default=None,
                   help=f"clips encoded together (default: 1 on the CPU, {CUDA_CLIPS_PER_BATCH} on CUDA)")


def run(args: argparse.Namespace) -> int:
    from mcd.cli import CLIError

    device = resolve_device(args.device, announce=True)
    configure_cuda(device, fixed_shapes=True)
    try:
        videos = benchmark_videos(args.data, args.split, args.videos)
        encoders = load_encoders(args.encoders, device)
    except (FileNotFoundError, ValueError) as exc:
        raise CLIError(str(exc)) from exc
    cache = FeatureCache(args.cache, meta=encoder_meta(encoders, args.T))
    result = extract(videos, encoders, cache, args.T, args.workers, args.shard, device=device,
                     clips_per_batch=args.clips_per_batch)
    print(f"encoded {result['encoded']} clips ({result['clips_per_s']:.2f} clips/s), "
          f"skipped {result['skipped']} already cached, failed {len(result['failed'])}")
    for video_id, reason in list(result["failed"].items())[:20]:
        print(f"  failed {video_id}: {reason}")
    return 1 if result["failed"] else 0
