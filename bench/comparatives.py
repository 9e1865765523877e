"""Is the comparative gap in the features or in the model? Two measurements on a recipe's cached features.

    python bench/comparatives.py --config configs/synth-default.json probe
    python bench/comparatives.py --config configs/synth-default.json learn --epochs 8 \
        --variant design='{"clue_gate": false, "object_clues": false, "object_readout": false}' --variant recipe={}

`probe`: fit one ridge regression per instrument from a segment's audio feature to that instrument's loudness
(train clips, segments where it sounds), then answer the val questions "Is the <X> louder than the <Y>?" by
comparing the two read-outs averaged over the clip. If this scores far above chance, the information is in the
features and a model at chance is failing to read it.

`learn`: train each MCD variant (recipe model + the variant's fields) on the comparative templates alone (louder,
more rhythmic, playing longer; all 7 templates) and print train and val accuracy per epoch, then val accuracy per
template. `--template-word` picks other templates, e.g. the two-step ones (position <-> sound):
`--template-word '<FL>' --template-word '<LL>' --template-word '<TH>'`. Single-threaded.
"""
from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from mcd.model.config import MCDConfig  # noqa: E402
from mcd.data.dataset import QADataset  # noqa: E402
from mcd.data.extract import load_encoders  # noqa: E402
from mcd.synth.grounding import SceneGrounding  # noqa: E402
from mcd.data.features import FeatureCache  # noqa: E402
from mcd.data.music_avqa import load_annotations  # noqa: E402
from mcd.encoders.labels import LabelSpace, audio_targets, read_scenes  # noqa: E402
from mcd.model import MCD  # noqa: E402
from mcd.task.questions import parse  # noqa: E402
from mcd.training.recipe import load_recipe  # noqa: E402
from mcd.training.train import build_data, feature_dims, grounding_fields, lr_at, seed_everything  # noqa: E402

LOUDER = "Is the <Object> louder than the <Object>?"


COMPARATIVE_WORDS = ("louder", "rhythmic", "longer")


def template_matches(question: str, words: tuple[str, ...] = COMPARATIVE_WORDS) -> bool:
    """Does the question's template text contain any of `words` (the comparative templates by default)?"""
    t = parse(question).template
    return t is not None and any(w in t.text for w in words)


def probe(recipe, ridge: float = 1.0) -> None:
    root = Path(recipe.data.root)
    scenes = read_scenes(root / "scenes.jsonl")
    space = LabelSpace.from_scenes(scenes)
    cache = FeatureCache(recipe.data.features)
    names = list(space.audio)
    feats, loud, mask, split = [], [], [], []
    for s in scenes:
        a = cache.load(s.video_id)["audio"].float().numpy()
        t = audio_targets(s, np.arange(a.shape[0]) + 0.5, space)
        feats.append(a)
        loud.append(t.loudness)
        mask.append(t.mask)
        split.append(s.split)
    X = np.stack(feats)
    X = np.concatenate([X, np.ones(X.shape[:2] + (1,))], axis=-1)
    Y, M = np.stack(loud), np.stack(mask)
    train = np.array([sp == "train" for sp in split])
    W = np.zeros((X.shape[-1], len(names)))
    for c in range(len(names)):
        xs, ys = X[train][M[train][..., c]], Y[train][..., c][M[train][..., c]]
        if len(xs) >= X.shape[-1]:
            W[:, c] = np.linalg.solve(xs.T @ xs + ridge * np.eye(X.shape[-1]), xs.T @ ys)
    readout = {s.video_id: (X[i] @ W).mean(axis=0) for i, s in enumerate(scenes)}
    mae = np.abs(X @ W - Y)[~train][M[~train]].mean()
    right = n = 0
    for r in load_annotations(root / f"avqa-{recipe.data.val_split}.json"):
        t = parse(r.question).template
        if t is None or t.text != LOUDER:
            continue
        a, b = (names.index(k) for k in r.keywords)
        pred = "yes" if readout[r.video_id][a] > readout[r.video_id][b] else "no"
        right += pred == r.answer
        n += 1
    print("| measurement | value |\n|---|---|")
    print(f"| loudness read-out MAE, val segments where the instrument sounds | {mae:.3f} |")
    print(f"| \"{LOUDER}\" answered by the read-out, val | {right}/{n} = {right / max(n, 1):.1%} |")


