"""mcd.media.decode over clips written with PyAV (tests/media_factory.py): containers x codecs x audio layouts,
time alignment, variable frame rate, short clips, silence, limits, typed errors, fallbacks and isolation."""
from __future__ import annotations

import hashlib
import pickle
import sys

import av
import numpy as np
import pytest

import mcd.media as media
from mcd.media import (SAMPLE_RATE, DecodedClip, MediaError, MediaLimitError, MediaLimits, MediaNotFoundError,
                       NoVideoStreamError, UnreadableMediaError, content_hash, decode)
try:  # `python -m pytest` from the repo root
    from tests.media_factory import ClipSpec, level_at, make_audio_only, make_clip, make_layout_switch_clip
except ImportError:  # plain `pytest`, tests/ on sys.path
    from media_factory import ClipSpec, level_at, make_audio_only, make_clip, make_layout_switch_clip

VP9_FAST = {"deadline": "realtime", "cpu-used": "8"}


# ------------------------------------------------------------------------------------------------ helpers

def tone_amplitude(x: np.ndarray, freq: float, sr: int = SAMPLE_RATE) -> float:
    """Amplitude of the sinusoid at `freq` in x (least-squares fit of sin + cos)."""
    t = np.arange(len(x)) / sr
    basis = np.stack([np.sin(2 * np.pi * freq * t), np.cos(2 * np.pi * freq * t)], axis=1)
    coef, *_ = np.linalg.lstsq(basis, x.astype(np.float64), rcond=None)
    return float(np.hypot(*coef))


def dominant_frequency(x: np.ndarray, sr: int = SAMPLE_RATE) -> float:
    spectrum = np.abs(np.fft.rfft(x * np.hanning(len(x))))
    return float(np.fft.rfftfreq(len(x), 1 / sr)[spectrum.argmax()])


def reference_frames(path, centres: np.ndarray) -> np.ndarray:
    """Independent reference: decode every frame with PyAV and take the one whose time is nearest each centre."""
    with av.open(str(path)) as container:
        decoded = [(f.time, f.to_ndarray(format="rgb24")) for f in container.decode(video=0)]
    times = np.array([t for t, _ in decoded]) - decoded[0][0]
    return np.stack([decoded[int(np.abs(times - c).argmin())][1] for c in centres])


# ------------------------------------------------------------------------------------------------ matrix

STEREO = (440.0, 880.0)
SURROUND = (440.0, 880.0, 660.0, 0.0, 550.0, 770.0)   # FL FR FC LFE(silent) BL BR
MATRIX = [
    # ext, video codec, audio codec, channels, sample rate, tones
    ("mp4", "libx264", "aac", 1, 44100, (440.0,)),
    ("mp4", "libx264", "aac", 2, 48000, STEREO),
    ("mp4", "libx264", "aac", 6, 48000, SURROUND),
    ("webm", "libvpx-vp9", "libopus", 2, 48000, STEREO),
    ("webm", "libvpx-vp9", "libopus", 6, 48000, SURROUND),
    ("mkv", "libx264", "libmp3lame", 2, 44100, STEREO),
    ("mkv", "libvpx-vp9", "flac", 6, 48000, SURROUND),
    ("mov", "libx264", "aac", 2, 44100, STEREO),
    ("mov", "mpeg4", "pcm_s16le", 2, 22050, STEREO),
    ("avi", "mpeg4", "libmp3lame", 2, 44100, STEREO),
    ("avi", "mpeg4", "pcm_s16le", 1, 16000, (440.0,)),
    ("mpg", "mpeg2video", "mp2", 2, 48000, STEREO),    # no per-packet timestamps: decoded by the PyAV fallback
]


@pytest.mark.parametrize("ext,vcodec,acodec,channels,rate,tones", MATRIX,
                         ids=[f"{m[0]}-{m[1]}-{m[2]}-{m[3]}ch" for m in MATRIX])
