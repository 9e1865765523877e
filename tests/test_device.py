"""The device option (mcd/device.py) on a machine without CUDA, the standard dropout masks that replace the packed
bits off the CPU, and that `--device cpu` trains exactly as before. CUDA itself is checked by bench/gpu_check.sh
on a GPU machine; these tests pretend there is none (torch.cuda.is_available is patched), so they also hold there.
"""
from __future__ import annotations

import contextlib
import dataclasses
import json
import shutil
from pathlib import Path

import pytest
import torch

from mcd.cli import main
from mcd.device import DeviceError, autocast, move, pin, resolve_device
from mcd.model.dropout import LANES, Dropout, keep_mask, mask_source, standard_keep_mask, uses_packed

ROOT = Path(__file__).resolve().parent.parent
EXCERPT = ROOT / "tests" / "fixtures" / "released" / "avqa-excerpt.json"


@pytest.fixture
def no_cuda(monkeypatch):
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)


# ------------------------------------------------------------------------------------------------ choosing


def test_auto_without_cuda_picks_the_cpu_and_says_so(no_cuda, capsys):
    assert resolve_device("auto", announce=True) == torch.device("cpu")
    assert capsys.readouterr().err.strip() == "device: cpu (auto: CUDA is not available)"
    assert resolve_device(None) == torch.device("cpu") and capsys.readouterr().err == ""   # silent unless asked
    assert resolve_device("cpu") == resolve_device(torch.device("cpu")) == torch.device("cpu")


@pytest.mark.parametrize("spec", ["cuda", "cuda:0", "CUDA:1"])
def test_cuda_without_cuda_is_an_error(no_cuda, spec):
    with pytest.raises(DeviceError, match="CUDA is not available on this machine"):
        resolve_device(spec)


@pytest.mark.parametrize("spec", ["gpu", "cpu:0", "cuda:x", "auto:1", "cuda0"])
def test_unknown_devices_are_refused(spec):
    with pytest.raises(DeviceError, match="expected auto, cpu, cuda or cuda:N"):
        resolve_device(spec)


@pytest.mark.parametrize("argv", [
    ["train", "--config", "configs/synth-quick.json", "--device", "cuda"],
    ["train", "--config", "configs/synth-quick.json", "--set", "train.device=cuda:0"],
    ["predict", "--video", "missing.mp4", "--question", "How many instruments are sounding?", "--device", "cuda"],
    ["extract", "--data", "nowhere", "--encoders", "nowhere", "--cache", "nowhere", "--device", "cuda"],
    ["evaluate", "--checkpoint", "nowhere", "--data", "nowhere", "--device", "cuda:1"],
    ["reproduce", "--config", "configs/synth-quick.json", "--device", "cuda"],
])
def test_cli_cuda_without_cuda_is_one_line_and_exit_2(no_cuda, argv, capsys, monkeypatch):
    monkeypatch.chdir(ROOT)
    assert main(argv) == 2
    captured = capsys.readouterr()
    lines = captured.err.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith(f"mcd {argv[0]}: error: ") and "CUDA is not available" in lines[0]
    assert captured.out == ""


def test_app_cuda_without_cuda_is_one_line_and_exit_2(no_cuda, capsys):
    import app

    assert app.main(["--device", "cuda", "--checkpoint", str(ROOT / "checkpoints" / "mcd-synth")]) == 2
    lines = capsys.readouterr().err.strip().splitlines()
    assert len(lines) == 1 and "CUDA is not available" in lines[0]


def test_bf16_is_cuda_only_and_amp_values_are_checked(capsys):
    assert isinstance(autocast(torch.device("cpu"), "off"), contextlib.nullcontext)
    assert isinstance(autocast(torch.device("cpu"), "bf16", announce=True), contextlib.nullcontext)
    assert "float32 on the CPU" in capsys.readouterr().err
    with pytest.raises(DeviceError, match="train.amp must be 'off' or 'bf16'"):
        autocast(torch.device("cpu"), "fp16")


def test_move_and_pin_reach_every_tensor_of_a_batch():
    from mcd.model.grounding import GroundingTargets

    @dataclasses.dataclass
    class Holder:
        x: torch.Tensor
        rows: dict
        ids: list
        grounding: GroundingTargets | None

    g = GroundingTargets(*(torch.zeros(2, 3) for _ in range(5)))
    h = Holder(torch.ones(2), {"a": torch.zeros(1), "b": (torch.ones(1), 3)}, [1, 2], g)
    moved = move(h, torch.device("cpu"))
    assert moved.x is h.x and moved.rows["b"][0] is h.rows["b"][0] and moved.ids == [1, 2]   # no copies on the CPU
    assert isinstance(moved.grounding, GroundingTargets)
    if torch.cuda.is_available():      # pinning needs the CUDA driver; on a GPU machine check it too
        pinned = pin(h)
        assert pinned.x.is_pinned() and pinned.grounding.sounds.is_pinned() and pinned.rows["b"][1] == 3