def learn(recipe, variants: dict[str, dict], epochs: int, words: tuple[str, ...] = COMPARATIVE_WORDS,
          lr: float = 7e-4) -> None:
    torch.set_num_threads(1)
    encoders = load_encoders(recipe.encoders)
    records, load, bank = build_data(recipe, encoders.text, (recipe.data.train_split, recipe.data.val_split))
    tr = [r for r in records[recipe.data.train_split] if template_matches(r.question, words)]
    va = [r for r in records[recipe.data.val_split] if template_matches(r.question, words)]
    print(f"questions whose template contains any of {list(words)}: {len(tr)} train, {len(va)} val\n")
    print("| variant | epoch | train acc | val acc | seconds |\n|---|---|---|---|---|")
    per_template: dict[str, dict[str, tuple[int, int]]] = {}
    for name, fields in variants.items():
        seed_everything(0)
        model_fields = {**recipe.model, **fields}
        model_fields = {**grounding_fields(model_fields), **model_fields}
        dims = feature_dims(load, tr[0].video_id, encoders.text.dim)
        grounding = None
        if model_fields.get("object_grounding"):
            grounding = SceneGrounding.from_benchmark(recipe.data.root, dims["T"])
        train_set, val_set = QADataset(tr, load, bank, grounding), QADataset(va, load, bank)
        cfg = MCDConfig.from_dict({**model_fields, **dims})
        model = MCD(cfg)
        opt = torch.optim.AdamW(model.parameters(), lr=lr, weight_decay=recipe.train.weight_decay)
        train_loader = train_set.loader(recipe.train.batch_size, shuffle=True, seed=0)
        val_loader = val_set.loader(recipe.train.batch_size, shuffle=False)
        total, step, started = epochs * len(train_loader), 0, time.perf_counter()
        for epoch in range(epochs):
            train_loader.batch_sampler.set_epoch(epoch)
            model.train()
            right = seen = 0
            for batch in train_loader:
                for g in opt.param_groups:
                    g["lr"] = lr_at(step, total, 100, lr)
                out = model(**batch.model_inputs())
                opt.zero_grad(set_to_none=True)
                out.loss.backward()
                opt.step()
                step += 1
                right += int((out.logits.argmax(-1) == batch.labels).sum())
                seen += len(batch.labels)
            model.eval()
            hits = []
            with torch.no_grad():
                for batch in val_loader:
                    out = model(**batch.model_inputs())
                    hits += (out.logits.argmax(-1) == batch.labels).tolist()
            print(f"| {name} | {epoch + 1} | {right / seen:.3f} | {sum(hits) / len(hits):.3f} | "
                  f"{time.perf_counter() - started:.0f} |", flush=True)
        order = [i for b in val_loader.batch_sampler for i in b]  # the loader groups questions by video
        per_template[name] = template_accuracy([va[i] for i in order], hits)
    print("\nval accuracy per template, last epoch\n")
    names = list(variants)
    print("| template | n | " + " | ".join(names) + " |\n|---|---|" + "---|" * len(names))
    for text, (_, n) in per_template[names[0]].items():
        print(f"| {text} | {n} | " + " | ".join(f"{per_template[v][text][0] / n:.1%}" for v in names) + " |")


def template_accuracy(records, hits: list[bool]) -> dict[str, tuple[int, int]]:
    """(right, asked) per question template, sorted by template; `hits[i]` says whether `records[i]` was right."""
    cells: dict[str, tuple[int, int]] = {}
    for r, hit in zip(records, hits, strict=True):
        right, n = cells.get(text := parse(r.question).template.text, (0, 0))
        cells[text] = (right + int(hit), n + 1)
    return dict(sorted(cells.items()))


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--config", required=True)
    sub = p.add_subparsers(dest="what", required=True)
    sub.add_parser("probe", help="linear loudness probe on the cached audio features")
    lp = sub.add_parser("learn", help="train variants on the comparative templates alone")
    lp.add_argument("--epochs", type=int, default=8)
    lp.add_argument("--template-word", action="append", default=[], metavar="TEXT",
                    help="train on the templates whose text contains TEXT (repeatable; default: "
                         f"{', '.join(COMPARATIVE_WORDS)})")
    lp.add_argument("--variant", action="append", default=[], metavar="NAME=JSON",
                    help="an MCDConfig override, e.g. gate='{\"clue_gate\": true}' (repeatable)")
    args = p.parse_args()
    recipe = load_recipe(args.config)
    if args.what == "probe":
        probe(recipe)
        return 0
    variants = {}
    for item in args.variant or ["recipe={}"]:
        name, _, fields = item.partition("=")
        try:
            variants[name] = json.loads(fields or "{}")
        except json.JSONDecodeError as e:
            p.error(f"--variant {item!r}: the part after '=' must be a JSON object ({e})")
    learn(recipe, variants, args.epochs, tuple(args.template_word) or COMPARATIVE_WORDS)
    return 0


if __name__ == "__main__":
    sys.exit(main())
