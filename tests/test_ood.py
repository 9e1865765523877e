"""The out-of-domain detector: signal checks, the per-modality Gaussians, the calibration stored in the checkpoint
(scalars in config.json, arrays as `ood.*` tensors), the contract the app reads.

The repository's checkpoint may carry either calibration format (or, in a fresh clone, the first one), so the
tests that need a format-2 detector calibrate a copy of it themselves."""
from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pytest
import torch

from mcd.cli import main
from mcd.serving import ood, signal_checks
from mcd.serving.pipeline import Pipeline

ROOT = Path(__file__).resolve().parent.parent
CHECKPOINT = ROOT / "checkpoints" / "mcd-synth"
EXAMPLES = json.loads((ROOT / "assets" / "examples.json").read_text())
SR = 16000
FINAL_ONLY = {"picture": [(["final"], 6)], "sound": [(["final"], 6)]}
PARTS = {"picture": [6, 10], "sound": [5, 7]}


def write(path: Path, frames: list[np.ndarray], audio: np.ndarray) -> Path:
    from mcd.synth.writer import write_clip
    write_clip(path, frames, audio.astype(np.float32), 8, SR)
    return path


def tone(seconds: float, freq: float = 440.0) -> np.ndarray:
    t = np.arange(int(seconds * SR)) / SR
    return 0.3 * np.sin(2 * np.pi * freq * t) * (1 + 0.5 * np.sin(2 * np.pi * 3 * t))


def fake_features(n: int, rng: np.random.Generator, dv: int, da: int) -> list[dict]:
    return [{"visual": torch.tensor(rng.standard_normal((10, 4, dv)), dtype=torch.float32),
             "audio": torch.tensor(rng.standard_normal((10, da)), dtype=torch.float32)} for _ in range(n)]


@pytest.fixture(scope="module")
def calibrated(tmp_path_factory) -> Path:
    """A copy of the repository's checkpoint with a format-2 calibration fitted to random features of its
    encoders' widths (the tests below need its structure and its signal checks, not its thresholds)."""
    from mcd.model.checkpoint import update_config_section
    ckpt = tmp_path_factory.mktemp("ood") / "ckpt"
    shutil.copytree(CHECKPOINT, ckpt)
    probe = Pipeline(ckpt, device="cpu")
    parts = {"picture": ood.part_dims(probe.encoders.visual), "sound": ood.part_dims(probe.encoders.audio)}
    section, tensors = ood.calibrate(fake_features(12, np.random.default_rng(0), probe.encoders.visual.dim,
                                                   probe.encoders.audio.dim), parts=parts)
    update_config_section(ckpt, "ood", section, tensors)
    return ckpt


@pytest.fixture(scope="module")
def pipe(calibrated):
    return Pipeline(calibrated, device="cpu")


# ------------------------------------------------------------------------------------------------ signal checks

def test_signal_measures_tell_blank_silent_noise_and_tone_apart():
    rng = np.random.default_rng(0)
    frames = np.zeros((4, 48, 64, 3), np.uint8)
    frames[1] = 200
    frames[2] = rng.integers(0, 256, (48, 64, 3))
    std = signal_checks.frame_std(frames)
    assert std[0] < signal_checks.BLANK_STD and std[1] < signal_checks.BLANK_STD and std[2] > 30
    audio = np.stack([np.zeros(SR), 0.3 * rng.standard_normal(SR), tone(1.0)])
    assert signal_checks.rms(audio)[0] == 0 and signal_checks.rms(audio)[2] > 0.1
    flat = signal_checks.spectral_flatness(audio)
    assert flat[0] == 0.0                       # silent windows have no flatness, not a flat one
    assert flat[1] > 0.4 and flat[2] < 0.05     # white noise is flat, a tone is not
    with pytest.raises(ValueError, match=r"\[T,H,W,3\]"):
        signal_checks.frame_std(np.zeros((4, 8, 8)))