# ------------------------------------------------------------------------------------------------ dropout


def test_masks_are_packed_on_the_cpu_only():
    assert uses_packed("cpu") and not uses_packed("cuda") and not uses_packed("meta")
    with mask_source("standard"):
        assert not uses_packed("cpu")
    with mask_source("packed"):
        assert uses_packed("cuda")
    assert uses_packed("cpu")
    with pytest.raises(ValueError, match="mask source"):
        with mask_source("fast"):
            pass


@pytest.mark.parametrize("p", [0.1, 0.25, 0.5])
def test_standard_masks_have_the_packed_masks_statistics(p):
    """The fallback (what CUDA uses) forced on the CPU: keep rate, mean and variance of the masks and of the
    dropped outputs match the packed masks' and the theory (keep q = 1 - threshold/LANES, scale 1/q: the output of
    ones has mean 1 and variance (1 - q) / q)."""
    n = 1_000_000
    drop = Dropout(p).train()
    q = 1 - drop.threshold / LANES
    torch.manual_seed(0)
    packed_mask = keep_mask((n,), drop.threshold).float()
    standard_mask = standard_keep_mask((n,), drop.threshold).float()
    ones = torch.ones(n)
    torch.manual_seed(1)
    packed = drop(ones)
    with mask_source("standard"):
        torch.manual_seed(1)
        standard = drop(ones)
        torch.manual_seed(1)
        drawn = drop(ones.view(1000, 1000), drawn_as=(1000, 1000), layout=lambda m: m.t()).flatten()
    tol = 4 * (q * (1 - q) / n) ** 0.5            # four standard errors of a keep rate
    for mask in (packed_mask, standard_mask):
        assert abs(mask.mean().item() - q) < tol
        assert abs(mask.var().item() - q * (1 - q)) < 2 * tol
    for y in (packed, standard, drawn):
        kept = y[y != 0]
        assert torch.allclose(kept, torch.full_like(kept, drop.scale))          # the same scale
        assert abs((y != 0).float().mean().item() - q) < tol                   # the same keep rate
        assert abs(y.mean().item() - 1) < tol / q                              # the expectation kept
        assert abs(y.var().item() - (1 - q) / q) < 3 * tol / q ** 2
    assert not torch.equal(packed, standard)      # it is another draw, not the packed one


def test_standard_masks_keep_the_gradient_and_eval_identity():
    drop = Dropout(0.3)
    x = torch.ones(5000, requires_grad=True)
    with mask_source("standard"):
        y = drop.train()(x)
        y.sum().backward()
        torch.testing.assert_close(x.grad, y.detach())
        assert drop.eval()(x) is x


# ------------------------------------------------------------------------------------------------ training


@pytest.fixture(scope="module")
def tiny_benchmark(tmp_path_factory):
    """13 real MUSIC-AVQA questions about 6 clips, random cached features, fresh synth encoders + MiniLM, a small
    recipe of one epoch."""
    from mcd.data.features import FeatureCache
    from mcd.encoders.pretrain import save_encoders
    from mcd.encoders.synth import SynthAudioEncoder, SynthVisualEncoder

    work = tmp_path_factory.mktemp("device-train")
    (work / "data").mkdir()
    for split in ("train", "val"):
        shutil.copy(EXCERPT, work / "data" / f"avqa-{split}.json")
    torch.manual_seed(0)
    save_encoders(work / "encoders", SynthVisualEncoder(dim=8, arch={"widths": [4, 4, 8, 8]}),
                  SynthAudioEncoder(dim=8, arch={"widths": [4, 4, 8, 8]}), {})
    cache = FeatureCache(work / "cache", meta={"T": 4, "encoders": {}})
    g = torch.Generator().manual_seed(0)
    for video in sorted({r["video_id"] for r in json.loads(EXCERPT.read_text())}):
        cache.save(video, torch.randn(4, 4, 8, generator=g), torch.randn(4, 8, generator=g))
    recipe = {"name": "device-tiny", "data": {"root": "data", "features": "cache"}, "encoders": "encoders",
              "model": {"d": 16, "d_z": 8, "n_heads": 2, "n_blocks": 1, "dropout": 0.1},
              "train": {"epochs": 1, "batch_size": 8, "warmup_steps": 2, "seed": 0}, "out": "runs/tiny"}
    (work / "recipe.json").write_text(json.dumps(recipe))
    return work


def _train(work: Path, *extra: str) -> tuple[list[dict], dict]:
    out = f"runs/{len(list((work / 'runs').glob('*'))) if (work / 'runs').exists() else 0}"
    with contextlib.chdir(work):
        assert main(["train", "--config", "recipe.json", "--quiet", "--out", out, *extra]) == 0
    log = [json.loads(line) for line in (work / out / "log.jsonl").read_text().splitlines()]
    return log, torch.load(work / out / "last.pt", weights_only=True)["model"]


