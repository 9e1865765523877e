"""How much does the sound deletion test delete? (issue 31)

    python bench/clip_mean_distance.py --data DIR --cache DIR [--split train]

bench/clues.py deletes a second by replacing its audio features with the clip's mean second. When the named source
sounds in most of the clip, the mean second is mostly that source, so its sounding seconds may sit closer to the
mean than its silent ones: deleting them then changes the input less than deleting the seconds the temporal test
counts as wrong. This prints, per (clip, named source) pair whose source sounds in 5-95% of the clip (the temporal
test's filter, applied to every named source rather than to questions naming one), whether the sounding seconds (>= half the second) are on average closer to the clip mean than
the silent ones, split at a sounding share of one half. DIR: `mcd synth` clips with scene graphs and their
features (`mcd extract --encoders ...`). Results: docs/clues.md.
"""
import argparse
import sys
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
from mcd.data.music_avqa import load_annotations
from mcd.data.features import FeatureCache
from mcd.synth.grounding import SceneGrounding


def pairs(records, grounding, load) -> list[tuple[float, float, float]]:
    """(sounding share, mean distance of the sounding seconds to the clip mean, of the silent ones) per pair."""
    out, seen = [], set()
    for r in records:
        for word in r.keywords:
            a = grounding.attributes(r.video_id, word)
            if a is None or a["sounds"] <= 0 or (r.video_id, word) in seen:
                continue
            segments = torch.as_tensor(a["segments"])
            share = float(segments.mean())          # bench/clues.py's temporal filter: the mean sounding fraction
            sounding = segments >= 0.5
            if not 0.05 < share < 0.95 or sounding.all() or not sounding.any():
                continue
            seen.add((r.video_id, word))
            audio = load(r.video_id)["audio"].float()
            dist = (audio - audio.mean(dim=0)).norm(dim=-1)
            out.append((share, float(dist[sounding].mean()), float(dist[~sounding].mean())))
    return out


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--data", type=Path, required=True)
    p.add_argument("--cache", type=Path, required=True)
    p.add_argument("--split", default="train")
    args = p.parse_args()
    annotations = args.data / f"avqa-{args.split}.json"
    for path, what in ((annotations, "the split's questions (mcd synth --out DIR)"),
                       (args.data / "scenes.jsonl", "the scene graphs (mcd synth --out DIR)"),
                       (args.cache, "the features (mcd extract --cache DIR)")):
        if not path.exists():
            p.error(f"{path} not found: {what}")
    records = load_annotations(annotations)
    grounding = SceneGrounding.from_benchmark(args.data, T=10)
    rows = torch.tensor(pairs(records, grounding, FeatureCache(args.cache).load))
    print(f"{args.data} ({args.split}): {len(rows)} (clip, named source) pairs sounding in 5-95% of the clip\n")
    print("| sounding share | pairs | sounding seconds closer to the clip mean | mean distance: sounding | silent |")
    print("|---|---:|---:|---:|---:|")
    for name, keep in (("5-50%", rows[:, 0] <= 0.5), ("50-95%", rows[:, 0] > 0.5), ("all", rows[:, 0] > 0)):
        r = rows[keep]
        print(f"| {name} | {len(r)} | {(r[:, 1] < r[:, 2]).float().mean():.1%} | {r[:, 1].mean():.2f} | "
              f"{r[:, 2].mean():.2f} |")


if __name__ == "__main__":
    main()
