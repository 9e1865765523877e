"""Decode a video file into what the encoders need: T frames, T one-second audio windows and the whole waveform.

The clip is cut into T equal segments. For each segment we keep the frame whose timestamp is nearest the segment's
centre (at its original size; `DecodedClip.resized` makes encoder inputs) and a 1-s audio window centred on the
same time, from the clip's own audio track downmixed to mono at 16 kHz.

Why two libraries: decord (package decord2) decodes the frames and the audio, but it aborts or can crash on
files it does not like and prints FFmpeg noise, so every file is first probed with PyAV (`av.open`), which fails
with ordinary Python exceptions. The probe classifies the file (which streams exist, header duration, resolution,
does the first video frame decode) and the limits are checked on it before anything is decoded. For untrusted
uploads, `decode(..., isolate=True)` runs the decoding in a child process, so that even a decoder crash only
becomes an `UnreadableMediaError`.

Time axis: t = 0 is the start of the video stream (decord's frame timestamps are relative to it); the clip's
duration is the end of its last frame. The waveform is placed on the same axis (audio that starts late is
preceded by zeros) and cut or zero-padded to `round(duration * 16000)` samples, so `waveform[int(t * 16000)]`
is the sound heard when the frame at time t is shown.
"""
from __future__ import annotations

import hashlib
import json
import logging
import os
import subprocess
import sys
import tempfile
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np

SAMPLE_RATE = 16000
log = logging.getLogger(__name__)

# Sanity bounds for a frame count claimed by a file's header (see `_classify`).
_MAX_FPS = 1000
_MAX_FRAMES = 10_000_000

# Container formats that FFmpeg opens as a "video" but that hold a single still picture.
_IMAGE_FORMATS = ("image2", "png_pipe", "jpeg_pipe", "bmp_pipe", "webp_pipe", "tiff_pipe", "jpegls_pipe",
                  "gif_pipe", "svg_pipe", "qoi_pipe", "pam_pipe", "ppm_pipe", "pgm_pipe", "pgmyuv_pipe")


# --------------------------------------------------------------------------------------------------- errors

class MediaError(Exception):
    """Base of every decoding failure. `user_message` is for a person; str(error) adds technical detail."""

    def __init__(self, user_message: str, detail: str = ""):
        super().__init__(f"{user_message} ({detail})" if detail else user_message)
        self.user_message = user_message
        self.detail = detail

    def __reduce__(self):  # keep both fields when pickled (DataLoader workers, child processes)
        return (type(self), (self.user_message, self.detail))


class MediaNotFoundError(MediaError):
    """The path does not exist or is not a file."""


class UnreadableMediaError(MediaError):
    """Empty, truncated, corrupt, or not a media file at all."""


class NoVideoStreamError(MediaError):
    """A readable media file without a (moving) picture: audio only, subtitles, a still image."""


class MediaLimitError(MediaError):
    """The file is larger, longer or has more pixels than `MediaLimits` allows. Raised before decoding."""


_ERRORS = {cls.__name__: cls for cls in (MediaError, MediaNotFoundError, UnreadableMediaError,
                                          NoVideoStreamError, MediaLimitError)}


# --------------------------------------------------------------------------------------------------- data

@dataclass(frozen=True)
class MediaLimits:
    """What `decode` accepts. The defaults suit the demo; `timeout_s` only applies to `isolate=True`."""
    max_bytes: int = 200 * 1024 * 1024
    max_duration_s: float = 600.0
    max_pixels: int = 3840 * 2160
    timeout_s: float = 300.0


@dataclass
class DecodedClip:
    """One decoded clip (see module docstring for the time axis)."""
    path: str
    duration: float               # seconds, end of the last frame
    fps: float                    # frames in the file / duration (an average for variable frame rate)
    width: int
    height: int
    T: int
    frames: np.ndarray            # uint8 [T, H, W, 3] RGB, frame nearest each segment centre, original size
    timestamps: np.ndarray        # float64 [T], segment centres in seconds
    waveform: np.ndarray          # float32 [N], mono 16 kHz, N = round(duration * 16000)
    audio_segments: np.ndarray    # float32 [T, 16000], 1-s windows centred on the timestamps, zero-padded
    has_audio: bool
    sample_rate: int = SAMPLE_RATE

    def resized(self, size: int | tuple[int, int]) -> np.ndarray:
        """The frames resized to `size` (int = square, or (height, width)) for an encoder; uint8 [T, h, w, 3]."""
        return resize_frames(self.frames, size)


