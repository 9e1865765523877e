"""What refitting the grounded expert buys a trained checkpoint: the co-trained expert, a refit plain expert and a
refit expert with the comparator, each weighed per question type on val as `mcd calibrate` does, scored on a test
split. The model is run once per split; only the expert changes.

    python bench/expert_refit.py --checkpoint DIR --config configs/synth-default.json \\
        [--features cache/v8] [--test-data data/synth-default-fresh-test --test-features cache/v8-fresh]

The features must come from the checkpoint's own encoders (`mcd extract --encoders DIR ...`); the default test
split is the recipe's own. Prints one table: val (calibrated) and test accuracy, per type on test, and the expert's
own accuracy on each comparison template of the test split.
"""
from __future__ import annotations

import argparse
import copy
import sys
from collections import defaultdict
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from mcd.training.calibrate import ExpertScores, choose_type_weights, expert_scores, per_question_weights  # noqa: E402
from mcd.model.checkpoint import load_checkpoint  # noqa: E402
from mcd.data.dataset import QADataset  # noqa: E402
from mcd.encoders.encoder_set import EncoderSet  # noqa: E402
from mcd.training.refit import collect_expert_inputs, refit_expert  # noqa: E402
from mcd.task.questions import QUESTION_TYPES  # noqa: E402
from mcd.training.recipe import load_recipe  # noqa: E402
from mcd.training.train import build_data  # noqa: E402

COMPARED = ("louder", "more rhythmic", "playing longer")


def split_data(recipe, text, split: str) -> QADataset:
    records, load, bank = build_data(recipe, text, (split,))
    return QADataset(records[split], load, bank)


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--checkpoint", type=Path, required=True)
    p.add_argument("--config", required=True)
    p.add_argument("--features", help="feature cache of the recipe's clips (default: the recipe's)")
    p.add_argument("--test-data", help="benchmark folder of the test split (default: the recipe's)")
    p.add_argument("--test-features", help="feature cache of the test clips")
    p.add_argument("--epochs", type=int, default=15)
    p.add_argument("--seed", type=int, default=0)
    args = p.parse_args()
    recipe = load_recipe(args.config, [f"data.features={args.features}"] if args.features else [])
    test_recipe = load_recipe(args.config, [f"data.{k}={v}" for k, v in (("root", args.test_data),
                                                                        ("features", args.test_features)) if v])
    loaded = load_checkpoint(args.checkpoint)
    model = loaded.model.eval()
    text = EncoderSet.from_specs(loaded.config["encoders"], loaded.extra_tensors).text
    data = {"train": split_data(recipe, text, recipe.data.train_split),
            "val": split_data(recipe, text, recipe.data.val_split),
            "test": split_data(test_recipe, text, test_recipe.data.test_split)}
    templates = [r.template for r in data["test"].records]
    scores = {s: expert_scores(model, data[s].loader(128, shuffle=False)) for s in ("val", "test")}
    inputs = {s: collect_expert_inputs(model, data[s].loader(128, shuffle=False)) for s in data}

    variants = {"co-trained": model.expert}
    for name, comparator in (("refit", False), ("refit + comparator", True)):
        m = copy.deepcopy(model)
        refit_expert(m, inputs["train"], args.epochs, seed=args.seed, comparator=comparator)
        variants[name] = m.expert

    default = model.config.ext.grounding.expert_weight
    print(f"{args.checkpoint}: {len(inputs['train'])} train, {len(inputs['val'])} val, {len(inputs['test'])} test "
          f"questions; refit {args.epochs} epochs, seed {args.seed}\n")
    print("| expert | val (calibrated) | test | " + " | ".join(QUESTION_TYPES) + " |")
    print("|---|---|---|" + "---|" * len(QUESTION_TYPES))
    alone = {}
    for name, expert in variants.items():
        with torch.no_grad():
            logp = {s: expert(inputs[s].question, inputs[s].referents).log_softmax(-1) for s in ("val", "test")}
        sc = {s: ExpertScores(scores[s].student, logp[s], scores[s].labels, scores[s].types) for s in logp}
        chosen = choose_type_weights(sc["val"], default)
        right = {s: sc[s].correct(per_question_weights(sc[s], default, chosen)) for s in sc}
        cells = [f"{right['test'][sc['test'].types == i].float().mean() * 100:.1f}" for i in range(len(QUESTION_TYPES))]
        print(f"| {name} | {right['val'].float().mean() * 100:.2f} | {right['test'].float().mean() * 100:.2f} | "
              + " | ".join(cells) + " |")
        hits = defaultdict(lambda: [0, 0])
        for i, (t, ok) in enumerate(zip(templates, (logp["test"].argmax(-1) == sc["test"].labels).tolist())):
            if any(w in t for w in COMPARED):
                hits[t][0] += ok
                hits[t][1] += 1
        alone[name] = hits
    print("\nThe expert alone on the test split's comparison questions\n")
    names = list(variants)
    print("| template | n | " + " | ".join(names) + " |\n|---|---|" + "---|" * len(names))
    for t in sorted(alone[names[0]]):
        n = alone[names[0]][t][1]
        print(f"| {t} | {n} | " + " | ".join(f"{alone[v][t][0] / n * 100:.1f}" for v in names) + " |")


if __name__ == "__main__":
    main()
