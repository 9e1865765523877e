"""Checkpoint folders: exact round trip, atomic writes, and a clear error for every kind of damage."""
from __future__ import annotations

import json
import os
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file, save_file

import mcd.model.checkpoint as ckpt
from mcd.model.checkpoint import CheckpointError, load_checkpoint, save_checkpoint
from mcd.model.config import MCDConfig
from mcd.model import MCD
from mcd.task.vocab import ANSWERS

CFG = dict(visual_dim=12, audio_dim=10, text_dim=16, d=32, d_z=16, T=4, P=4, n_heads=4, ffn_mult=2)


pytestmark = pytest.mark.usefixtures("one_thread")


def inputs(cfg: MCDConfig, B: int = 3):
    g = torch.Generator().manual_seed(0)
    return dict(visual=torch.randn(B, cfg.T, cfg.P, cfg.visual_dim, generator=g),
                audio=torch.randn(B, cfg.T, cfg.audio_dim, generator=g),
                question=torch.randn(B, 5, cfg.text_dim, generator=g),
                question_mask=torch.ones(B, 5, dtype=torch.bool),
                objects=torch.randn(B, 2, cfg.text_dim, generator=g),
                objects_mask=torch.ones(B, 2, dtype=torch.bool))


@pytest.fixture
def saved(tmp_path):
    torch.manual_seed(0)
    model = MCD(MCDConfig(**CFG, hierarchy="low", shared_aggregator=False)).eval()
    path = tmp_path / "ckpt"
    save_checkpoint(path, model, extra_config={"encoders": {"visual": {"id": "synth"}}, "T": 4},
                    extra_tensors={"encoders.visual.conv.weight": torch.arange(6.0).view(2, 3)},
                    metrics={"overall": 0.5})
    return path, model


def rewrite_weights(path, edit):
    """Apply `edit` to the stored tensors and re-save, keeping config.json's hash in step (isolates the check)."""
    tensors = load_file(str(path / "model.safetensors"))
    edit(tensors)
    save_file(tensors, str(path / "model.safetensors"))
    edit_config(path, lambda c: c.update(model_sha256=ckpt._sha256(path / "model.safetensors")))


def edit_config(path, edit):
    config = json.loads((path / "config.json").read_text())
    edit(config)
    (path / "config.json").write_text(json.dumps(config))


# --- round trip ----------------------------------------------------------------------------------------------
def test_round_trip_gives_identical_outputs(saved):
    path, model = saved
    loaded = load_checkpoint(path)
    assert not loaded.model.training
    assert loaded.model.config == model.config
    x = inputs(model.config)
    a, b = model(**x), loaded.model(**x)
    assert torch.equal(a.logits, b.logits) and torch.equal(a.teacher_logits, b.teacher_logits)
    assert torch.equal(a.z_q, b.z_q)
    assert all(torch.equal(a.clues[k], b.clues[k]) for k in a.clues)
    assert torch.equal(loaded.extra_tensors["encoders.visual.conv.weight"], torch.arange(6.0).view(2, 3))
    assert set(loaded.extra_tensors) == {"encoders.visual.conv.weight"}
    assert loaded.config["encoders"] == {"visual": {"id": "synth"}} and loaded.config["T"] == 4
    assert loaded.config["answers"] == list(ANSWERS) and loaded.config["format_version"] == 2
    assert loaded.metrics == {"overall": 0.5}
    assert sorted(os.listdir(path)) == ["config.json", "metrics.json", "model.safetensors"]


def test_save_and_load_give_the_same_model(tmp_path):
    model = MCD(MCDConfig(**CFG)).eval()
    save_checkpoint(tmp_path / "m", model)
    again = load_checkpoint(tmp_path / "m").model
    x = inputs(model.config)
    assert torch.equal(model(**x).logits, again(**x).logits)
    assert not (tmp_path / "m" / "metrics.json").exists()


def test_overwrite_replaces_a_checkpoint_and_leaves_no_temp(saved):
    path, _ = saved
    other = MCD(MCDConfig(**CFG)).eval()
    save_checkpoint(path, other)
    loaded = load_checkpoint(path)
    assert loaded.model.config == other.config and loaded.metrics is None
    assert os.listdir(path.parent) == ["ckpt"]


def test_refuses_to_replace_unrelated_folder(tmp_path):
    (tmp_path / "notes.txt").write_text("keep me")
    with pytest.raises(CheckpointError, match="not an MCD checkpoint folder"):
        save_checkpoint(tmp_path, MCD(MCDConfig(**CFG)))
    assert (tmp_path / "notes.txt").read_text() == "keep me"