def test_checks_flag_blank_picture_silence_no_audio_and_noise_without_calibration():
    visual, audio = torch.zeros(10, 49, 8), torch.zeros(10, 8)
    rng = np.random.default_rng(1)
    picture = rng.integers(0, 256, (10, 32, 32, 3)).astype(np.uint8)
    sound = np.stack([tone(1.0)] * 10)
    det = ood.load(None)
    clear = det.judge(visual, audio, signal_checks.measure(picture, sound, True))
    assert not clear.flagged and clear.warning() is None and not clear.calibrated
    black = det.judge(visual, audio, signal_checks.measure(np.zeros_like(picture), np.zeros_like(sound), True))
    assert black.picture.reason == "blank" and black.sound.reason == "silent"
    assert black.warning() == "The picture is blank and the sound is silent: answers are unreliable."
    assert black.picture.seconds == [0.5 + i for i in range(10)]
    mute = det.judge(visual, audio, signal_checks.measure(picture, np.zeros_like(sound), False))
    assert mute.sound.reason == "no_audio" and not mute.picture.flagged
    hiss = det.judge(visual, audio, signal_checks.measure(picture, 0.2 * rng.standard_normal(sound.shape), True))
    assert hiss.sound.reason == "noise" and hiss.warning() == "The sound is noise-like: answers are unreliable."


# ------------------------------------------------------------------------------------------------ the Gaussians

def fake_clips(n: int, rng: np.random.Generator, shift: float = 0.0, dv: int = 16, da: int = 12) -> list[dict]:
    """Clips whose segment features come from one fixed correlated Gaussian per modality (+ shift)."""
    mix_v = np.random.default_rng(99).standard_normal((dv, dv)) / 4
    mix_a = np.random.default_rng(98).standard_normal((da, da)) / 4
    out = []
    for _ in range(n):
        v = rng.standard_normal((10, dv)) @ mix_v + shift
        a = rng.standard_normal((10, da)) @ mix_a
        patches = torch.tensor(v, dtype=torch.float32)[:, None, :] + 0.01 * torch.randn(10, 4, dv)
        out.append({"visual": patches, "audio": torch.tensor(a, dtype=torch.float32)})
    return out


def reload(section: dict, tensors: dict) -> ood.Detector:
    """The detector as a checkpoint gives it back: the section through JSON, the tensors through safetensors."""
    from safetensors.torch import load, save
    return ood.load(json.loads(json.dumps(section)), load(save(tensors)))


def test_calibration_round_trips_through_the_checkpoint_and_separates_the_modalities():
    rng = np.random.default_rng(0)
    section, tensors = ood.calibrate(fake_clips(60, rng), FINAL_ONLY)
    loaded = reload(section, tensors)
    assert isinstance(loaded, ood.Detector)
    assert sorted(tensors) == sorted(f"ood.{m}.0.{k}" for m in ood.MODALITIES for k in ("mean", "basis", "variances"))
    assert all(t.dtype == torch.float32 for t in tensors.values())
    fresh = fake_clips(40, np.random.default_rng(1))
    flagged = [loaded.judge(c["visual"], c["audio"]).flagged for c in fresh]
    assert sum(flagged) <= 2                                         # in-domain: almost never flagged
    direct = ood.Detector(section, tensors)
    for c in fresh[:5]:                                              # the stored copy scores exactly alike
        assert loaded.judge(c["visual"], c["audio"]).score == direct.judge(c["visual"], c["audio"]).score
    moved = fake_clips(10, np.random.default_rng(2), shift=1.5)      # only the picture moved
    reports = [loaded.judge(c["visual"], c["audio"]) for c in moved]
    assert all(r.picture.flagged and r.picture.reason == "unlike" for r in reports)
    assert not any(r.sound.flagged for r in reports)
    assert reports[0].warning() == "The picture is unlike the training clips: answers are unreliable."
    assert reports[0].picture.seconds                                # the foreign seconds are listed


