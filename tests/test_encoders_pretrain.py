"""`mcd pretrain-encoders` and its labels, on a tiny fake benchmark written here with PyAV.

The fake world is trivially learnable on purpose (each instrument is a flat colour and a pure tone), so a few
dozen optimiser steps must already separate the classes: a training loop with a broken loss, label alignment
or frozen parameters would fail the accuracy checks.
"""
from __future__ import annotations

import json
from fractions import Fraction
from pathlib import Path

import av
import numpy as np
import pytest
import torch
from safetensors.torch import load_file

from mcd.cli import main as cli_main
from mcd.encoders import EncoderSpecError, build_encoder
from mcd.encoders.labels import (
    IGNORE,
    LabelSpace,
    SceneLabelError,
    audio_targets,
    cell_labels,
    parse_scene,
    read_scenes,
    single_instrument,
)

COLOURS = {"violin": (230, 30, 30), "piano": (30, 220, 60), "drum": (250, 230, 20)}
TONES = {"violin": 880.0, "piano": 262.0, "drum": 120.0}
BACKGROUNDS = {"indoor": (70, 45, 30), "outdoor": (120, 180, 235)}
BOXES = {"left": [8, 56, 72, 200], "middle": [80, 56, 144, 200], "right": [152, 56, 216, 200]}
DURATION, FPS, SIZE, SR = 3.0, 8, 224, 16000


def fake_scene(i: int, split: str) -> dict:
    """Deterministic scene i: 1-2 players, one of them sounding only in the first half on odd i."""
    rng = np.random.default_rng(i)
    names = list(COLOURS)
    n = 1 + i % 2
    positions = ["left", "right"] if n == 2 else [["left", "middle", "right"][i % 3]]
    players = []
    for k, pos in enumerate(positions):
        inst = names[(i + k) % 3]
        intervals = [[0.0, DURATION]] if k == 0 else [[0.0, 1.0]]
        players.append({"instrument": inst, "position": pos, "bbox": BOXES[pos],
                        "loudness": float(rng.uniform(0.4, 1.0)), "rate": float(rng.uniform(1, 4)),
                        "intervals": intervals})
    return {"video_id": f"fake_{i:03d}", "split": split, "duration": DURATION, "fps": FPS, "size": SIZE,
            "background": "indoor" if i % 2 else "outdoor", "players": players, "offscreen": None,
            "voiceover": {"intervals": [[2.0, 3.0]]} if i % 3 == 0 else None}


def write_clip(path: Path, scene: dict) -> None:
    image = np.zeros((SIZE, SIZE, 3), dtype=np.uint8)
    image[:] = BACKGROUNDS[scene["background"]]
    for p in scene["players"]:
        x0, y0, x1, y1 = p["bbox"]
        image[y0:y1, x0:x1] = COLOURS[p["instrument"]]
    t = np.arange(int(DURATION * SR)) / SR
    audio = np.zeros_like(t)
    for p in scene["players"]:
        on = np.zeros_like(t, dtype=bool)
        for a, b in p["intervals"]:
            on |= (t >= a) & (t < b)
        audio += 0.3 * p["loudness"] * np.sin(2 * np.pi * TONES[p["instrument"]] * t) * on
    with av.open(str(path), "w") as out:
        vs = out.add_stream("libx264", rate=FPS)
        vs.width, vs.height, vs.pix_fmt = SIZE, SIZE, "yuv420p"
        vs.options = {"preset": "ultrafast"}
        st = out.add_stream("aac", rate=SR, layout="mono")
        for i in range(int(DURATION * FPS)):
            frame = av.VideoFrame.from_ndarray(image, format="rgb24").reformat(format="yuv420p")
            frame.pts = i
            out.mux(vs.encode(frame))
        out.mux(vs.encode())
        samples = audio.astype(np.float32)[None]
        for start in range(0, samples.shape[1], 1024):
            frame = av.AudioFrame.from_ndarray(np.ascontiguousarray(samples[:, start:start + 1024]), format="fltp",
                                               layout="mono")
            frame.sample_rate, frame.pts, frame.time_base = SR, start, Fraction(1, SR)
            out.mux(st.encode(frame))
        out.mux(st.encode())


@pytest.fixture
def one_thread():
    """Train on one thread: on a machine shared with other jobs, two OpenMP threads spin-waiting on each other
    made this test 7x slower (70 s vs 11 s measured); one thread costs little on an idle machine."""
    saved = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(saved)


