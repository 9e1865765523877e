"""The pretrained encoders (`efficientnet-lite0` visual, `musicnn` audio): speed, port parity, and layer choice.

    python bench/encoders_pretrained.py --speed                      # ms per image / per second of audio
    python bench/encoders_pretrained.py --parity /tmp/musicnn_ref.npz
    python bench/encoders_pretrained.py --probe /tmp/enc-probe       # linear probes of each variant

--speed: EfficientNet-Lite0 at each input size and feature layer (ms per image, batch of 10 frames as the
extractor sends one clip), musicnn per context (ms per 1-s window, batch of 10), with 1 and 2 torch threads.

--parity: the reference .npz written by `scripts/port_musicnn.py reference --audio ...` (original TensorFlow
MTT_musicnn on librosa log-mels of real recordings). Reports the largest absolute difference of the port's tag
probabilities, logits, penultimate (200-d) and pooled (753-d) features (a) on the same librosa log-mels (the
network alone) and (b) from the waveforms through the port's torchaudio front end (end to end), and of the
log-mels themselves.

--probe: a benchmark folder written by `mcd synth` (scenes.jsonl + videos/). Every clip is decoded once; each
visual variant (input size x layer) and audio variant (context x layer) is probed with bench/encoders.py's
linear probes (train split -> test split): visual cell / instrument-cell / per-player accuracy, audio
single-instrument top-1 and multi-label accuracy.

Measured here (2 shared CPU cores; `mcd synth --videos 240 --seed 11 --splits train=0.6,test=0.4`, 144 -> 96 clips):
visual cell / instrument-cell / per-player accuracy 112/stage5 0.937/0.820/0.983, 160/stage5 0.964/0.895/0.989,
224/stage5 0.954/0.854/0.999, 224/stage7 0.963/0.882/0.966, 224/head 0.938/0.802/0.941 (the 1280-d head and
320-d stage7 are much worse at 112 and 160 px); audio single-instrument / label accuracy self/pool 0.979/0.947,
self/penultimate 0.958/0.931, tile/pool 0.979/0.946, neighbours/pool 0.988/0.947, self/taggram 0.840/0.904.
Defaults chosen from this: efficientnet-lite0 160 px stage5 (112-d), musicnn context "self" layer "pool" (1506-d).
Parity (sax.wav, cantina.wav, recording1.wav of gradio's media assets, 7 patches): tags 2.5e-6 (network) /
1.1e-5 (end to end), penultimate 1.1e-5 / 3.6e-5.
"""
from __future__ import annotations

import argparse
import importlib.util
import statistics
import sys
import time
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from mcd.encoders.efficientnet_lite import LAYERS, EfficientNetLite0Encoder  # noqa: E402
from mcd.encoders.musicnn import PATCH_FRAMES, MusiCNNEncoder, context_windows  # noqa: E402

SIZES = (112, 160, 224)
VIS_LAYERS = ("stage5", "stage7", "head")
CONTEXTS = ("self", "tile", "neighbours")
AUD_LAYERS = ("penultimate", "pool", "taggram")


def median_ms(fn, reps: int) -> float:
    fn()  # warm-up
    times = []
    for _ in range(reps):
        t0 = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t0)
    return 1000 * statistics.median(times)


def speed(reps: int) -> None:
    rng = np.random.default_rng(0)
    frames = rng.integers(0, 256, (10, 360, 640, 3), dtype=np.uint8)     # one clip's T frames
    audio = (0.1 * rng.standard_normal((10, 16000))).astype(np.float32)   # one clip's T windows
    print("EfficientNet-Lite0, ms per frame (batch of 10 frames of 640x360, resize included)")
    print("| input | layer | map | dim | 1 thread | 2 threads |")
    print("|---|---|---|---|---|---|")
    for size in SIZES:
        for layer in ("stage5", "head"):
            enc = EfficientNetLite0Encoder(size, layer)
            with torch.inference_mode():
                side = enc.net.features(torch.zeros(1, 3, size, size), layer).shape[-1]
            row = []
            for threads in (1, 2):
                torch.set_num_threads(threads)
                row.append(median_ms(lambda: enc.encode(frames), reps) / len(frames))
            print(f"| {size} | {layer} | {side}x{side} | {enc.dim} | {row[0]:.1f} | {row[1]:.1f} |")
    print("\nmusicnn (MTT), ms per 1-s window (batch of 10 windows; layer choice does not change the cost)")
    print("| context | model input | 1 thread | 2 threads |")
    print("|---|---|---|---|")
    for context in CONTEXTS:
        enc = MusiCNNEncoder("penultimate", context)
        row = []
        for threads in (1, 2):
            torch.set_num_threads(threads)
            row.append(median_ms(lambda: enc.encode(audio), reps) / len(audio))
        frames_in = 63 if context == "self" else PATCH_FRAMES
        print(f"| {context} | {frames_in} frames | {row[0]:.1f} | {row[1]:.1f} |")


