"""Frames of a synthetic clip: players drawn with the clip's glyph set over its backdrop, through a camera.

Each player is a person glyph (skin tone and gender vary) with an instrument glyph in front of it. A sounding
player bobs by a pixel or two at each note onset and every player sways a little all the time, so the picture
hints at who plays but cannot settle it: "which violin is sounding" still needs the audio.

World v2 styles (default, held-out) also vary, per clip: the camera zoom (in the scene graph, because the boxes
include it), the lighting (exposure, colour temperature, a directional gradient, vignetting), camera shake (a
smooth random walk of up to ~2.5 px), sensor noise and JPEG compression artefacts. A v1 scene record (no style)
renders without these, as world v1 drew it.
"""
from __future__ import annotations

import io
from typing import Iterator

import numpy as np
from PIL import Image

from mcd.synth import glyphs
from mcd.synth.backdrops import backdrop, composite, scaled, tinted
from mcd.synth.glyphs import AssetError, INSTRUMENT_GLYPHS, person_key, person_variants
from mcd.synth.scene import Scene, layout_players, note_onsets

RenderError = AssetError   # the name world v1's callers catch

#: a player's person glyph: its height is this many times the instrument box's longest side (drawn per player
#: uniformly in the range), its feet this share of the box's height below the box's bottom, centred on the box
PERSON_SCALE = (1.35, 1.6)
PERSON_FEET = 0.15


def player_box(player, person_aspect: float) -> tuple[float, float, float, float]:
    """The pixels a player covers: its instrument box (the scene graph's `bbox`) grown by the smallest person
    `frames` draws behind it (PERSON_SCALE[0]); `person_aspect` is the person glyph's width / height."""
    x0, y0, x1, y1 = player.bbox
    w, h = x1 - x0, y1 - y0
    ph = PERSON_SCALE[0] * max(w, h)
    pw = ph * person_aspect
    cx, bottom = (x0 + x1) / 2, y1 + PERSON_FEET * h
    return (min(x0, cx - pw / 2), min(y0, bottom - ph), max(x1, cx + pw / 2), max(y1, bottom))


def glyph(codepoint: int, glyph_set: str = "openmoji") -> Image.Image:
    """A glyph of a set (OpenMoji by default), RGBA cropped to its visible pixels; see mcd.synth.glyphs."""
    return glyphs.glyph(glyph_set, codepoint)


def font_path() -> str:
    """Path of the OpenMoji COLRv0 font."""
    return str(glyphs.openmoji_font())


def _recoloured(img: Image.Image, colour: np.ndarray) -> Image.Image:
    """Paint the glyph's fill (everything but the dark outline) in `colour`: people wear different clothes."""
    a = np.asarray(img, dtype=np.float32).copy()
    fill = (a[..., :3].max(axis=-1) > 90) & (a[..., 3] > 0)
    a[fill, :3] = colour
    return Image.fromarray(a.astype(np.uint8), "RGBA")


def _onset_envelope(onsets: np.ndarray, t: float, decay: float = 0.15) -> float:
    past = onsets[onsets <= t]
    return float(np.exp(-(t - past[-1]) / decay)) if past.size else 0.0


def _zoomed(img: Image.Image, zoom: float) -> Image.Image:
    """The centre 1/zoom of the picture scaled back to full size (the camera zooms in about the centre)."""
    if abs(zoom - 1.0) < 1e-6:
        return img
    w, h = img.size
    cw, ch = w / zoom, h / zoom
    box = ((w - cw) / 2, (h - ch) / 2, (w + cw) / 2, (h + ch) / 2)
    return img.resize((w, h), Image.BICUBIC, box=box)


def _lighting(rng: np.random.Generator, size: int) -> np.ndarray:
    """A per-clip multiplicative light map [size, size, 3]: exposure, white balance, gradient, vignette."""
    exposure = float(rng.uniform(0.75, 1.2))
    temp = float(rng.uniform(-1, 1))
    balance = np.array([1 + 0.08 * temp, 1.0, 1 - 0.1 * temp], np.float32)
    yy, xx = np.mgrid[0:size, 0:size].astype(np.float32) / (size - 1) - 0.5
    angle = float(rng.uniform(0, 2 * np.pi))
    gradient = 1 + float(rng.uniform(0, 0.25)) * (np.cos(angle) * xx + np.sin(angle) * yy)
    vignette = 1 - float(rng.uniform(0, 0.45)) * (xx ** 2 + yy ** 2) * 2
    return (exposure * gradient * vignette)[..., None] * balance[None, None, :]


def _shake(rng: np.random.Generator, n: int) -> np.ndarray:
    """Integer camera offsets [n, 2]: a smoothed random walk scaled to a per-clip amplitude (0-2.5 px)."""
    amp = float(rng.uniform(0.0, 2.5))
    walk = np.cumsum(rng.standard_normal((n, 2)), axis=0)
    walk -= np.linspace(walk[0], walk[-1], n)   # returns to where it started: no drift across the clip
    kernel = np.ones(3) / 3
    walk = np.stack([np.convolve(walk[:, k], kernel, mode="same") for k in range(2)], axis=1)
    scale = amp / (np.abs(walk).max() + 1e-6)
    return np.round(walk * scale).astype(int)


