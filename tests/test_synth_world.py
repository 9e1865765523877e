"""World v2 of the synthetic benchmark: styles, determinism per style, stereo panning, soundfont note banks, assets."""
from __future__ import annotations

import argparse
import ast
import json
from collections import Counter
from pathlib import Path

import numpy as np
import pytest

from mcd.cli import CLIError
from mcd.synth import cli as synth_cli
from mcd.synth.glyphs import AssetError, INSTRUMENT_GLYPHS
from mcd.synth.scene import GLYPH_ASPECT, Player, Scene, Source, Voiceover, sample_scene
from mcd.synth.world import (INSTRUMENT_SETS, STYLES, SYNTH_INSTRUMENTS, V1_STYLE, VISIBLE_INSTRUMENTS,
                             WORLD_INSTRUMENTS)
from mcd.task.vocab import INSTRUMENTS

ROOT = Path(__file__).resolve().parents[1]
SR = 16000


def synth(*argv: str) -> int:
    parser = argparse.ArgumentParser()
    synth_cli.add_arguments(parser)
    return synth_cli.run(parser.parse_args([*argv, "--quiet"]))


def _has(check) -> bool:
    try:
        check()
        return True
    except AssetError:
        return False


def _glyphs_ok() -> bool:
    from mcd.synth.glyphs import check_assets

    return all(_has(lambda s=s: check_assets(s)) for s in ("openmoji", "fluent3d", "noto"))


def _banks_ok() -> bool:
    from mcd.synth.soundfont import fluidsynth_program, font_path

    return all(_has(f) for f in (fluidsynth_program, lambda: font_path("fluidr3"), lambda: font_path("musescore")))


needs_glyphs = pytest.mark.skipif(not _glyphs_ok(), reason="glyph assets missing: run bash scripts/setup.sh")
needs_banks = pytest.mark.skipif(not _banks_ok(), reason="fluidsynth or soundfonts missing: run bash scripts/setup.sh")


@pytest.fixture(scope="module")
def banks() -> None:
    """Both note banks, built if this machine has none yet (about a minute, once; cached after)."""
    from mcd.synth.soundfont import ensure_bank

    ensure_bank("fluidr3", progress=False)
    ensure_bank("musescore", progress=False)


# ------------------------------------------------------------------------------------------------ styles, plans

@pytest.fixture(scope="module")
def plans(tmp_path_factory) -> dict[str, Path]:
    """--no-video benchmarks: two runs of each style with one seed, and the default style with another seed."""
    root = tmp_path_factory.mktemp("world")
    runs = {"default-a": ("default", "5"), "default-b": ("default", "5"), "held-out-a": ("held-out", "5"),
            "held-out-b": ("held-out", "5"), "default-c": ("default", "6")}
    for name, (style, seed) in runs.items():
        assert synth("--out", str(root / name), "--videos", "150", "--seed", seed, "--style", style,
                     "--no-video", "--splits", "train=0.6,test=0.4") == 0
    return {name: root / name for name in runs}


def _bytes(d: Path) -> dict[str, bytes]:
    return {p.name: p.read_bytes() for p in sorted(d.iterdir()) if p.is_file()}


def test_same_seed_gives_byte_identical_annotations_and_scenes_in_both_styles(plans) -> None:
    for style in ("default", "held-out"):
        a, b = _bytes(plans[f"{style}-a"]), _bytes(plans[f"{style}-b"])
        assert {"avqa-train.json", "avqa-test.json", "scenes.jsonl", "synth_config.json"} <= set(a)
        assert a == b, style
    assert _bytes(plans["default-a"])["scenes.jsonl"] != _bytes(plans["default-c"])["scenes.jsonl"]
    assert _bytes(plans["default-a"])["scenes.jsonl"] != _bytes(plans["held-out-a"])["scenes.jsonl"]


def test_scene_records_state_their_style_and_styles_keep_apart(plans) -> None:
    seen: dict[str, Counter] = {}
    for style in ("default", "held-out"):
        rows = [json.loads(x) for x in (plans[f"{style}-a"] / "scenes.jsonl").read_text().splitlines()]
        c = Counter()
        for r in rows:
            st = r["style"]
            assert set(st) == {"name", "glyphs", "sound_bank", "backdrop"} and st["name"] == style
            assert st["glyphs"] in STYLES[style].glyph_sets and st["backdrop"] in STYLES[style].backdrops
            assert st["sound_bank"] == STYLES[style].default_bank
            c.update([st["glyphs"], st["backdrop"], st["sound_bank"]])
            Scene.from_dict(r)
        seen[style] = c
    # the default style uses both of its glyph sets and backdrops; nothing of the held-out style
    assert {"openmoji", "fluent3d", "drawn", "textured", "fluidr3"} <= set(seen["default"])
    assert not {"noto", "painted", "musescore"} & set(seen["default"])
    assert set(seen["held-out"]) == {"noto", "painted", "musescore"}
    config = json.loads((plans["held-out-a"] / "synth_config.json").read_text())
    assert config["style"] == "held-out" and config["sound_bank"] == "musescore"
    assert config["instrument_set"] == "v2" and config["instruments"] == list(WORLD_INSTRUMENTS)