def parity(path: Path) -> None:
    ref = np.load(path)
    enc = MusiCNNEncoder()
    with torch.inference_mode():
        out = enc.net(torch.from_numpy(ref["logmel"]))
    got = {"tags": torch.sigmoid(out["taggram"]), "logits": out["taggram"], "penultimate": out["penultimate"],
           "max_pool": out["max_pool"], "mean_pool": out["mean_pool"]}
    print(f"{len(ref['logmel'])} patches of 3 s from {', '.join(map(str, ref['files']))} "
          f"(librosa pad_mode {ref['pad_mode']})")
    print("| output | range of the original | max abs diff, network only | max abs diff, end to end |")
    print("|---|---|---|---|")
    # end to end: the port's front end on the whole file, cut into the same 187-frame patches
    e2e = {k: [] for k in got}
    mel_diff = 0.0
    rows = []
    for k in range(len(ref["files"])):
        idx = np.where(ref["owner"] == k)[0]
        if not len(idx):
            continue
        rows.append(idx)
        with torch.inference_mode():
            mel = enc.mel(torch.from_numpy(ref[f"wave{k}"])[None])[0]
            patches = mel[: len(idx) * PATCH_FRAMES].reshape(len(idx), PATCH_FRAMES, -1)
            mel_diff = max(mel_diff, float((patches - torch.from_numpy(ref["logmel"][idx])).abs().max()))
            o = enc.net(patches)
        for name, v in {"tags": torch.sigmoid(o["taggram"]), "logits": o["taggram"], "penultimate": o["penultimate"],
                        "max_pool": o["max_pool"], "mean_pool": o["mean_pool"]}.items():
            e2e[name].append(v)
    order = np.concatenate(rows)
    for name, v in got.items():
        r = ref[name]
        net = float(np.abs(v.numpy() - r).max())
        end = float(np.abs(torch.cat(e2e[name]).numpy() - r[order]).max())
        print(f"| {name} | {r.min():.3g} .. {r.max():.3g} | {net:.2e} | {end:.2e} |")
    print(f"| log-mel (port vs librosa) | {ref['logmel'].min():.3g} .. {ref['logmel'].max():.3g} | - | {mel_diff:.2e} |")
    top = torch.sigmoid(out["taggram"]).mean(0).topk(5)
    from mcd.encoders.musicnn import tag_names

    names = tag_names()
    print("mean tags of the port over the patches: "
          + ", ".join(f"{names[i]} {p:.2f}" for p, i in zip(top.values.tolist(), top.indices.tolist())))


# ----------------------------------------------------------------------------- probes