def _jpeg(img: np.ndarray, quality: int) -> np.ndarray:
    buf = io.BytesIO()
    Image.fromarray(img).save(buf, format="JPEG", quality=quality)
    buf.seek(0)
    with Image.open(buf) as im:
        return np.asarray(im.convert("RGB"))


def _lit(sprite: Image.Image, light: np.ndarray, xy: tuple[int, int]) -> Image.Image:
    """The sprite under the light map at its rest position (players move by a few pixels at most)."""
    a = np.asarray(sprite, dtype=np.float32).copy()
    x, y = xy
    h, w = a.shape[:2]
    ys = np.clip(np.arange(y, y + h), 0, light.shape[0] - 1)
    xs = np.clip(np.arange(x, x + w), 0, light.shape[1] - 1)
    a[..., :3] = np.clip(a[..., :3] * light[ys][:, xs], 0, 255)
    return Image.fromarray(a.astype(np.uint8), "RGBA")


def frames(scene: Scene) -> Iterator[np.ndarray]:
    """The clip's frames as uint8 [size, size, 3] arrays, duration * fps of them."""
    rng = np.random.default_rng([scene.seed, 1])
    style = scene.style
    gs = style["glyphs"]
    v2 = style["name"] != "v1"
    size = scene.size
    base = _zoomed(backdrop(style["backdrop"], scene.background, rng, gs), scene.zoom)
    variants = person_variants(gs)
    layers = []
    for p in scene.players:
        x0, y0, x1, y1 = p.bbox
        w, h = x1 - x0, y1 - y0
        key = variants[int(rng.integers(len(variants)))] if v2 else person_key()
        person_img = glyphs.glyph(gs, key)
        ph = int(round(max(w, h) * rng.uniform(*PERSON_SCALE)))
        pw = int(round(ph * person_img.width / person_img.height))
        person = scaled(gs, key, pw, ph)
        clothes = rng.uniform(30, 240, 3)
        if not v2 or (gs == "openmoji" and key == person_key() and rng.random() < 0.7):
            person = _recoloured(person, clothes)   # OpenMoji's flat yellow person: colour the clothes
        px = (x0 + x1) // 2 - person.width // 2 + int(rng.integers(-4, 5))
        py = y1 + int(h * PERSON_FEET) - ph
        inst = tinted(scaled(gs, INSTRUMENT_GLYPHS[p.instrument], w, h), rng.uniform(0.85, 1.15, 3))
        onsets = note_onsets(p) if p.sounds else np.zeros(0)
        sway = (float(rng.uniform(0.15, 0.5)), float(rng.uniform(0, 2 * np.pi)), float(rng.uniform(0.5, 1.2)))
        bob = float(rng.uniform(1.5, 2.5))
        layers.append([p, person, (px, py), inst, onsets, sway, bob])
    n_frames = int(round(scene.duration * scene.fps))
    pad = 0
    if v2:
        # the camera's light falls on the scene once (the backdrop and every sprite at rest), so the per-frame
        # work is compositing, a crop for the shake, noise from a small bank and the JPEG round trip
        light = _lighting(rng, size)
        base = Image.fromarray(np.clip(np.asarray(base.convert("RGB"), np.float32) * light, 0, 255).astype(np.uint8))
        for layer in layers:
            layer[1] = _lit(layer[1], light, layer[2])
            layer[3] = _lit(layer[3], light, layer[0].bbox[:2])
        pad = 4
        base = Image.fromarray(np.pad(np.asarray(base), ((pad, pad), (pad, pad), (0, 0)), mode="edge"))
        shake = _shake(rng, n_frames)
        sigma = float(rng.uniform(0.0, 2.5))
        noise = (rng.standard_normal((4, size, size, 3), dtype=np.float32) * sigma).round().astype(np.int16)
        picks = rng.integers(0, 4, n_frames)
        quality = int(rng.integers(30, 90)) if rng.random() < 0.7 else 0
    base = base.convert("RGBA")
    for i in range(n_frames):
        t = i / scene.fps
        frame = base.copy()
        for p, person, (px, py), inst, onsets, (f, phase, amp), bob in layers:
            dx = int(round(amp * np.sin(2 * np.pi * f * t + phase)))
            dy = -int(round(bob * _onset_envelope(onsets, t)))
            composite(frame, person, (px + dx + pad, py + dy // 2 + pad))
            composite(frame, inst, (p.bbox[0] + dx + pad, p.bbox[1] + dy + pad))
        if not v2:
            yield np.asarray(frame.convert("RGB"))
            continue
        sx, sy = shake[i]
        img = np.asarray(frame.crop((pad + sx, pad + sy, pad + sx + size, pad + sy + size)).convert("RGB"))
        if sigma >= 0.5:
            img = np.clip(img.astype(np.int16) + noise[picks[i]], 0, 255).astype(np.uint8)
        if quality:
            img = _jpeg(img, quality)
        yield img


def background(kind: str, rng: np.random.Generator, glyph_set: str = "openmoji",
               family: str = "drawn") -> Image.Image:
    """A background of the given family (drawn, textured, painted); world v1 drew `drawn` only."""
    return backdrop(family, kind, rng, glyph_set)


__all__ = ["INSTRUMENT_GLYPHS", "RenderError", "background", "font_path", "frames", "glyph", "layout_players"]