def test_answers_cover_all_22_instruments_in_both_styles() -> None:
    from mcd.synth.generate import plan

    for style in ("default", "held-out"):
        p = plan(800, 11, {"train": 0.5, "test": 0.5}, 8, style=style)
        answers = Counter(qa.answer for qas in p.questions.values() for qa in qas)
        assert all(answers[i] >= 5 for i in WORLD_INSTRUMENTS), (style, answers)   # the heard-only 12 too


def test_report_breaks_numbers_down_by_style(plans, capsys) -> None:
    assert synth("--report", str(plans["held-out-a"])) == 0
    text = capsys.readouterr().out
    assert "by style (1):" in text and "held-out: 150 videos" in text and "glyphs noto 150" in text
    assert "question-only prior" in text.split("by style")[1]


def test_instrument_lists_and_the_vocabulary() -> None:
    assert WORLD_INSTRUMENTS[:10] == SYNTH_INSTRUMENTS   # a v1 grounding head indexes the same classes
    assert sorted(WORLD_INSTRUMENTS) == sorted(INSTRUMENTS) and len(set(WORLD_INSTRUMENTS)) == 22
    assert INSTRUMENT_SETS == {"v1": SYNTH_INSTRUMENTS, "v2": WORLD_INSTRUMENTS}
    assert set(VISIBLE_INSTRUMENTS) == set(INSTRUMENT_GLYPHS)


def test_v1_records_still_read_and_procedural_bank_keeps_the_ten() -> None:
    rec = sample_scene(1, 2).to_dict()
    del rec["style"], rec["zoom"]
    if rec["offscreen"] and rec["offscreen"]["instrument"] not in SYNTH_INSTRUMENTS:
        rec["offscreen"] = None
    s = Scene.from_dict(rec)
    assert s.style == V1_STYLE and s.zoom == 1.0 and s.instruments == SYNTH_INSTRUMENTS
    for i in range(60):
        p = sample_scene(4, i, sound_bank="procedural")
        assert all(src.instrument in SYNTH_INSTRUMENTS for src in p.sources)
    with pytest.raises(Exception, match="musescore"):
        sample_scene(4, 0, style="default", sound_bank="musescore")   # the held-out bank never trains


def test_cli_refuses_the_held_out_bank_in_the_default_style(tmp_path) -> None:
    with pytest.raises(CLIError, match="held-out bank is never used for training"):
        synth("--out", str(tmp_path / "x"), "--videos", "2", "--sound-bank", "musescore", "--no-video")


# ------------------------------------------------------------------------------------------------ assets

@needs_glyphs
def test_glyph_aspect_table_matches_the_assets() -> None:
    from mcd.synth.glyphs import glyph

    for glyph_set, table in GLYPH_ASPECT.items():
        for inst, aspect in table.items():
            g = glyph(glyph_set, INSTRUMENT_GLYPHS[inst])
            assert g.width / g.height == pytest.approx(aspect, abs=2e-3), (glyph_set, inst)


def test_missing_assets_name_the_setup_command(tmp_path, monkeypatch) -> None:
    from mcd.synth import glyphs, soundfont

    monkeypatch.setenv("MCD_FLUENT_EMOJI_DIR", str(tmp_path))
    monkeypatch.setenv("MCD_NOTO_EMOJI_FONT", str(tmp_path / "none.ttf"))
    monkeypatch.setenv("MCD_SOUNDFONT_MUSESCORE", str(tmp_path / "none.sf3"))
    glyphs.asset_id.cache_clear()
    soundfont.font_id.cache_clear()
    try:
        for call in (lambda: glyphs.check_assets("fluent3d"), lambda: glyphs.check_assets("noto"),
                     lambda: soundfont.font_path("musescore")):
            with pytest.raises(AssetError, match="scripts/setup.sh"):
                call()
        with pytest.raises(CLIError, match="scripts/setup.sh"):
            synth("--out", str(tmp_path / "b"), "--videos", "2", "--style", "held-out", "--workers", "1")
    finally:
        glyphs.asset_id.cache_clear()
        soundfont.font_id.cache_clear()


