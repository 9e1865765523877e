"""Does the out-of-domain detector flag foreign clips and leave in-domain ones alone?

    python bench/ood.py --checkpoint checkpoints/mcd-synth --in-domain data/ood/eval/videos \
        --negatives data/ood/negatives --held-out-style data/ood/held-out/videos [--json OUT]

Every clip goes through `Pipeline.clip_features` (decode and encode, as the demo does) and the checkpoint's
detector (`Pipeline.detector`, the same `judge` the demo calls). Printed:
* AUROC, held-out in-domain clips against every negative clip, of the detector's score (the larger of the two
  modalities' score/threshold ratios, a clip a signal check flags counted as infinitely foreign) and of the feature
  distance alone;
* the flag rate (`out_of_domain`) of every negative category (bench/ood_negatives.py), with the rate at which the
  modality the category changed was the one flagged, and the reasons given;
* the flag rate of the held-out in-domain clips (`--in-domain` folders: the training world and style under a seed
  neither training nor the calibration used) and of held-out-*style* synthetic clips (`mcd synth --style held-out`,
  unseen glyphs, backgrounds and soundfont: reported, not a bar).

Must-show bars (issue 29): AUROC >= 0.99, every negative category flagged >= 95%, <= 2% of held-out in-domain
clips flagged. Encoded features are cached under --cache (default data/ood/features) by the encoders' ids and the
clip's content hash (`mcd.serving.calibrate_ood.clip_inputs`).
"""
from __future__ import annotations

import argparse
import json
import sys
from collections import Counter, defaultdict
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from mcd.serving import ood  # noqa: E402
from mcd.serving.calibrate_ood import clip_inputs  # noqa: E402
from mcd.serving.pipeline import Pipeline  # noqa: E402

PICTURE_SIDE = {"photo", "wallpaper", "screen", "black", "flat", "static"}
SOUND_SIDE = {"speech", "music", "noise", "silence", "no-audio"}


def auroc(pos: np.ndarray, neg: np.ndarray) -> float:
    """P(a negative scores above an in-domain clip), ties counted half (`pos` = in-domain, `neg` = foreign)."""
    pos, neg = np.asarray(pos, np.float64), np.asarray(neg, np.float64)
    greater = (neg[:, None] > pos[None, :]).sum() + 0.5 * (neg[:, None] == pos[None, :]).sum()
    return float(greater / (len(pos) * len(neg)))


def videos(folder: Path) -> list[Path]:
    folder = Path(folder)
    if not folder.is_dir():
        raise SystemExit(f"bench/ood.py: {folder} is not a folder")
    return sorted(folder.rglob("*.mp4"))


def judge(detector, rec: dict) -> ood.DomainReport:
    return detector.judge(rec["visual"], rec["audio"], rec["stats"], rec["timestamps"])


def feature_ratio(detector, rec: dict) -> float:
    """The feature distance alone: the larger score/threshold ratio, no signal checks."""
    return detector.judge(rec["visual"], rec["audio"]).score


def seconds_named(rows) -> float | None:
    """Of the verdicts flagged as "unlike" (either modality), the share that name the seconds that look foreign: a
    flag with no seconds leaves the user nothing to look at."""
    unlike = [v for _, r in rows for v in (r.picture, r.sound) if v.flagged and v.reason == "unlike"]
    return float(np.mean([bool(v.seconds) for v in unlike])) if unlike else None