def resize_frames(frames: np.ndarray, size: int | tuple[int, int]) -> np.ndarray:
    """Resize uint8 [T, H, W, 3] frames to (height, width), squashing rather than cropping.

    Squashing keeps the whole field of view: a player at the frame's left edge is still there, which matters for
    "left/right" questions (a centre crop of a wide video would cut them off).
    """
    from PIL import Image

    h, w = (size, size) if isinstance(size, int) else (int(size[0]), int(size[1]))
    if h < 1 or w < 1:
        raise ValueError(f"resize size must be positive, got {size!r}")
    out = np.empty((len(frames), h, w, 3), dtype=np.uint8)
    for i, frame in enumerate(frames):
        out[i] = np.asarray(Image.fromarray(frame).resize((w, h), Image.BILINEAR))
    return out


def content_hash(path: str | os.PathLike) -> str:
    """sha256 hex digest of the file's bytes (read in 1 MiB chunks): the feature cache's key for a clip."""
    path = Path(path)
    if not path.is_file():
        raise MediaNotFoundError(f"the file {path.name!r} was not found", str(path))
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


# --------------------------------------------------------------------------------------------------- probe

@dataclass
class Probe:
    """What PyAV says about a file before anything is decoded with decord."""
    format_name: str
    width: int
    height: int
    duration: float | None        # from the header; None when the container does not say
    video_start: float            # start of the video stream, seconds
    has_audio: bool
    audio_start: float            # start of the audio stream, seconds (0 when unknown)
    audio_codec: str | None
    channels: int
    audio_format: tuple | None = None    # (sample rate, channels, sample format) the audio header announces


def _seconds(value, time_base) -> float | None:
    return None if value is None or time_base is None else float(value * time_base)


def probe(path: str | os.PathLike, limits: MediaLimits | None = None) -> Probe:
    """Open the file with PyAV and classify it; raises the typed errors for anything that is not a video.

    With `limits`, resolution and header duration are checked as soon as the headers are read, before the one
    test frame is decoded.
    """
    import av

    path = Path(path)
    unreadable = (f"this file ({path.name}) is not a video FFmpeg can read; "
                  "it may be truncated, corrupt or not a video")
    try:
        with av.open(str(path), metadata_errors="ignore") as container:
            return _classify(container, path.name, unreadable, limits)
    except MediaError:
        raise
    except Exception as e:  # av.error.* (InvalidDataError, ...), OSError, odd metadata on damaged files
        raise UnreadableMediaError(unreadable, f"{type(e).__name__}: {e}") from None


def _classify(container, name: str, unreadable: str, limits: MediaLimits | None) -> Probe:
    import av

    fmt = container.format.name
    video = [s for s in container.streams.video
             if not s.disposition & av.stream.Disposition.attached_pic]   # skip mp3/m4a cover art
    audio = list(container.streams.audio)
    if fmt in _IMAGE_FORMATS:
        raise NoVideoStreamError(f"this file ({name}) is a still image, not a video", fmt)
    if not video:
        if audio:
            raise NoVideoStreamError(f"this file ({name}) has no video stream (it is audio only)", fmt)
        raise UnreadableMediaError(unreadable, f"format {fmt}, no audio or video stream")
    vs = video[0]
    if vs.codec_context is None:       # PyAV found no decoder for the stream's codec
        raise UnreadableMediaError(f"the video codec of {name} is not supported", f"format {fmt}")
    width, height = vs.codec_context.width, vs.codec_context.height
    if width <= 0 or height <= 0:
        raise UnreadableMediaError(unreadable, "video stream without a frame size")
    duration = _seconds(vs.duration, vs.time_base)
    if not duration and container.duration:
        duration = container.duration / 1_000_000  # av.time_base
    video_start = _seconds(vs.start_time, vs.time_base) or 0.0
    if limits is not None:
        _check_resolution(width, height, limits)
        _check_duration(duration, limits)
    # decord reserves memory for the header's frame count (or rate x duration) before reading anything; a damaged
    # header claiming a billion frames aborts the process with std::bad_alloc, so refuse absurd counts here.
    rate = float(vs.average_rate or 0)
    claimed = vs.frames or rate * (container.duration or 0) / 1_000_000
    if claimed > _MAX_FPS * ((duration or 0) + 1) or claimed > _MAX_FRAMES:
        raise UnreadableMediaError(unreadable, f"header claims {claimed:.0f} frames in {duration} s")
    # Decode one frame: catches files whose headers parse but whose video does not decode (truncated, wrong
    # codec parameters), which is where decord aborts or crashes.
    try:
        next(iter(container.decode(vs)))
    except Exception as e:  # StopIteration: no frame at all; av errors: broken data
        raise UnreadableMediaError(unreadable, f"first video frame does not decode: {type(e).__name__} {e}")
    a = audio[0] if audio and audio[0].codec_context is not None else None   # undecodable audio = no audio
    return Probe(
        format_name=fmt, width=width, height=height, duration=duration or None, video_start=video_start,
        has_audio=a is not None,
        audio_start=max(_seconds(a.start_time, a.time_base) or 0.0, 0.0) if a is not None else 0.0,
        audio_codec=a.codec_context.name if a is not None else None,
        channels=a.codec_context.channels if a is not None else 0,
        audio_format=_audio_format(a.codec_context) if a is not None else None,
    )


