"""`train.faithfulness` (mcd/training/scene_deletion.py): which cells the scene graphs name, what the two edited
copies of a batch hold, and the recipe's checks."""
from __future__ import annotations

import json
from pathlib import Path
from types import SimpleNamespace

import pytest
import torch

from mcd.model import MCD
from mcd.serving.clue_quality import box_cells
from mcd.synth.grounding import SceneGrounding
from mcd.synth.scene import Player, Scene
from mcd.training.scene_deletion import (FaithfulnessConfig, FaithfulnessError, SceneDeletion, mean_filled,
                                         named_player_cells)
from tests.conftest import make_batch, small_config

ROOT = Path(__file__).resolve().parent.parent


def player(instrument: str, position: str, bbox) -> Player:
    return Player(instrument, 0.6, 2.0, 60, [(0.0, 10.0)], position=position, bbox=bbox)


# a violin bottom left, a piano top right, on a 224-pixel frame (7x7 cells of 32 pixels)
SCENE = Scene("two", "indoor", [player("violin", "left", (8, 150, 72, 182)),
                                player("piano", "right", (170, 20, 210, 60))]).validate()


def record(qid: int, *keywords: str):
    return SimpleNamespace(question_id=qid, video_id="two", keywords=list(keywords))


def test_config_defaults_and_refusals():
    assert FaithfulnessConfig.from_dict({}) == FaithfulnessConfig(1.0, 1.0, 1.0, (3, 24))
    assert FaithfulnessConfig.from_dict({"oracle": 0.5, "cells": [2, 5]}).cells == (2, 5)
    for bad, match in [([], "must be an object"), ({"contxt": 1}, "unknown fields"),
                       ({"oracle": -1}, "oracle must be a number >= 0"), ({"margin": "1"}, "margin"),
                       ({"context": True}, "context"), ({"cells": [5, 2]}, "cells"), ({"cells": [0, 2]}, "cells"),
                       ({"context": 0, "oracle": 0}, "both 0")]:
        with pytest.raises(FaithfulnessError, match=match):
            FaithfulnessConfig.from_dict(bad)


def test_cells_are_the_named_players_with_their_persons():
    grounding = SceneGrounding([SCENE], T=10)
    cells = named_player_cells([record(1, "violin"), record(2, "violin", "piano"), record(3, "cello"),
                                record(4), record(5, "piano")], grounding, P=49)
    assert set(cells) == {1, 2, 5}                  # no keyword, or one naming no player: left out
    violin = cells[1].numpy()
    aspect_free = box_cells(SCENE.players[0].bbox)
    assert (violin >= aspect_free).all()            # the instrument's own cells are in
    above = box_cells((8, 100, 72, 118))            # the person drawn above it (1.35 x 64 px tall)
    assert violin[above].all() and not aspect_free[above].any()
    assert not violin[box_cells(SCENE.players[1].bbox)].any()
    assert torch.equal(cells[2], cells[1] | cells[5])
    with pytest.raises(FaithfulnessError, match="square grid"):
        named_player_cells([record(1, "violin")], grounding, P=48)


def test_mean_filled_replaces_only_the_masked_cells_by_the_clip_mean():
    v = torch.randn(2, 3, 4, 5)
    mask = torch.tensor([[True, False, False, True], [False, False, False, False]])
    out = mean_filled(v, mask)
    assert torch.allclose(out[0, :, 0], v[0].mean(dim=(0, 1)).expand(3, 5))
    assert torch.equal(out[0, :, 1:3], v[0, :, 1:3]) and torch.equal(out[1], v[1])


class Recorder(torch.nn.Module):
    """The model, keeping the visual features of every call."""

    def __init__(self, model):
        super().__init__()
        self.model, self.visual = model, []

    def forward(self, **inputs):
        self.visual.append(inputs["visual"])
        return self.model(**inputs)


