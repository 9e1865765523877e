"""The `synth` CNN encoders: output contract, layout, freezing, spec + state_dict round trip, input errors."""
from __future__ import annotations

import numpy as np
import pytest
import torch

from mcd.encoders import EncoderInputError, EncoderSpecError, build_encoder
from mcd.encoders.synth import SynthAudioEncoder, SynthVisualEncoder

VISUAL = {"modality": "visual", "backend": "synth"}
AUDIO = {"modality": "audio", "backend": "synth"}


def frames(t: int, h: int, w: int, seed: int = 0) -> np.ndarray:
    return np.random.default_rng(seed).integers(0, 256, (t, h, w, 3), dtype=np.uint8)


def windows(t: int, seed: int = 0) -> np.ndarray:
    return (0.1 * np.random.default_rng(seed).standard_normal((t, 16000))).astype(np.float32)


@pytest.mark.parametrize("shape", [(1, 112, 112), (3, 224, 224), (2, 90, 160), (4, 37, 301)])
def test_visual_shape_for_any_frame_size(shape):
    enc = build_encoder({**VISUAL, "dim": 96})
    out = enc.encode(frames(*shape))
    assert out.shape == (shape[0], 49, 96) and out.dtype == torch.float32 and enc.dim == 96
    assert torch.isfinite(out).all()


def test_visual_grid_is_row_major():
    """Changing only the top-right corner moves cell 6 (row 0, column 6); cells 0, 42 and 48 lie outside the
    CNN's receptive field of that corner and stay bit-identical (column-major order would move cell 42)."""
    enc = build_encoder(VISUAL)
    a = frames(1, 112, 112)
    b = a.copy()
    b[0, :16, 96:] = 255 - b[0, :16, 96:]
    fa, fb = enc.encode(a)[0], enc.encode(b)[0]
    assert not torch.allclose(fa[6], fb[6])
    for cell in (0, 42, 48):
        assert torch.equal(fa[cell], fb[cell])


def test_tensor_and_numpy_inputs_agree_and_batches_are_independent():
    enc = build_encoder(VISUAL)
    x = frames(70, 64, 64)  # more than one internal batch of 64
    whole = enc.encode(x)
    assert torch.equal(enc.encode(torch.from_numpy(x)), whole)
    assert torch.allclose(enc.encode(x[65:67]), whole[65:67], atol=1e-5)


def test_audio_shape_and_loudness_survives():
    enc = build_encoder({**AUDIO, "dim": 64})
    x = windows(5)
    out = enc.encode(x)
    assert out.shape == (5, 64) and out.dtype == torch.float32
    # the log-mel is not normalised per window: a louder copy of a sound gives other features
    assert not torch.allclose(enc.encode(4 * x), out, atol=1e-3)
    assert torch.allclose(enc.encode(x[2:3]), out[2:3], atol=1e-5)


@pytest.mark.parametrize("spec,make", [(VISUAL, lambda: frames(2, 50, 50)), (AUDIO, lambda: windows(2))])
def test_frozen(spec, make):
    enc = build_encoder(spec)
    assert not enc.training and not any(p.requires_grad for p in enc.parameters())
    assert not enc.encode(make()).requires_grad


@pytest.mark.parametrize("cls,spec,make", [
    (SynthVisualEncoder, VISUAL, lambda: frames(3, 80, 120)),
    (SynthAudioEncoder, AUDIO, lambda: windows(3)),
])
def test_spec_and_state_dict_round_trip(cls, spec, make):
    trained = cls(dim=48, arch={"widths": [8, 16, 24, 32]})
    with torch.no_grad():  # stand-in for training: weights that no fresh init would give
        for p in trained.parameters():
            p.add_(0.05 * torch.randn_like(p))
    for name, buf in trained.named_buffers():
        if name.endswith("running_var"):
            buf.fill_(1.7)
    trained.freeze()
    rebuilt = build_encoder(trained.spec(), trained.state_dict())
    assert type(rebuilt) is cls and rebuilt.spec() == trained.spec() and rebuilt.id == trained.id
    x = make()
    assert torch.equal(rebuilt.encode(x), trained.encode(x))
    fresh = build_encoder({**spec, "dim": 48, "arch": {"widths": [8, 16, 24, 32]}})
    assert fresh.id != trained.id and not torch.allclose(fresh.encode(x), trained.encode(x))