def _audio_format(x) -> tuple:
    """(sample rate, channels, sample format) of a codec context or a decoded frame."""
    return (x.sample_rate, x.layout.nb_channels, x.format.name if x.format is not None else None)


# --------------------------------------------------------------------------------------------------- checks

def _check_file(path: Path, limits: MediaLimits) -> None:
    """Existence, emptiness and the size limit: all decided from the file system, before opening it."""
    if not path.exists():
        raise MediaNotFoundError(f"the file {path.name!r} was not found", str(path))
    if not path.is_file():
        raise MediaNotFoundError(f"{path.name!r} is not a file", str(path))
    size = path.stat().st_size
    if size == 0:
        raise UnreadableMediaError(f"this file ({path.name}) is empty (0 bytes)", str(path))
    if size > limits.max_bytes:
        raise MediaLimitError(f"the file is {_mb(size)}; the limit is {_mb(limits.max_bytes)}", str(path))


def _mb(n: int) -> str:
    return f"{n / (1024 * 1024):.1f} MB" if n >= 1024 * 1024 else f"{n / 1024:.1f} KB"


def _minutes(seconds: float) -> str:
    return f"{seconds / 60:.1f} min" if seconds >= 60 else f"{seconds:.1f} s"


def _check_duration(duration: float | None, limits: MediaLimits) -> None:
    if duration is not None and duration > limits.max_duration_s:
        limit = limits.max_duration_s
        limit_text = f"{limit / 60:g} min" if limit >= 60 else f"{limit:g} s"
        raise MediaLimitError(f"the clip is {_minutes(duration)} long; the limit is {limit_text}",
                              f"{duration:.3f} s > {limit} s")


def _check_resolution(width: int, height: int, limits: MediaLimits) -> None:
    if width * height > limits.max_pixels:
        raise MediaLimitError(
            f"the video is {width}x{height} ({width * height / 1e6:.1f} megapixels); the limit is "
            f"{limits.max_pixels / 1e6:.1f} megapixels (for example 3840x2160)", f"{width}x{height}")


# --------------------------------------------------------------------------------------------------- decode

def segment_centres(duration: float, T: int) -> np.ndarray:
    """Centres (seconds) of T equal segments over [0, duration]."""
    return (np.arange(T, dtype=np.float64) + 0.5) * (duration / T)


class _DecordFailed(Exception):
    """decord could not index or decode this video; the PyAV path gets a try."""


def _nearest(starts: np.ndarray, centres: np.ndarray) -> np.ndarray:
    """Index of the frame whose start time is nearest each centre (ties: the earlier frame)."""
    return np.abs(starts[None, :] - centres[:, None]).argmin(axis=1)


def _clip_duration(starts: np.ndarray, ends: np.ndarray) -> float:
    """End of the last frame. Some containers give the last packet no duration; use the typical frame gap then."""
    end = float(ends[-1])
    if end <= starts[-1]:
        gaps = np.diff(starts)
        gaps = gaps[gaps > 0]
        end = float(starts[-1] + (np.median(gaps) if len(gaps) else 1 / 25))
    return end


