"""Backgrounds of the synthetic world, all procedural (no photographs), in three families.

- `drawn` (world v1, default style): flat gradients, wall panels or floor boards, stage and curtains; sky,
  clouds and ground outdoors; furniture or tree/house glyphs from the clip's glyph set.
- `textured` (default style): the drawn scene under fractal-noise texture (plaster, fabric, grass), a light
  source (a lamp's or the sun's glow) and a little blur, so surfaces are no longer flat colour.
- `painted` (held-out style only): a different scene grammar. Indoors a concert stage: dark backdrop, out-of-focus
  coloured lights (bokeh), spotlight cones and a plank floor in perspective. Outdoors a landscape: a sky in dusk,
  overcast or clear palettes with soft noise clouds, a sun, two or three mountain ridges fading into haze, and a
  textured meadow. Decor glyphs come from the held-out glyph set.

Photographic backgrounds (e.g. Debian wallpaper packages) are not used: the ones installed by default carry
mixed or unclear licences, and procedural backgrounds cost nothing to ship. Every background is a pure function
of (family, indoor/outdoor, rng, glyph set).
"""
from __future__ import annotations

import numpy as np
from PIL import Image, ImageDraw, ImageFilter

from mcd.synth.glyphs import INDOOR_DECOR, OUTDOOR_DECOR, glyph
from mcd.synth.world import SIZE


def composite(dst: Image.Image, src: Image.Image, xy: tuple[int, int]) -> None:
    """alpha_composite that clips at the frame edges (Pillow rejects negative destinations)."""
    x, y = xy
    left, top = max(0, -x), max(0, -y)
    right, bottom = min(src.width, dst.width - x), min(src.height, dst.height - y)
    if right > left and bottom > top:
        dst.alpha_composite(src, (x + left, y + top), (left, top, right, bottom))


def tinted(img: Image.Image, factors: np.ndarray) -> Image.Image:
    """Scale the RGB channels (colour jitter); black outlines stay black, alpha is unchanged."""
    a = np.asarray(img, dtype=np.float32).copy()
    a[..., :3] = np.clip(a[..., :3] * factors[None, None, :], 0, 255)
    return Image.fromarray(a.astype(np.uint8), "RGBA")


def scaled(glyph_set: str, seq, width: int, height: int) -> Image.Image:
    return glyph(glyph_set, seq).resize((max(1, width), max(1, height)), Image.LANCZOS)


def _vertical_gradient(top, bottom, height: int) -> np.ndarray:
    t = np.linspace(0.0, 1.0, height, dtype=np.float32)[:, None]
    return np.asarray(top, np.float32)[None] * (1 - t) + np.asarray(bottom, np.float32)[None] * t


def fbm(rng: np.random.Generator, h: int, w: int, octaves: int = 4, base: int = 3,
        persistence: float = 0.55) -> np.ndarray:
    """Fractal value noise [h, w] with zero mean and unit spread: bicubic-upsampled random grids, summed."""
    out = np.zeros((h, w), np.float32)
    amp = 1.0
    for o in range(octaves):
        n = base * 2 ** o
        grid = rng.standard_normal((n + 1, n + 1)).astype(np.float32)
        out += amp * np.asarray(Image.fromarray(grid, mode="F").resize((w, h), Image.BICUBIC))
        amp *= persistence
    out -= out.mean()
    return out / (out.std() + 1e-6)


