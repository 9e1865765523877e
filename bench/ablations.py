"""Train and evaluate MCD and its baselines on the same features in one run; print one table.

    python bench/ablations.py --config configs/synth-default.json [--epochs N] [--variants mcd,question-only,...]
                              [--jobs 2]

Variants (docs/model.md): the MCD student and, from the same run, its teacher head (decision-level fusion);
question-only; MCD with audio removed; MCD with vision removed; plus the ablation flags listed in ABLATIONS when
asked for (`--variants all`); `--variants extensions` trains the paper's model alone, with the extensions that need
no extra labels, and with the shipped recipe's extensions (which need scene graphs) on the same features. Every variant uses the recipe's features (`mcd extract` must have run for the train,
val and test splits) and is scored on the test split with the MUSIC-AVQA per-type table.

`--jobs N` trains N variants at once, each in its own process with one torch thread: on a small CPU this beats
one process with N threads (these models are too small for intra-op parallelism to pay), and never
oversubscribes the cores.
"""
from __future__ import annotations

import argparse
import json
import multiprocessing
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from mcd.evaluation.evaluate import compute_report, format_comparison  # noqa: E402
from mcd.evaluation.inference import predict_split  # noqa: E402
from mcd.training.recipe import load_recipe  # noqa: E402
from mcd.training.train import train  # noqa: E402

BASELINES: dict[str, list[str]] = {
    "mcd": [],
    "question-only": ["model.question_only=true"],
    "audio-removed": ["model.use_audio=false"],
    "vision-removed": ["model.use_visual=false"],
}
#: the paper's model alone, with the extensions that need no labels beyond the answers, and with every extension of
#: the shipped recipe (keyword grounding needs the synthetic generator's scene graphs)
EXTENSIONS: dict[str, list[str]] = {
    "paper-only": ["model.extensions={}"],
    "no-extra-labels": ["model.extensions.grounding={}"],
    "shipped-extensions": ['model.extensions={"clue_gate": true, "object_clues": true, "object_readout": true, '
                           '"grounding": {"enabled": true, "referent_query": true, "grounded_answer": true, '
                           '"expert": true, "comparator": true}}'],
}
ABLATIONS: dict[str, list[str]] = {
    "no-association-residual": ["model.association_residual=false"],
    "no-association": ["model.n_blocks=0"],
    "no-contrastive": ["model.contrastive=false"],
    "low-level-only": ["model.hierarchy=\"low\""],
    "high-level-only": ["model.hierarchy=\"high\""],
    "no-hints": ["model.hints=false"],
    "no-frame-features": ["model.frame_features=false"],
    "no-text-objects": ["model.text_objects=\"none\""],
    "separate-aggregators": ["model.shared_aggregator=false"],
    "kd-mutual": ["model.kd_mode=\"mutual\""],
    "no-kd": ["model.lambda_kd=0"],
    "decision-fusion-kept": ["model.decision_fusion=true"],
}


def run_variant(job: tuple[str, str, list[str], bool]) -> tuple[str, dict, float]:
    """Train one variant and score it on the test split; the MCD run also reports its teacher head."""
    name, config, overrides, single_thread = job
    if single_thread:
        import torch
        torch.set_num_threads(1)
    recipe = load_recipe(config, overrides)
    start = time.perf_counter()
    train(recipe, progress=False)
    rows, records = predict_split(Path(recipe.out) / "best", recipe.data.root, recipe.data.test_split,
                                  features=recipe.data.features, progress=False)
    reports = {name: compute_report(rows, records)}
    if name == "mcd":  # the teacher head of the same run: decision-level audio-visual fusion
        teacher_rows = [{**r, "pred": r["teacher_pred"]} for r in rows]
        reports["mcd-teacher (decision fusion)"] = compute_report(teacher_rows, records)
    return name, reports, time.perf_counter() - start


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--config", required=True)
    ap.add_argument("--variants", default="baselines", help="comma list, 'baselines' (default), 'extensions' or 'all'")
    ap.add_argument("--epochs", type=int, help="override train.epochs for every variant")
    ap.add_argument("--out", default="runs/ablations", help="folder for the variants' runs and the JSON results")
    ap.add_argument("--set", action="append", default=[], help="extra recipe overrides for every variant")
    ap.add_argument("--jobs", type=int, default=1, help="variants trained at once (one process and thread each)")
    args = ap.parse_args()
    every = {**BASELINES, **EXTENSIONS, **ABLATIONS}
    groups = {"baselines": list(BASELINES), "extensions": list(EXTENSIONS), "all": list(every)}
    names = groups.get(args.variants) or args.variants.split(",")
    unknown = [n for n in names if n not in every]
    if unknown:
        ap.error(f"unknown variants {unknown}; known: {sorted(every)}")
    if args.jobs < 1:
        ap.error("--jobs must be at least 1")
    jobs = [(name, args.config, [*args.set, *every[name], f"out={Path(args.out) / name}"]
             + ([f"train.epochs={args.epochs}"] if args.epochs else []), args.jobs > 1) for name in names]
    reports, timings = {}, {}
    if args.jobs == 1:
        results = map(run_variant, jobs)
    else:
        pool = multiprocessing.get_context("spawn").Pool(args.jobs, maxtasksperchild=1)
        results = pool.imap(run_variant, jobs)
    for name, variant_reports, seconds in results:
        reports.update(variant_reports)
        timings[name] = seconds
        print(f"{name}: overall {reports[name]['overall']:.4f} ({seconds:.0f} s)", flush=True)
    print()
    print(format_comparison(reports))
    Path(args.out).mkdir(parents=True, exist_ok=True)
    (Path(args.out) / "ablations.json").write_text(json.dumps({"reports": reports, "seconds": timings}, indent=2))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