def _frames_decord(path: Path, T: int, limits: MediaLimits) -> tuple[np.ndarray, float, int]:
    """(frames [T,H,W,3], duration, frame count) with decord: index the packets, check, then decode T frames."""
    import decord

    decord.logging.set_level(decord.logging.QUIET)  # decord's FFmpeg otherwise prints warnings for odd files
    try:
        # one thread: extraction runs several decoders in DataLoader workers, and T frames of a short clip do
        # not gain from FFmpeg's frame threads (which also make seeking slower)
        reader = decord.VideoReader(str(path), ctx=decord.cpu(0), num_threads=1)
        times = np.asarray(reader.get_frame_timestamp(range(len(reader))), dtype=np.float64)
    except Exception as e:  # DECORDError, RuntimeError, AssertionError (zero frames)
        raise _DecordFailed(f"index: {type(e).__name__}: {str(e)[:300]}") from None
    starts, ends = times[:, 0], times[:, 1]
    # Packets without timestamps (e.g. MPEG program streams) come back as huge negative numbers.
    if len(starts) == 0 or not np.isfinite(times).all() or starts[0] < -1.0 or np.any(np.diff(starts) <= 0):
        raise _DecordFailed("no usable frame timestamps")
    duration = _clip_duration(starts, ends)
    _check_duration(duration, limits)              # for containers whose header had no duration
    try:
        frames = reader.get_batch(_nearest(starts, segment_centres(duration, T)).tolist()).asnumpy()
    except Exception as e:
        raise _DecordFailed(f"get_batch: {type(e).__name__}: {str(e)[:300]}") from None
    return frames, duration, len(starts)


def _frames_pyav(path: Path, T: int, limits: MediaLimits) -> tuple[np.ndarray, float, int]:
    """PyAV fallback for videos decord cannot index (no per-packet timestamps) or decode.

    Two passes: the first decodes every frame to learn its time (PyAV fills in missing timestamps from the
    frame rate), the second decodes again and converts only the T chosen frames to RGB. Slower than decord,
    but only used for the odd files that need it.
    """
    import av

    def frame_times(container):
        stream = container.streams.video[0]
        rate = float(stream.average_rate or stream.guessed_rate or 25)
        last = None
        for frame in container.decode(stream):
            t = frame.time if frame.time is not None else (last + 1 / rate if last is not None else 0.0)
            last = t
            yield frame, t, 1 / rate

    with av.open(str(path), metadata_errors="ignore") as container:
        starts, step = [], 1 / 25
        for _, t, step in frame_times(container):
            starts.append(t)
            _check_duration(t - starts[0], limits)
    if not starts:
        raise UnreadableMediaError(f"the video in {path.name} has no frames", "PyAV decoded 0 frames")
    starts = np.asarray(starts, dtype=np.float64) - starts[0]
    order = np.argsort(starts, kind="stable")
    duration = float(starts[order[-1]] + step)
    wanted = order[_nearest(starts[order], segment_centres(duration, T))].tolist()
    picked: dict[int, np.ndarray] = {}
    with av.open(str(path), metadata_errors="ignore") as container:
        for i, (frame, _, _) in enumerate(frame_times(container)):
            if i in wanted:
                picked[i] = frame.to_ndarray(format="rgb24")
            if len(picked) == len(set(wanted)):
                break
    if len(picked) < len(set(wanted)):
        raise UnreadableMediaError(f"the video in {path.name} could not be decoded; the file may be corrupt",
                                   "PyAV second pass ended early")
    return np.stack([picked[i] for i in wanted]), duration, len(starts)


def _read_frames(path: Path, T: int, limits: MediaLimits) -> tuple[np.ndarray, float, int]:
    try:
        return _frames_decord(path, T, limits)
    except _DecordFailed as e:
        log.info("decord could not read the video of %s (%s); using PyAV", path.name, e)
    try:
        return _frames_pyav(path, T, limits)
    except MediaError:
        raise
    except Exception as e:
        raise UnreadableMediaError(f"the video in {path.name} could not be decoded; the file may be corrupt",
                                   f"PyAV: {type(e).__name__}: {str(e)[:300]}") from None


def _read_audio_decord(path: Path) -> np.ndarray:
    """Whole audio track, mono float32 at 16 kHz. decord downmixes with FFmpeg's standard matrix (swresample)."""
    import decord

    reader = decord.AudioReader(str(path), ctx=decord.cpu(0), sample_rate=SAMPLE_RATE, mono=True)
    # AudioReader decodes the whole track into `_array` [channels, n] on construction; reading it directly avoids
    # `reader[:]`, which builds a Python list of every sample index (slow for a 10-minute clip).
    samples = getattr(reader, "_array", None)
    if samples is None:
        samples = reader[:].asnumpy()
    return np.asarray(samples, dtype=np.float32).reshape(-1)


