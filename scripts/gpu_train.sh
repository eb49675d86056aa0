#!/usr/bin/env bash
# Train on a GPU machine in one command (no network there): resume from the current weights, distil
# from RIFE for MINUTES minutes at full speed, validate on the held-out clips, and write the new weights,
# metrics and a held-out PSNR table to $OUT.
#
# Before the run, on this machine: python scripts/make_gpu_bundle.py   (builds gpu-data/, ~55 MB)
# and carry gpu-data/ with the working tree (device tool: carry ["gpu-data"]).
#
# Usage: bash scripts/gpu_train.sh [MINUTES=20] [INIT=weights/stmfnet-mini.safetensors] [PYTHON=python3]
set -euo pipefail
cd "$(dirname "$0")/.."
minutes=${1:-20}
init=${2:-weights/stmfnet-mini.safetensors}
PY=${3:-python3}
OUT=${OUT:-gpu-results}
DEVICE=${DEVICE:-cuda}   # DEVICE=cpu BATCH=2 for a smoke test without a GPU
BATCH=${BATCH:-32}
mkdir -p "$OUT"
export PYTHONPATH="$PWD${PYTHONPATH:+:$PYTHONPATH}"
init_opt=()
[ -f "$init" ] && init_opt=(--init "$init")
"$PY" -m vfi_mini train --device "$DEVICE" --precision bf16 --batch-size "$BATCH" --crop 128 \
  --data "clips:gpu-data/clips?stride=1,2&motion=1" --data synthetic:gpu-data/photos \
  --teacher gpu-data/flownet.pkl --alpha 0.1 --flow-distill 0.01 "${init_opt[@]}" \
  --val-data clips:gpu-data/clips --val-crop 0 --val-limit 32 --val-every 500 --ckpt-every 500 \
  --log-every 50 --time-budget "${minutes}m" --out "$OUT/run" --json -q | tee "$OUT/summary.json"
cp "$OUT/run/metrics.jsonl" "$OUT/metrics.jsonl"
cp "$OUT/run/best.pth" "$OUT/best.pth" 2>/dev/null || true
cp "$OUT/run/last.pth" "$OUT/last.pth"
grep val_psnr "$OUT/metrics.jsonl" | tail -5