def test_audio_freq_strides_keep_frequency_detail_and_old_specs_load_as_before():
    """A spec written before `freq_strides` existed builds the [2, 2, 2, 2] net, whose weights it carries; the
    finer [2, 1, 2, 1] net keeps 16 frequency bins (4x the projection's input) and loads its own weights only."""
    old = SynthAudioEncoder(dim=32)
    spec = old.spec()
    assert spec["arch"]["freq_strides"] == [2, 2, 2, 2]
    del spec["arch"]["freq_strides"]
    rebuilt = build_encoder(spec, old.state_dict())
    x = windows(3)
    assert rebuilt.id == old.id and torch.equal(rebuilt.encode(x), old.encode(x))

    fine = SynthAudioEncoder(dim=32, arch={"freq_strides": [2, 1, 2, 1]})
    assert fine.net.proj.in_features == 4 * old.net.proj.in_features
    assert fine.encode(x).shape == (3, 32)
    assert build_encoder(fine.spec(), fine.state_dict()).id == fine.id
    with pytest.raises(EncoderSpecError, match="do not match its spec"):
        build_encoder({k: v for k, v in spec.items() if k != "digest"}, fine.state_dict())


def test_state_dict_that_does_not_fit_the_spec():
    small = SynthVisualEncoder(dim=32, arch={"widths": [8, 16, 24, 32]})
    with pytest.raises(EncoderSpecError):
        build_encoder({**VISUAL, "dim": 128}, small.state_dict())  # other widths: shape mismatch
    state = dict(small.state_dict())
    state.pop("net.proj.bias")
    with pytest.raises(EncoderSpecError, match="missing"):
        build_encoder({key: v for key, v in small.spec().items() if key != "digest"}, state)


@pytest.mark.parametrize("spec,match", [
    ({"modality": "visual", "backend": "resnet"}, "no visual encoder backend 'resnet'"),
    ({"modality": "smell", "backend": "synth"}, "modality 'smell'"),
    ({**VISUAL, "arch": {"depth": 3}}, "unknown synth architecture"),
    ({**VISUAL, "arch": {"widths": [8, 16]}}, "4 stage widths"),
    ({**VISUAL, "arch": {"freq_strides": [2, 1, 2, 1]}}, "unknown synth architecture"),
    ({**AUDIO, "arch": {"freq_strides": [2, 1, 2]}}, "4 strides of 1 or 2"),
    ({**AUDIO, "arch": {"freq_strides": [2, 4, 2, 1]}}, "4 strides of 1 or 2"),
    ("synth", "must be a dict"),
])
def test_bad_specs(spec, match):
    with pytest.raises(EncoderSpecError, match=match):
        build_encoder(spec)


def test_bad_inputs_name_the_problem():
    v, a = build_encoder(VISUAL), build_encoder(AUDIO)
    with pytest.raises(EncoderInputError, match="uint8"):
        v.encode(frames(1, 32, 32).astype(np.float32))
    with pytest.raises(EncoderInputError, match=r"\[T, H, W, 3\]"):
        v.encode(frames(1, 32, 32)[0])
    with pytest.raises(EncoderInputError, match="non-empty"):
        v.encode(np.zeros((0, 32, 32, 3), dtype=np.uint8))
    with pytest.raises(EncoderInputError, match=r"\[T, 16000\]"):
        a.encode(np.zeros((2, 8000), dtype=np.float32))
    with pytest.raises(EncoderInputError, match="float"):
        a.encode(np.zeros((2, 16000), dtype=np.int16))
    with pytest.raises(EncoderInputError, match="NaN"):
        a.encode(np.full((1, 16000), np.nan, dtype=np.float32))
