"""Does a checkpoint know what its keywords point at? The grounding head (model.object_grounding) on held-out clips.

    python bench/grounding.py --checkpoint checkpoints/mcd-synth --config configs/synth-default.json [--split val]

For every keyword of every question of the split whose referent the scene graph names (mcd.synth.qa's rules), the
head's likeliest position and instrument are compared with the referent's, "sounds" with whether it sounds at all,
and each segment's "sounds now" with whether it sounds for at least half the segment. One row per keyword word,
then all keywords together. The split's clips come from the recipe's feature cache (val: never trained on).
"""
from __future__ import annotations

import argparse
import sys
from collections import defaultdict
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from mcd.checkpoint import load_checkpoint  # noqa: E402
from mcd.data.dataset import QADataset  # noqa: E402
from mcd.data.extract import load_encoders  # noqa: E402
from mcd.data.grounding import SceneGrounding  # noqa: E402
from mcd.recipe import load_recipe  # noqa: E402
from mcd.train import build_data  # noqa: E402

MEASURES = ("position", "instrument", "sounds", "segments")


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--checkpoint", type=Path, required=True)
    p.add_argument("--config", required=True, help="the recipe whose data and feature cache to read")
    p.add_argument("--split", default="val")
    args = p.parse_args()
    recipe = load_recipe(args.config)
    model = load_checkpoint(args.checkpoint).model.eval()
    if not model.config.object_grounding:
        raise SystemExit(f"{args.checkpoint} was trained without object_grounding: it has no grounding head")
    encoders = load_encoders(recipe.encoders)
    records, load, bank = build_data(recipe, encoders.text, (args.split,))
    grounding = SceneGrounding.from_benchmark(recipe.data.root, model.config.T)
    data = QADataset(records[args.split], load, bank, grounding)
    keywords = {r.question_id: r.keywords for r in data.records}
    right: dict[str, dict[str, list[int]]] = defaultdict(lambda: {m: [0, 0] for m in MEASURES})
    with torch.no_grad():
        for batch in data.loader(64, shuffle=False):
            inputs = batch.model_inputs()
            t = inputs.pop("grounding")
            inputs.pop("labels")
            read = model(**inputs).referents
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
    print(f"{args.checkpoint} on the {args.split} split: keywords with a referent\n")
    print("| keyword | n | " + " | ".join(MEASURES) + " |\n|---|---|" + "---|" * len(MEASURES))
    for word in sorted(right, key=lambda w: (w == "all keywords", -right[w]["position"][1])):
        cells = right[word]
        print(f"| {word} | {cells['position'][1]} | " + " | ".join(
            f"{cells[m][0] / cells[m][1]:.1%}" if cells[m][1] else "-" for m in MEASURES) + " |")


if __name__ == "__main__":
    main()