def test_decode_matrix(tmp_path, ext, vcodec, acodec, channels, rate, tones):
    spec = ClipSpec(duration=2.0, fps=8, vcodec=vcodec, acodec=acodec, channels=channels, sample_rate=rate,
                    tones=tones, extra=VP9_FAST if vcodec == "libvpx-vp9" else {})
    path = make_clip(tmp_path / f"clip.{ext}", spec)
    T = 6
    clip = decode(path, T=T)

    assert isinstance(clip, DecodedClip) and clip.T == T and clip.has_audio
    assert clip.sample_rate == SAMPLE_RATE and clip.path == str(path)
    # AVI with mp3 shifts the video by one frame: allow a frame plus a little
    assert abs(clip.duration - spec.duration) <= 1 / spec.fps + 0.01
    assert abs(clip.fps - spec.fps) < 1.0
    assert clip.frames.shape == (T, spec.height, spec.width, 3) and clip.frames.dtype == np.uint8
    assert (clip.width, clip.height) == (spec.width, spec.height)
    np.testing.assert_allclose(clip.timestamps, (np.arange(T) + 0.5) * clip.duration / T)

    # frames: the ones PyAV finds nearest each centre, in RGB order (red quadrant top-left)
    ref = reference_frames(path, clip.timestamps)
    assert np.abs(clip.frames.astype(int) - ref.astype(int)).mean() < 3.0
    red = clip.frames[:, spec.height // 4, spec.width // 4].astype(int)
    assert (red[:, 0] > 200).all() and (red[:, 1:] < 60).all()

    # audio: lengths, then content (resampled correctly; every non-silent channel in the mono mix)
    assert clip.waveform.dtype == np.float32 and clip.audio_segments.dtype == np.float32
    assert len(clip.waveform) == round(clip.duration * SAMPLE_RATE)
    assert abs(len(clip.waveform) - spec.duration * SAMPLE_RATE) <= 0.15 * SAMPLE_RATE
    assert clip.audio_segments.shape == (T, SAMPLE_RATE)
    body = clip.waveform[int(0.2 * SAMPLE_RATE):int(1.8 * SAMPLE_RATE)]
    present = [f for f in tones[:channels] if f > 0]
    amps = {f: tone_amplitude(body, f) for f in present}
    assert min(amps.values()) > 0.25 * max(amps.values()), amps     # a mix, not "channel 0 only"
    assert max(amps.values()) > 0.1
    assert tone_amplitude(body, 1234.0) < 0.05 * max(amps.values())  # the measure tells tones apart
    if channels == 1:
        assert abs(dominant_frequency(body) - 440.0) < 5
    # a window inside the clip is the waveform around its centre
    mid = T // 2
    start = int(round(clip.timestamps[mid] * SAMPLE_RATE)) - SAMPLE_RATE // 2
    np.testing.assert_array_equal(clip.audio_segments[mid], clip.waveform[start:start + SAMPLE_RATE])


# ------------------------------------------------------------------------------------------------ time axis

@pytest.mark.parametrize("ext,vcodec,acodec,rate,delay", [
    ("mp4", "libx264", "aac", 44100, 0.0),
    ("webm", "libvpx-vp9", "libopus", 48000, 0.0),
    ("mkv", "libx264", "libmp3lame", 44100, 0.0),
    ("avi", "mpeg4", "pcm_s16le", 16000, 0.0),
    ("mp4", "libx264", "aac", 44100, 0.5),       # audio track starting 0.5 s after the picture
    ("mkv", "libx264", "flac", 48000, 0.5),
    ("mov", "mpeg4", "pcm_s16le", 22050, 0.5),
])
def test_audio_windows_line_up_with_the_clip(tmp_path, ext, vcodec, acodec, rate, delay):
    """The tone switches from 440 to 2000 Hz at clip time 1.0 s: with T=2 the windows [0,1] and [1,2] must
    each hold only their own tone; with a delayed track the first `delay` seconds must be silent."""
    spec = ClipSpec(duration=2.0, vcodec=vcodec, acodec=acodec, sample_rate=rate, audio_delay_s=delay,
                    tone_change_s=1.0 - delay, tone_after=2000.0,
                    extra=VP9_FAST if vcodec == "libvpx-vp9" else {})
    clip = decode(make_clip(tmp_path / f"clip.{ext}", spec), T=2)
    first, second = clip.audio_segments
    assert tone_amplitude(first, 2000.0) < 0.1 * tone_amplitude(first, 440.0)
    assert tone_amplitude(second, 440.0) < 0.1 * tone_amplitude(second, 2000.0)
    if delay:
        lead = clip.waveform[: int((delay - 0.05) * SAMPLE_RATE)]
        assert np.abs(lead).max() < 1e-3
        assert np.abs(clip.waveform[int((delay + 0.05) * SAMPLE_RATE):int(0.95 * SAMPLE_RATE)]).max() > 0.2


def test_no_audio_track_decodes_as_silence(tmp_path):
    clip = decode(make_clip(tmp_path / "mute.mp4", ClipSpec(acodec=None, channels=0)), T=5)
    assert clip.has_audio is False
    assert clip.audio_segments.shape == (5, SAMPLE_RATE) and not clip.audio_segments.any()
    assert len(clip.waveform) == round(clip.duration * SAMPLE_RATE) and not clip.waveform.any()
    assert clip.frames.shape == (5, 48, 64, 3)


def test_audio_stream_without_sound_decodes_as_silence(tmp_path):
    clip = decode(make_clip(tmp_path / "hollow.mkv", ClipSpec(channels=2, tones=STEREO, empty_audio_track=True)))
    assert clip.has_audio is False and not clip.waveform.any() and clip.frames.shape[0] == 10


@pytest.mark.parametrize("ext", ["mp4", "mkv"])
def test_variable_frame_rate_picks_the_frame_nearest_each_centre(tmp_path, ext):
    times = (0.0, 0.1, 0.15, 0.5, 0.55, 0.6, 1.2, 1.25, 1.9)
    spec = ClipSpec(duration=2.0, frame_times=times)
    clip = decode(make_clip(tmp_path / f"vfr.{ext}", spec), T=10)
    assert 1.9 < clip.duration <= 2.1
    assert clip.fps == pytest.approx(len(times) / clip.duration)
    written = np.asarray(times)
    expected_t = written[np.abs(written[None, :] - clip.timestamps[:, None]).argmin(axis=1)]
    expected_level = np.array([level_at(t, spec.duration) for t in expected_t])
    got_level = clip.frames[:, -1, -1].astype(float).mean(axis=1)
    np.testing.assert_allclose(got_level, expected_level, atol=4)
    assert len(set(expected_t)) < 10 <= clip.T      # the sparse stretch really makes frames repeat


def test_clip_shorter_than_T_seconds(tmp_path):
    spec = ClipSpec(duration=0.5, fps=8)                     # 4 frames, 0.5 s, T = 10
    clip = decode(make_clip(tmp_path / "short.mp4", spec), T=10)
    assert clip.frames.shape == (10, 48, 64, 3)
    assert clip.duration == pytest.approx(0.5, abs=0.01)
    levels = clip.frames[:, -1, -1, 0].astype(int)
    assert len(np.unique(levels // 4)) <= 4 and np.all(np.diff(levels) >= -2)   # repeated, in time order
    assert len(clip.waveform) == round(clip.duration * SAMPLE_RATE)
    assert clip.audio_segments.shape == (10, SAMPLE_RATE)
    for segment in clip.audio_segments:                      # each window holds at most the 0.5 s of sound
        assert np.count_nonzero(segment) <= 0.5 * SAMPLE_RATE + 1
        assert np.count_nonzero(segment) > 0.25 * SAMPLE_RATE


# ------------------------------------------------------------------------------------------------ errors

def _assert_human(err: MediaError, name: str):
    assert isinstance(err, MediaError)
    msg = err.user_message
    assert msg and "Traceback" not in msg and "Errno" not in msg and name in msg


def test_text_file_renamed_mp4(tmp_path):
    path = tmp_path / "notes.mp4"
    path.write_text("this is a shopping list, not a video\n" * 20)
    with pytest.raises(UnreadableMediaError) as info:
        decode(path)
    _assert_human(info.value, "notes.mp4")
    assert "not a video" in info.value.user_message


def test_truncated_mp4(tmp_path):
    full = make_clip(tmp_path / "full.mp4", ClipSpec(duration=2.0)).read_bytes()
    path = tmp_path / "cut.mp4"
    path.write_bytes(full[: len(full) // 2])
    with pytest.raises(UnreadableMediaError) as info:
        decode(path)
    _assert_human(info.value, "cut.mp4")
    assert "truncated" in info.value.user_message


def test_truncated_mkv_whose_first_frame_is_gone(tmp_path):
    full = make_clip(tmp_path / "full.mkv", ClipSpec(duration=2.0)).read_bytes()
    path = tmp_path / "stub.mkv"
    path.write_bytes(full[:1500])                  # header only: PyAV opens it, no frame decodes
    with pytest.raises(UnreadableMediaError) as info:
        decode(path)
    _assert_human(info.value, "stub.mkv")


def test_truncated_mkv_with_half_its_frames_decodes_what_is_there(tmp_path):
    full = make_clip(tmp_path / "full.mkv", ClipSpec(duration=2.0)).read_bytes()
    path = tmp_path / "half.mkv"
    path.write_bytes(full[: len(full) // 2])
    clip = decode(path, T=4)
    assert 0.3 < clip.duration < 1.9 and clip.frames.shape == (4, 48, 64, 3)


def test_zero_byte_file(tmp_path):
    path = tmp_path / "empty.mp4"
    path.touch()
    with pytest.raises(UnreadableMediaError) as info:
        decode(path)
    _assert_human(info.value, "empty.mp4")
    assert "empty" in info.value.user_message


@pytest.mark.parametrize("name,codec", [("song.m4a", "aac"), ("song.mp3", "libmp3lame"), ("song.wav", "pcm_s16le")])
def test_audio_only_file(tmp_path, name, codec):
    path = make_audio_only(tmp_path / name, codec=codec)
    with pytest.raises(NoVideoStreamError) as info:
        decode(path)
    _assert_human(info.value, name)
    assert "no video stream" in info.value.user_message


def test_still_image_is_not_a_video(tmp_path):
    from PIL import Image
    path = tmp_path / "photo.png"
    Image.fromarray(np.zeros((32, 32, 3), np.uint8)).save(path)
    with pytest.raises(NoVideoStreamError) as info:
        decode(path)
    _assert_human(info.value, "photo.png")


def test_missing_path(tmp_path):
    with pytest.raises(MediaNotFoundError) as info:
        decode(tmp_path / "nowhere.mp4")
    _assert_human(info.value, "nowhere.mp4")
    with pytest.raises(MediaNotFoundError):
        decode(tmp_path)                            # a directory is not a file


def test_corrupted_bytes_never_escape_as_anything_but_media_error(tmp_path):
    """Random byte damage: decode either returns a clip or raises a MediaError, in-process."""
    good = bytearray(make_clip(tmp_path / "good.mkv", ClipSpec(duration=2.0)).read_bytes())
    rng = np.random.default_rng(0)
    for trial in range(6):
        bad = bytearray(good)
        for j in rng.integers(64, len(bad), size=20 * (trial + 1)):
            bad[j] = int(rng.integers(0, 256))
        path = tmp_path / f"bad{trial}.mkv"
        path.write_bytes(bytes(bad))
        try:
            clip = decode(path, T=4)
        except MediaError as e:
            assert e.user_message
        else:
            assert clip.frames.shape[0] == 4 and clip.audio_segments.shape == (4, SAMPLE_RATE)


def test_audio_that_switches_layout_midway_does_not_crash(tmp_path):
    """decord segfaults on this file (stereo header, mono second half); decode must detect it and use PyAV.
    Run isolated so that a regression fails this test instead of killing the test process."""
    path = make_layout_switch_clip(tmp_path / "switch.avi")
    probe = media.probe(path)
    assert probe.audio_format[1] == 2 and not media._audio_is_uniform(path, probe.audio_format)
    clip = decode(path, T=2, isolate=True)
    assert clip.has_audio
    for segment in clip.audio_segments:                      # the tone is there in both halves
        assert abs(dominant_frequency(segment) - 440.0) < 5 and tone_amplitude(segment, 440.0) > 0.2


def test_bad_T():
    with pytest.raises(ValueError):
        decode("whatever.mp4", T=0)


def test_media_error_pickles_with_its_message():
    err = pickle.loads(pickle.dumps(NoVideoStreamError("this file has no video stream", "detail")))
    assert type(err) is NoVideoStreamError and err.user_message == "this file has no video stream"
    assert err.detail == "detail"


# ------------------------------------------------------------------------------------------------ limits

@pytest.fixture
def no_decoding(monkeypatch):
    """Fail the test if decord decodes anything (limits must be checked before)."""
    import decord

    def forbidden(*args, **kwargs):
        raise AssertionError("decoding started before the limits were checked")
    monkeypatch.setattr(decord, "VideoReader", forbidden)
    monkeypatch.setattr(decord, "AudioReader", forbidden)


def test_size_limit_is_checked_before_opening(tmp_path, no_decoding, monkeypatch):
    path = make_clip(tmp_path / "clip.mp4", ClipSpec())
    monkeypatch.setattr(av, "open", lambda *a, **k: pytest.fail("opened a file over the size limit"))
    with pytest.raises(MediaLimitError) as info:
        decode(path, limits=MediaLimits(max_bytes=1000))
    assert "limit is 1.0 KB" in info.value.user_message


def test_duration_limit(tmp_path, no_decoding):
    path = make_clip(tmp_path / "clip.mkv", ClipSpec(duration=2.0))
    with pytest.raises(MediaLimitError) as info:
        decode(path, limits=MediaLimits(max_duration_s=1.0))
    assert info.value.user_message == "the clip is 2.0 s long; the limit is 1 s"


def test_duration_limit_message_in_minutes():
    with pytest.raises(MediaLimitError) as info:
        media._check_duration(720.0, MediaLimits())
    assert info.value.user_message == "the clip is 12.0 min long; the limit is 10 min"


def test_resolution_limit(tmp_path, no_decoding):
    path = make_clip(tmp_path / "clip.mp4", ClipSpec(width=64, height=48))
    with pytest.raises(MediaLimitError) as info:
        decode(path, limits=MediaLimits(max_pixels=64 * 47))
    assert "64x48" in info.value.user_message


def test_duration_limit_without_header_duration_still_precedes_decoding(tmp_path, monkeypatch):
    """If the header has no duration, the limit is checked on decord's packet index, before get_batch."""
    import decord

    path = make_clip(tmp_path / "clip.mkv", ClipSpec(duration=2.0))
    real_probe = media.probe

    def probe_without_duration(p, limits=None):
        info = real_probe(p)            # no limits: the header's 2 s must not trip the check here
        info.duration = None
        return info
    monkeypatch.setattr(media, "probe", probe_without_duration)
    monkeypatch.setattr(decord.VideoReader, "get_batch", lambda *a: pytest.fail("decoded frames"))
    with pytest.raises(MediaLimitError):
        decode(path, limits=MediaLimits(max_duration_s=1.5))


# ------------------------------------------------------------------------------------------------ fallbacks

def test_audio_falls_back_to_pyav_when_decord_cannot(tmp_path, monkeypatch):
    import decord

    path = make_clip(tmp_path / "clip.webm", ClipSpec(vcodec="libvpx-vp9", acodec="libopus", channels=2,
                                                     sample_rate=48000, tones=STEREO, extra=VP9_FAST))
    reference = decode(path, T=4)
    monkeypatch.setattr(decord, "AudioReader", lambda *a, **k: (_ for _ in ()).throw(decord.DECORDError("no")))
    clip = decode(path, T=4)
    assert clip.has_audio and len(clip.waveform) == len(reference.waveform)
    assert np.corrcoef(clip.waveform, reference.waveform)[0, 1] > 0.99


def test_video_falls_back_to_pyav_when_decord_cannot(tmp_path, monkeypatch):
    import decord

    path = make_clip(tmp_path / "clip.mp4", ClipSpec(duration=2.0))
    reference = decode(path, T=5)
    monkeypatch.setattr(decord, "VideoReader", lambda *a, **k: (_ for _ in ()).throw(RuntimeError("no")))
    clip = decode(path, T=5)
    assert clip.duration == pytest.approx(reference.duration)
    assert np.abs(clip.frames.astype(int) - reference.frames.astype(int)).mean() < 3.0


def test_silent_when_no_library_can_decode_the_audio(tmp_path, monkeypatch):
    path = make_clip(tmp_path / "clip.mp4", ClipSpec())
    fail = lambda *a, **k: (_ for _ in ()).throw(RuntimeError("broken track"))  # noqa: E731
    monkeypatch.setattr(media, "_read_audio_decord", fail)
    monkeypatch.setattr(media, "_read_audio_pyav", fail)
    clip = decode(path, T=3)
    assert clip.has_audio is False and not clip.waveform.any()


# ------------------------------------------------------------------------------------------------ isolation

def test_isolated_decode_matches_in_process(tmp_path):
    path = make_clip(tmp_path / "clip.mp4", ClipSpec(channels=2, tones=STEREO))
    here, there = decode(path, T=4), decode(path, T=4, isolate=True)
    for field in ("duration", "fps", "width", "height", "T", "has_audio", "sample_rate"):
        assert getattr(here, field) == getattr(there, field)
    for field in ("frames", "timestamps", "waveform", "audio_segments"):
        np.testing.assert_array_equal(getattr(here, field), getattr(there, field))


def test_isolated_decode_keeps_the_error_type(tmp_path):
    path = make_audio_only(tmp_path / "song.m4a")
    with pytest.raises(NoVideoStreamError) as info:
        decode(path, isolate=True)
    _assert_human(info.value, "song.m4a")


def test_isolated_decode_survives_a_decoder_crash(tmp_path, monkeypatch):
    path = make_clip(tmp_path / "clip.mp4", ClipSpec())
    crash = "import os, signal; os.kill(os.getpid(), signal.SIGSEGV)"
    monkeypatch.setattr(media, "_CHILD_COMMAND", [sys.executable, "-c", crash])
    with pytest.raises(UnreadableMediaError) as info:
        decode(path, isolate=True)
    assert "crashed" in info.value.user_message


def test_isolated_decode_times_out(tmp_path, monkeypatch):
    path = make_clip(tmp_path / "clip.mp4", ClipSpec())
    monkeypatch.setattr(media, "_CHILD_COMMAND", [sys.executable, "-c", "import time; time.sleep(30)"])
    with pytest.raises(UnreadableMediaError) as info:
        decode(path, limits=MediaLimits(timeout_s=1.0), isolate=True)
    assert "longer than 1 s" in info.value.user_message


# ------------------------------------------------------------------------------------------------ helpers

def test_resized_keeps_content(tmp_path):
    clip = decode(make_clip(tmp_path / "clip.mp4", ClipSpec(width=64, height=48)), T=3)
    small = clip.resized(16)
    assert small.shape == (3, 16, 16, 3) and small.dtype == np.uint8
    assert clip.resized((24, 32)).shape == (3, 24, 32, 3)
    assert (small[:, 3, 3, 0] > 200).all() and (small[:, 3, 3, 1] < 60).all()        # red quadrant stays
    np.testing.assert_allclose(small[:, 12, 12].astype(float), clip.frames[:, 40, 56].astype(float), atol=4)
    with pytest.raises(ValueError):
        clip.resized(0)


def test_content_hash(tmp_path):
    data = np.random.default_rng(1).bytes(2_500_000)          # > 2 chunks of 1 MiB
    a, b = tmp_path / "a.bin", tmp_path / "b.bin"
    a.write_bytes(data)
    b.write_bytes(data)
    assert content_hash(a) == hashlib.sha256(data).hexdigest() == content_hash(b)
    b.write_bytes(data[:-1] + bytes([data[-1] ^ 1]))
    assert content_hash(b) != content_hash(a)
    with pytest.raises(MediaNotFoundError):
        content_hash(tmp_path / "missing.bin")
