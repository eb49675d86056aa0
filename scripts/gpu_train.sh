#!/usr/bin/env bash
# Train on a GPU machine in one command (no network there): resume from the current weights, train for
# MINUTES minutes at full speed, validate on the held-out clips, and write the new weights, metrics, the
# held-out PSNR table and the learned-motion check to $OUT.
#
# STAGE=motion (default): the x1 motion path alone (`--stage motion`), on the ground truth plus a strong
# pull towards RIFE's flow (--flow-distill 0.05). On the CPU the Mini's motion stays 3-5x shorter than
# RIFE's on the large-motion held-out clips (benchmarks/motion_check.py): learning motion is what needs
# the GPU's steps. STAGE=full: the whole model, distilled from RIFE (alpha 0.1, flow 0.01).
#
# Before the run, on this machine: python scripts/make_gpu_bundle.py   (builds gpu-data/, ~55 MB)
# and carry gpu-data/ with the working tree (device tool: carry ["gpu-data"]).
#
# Usage: bash scripts/gpu_train.sh [MINUTES=20] [INIT=weights/stmfnet-mini.safetensors] [PYTHON=python3]
# Environment: OUT (gpu-results), DEVICE (cuda), BATCH (32), STAGE (motion), LIMIT (held-out windows
# per clip for the table, 24). DEVICE=cpu BATCH=2 LIMIT=1 bash scripts/gpu_train.sh 1: a smoke test.
set -euo pipefail
cd "$(dirname "$0")/.."
minutes=${1:-20}
init=${2:-weights/stmfnet-mini.safetensors}
PY=${3:-python3}
OUT=${OUT:-gpu-results}
DEVICE=${DEVICE:-cuda}
BATCH=${BATCH:-32}
STAGE=${STAGE:-motion}
LIMIT=${LIMIT:-24}
case "$STAGE" in
  motion) stage_opt=(--stage motion --alpha 1 --flow-distill 0.05) ;;
  full) stage_opt=(--alpha 0.1 --flow-distill 0.01) ;;
  *) echo "gpu_train.sh: STAGE must be motion or full, got '$STAGE'" >&2; exit 2 ;;
esac
mkdir -p "$OUT"
export PYTHONPATH="$PWD${PYTHONPATH:+:$PYTHONPATH}"
init_opt=()
[ -f "$init" ] && init_opt=(--init "$init")
"$PY" -m vfi_mini train --device "$DEVICE" --precision bf16 --batch-size "$BATCH" --crop 128 \
  --data "clips:gpu-data/clips?stride=1,2&motion=1" --data synthetic:gpu-data/photos \
  --teacher gpu-data/flownet.pkl "${stage_opt[@]}" "${init_opt[@]}" \
  --val-data clips:gpu-data/clips --val-crop 0 --val-limit 32 --val-every 500 --ckpt-every 500 \
  --log-every 50 --time-budget "${minutes}m" --out "$OUT/run" --json -q | tee "$OUT/summary.json"
cp "$OUT/run/metrics.jsonl" "$OUT/metrics.jsonl"
cp "$OUT/run/best.pth" "$OUT/best.pth" 2>/dev/null || true
cp "$OUT/run/last.pth" "$OUT/last.pth"
grep val_psnr "$OUT/metrics.jsonl" | tail -5 || true
best="$OUT/run/best.pth"
[ -f "$best" ] || best="$OUT/run/last.pth"
"$PY" benchmarks/motion_check.py --data gpu-data/clips --rife gpu-data/flownet.pkl --limit 6 --weights "$best" \
  | tee "$OUT/motion.md"
"$PY" benchmarks/heldout_table.py --data gpu-data/clips --limit "$LIMIT" --no-baselines --device "$DEVICE" \
  -w "$best" -q --json "$OUT/heldout.json" | tee "$OUT/heldout.md"