def test_device_cpu_trains_bit_identically_to_no_flag(tiny_benchmark, no_cuda, capsys):
    """`--device cpu`, `train.device=cpu` and the default (auto, which picks the CPU here) make the same run: the
    same loss to the last bit and the same weights."""
    base_log, base_weights = _train(tiny_benchmark)
    assert "device: cpu (auto: CUDA is not available)" in capsys.readouterr().err
    for extra in (["--device", "cpu"], ["--set", "train.device=cpu"], ["--set", "train.amp=bf16"]):
        log, weights = _train(tiny_benchmark, *extra)
        assert [e["train_loss"] for e in log] == [e["train_loss"] for e in base_log], extra
        assert all(torch.equal(weights[k], base_weights[k]) for k in base_weights), extra
    assert base_log[0]["train_loss"] > 0


def test_bad_amp_value_is_a_recipe_error(tiny_benchmark, capsys):
    with contextlib.chdir(tiny_benchmark):
        assert main(["train", "--config", "recipe.json", "--quiet", "--set", "train.amp=fp16"]) == 2
    assert "train.amp must be 'off' or 'bf16'" in capsys.readouterr().err


# ------------------------------------------------------------------------------------------------ extraction


def test_extraction_batches_clips_and_keeps_each_clips_features(tmp_path, monkeypatch):
    """Several clips encoded as one batch (what CUDA does by default) give each clip the features it gets alone;
    a clip with frames of another size starts a new batch; a clip that fails to decode is reported, not batched."""
    import numpy as np

    from mcd import media
    from mcd.data.extract import extract
    from mcd.data.features import FeatureCache
    from mcd.encoders.encoder_set import EncoderSet
    from mcd.encoders.synth import SynthAudioEncoder, SynthVisualEncoder

    class Clip:
        def __init__(self, seed: int, side: int):
            rng = np.random.default_rng(seed)
            self.frames = rng.integers(0, 256, (3, side, side, 3), dtype=np.uint8)
            self.audio_segments = rng.standard_normal((3, 16000)).astype(np.float32) * 0.1

    sides = {"a": 32, "b": 32, "c": 48, "d": 32, "e": 32}

    def fake_decode(path, T):
        if path.stem == "bad":
            raise media.MediaError("broken", "this clip is broken")
        return Clip(ord(path.stem), sides[path.stem])

    monkeypatch.setattr(media, "decode", fake_decode)
    torch.manual_seed(0)
    encoders = EncoderSet(SynthVisualEncoder(dim=8, arch={"widths": [4, 4, 8, 8]}),
                          SynthAudioEncoder(dim=8, arch={"widths": [4, 4, 8, 8]}), None)
    videos = {v: tmp_path / f"{v}.mp4" for v in [*sides, "bad"]}
    one = FeatureCache(tmp_path / "one", meta={})
    many = FeatureCache(tmp_path / "many", meta={})
    assert extract(videos, encoders, one, 3, workers=0, progress=False)["encoded"] == 5
    result = extract(videos, encoders, many, 3, workers=0, progress=False, clips_per_batch=3)
    assert result["encoded"] == 5 and list(result["failed"]) == ["bad"]
    for v in sides:
        a, b = one.load(v), many.load(v)
        torch.testing.assert_close(a["visual"], b["visual"], atol=2e-3, rtol=2e-3)
        torch.testing.assert_close(a["audio"], b["audio"], atol=2e-3, rtol=2e-3)


# ------------------------------------------------------------------------------------------------ the GPU script


def test_gpu_check_script_parses_plans_and_stops_without_cuda(tmp_path):
    """bench/gpu_check.sh is for a GPU machine; here: it parses, its dry run lists every measurement, and a real
    run on a machine without CUDA stops after the install step with exit 3 and one line, having measured nothing."""
    import os
    import subprocess
    import sys

    script = ROOT / "bench" / "gpu_check.sh"
    assert subprocess.run(["bash", "-n", str(script)]).returncode == 0
    env = {**os.environ, "GPU_CHECK_PYTHON": sys.executable, "GPU_CHECK_SETUP": "skip", "OUT": str(tmp_path)}
    dry = subprocess.run(["bash", str(script), "--dry-run"], env=env, capture_output=True, text=True)
    assert dry.returncode == 0, dry.stderr
    for planned in ("mcd reproduce --config configs/synth-quick.json --device cuda", "--set train.amp=bf16",
                    "--device cpu", "bench/app_latency.py --device cuda", "dry run: nothing was run"):
        assert planned in dry.stdout
    if not torch.cuda.is_available():
        real = subprocess.run(["bash", str(script)], env=env, capture_output=True, text=True)
        assert real.returncode == 3 and real.stderr.strip().startswith("gpu_check: no CUDA device")
        assert len(real.stderr.strip().splitlines()) == 1 and not (tmp_path / "gpu_check.md").exists()