def test_part_views_see_a_part_the_whole_vector_dilutes():
    """A joined encoder's parts get views of their own: a shift confined to the small first part of the sound is
    flagged by that part's view with a larger ratio than by the whole vector's."""
    rng = np.random.default_rng(0)
    clips = [{"visual": torch.tensor(rng.standard_normal((10, 3, 16)), dtype=torch.float32),
              "audio": torch.tensor(rng.standard_normal((10, 12)), dtype=torch.float32)} for _ in range(80)]
    section, tensors = ood.calibrate(clips, parts=PARTS)
    assert [v["inputs"] for v in section["sound"]["views"]] == [["final"], ["part0"], ["part1"]]
    assert section["sound"]["parts"] == [5, 7] and section["picture"]["parts"] == [6, 10]
    det = reload(section, tensors)
    audio = torch.tensor(rng.standard_normal((10, 12)), dtype=torch.float32)
    audio[:, :5] += 2.0
    ratios, _ = det.ratios(torch.tensor(rng.standard_normal((10, 3, 16)), dtype=torch.float32), audio)["sound"]
    assert ratios[1] > 1.0 and ratios[1] > ratios[0] and ratios[2] < 1.0
    with pytest.raises(ValueError, match="add up"):
        ood.view_inputs(torch.zeros(10, 3, 16), torch.zeros(10, 12), {"sound": [5, 5]})


def test_a_contrast_view_catches_foreign_sound_inside_the_in_domain_density():
    """Sound that differs from the training clips only along one direction, by less than their own spread, passes
    the Gaussian (its RMS z stays about 1); a contrast view fitted on such clips flags it, keeps in-domain clips
    unflagged and round-trips through the checkpoint."""
    rng = np.random.default_rng(0)
    inside = fake_clips(80, rng)
    direction = np.linalg.qr(np.random.default_rng(97).standard_normal((12, 12)))[0][:, 0]

    def foreign(n, seed):
        clips = fake_clips(n, np.random.default_rng(seed))
        for c in clips:
            c["audio"] = c["audio"] + torch.tensor(0.8 * direction, dtype=torch.float32)
        return clips

    section, tensors = ood.calibrate(inside, FINAL_ONLY, contrast={"sound": foreign(40, 1)})
    views = section["sound"]["views"]
    assert [v.get("kind", "gaussian") for v in views] == ["gaussian", "contrast"] and views[1]["inputs"] == ["final"]
    assert len(section["picture"]["views"]) == 1                     # no picture contrast set, no picture view
    assert {k for k in tensors if k.startswith("ood.sound.1.")} == {f"ood.sound.1.{a}" for a in
                                                                   ("mean", "scale", "weight", "bias")}
    det = reload(section, tensors)
    fresh_foreign = [det.ratios(c["visual"], c["audio"])["sound"][0] for c in foreign(20, 2)]
    assert np.mean([r[0] > 1 for r in fresh_foreign]) <= 0.1        # the distance misses it
    assert np.mean([r[1] > 1 for r in fresh_foreign]) >= 0.9        # the contrast does not
    fresh_inside = [det.judge(c["visual"], c["audio"]) for c in fake_clips(40, np.random.default_rng(3))]
    assert sum(r.sound.flagged for r in fresh_inside) <= 2
    # its scores are probabilities: the margin goes on the odds, so both thresholds stay reachable, and a clip the
    # contrast view flags names the seconds that look foreign
    assert 0.5 < views[1]["segment_threshold"] < 1 and 0 < views[1]["threshold"] < 1
    judged = [det.judge(c["visual"], c["audio"]).sound for c in foreign(20, 2)]
    assert all(j.seconds for j in judged if j.flagged) and sum(j.flagged for j in judged) >= 18
    with pytest.raises(ood.OODConfigError, match="unknown view kind"):
        ood.load({**section, "sound": {**section["sound"], "views": [{**views[1], "kind": "forest"}]}}, tensors)
    with pytest.raises(ood.OODConfigError, match="bias"):
        ood.load(section, {**tensors, "ood.sound.1.bias": torch.zeros(2)})


