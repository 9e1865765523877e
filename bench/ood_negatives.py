"""Build the out-of-domain negative set: clips whose picture, sound, or both come from outside the training world.

    python bench/ood_negatives.py --out data/ood/negatives --per-category 20 --seed 7

Nothing here comes from the training world's generator except, for the one-sided categories, the *other* half of
the clip: a picture-only category (photo, wallpaper, screen, black, flat, static) keeps the soundtrack of a world-v1
scene and a sound-only category (speech, music, noise, silence, no-audio) keeps its picture, so each category tests
one modality's detector (in-domain picture + foreign sound and the reverse). The in-domain halves are world-v2
default-style scenes (the training world and style) under seed 616161, never used to train or to calibrate. Two categories change both halves (slideshow: photo + soundfont music;
screencast: screen + speech), as real uploads do.

Sources, all offline:
* photographs shipped inside installed Python packages (gradio, scikit-learn, matplotlib sample data), panned and
  zoomed (Ken Burns) so the picture moves like footage; wallpapers from Debian's desktop-base (skipped, with a note,
  when the package is not installed);
* screen-recording-like frames: windows, title bars and text typed line by line (Pillow's default font);
* black frames, one flat colour per clip, TV static;
* speech from espeak-ng (random voices, speeds and sentences);
* music from /usr/share/sounds/sf3/MuseScore_General.sf3 (the full MuseScore General, Debian
  musescore-general-soundfont; training plays FluidR3_GM, the held-out style MuseScore_General_Lite) rendered by
  fluidsynth with its reverb: melody and chords on random General MIDI programs that play none of the world's
  instruments;
* white, pink and brown noise; digital silence; no audio stream at all.

Clips are 10 s, 8 fps (like the training clips), h264 + AAC via PyAV, written to --out/<category>/NNN.mp4 with a
manifest.json. The folder is a cache (data/ is not committed); this builder is the record of what it holds.
"""
from __future__ import annotations

import argparse
import importlib.util
import json
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

import av
import numpy as np
from PIL import Image, ImageDraw, ImageFont

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
from mcd.synth.foreign import fit_length as fit, read_wav  # noqa: E402

SR = 16000
FPS = 8
DURATION = 10.0
SIZE = 224
IN_DOMAIN_SEED = 616161
SOUNDFONT = Path("/usr/share/sounds/sf3/MuseScore_General.sf3")

PICTURE_CATEGORIES = ("photo", "wallpaper", "screen", "black", "flat", "static")
SOUND_CATEGORIES = ("speech", "music", "noise", "silence", "no-audio")
BOTH_CATEGORIES = ("slideshow", "screencast")
CATEGORIES = PICTURE_CATEGORIES + SOUND_CATEGORIES + BOTH_CATEGORIES

SENTENCES = (
    "Welcome back to the channel, today we are looking at something new.",
    "The weather tomorrow will be cloudy with a chance of rain in the afternoon.",
    "Please remember to submit your report before the end of the week.",
    "In this lecture we discuss the basic principles of thermodynamics.",
    "The train to the city centre departs from platform four in ten minutes.",
    "Thank you all for coming, and let me introduce our first speaker.",
    "Add two cups of flour and stir slowly until the mixture is smooth.",
    "The quarterly results were better than expected across every region.",
    "Turn left at the next junction and continue straight for two kilometres.",
    "This software update improves performance and fixes several bugs.",
)
VOICES = ("en", "en-us", "en-gb-x-rp", "de", "fr", "es", "it", "nl", "pt", "sv")


# ------------------------------------------------------------------------------------------------ sources

def package_photos() -> list[Path]:
    """Photographs shipped inside installed Python packages (not drawings, logos or plots)."""
    found = []
    for package, names in (("gradio", ("media_assets/images/cheetah.jpg", "media_assets/images/cheetah1.jpg",
                                       "media_assets/images/groot.jpeg", "media_assets/images/tower.jpg",
                                       "test_data/cheetah2.jpg")),
                           ("sklearn", ("datasets/images/china.jpg", "datasets/images/flower.jpg")),
                           ("matplotlib", ("mpl-data/sample_data/grace_hopper.jpg",))):
        spec = importlib.util.find_spec(package)
        if spec is None or not spec.submodule_search_locations:
            continue
        root = Path(list(spec.submodule_search_locations)[0])
        found += [root / n for n in names if (root / n).is_file()]
    return found


def wallpapers() -> list[Path]:
    """desktop-base's artwork (Debian package), if installed."""
    root = Path("/usr/share/desktop-base")
    return sorted(p for p in root.glob("*-theme/**/*") if p.suffix in (".png", ".jpg") and p.stat().st_size > 50_000)