@pytest.fixture(scope="module")
def benchmark(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("fake-bench")
    (root / "videos").mkdir()
    scenes = [fake_scene(i, "train") for i in range(8)] + [fake_scene(i, "val") for i in range(8, 12)]
    with (root / "scenes.jsonl").open("w") as f:
        for s in scenes:
            f.write(json.dumps(s) + "\n")
            write_clip(root / "videos" / f"{s['video_id']}.mp4", s)
    return root


# ----------------------------------------------------------------------------- labels


def test_cell_labels_follow_bounding_boxes():
    scene = parse_scene(fake_scene(1, "train"))  # indoor; players left [8, 56, 72, 200] and right [152, 56, 216, 200]
    space = LabelSpace.from_scenes([scene, parse_scene(fake_scene(0, "train"))])
    cells = cell_labels(scene, space).reshape(7, 7)
    L, R = (space.visual.index(p["instrument"]) for p in scene.players)
    B, X = space.visual.index("background:indoor"), IGNORE
    # 32-px cells. Columns: left box covers col 0 by 0.75, col 1 fully, col 2 by 0.25; right box mirrors it.
    # Rows: 1 and 6 are covered by 0.25, rows 2-5 fully. >= 0.4 -> instrument, <= 0.1 -> background, else ignored
    edge = [X, X, B, B, B, X, X]            # rows 1 and 6: 0.19 / 0.25 covered, col 2 and 4 only 0.06
    core = [L, L, X, B, X, R, R]
    assert cells.tolist() == [[B] * 7, edge, core, core, core, core, edge]
    assert space.visual[: space.num_backgrounds] == ("background:indoor", "background:outdoor")


def test_audio_targets_are_window_fractions():
    scene = parse_scene(fake_scene(3, "train"))  # two players (second sounds 0..1 s), voiceover 2..3 s
    space = LabelSpace.from_scenes([scene])
    tg = audio_targets(scene, np.array([0.5, 1.0, 2.5]), space)
    first, second = (space.audio.index(p["instrument"]) for p in scene.players)
    assert tg.presence[:, first].tolist() == [1.0, 1.0, 1.0]
    assert tg.presence[:, second].tolist() == pytest.approx([1.0, 0.5, 0.0])
    assert tg.presence[:, -1].tolist() == pytest.approx([0.0, 0.0, 1.0])      # voiceover
    assert tg.loudness[0, second] == pytest.approx(scene.players[1]["loudness"])
    assert tg.log_rate[0, second] == pytest.approx(np.log(scene.players[1]["rate"]))
    assert tg.mask[:, second].tolist() == [True, True, False] and not tg.mask[:, -1].any()
    # windows 0 and 1 hold two instruments, window 2 the voiceover; 1..2 s holds only the first player
    assert single_instrument(tg).tolist() == [-1, -1, -1]
    tg2 = audio_targets(scene, np.array([1.5]), space)
    assert single_instrument(tg2).tolist() == [first]


def test_read_scenes_reports_the_bad_line(tmp_path):
    path = tmp_path / "scenes.jsonl"
    path.write_text(json.dumps(fake_scene(0, "train")) + "\n" + json.dumps({"video_id": "x"}) + "\n")
    with pytest.raises(SceneLabelError, match=r"scenes.jsonl:2: malformed"):
        read_scenes(path)
    with pytest.raises(SceneLabelError, match="does not exist"):
        read_scenes(tmp_path / "nope.jsonl")


# ----------------------------------------------------------------------------- the command


def _run(benchmark: Path, out: Path, steps: int, workers: int = 0) -> int:
    return cli_main(["pretrain-encoders", "--data", str(benchmark), "--out", str(out), "--T", "3",
                     "--visual-steps", str(steps), "--audio-steps", str(steps), "--batch-size", "16",
                     "--workers", str(workers), "--lr", "3e-3"])


def test_pretrain_writes_frozen_encoders_that_learned(benchmark, tmp_path, capsys, one_thread):
    out = tmp_path / "enc"
    assert _run(benchmark, out, steps=30) == 0
    printed = capsys.readouterr().out
    assert "held-out (val, 4 videos)" in printed

    specs = json.loads((out / "encoders.json").read_text())
    assert set(specs) == {"visual", "audio", "text"} and specs["text"]["backend"] == "minilm"
    assert specs["visual"]["provenance"]["visual_classes"] == [
        "background:indoor", "background:outdoor", "drum", "piano", "violin"]
    assert specs["audio"]["provenance"]["audio_classes"] == ["drum", "piano", "violin", "voiceover"]

    visual = build_encoder(specs["visual"], load_file(out / "visual.safetensors"))
    audio = build_encoder(specs["audio"], load_file(out / "audio.safetensors"))
    assert visual.id.endswith(specs["visual"]["digest"]) and audio.id.endswith(specs["audio"]["digest"])
    assert not any(p.requires_grad for p in visual.parameters()) and not visual.training

    metrics = json.loads((out / "metrics.json").read_text())
    assert metrics["train_videos"] == 8 and metrics["train_frames"] == 24 and metrics["held_out_videos"] == 4
    # flat colours and pure tones: far above chance (5 visual classes, 3 instruments) after 30 steps
    assert metrics["visual"]["cell_accuracy"] > 0.9
    assert metrics["visual"]["instrument_cell_accuracy"] > 0.8
    assert metrics["audio"]["single_instrument_accuracy"] > 0.9

    # the saved visual encoder separates a red (violin) cell from a yellow (drum) cell of a fresh frame
    frame = np.zeros((1, SIZE, SIZE, 3), dtype=np.uint8)
    frame[:] = BACKGROUNDS["outdoor"]
    frame[0, 56:200, 8:72] = COLOURS["violin"]
    frame[0, 56:200, 152:216] = COLOURS["drum"]
    feats = visual.encode(frame)[0].reshape(7, 7, -1)
    left, right, sky = feats[3, 0], feats[3, 6], feats[0, 3]
    assert torch.dist(left, right) > 0.1 * left.norm()
    assert torch.dist(left, sky) > 0.1 * left.norm()


def test_weights_from_another_run_are_rejected(benchmark, tmp_path, one_thread):
    assert _run(benchmark, tmp_path / "a", steps=1, workers=1) == 0  # also decodes in a worker process
    specs = json.loads((tmp_path / "a" / "encoders.json").read_text())
    other = build_encoder({"modality": "visual", "backend": "synth"}).state_dict()
    with pytest.raises(EncoderSpecError, match="digest"):
        build_encoder(specs["visual"], other)


def test_cli_errors_are_messages(tmp_path, capsys):
    assert cli_main(["pretrain-encoders", "--data", str(tmp_path / "none"), "--out", str(tmp_path / "o")]) == 2
    assert "is not a folder" in capsys.readouterr().err
    assert cli_main(["pretrain-encoders", "--data", str(tmp_path), "--out", str(tmp_path / "o")]) == 2
    assert "scenes.jsonl does not exist" in capsys.readouterr().err
    assert cli_main(["pretrain-encoders", "--data", str(tmp_path), "--out", str(tmp_path / "o"), "--T", "0"]) == 2
    assert "--T must be at least 1" in capsys.readouterr().err
    (tmp_path / "videos").mkdir()
    (tmp_path / "videos" / "fake_001.mp4").write_text("not a video")
    (tmp_path / "scenes.jsonl").write_text(json.dumps(fake_scene(0, "train")) + "\n" + json.dumps(fake_scene(1, "train")))
    assert cli_main(["pretrain-encoders", "--data", str(tmp_path), "--out", str(tmp_path / "o"), "--workers", "0"]) == 2
    captured = capsys.readouterr()
    assert "none of the 1 training clips" in captured.err
    assert "fake_000.mp4: missing" in captured.out and "skipped fake_001.mp4:" in captured.out


# ----------------------------------------------------------------------------- mixing windows (audio_mix)


def _window_set(n: int = 6, classes: int = 3) -> "ClipSet":
    from mcd.encoders.pretrain import ClipSet

    g = torch.Generator().manual_seed(0)
    presence = (torch.rand(n, classes, generator=g) > 0.5).float() * torch.rand(n, classes, generator=g)
    mask = presence > 0
    return ClipSet(video_ids=["v"], frames=torch.zeros(n, 3, 4, 4, dtype=torch.uint8),
                   cells=torch.zeros(n, 49, dtype=torch.long), logmel=torch.zeros(n, 1, 64, 101, dtype=torch.half),
                   presence=presence, loudness=torch.rand(n, classes, generator=g) * mask,
                   log_rate=torch.randn(n, classes, generator=g) * mask, level_mask=mask,
                   single=torch.full((n,), -1), clip_of=torch.zeros(n, dtype=torch.long),
                   waves=0.1 * torch.randn(n, 16000, generator=g))


def test_mixed_windows_sum_their_sound_and_join_their_labels():
    from mcd.encoders.pretrain import mix_windows
    from mcd.encoders.synth import SynthAudioEncoder

    enc, data = SynthAudioEncoder(), _window_set()
    idx = torch.tensor([0, 1, 2, 3, 4, 5])
    gen = torch.Generator().manual_seed(3)
    logmel, (presence, loudness, log_rate, mask) = mix_windows(enc, data, idx, gen, p=1.0)
    other = torch.randint(len(data), (len(idx),), generator=torch.Generator().manual_seed(3))  # the partners drawn
    assert torch.equal(logmel, enc.preprocess(data.waves[idx] + data.waves[other]))
    assert torch.equal(presence, torch.maximum(data.presence[idx], data.presence[other]))
    assert torch.equal(mask, data.level_mask[idx] | data.level_mask[other])
    for i, j in zip(idx.tolist(), other.tolist()):
        for c in range(3):
            a, b = bool(data.level_mask[i, c]), bool(data.level_mask[j, c])
            # the louder player's loudness and rate where both windows have the class, else the one that has it
            src = j if b and (not a or data.loudness[j, c] > data.loudness[i, c]) else i
            if a or b:
                assert loudness[i, c] == data.loudness[src, c] and log_rate[i, c] == data.log_rate[src, c]


def test_windows_left_unmixed_keep_their_sound_and_labels():
    from mcd.encoders.pretrain import mix_windows
    from mcd.encoders.synth import SynthAudioEncoder

    enc, data = SynthAudioEncoder(), _window_set()
    idx = torch.tensor([5, 0, 3])
    logmel, (presence, loudness, log_rate, mask) = mix_windows(enc, data, idx, torch.Generator().manual_seed(1), p=0.0)
    assert torch.equal(logmel, enc.preprocess(data.waves[idx]))
    for got, want in ((presence, data.presence), (loudness, data.loudness), (log_rate, data.log_rate),
                      (mask, data.level_mask)):
        assert torch.equal(got, want[idx])


def test_pretrain_with_mixing_keeps_the_windows_and_records_it(benchmark, tmp_path, one_thread):
    out = tmp_path / "enc"
    assert cli_main(["pretrain-encoders", "--data", str(benchmark), "--out", str(out), "--T", "3", "--visual-steps",
                     "0", "--audio-steps", "60", "--batch-size", "16", "--workers", "0", "--lr", "3e-3",
                     "--audio-mix", "0.5", "--audio-arch", '{"freq_strides": [2, 1, 2, 2]}']) == 0
    metrics = json.loads((out / "metrics.json").read_text())
    assert metrics["audio_mix"] == 0.5 and metrics["visual_steps"] == 0  # 0 steps leaves the visual CNN as it is
    assert metrics["audio"]["single_instrument_accuracy"] > 0.9
    # the architecture travels in the spec, so extraction and the checkpoint rebuild the same net
    spec = json.loads((out / "encoders.json").read_text())["audio"]
    assert spec["arch"]["freq_strides"] == [2, 1, 2, 2]
    audio = build_encoder(spec, load_file(out / "audio.safetensors"))
    assert audio.net.proj.in_features == 2 * audio.arch["widths"][-1] * 8 and audio.id.endswith(spec["digest"])


@pytest.mark.parametrize("value,message", [
    ('{"freq_strides": [2, 1, 3, 1]}', "--audio-arch: synth freq_strides must list 4 strides of 1 or 2"),
    ('{"depth": 3}', "--audio-arch: unknown synth architecture fields ['depth']"),
])
def test_audio_arch_must_fit_the_synth_net(tmp_path, capsys, value, message):
    assert cli_main(["pretrain-encoders", "--data", str(tmp_path), "--out", str(tmp_path / "o"),
                     "--audio-arch", value]) == 2
    assert message in capsys.readouterr().err and not (tmp_path / "o").exists()


@pytest.mark.parametrize("value,message", [
    ("[2, 1, 2, 2]", "a JSON object of architecture fields"),
    ("{freq_strides: 1}", "not JSON"),
])
def test_audio_arch_must_be_a_json_object(tmp_path, capsys, value, message):
    with pytest.raises(SystemExit) as exc:   # argparse's own type check: usage line, exit 2
        cli_main(["pretrain-encoders", "--data", str(tmp_path), "--out", str(tmp_path / "o"), "--audio-arch", value])
    assert exc.value.code == 2 and message in capsys.readouterr().err


@pytest.mark.parametrize("value", ["-0.1", "1.5"])
def test_audio_mix_must_be_a_probability(tmp_path, capsys, value):
    assert cli_main(["pretrain-encoders", "--data", str(tmp_path), "--out", str(tmp_path / "o"),
                     "--audio-mix", value]) == 2
    assert "--audio-mix is a probability between 0 and 1" in capsys.readouterr().err


# ----------------------------------------------------------------------------- joined with a pretrained encoder


def test_join_puts_pretrained_encoders_beside_the_synth_cnns(benchmark, tmp_path, capsys, one_thread):
    from mcd.encoders.encoder_set import EncoderSet
    from mcd.encoders.joined import JoinedAudioEncoder, JoinedVisualEncoder

    out = tmp_path / "joined"
    assert cli_main(["pretrain-encoders", "--data", str(benchmark), "--out", str(out), "--T", "3",
                     "--visual-steps", "2", "--audio-steps", "2", "--batch-size", "16", "--workers", "0",
                     "--join-visual", '{"backend": "efficientnet-lite0"}', "--join-audio", '{"backend": "musicnn"}',
                     "--join-clips", "4"]) == 0
    specs = json.loads((out / "encoders.json").read_text())
    assert [p["backend"] for p in specs["visual"]["parts"]] == ["efficientnet-lite0", "synth"]
    assert [p["backend"] for p in specs["audio"]["parts"]] == ["musicnn", "synth"]
    join = json.loads((out / "metrics.json").read_text())["join"]
    assert join["clips"] == 4
    # the imbalance the standardisation corrects is on record: ImageNet features are far larger than the CNN's
    pre, synth = join["visual_mean_abs"].values()
    assert pre > 5 * synth

    encoders = EncoderSet.from_folder(out)
    visual, audio = encoders.visual, encoders.audio
    assert isinstance(visual, JoinedVisualEncoder) and isinstance(audio, JoinedAudioEncoder)
    assert visual.dim == 112 + 128 and audio.dim == 1506 + 128 and visual.id == f"joined-visual({visual.parts[0].id}"\
        f"+{visual.parts[1].id})-{specs['visual']['digest']}"
    # the checkpoint carries the synth part's weights and the join's statistics, not the packaged weights
    tensors = encoders.state_tensors()
    assert {"encoders.visual.feature_mean", "encoders.visual.feature_std", "encoders.audio.feature_std"} <= set(tensors)
    assert any(k.startswith("encoders.visual.part1.net.") for k in tensors)
    assert not any(k.startswith("encoders.visual.part0.") for k in tensors)

    # the fitting clips come out standardised: each feature about zero mean, and the two parts on one scale
    from mcd import media
    clips = [media.decode(benchmark / "videos" / f"fake_{i:03d}.mp4", T=3) for i in range(4)]
    feats = torch.cat([visual.encode(c.frames).reshape(-1, visual.dim) for c in clips])
    assert feats.mean(0).abs().max() < 1e-3
    pre_part, synth_part = feats[:, :112].abs().mean(), feats[:, 112:].abs().mean()
    assert 0.2 < pre_part / synth_part < 5
    # and the raw concatenation is the parts' own features side by side
    raw = visual.raw(clips[0].frames)
    assert torch.equal(raw[..., :112], visual.parts[0].encode(clips[0].frames))
    assert torch.equal(raw[..., 112:], visual.parts[1].encode(clips[0].frames))

    rebuilt = EncoderSet.from_specs(encoders.specs(), tensors)
    assert torch.equal(rebuilt.audio.encode(clips[1].audio_segments), audio.encode(clips[1].audio_segments))
    stale = dict(tensors, **{"encoders.audio.feature_mean": tensors["encoders.audio.feature_mean"] + 1})
    with pytest.raises(EncoderSpecError, match="digest"):
        EncoderSet.from_specs(encoders.specs(), stale)


def test_join_errors_are_messages(tmp_path, capsys):
    from mcd.encoders.joined import JoinedVisualEncoder

    assert cli_main(["pretrain-encoders", "--data", str(tmp_path), "--out", str(tmp_path / "o"),
                     "--join-visual", '{"backend": "resnet"}']) == 2
    assert "--join-visual: no visual encoder backend 'resnet'" in capsys.readouterr().err
    with pytest.raises(EncoderSpecError, match="at least two"):
        build_encoder({"modality": "visual", "backend": "joined", "parts": [{"modality": "visual",
                                                                              "backend": "synth"}]})
    with pytest.raises(EncoderSpecError, match="cannot hold audio"):
        JoinedVisualEncoder([build_encoder({"modality": "visual", "backend": "synth"}),
                             build_encoder({"modality": "audio", "backend": "synth"})])


def test_swapping_the_audio_cnn_keeps_the_model_and_the_picture(benchmark, tmp_path, one_thread):
    """bench/swap_audio_encoder.py: only the synth part behind MusiCNN (and the join's statistics) change."""
    import importlib.util

    from mcd.encoders.encoder_set import EncoderSet
    from mcd.model.checkpoint import load_checkpoint

    root = Path(__file__).resolve().parent.parent
    spec = importlib.util.spec_from_file_location("swap_audio_encoder", root / "bench" / "swap_audio_encoder.py")
    swap = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(swap)

    cnn = tmp_path / "cnn"
    assert cli_main(["pretrain-encoders", "--data", str(benchmark), "--out", str(cnn), "--T", "3",
                     "--visual-steps", "0", "--audio-steps", "2", "--batch-size", "16", "--workers", "0"]) == 0
    source = root / "checkpoints" / "mcd-synth"
    out = tmp_path / "swapped"
    swap.main([str(source), str(cnn), str(benchmark), str(out), "--join-clips", "2", "--T", "3"])

    before, after = load_checkpoint(source), load_checkpoint(out)
    new_cnn = json.loads((cnn / "encoders.json").read_text())["audio"]
    parts = after.config["encoders"]["audio"]["parts"]
    assert [p["backend"] for p in parts] == ["musicnn", "synth"] and parts[1]["digest"] == new_cnn["digest"]
    assert parts[1]["digest"] != before.config["encoders"]["audio"]["parts"][1]["digest"]
    old_model = before.model.state_dict()
    assert all(torch.equal(t, old_model[k]) for k, t in after.model.state_dict().items())
    assert after.config["encoders"]["visual"] == before.config["encoders"]["visual"]
    for section in ("clue_quality", "ood"):
        assert section in before.config and section not in after.config
    assert any(k.startswith("ood.") for k in before.extra_tensors)
    assert not any(k.startswith("ood.") for k in after.extra_tensors)
    for name, t in before.extra_tensors.items():
        if name.startswith("encoders.visual."):
            assert torch.equal(after.extra_tensors[name], t)
    audio = EncoderSet.from_specs(after.config["encoders"], after.extra_tensors).audio
    assert torch.equal(audio.parts[1].state_dict()["net.proj.weight"], load_file(cnn / "audio.safetensors")["net.proj.weight"])

    with pytest.raises(SystemExit, match="neither an encoder folder"):
        swap.main([str(source), str(benchmark), str(benchmark), str(tmp_path / "bad")])
    with pytest.raises(SystemExit, match="does not exist; pass the folder written by `mcd synth`"):
        swap.main([str(source), str(cnn), str(tmp_path / "no-data"), str(tmp_path / "bad")])
    assert not (tmp_path / "bad").exists()


def test_the_audio_steps_recipe_changes_only_the_audio_cnns_pretraining():
    """configs/synth-audio6000.json (docs/clues.md) is a controlled comparison with the shipped base recipe: the same
    clips, model and training, only `pretrain.audio_steps` differs, and its features, encoders and runs go to their
    own folders so neither run reads the other's cache."""
    from mcd.training.recipe import load_recipe
    from tests.conftest import ROOT

    root = ROOT / "configs"
    base = load_recipe(root / "synth-default.json").to_dict()
    longer = load_recipe(root / "synth-audio6000.json").to_dict()
    assert longer["pretrain"]["audio_steps"] > base["pretrain"]["audio_steps"]
    assert longer["data"]["root"] == base["data"]["root"] and longer["synth"] == base["synth"]
    assert longer["model"] == base["model"] and longer["train"] == base["train"]
    assert {k: v for k, v in longer["pretrain"].items() if k != "audio_steps"} == \
        {k: v for k, v in base["pretrain"].items() if k != "audio_steps"}
    own = (longer["data"]["features"], longer["encoders"], longer["out"])
    assert not set(own) & {base["data"]["features"], base["encoders"], base["out"]}