def test_a_contrast_view_names_the_foreign_seconds_even_when_in_domain_clips_have_some():
    """In-domain clips with an occasional foreign-looking second push the contrast view's segment quantile near 1;
    its segment threshold must stay below 1, so a clip it flags lists the seconds that look foreign."""
    direction = np.linalg.qr(np.random.default_rng(97).standard_normal((12, 12)))[0][:, 0]
    shift = torch.tensor(3.0 * direction, dtype=torch.float32)
    inside = fake_clips(80, np.random.default_rng(0))
    for c in inside[::5]:          # fit and threshold clips alike
        c["audio"][4] += 0.8 * shift
    foreign = fake_clips(40, np.random.default_rng(1))
    for c in foreign:
        c["audio"] += shift
    section, tensors = ood.calibrate(inside, FINAL_ONLY, contrast={"sound": foreign})
    view = section["sound"]["views"][1]
    assert view["kind"] == "contrast" and 0.9 < view["segment_threshold"] < 1
    clip = fake_clips(1, np.random.default_rng(5))[0]
    clip["audio"][5:] += shift
    verdict = reload(section, tensors).judge(clip["visual"], clip["audio"]).sound
    assert verdict.flagged and len(verdict.seconds) >= 3 and min(verdict.seconds) >= 5


def test_the_margin_raises_a_probability_on_its_odds_and_a_distance_by_multiplying():
    assert ood._with_margin(1.6, 1.15, probability=False) == pytest.approx(1.84)
    assert ood._with_margin(0.5, 1.15, probability=True) == pytest.approx(1.15 / 2.15)
    assert ood._with_margin(0.905, 1.15, probability=True) == pytest.approx(0.9164, abs=1e-4)   # not 1.04
    assert ood._with_margin(1.0, 1.15, probability=True) == 1.0
    assert ood._with_margin(0.0, 1.15, probability=True) == 0.0


def test_calibrate_ood_refuses_a_missing_contrast_folder(tmp_path):
    from mcd.serving.calibrate_ood import calibrate_checkpoint
    data = tmp_path / "clips"
    data.mkdir()
    for i in range(3):
        write(data / f"{i:02d}.mp4", [np.full((32, 32, 3), 90 + 10 * i, np.uint8)] * 8, tone(1.0))
    with pytest.raises(FileNotFoundError, match="contrast-sound"):
        calibrate_checkpoint(CHECKPOINT, data, min_clips=2, write=False, contrast_sound=tmp_path / "none")
    with pytest.raises(ValueError, match="contrast set needs at least"):
        calibrate_checkpoint(CHECKPOINT, data, min_clips=2, write=False, contrast_sound=data)


def test_gaussian_score_is_about_one_in_domain_and_sees_the_residual():
    rng = np.random.default_rng(0)
    x = rng.standard_normal((2000, 10)) * np.array([5, 3, 2, 1, 1, 1, 1, 1, 1, 1])
    g = ood.Gaussian.fit(x, components=3)
    assert 0.8 < np.median(g.score(rng.standard_normal((500, 10)) * np.array([5, 3, 2, 1, 1, 1, 1, 1, 1, 1]))) < 1.1
    off = np.zeros((1, 10))
    off[0, 9] = 10.0                    # outside the kept directions, only the residual can see it
    assert g.score(off)[0] > 2.5


def test_bad_ood_sections_raise_clear_errors():
    section, tensors = ood.calibrate(fake_clips(20, np.random.default_rng(0)), FINAL_ONLY)
    with pytest.raises(ood.OODConfigError, match="format"):
        ood.load({**section, "format": 99}, tensors)
    with pytest.raises(ood.OODConfigError, match="picture"):
        ood.load({k: v for k, v in section.items() if k != "picture"}, tensors)
    with pytest.raises(ood.OODConfigError, match="JSON object"):
        ood.load([1, 2])
    with pytest.raises(ood.OODConfigError, match="calibrate-ood"):    # config without its tensors
        ood.load(section, {})
    with pytest.raises(ood.OODConfigError, match="does not match"):
        ood.load(section, {**tensors, "ood.sound.0.mean": torch.zeros(3)})
    with pytest.raises(ValueError, match="at least 10"):
        ood.calibrate(fake_clips(3, np.random.default_rng(0)))
    det = ood.load(section, tensors)
    with pytest.raises(ValueError, match="other encoders"):
        det.judge(torch.zeros(10, 4, 7), torch.zeros(10, 12))
    with pytest.raises(ood.OODConfigError, match="at least one view"):
        ood.load({**section, "sound": {"views": []}}, tensors)


