"""`mcd calibrate --config RECIPE [--checkpoint DIR]`: the grounded expert's weight per question type, chosen on val.

Why: with `grounded_expert` the answer is log p_student + w · log p_expert, and one w cannot serve every type. On
v7's val clips w = 2 added 9.5 points to Audio-Visual/Comparative over the student alone, where the expert reads
the grounding head's loudness and rhythm of each named instrument, but took 0.7 from Visual/Counting, where the
student alone was right 97.8% of the time. So after training, each type gets the w from WEIGHT_GRID that answers
most of its val questions right (ties: the w nearest the trained `expert_weight`), written into the checkpoint's
model config as `expert_type_weights`. Only the val split is read for that, and no weight of the network changes.

A recipe with `train.expert_refit_epochs` first refits the expert alone on the trained model's read-outs of the
train split (mcd.training.refit, which says why), with the comparator if the recipe's model section asks for
`expert_comparator`; the checkpoint is then written anew with the new expert. The weights are chosen for it after.
"""
from __future__ import annotations

import argparse
from dataclasses import dataclass
from pathlib import Path

from mcd.model.config import grounding_section
from typing import Iterable

import torch

from mcd.training.refit import ExpertRefitError, collect_expert_inputs, refit_expert
from mcd.task.questions import QUESTION_TYPES, UNKNOWN_TYPE_INDEX, per_type_table

#: The weights tried per type: 0 is the student alone; past 6 the expert decides nearly every question alone.
WEIGHT_GRID: tuple[float, ...] = (0.0, 0.5, 1.0, 1.5, 2.0, 3.0, 4.0, 6.0)
#: A type with fewer val questions keeps `expert_weight`: a handful of questions cannot tell the weights apart.
MIN_QUESTIONS = 50


class CalibrationError(ValueError):
    """A checkpoint or split that cannot be calibrated; the message says why."""


@dataclass
class ExpertScores:
    """Per val question: the student's and the expert's log-probabilities, the answer index and the type index."""

    student: torch.Tensor   # [N,C]
    expert: torch.Tensor    # [N,C]
    labels: torch.Tensor    # [N]
    types: torch.Tensor     # [N], index into QUESTION_TYPES (UNKNOWN_TYPE_INDEX = -1)

    def correct(self, weight: float | torch.Tensor) -> torch.Tensor:
        """[N] bool: is the answer of log p_student + weight · log p_expert right (weight a scalar or [N])?"""
        w = weight[:, None] if isinstance(weight, torch.Tensor) else weight
        return (self.student + w * self.expert).argmax(-1) == self.labels

    def of_type(self, index: int) -> "ExpertScores":
        """The questions of QUESTION_TYPES[index] alone."""
        rows = self.types == index
        return ExpertScores(self.student[rows], self.expert[rows], self.labels[rows], self.types[rows])


@torch.no_grad()
def expert_scores(model, batches: Iterable) -> ExpertScores:
    """Run `model` (with grounded_expert) over labelled batches and keep both answerers' log-probabilities."""
    if model.expert is None:
        raise CalibrationError("the checkpoint has no grounded expert (extensions.grounding.expert is off or it has no "
                               "grounding head): there is no weight to calibrate")
    was_training = model.training
    model.eval()
    student, expert, labels, types = [], [], [], []
    for batch in batches:
        inputs = batch.model_inputs()
        inputs.pop("labels", None)
        inputs.pop("question_type", None)    # the answer below is the one with the single expert_weight
        out = model(**inputs)
        e = out.expert_logits.float().log_softmax(-1)
        # out.logits = log p_student + expert_weight · log p_expert, so the student's own log-probabilities are
        # the difference (up to float rounding; argmax ties at 1e-6 do not happen in practice)
        student.append((out.logits.float() - model.config.ext.grounding.expert_weight * e).log_softmax(-1))
        expert.append(e)
        labels.append(batch.labels)
        types.append(batch.question_type if batch.question_type is not None
                     else torch.full_like(batch.labels, UNKNOWN_TYPE_INDEX))
    model.train(was_training)
    if not labels:
        raise CalibrationError("the val split has no questions")
    return ExpertScores(torch.cat(student), torch.cat(expert), torch.cat(labels), torch.cat(types))


def choose_type_weights(scores: ExpertScores, default: float, grid: Iterable[float] = WEIGHT_GRID,
                        min_questions: int = MIN_QUESTIONS) -> dict[str, float]:
    """{type: w} for every type with at least `min_questions` questions: the grid's w that answers most of them
    right; a tie goes to the w nearest `default`, so a type the expert neither helps nor hurts keeps it."""
    grid = sorted(set(float(w) for w in grid) | {float(default)})
    chosen = {}
    for i, name in enumerate(QUESTION_TYPES):
        sub = scores.of_type(i)
        if len(sub.labels) < min_questions:
            continue
        right = {w: int(sub.correct(w).sum()) for w in grid}
        chosen[name] = max(grid, key=lambda w: (right[w], -abs(w - default)))
    return chosen


def type_table(scores: ExpertScores, default: float, chosen: dict[str, float]) -> str:
    """Markdown: per type, questions, accuracy at `default`, the chosen weight and its accuracy."""
    lines = ["| type | questions | at expert_weight | chosen weight | calibrated |", "|---|---|---|---|---|"]
    for i, name in enumerate(QUESTION_TYPES):
        sub = scores.of_type(i)
        if not len(sub.labels):
            continue
        w = chosen.get(name, default)
        lines.append(f"| {name} | {len(sub.labels)} | {sub.correct(default).float().mean() * 100:.2f} | {w:g} | "
                     f"{sub.correct(w).float().mean() * 100:.2f} |")
    return "\n".join(lines)


