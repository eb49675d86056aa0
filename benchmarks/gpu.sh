#!/usr/bin/env bash
# Everything only a GPU can show, in one command, on a machine with an NVIDIA GPU (no network needed):
#   1. the CuPy kernels against the PyTorch operators (tests marked `gpu`),
#   2. the model on CUDA (the model/interpolator tests with CUDA visible),
#   3. the bench table for 480p/720p/1080p/2160p in fp32/fp16/bf16.
# Results go to $OUT (or ./gpu-results). PyAV, if missing there, is installed from wheels carried in
# .gpu-wheels/ (git-ignored; `pip download av --only-binary=:all: -d .gpu-wheels` on a networked machine).
#
# Usage: bash benchmarks/gpu.sh [PYTHON]
set -uo pipefail
cd "$(dirname "$0")/.."
PY=${1:-python3}
OUT=${OUT:-gpu-results}
mkdir -p "$OUT"
export PYTHONPATH="$PWD${PYTHONPATH:+:$PYTHONPATH}"

"$PY" -c "import av" 2>/dev/null || "$PY" -m pip install -q --no-index --find-links .gpu-wheels av
"$PY" - <<'PY' | tee "$OUT/env.txt"
import torch
print("torch", torch.__version__, "cuda", torch.version.cuda, torch.cuda.get_device_name(0))
try:
    import cupy
    print("cupy", cupy.__version__)
except ImportError as exc:
    print("cupy missing:", exc)
from vfi_mini.ops import available_backends
print("op backends", available_backends())
PY

echo "== CuPy kernels vs PyTorch operators, CUDA tests"
"$PY" -m pytest -q -p no:cacheprovider -m gpu tests/test_ops.py 2>&1 | tee "$OUT/gpu_tests.txt"
"$PY" -m pytest -q -p no:cacheprovider tests/test_ops.py tests/test_models.py tests/test_interpolator.py \
    tests/test_weights.py 2>&1 | tail -5 | tee -a "$OUT/gpu_tests.txt"

echo "== bench"
: > "$OUT/bench.jsonl"
for size in 480p 720p 1080p 2160p; do
  for precision in fp32 fp16 bf16; do
    "$PY" -m vfi_mini bench --device cuda --size "$size" --precision "$precision" --frames 10 \
        --pipeline-frames 24 --json -q >> "$OUT/bench.jsonl" \
      || echo "{\"size\": \"$size\", \"precision\": \"$precision\", \"error\": true}" >> "$OUT/bench.jsonl"
  done
done
"$PY" benchmarks/table.py "$OUT/bench.jsonl" | tee "$OUT/bench.md"