def _paste_decor(img: Image.Image, rng: np.random.Generator, glyph_set: str, choices: tuple[int, ...], n: int,
                 y_range: tuple[int, int], size_range: tuple[int, int]) -> None:
    for _ in range(n):
        cp = choices[int(rng.integers(len(choices)))]
        g = glyph(glyph_set, cp)
        h = int(rng.integers(*size_range))
        w = max(1, int(round(h * g.width / g.height)))
        x = int(rng.integers(-w // 3, SIZE - 2 * w // 3))
        y = int(rng.integers(*y_range)) - h
        composite(img, tinted(scaled(glyph_set, cp, w, h), rng.uniform(0.85, 1.1, 3)), (x, y))


# --------------------------------------------------------------------------------------------------- drawn (v1)

def drawn(kind: str, rng: np.random.Generator, glyph_set: str = "openmoji") -> Image.Image:
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
        _paste_decor(pil, rng, glyph_set, INDOOR_DECOR, int(rng.integers(0, 3)), (horizon - 30, horizon + 1), (26, 46))
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
        _paste_decor(pil, rng, glyph_set, OUTDOOR_DECOR, int(rng.integers(1, 4)), (horizon - 2, horizon + 12), (30, 60))
    return pil


# --------------------------------------------------------------------------------------------------- textured

def textured(kind: str, rng: np.random.Generator, glyph_set: str) -> Image.Image:
    """The drawn scene with fractal texture, a light source's glow and a slight blur."""
    base = np.asarray(drawn(kind, rng, glyph_set).convert("RGB"), np.float32)
    grain = fbm(rng, SIZE, SIZE, octaves=5, base=int(rng.integers(3, 8)))
    fine = fbm(rng, SIZE, SIZE, octaves=2, base=48)
    tex = 1.0 + float(rng.uniform(0.06, 0.16)) * grain + float(rng.uniform(0.02, 0.06)) * fine
    yy, xx = np.mgrid[0:SIZE, 0:SIZE].astype(np.float32)
    lx, ly = float(rng.uniform(0, SIZE)), float(rng.uniform(-40, 90 if kind == "indoor" else 40))
    glow = np.exp(-((xx - lx) ** 2 + (yy - ly) ** 2) / (2 * float(rng.uniform(50, 110)) ** 2))
    warm = np.array([1.0, 0.92, 0.75] if kind == "indoor" else [1.0, 0.97, 0.85], np.float32)
    light = 70.0 * float(rng.uniform(0.3, 1.0)) * glow[..., None] * warm
    out = base * tex[..., None] * (0.85 + 0.1 * rng.uniform()) + light
    img = Image.fromarray(np.clip(out, 0, 255).astype(np.uint8), "RGB")
    return img.filter(ImageFilter.GaussianBlur(float(rng.uniform(0.3, 0.9)))).convert("RGBA")


# --------------------------------------------------------------------------------------------------- painted

def _stage(rng: np.random.Generator, glyph_set: str) -> Image.Image:
    horizon = int(rng.integers(120, 150))
    back = rng.choice([[30, 20, 45], [15, 25, 50], [45, 15, 20], [25, 25, 30], [10, 35, 35]]) * rng.uniform(0.8, 1.3)
    img = np.zeros((SIZE, SIZE, 3), np.float32)
    img[:horizon] = _vertical_gradient(back * 0.6, back * 1.4, horizon)[:, None, :]
    # out-of-focus lights behind the stage
    bokeh = Image.new("RGB", (SIZE, SIZE), (0, 0, 0))
    d = ImageDraw.Draw(bokeh)
    palette = rng.choice([[255, 190, 90], [120, 170, 255], [255, 110, 170], [160, 255, 200], [255, 240, 200]],
                         size=int(rng.integers(2, 4)))
    for _ in range(int(rng.integers(12, 36))):
        r = float(rng.uniform(3, 11))
        x, y = float(rng.uniform(0, SIZE)), float(rng.uniform(0, horizon - 10))
        c = palette[int(rng.integers(len(palette)))] * rng.uniform(0.3, 0.8)
        d.ellipse((x - r, y - r, x + r, y + r), fill=tuple(int(v) for v in c))
    img[:horizon] += np.asarray(bokeh.filter(ImageFilter.GaussianBlur(float(rng.uniform(1.5, 3.5)))),
                                np.float32)[:horizon]
    # plank floor in perspective
    floor = rng.choice([[120, 75, 40], [90, 60, 35], [60, 45, 40], [140, 100, 60]]) * rng.uniform(0.8, 1.1)
    fh = SIZE - horizon
    img[horizon:] = _vertical_gradient(floor * 0.55, floor * 1.05, fh)[:, None, :]
    vx = SIZE / 2 + float(rng.uniform(-30, 30))
    yy, xx = np.mgrid[horizon:SIZE, 0:SIZE].astype(np.float32)
    depth = (yy - horizon + 4) / (fh + 4)
    u = (xx - vx) / depth
    planks = (np.mod(u / float(rng.uniform(14, 26)), 1.0) < 0.08)
    img[horizon:] *= np.where(planks, 0.7, 1.0)[..., None]
    img[horizon:] *= (1 + 0.08 * fbm(rng, fh, SIZE, octaves=3, base=4))[..., None]
    # spotlight cones from above, and their pools on the floor
    light = Image.new("L", (SIZE, SIZE), 0)
    ld = ImageDraw.Draw(light)
    for _ in range(int(rng.integers(1, 4))):
        top_x, bot_x = float(rng.uniform(0, SIZE)), float(rng.uniform(20, SIZE - 20))
        spread = float(rng.uniform(18, 40))
        ld.polygon([(top_x - 4, -5), (top_x + 4, -5), (bot_x + spread, SIZE - 10), (bot_x - spread, SIZE - 10)],
                   fill=int(rng.integers(25, 60)))
        ld.ellipse((bot_x - spread * 1.3, SIZE - 34, bot_x + spread * 1.3, SIZE - 2), fill=int(rng.integers(50, 90)))
    cone = np.asarray(light.filter(ImageFilter.GaussianBlur(6)), np.float32)[..., None] / 255.0
    tint = rng.choice([[1.0, 0.95, 0.8], [0.8, 0.9, 1.0], [1.0, 0.85, 0.95]])
    img = img + 255.0 * cone * tint
    pil = Image.fromarray(np.clip(img, 0, 255).astype(np.uint8), "RGB").convert("RGBA")
    _paste_decor(pil, rng, glyph_set, INDOOR_DECOR, int(rng.integers(0, 3)), (horizon - 20, horizon + 1), (22, 40))
    return pil


def _landscape(rng: np.random.Generator, glyph_set: str) -> Image.Image:
    horizon = int(rng.integers(118, 150))
    palettes = {"dusk": ([70, 50, 120], [250, 160, 110]), "overcast": ([150, 155, 165], [205, 205, 210]),
                "clear": ([30, 110, 190], [170, 215, 240]), "dawn": ([120, 150, 210], [250, 210, 170])}
    top, bottom = palettes[list(palettes)[int(rng.integers(len(palettes)))]]
    img = np.zeros((SIZE, SIZE, 3), np.float32)
    img[:] = _vertical_gradient(top, bottom, SIZE)[:, None, :] * rng.uniform(0.9, 1.1)
    clouds = np.clip(fbm(rng, SIZE, SIZE, octaves=5, base=2) - float(rng.uniform(0.2, 1.0)), 0, None)
    img += 80.0 * np.clip(clouds, 0, 1.5)[..., None] * np.array([1.0, 1.0, 1.02], np.float32)
    sx, sy = float(rng.uniform(20, SIZE - 20)), float(rng.uniform(15, horizon - 50))
    yy, xx = np.mgrid[0:SIZE, 0:SIZE].astype(np.float32)
    dist = np.sqrt((xx - sx) ** 2 + (yy - sy) ** 2)
    img += (255.0 * (dist < float(rng.uniform(7, 13))) + 60.0 * np.exp(-dist / 30.0))[..., None] * \
        np.array([1.0, 0.9, 0.7], np.float32)
    haze = np.asarray(bottom, np.float32)
    ridges = int(rng.integers(2, 4))
    for r in range(ridges):
        far = 1.0 - r / ridges
        line = fbm(rng, 1, SIZE, octaves=5, base=2)[0]
        height = horizon - 10 - 40 * far * float(rng.uniform(0.5, 1.0)) + 12 * line * far
        colour = np.asarray(rng.choice([[70, 90, 110], [60, 80, 70], [90, 80, 100]]), np.float32)
        colour = colour * (1 - 0.6 * far) + haze * 0.6 * far
        mask = yy >= height[None, :]
        img[mask] = (colour[None, :] * (1 + 0.05 * rng.standard_normal((int(mask.sum()), 1)))).astype(np.float32)
    meadow = np.asarray(rng.choice([[90, 140, 60], [120, 150, 70], [70, 120, 60], [160, 150, 90]]), np.float32)
    gh = SIZE - horizon
    tex = 1 + 0.15 * fbm(rng, gh, SIZE, octaves=4, base=6) + 0.06 * fbm(rng, gh, SIZE, octaves=1, base=60)
    img[horizon:] = _vertical_gradient(meadow * 0.85, meadow * 1.15, gh)[:, None, :] * tex[..., None]
    pil = Image.fromarray(np.clip(img, 0, 255).astype(np.uint8), "RGB").convert("RGBA")
    _paste_decor(pil, rng, glyph_set, OUTDOOR_DECOR, int(rng.integers(1, 4)), (horizon - 2, horizon + 12), (28, 56))
    return pil


def painted(kind: str, rng: np.random.Generator, glyph_set: str) -> Image.Image:
    return _stage(rng, glyph_set) if kind == "indoor" else _landscape(rng, glyph_set)


BACKDROP_MAKERS = {"drawn": drawn, "textured": textured, "painted": painted}


def backdrop(family: str, kind: str, rng: np.random.Generator, glyph_set: str) -> Image.Image:
    """The background (RGBA, SIZE x SIZE) of a clip: family drawn/textured/painted, kind indoor/outdoor."""
    return BACKDROP_MAKERS[family](kind, rng, glyph_set)


__all__ = ["BACKDROP_MAKERS", "backdrop", "composite", "drawn", "fbm", "painted", "scaled", "textured", "tinted"]