def test_first_format_still_loads_and_scores_as_before():
    """A checkpoint calibrated with the first format (mean |z| of clip-pooled features) keeps its score; it flags
    both modalities alike, and the signal checks still speak."""
    old = {"visual_mean": [0.0] * 8, "visual_std": [1.0] * 8, "audio_mean": [0.0] * 8, "audio_std": [1.0] * 8,
           "threshold": 1.0, "n_clips": 5}
    det = ood.load(old)
    assert isinstance(det, ood.LegacyDetector)
    near = det.judge(torch.full((10, 4, 8), 0.5), torch.full((10, 8), 0.5))
    assert ood.score(old, torch.full((10, 4, 8), 0.5), torch.full((10, 8), 0.5)) == pytest.approx(0.5)
    assert not near.flagged
    far = det.judge(torch.full((10, 4, 8), 3.0), torch.full((10, 8), 3.0))
    assert far.picture.flagged and far.sound.flagged and far.picture.threshold == 1.0
    with pytest.raises(ood.OODConfigError, match="format 1"):
        ood.load({"threshold": 1.0})


# ------------------------------------------------------------------------------------------------ the pipeline

def test_pipeline_reads_the_calibration_from_config_and_weights(pipe, calibrated):
    """The detector's arrays come from the `ood.*` tensors, its thresholds from config.json's small section."""
    assert isinstance(pipe.detector, ood.Detector) and pipe.ood_threshold == 1.0
    assert len(json.dumps(pipe.config["ood"])) < 4096
    dims = {"picture": pipe.encoders.visual.dim, "sound": pipe.encoders.audio.dim}
    for m in ood.MODALITIES:
        assert pipe.detector.views[m][0].inputs == ["final"]
        assert len(pipe.detector.views[m][0].model.mean) == dims[m]
        parts = pipe.detector.parts[m]
        assert len(pipe.detector.views[m]) == (1 + len(parts) if parts else 1)
    feats = pipe.clip_features(ROOT / EXAMPLES[0]["video"])
    assert feats.domain is not None and feats.ood_score == pytest.approx(feats.domain.score)


def test_checkpoint_with_the_first_format_keeps_its_score(tmp_path):
    """A checkpoint calibrated before this detector (config `ood` = visual_mean/.../threshold) loads and scores
    with the first format's mean |z|, and its threshold is the one it was written with."""
    from mcd.model.checkpoint import update_config_section
    ckpt = tmp_path / "old"
    shutil.copytree(CHECKPOINT, ckpt)
    probe = Pipeline(ckpt, device="cpu")
    dv, da = probe.encoders.visual.dim, probe.encoders.audio.dim
    old = {"visual_mean": [0.0] * dv, "visual_std": [1.0] * dv, "audio_mean": [0.0] * da, "audio_std": [1.0] * da,
           "threshold": 123.0, "n_clips": 5}
    update_config_section(ckpt, "ood", old)
    pipe = Pipeline(ckpt, device="cpu")
    assert isinstance(pipe.detector, ood.LegacyDetector) and pipe.ood_threshold == 123.0
    feats = pipe.clip_features(ROOT / EXAMPLES[0]["video"])
    assert feats.ood_score == pytest.approx(ood.score(old, feats.visual, feats.audio))
    assert feats.ood_score < 123.0 and not pipe.answer(ROOT / EXAMPLES[0]["video"], ["Is there a voiceover?"]
                                                        ).clip_summary()["out_of_domain"]


def test_black_silent_clip_is_flagged_per_modality(pipe, tmp_path):
    clip = write(tmp_path / "black.mp4", [np.zeros((64, 64, 3), np.uint8)] * 16, np.zeros(2 * SR))
    answers = pipe.answer(clip, ["Is there a voiceover?"])
    summary = answers.to_json()["clip"]
    assert summary["out_of_domain"] and summary["ood_score"] >= 0
    assert summary["domain"]["picture"]["reason"] == "the picture is blank"
    assert summary["domain"]["sound"]["reason"] == "the sound is silent"
    assert answers.domain_warning == "The picture is blank and the sound is silent: answers are unreliable."