def _bench_encoders():
    spec = importlib.util.spec_from_file_location("bench_encoders", ROOT / "bench" / "encoders.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


class _Variants:
    """Computes every variant of a clip in as few forwards as possible (one per input size / per context)."""

    def __init__(self, sizes, vis_layers, contexts, aud_layers):
        self.vis = {s: EfficientNetLite0Encoder(s, "stage5") for s in sizes}
        self.vis_layers, self.contexts, self.aud_layers = vis_layers, contexts, aud_layers
        self.aud = MusiCNNEncoder("penultimate", "tile")
        self.times = {f"visual {s}": [] for s in sizes} | {f"audio {c}": [] for c in contexts}

    @torch.inference_mode()
    def __call__(self, frames, audio):
        vis = {}
        for size, enc in self.vis.items():
            t0 = time.perf_counter()
            x = enc.net._bn0(enc.net._conv_stem(enc.preprocess(frames))).clamp(0, 6)
            maps = {}
            for i, block in enumerate(enc.net._blocks):
                x = block(x)
                for name in self.vis_layers:
                    if name != "head" and LAYERS[name][0] == i:
                        maps[name] = x
            if "head" in self.vis_layers:
                maps["head"] = F.relu6(enc.net._bn1(enc.net._conv_head(x)))
            self.times[f"visual {size}"].append(time.perf_counter() - t0)
            for name, m in maps.items():
                m = F.adaptive_avg_pool2d(m, 7) if m.shape[-1] != 7 else m
                vis[f"{size}/{name}"] = m.flatten(2).transpose(1, 2).float()
        aud = {}
        wave = torch.as_tensor(audio)
        for context in self.contexts:
            t0 = time.perf_counter()
            out = self.aud.net(self.aud.logmel(context_windows(wave, context)))
            self.times[f"audio {context}"].append(time.perf_counter() - t0)
            for layer in self.aud_layers:
                self.aud.layer = layer
                aud[f"{context}/{layer}"] = self.aud._select(out).float()
        return vis, aud


def probe(data: Path, T: int, steps: int, seed: int, max_videos: int | None, sizes, vis_layers, contexts,
          aud_layers) -> None:
    from tqdm import tqdm

    from mcd import media
    from mcd.encoders.labels import LabelSpace, audio_targets, bbox_cover, cell_labels, read_scenes, single_instrument

    be = _bench_encoders()
    scenes = read_scenes(data / "scenes.jsonl")
    space = LabelSpace.from_scenes(scenes)
    variants = _Variants(sizes, vis_layers, contexts, aud_layers)

    def extract(split):
        chosen = [s for s in scenes if s.split == split][:max_videos]
        vis, aud, cells, presence, single, players = {}, {}, [], [], [], []
        for n, s in enumerate(tqdm(chosen, desc=split, unit="clip")):
            for t in range(T):
                row = n * T + t
                players += [(row, space.visual.index(p["instrument"]), torch.from_numpy(bbox_cover(p["bbox"], s.size)))
                            for p in s.players]
            clip = media.decode(data / "videos" / f"{s.video_id}.mp4", T=T)
            v, a = variants(clip.frames, clip.audio_segments)
            for k, x in v.items():
                vis.setdefault(k, []).append(x)
            for k, x in a.items():
                aud.setdefault(k, []).append(x)
            tg = audio_targets(s, clip.timestamps, space)
            cells.append(torch.from_numpy(cell_labels(s, space)).expand(T, -1))
            presence.append(torch.from_numpy(tg.presence))
            single.append(torch.from_numpy(single_instrument(tg)))
        vis = {k: torch.cat(x) for k, x in vis.items()}
        aud = {k: torch.cat(x) for k, x in aud.items()}
        labels = torch.tensor([c for _, c, _ in players])
        pf = {k: be.player_features(x, players) for k, x in vis.items()}
        return vis, aud, pf, torch.cat(cells), torch.cat(presence), torch.cat(single), labels, len(chosen)

    tr, te = extract("train"), extract("test")
    print(f"\nLinear probes ({steps} full-batch Adam steps): {tr[-1]} train clips -> {te[-1]} test clips, T={T}, "
          f"{data}")
    print("| visual variant | dim | cell acc | instrument-cell acc | per-player acc (n) | ms/frame (1 clip batch) |")
    print("|---|---|---|---|---|---|")
    dummy_a_tr, dummy_a_te = next(iter(tr[1].values())), next(iter(te[1].values()))
    for k in tr[0]:
        r = be.probe(({"visual": tr[0][k], "player": tr[2][k], "audio": dummy_a_tr}, *tr[3:7]),
                     ({"visual": te[0][k], "player": te[2][k], "audio": dummy_a_te}, *te[3:7]), space, steps, seed)
        size = int(k.split("/")[0])
        ms = 1000 * statistics.median(variants.times[f"visual {size}"]) / T
        print(f"| {k} | {tr[0][k].shape[-1]} | {r['visual_cell_acc']:.3f} | {r['visual_instrument_cell_acc']:.3f} | "
              f"{r['visual_player_acc']:.3f} ({r['players']}) | {ms:.1f} (all layers) |")
    print("\n| audio variant | dim | single-instrument acc (n) | label acc | ms/window |")
    print("|---|---|---|---|---|")
    first_v = next(iter(tr[0]))
    for k in tr[1]:
        r = be.probe(({"visual": tr[0][first_v], "player": tr[2][first_v], "audio": tr[1][k]}, *tr[3:7]),
                     ({"visual": te[0][first_v], "player": te[2][first_v], "audio": te[1][k]}, *te[3:7]),
                     space, steps, seed)
        ms = 1000 * statistics.median(variants.times[f"audio {k.split('/')[0]}"]) / T
        print(f"| {k} | {tr[1][k].shape[-1]} | {r['audio_single_acc']:.3f} ({r['single_segments']}) | "
              f"{r['audio_label_acc']:.3f} | {ms:.1f} |")


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--speed", action="store_true")
    p.add_argument("--reps", type=int, default=5)
    p.add_argument("--parity", type=Path, help="reference .npz from scripts/port_musicnn.py reference --audio")
    p.add_argument("--probe", type=Path, help="`mcd synth` benchmark folder")
    p.add_argument("--T", type=int, default=10)
    p.add_argument("--probe-steps", type=int, default=300)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--max-videos", type=int, default=None, help="per split")
    p.add_argument("--sizes", type=int, nargs="+", default=list(SIZES))
    p.add_argument("--vis-layers", nargs="+", default=list(VIS_LAYERS))
    p.add_argument("--contexts", nargs="+", default=list(CONTEXTS))
    p.add_argument("--aud-layers", nargs="+", default=list(AUD_LAYERS))
    p.add_argument("--threads", type=int, default=None, help="torch threads for --probe")
    args = p.parse_args()
    if not (args.speed or args.parity or args.probe):
        p.error("pick at least one of --speed, --parity, --probe")
    if args.parity:
        parity(args.parity)
    if args.speed:
        speed(args.reps)
    if args.probe:
        if args.threads:
            torch.set_num_threads(args.threads)
        probe(args.probe, args.T, args.probe_steps, args.seed, args.max_videos, args.sizes, args.vis_layers,
              args.contexts, args.aud_layers)


if __name__ == "__main__":
    main()
