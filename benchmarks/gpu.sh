#!/usr/bin/env bash
# Everything only a GPU can show, in one command, on a machine with an NVIDIA GPU (no network needed):
#   1. the CuPy kernels against the PyTorch operators (tests marked `gpu`),
#   2. the model on CUDA (the model/interpolator tests with CUDA visible),
#   3. the bench table for 480p/720p/1080p/2160p in fp32/fp16/bf16 (one window per model call), then
#      480p and 1080p in fp16/bf16 with 4 windows per call (--batch 4) and with CUDA graphs (--cuda-graphs),
#   4. `vfi-mini double` with hardware decoding and encoding (--hwaccel cuda --codec h264_nvenc) on a
#      generated 720p clip, against software decoding with the same encoder: exit code and wall time.
# Results go to $OUT (or ./gpu-results). PyAV, if missing there, is installed from wheels carried in
# .gpu-wheels/ (git-ignored; `pip download av --only-binary=:all: -d .gpu-wheels` on a networked machine).
#
# Usage: bash benchmarks/gpu.sh [PYTHON] [SECTIONS]
#   SECTIONS: comma-separated parts to run (default all): tests, bench, speed, hw; e.g. `bash
#   benchmarks/gpu.sh python3 tests,hw` then `... bench` then `... speed` to fit 10-minute calls.
set -uo pipefail
cd "$(dirname "$0")/.."
PY=${1:-python3}
SECTIONS=",${2:-tests,bench,speed,hw},"
want() { [[ $SECTIONS == *",$1,"* ]]; }
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

if want tests; then
echo "== CuPy kernels vs PyTorch operators, CUDA tests"
"$PY" -m pytest -q -p no:cacheprovider -m gpu tests/test_ops.py 2>&1 | tee "$OUT/gpu_tests.txt"
"$PY" -m pytest -q -p no:cacheprovider tests/test_ops.py tests/test_models.py tests/test_interpolator.py \
    tests/test_weights.py tests/test_hwaccel.py 2>&1 | tail -5 | tee -a "$OUT/gpu_tests.txt"
fi

if want bench; then
echo "== bench"
: > "$OUT/bench.jsonl"
for size in 480p 720p 1080p 2160p; do
  for precision in fp32 fp16 bf16; do
    "$PY" -m vfi_mini bench --device cuda --size "$size" --precision "$precision" --batch 1 --frames 10 \
        --pipeline-frames 24 --json -q >> "$OUT/bench.jsonl" \
      || echo "{\"size\": \"$size\", \"precision\": \"$precision\", \"error\": true}" >> "$OUT/bench.jsonl"
  done
done
"$PY" benchmarks/table.py "$OUT/bench.jsonl" | tee "$OUT/bench.md"
fi

if want speed; then
echo "== bench: several windows per model call, CUDA graphs"
# Not quiet: a failed graph capture is logged to bench_speed.err (and its JSON says "cuda_graphs": false).
: > "$OUT/bench_speed.jsonl"
: > "$OUT/bench_speed.err"
for size in 480p 1080p; do
  for precision in fp16 bf16; do
    for options in "--batch 4" "--batch 1 --cuda-graphs" "--batch 4 --cuda-graphs"; do
      # shellcheck disable=SC2086 # $options is several words
      "$PY" -m vfi_mini bench --device cuda --size "$size" --precision "$precision" $options --frames 10 \
          --pipeline-frames 24 --json >> "$OUT/bench_speed.jsonl" 2>> "$OUT/bench_speed.err" \
        || echo "{\"size\": \"$size\", \"precision\": \"$precision $options\", \"error\": true}" >> "$OUT/bench_speed.jsonl"
    done
  done
done
"$PY" benchmarks/table.py "$OUT/bench_speed.jsonl" | tee "$OUT/bench_speed.md"
fi

if want hw; then
echo "== hardware decode (NVDEC) and encode (NVENC)"
"$PY" - "$OUT/hw_in.mp4" <<'PY'
import sys

import av
import numpy as np

width, height, frames = 1280, 720, 48
y, x = np.mgrid[0:height, 0:width]
with av.open(sys.argv[1], "w") as out:
    stream = out.add_stream("libx264", rate=30)
    stream.width, stream.height, stream.pix_fmt = width, height, "yuv420p"
    for i in range(frames):
        rgb = np.stack([(x + 4 * i) % 256, (y + 2 * i) % 256, ((x + y) // 2 + 3 * i) % 256], axis=-1)
        frame = av.VideoFrame.from_ndarray(rgb.astype(np.uint8), format="rgb24")
        frame.pts = i
        out.mux(stream.encode(frame))
    out.mux(stream.encode(None))
PY
: > "$OUT/hwcodec.txt"
for hwaccel in cuda none; do
  start=$(date +%s.%N)
  "$PY" -m vfi_mini double "$OUT/hw_in.mp4" -o "$OUT/hw_out_$hwaccel.mp4" -y --device cuda --hwaccel "$hwaccel" \
      --codec h264_nvenc --json -q > "$OUT/hwcodec_$hwaccel.json" 2> "$OUT/hwcodec_$hwaccel.err"
  rc=$?
  wall=$(awk -v a="$start" -v b="$(date +%s.%N)" 'BEGIN { printf "%.2f", b - a }')
  echo "double --hwaccel $hwaccel --codec h264_nvenc (720p, 48 -> 96 frames): exit $rc, wall ${wall} s, $(cat "$OUT/hwcodec_$hwaccel.json" "$OUT/hwcodec_$hwaccel.err" | tr '\n' ' ')" \
    | tee -a "$OUT/hwcodec.txt"
done
"$PY" - "$OUT/hw_out_cuda.mp4" "$OUT/hw_out_none.mp4" <<'PY' | tee -a "$OUT/hwcodec.txt"
import sys

import av

for path in sys.argv[1:]:
    try:
        with av.open(path) as container:
            stream = container.streams.video[0]
            count = sum(1 for _ in container.decode(stream))
            print(f"{path}: {stream.codec_context.name}, {count} frames decoded")
    except (OSError, av.FFmpegError) as exc:
        print(f"{path}: cannot be read ({exc})")
PY
fi
