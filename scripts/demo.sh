#!/usr/bin/env bash
# Set up (if needed) and start the Gradio demo on the shipped checkpoint. Extra arguments go to app.py
# (e.g. --port 7861, --checkpoint DIR, --host 0.0.0.0).
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh runtime
export HF_HUB_OFFLINE=1 TRANSFORMERS_OFFLINE=1
exec .venv/bin/python app.py "$@"
