"""Writing a benchmark: mp4 clips (PyAV), MUSIC-AVQA annotation files and scenes.jsonl.

Everything written is byte-for-byte reproducible: x264 runs single-threaded with fixed options, the container is
written with the bitexact flag (no encoder version strings or timestamps), and JSON has a fixed layout. That is
what makes "same seed, same benchmark" checkable by comparing files.
"""
from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Iterable

import av
import numpy as np

from mcd.synth.qa import QA
from mcd.synth.scene import Scene

#: mbtree=0: x264's macroblock-tree lookahead reads memory it never initialised (measured: with a dirtied heap
#: the same frames encoded to 9 different files in 10 tries; with mbtree off, to one file in 40 tries).
VIDEO_OPTIONS = {"crf": "30", "preset": "veryfast", "threads": "1", "g": "16", "profile": "high",
                 "x264-params": "mbtree=0"}
AUDIO_BIT_RATE = 48_000          # mono
STEREO_BIT_RATE = 64_000         # stereo (16 kHz AAC-LC: transparent enough, and the clips stay small)
AUDIO_OPTIONS = {"aac_coder": "fast"}  # FFmpeg's default two-loop search costs 4x the time for no audible gain here
AAC_FRAME = 1024


_Y = np.array([66.0, 129.0, 25.0], np.float32)
_UV = np.array([[-38.0, 112.0], [-74.0, -94.0], [112.0, -18.0]], np.float32)


def rgb_to_yuv420p(img: np.ndarray) -> np.ndarray:
    """BT.601 limited-range YUV 4:2:0 planes stacked as PyAV's yuv420p ndarray layout ([H * 3/2, W] uint8).

    The usual 8-bit fixed-point BT.601 formulas (computed exactly: float32 holds these integer sums), chroma
    from the rounded 2x2 mean of RGB. Done here rather than by PyAV/swscale because swscale's conversion was
    not bit-reproducible from run to run (measured: 3 different outputs in 20 encodes of the same frames).
    """
    h, w, _ = img.shape
    y = np.floor((img.reshape(-1, 3).astype(np.float32) @ _Y + 128.0) / 256.0) + 16.0
    q = img.astype(np.uint16)
    q = (q[0::2, 0::2] + q[1::2, 0::2] + q[0::2, 1::2] + q[1::2, 1::2] + 2) >> 2
    uv = np.floor((q.reshape(-1, 3).astype(np.float32) @ _UV + 128.0) / 256.0) + 128.0
    planes = np.concatenate([y, uv[:, 0], uv[:, 1]])
    return np.clip(planes, 0, 255).astype(np.uint8).reshape(h * 3 // 2, w)


def write_clip(path: str | Path, frames: Iterable[np.ndarray], audio: np.ndarray, fps: int, sample_rate: int,
               comment: str | None = None) -> None:
    """An h264 (yuv420p) + AAC mp4 that browsers play (faststart), written atomically via a temp file.

    `audio` is float32 [samples] (mono) or [2, samples] (stereo: left, right). `comment` goes into the
    container's comment tag (the generator writes the clip's style and the assets' attributions there)."""
    path = Path(path)
    audio = np.asarray(audio, np.float32)
    stereo = audio.ndim == 2
    if stereo and audio.shape[0] != 2:
        raise ValueError(f"audio must be [samples] or [2, samples], got shape {audio.shape}")
    layout = "stereo" if stereo else "mono"
    planes = audio if stereo else audio[None]
    tmp = path.with_name(path.name + ".part")
    out = av.open(str(tmp), "w", format="mp4", options={"movflags": "+faststart"})
    try:
        out.flags |= av.container.Flags.bitexact.value
        if comment:
            out.metadata["comment"] = comment
        video = out.add_stream("libx264", rate=fps, options=dict(VIDEO_OPTIONS))
        video.pix_fmt = "yuv420p"
        video.codec_context.thread_count = 1  # PyAV's default (0 = auto) overrides x264's threads option
        sound = out.add_stream("aac", rate=sample_rate, layout=layout, options=dict(AUDIO_OPTIONS))
        sound.bit_rate = STEREO_BIT_RATE if stereo else AUDIO_BIT_RATE
        # bitexact: no "Lavc<version>" string inside the AAC stream. decord bundles its own FFmpeg build, and a
        # process that imported decord first encodes with that one; the files must not depend on import order.
        for stream in (video, sound):
            stream.codec_context.flags |= av.codec.context.Flags.bitexact.value
        first = True
        for img in frames:
            if first:
                video.height, video.width = img.shape[:2]
                first = False
            if img.shape[0] % 2 or img.shape[1] % 2:
                raise ValueError(f"frame size {img.shape[1]}x{img.shape[0]} must be even for yuv420p")
            for packet in video.encode(av.VideoFrame.from_ndarray(rgb_to_yuv420p(img), format="yuv420p")):
                out.mux(packet)
        for packet in video.encode():
            out.mux(packet)
        for start in range(0, planes.shape[1], AAC_FRAME):
            frame = av.AudioFrame.from_ndarray(np.ascontiguousarray(planes[:, start:start + AAC_FRAME]),
                                               format="fltp", layout=layout)
            frame.sample_rate = sample_rate
            frame.pts = start
            for packet in sound.encode(frame):
                out.mux(packet)
        for packet in sound.encode():
            out.mux(packet)
    finally:
        out.close()
    os.replace(tmp, path)


def annotation_record(video_id: str, question_id: int, qa: QA) -> dict:
    """One MUSIC-AVQA record: 7 keys, `type` and `templ_values` as JSON strings, the answer under `anser`."""
    return {
        "video_id": video_id,
        "question_id": question_id,
        "type": json.dumps([qa.template.modality, qa.template.kind]),
        "question_content": qa.template.text,
        "templ_values": json.dumps(list(qa.values)),
        "question_deleted": 0,
        "anser": qa.answer,
    }


def write_json(path: str | Path, records: list[dict]) -> None:
    """JSON with the layout of the released MUSIC-AVQA files (2-space indent, ASCII escapes)."""
    Path(path).write_text(json.dumps(records, indent=2) + "\n", encoding="utf-8")


def write_scenes(path: str | Path, scenes: Iterable[Scene]) -> None:
    """scenes.jsonl: one scene graph per line, in video order."""
    with Path(path).open("w", encoding="utf-8") as f:
        for scene in scenes:
            f.write(json.dumps(scene.to_dict()) + "\n")


def read_scenes(path: str | Path) -> list[Scene]:
    """The scene graphs of a benchmark (raises SceneError naming the bad line)."""
    from mcd.synth.scene import SceneError

    scenes = []
    with Path(path).open(encoding="utf-8") as f:
        for i, line in enumerate(f, 1):
            try:
                scenes.append(Scene.from_dict(json.loads(line)))
            except json.JSONDecodeError as e:
                raise SceneError(f"{path}: line {i} is not JSON ({e.msg})") from None
    return scenes