def test_example_picture_with_a_noise_soundtrack_is_flagged_on_the_sound(pipe, tmp_path):
    """An in-domain picture (the example clip's frames) with white noise for sound: the noise check names it."""
    from mcd import media
    decoded = media.decode(ROOT / EXAMPLES[0]["video"], T=16)
    rng = np.random.default_rng(3)
    clip = write(tmp_path / "mixed.mp4", list(decoded.frames), 0.3 * rng.standard_normal(2 * SR))
    summary = pipe.answer(clip, ["Is there a voiceover?"]).clip_summary()
    assert summary["out_of_domain"]
    assert summary["domain"]["sound"]["flagged"] and summary["domain"]["sound"]["reason"] == "the sound is noise-like"


def test_calibrate_ood_writes_only_the_ood_section_and_tensors(tmp_path):
    from safetensors.torch import load_file

    from mcd.serving.calibrate_ood import calibrate_checkpoint
    ckpt = tmp_path / "ckpt"
    shutil.copytree(CHECKPOINT, ckpt)
    before_w = load_file(str(ckpt / "model.safetensors"))
    before = json.loads((ckpt / "config.json").read_text())
    data = tmp_path / "clips"
    data.mkdir()
    rng = np.random.default_rng(0)
    for i in range(12):
        frames = [np.clip(rng.normal(100 + 5 * i, 30, (32, 32, 3)), 0, 255).astype(np.uint8)] * 8
        write(data / f"{i:02d}.mp4", frames, tone(1.0, 220.0 * (1 + i / 12)))
    section = calibrate_checkpoint(ckpt, data, min_clips=10)
    after = json.loads((ckpt / "config.json").read_text())
    assert after["ood"] == json.loads(json.dumps(section)) and after["ood"]["n_clips"] == 12
    assert len(json.dumps(after["ood"])) < 4096
    keep = lambda c: {k: v for k, v in c.items() if k not in ("ood", "model_sha256")}   # noqa: E731
    assert keep(after) == keep(before)
    after_w = load_file(str(ckpt / "model.safetensors"))
    old_keys = {k for k in before_w if not k.startswith("ood.")}
    assert {k for k in after_w if not k.startswith("ood.")} == old_keys
    assert all(torch.equal(after_w[k], before_w[k]) for k in old_keys)          # model and encoder weights kept
    assert {k for k in after_w if k.startswith("ood.")}                         # the arrays moved here
    detector = Pipeline(ckpt, device="cpu").detector                            # and the hash still checks
    assert isinstance(detector, ood.Detector)
    assert [v.inputs for v in detector.views["sound"]][0] == ["final"]
    section2 = calibrate_checkpoint(ckpt, data, min_clips=10, views=FINAL_ONLY)  # a re-calibration replaces all
    assert len(section2["sound"]["views"]) == 1
    assert {k for k in load_file(str(ckpt / "model.safetensors")) if k.startswith("ood.")} == \
        {f"ood.{m}.0.{a}" for m in ood.MODALITIES for a in ("mean", "basis", "variances")}


def test_a_failed_calibration_write_leaves_the_checkpoint_whole(tmp_path, monkeypatch):
    """The section and tensors are written to a temporary copy that is checked by loading it; if that fails the
    folder keeps its bytes and no temporary folder is left beside it."""
    from mcd.model import checkpoint as ck
    ckpt = tmp_path / "ckpt"
    shutil.copytree(CHECKPOINT, ckpt)
    files = {p.name: p.read_bytes() for p in ckpt.iterdir()}

    def broken(directory, map_location="cpu"):
        raise ck.CheckpointError("simulated failure")
    monkeypatch.setattr(ck, "load_checkpoint", broken)
    with pytest.raises(ck.CheckpointError, match="simulated"):
        ck.update_config_section(ckpt, "ood", {"format": 2}, {"ood.sound.0.mean": torch.zeros(3)})
    assert {p.name: p.read_bytes() for p in ckpt.iterdir()} == files
    assert sorted(p.name for p in tmp_path.iterdir()) == ["ckpt"]
    with pytest.raises(ck.CheckpointError, match="must be named"):
        ck.update_config_section(ckpt, "ood", {}, {"model.x": torch.zeros(1)})


