"""Linear probes on frozen synth encoder features, and encoder throughput (issue 4, Must-show 3 and 4).

    python bench/encoders.py --data /tmp/synth-small --encoders /tmp/synth-encoders

The probes are trained on the benchmark's `train` clips and scored on its `test` clips (held out from both
encoder pretraining, which scores on `val`, and probe training). Visual: a linear classifier per 7x7 grid cell
(the cell's instrument or background, ambiguous part-covered cells left out) and one per player (the cell
features averaged over the player's bounding box, weighted by cover: a "player crop"); audio: a linear multi-label classifier per 1-s window, scored as top-1
instrument on windows where exactly one instrument sounds throughout. The same probes on a randomly
initialised encoder of the same architecture show what pretraining adds. Throughput: median over clips of
decode time and of each encoder's time on one clip's T frames / windows, on this CPU.
"""
from __future__ import annotations

import argparse
import json
import statistics
import sys
import time
from pathlib import Path

import torch
import torch.nn.functional as F
from safetensors.torch import load_file
from tqdm import tqdm

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from mcd import media  # noqa: E402
from mcd.encoders import build_encoder  # noqa: E402
from mcd.encoders.labels import (  # noqa: E402
    CLEAR, IGNORE, PRESENT, LabelSpace, audio_targets, bbox_cover, cell_labels, read_scenes, single_instrument)


def parse_args() -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--data", type=Path, required=True, help="benchmark folder (scenes.jsonl, videos/)")
    p.add_argument("--encoders", type=Path, required=True, help="folder written by `mcd pretrain-encoders`")
    p.add_argument("--T", type=int, default=10)
    p.add_argument("--max-videos", type=int, default=None, help="per split")
    p.add_argument("--probe-steps", type=int, default=300)
    p.add_argument("--seed", type=int, default=0)
    return p.parse_args()


def extract(scenes, data: Path, encoders: dict, space: LabelSpace, T: int, desc: str):
    """Features of every clip for each named (visual, audio) encoder pair, labels, and per-clip timings."""
    feats = {name: {"visual": [], "audio": []} for name in encoders}
    cells, presence, single, times = [], [], [], {"decode": [], "visual": [], "audio": []}
    players = []  # (frame row, instrument class, cell cover [49]) for every player in every frame
    for s in tqdm(scenes, desc=desc, unit="clip"):
        for t in range(T):
            row = len(cells) * T + t
            players += [(row, space.visual.index(p["instrument"]), torch.from_numpy(bbox_cover(p["bbox"], s.size)))
                        for p in s.players]
        t0 = time.perf_counter()
        clip = media.decode(data / "videos" / f"{s.video_id}.mp4", T=T)
        times["decode"].append(time.perf_counter() - t0)
        for name, (v, a) in encoders.items():
            t0 = time.perf_counter()
            fv = v.encode(clip.frames)
            t1 = time.perf_counter()
            fa = a.encode(clip.audio_segments)
            t2 = time.perf_counter()
            if name == "pretrained":
                times["visual"].append(t1 - t0)
                times["audio"].append(t2 - t1)
            feats[name]["visual"].append(fv)
            feats[name]["audio"].append(fa)
        tg = audio_targets(s, clip.timestamps, space)
        cells.append(torch.from_numpy(cell_labels(s, space)).expand(T, -1))
        presence.append(torch.from_numpy(tg.presence))
        single.append(torch.from_numpy(single_instrument(tg)))
    feats = {n: {m: torch.cat(x) for m, x in f.items()} for n, f in feats.items()}
    for f in feats.values():
        f["player"] = player_features(f["visual"], players)
    labels = torch.tensor([cls for _, cls, _ in players])
    return feats, torch.cat(cells), torch.cat(presence), torch.cat(single), labels, times


def player_features(visual: torch.Tensor, players) -> torch.Tensor:
    """One vector per player and frame: the cell features averaged with the box's cover of each cell as weight
    (a "player crop" read off the frozen grid)."""
    rows = torch.tensor([r for r, _, _ in players])
    cover = torch.stack([c for _, _, c in players]).float()              # [M, 49]
    cover = cover * (cover >= CLEAR)
    return (visual[rows] * cover[..., None]).sum(1) / cover.sum(1, keepdim=True)


def fit_linear(x: torch.Tensor, y: torch.Tensor, num_out: int, multilabel: bool, steps: int, seed: int):
    """Logistic regression (softmax or per-label sigmoid) with standardised inputs; full-batch Adam."""
    torch.manual_seed(seed)
    mu, sd = x.mean(0), x.std(0).clamp_min(1e-6)
    layer = torch.nn.Linear(x.shape[1], num_out)
    opt = torch.optim.Adam(layer.parameters(), lr=0.05)
    xs = (x - mu) / sd
    for _ in range(steps):
        out = layer(xs)
        loss = F.binary_cross_entropy_with_logits(out, y) if multilabel else F.cross_entropy(out, y)
        loss = loss + 1e-4 * layer.weight.pow(2).sum()
        opt.zero_grad()
        loss.backward()
        opt.step()
    return lambda z: layer((z - mu) / sd).detach()


