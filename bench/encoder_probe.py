"""Which frozen encoders to ship: synth CNNs vs pretrained (efficientnet-lite0, musicnn) vs both (issue 27, point 2).

    python bench/encoder_probe.py --train /work/abl/data/synth-quick \\
        --default-test /work/abl/data/synth-quick --default-splits val,test \\
        --held-out /tmp/enctable/heldout \\
        --synth synth-v2=/work/abl/runs/synth-quick/encoders --synth synth-v11=checkpoints/mcd-synth \\
        --cache /tmp/enctable/features.pt

Every clip is decoded once and run through every encoder; the features are cached (`--cache`), so probe settings
can be changed without re-extracting. Probes are multi-label logistic regressions (one sigmoid per instrument,
standardised inputs, full-batch Adam, fixed seed), trained on the `train` split of `--train` (default style) and
scored on (a) default-style clips never trained on (`--default-splits` of `--default-test`) and (b) held-out-style
clips (`mcd synth --style held-out`).

- Visual: instrument presence per 7x7 grid cell. Target: a multi-hot over the instruments seen on screen in the
  training clips, from `cell_labels` (a cell >= 40% covered by a player's box holds that instrument; a cell touched
  by no box is background = no instrument; part-covered cells are left out, as in `mcd pretrain-encoders`).
- Audio: instrument presence per 1-s window over the instruments heard in the training clips (the voiceover is not
  an instrument and is not scored). A class counts as present when it sounds >= 50% of the window, absent when it
  does not sound at all; the (window, class) pairs in between are left out of training and scoring.

Classes of the test clips that the training clips never show (hear) are left out. Metrics, chosen so the "absent"
majority (most cells are background, most instruments are silent in most windows) cannot carry them:
macro F1 (threshold 0.5, averaged over the classes with at least one positive in the scored set), macro average
precision (threshold-free: survives a calibration shift on the held-out style), and exact-set accuracy over the
items with at least one instrument present (the predicted set of instruments equals the true set).

Speed: CPU-seconds per 10-s clip (`time.process_time`, one torch thread, so CPU-seconds ~ wall seconds on an idle
core) of each encoder's `encode` on that clip's T frames / windows, median over all extracted clips; decoding is
reported separately and is shared by all encoders.
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

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from mcd.encoders.labels import IGNORE, PRESENT  # noqa: E402

# ----------------------------------------------------------------------------- probe and metrics (tested)


def fit_multilabel_probe(x: torch.Tensor, y: torch.Tensor, mask: torch.Tensor | None = None, steps: int = 300,
                         seed: int = 0, lr: float = 0.05, l2: float = 1e-4):
    """Multi-label logistic regression: x [N, D] float, y [N, C] {0, 1}, mask [N, C] bool (False = not scored).

    Inputs are standardised with the training statistics; full-batch Adam for `steps` steps from a seeded init.
    Returns a function features -> logits [M, C]."""
    gen = torch.Generator().manual_seed(seed)
    x = x.float()
    mu, sd = x.mean(0), x.std(0).clamp_min(1e-6)
    xs = (x - mu) / sd
    layer = torch.nn.Linear(x.shape[1], y.shape[1])
    with torch.no_grad():
        bound = 1 / x.shape[1] ** 0.5
        layer.weight.uniform_(-bound, bound, generator=gen)
        layer.bias.zero_()
    m = torch.ones_like(y, dtype=torch.bool) if mask is None else mask
    w = m.float() / m.float().sum().clamp_min(1)
    opt = torch.optim.Adam(layer.parameters(), lr=lr)
    for _ in range(steps):
        loss = (F.binary_cross_entropy_with_logits(layer(xs), y.float(), reduction="none") * w).sum()
        loss = loss + l2 * layer.weight.pow(2).sum()
        opt.zero_grad()
        loss.backward()
        opt.step()
    layer.eval()

    @torch.no_grad()
    def predict(z: torch.Tensor) -> torch.Tensor:
        return layer((z.float() - mu) / sd)

    return predict


def average_precision(scores: torch.Tensor, labels: torch.Tensor) -> float:
    """AP of one class: mean of the precision at the rank of each positive (scores sorted high to low)."""
    order = scores.argsort(descending=True, stable=True)
    hits = labels[order].float()
    if hits.sum() == 0:
        return float("nan")
    prec = hits.cumsum(0) / torch.arange(1, len(hits) + 1)
    return float((prec * hits).sum() / hits.sum())


def multilabel_scores(logits: torch.Tensor, y: torch.Tensor, mask: torch.Tensor | None = None) -> dict[str, float]:
    """Presence scores that the absent majority does not dominate.

    macro_f1 / macro_ap: averaged over the classes with >= 1 scored positive (F1 at sigmoid >= 0.5);
    exact_set: fraction of the items with >= 1 present class whose predicted set equals the true set (pairs with
    mask False are ignored on both sides); also micro F1, the counts, and the plain per-(item, class) accuracy
    for comparison (that one IS dominated by the absent majority)."""
    m = torch.ones_like(y, dtype=torch.bool) if mask is None else mask.bool()
    yb, pred = y.bool(), logits >= 0
    tp = (pred & yb & m).sum(0).float()
    fp = (pred & ~yb & m).sum(0).float()
    fn = (~pred & yb & m).sum(0).float()
    has_pos = (yb & m).sum(0) > 0
    f1 = 2 * tp / (2 * tp + fp + fn).clamp_min(1)
    aps = [average_precision(logits[m[:, c], c], yb[m[:, c], c]) for c in range(y.shape[1]) if has_pos[c]]
    items = (yb & m).any(1)
    exact = ((pred == yb) | ~m).all(1)
    return {
        "macro_f1": float(f1[has_pos].mean()) if has_pos.any() else float("nan"),
        "macro_ap": sum(aps) / len(aps) if aps else float("nan"),
        "exact_set": float(exact[items].float().mean()) if items.any() else float("nan"),
        "micro_f1": float(2 * tp.sum() / (2 * tp.sum() + fp.sum() + fn.sum()).clamp_min(1)),
        "pair_acc": float(((pred == yb) & m).sum() / m.sum().clamp_min(1)),
        "classes": int(has_pos.sum()),
        "items": int(items.sum()),
    }


def window_presence(presence: torch.Tensor, classes: list[int]) -> tuple[torch.Tensor, torch.Tensor]:
    """presence [N, C_all] fraction of each 1-s window a class sounds -> (y [N, C], mask [N, C]) over `classes`:
    present when >= PRESENT, absent when silent, masked in between."""
    p = presence[:, classes]
    return (p >= PRESENT).float(), (p >= PRESENT) | (p == 0)


# ----------------------------------------------------------------------------- extraction


def load_synth_pair(path: Path):
    """(visual, audio) synth encoders from a `mcd pretrain-encoders` folder or a checkpoint folder."""
    from safetensors.torch import load_file

    from mcd.encoders import build_encoder

    if (path / "encoders.json").exists():
        specs = json.loads((path / "encoders.json").read_text())
        return tuple(build_encoder(specs[m], load_file(path / f"{m}.safetensors")) for m in ("visual", "audio"))
    specs = json.loads((path / "config.json").read_text())["encoders"]
    tensors = load_file(path / "model.safetensors")
    out = []
    for m in ("visual", "audio"):
        pre = f"encoders.{m}."
        out.append(build_encoder(specs[m], {k[len(pre):]: v for k, v in tensors.items() if k.startswith(pre)}))
    return tuple(out)


def random_synth_pair(path: Path):
    """Same architecture as `path`'s synth encoders, random weights (seeded): what the architecture alone gives."""
    from mcd.encoders import build_encoder

    v, a = load_synth_pair(path)
    torch.manual_seed(0)
    strip = lambda s: {k: x for k, x in s.items() if k not in ("digest", "provenance")}  # noqa: E731
    return build_encoder(strip(v.spec())), build_encoder(strip(a.spec()))