def detector_score(report: ood.DomainReport) -> float:
    return float("inf") if any(v.flagged and v.reason != "unlike" for v in (report.picture, report.sound)) \
        else report.score


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--checkpoint", type=Path, default=Path("checkpoints/mcd-synth"))
    p.add_argument("--in-domain", type=Path, nargs="+", required=True)
    p.add_argument("--negatives", type=Path, required=True)
    p.add_argument("--held-out-style", type=Path)
    p.add_argument("--cache", type=Path, default=Path("data/ood/features"))
    p.add_argument("--json", type=Path)
    args = p.parse_args(argv)
    pipe = Pipeline(args.checkpoint, device="cpu")
    detector = pipe.detector
    if not isinstance(detector, ood.Detector):
        raise SystemExit(f"bench/ood.py: {args.checkpoint} has no format-{ood.FORMAT} ood calibration "
                         f"(run mcd calibrate-ood)")

    def run(paths: list[Path]) -> list[tuple[dict, ood.DomainReport]]:
        out = []
        for path in paths:
            rec = clip_inputs(pipe, path, args.cache)
            out.append((rec, judge(detector, rec)))
        return out

    inside = run([v for folder in args.in_domain for v in videos(folder)])
    categories: dict[str, list] = defaultdict(list)
    for path in videos(args.negatives):
        categories[path.parent.name].append(path)
    negatives = {c: run(paths) for c, paths in sorted(categories.items())}
    styled = run(videos(args.held_out_style)) if args.held_out_style else []

    all_neg = [r for rows in negatives.values() for r in rows]
    result = {
        "checkpoint": str(args.checkpoint), "n_in_domain": len(inside), "n_negatives": len(all_neg),
        "auroc": auroc([detector_score(r) for _, r in inside], [detector_score(r) for _, r in all_neg]),
        "auroc_features_only": auroc([feature_ratio(detector, x) for x, _ in inside],
                                     [feature_ratio(detector, x) for x, _ in all_neg]),
        "in_domain_flag_rate": float(np.mean([r.flagged for _, r in inside])),
        "in_domain_flagged": [(Path(x["path"]).name, r.warning()) for x, r in inside if r.flagged],
        "held_out_style_flag_rate": float(np.mean([r.flagged for _, r in styled])) if styled else None,
        "categories": {},
    }
    for c, rows in negatives.items():
        side = "picture" if c in PICTURE_SIDE else "sound" if c in SOUND_SIDE else None
        reasons = Counter(getattr(r, m).sentence(m) for _, r in rows for m in ("picture", "sound")
                          if getattr(r, m).flagged)
        result["categories"][c] = {
            "n": len(rows), "flag_rate": float(np.mean([r.flagged for _, r in rows])),
            "changed": side or "both",
            "side_flag_rate": float(np.mean([getattr(r, side).flagged for _, r in rows])) if side else None,
            "other_side_flag_rate": float(np.mean([getattr(r, "sound" if side == "picture" else "picture").flagged
                                                   for _, r in rows])) if side else None,
            "reasons": dict(reasons.most_common()),
            "seconds_named": seconds_named(rows),
        }
    print(report(result))
    if args.json:
        args.json.write_text(json.dumps(result, indent=1) + "\n")
    return 0


def report(r: dict) -> str:
    pct = lambda x: "-" if x is None else f"{100 * x:.1f}%"   # noqa: E731
    lines = [f"checkpoint {r['checkpoint']}: {r['n_in_domain']} held-out in-domain clips, {r['n_negatives']} "
             f"negatives", "",
             f"AUROC (in-domain vs negatives): {r['auroc']:.4f}   feature distance alone: "
             f"{r['auroc_features_only']:.4f}", "",
             "| negative category | changed | clips | flagged | its side flagged | other side flagged | "
             "'unlike' flags naming seconds | reasons |",
             "| --- | --- | --- | --- | --- | --- | --- | --- |"]
    for c, v in r["categories"].items():
        reasons = "; ".join(f"{k} ({n})" for k, n in v["reasons"].items())
        lines.append(f"| {c} | {v['changed']} | {v['n']} | {pct(v['flag_rate'])} | {pct(v['side_flag_rate'])} | "
                     f"{pct(v['other_side_flag_rate'])} | {pct(v.get('seconds_named'))} | {reasons} |")
    lines += ["", f"held-out in-domain clips flagged: {pct(r['in_domain_flag_rate'])} of {r['n_in_domain']}"]
    for name, why in r["in_domain_flagged"]:
        lines.append(f"  {name}: {why}")
    lines.append(f"held-out-style synthetic clips flagged (reported, not a bar): {pct(r['held_out_style_flag_rate'])}")
    worst = min(v["flag_rate"] for v in r["categories"].values()) if r["categories"] else 0.0
    lines += ["", f"bars: AUROC >= 0.99: {'met' if r['auroc'] >= 0.99 else 'NOT met'}; every category >= 95%: "
                  f"{'met' if worst >= 0.95 else 'NOT met'} (lowest {pct(worst)}); in-domain <= 2%: "
                  f"{'met' if r['in_domain_flag_rate'] <= 0.02 else 'NOT met'}"]
    return "\n".join(lines)


if __name__ == "__main__":
    raise SystemExit(main())
