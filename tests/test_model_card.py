"""The model card states plainly whether the shipped checkpoint meets the project's accuracy bar."""
from __future__ import annotations

from mcd.training.model_card import TARGET_OVERALL, TARGET_TYPE, bar_note, render
from mcd.task.questions import QUESTION_TYPES


def _report(overall: float, types: dict[str, float]) -> dict:
    return {"n": 100, "overall": overall, "groups": {"Audio": overall, "Visual": overall, "Audio-Visual": overall},
            "types": {t: types.get(t, 0.99) for t in QUESTION_TYPES}}


def test_bar_note_names_every_type_below_the_bar_worst_first():
    note = bar_note(_report(0.8, {"Audio/Comparative": 0.55, "Audio-Visual/Temporal": 0.61}))
    assert note.startswith("- **Below the project's bar.**") and "80.00% overall" in note
    assert note.index("Audio/Comparative 55.00%") < note.index("Audio-Visual/Temporal 61.00%")
    assert "Visual/Counting" not in note


def test_bar_note_when_overall_alone_misses():
    note = bar_note(_report(TARGET_OVERALL - 0.01, {}))
    assert "Below the project's bar" in note and "types are below" not in note


def test_bar_note_when_met_and_card_carries_it():
    report = _report(TARGET_OVERALL, {t: TARGET_TYPE for t in QUESTION_TYPES})
    assert bar_note(report).startswith("- Meets the project's bar")
    recipe = {"synth": {"videos": 10, "seed": 0, "splits": "train=1", "test_videos": 5, "test_seed": 9,
                        "questions_per_video": 20}}
    card = render("r", recipe, "mcd reproduce --config r.json", {"train": 60.0}, report, {"acc": 0.9, "epoch": 3},
                  "100 questions", 1000)
    assert "Meets the project's bar" in card and "--questions-per-video 20" in card and "1.0 min in all" in card


def test_extensions_note_names_what_the_recipe_switches_on():
    from mcd.training.model_card import extensions_note
    alone = "The network is the paper's MCD alone (no extensions)."
    assert extensions_note({"d": 128}) == alone
    assert extensions_note({"hops": 1, "question_blocks": 0, "clue_gate": False}) == alone
    note = extensions_note({"extensions": {"clue_gate": True, "object_clues": True, "object_readout": True}})
    assert "`clue_gate`" in note and "`object_readout`" in note and "synthetic generator" not in note
    scene = extensions_note({"extensions": {"object_clues": True, "grounding": {"enabled": True, "expert": True}}})
    assert "`grounding.enabled`" in scene and "`grounding.expert`" in scene and "synthetic generator" in scene
    assert scene.index("`object_clues`") < scene.index("synthetic generator") < scene.index("`grounding.enabled`")


def test_card_names_the_calibrated_expert_weights_only_when_there_are_some():
    from mcd.training.model_card import calibration_note
    assert calibration_note({"acc": 0.86, "epoch": 16}) == ""
    note = calibration_note({"acc": 0.86, "calibrated_acc": 0.8708,
                             "expert_type_weights": {"Audio/Counting": 0.5, "Audio-Visual/Temporal": 6.0}})
    assert "Audio/Counting 0.5, Audio-Visual/Temporal 6" in note and "87.08% on val" in note


def test_card_names_the_checkpoints_encoders_and_instruments():
    from mcd.training.model_card import encoders_note
    specs = {"visual": {"modality": "visual", "backend": "joined", "parts": [
                 {"modality": "visual", "backend": "efficientnet-lite0"}, {"modality": "visual", "backend": "synth"}]},
             "audio": {"modality": "audio", "backend": "musicnn"}, "text": {"modality": "text", "backend": "minilm"}}
    note = encoders_note(specs)
    assert note.startswith("visual: EfficientNet-Lite0 (ImageNet") and "+ visual CNN pretrained on the synthetic" in note
    assert "audio: MusiCNN" in note and "text: MiniLM" in note
    report = _report(0.5, {})
    recipe = {"synth": {"videos": 10, "seed": 0, "splits": "train=1", "test_videos": 5, "test_seed": 9,
                        "questions_per_video": 20}}
    card = render("r", recipe, "c", {"train": 60.0}, report, {"acc": 0.5, "epoch": 1}, "100 questions", 1000,
                  encoders=specs, instruments=["violin", "erhu"])
    assert note in card and "name 2 instruments (violin, erhu)" in card