def test_failed_write_leaves_nothing_behind(tmp_path, saved, monkeypatch):
    path, model = saved

    def boom(*args, **kwargs):
        raise OSError("disk full")

    monkeypatch.setattr(ckpt, "_write_json", boom)
    with pytest.raises(OSError, match="disk full"):
        save_checkpoint(tmp_path / "new", model)
    with pytest.raises(OSError, match="disk full"):
        save_checkpoint(path, MCD(MCDConfig(**CFG)))           # over an existing checkpoint
    monkeypatch.undo()
    assert sorted(os.listdir(tmp_path)) == ["ckpt"]            # no "new", no temp folders
    assert load_checkpoint(path).model.config == model.config  # the old checkpoint is intact


def test_bad_save_arguments(tmp_path):
    model = MCD(MCDConfig(**CFG))
    with pytest.raises(CheckpointError, match="reserved key"):
        save_checkpoint(tmp_path / "a", model, extra_config={"format_version": 2})
    with pytest.raises(CheckpointError, match="reserved prefix"):
        save_checkpoint(tmp_path / "b", model, extra_tensors={"model.header.x": torch.zeros(1)})
    assert os.listdir(tmp_path) == []


# --- damage ----------------------------------------------------------------------------------------------------
def test_wrong_format_version(saved):
    path, _ = saved
    edit_config(path, lambda c: c.update(format_version=3))
    with pytest.raises(CheckpointError, match="unsupported format_version 3"):
        load_checkpoint(path)


def test_not_our_format(saved):
    path, _ = saved
    edit_config(path, lambda c: c.update(format="hf-transformers"))
    with pytest.raises(CheckpointError, match="not an MCD-AVQA checkpoint.*hf-transformers"):
        load_checkpoint(path)


def test_answer_order_differs(saved):
    path, _ = saved
    answers = list(ANSWERS)
    answers[3], answers[4] = answers[4], answers[3]
    edit_config(path, lambda c: c.update(answers=answers))
    with pytest.raises(CheckpointError, match="differs from the canonical order at index 3: 'no' instead of 'zero'"):
        load_checkpoint(path)
    edit_config(path, lambda c: c.update(answers=answers[:40]))
    with pytest.raises(CheckpointError, match="has 40 entries"):
        load_checkpoint(path)


def test_unknown_model_config_key(saved):
    path, _ = saved
    edit_config(path, lambda c: c["model"].update(n_layers=3))
    with pytest.raises(CheckpointError, match="unknown MCDConfig key.*n_layers"):
        load_checkpoint(path)


def test_missing_tensor_is_named(saved):
    path, _ = saved
    rewrite_weights(path, lambda t: t.pop("model.header.net.4.weight"))
    with pytest.raises(CheckpointError, match=r"missing tensor\(s\) model\.header\.net\.4\.weight"):
        load_checkpoint(path)


def test_unexpected_tensor_is_named(saved):
    path, _ = saved
    rewrite_weights(path, lambda t: t.update({"model.extra_layer.weight": torch.zeros(2)}))
    with pytest.raises(CheckpointError, match=r"unexpected tensor\(s\) model\.extra_layer\.weight"):
        load_checkpoint(path)


def test_config_that_disagrees_with_weights(saved):
    """A config edited to another architecture: the weights then miss that architecture's tensors."""
    path, _ = saved
    edit_config(path, lambda c: c["model"].update(hierarchy="both"))
    with pytest.raises(CheckpointError, match="missing tensor.*attn_high"):
        load_checkpoint(path)


def test_shape_mismatch_names_tensor_and_shapes(saved):
    path, _ = saved
    rewrite_weights(path, lambda t: t.update({"model.pos_t": torch.zeros(5, 32)}))
    with pytest.raises(CheckpointError, match=r"model\.pos_t: \(5, 32\) in .* expects \(4, 32\)"):
        load_checkpoint(path)


def test_corrupted_file(saved):
    path, _ = saved
    weights = path / "model.safetensors"
    data = bytearray(weights.read_bytes())
    data[-10] ^= 0xFF                                   # one flipped byte in the tensor data
    weights.write_bytes(bytes(data))
    with pytest.raises(CheckpointError, match="corrupted: its SHA-256 does not match"):
        load_checkpoint(path)
    # without a recorded hash, a damaged header is still caught by the safetensors reader
    weights.write_bytes(b"\x00\x01garbage" * 10)
    edit_config(path, lambda c: c.pop("model_sha256"))
    with pytest.raises(CheckpointError, match="corrupted or not a safetensors file"):
        load_checkpoint(path)


def test_pickle_is_never_loaded(saved):
    path, model = saved
    torch.save(model.state_dict(), path / "model.safetensors")   # a pickle under the safetensors name
    edit_config(path, lambda c: c.pop("model_sha256"))
    with pytest.raises(CheckpointError, match="not a safetensors file"):
        load_checkpoint(path)