def test_midi_writer_writes_a_standard_file() -> None:
    from mcd.synth.midi import Note, _vlq, midi_bytes

    assert _vlq(0) == b"\x00" and _vlq(127) == b"\x7f" and _vlq(128) == b"\x81\x00" and _vlq(16383) == b"\xff\x7f"
    data = midi_bytes([Note(0, 500, 60, 100), Note(500, 500, 62, 90)], program=40)
    assert data[:4] == b"MThd" and data[14:18] == b"MTrk"
    assert b"\xc0\x28" in data and b"\x90\x3c\x64" in data and data.endswith(b"\xff\x2f\x00")


def test_no_import_cycles_in_the_synth_package() -> None:
    """Every import inside mcd/synth (module level or in a function) forms an acyclic graph."""
    graph: dict[str, set[str]] = {}
    for path in (ROOT / "mcd" / "synth").glob("*.py"):
        deps = set()
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.ImportFrom) and node.module == "mcd.synth":
                deps |= {a.name for a in node.names}
            elif isinstance(node, ast.ImportFrom) and (node.module or "").startswith("mcd.synth."):
                deps.add(node.module.split(".")[2])
            elif isinstance(node, ast.Import):
                deps |= {a.name.split(".")[2] for a in node.names if a.name.startswith("mcd.synth.")}
        graph[path.stem] = deps

    def reaches(start: str) -> set[str]:
        seen, todo = set(), [start]
        while todo:
            for d in graph.get(todo.pop(), ()):
                if d not in seen:
                    seen.add(d)
                    todo.append(d)
        return seen

    assert [m for m in graph if m in reaches(m)] == []
    assert graph["world"] == set() and "render" not in graph["scene"] and "sound" not in graph["render"]


# ------------------------------------------------------------------------------------------------ sound

def _solo(instrument: str, position: str, bank: str = "fluidr3", loudness: float = 1.0) -> Scene:
    style = {"name": "default", "glyphs": "openmoji", "sound_bank": bank, "backdrop": "drawn"}
    return Scene("solo", "indoor", [Player(instrument, loudness, 2.0, 62, [(0.0, 10.0)], position=position,
                                           bbox=(0, 0, 10, 10))], style=style, seed=7).validate()


def _lead_ms(left: np.ndarray, right: np.ndarray) -> float:
    """How many ms the left channel leads the right below 400 Hz (cross-correlation peak, interpolated)."""
    f = np.fft.rfftfreq(left.size, 1 / SR)
    lp = lambda x: np.fft.irfft(np.fft.rfft(x) * (f < 400), x.size)  # noqa: E731
    lo, ro = lp(left.astype(np.float64)), lp(right.astype(np.float64))
    lags = np.arange(-12, 13)
    c = [float(np.dot(lo[12:-12], np.roll(ro, -k)[12:-12])) for k in lags]
    k = int(np.argmax(c))
    a, b, d = c[k - 1], c[k], c[k + 1]
    return (lags[k] + 0.5 * (a - d) / (a - 2 * b + d)) / SR * 1000


@needs_banks
@pytest.mark.parametrize("instrument", ["violin", "piano", "drum", "flute"])
def test_stereo_channels_differ_by_position_as_intended(banks, instrument) -> None:
    from mcd.synth.mixer import ITD, MASTER_GAIN, downmix, mix_stereo, scene_tracks

    ild = {}
    for pos in ("left", "middle", "right"):
        s = _solo(instrument, pos)
        left, right = mix_stereo(s).astype(np.float64)
        ild[pos] = 10 * np.log10((left ** 2).sum() / (right ** 2).sum())
        lead = _lead_ms(left, right)
        if pos == "middle":
            assert np.array_equal(left, right)
        else:
            sign = 1 if pos == "left" else -1
            assert sign * ild[pos] >= 3.0, (pos, ild[pos])                       # the near channel is louder ...
            assert sign * lead == pytest.approx(1000 * ITD, rel=0.35), (pos, lead)  # ... and earlier, by ~0.25 ms
        # the decoders' downmix is exactly the unpanned mix: loudness in the scene graph is loudness in the mono track
        # (up to the clip's one peak-normalising gain, which every source shares)
        tracks, _ = scene_tracks(s)
        want, got = np.sum(tracks, axis=0) * MASTER_GAIN, downmix(mix_stereo(s)).astype(np.float64)
        k = float(np.dot(got, want) / np.dot(want, want))
        assert 0.3 < k <= 1.0 + 1e-5   # the gain never amplifies; the mix is float32, so k carries its rounding
        np.testing.assert_allclose(got, k * want, atol=2e-6)
    assert ild["left"] == pytest.approx(-ild["right"], abs=1e-6)