def test_calibrate_ood_cli_errors_are_clear(tmp_path, capsys):
    assert main(["calibrate-ood", "--checkpoint", str(CHECKPOINT), "--data", str(tmp_path / "nope")]) == 2
    assert "is not a folder" in capsys.readouterr().err
    assert main(["calibrate-ood", "--checkpoint", str(CHECKPOINT), "--data", str(tmp_path)]) == 2
    assert "needs at least 50" in capsys.readouterr().err


def test_synth_contrast_renders_foreign_music_resumably(tmp_path, capsys):
    """`mcd synth-contrast` writes clips whose sound is music on programs none of the world's voices uses, plus
    its settings; a second run keeps the clips already there; bad counts are clear errors."""
    from mcd import media
    from mcd.cli import main
    from mcd.synth.foreign import foreign_programs
    from mcd.synth.soundfont import VOICES
    assert not {v.program for v in VOICES.values()} & set(foreign_programs())
    out = tmp_path / "contrast"
    assert main(["synth-contrast", "--out", str(out), "--clips", "2", "--seed", "5"]) == 0
    clips = sorted(out.glob("*.mp4"))
    assert [p.name for p in clips] == ["000.mp4", "001.mp4"]
    settings = json.loads((out / "contrast.json").read_text())
    assert settings["clips"] == 2 and settings["seed"] == 5 and settings["programs"] == foreign_programs()
    clip = media.decode(clips[0], 10)
    assert clip.has_audio and float(np.abs(clip.audio_segments).max()) > 0.05       # it sounds
    before = clips[0].stat().st_mtime_ns
    assert main(["synth-contrast", "--out", str(out), "--clips", "3", "--seed", "5"]) == 0
    assert clips[0].stat().st_mtime_ns == before and (out / "002.mp4").is_file()
    assert main(["synth-contrast", "--out", str(out), "--clips", "0"]) != 0
    assert "--clips must be at least 1" in capsys.readouterr().err


def test_a_fine_tune_carries_its_sources_calibration_only_with_the_same_encoders(calibrated, tmp_path):
    """`mcd reproduce` of a fine-tune recipe (train.init) gives the result the source's out-of-domain calibration
    instead of calibrating again, because the detector reads only the encoders' features; with other encoder
    weights nothing is carried and nothing is written."""
    from safetensors.torch import load_file, save_file

    from mcd.model.checkpoint import update_config_section
    from mcd.training.reproduce import _ood_calibrated, carry_ood

    def uncalibrated(name: str) -> Path:
        dest = tmp_path / name
        shutil.copytree(calibrated, dest)
        update_config_section(dest, "ood", None, {})
        assert not _ood_calibrated(dest) and not any(k.startswith("ood.") for k in load_file(dest / "model.safetensors"))
        return dest

    dest = uncalibrated("fine-tune")
    assert carry_ood(calibrated, dest)
    assert json.loads((dest / "config.json").read_text())["ood"] == json.loads((calibrated / "config.json").read_text())["ood"]
    src, got = load_file(calibrated / "model.safetensors"), load_file(dest / "model.safetensors")
    assert {k for k in got if k.startswith("ood.")} == {k for k in src if k.startswith("ood.")}
    assert all(torch.equal(got[k], src[k]) for k in src)
    assert Pipeline(dest, device="cpu").ood_threshold is not None

    other = uncalibrated("other-encoders")
    weights = load_file(other / "model.safetensors")
    name = next(k for k in weights if not k.startswith(("model.", "ood.")) and weights[k].is_floating_point())
    weights[name] = weights[name] + 1
    save_file(weights, other / "model.safetensors")
    before = (other / "config.json").read_text()
    assert not carry_ood(calibrated, other)
    assert (other / "config.json").read_text() == before
    assert not carry_ood(other, dest)            # a source without a calibration gives none