@pytest.mark.parametrize("remove,message", [(None, "checkpoint folder not found"),
                                            ("config.json", "has no config.json"),
                                            ("model.safetensors", "has no model.safetensors")])
def test_missing_folder_or_files(tmp_path, saved, remove, message):
    path, _ = saved
    if remove is None:
        path = tmp_path / "nowhere"
    else:
        (path / remove).unlink()
    with pytest.raises(CheckpointError, match=message):
        load_checkpoint(path)


def test_config_json_not_json(saved):
    path, _ = saved
    (path / "config.json").write_text("{oops")
    with pytest.raises(CheckpointError, match="config.json is not valid JSON"):
        load_checkpoint(path)


def test_update_checkpoint_rewrites_the_config_and_keeps_the_weights_bytes(tmp_path):
    """update_checkpoint (mcd calibrate's writer) changes config.json and metrics.json only; a config that would
    build other modules is refused and the checkpoint is left as it was."""
    cfg = MCDConfig.from_dict(dict(d=32, d_z=16, n_heads=4, object_clues=True, object_grounding=True, grounding_classes=3,
                    grounded_expert=True))
    directory = save_checkpoint(tmp_path / "ck", MCD(cfg), metrics={"val": {"acc": 0.5}})
    weights = (directory / "model.safetensors").read_bytes()
    new = MCDConfig.from_dict({**cfg.to_dict(), "expert_type_weights": {"Audio/Counting": 0.5}})
    ckpt.update_checkpoint(directory, new, {"val": {"acc": 0.5, "calibrated_acc": 0.6}})
    assert (directory / "model.safetensors").read_bytes() == weights
    loaded = load_checkpoint(directory)
    assert loaded.model.config.ext.grounding.expert_type_weights == {"Audio/Counting": 0.5}
    assert loaded.metrics == {"val": {"acc": 0.5, "calibrated_acc": 0.6}}
    config_before = (directory / "config.json").read_text()
    with pytest.raises(CheckpointError):
        ckpt.update_checkpoint(directory, MCDConfig.from_dict({**new.to_dict(), "d": 64}))
    assert (directory / "config.json").read_text() == config_before
    assert sorted(p.name for p in tmp_path.iterdir()) == ["ck"]      # no temporary folder left behind


def test_saving_the_same_weights_in_two_processes_writes_the_same_bytes(tmp_path):
    """A reproduction compares weights files by bytes. safetensors writes its metadata in hash order, which is
    drawn per process: with two metadata keys, two saves of one model came out with the keys swapped (seen in
    `mcd calibrate` run twice). Each save here runs in a process of its own."""
    import subprocess
    import sys
    code = ("import sys, torch; from mcd.model.config import MCDConfig; from mcd.model import MCD; "
            "from mcd.model.checkpoint import save_checkpoint; torch.manual_seed(0); "
            "save_checkpoint(sys.argv[1], MCD(MCDConfig(d=32, d_z=16, n_heads=4)))")
    files = []
    for name in ("a", "b", "c"):
        subprocess.run([sys.executable, "-c", code, str(tmp_path / name)], check=True, cwd=Path(__file__).parent.parent)
        files.append((tmp_path / name / "model.safetensors").read_bytes())
    assert files[0] == files[1] == files[2]


def test_update_checkpoint_with_a_model_replaces_its_weights_and_keeps_the_rest(tmp_path):
    """update_checkpoint(model=...) (mcd calibrate's refit): the `model.*` tensors become the new model's, the extra
    tensors (the encoders) and the folder's other files stay, the hash in config.json follows the new file."""
    cfg = MCDConfig.from_dict(dict(d=32, d_z=16, n_heads=4, object_clues=True, object_grounding=True, grounding_classes=3,
                    grounded_expert=True))
    torch.manual_seed(0)
    directory = save_checkpoint(tmp_path / "ck", MCD(cfg), extra_tensors={"encoders.audio.w": torch.ones(3)})
    (directory / "README.md").write_text("card")
    torch.manual_seed(1)
    other = MCD(MCDConfig.from_dict({**cfg.to_dict(), "expert_comparator": True}))
    ckpt.update_checkpoint(directory, other.config, {"val": {"acc": 0.7}}, model=other)
    loaded = load_checkpoint(directory)
    assert loaded.model.config.ext.grounding.comparator is True
    assert all(torch.equal(v, other.state_dict()[k]) for k, v in loaded.model.state_dict().items())
    assert torch.equal(loaded.extra_tensors["encoders.audio.w"], torch.ones(3))
    assert (directory / "README.md").read_text() == "card" and loaded.metrics == {"val": {"acc": 0.7}}