def test_loss_edits_the_context_and_the_players_of_the_named_questions_only():
    torch.manual_seed(0)
    cfg = small_config(T=3, P=9)
    model = MCD(cfg)
    inputs = make_batch(cfg, B=3, seed=1)
    batch = SimpleNamespace(question_ids=[10, 11, 12])
    players = {10: torch.tensor([True, True, False, False, False, False, False, False, False]),
               12: torch.tensor([False] * 8 + [True])}
    terms = SceneDeletion(FaithfulnessConfig(context=1.0, oracle=2.0, cells=(2, 4)), players)
    out = model(**inputs)
    recorder = Recorder(model)
    loss, logs = terms.loss(recorder, out, batch, inputs)
    (edited,) = recorder.visual
    assert edited.shape[0] == 4                     # rows 10 and 12, each with the context and the players deleted
    for j, (row, qid) in enumerate([(0, 10), (2, 12)]):
        clip, mask = inputs["visual"][row], players[qid]
        mean = clip.mean(dim=(0, 1))
        context, deleted = edited[j], edited[2 + j]
        changed = (context != clip).any(-1).any(0)
        assert not changed[mask].any() and 2 <= int(changed.sum()) <= 4
        assert torch.allclose(deleted[:, mask], mean.expand_as(deleted[:, mask]))
        assert torch.equal(deleted[:, ~mask], clip[:, ~mask])
    assert set(logs) == set(SceneDeletion.NAMES)
    assert float(loss) == pytest.approx(float(logs["faith_context"] + 2 * logs["faith_oracle"]), rel=1e-5)
    loss.backward()
    assert any(p.grad is not None and p.grad.abs().sum() > 0 for p in model.parameters())

    none, logs = terms.loss(model, out, SimpleNamespace(question_ids=[1, 2, 3]), inputs)
    assert float(none) == 0 and all(float(v) == 0 for v in logs.values())
    with pytest.raises(FaithfulnessError, match="no training question"):
        SceneDeletion(FaithfulnessConfig(), {})


def test_recipe_refuses_faithfulness_without_scene_graphs(tmp_path):
    from mcd.training.recipe import Recipe, RecipeError
    from mcd.training.train import scene_deletion

    recipe = Recipe.from_dict({"train": {"faithfulness": {"oracle": 1}}})
    with pytest.raises(RecipeError, match="needs the scene graphs"):
        scene_deletion(recipe, [], None, 49)
    with pytest.raises(RecipeError, match="unknown fields"):
        scene_deletion(Recipe.from_dict({"train": {"faithfulness": {"orcale": 1}}}), [], None, 49)
    assert scene_deletion(Recipe(), [], None, 49) is None



def test_the_faithfulness_recipe_fine_tunes_the_base_recipes_checkpoint():
    from mcd.training.recipe import load_recipe

    recipe = load_recipe(ROOT / "configs" / "synth-faithful.json")
    base = load_recipe(ROOT / "configs" / "synth-default.json")
    assert recipe.train.init == recipe.encoders == f"{base.out}/best"
    assert recipe.model == base.model            # train.init loads the base's weights strictly
    assert FaithfulnessConfig.from_dict(recipe.train.faithfulness).oracle > 0
    assert recipe.synth.test_seed == base.synth.test_seed and recipe.synth.test_videos == base.synth.test_videos


@pytest.mark.parametrize("name", ["synth-default-faithful", "synth-faithful-base"])
def test_the_base_data_recipes_fine_tune_the_base_recipes_checkpoint_on_its_own_benchmark(name):
    """configs/synth-default-faithful.json (the shipped checkpoint's recipe; 3 epochs) and synth-faithful-base.json
    (2 epochs): the fine-tune sees the base's own clips through the base's own encoders, so it shares the base's
    data folder, synth settings and feature cache (a different seed or split would make it a different benchmark)
    and starts from the base's best checkpoint; the committed checkpoint records the shipped recipe's file as the
    recipe it was trained with."""
    from mcd.model.checkpoint import load_checkpoint
    from mcd.training.recipe import load_recipe
    from mcd.training.train import initial_weights, model_config

    recipe = load_recipe(ROOT / "configs" / f"{name}.json")
    base = load_recipe(ROOT / "configs" / "synth-default.json")
    assert recipe.data == base.data and recipe.synth == base.synth and recipe.out != base.out
    assert recipe.train.init == recipe.encoders == f"{base.out}/best"
    assert recipe.model == base.model
    assert FaithfulnessConfig.from_dict(recipe.train.faithfulness).oracle > 0
    shipped_dir = ROOT / "checkpoints" / "mcd-synth"
    recorded = json.loads((shipped_dir / "config.json").read_text())["provenance"]["recipe"]
    assert (recorded == recipe.to_dict()) == (name == "synth-default-faithful")
    # what train does with train.init: the recipe's model, at the base checkpoint's feature widths, loads its weights
    # strictly (initial_weights raises RecipeError on any missing or extra tensor); the shipped checkpoint has the
    # base's architecture
    shipped = load_checkpoint(shipped_dir).model.config
    dims = {k: getattr(shipped, k) for k in ("visual_dim", "audio_dim", "text_dim", "T", "P")}
    initial_weights(MCD(model_config(recipe.model, dims)), str(shipped_dir))