def probe(train, test, space: LabelSpace, steps: int, seed: int) -> dict[str, float]:
    (ftr, ctr, ptr, _, ytr), (fte, cte, pte, ste, yte) = train, test
    nb = space.num_backgrounds
    known_tr, known_te = ctr.flatten() != IGNORE, cte.flatten() != IGNORE  # ambiguous cells carry no label
    v = fit_linear(ftr["visual"].flatten(0, 1)[known_tr], ctr.flatten()[known_tr], len(space.visual), False,
                   steps, seed)
    pred = v(fte["visual"].flatten(0, 1)[known_te]).argmax(1)
    true = cte.flatten()[known_te]
    inst = true >= nb
    pl = fit_linear(ftr["player"], ytr, len(space.visual), False, steps, seed)
    player_acc = float((pl(fte["player"]).argmax(1) == yte).float().mean())
    a = fit_linear(ftr["audio"], (ptr >= PRESENT).float(), len(space.audio), True, steps, seed)
    logits = a(fte["audio"])
    one = ste >= 0
    return {
        "visual_cell_acc": float((pred == true).float().mean()),
        "visual_instrument_cell_acc": float((pred[inst] == true[inst]).float().mean()),
        "visual_player_acc": player_acc,
        "players": len(yte),
        "audio_single_acc": float((logits[one, :-1].argmax(1) == ste[one]).float().mean()),
        "audio_label_acc": float(((logits.sigmoid() >= 0.5) == (pte >= PRESENT)).float().mean()),
        "single_segments": int(one.sum()),
    }


def main() -> None:
    args = parse_args()
    torch.manual_seed(args.seed)
    scenes = read_scenes(args.data / "scenes.jsonl")
    train = [s for s in scenes if s.split == "train"][: args.max_videos]
    test = [s for s in scenes if s.split == "test"][: args.max_videos]
    specs = json.loads((args.encoders / "encoders.json").read_text())
    pre_v = build_encoder(specs["visual"], load_file(args.encoders / "visual.safetensors"))
    pre_a = build_encoder(specs["audio"], load_file(args.encoders / "audio.safetensors"))
    strip = lambda s: {k: v for k, v in s.items() if k not in ("digest", "provenance")}  # noqa: E731
    rnd_v, rnd_a = build_encoder(strip(specs["visual"])), build_encoder(strip(specs["audio"]))
    prov = specs["visual"].get("provenance", {})
    space = (LabelSpace(tuple(prov["visual_classes"]), tuple(prov["audio_classes"])) if "visual_classes" in prov
             else LabelSpace.from_scenes(scenes))
    encoders = {"pretrained": (pre_v, pre_a), "random init": (rnd_v, rnd_a)}
    tr_feats, *tr_labels, _ = extract(train, args.data, encoders, space, args.T, "train clips")
    te_feats, *te_labels, times = extract(test, args.data, encoders, space, args.T, "test clips")

    print(f"\nLinear probes: {len(train)} train clips -> {len(test)} held-out test clips, T={args.T} "
          f"({args.data})")
    print("| encoder | visual cell acc | visual instrument-cell acc | visual per-player acc (n) | "
          "audio single-instrument acc (n) | audio label acc |")
    print("|---|---|---|---|---|---|")
    for name in encoders:
        r = probe((tr_feats[name], *tr_labels), (te_feats[name], *te_labels), space, args.probe_steps, args.seed)
        print(f"| {name} | {r['visual_cell_acc']:.3f} | {r['visual_instrument_cell_acc']:.3f} | "
              f"{r['visual_player_acc']:.3f} ({r['players']}) | "
              f"{r['audio_single_acc']:.3f} ({r['single_segments']}) | {r['audio_label_acc']:.3f} |")

    med = {k: statistics.median(v) for k, v in times.items()}
    per_clip = med["decode"] + med["visual"] + med["audio"]
    print(f"\nThroughput on this CPU ({torch.get_num_threads()} torch threads), median per clip of T={args.T}:")
    print("| stage | ms / clip | rate |")
    print("|---|---|---|")
    print(f"| decode (mcd.media) | {1000 * med['decode']:.1f} | {1 / med['decode']:.1f} clips/s |")
    print(f"| synth visual encoder | {1000 * med['visual']:.1f} | {args.T / med['visual']:.0f} frames/s |")
    print(f"| synth audio encoder | {1000 * med['audio']:.1f} | {args.T / med['audio']:.0f} segments/s |")
    print(f"| all, one process | {1000 * per_clip:.1f} | {1 / per_clip:.2f} clips/s "
          f"(6,000 clips: {6000 * per_clip / 60:.1f} min) |")


if __name__ == "__main__":
    main()