def ken_burns(img: Image.Image, rng: np.random.Generator, n: int, size: int = SIZE) -> list[np.ndarray]:
    """n frames panning and zooming over `img` from one random square crop to another."""
    img = img.convert("RGB")
    w, h = img.size
    side0 = min(w, h) * rng.uniform(0.5, 1.0)
    side1 = min(w, h) * rng.uniform(0.4, 1.0)
    x0, y0 = rng.uniform(0, w - side0), rng.uniform(0, h - side0)
    x1, y1 = rng.uniform(0, w - side1), rng.uniform(0, h - side1)
    out = []
    for a in np.linspace(0, 1, n):
        s = side0 + a * (side1 - side0)
        x, y = x0 + a * (x1 - x0), y0 + a * (y1 - y0)
        out.append(np.asarray(img.resize((size, size), Image.BILINEAR, box=(x, y, x + s, y + s))))
    return out


def screen_frames(rng: np.random.Generator, n: int, size: int = SIZE) -> list[np.ndarray]:
    """A desktop with a window whose text is typed line by line, the view scrolling as it fills."""
    dark = rng.random() < 0.5
    bg = tuple(int(v) for v in (rng.integers(20, 60, 3) if dark else rng.integers(200, 250, 3)))
    fg = (220, 220, 220) if dark else (20, 20, 20)
    font = ImageFont.load_default(size=int(rng.integers(9, 14)))
    words = " ".join(SENTENCES).lower().replace(",", "").replace(".", "").split()
    lines = [" ".join(rng.choice(words, int(rng.integers(2, 7)))) for _ in range(60)]
    lines = [("def " + l.replace(" ", "_") + "():") if rng.random() < 0.2 else ("    " + l) for l in lines]
    line_h = font.size + 3
    visible = (size - 40) // line_h
    chars_per_frame = int(rng.integers(4, 12))
    desk = tuple(int(v) for v in rng.integers(60, 140, 3))
    frames, typed = [], 0
    for _ in range(n):
        typed += chars_per_frame
        img = Image.new("RGB", (size, size), desk)
        d = ImageDraw.Draw(img)
        d.rectangle((6, 6, size - 6, size - 18), fill=bg, outline=(90, 90, 90))
        d.rectangle((6, 6, size - 6, 20), fill=(60, 60, 70) if dark else (210, 210, 215))
        for k, c in enumerate(((230, 80, 70), (230, 190, 60), (90, 200, 90))):
            d.ellipse((10 + 10 * k, 10, 17 + 10 * k, 17), fill=c)
        d.rectangle((0, size - 14, size, size), fill=(30, 30, 35))            # task bar
        shown, left = [], typed
        for line in lines:
            if left <= 0:
                break
            shown.append(line[:left])
            left -= len(line)
        for i, line in enumerate(shown[-visible:]):
            d.text((12, 24 + i * line_h), line, fill=fg, font=font)
        frames.append(np.asarray(img))
    return frames


def static_frames(rng: np.random.Generator, n: int, size: int = SIZE) -> list[np.ndarray]:
    grey = rng.random() < 0.5
    out = []
    for _ in range(n):
        f = rng.integers(0, 256, (size, size, 1 if grey else 3), dtype=np.uint8)
        out.append(np.repeat(f, 3, axis=2) if grey else f)
    return out


def speech(rng: np.random.Generator, work: Path) -> np.ndarray:
    text = " ".join(rng.choice(SENTENCES, 3, replace=False))
    wav = work / "speech.wav"
    subprocess.run(["espeak-ng", "-v", str(rng.choice(VOICES)), "-s", str(int(rng.integers(130, 190))),
                    "-p", str(int(rng.integers(30, 70))), "-w", str(wav), text], check=True, capture_output=True)
    return read_wav(wav)


def music(rng: np.random.Generator, work: Path, soundfont: Path = SOUNDFONT) -> np.ndarray:
    """Melody and chords on General MIDI programs that play none of the world's instruments (their sound, not only
    the soundfont, is foreign), rendered from `soundfont` (mcd.synth.foreign, which also renders the detector's
    contrast set from the training soundfont)."""
    from mcd.synth.foreign import foreign_music
    return foreign_music(rng, soundfont, work)


def noise(rng: np.random.Generator, n: int) -> np.ndarray:
    """White, pink or brown noise at a random level."""
    white = rng.standard_normal(n)
    colour = rng.choice(["white", "pink", "brown"])
    spec = np.fft.rfft(white)
    f = np.maximum(np.fft.rfftfreq(n, 1 / SR), 1.0)
    if colour == "pink":
        spec /= np.sqrt(f)
    elif colour == "brown":
        spec /= f
    x = np.fft.irfft(spec, n)
    return x / np.abs(x).max() * rng.uniform(0.1, 0.7)


# ------------------------------------------------------------------------------------------------ writing