def build_encoders(synth: list[tuple[str, Path]]):
    """name -> (modality, callable(frames or segments) -> features), in table order."""
    from mcd.encoders.efficientnet_lite import EfficientNetLite0Encoder
    from mcd.encoders.musicnn import MusiCNNEncoder, context_windows

    encs = {}
    for name, path in synth:
        v, a = load_synth_pair(path)
        encs[f"{name}/visual"] = ("visual", v.encode)
        encs[f"{name}/audio"] = ("audio", a.encode)
    if synth:
        v, a = random_synth_pair(synth[0][1])
        encs["synth-random/visual"] = ("visual", v.encode)
        encs["synth-random/audio"] = ("audio", a.encode)
    eff = EfficientNetLite0Encoder()            # the backend's default: 160 px, stage5 -> 112-d
    encs["efficientnet-lite0/visual"] = ("visual", eff.encode)
    mus = MusiCNNEncoder()                      # default: context "self", layer "pool" -> 1506-d

    @torch.inference_mode()
    def musicnn_both(segments):
        # one forward gives both layers: "pool" (the backend's default, 1506-d) and "penultimate" (200-d)
        out = mus.net(mus.logmel(context_windows(torch.as_tensor(segments), mus.context)))
        return {"pool": torch.cat([out["max_pool"], out["mean_pool"]], 1).float(),
                "penultimate": out["penultimate"].float()}

    encs["musicnn/audio"] = ("audio", musicnn_both)
    return encs