@needs_banks
def test_offscreen_source_and_voiceover_are_centred(banks) -> None:
    from mcd.synth.mixer import mix_stereo

    style = {"name": "default", "glyphs": "openmoji", "sound_bank": "fluidr3", "backdrop": "drawn"}
    s = Scene("c", "outdoor", [Player("violin", 0.5, 1.0, 60, [], position="left", bbox=(0, 0, 10, 10))],
              offscreen=Source("erhu", 0.8, 2.0, 76, [(0.0, 10.0)]), voiceover=Voiceover([(1.0, 5.0)]),
              style=style, seed=3).validate()
    left, right = mix_stereo(s)
    assert np.abs(left).max() > 0.05 and np.array_equal(left, right)


@needs_banks
@pytest.mark.parametrize("bank", ["fluidr3", "musescore"])
def test_note_bank_keeps_the_loudness_contract(banks, bank) -> None:
    """Every instrument of both banks: unit peak window RMS per note before the gain, silence outside intervals."""
    from mcd.synth.soundfont import source_signal

    for inst in WORLD_INSTRUMENTS:
        x = source_signal(Source(inst, 1.0, 1.5, 62, [(1.0, 4.0)]), np.random.default_rng(2), 5.0, bank)
        assert np.abs(x[: int(0.99 * SR)]).max() == 0 and np.abs(x[int(4.01 * SR):]).max() == 0, inst
        windows = x[SR: 4 * SR].reshape(-1, 640).astype(np.float64)
        peak = np.sqrt((windows ** 2).mean(axis=1)).max()
        assert 0.8 < peak < 1.6, (bank, inst, peak)


@needs_banks
def test_banks_differ_and_are_deterministic(banks) -> None:
    from mcd.synth.soundfont import source_signal

    src = Source("piano", 1.0, 2.0, 64, [(0.0, 3.0)])
    a = source_signal(src, np.random.default_rng(1), 3.0, "fluidr3")
    b = source_signal(src, np.random.default_rng(1), 3.0, "fluidr3")
    c = source_signal(src, np.random.default_rng(1), 3.0, "musescore")
    assert np.array_equal(a, b) and not np.allclose(a, c, atol=1e-3)


# ------------------------------------------------------------------------------------------------ clips

@needs_glyphs
@needs_banks
def test_held_out_clip_is_stereo_tagged_and_decodes_to_the_mono_mix(banks, tmp_path) -> None:
    import av
    import decord

    from mcd.media import decode
    from mcd.synth.writer import read_scenes

    out = tmp_path / "h"
    assert synth("--out", str(out), "--videos", "3", "--seed", "2", "--style", "held-out", "--workers", "1",
                 "--splits", "test=1") == 0
    from mcd.synth.mixer import mix

    for scene in read_scenes(out / "scenes.jsonl"):
        path = out / "videos" / f"{scene.video_id}.mp4"
        with av.open(str(path)) as c:
            comment = c.metadata.get("comment", "")
            assert c.streams.audio[0].codec_context.layout.nb_channels == 2
        assert "style held-out" in comment and "Noto Color Emoji" in comment and "MuseScore_General" in comment
        assert "FluidSynth" in comment
        assert decord.AudioReader(str(path), sample_rate=SR, mono=False)[:].asnumpy().shape[0] == 2
        got, want = decode(path).waveform, mix(scene)
        n = min(got.size, want.size)
        assert np.corrcoef(got[:n], want[:n])[0, 1] >= 0.99
        assert np.dot(got[:n], want[:n]) / np.dot(want[:n], want[:n]) == pytest.approx(1.0, abs=0.05)


@needs_glyphs
def test_every_glyph_set_draws_every_instrument_and_person_variant() -> None:
    from mcd.synth.glyphs import glyph, person_variants

    for glyph_set in ("openmoji", "fluent3d", "noto"):
        for name, cp in INSTRUMENT_GLYPHS.items():
            assert (np.asarray(glyph(glyph_set, cp))[..., 3] > 0).sum() > 500, (glyph_set, name)
        persons = {np.asarray(glyph(glyph_set, k)).tobytes() for k in person_variants(glyph_set)}
        assert len(persons) == len(person_variants(glyph_set)), glyph_set   # skin tones really differ