def _audio_is_uniform(path: Path, expected: tuple | None) -> bool:
    """Whether the track decodes to frames that all have the rate, channel count and sample format the header
    announced.

    decord sets up its resampler once from the header and segfaults when a damaged stream switches layout
    midway (seen with a corrupted mp3 track switching stereo -> mono). This PyAV pass decodes the track
    without resampling (a few ms for a 10-s clip) and sends such files to the PyAV path instead.
    """
    import av

    frames = 0
    with av.open(str(path), metadata_errors="ignore") as container:
        for frame in container.decode(container.streams.audio[0]):
            if _audio_format(frame) != expected:
                return False
            frames += 1
    return frames > 0


def _read_audio_pyav(path: Path) -> tuple[np.ndarray, float | None]:
    """PyAV path: same downmix (swresample) and rate as decord; copes with mid-stream format changes by
    starting a new resampler. Returns (samples, start time of the first frame)."""
    import av

    chunks, start, resampler, current = [], None, None, None
    with av.open(str(path), metadata_errors="ignore") as container:
        for frame in container.decode(container.streams.audio[0]):
            if start is None and frame.time is not None:
                start = max(float(frame.time), 0.0)
            if _audio_format(frame) != current:
                if resampler is not None:
                    chunks += [out.to_ndarray().reshape(-1) for out in resampler.resample(None)]
                resampler, current = av.AudioResampler(format="flt", layout="mono", rate=SAMPLE_RATE), \
                    _audio_format(frame)
            chunks += [out.to_ndarray().reshape(-1) for out in resampler.resample(frame)]
        if resampler is not None:
            chunks += [out.to_ndarray().reshape(-1) for out in resampler.resample(None)]
    samples = np.concatenate(chunks).astype(np.float32) if chunks else np.zeros(0, np.float32)
    return samples, start


def _read_audio(path: Path, info: Probe) -> tuple[np.ndarray, float] | None:
    """(mono 16 kHz samples, time of the first sample), or None when the track yields no sound at all."""
    try:
        if _audio_is_uniform(path, info.audio_format):
            return _read_audio_decord(path), info.audio_start
        log.info("the audio of %s changes format midway or is empty; using PyAV", path.name)
    except Exception as e:
        # decord2 bundles its own FFmpeg build; a codec it lacks (or an "experimental" decoder it refuses to
        # open) still decodes with PyAV's FFmpeg, so fall back for the audio only.
        log.info("decord could not read the audio of %s (%s); using PyAV", path.name, e)
    try:
        samples, start = _read_audio_pyav(path)
    except Exception as e:
        log.warning("the audio track of %s does not decode (%s); treating the clip as silent", path.name, e)
        return None
    if len(samples) == 0:
        log.warning("the audio track of %s holds no sound; treating the clip as silent", path.name)
        return None
    return samples, info.audio_start if start is None else start


def _place_audio(samples: np.ndarray, audio_start: float, video_start: float, n: int) -> np.ndarray:
    """Put the track on the video's time axis: `n` samples, zeros where the track is absent."""
    out = np.zeros(n, dtype=np.float32)
    offset = int(round((audio_start - video_start) * SAMPLE_RATE))  # > 0: audio starts after the picture
    src_from, dst_from = max(-offset, 0), max(offset, 0)
    count = min(len(samples) - src_from, n - dst_from)
    if count > 0:
        out[dst_from:dst_from + count] = samples[src_from:src_from + count]
    return out


def audio_windows(waveform: np.ndarray, centres: np.ndarray, length: int = SAMPLE_RATE) -> np.ndarray:
    """float32 [T, length]: windows of `length` samples centred on each centre (seconds), zero-padded."""
    out = np.zeros((len(centres), length), dtype=np.float32)
    for i, c in enumerate(centres):
        start = int(round(c * SAMPLE_RATE)) - length // 2
        lo, hi = max(start, 0), min(start + length, len(waveform))
        if hi > lo:
            out[i, lo - start:hi - start] = waveform[lo:hi]
    return out