def extract(data: Path, splits: list[str], encs: dict, T: int, desc: str, max_videos: int | None):
    """Decode each clip once; run every encoder. Returns features, labels (scene-derived) and CPU timings."""
    from tqdm import tqdm

    from mcd import media
    from mcd.encoders.labels import LabelSpace, audio_targets, cell_labels, read_scenes

    scenes = [s for s in read_scenes(data / "scenes.jsonl") if s.split in splits][:max_videos]
    feats = {k: [] for k in encs}
    cells, presence, ids = [], [], []
    cpu = {k: [] for k in ["decode", *encs]}
    space = None
    for s in tqdm(scenes, desc=desc, unit="clip", mininterval=10):
        c0 = time.process_time()
        clip = media.decode(data / "videos" / f"{s.video_id}.mp4", T=T)
        cpu["decode"].append(time.process_time() - c0)
        for name, (mod, fn) in encs.items():
            c0 = time.process_time()
            f = fn(clip.frames if mod == "visual" else clip.audio_segments)
            cpu[name].append(time.process_time() - c0)
            feats[name].append(f)
        # labels as names, so that train and test need not share a LabelSpace
        space = LabelSpace.from_scenes([s])
        cl = cell_labels(s, space)
        cells.append([space.visual[c] if c != IGNORE else None for c in cl])
        tg = audio_targets(s, clip.timestamps, space)
        presence.append({c: tg.presence[:, i].tolist() for i, c in enumerate(space.audio)})
        ids.append(s.video_id)
    out = {}
    for name, fs in feats.items():
        if isinstance(fs[0], dict):
            for layer in fs[0]:
                out[f"{name.split('/')[0]}-{layer}/audio"] = torch.cat([f[layer] for f in fs])
        else:
            out[name] = torch.cat(fs)
    return {"features": out, "cells": cells, "presence": presence, "ids": ids, "cpu": cpu, "T": T}


def labels(split: dict, vis_classes: list[str], aud_classes: list[str]):
    """Visual (y, mask) per cell row [N*T*49] and audio (y, mask) per window [N*T] over the given class names."""
    T = split["T"]
    vocab = ["<bg>"] + vis_classes
    rows = []
    for cl in split["cells"]:
        r = [IGNORE if c is None else (vocab.index(c) if c in vocab else (0 if c.startswith("background:") else -2))
             for c in cl]
        rows += [r] * T
    cells = torch.tensor(rows).flatten()
    vy = (cells[:, None] == torch.arange(1, len(vocab))[None]).float()
    vmask = ((cells != IGNORE) & (cells != -2))[:, None].expand_as(vy).clone()
    pres = torch.zeros(len(split["presence"]) * T, len(aud_classes))
    for n, p in enumerate(split["presence"]):
        for j, c in enumerate(aud_classes):
            if c in p:
                pres[n * T:(n + 1) * T, j] = torch.tensor(p[c])
    ay, amask = window_presence(pres, list(range(len(aud_classes))))
    return (vy, vmask), (ay, amask)


def class_names(split: dict) -> tuple[list[str], list[str]]:
    vis = sorted({c for cl in split["cells"] for c in cl if c and not c.startswith("background:")})
    aud = sorted({c for p in split["presence"] for c, v in p.items() if c != "voiceover" and max(v) >= PRESENT})
    return vis, aud


# ----------------------------------------------------------------------------- report


