#!/usr/bin/env bash
# CPU benchmark table for BENCHMARKS.md: `vfi-mini bench` at 480p and 720p in fp32 and bf16.
# Usage: bash benchmarks/cpu.sh [THREADS=2] [OUT=benchmarks/cpu.jsonl]
# Run it on an otherwise idle machine: the figures are wall-clock times.
set -euo pipefail
cd "$(dirname "$0")/.."
threads=${1:-2}
out=${2:-benchmarks/cpu.jsonl}
: > "$out"
for size in 480p 720p; do
  for precision in fp32 bf16; do
    vfi-mini bench --device cpu --threads "$threads" --size "$size" --precision "$precision" --frames 3 \
        --pipeline-frames 6 --json -q | tee -a "$out"
  done
done
python benchmarks/table.py "$out"
