"""Train and evaluate MCD and its baselines on the same features in one run; print one table.

    python bench/ablations.py --config configs/synth-default.json [--epochs N] [--variants mcd,question-only,...]

Variants (DESIGN §3, §7): the MCD student and, from the same run, its teacher head (decision-level fusion);
question-only; MCD with audio removed; MCD with vision removed; plus the ablation flags listed in ABLATIONS when
asked for (`--variants all`). Every variant uses the recipe's features (`mcd extract` must have run for the train,
val and test splits) and is scored on the test split with the MUSIC-AVQA per-type table.
"""
from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from mcd.evaluate import compute_report, format_comparison  # noqa: E402
from mcd.inference import predict_split  # noqa: E402
from mcd.recipe import load_recipe  # noqa: E402
from mcd.train import train  # noqa: E402

BASELINES: dict[str, list[str]] = {
    "mcd": [],
    "question-only": ["model.question_only=true"],
    "audio-removed": ["model.use_audio=false"],
    "vision-removed": ["model.use_visual=false"],
}
ABLATIONS: dict[str, list[str]] = {
    "no-association-residual": ["model.association_residual=false"],
    "no-association": ["model.n_blocks=0"],
    "no-contrastive": ["model.contrastive=false"],
    "low-level-only": ["model.hierarchy=\"low\""],
    "high-level-only": ["model.hierarchy=\"high\""],
    "no-hints": ["model.hints=false"],
    "no-text-objects": ["model.text_objects=\"none\""],
    "separate-aggregators": ["model.shared_aggregator=false"],
    "kd-mutual": ["model.kd_mode=\"mutual\""],
    "no-kd": ["model.lambda_kd=0"],
    "decision-fusion-kept": ["model.decision_fusion=true"],
}


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--config", required=True)
    ap.add_argument("--variants", default="baselines", help="comma list, 'baselines' (default) or 'all'")
    ap.add_argument("--epochs", type=int, help="override train.epochs for every variant")
    ap.add_argument("--out", default="runs/ablations", help="folder for the variants' runs and the JSON results")
    ap.add_argument("--set", action="append", default=[], help="extra recipe overrides for every variant")
    args = ap.parse_args()
    every = {**BASELINES, **ABLATIONS}
    names = (list(BASELINES) if args.variants == "baselines" else list(every) if args.variants == "all"
             else args.variants.split(","))
    unknown = [n for n in names if n not in every]
    if unknown:
        ap.error(f"unknown variants {unknown}; known: {sorted(every)}")
    reports, timings = {}, {}
    for name in names:
        out = Path(args.out) / name
        overrides = [*args.set, *every[name], f"out={out}"] + ([f"train.epochs={args.epochs}"] if args.epochs else [])
        recipe = load_recipe(args.config, overrides)
        start = time.perf_counter()
        train(recipe, progress=False)
        rows, records = predict_split(out / "best", recipe.data.root, recipe.data.test_split,
                                      features=recipe.data.features, progress=False)
        timings[name] = time.perf_counter() - start
        reports[name] = compute_report(rows, records)
        if name == "mcd":  # the teacher head of the same run: decision-level audio-visual fusion
            teacher_rows = [{**r, "pred": r["teacher_pred"]} for r in rows]
            reports["mcd-teacher (decision fusion)"] = compute_report(teacher_rows, records)
        print(f"{name}: overall {reports[name]['overall']:.4f} ({timings[name]:.0f} s)", flush=True)
    print()
    print(format_comparison(reports))
    Path(args.out).mkdir(parents=True, exist_ok=True)
    (Path(args.out) / "ablations.json").write_text(json.dumps({"reports": reports, "seconds": timings}, indent=2))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