def feature_sets(features: dict, combos: list[tuple[str, list[str]]]) -> dict:
    out = dict(features)
    for name, parts in combos:
        if all(p in features for p in parts):
            out[name] = torch.cat([features[p] for p in parts], dim=-1)
    return out


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--train", type=Path, required=True, help="default-style benchmark; its train split trains probes")
    p.add_argument("--default-test", type=Path, help="default-style benchmark to score on (default: --train)")
    p.add_argument("--default-splits", default="test", help="comma-separated splits of --default-test")
    p.add_argument("--held-out", type=Path, help="held-out-style benchmark (`mcd synth --style held-out`)")
    p.add_argument("--held-out-splits", default="train,val,test")
    p.add_argument("--synth", action="append", default=[], metavar="NAME=DIR",
                   help="synth encoders: a `mcd pretrain-encoders` folder or a checkpoint folder (repeatable)")
    p.add_argument("--T", type=int, default=10)
    p.add_argument("--max-videos", type=int, default=None, help="per benchmark")
    p.add_argument("--steps", type=int, default=300)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--threads", type=int, default=1)
    p.add_argument("--cache", type=Path, help="feature cache (.pt); reused when present")
    p.add_argument("--json", type=Path, help="write the numbers here")
    p.add_argument("--only", nargs="+", help="probe only these feature sets (e.g. efficientnet-lite0/visual)")
    args = p.parse_args()
    torch.set_num_threads(args.threads)
    synth = [(s.split("=", 1)[0], Path(s.split("=", 1)[1])) for s in args.synth]

    if args.cache and args.cache.exists():
        data = torch.load(args.cache, weights_only=False)
    else:
        encs = build_encoders(synth)
        data = {"train": extract(args.train, ["train"], encs, args.T, "train", args.max_videos),
                "default": extract(args.default_test or args.train, args.default_splits.split(","), encs, args.T,
                                   "default test", args.max_videos)}
        if args.held_out:
            data["held-out"] = extract(args.held_out, args.held_out_splits.split(","), encs, args.T, "held-out",
                                       args.max_videos)
        if args.cache:
            torch.save(data, args.cache)

    names = [n for n, _ in synth]
    s0 = names[0] if names else None
    vis_combos = [(f"efficientnet-lite0+{n}/visual", ["efficientnet-lite0/visual", f"{n}/visual"]) for n in names]
    aud_combos = [(f"musicnn-pool+{n}/audio", ["musicnn-pool/audio", f"{n}/audio"]) for n in names]
    if s0:
        aud_combos.append((f"musicnn-penultimate+{s0}/audio", ["musicnn-penultimate/audio", f"{s0}/audio"]))
    sets = {k: feature_sets(v["features"], vis_combos + aud_combos) for k, v in data.items()}
    vis_classes, aud_classes = class_names(data["train"])
    lab = {k: labels(v, vis_classes, aud_classes) for k, v in data.items()}
    tests = [k for k in data if k != "train"]
    cpu = {}
    for split in data.values():
        for k, v in split["cpu"].items():
            cpu.setdefault(k, []).extend(v)
    med = {k: statistics.median(v) for k, v in cpu.items()}
    med["musicnn-pool/audio"] = med["musicnn-penultimate/audio"] = med.pop("musicnn/audio")

    def cost(name: str) -> float:
        mod = name.split("/")[1]
        return sum(med[f"{part}/{mod}"] for part in name.split("/")[0].split("+"))

    results = {"train_clips": len(data["train"]["ids"]), "clips": {k: len(v["ids"]) for k, v in data.items()},
               "visual_classes": vis_classes, "audio_classes": aud_classes, "steps": args.steps, "seed": args.seed,
               "cpu_s_per_clip": med, "visual": {}, "audio": {}}
    for mod, li in (("visual", 0), ("audio", 1)):
        rows = [k for k in sets["train"] if k.endswith(f"/{mod}") and (not args.only or k in args.only)]
        for name in rows:
            x = sets["train"][name]
            x = x.flatten(0, 1) if mod == "visual" else x
            y, m = lab["train"][li]
            keep = m.any(1)
            probe = fit_multilabel_probe(x[keep], y[keep], m[keep], args.steps, args.seed)
            r = {"dim": x.shape[1], "cpu_s_per_clip": cost(name)}
            for t in tests:
                xt = sets[t][name]
                xt = xt.flatten(0, 1) if mod == "visual" else xt
                yt, mt = lab[t][li]
                kt = mt.any(1)
                r[t] = multilabel_scores(probe(xt[kt]), yt[kt], mt[kt])
            results[mod][name] = r
            print(name, json.dumps({t: {k: round(v, 3) for k, v in r[t].items()} for t in tests}), flush=True)

    print(f"\nProbes: {args.steps} full-batch Adam steps, seed {args.seed}; trained on {results['train_clips']} "
          f"default-style train clips; scored on " + ", ".join(f"{k} {v} clips" for k, v in results["clips"].items()
                                                            if k != "train"))
    print(f"decode: {med['decode']:.3f} CPU-s per clip (shared by every encoder)")
    what = {"visual": f"instrument presence per grid cell ({len(vis_classes)} instruments)",
            "audio": f"instrument presence per 1-s window ({len(aud_classes)} instruments)"}
    for mod in ("visual", "audio"):
        print(f"\n{mod}: {what[mod]}; macro F1 / macro AP / exact-set accuracy on items with an instrument")
        head = " | ".join(f"{t} F1 | {t} AP | {t} exact" for t in tests)
        print(f"| features | dim | {head} | CPU-s / clip |")
        print("|---|---|" + "---|" * (3 * len(tests)) + "---|")
        for name, r in results[mod].items():
            cells = " | ".join(f"{r[t]['macro_f1']:.3f} | {r[t]['macro_ap']:.3f} | {r[t]['exact_set']:.3f}"
                               for t in tests)
            print(f"| {name.rsplit('/', 1)[0]} | {r['dim']} | {cells} | {r['cpu_s_per_clip']:.3f} |")
        if not results[mod]:
            continue
        print("scored items (classes): " + ", ".join(
            f"{t} {next(iter(results[mod].values()))[t]['items']} ({next(iter(results[mod].values()))[t]['classes']})"
            for t in tests))
    if args.json:
        args.json.write_text(json.dumps(results, indent=1))


if __name__ == "__main__":
    main()
