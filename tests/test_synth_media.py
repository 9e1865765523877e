"""`mcd synth` end to end on a handful of clips: determinism, the annotation format, decoding with decord."""
from __future__ import annotations

import argparse
import json
import subprocess
import sys
from pathlib import Path

import decord
import numpy as np
import pytest

from mcd.cli import CLIError
from mcd.data.music_avqa import load_annotations
from mcd.synth import cli as synth_cli
from mcd.synth.render import INSTRUMENT_GLYPHS, frames, glyph
from mcd.synth.scene import Scene
from mcd.synth.mixer import mix
from mcd.synth.writer import read_scenes

ROOT = Path(__file__).resolve().parents[1]


def synth(*argv: str) -> int:
    parser = argparse.ArgumentParser()
    synth_cli.add_arguments(parser)
    return synth_cli.run(parser.parse_args([*argv, "--quiet"]))


@pytest.fixture(scope="module")
def outs(tmp_path_factory) -> dict[str, Path]:
    root = tmp_path_factory.mktemp("synth")
    runs = {"a": ("7", "2"), "b": ("7", "1"), "c": ("8", "1")}  # a/b: same seed, different worker counts
    for name, (seed, workers) in runs.items():
        assert synth("--out", str(root / name), "--videos", "3", "--seed", seed, "--workers", workers,
                     "--splits", "train=0.5,test=0.5") == 0
    return {name: root / name for name in runs}


def _files(d: Path) -> dict[str, bytes]:
    return {str(p.relative_to(d)): p.read_bytes() for p in sorted(d.rglob("*")) if p.is_file()}


def _audio(path: Path) -> np.ndarray:
    return decord.AudioReader(str(path), sample_rate=16000, mono=True)[:].asnumpy()[0]


def test_same_seed_gives_identical_files_whatever_the_worker_count(outs) -> None:
    a, b = _files(outs["a"]), _files(outs["b"])
    assert set(a) == set(b)
    assert {"avqa-train.json", "avqa-test.json", "scenes.jsonl", "synth_config.json"} <= set(a)
    assert sum(name.endswith(".mp4") for name in a) == 3
    for name in a:
        assert a[name] == b[name], f"{name} differs between --workers 2 and --workers 1"


def test_same_seed_decodes_to_identical_frames_and_audio(outs) -> None:
    for mp4 in sorted((outs["a"] / "videos").glob("*.mp4")):
        other = outs["b"] / "videos" / mp4.name
        fa = decord.VideoReader(str(mp4)).get_batch(list(range(0, 80, 8))).asnumpy()
        fb = decord.VideoReader(str(other)).get_batch(list(range(0, 80, 8))).asnumpy()
        assert np.array_equal(fa, fb)
        assert np.array_equal(_audio(mp4), _audio(other))


def test_another_seed_gives_other_clips(outs) -> None:
    a, c = _files(outs["a"]), _files(outs["c"])
    assert a["scenes.jsonl"] != c["scenes.jsonl"]
    assert a["avqa-test.json"] != c["avqa-test.json"]
    assert all(a[n] != c[n] for n in a if n.endswith(".mp4"))


def test_annotations_are_music_avqa_records(outs) -> None:
    scenes = {s.video_id: s for s in read_scenes(outs["a"] / "scenes.jsonl")}
    ids = []
    for split in ("train", "test"):
        path = outs["a"] / f"avqa-{split}.json"
        raw = json.loads(path.read_text())
        assert path.read_text().startswith('[\n  {\n    "video_id": ')
        records = load_annotations(path)   # the reader everyone else uses is the format check
        assert len(records) == len(raw) > 0
        for r, rec in zip(raw, records):
            assert list(r) == ["video_id", "question_id", "type", "question_content", "templ_values",
                               "question_deleted", "anser"]
            assert isinstance(r["type"], str) and isinstance(r["templ_values"], str)
            assert scenes[rec.video_id].split == split
            assert (outs["a"] / "videos" / f"{rec.video_id}.mp4").is_file()
        ids += [r.question_id for r in records]
    assert len(ids) == len(set(ids))


def test_clips_decode_with_decord(outs) -> None:
    for scene in read_scenes(outs["a"] / "scenes.jsonl"):
        path = outs["a"] / "videos" / f"{scene.video_id}.mp4"
        vr = decord.VideoReader(str(path))
        assert len(vr) == 80 and vr.get_avg_fps() == pytest.approx(8.0)
        decoded = vr.get_batch([4, 44]).asnumpy()
        assert decoded.shape == (2, 224, 224, 3)
        rendered = list(frames(scene))
        for got, want in zip(decoded, (rendered[4], rendered[44])):
            # colours survive the encoder (a channel swap or a wrong YUV matrix would fail this)
            assert np.abs(got.astype(float) - want.astype(float)).mean() < 6.0

        audio = _audio(path)
        assert audio.shape[0] >= 160000
        want = mix(scene)
        lags = np.arange(0, 2049)
        scores = [np.dot(audio[lag:lag + 16000 * 8], want[:16000 * 8]) for lag in lags]
        lag = int(lags[int(np.argmax(scores))])
        got = audio[lag:lag + want.size]
        corr = np.corrcoef(got, want[:got.size])[0, 1]
        assert corr >= 0.9, f"{scene.video_id}: decoded audio correlates {corr:.3f} with the synthesized mix"


def test_scene_record_rebuilds_its_clip(outs) -> None:
    """scenes.jsonl alone reproduces a clip: the scene carries its rendering seed."""
    line = (outs["a"] / "scenes.jsonl").read_text().splitlines()[0]
    s1, s2 = Scene.from_dict(json.loads(line)), Scene.from_dict(json.loads(line))
    assert np.array_equal(mix(s1), mix(s2))
    assert all(np.array_equal(x, y) for x, y in zip(frames(s1), frames(s2)))


def test_every_instrument_glyph_renders() -> None:
    sizes = set()
    for name, cp in INSTRUMENT_GLYPHS.items():
        g = np.asarray(glyph(cp))
        assert (g[..., 3] > 0).sum() > 500, f"{name} (U+{cp:X}) renders (almost) empty"
        sizes.add(g.shape)
    assert len(sizes) > 1  # different glyphs, not one fallback box repeated


def test_existing_output_needs_force_and_report_prints(outs, capsys) -> None:
    with pytest.raises(CLIError, match="--force"):
        synth("--out", str(outs["c"]), "--videos", "2", "--no-video")
    with pytest.raises(CLIError, match="--out"):
        synth("--videos", "2")
    assert synth("--report", str(outs["a"])) == 0
    text = capsys.readouterr().out
    assert "question-only prior" in text and "per-template answers" in text


def test_cli_entry_point_reports_user_errors(tmp_path) -> None:
    result = subprocess.run([sys.executable, "-m", "mcd", "synth", "--report", str(tmp_path)],
                            capture_output=True, text=True, cwd=ROOT, timeout=120)
    assert result.returncode == 2
    assert "no avqa-" in result.stderr and "Traceback" not in result.stderr
