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
