#!/usr/bin/env bash
# Create .venv and install the project. Usage: bash scripts/setup.sh [runtime|dev]
# Idempotent: a second run only installs what changed. torch==2.9.1 from PyPI is a CUDA build (~7 GB, ~4 min);
# it runs on the CPU. torchaudio has no release for a newer torch, hence the pin.
set -euo pipefail
cd "$(dirname "$0")/.."
what="${1:-runtime}"
PY="${PYTHON:-python3}"
if [ ! -x .venv/bin/python ]; then
  "$PY" -m venv .venv
  .venv/bin/python -m pip install -q --upgrade pip
fi
if [ "$what" = dev ]; then
  .venv/bin/python -m pip install -q -r requirements-dev.txt
  # Browser tests drive Debian's chromium (Playwright cannot download its own browsers offline).
  if ! command -v chromium >/dev/null 2>&1; then
    if [ "$(id -u)" = 0 ]; then
      apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium >/dev/null
    else
      echo "setup: chromium is missing and we are not root; browser tests will be skipped" >&2
    fi
  fi
else
  .venv/bin/python -m pip install -q -r requirements.txt
fi
.venv/bin/python -m pip install -q --no-deps -e .

# Assets of the synthetic benchmark's world v2 (docs/synth.md): fluidsynth and two soundfonts, Noto Color Emoji
# (the held-out glyph set) from Debian; Microsoft Fluent 3D emoji from npm into the cache folder; then the note
# banks are pre-rendered (about a minute, once; `mcd synth` would otherwise build them on first use).
DEB_ASSETS="fluidsynth fluid-soundfont-gm musescore-general-soundfont-small fonts-noto-color-emoji"
if command -v dpkg >/dev/null 2>&1; then
  missing=""
  for p in $DEB_ASSETS; do dpkg -s "$p" >/dev/null 2>&1 || missing="$missing $p"; done
  if [ -n "$missing" ]; then
    if [ "$(id -u)" = 0 ]; then
      apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends $missing >/dev/null
    else
      echo "setup: Debian packages missing:$missing; install them as root (apt-get install$missing) for mcd synth" >&2
    fi
  fi
else
  echo "setup: not a Debian system; install fluidsynth, the FluidR3_GM and MuseScore_General soundfonts and Noto Color Emoji yourself (docs/synth.md)" >&2
fi
MCD_CACHE="${MCD_CACHE_DIR:-$HOME/.cache/mcd}"
if [ ! -f "$MCD_CACHE/npm/node_modules/@lobehub/fluent-emoji-3d/assets/1f3bb.webp" ]; then
  if command -v npm >/dev/null 2>&1; then
    mkdir -p "$MCD_CACHE/npm"
    npm install --prefix "$MCD_CACHE/npm" --no-save --no-audit --no-fund --silent @lobehub/fluent-emoji-3d@1.1.0
  else
    echo "setup: npm is missing; the Fluent 3D glyph set (npm @lobehub/fluent-emoji-3d) is not installed" >&2
  fi
fi
if command -v fluidsynth >/dev/null 2>&1; then
  .venv/bin/python -m mcd.synth.soundfont --build --quiet || echo "setup: building the note banks failed" >&2
fi
