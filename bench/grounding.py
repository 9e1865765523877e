"""Does a checkpoint know what its keywords point at? The grounding head (model.object_grounding) on held-out clips.

    python bench/grounding.py --checkpoint checkpoints/mcd-synth --config configs/synth-default.json [--split val]

For every keyword of every question of the split whose referent the scene graph names (mcd.synth.qa's rules), the
head's likeliest position and instrument are compared with the referent's, "sounds" with whether it sounds at all,
and each segment's "sounds now" with whether it sounds for at least half the segment. One row per keyword word,
then all keywords together; with `referent_query` a second table scores the head's reading of the referent
query. The split's clips come from the recipe's feature cache (val: never trained on).

A last table asks whether the answer uses what the head knows: for every question that compares two referents
("Is the X louder / more rhythmic / playing longer than the Y?", by name or by side), the answer's accuracy beside
the accuracy of the plain sign of the head's two read-outs of that scalar (each reading, and their mean), and
with `grounded_expert` the expert's own answer.
"""
from __future__ import annotations

import argparse
import sys
from collections import defaultdict
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from mcd.model.checkpoint import load_checkpoint  # noqa: E402
from mcd.data.dataset import QADataset  # noqa: E402
from mcd.data.extract import load_encoders  # noqa: E402
from mcd.synth.grounding import SceneGrounding  # noqa: E402
from mcd.model.grounding import GROUNDING_SCALARS, GroundingHead  # noqa: E402
from mcd.model.mcd import KEYWORD  # noqa: E402
from mcd.training.recipe import load_recipe  # noqa: E402
from mcd.training.train import build_data  # noqa: E402
from mcd.task.vocab import answer_to_index  # noqa: E402

MEASURES = ("position", "instrument", "sounds", "segments")
#: the scalar a comparison template compares, by the word that names it
COMPARED = {"louder": "loudness", "more rhythmic": "log_rate", "playing longer": "sounding_time"}


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--checkpoint", type=Path, required=True)
    p.add_argument("--config", required=True, help="the recipe whose data and feature cache to read")
    p.add_argument("--split", default="val")
    args = p.parse_args()
    recipe = load_recipe(args.config)
    model = load_checkpoint(args.checkpoint).model.eval()
    if not model.config.ext.grounding.enabled:
        raise SystemExit(f"{args.checkpoint} was trained without object_grounding: it has no grounding head")
    encoders = load_encoders(recipe.encoders)
    records, load, bank = build_data(recipe, encoders.text, (args.split,))
    grounding = SceneGrounding.from_benchmark(recipe.data.root, model.config.T)
    data = QADataset(records[args.split], load, bank, grounding)
    keywords = {r.question_id: r.keywords for r in data.records}
    templates = {r.question_id: r.template for r in data.records}
    # with referent_query the head reads twice (the keyword's clue, then its referent query): score both
    readings = ["keyword clue", "referent query"] if model.config.ext.grounding.referent_query else ["keyword clue"]
    right = {name: defaultdict(lambda: {m: [0, 0] for m in MEASURES}) for name in readings}
    compared = defaultdict(lambda: defaultdict(int))   # template -> "n", "answer", each reading's sign, "mean"
    raw: list[tuple[torch.Tensor, ...]] = []
    model.keywords.grounding.register_forward_hook(lambda module, args, out: raw.append(out))
    with torch.no_grad():
        for batch in data.loader(64, shuffle=False):
            inputs = batch.model_inputs()
            t = inputs.pop("grounding")
            inputs.pop("labels")
            raw.clear()
            out = model(**inputs)
            answers = {"answer": out.logits.argmax(dim=-1)}
            if out.expert_logits is not None:   # grounded_expert: its own answer too
                answers["expert alone"] = out.expert_logits.argmax(dim=-1)
            reads = [GroundingHead.read(r) for r in raw]
            for name, read in zip(readings, reads):
                score(read, t, batch, keywords, right[name])
            score_comparisons(reads, readings, answers, batch, templates, compared)
    for name in readings:
        print(f"{args.checkpoint} on the {args.split} split, read from the {name}: keywords with a referent\n")
        print("| keyword | n | " + " | ".join(MEASURES) + " |\n|---|---|" + "---|" * len(MEASURES))
        for word in sorted(right[name], key=lambda w: (w == "all keywords", -right[name][w]["position"][1])):
            cells = right[name][word]
            print(f"| {word} | {cells['position'][1]} | " + " | ".join(
                f"{cells[m][0] / cells[m][1]:.1%}" if cells[m][1] else "-" for m in MEASURES) + " |")
        print()
    print(f"Comparison questions on the {args.split} split: the answer, and the sign of the head's two read-outs "
          "of the compared scalar\n")
    cols = ["answer"] + (["expert alone"] if model.config.ext.grounding.expert else []) + [
        f"sign, {name}" for name in readings] + (["sign, mean"] if len(readings) > 1 else [])
    print("| template | n | " + " | ".join(cols) + " |\n|---|---|" + "---|" * len(cols))
    for template, cells in sorted(compared.items()):
        print(f"| {template} | {cells['n']} | " + " | ".join(f"{cells[c] / cells['n']:.1%}" for c in cols) + " |")


def score_comparisons(reads: list[dict[str, torch.Tensor]], readings: list[str], answers: dict[str, torch.Tensor],
                      batch, templates: dict, compared) -> None:
    """Add one batch's comparison questions to `compared` (`answers`: predicted indices per column name). The two
    referents compared are keywords K/2-1 and K-1 (slots 0 and 1 of "the X ... the Y", the sides 1 and 3 of "the X
    on the left ... the Y on the right")."""
    mean = {"scalars": torch.stack([r["scalars"] for r in reads]).mean(dim=0)}
    for i, qid in enumerate(batch.question_ids):
        template = templates[qid]
        word = next((w for w in COMPARED if w in template), None)
        n_keywords = int((batch.objects_mask[i] & (batch.objects_kind[i] == KEYWORD)).sum())   # names and sides
        if word is None or n_keywords not in (2, 4):
            continue
        s, (a, b) = GROUNDING_SCALARS.index(COMPARED[word]), (n_keywords // 2 - 1, n_keywords - 1)
        yes = bool(batch.labels[i] == answer_to_index("yes"))
        cells = compared[template]
        cells["n"] += 1
        for column, predicted in answers.items():
            cells[column] += int(predicted[i] == batch.labels[i])
        for name, read in zip(readings + ["mean"], reads + [mean]):
            cells[f"sign, {name}"] += int(bool(read["scalars"][i, a, s] > read["scalars"][i, b, s]) == yes)


def score(read: dict[str, torch.Tensor], t, batch, keywords: dict, right) -> None:
    """Add one batch's hits per keyword word (and over all keywords) to `right`."""
    for (i, j) in t.has_referent.nonzero().tolist():
        word = keywords[batch.question_ids[i]][j]
        hits = {"position": int(read["position"][i, j].argmax() == t.position[i, j]),
                "sounds": int((read["sounds"][i, j] > 0.5) == (t.sounds[i, j] > 0.5))}
        if t.instrument[i, j] >= 0:
            hits["instrument"] = int(read["instrument"][i, j].argmax() == t.instrument[i, j])
        seg = ((read["segments"][i, j] > 0.5) == (t.segments[i, j] >= 0.5)).float()
        for key in (word, "all keywords"):
            for m, h in hits.items():
                right[key][m][0] += h
                right[key][m][1] += 1
            right[key]["segments"][0] += int(seg.sum())
            right[key]["segments"][1] += seg.numel()


if __name__ == "__main__":
    main()