def per_question_weights(scores: ExpertScores, default: float, chosen: dict[str, float]) -> torch.Tensor:
    """[N] the weight each question gets under `chosen` (the model's own lookup, see KeywordExtensions.expert_weights)."""
    return torch.tensor(per_type_table(chosen, default))[scores.types]


def calibrate_checkpoint(checkpoint: str | Path, recipe, batch_size: int = 128,
                         min_questions: int = MIN_QUESTIONS) -> dict:
    """Choose `expert_type_weights` on the recipe's val split and rewrite `checkpoint` with them (weights unchanged).

    Returns {"expert_type_weights", "val_acc" (one weight), "calibrated_val_acc", "table"}. Only config.json and
    metrics.json are rewritten (mcd.model.checkpoint.update_checkpoint), so a failure leaves the old checkpoint whole.
    """
    from mcd.model.checkpoint import load_checkpoint, update_checkpoint
    from mcd.data.dataset import QADataset
    from mcd.encoders.encoder_set import EncoderSet
    from mcd.training.train import build_data

    loaded = load_checkpoint(checkpoint)
    model = loaded.model
    encoders = EncoderSet.from_specs(loaded.config["encoders"], loaded.extra_tensors)
    if recipe.data.format == "cache":   # features from other encoders would calibrate on noise, silently
        from mcd.data.extract import encoder_meta
        from mcd.data.features import FeatureCache

        T = int(loaded.config.get("T", model.config.T))
        FeatureCache(recipe.data.features).check_meta(encoder_meta(encoders, T), checkpoint)
    split = recipe.data.val_split
    refit_epochs = recipe.train.expert_refit_epochs
    splits = (recipe.data.train_split, split) if refit_epochs else (split,)
    records, load_features, bank = build_data(recipe, encoders.text, splits)
    refit = None
    if refit_epochs:   # a checkpoint without an expert: collect_expert_inputs says so before any forward
        train = QADataset(records[recipe.data.train_split], load_features, bank)
        inputs = collect_expert_inputs(model, train.loader(batch_size, shuffle=False))
        comparator = bool(grounding_section(recipe.model).get("comparator", model.config.ext.grounding.comparator))
        losses = refit_expert(model, inputs, refit_epochs, seed=recipe.train.seed, comparator=comparator)
        refit = {"epochs": refit_epochs, "train_questions": len(inputs), "comparator": comparator,
                 "final_loss": round(losses[-1], 4)}
    val = QADataset(records[split], load_features, bank)
    scores = expert_scores(model, val.loader(batch_size, shuffle=False))
    default = model.config.ext.grounding.expert_weight
    chosen = choose_type_weights(scores, default, min_questions=min_questions)
    n = len(scores.labels)
    result = {"expert_type_weights": chosen,
              "val_acc": int(scores.correct(default).sum()) / n,
              "calibrated_val_acc": int(scores.correct(per_question_weights(scores, default, chosen)).sum()) / n,
              "table": type_table(scores, default, chosen)}
    model.config.ext.grounding.expert_type_weights = chosen
    model.config.validate()
    metrics = dict(loaded.metrics or {})
    metrics["val"] = {**metrics.get("val", {}), "calibrated_acc": result["calibrated_val_acc"],
                      "expert_type_weights": chosen}
    if refit is not None:   # the expert's weights changed: they are written with the config
        metrics["expert_refit"] = result["expert_refit"] = refit
    update_checkpoint(checkpoint, model.config, metrics, model=model if refit is not None else None)
    return result


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--config", required=True, help="the recipe the checkpoint was trained with (its val split)")
    p.add_argument("--checkpoint", help="checkpoint folder to calibrate in place (default: the recipe's OUT/best)")
    p.add_argument("--set", action="append", default=[], metavar="SECTION.KEY=VALUE", help="override a recipe field")
    p.add_argument("--min-questions", type=int, default=MIN_QUESTIONS,
                   help="a type with fewer val questions keeps expert_weight (default %(default)s)")


def run(args: argparse.Namespace) -> int:
    from mcd.model.checkpoint import CheckpointError
    from mcd.cli import CLIError
    from mcd.data.features import FeatureCacheError
    from mcd.training.recipe import RecipeError, load_recipe

    try:
        recipe = load_recipe(args.config, list(args.set))
        checkpoint = args.checkpoint or str(Path(recipe.out) / "best")
        result = calibrate_checkpoint(checkpoint, recipe, min_questions=args.min_questions)
    except (RecipeError, CheckpointError, CalibrationError, ExpertRefitError, FeatureCacheError,
            FileNotFoundError) as exc:
        raise CLIError(str(exc)) from exc
    if "expert_refit" in result:
        r = result["expert_refit"]
        print(f"refit the grounded expert on {r['train_questions']} train questions for {r['epochs']} epochs "
              f"(comparator {'on' if r['comparator'] else 'off'}; last epoch's loss {r['final_loss']})")
    print(result["table"])
    print(f"val accuracy {result['val_acc'] * 100:.2f}% with one expert weight, "
          f"{result['calibrated_val_acc'] * 100:.2f}% per type; written to {checkpoint}/config.json")
    return 0