def _decode_here(path: Path, T: int, limits: MediaLimits) -> DecodedClip:
    _check_file(path, limits)
    info = probe(path, limits)

    frames, duration, n_frames = _read_frames(path, T, limits)  # checks the duration again before decoding
    centres = segment_centres(duration, T)

    n = int(round(duration * SAMPLE_RATE))
    audio = _read_audio(path, info) if info.has_audio else None
    has_audio = audio is not None
    waveform = _place_audio(*audio, info.video_start, n) if has_audio else np.zeros(n, dtype=np.float32)
    return DecodedClip(
        path=str(path), duration=duration, fps=n_frames / duration,
        width=int(frames.shape[2]), height=int(frames.shape[1]), T=T,
        frames=np.ascontiguousarray(frames, dtype=np.uint8), timestamps=centres,
        waveform=waveform, audio_segments=audio_windows(waveform, centres), has_audio=has_audio,
    )


def decode(path: str | os.PathLike, T: int = 10, limits: MediaLimits = MediaLimits(), *,
           isolate: bool = False) -> DecodedClip:
    """Decode `path` into a DecodedClip of T segments; every failure is a MediaError subclass.

    Order of checks: file exists / not empty / size limit (file system) -> PyAV probe (streams, then resolution
    and header duration limits, then does the first frame decode) -> decord index (duration limit again) ->
    decode T frames and the audio. `isolate=True` does all of it in a child Python process (about a second
    slower), so that a decoder crash or hang on a hostile file cannot take the calling process (the demo
    server) down.
    """
    if isinstance(T, bool) or not isinstance(T, (int, np.integer)) or T < 1:
        raise ValueError(f"T must be a positive int, got {T!r}")
    path = Path(path)
    if isolate:
        return _decode_isolated(path, int(T), limits)
    return _decode_here(path, int(T), limits)


# --------------------------------------------------------------------------------------------------- isolation

#: The child command (the tests swap it for one that crashes or hangs).
_CHILD_COMMAND = [sys.executable, "-m", "mcd.media"]


def _decode_isolated(path: Path, T: int, limits: MediaLimits) -> DecodedClip:
    """Run `python -m mcd.media` on the file and read its result back; crashes and timeouts become errors."""
    _check_file(path, limits)  # cheap checks here, so the common errors need no child process
    with tempfile.TemporaryDirectory(prefix="mcd-decode-") as tmp:
        out = Path(tmp) / "clip.npz"
        cmd = [*_CHILD_COMMAND, str(path.resolve()), str(out), str(T), json.dumps(asdict(limits))]
        env = dict(os.environ)
        root = str(Path(__file__).resolve().parents[1])
        env["PYTHONPATH"] = root + os.pathsep + env["PYTHONPATH"] if env.get("PYTHONPATH") else root
        try:
            proc = subprocess.run(cmd, env=env, capture_output=True, timeout=limits.timeout_s)
        except subprocess.TimeoutExpired:
            raise UnreadableMediaError(
                f"decoding {path.name} took longer than {limits.timeout_s:g} s; the file may be corrupt",
                "timeout") from None
        error_file = out.with_suffix(".json")
        if error_file.exists():
            err = json.loads(error_file.read_text())
            raise _ERRORS.get(err["type"], MediaError)(err["user_message"], err["detail"])
        if proc.returncode != 0 or not out.exists():
            raise UnreadableMediaError(
                f"the video decoder crashed on {path.name}; the file is probably corrupt",
                f"child exit code {proc.returncode}: {proc.stderr.decode(errors='replace')[-300:]}")
        with np.load(out) as z:
            meta = json.loads(str(z["meta"]))
            arrays = {k: z[k] for k in ("frames", "timestamps", "waveform", "audio_segments")}
    return DecodedClip(path=str(path), **meta, **arrays)


def _child_main(argv: list[str]) -> int:
    """Entry point of the isolated child: decode, then write the clip (.npz) or the typed error (.json)."""
    path, out, T, limits = Path(argv[0]), Path(argv[1]), int(argv[2]), MediaLimits(**json.loads(argv[3]))
    try:
        clip = _decode_here(path, T, limits)
    except MediaError as e:
        out.with_suffix(".json").write_text(json.dumps(
            {"type": type(e).__name__, "user_message": e.user_message, "detail": e.detail}))
        return 0
    meta = {k: getattr(clip, k) for k in ("duration", "fps", "width", "height", "T", "has_audio", "sample_rate")}
    np.savez(out, meta=json.dumps(meta), frames=clip.frames, timestamps=clip.timestamps,
             waveform=clip.waveform, audio_segments=clip.audio_segments)
    return 0


if __name__ == "__main__":
    sys.exit(_child_main(sys.argv[1:]))