def write_video(path: Path, frames: list[np.ndarray], audio: np.ndarray | None) -> None:
    """h264 + AAC mono (or no audio stream when audio is None)."""
    if audio is not None:
        from mcd.synth.writer import write_clip
        write_clip(path, frames, audio, FPS, SR)
        return
    out = av.open(str(path), "w", format="mp4")
    try:
        stream = out.add_stream("libx264", rate=FPS)
        stream.pix_fmt = "yuv420p"
        stream.height, stream.width = frames[0].shape[:2]
        for f in frames:
            out.mux(stream.encode(av.VideoFrame.from_ndarray(np.ascontiguousarray(f), format="rgb24")))
        out.mux(stream.encode())
    finally:
        out.close()


def in_domain(index: int) -> tuple[list[np.ndarray], np.ndarray]:
    """The picture and the downmixed soundtrack of the training world's (default style) test scene `index` under
    IN_DOMAIN_SEED."""
    from mcd.synth.mixer import downmix, mix_stereo
    from mcd.synth.render import frames
    from mcd.synth.scene import sample_scene
    scene = sample_scene(IN_DOMAIN_SEED, index, split="test", style="default")
    return list(frames(scene)), downmix(mix_stereo(scene))


def build_clip(category: str, i: int, rng: np.random.Generator, work: Path, photos: list[Path],
               walls: list[Path], soundfont: Path = SOUNDFONT) -> tuple[list[np.ndarray], np.ndarray | None]:
    n_frames, n_samples = int(DURATION * FPS), int(DURATION * SR)
    picture = sound = None
    if category in SOUND_CATEGORIES:
        picture, _ = in_domain(i)
    elif category in PICTURE_CATEGORIES:
        _, sound = in_domain(1000 + i)
    if category in ("photo", "slideshow"):
        picture = ken_burns(Image.open(photos[i % len(photos)]), rng, n_frames)
    elif category == "wallpaper":
        picture = ken_burns(Image.open(walls[i % len(walls)]), rng, n_frames)
    elif category in ("screen", "screencast"):
        picture = screen_frames(rng, n_frames)
    elif category == "black":
        picture = [np.zeros((SIZE, SIZE, 3), np.uint8)] * n_frames
    elif category == "flat":
        picture = [np.full((SIZE, SIZE, 3), rng.integers(0, 256, 3), np.uint8)] * n_frames
    elif category == "static":
        picture = static_frames(rng, n_frames)
    if category in ("speech", "screencast"):
        sound = fit(speech(rng, work), n_samples)
    elif category in ("music", "slideshow"):
        sound = fit(music(rng, work, soundfont), n_samples)
    elif category == "noise":
        sound = noise(rng, n_samples)
    elif category == "silence":
        sound = np.zeros(n_samples, np.float32)
    elif category == "no-audio":
        sound = None
    return picture, None if sound is None else np.asarray(sound, np.float32)


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--out", type=Path, default=Path("data/ood/negatives"))
    p.add_argument("--per-category", type=int, default=20)
    p.add_argument("--seed", type=int, default=7)
    p.add_argument("--categories", nargs="*", default=list(CATEGORIES), choices=CATEGORIES)
    p.add_argument("--soundfont", type=Path, default=SOUNDFONT,
                   help="the music categories' soundfont (default: %(default)s, which training never plays; "
                        "FluidR3_GM.sf2 makes the sound contrast set of `mcd calibrate-ood --contrast-sound`)")
    args = p.parse_args(argv)
    photos, walls = package_photos(), wallpapers()
    if not photos:
        p.error("no package photographs found (gradio, scikit-learn or matplotlib must be installed)")
    needs = {"espeak-ng": {"speech", "screencast"}, "fluidsynth": {"music", "slideshow"}}
    for tool, users in needs.items():
        if users & set(args.categories) and shutil.which(tool) is None:
            p.error(f"{tool} is not installed")
    if {"music", "slideshow"} & set(args.categories) and not args.soundfont.is_file():
        p.error(f"{args.soundfont} is missing (Debian package musescore-general-soundfont or fluid-soundfont-gm)")
    manifest = {"seed": args.seed, "per_category": args.per_category, "in_domain_seed": IN_DOMAIN_SEED,
                "soundfont": str(args.soundfont),
                "photos": [str(x) for x in photos], "wallpapers": [str(x) for x in walls], "clips": []}
    for c_index, category in enumerate(args.categories):
        if category == "wallpaper" and not walls:
            print("wallpaper: skipped (Debian package desktop-base is not installed)", file=sys.stderr)
            continue
        folder = args.out / category
        folder.mkdir(parents=True, exist_ok=True)
        for i in range(args.per_category):
            path = folder / f"{i:03d}.mp4"
            manifest["clips"].append({"category": category, "path": str(path.relative_to(args.out))})
            if path.is_file():
                continue
            rng = np.random.default_rng([args.seed, c_index, i])
            with tempfile.TemporaryDirectory() as tmp:
                picture, sound = build_clip(category, i, rng, Path(tmp), photos, walls, args.soundfont)
            write_video(path, picture, sound)
        print(f"{category}: {args.per_category} clips", file=sys.stderr)
    (args.out / "manifest.json").write_text(json.dumps(manifest, indent=1) + "\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
