"""Tiny test clips written with PyAV, whose content is known so decoding can be checked against it.

Every frame is a flat grey whose level encodes the frame's own timestamp (`level_at(t, duration)`), with a pure
red top-left quadrant so a channel-order mistake (BGR) shows. Every audio channel carries its own sine tone, so
a test can tell a proper downmix (all tones present) from "took channel 0" and check the resampling (the tone's
frequency survives only if the sample rate was converted correctly). `tone_change_s` switches every tone to
`tone_after` at that time (in the track's own time; the track starts `audio_delay_s` into the clip), so a test can
check that audio windows line up with the clip's time axis.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from fractions import Fraction
from pathlib import Path

import av
import numpy as np

LAYOUTS = {1: "mono", 2: "stereo", 6: "5.1"}


@dataclass
class ClipSpec:
    """What to write. `channels=0` writes no audio stream; `frame_times` (seconds) makes a VFR clip."""
    duration: float = 2.0
    fps: int = 8
    width: int = 64
    height: int = 48
    vcodec: str = "libx264"
    acodec: str | None = "aac"
    channels: int = 1
    sample_rate: int = 44100
    tones: tuple[float, ...] = (440.0,)           # one frequency per channel, cycled; 0 = silent channel
    amplitude: float = 0.5
    tone_change_s: float | None = None             # switch all tones to `tone_after` at this time
    tone_after: float = 1000.0
    frame_times: tuple[float, ...] | None = None   # explicit presentation times -> variable frame rate
    audio_delay_s: float = 0.0                     # the audio track starts this late (its pts start here)
    empty_audio_track: bool = False                # declare the audio stream but write no packets to it
    pix_fmt: str = "yuv420p"
    extra: dict = field(default_factory=dict)      # codec options


def level_at(t: float, duration: float) -> float:
    """The grey level (0..255) of a frame shown at time t: 16 at t=0 rising to 236 at t=duration."""
    return 16.0 + 220.0 * min(max(t / duration, 0.0), 1.0)


def frame_times_of(spec: ClipSpec) -> np.ndarray:
    """The presentation times the factory writes (seconds)."""
    if spec.frame_times is not None:
        return np.asarray(spec.frame_times, dtype=np.float64)
    n = max(1, int(round(spec.duration * spec.fps)))
    return np.arange(n, dtype=np.float64) / spec.fps


def _frame_image(t: float, spec: ClipSpec) -> np.ndarray:
    img = np.full((spec.height, spec.width, 3), int(round(level_at(t, spec.duration))), dtype=np.uint8)
    img[: spec.height // 2, : spec.width // 2] = (255, 0, 0)
    return img


def tone_signal(spec: ClipSpec) -> np.ndarray:
    """The audio the factory writes, float32 [channels, n] at spec.sample_rate."""
    n = int(round(spec.duration * spec.sample_rate))
    t = np.arange(n) / spec.sample_rate
    out = np.zeros((spec.channels, n), dtype=np.float32)
    for c in range(spec.channels):
        f = spec.tones[c % len(spec.tones)]
        if f <= 0:
            continue
        freq = np.full(n, f)
        if spec.tone_change_s is not None:
            freq[t >= spec.tone_change_s] = spec.tone_after
        phase = 2 * np.pi * np.cumsum(freq) / spec.sample_rate
        out[c] = spec.amplitude * np.sin(phase)
    return out


def make_clip(path: str | Path, spec: ClipSpec | None = None) -> Path:
    """Write a clip described by `spec` to `path` (container from the extension) and return the path."""
    spec = spec or ClipSpec()
    path = Path(path)
    times = frame_times_of(spec)
    vfr = spec.frame_times is not None
    with av.open(str(path), mode="w") as out:
        if vfr:
            vs = out.add_stream(spec.vcodec, rate=spec.fps)
            vs.codec_context.time_base = Fraction(1, 1000)
            vs.time_base = Fraction(1, 1000)
        else:
            vs = out.add_stream(spec.vcodec, rate=spec.fps)
        vs.width, vs.height, vs.pix_fmt = spec.width, spec.height, spec.pix_fmt
        if spec.vcodec == "libx264":
            vs.options = {"preset": "ultrafast", **spec.extra}
        elif spec.extra:
            vs.options = dict(spec.extra)
        a_stream = None
        if spec.channels and spec.acodec:
            a_stream = out.add_stream(spec.acodec, rate=spec.sample_rate, layout=LAYOUTS[spec.channels])

        for i, t in enumerate(times):
            frame = av.VideoFrame.from_ndarray(_frame_image(float(t), spec), format="rgb24")
            frame = frame.reformat(format=spec.pix_fmt)
            if vfr:
                frame.pts = int(round(t * 1000))
                frame.time_base = Fraction(1, 1000)
            else:
                frame.pts = i
            for packet in vs.encode(frame):
                out.mux(packet)
        for packet in vs.encode():
            out.mux(packet)

        if a_stream is not None and not spec.empty_audio_track:
            audio = tone_signal(spec)
            block, delay = 1024, int(round(spec.audio_delay_s * spec.sample_rate))
            for start in range(0, audio.shape[1], block):
                chunk = np.ascontiguousarray(audio[:, start:start + block])
                frame = av.AudioFrame.from_ndarray(chunk, format="fltp", layout=LAYOUTS[spec.channels])
                frame.sample_rate = spec.sample_rate
                frame.pts = start + delay
                frame.time_base = Fraction(1, spec.sample_rate)
                for packet in a_stream.encode(frame):
                    out.mux(packet)
            for packet in a_stream.encode():
                out.mux(packet)
    return path


def make_audio_only(path: str | Path, codec: str = "aac", duration: float = 1.0, sample_rate: int = 44100) -> Path:
    """An audio-only file (e.g. .m4a / .mp3 / .wav): a valid media file with no video stream."""
    spec = ClipSpec(duration=duration, acodec=codec, sample_rate=sample_rate)
    path = Path(path)
    with av.open(str(path), mode="w") as out:
        stream = out.add_stream(codec, rate=sample_rate, layout="mono")
        audio = tone_signal(spec)
        for start in range(0, audio.shape[1], 1024):
            frame = av.AudioFrame.from_ndarray(np.ascontiguousarray(audio[:, start:start + 1024]),
                                               format="fltp", layout="mono")
            frame.sample_rate, frame.pts = sample_rate, start
            frame.time_base = Fraction(1, sample_rate)
            for packet in stream.encode(frame):
                out.mux(packet)
        for packet in stream.encode():
            out.mux(packet)
    return path


def make_layout_switch_clip(path: str | Path, duration: float = 2.0, sample_rate: int = 44100) -> Path:
    """An AVI whose mp3 track switches from stereo to mono halfway, as damaged real files do.

    The stream header says stereo; the second half's packets come from a mono encoder. decord sets up its
    resampler from the header once and would crash on the mono frames, so decode must route this to PyAV.
    """
    spec = ClipSpec(duration=duration, vcodec="mpeg4", acodec=None, channels=0)
    path = Path(path)
    half = int(round(duration / 2 * sample_rate))

    def mp3_packets(layout: str, channels: int, start: int, stop: int):
        """Encode samples [start, stop) of a 440 Hz tone with its own encoder; yield (packet, sample offset)."""
        enc = av.CodecContext.create("libmp3lame", "w")
        enc.sample_rate, enc.layout, enc.format = sample_rate, layout, "fltp"
        enc.time_base = Fraction(1, sample_rate)
        t = np.arange(start, stop) / sample_rate
        tone = (0.5 * np.sin(2 * np.pi * 440.0 * t)).astype(np.float32)
        audio = np.ascontiguousarray(np.repeat(tone[None], channels, axis=0))
        for s in range(0, audio.shape[1], 1152):
            frame = av.AudioFrame.from_ndarray(np.ascontiguousarray(audio[:, s:s + 1152]), format="fltp",
                                               layout=layout)
            frame.sample_rate, frame.pts, frame.time_base = sample_rate, s, Fraction(1, sample_rate)
            yield from enc.encode(frame)
        yield from enc.encode(None)

    with av.open(str(path), mode="w") as out:
        vs = out.add_stream("mpeg4", rate=spec.fps)
        vs.width, vs.height, vs.pix_fmt = spec.width, spec.height, spec.pix_fmt
        a_stream = out.add_stream("libmp3lame", rate=sample_rate, layout="stereo")
        for i, t in enumerate(frame_times_of(spec)):
            frame = av.VideoFrame.from_ndarray(_frame_image(float(t), spec), format="rgb24")
            frame.pts = i
            for packet in vs.encode(frame.reformat(format=spec.pix_fmt)):
                out.mux(packet)
        for packet in vs.encode():
            out.mux(packet)
        pts = 0
        n = int(round(duration * sample_rate))
        for layout, channels, lo, hi in (("stereo", 2, 0, half), ("mono", 1, half, n)):
            for packet in mp3_packets(layout, channels, lo, hi):
                packet.stream = a_stream
                packet.pts = packet.dts = pts
                packet.time_base = Fraction(1, sample_rate)
                pts += 1152
                out.mux(packet)
    return path
