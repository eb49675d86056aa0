"""Wall time and peak memory of `vfi-mini double` on a 10-second 480p clip with the real model (CPU).

The clip is made from the first 10 s of opencv-doc's Megamind.avi (fetched by scripts/fetch_footage.sh):
scaled to 854 wide, centre-cropped to 854x480, 23.976 fps, libx264 CRF 18, its audio re-encoded to AAC.
Then `vfi-mini double` runs as a user would run it, in a child process, and this script reports its wall
time, output frames per second, and peak RSS (the child's maximum resident set, from getrusage).

    nice python benchmarks/double_480p.py [--weights W] [--precision bf16] [--threads 2] [--json out.json]
"""

from __future__ import annotations

import argparse
import json
import resource
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from fractions import Fraction
from pathlib import Path

import av
import numpy as np

SOURCE = Path("footage/raw/opencv-doc/Megamind.avi")


def _decode(container: av.container.InputContainer, streams: list) -> Iterator[av.frame.Frame]:
    """Frames of `streams`, skipping packets the decoder rejects (Megamind.avi has a damaged audio packet)."""
    for packet in container.demux(*streams):
        try:
            yield from packet.decode()
        except av.error.InvalidDataError:
            continue


def make_clip(src: Path, dst: Path, seconds: float = 10.0, width: int = 854, height: int = 480) -> int:
    """Write the 480p test clip; returns its number of video frames."""
    n = 0
    with av.open(str(src)) as inp, av.open(str(dst), "w") as out:
        vin = inp.streams.video[0]
        ain = inp.streams.audio[0] if inp.streams.audio else None
        rate = vin.average_rate or Fraction(24000, 1001)
        vout = out.add_stream("libx264", rate=rate, options={"crf": "18", "preset": "medium"})
        vout.width, vout.height, vout.pix_fmt = width, height, "yuv420p"
        aout = out.add_stream("aac", rate=ain.rate, layout=ain.layout.name) if ain else None
        streams = [vin] + ([ain] if ain else [])
        for frame in _decode(inp, streams):
            t = float(frame.time) if frame.time is not None else 0.0
            if t >= seconds:
                continue
            if isinstance(frame, av.VideoFrame):
                scaled_h = round(frame.height * width / frame.width / 2) * 2
                rgb = frame.reformat(width=width, height=scaled_h, format="rgb24").to_ndarray()
                top = max(0, (scaled_h - height) // 2)
                crop = np.ascontiguousarray(rgb[top : top + height])
                vf = av.VideoFrame.from_ndarray(crop, format="rgb24")
                vf.pts, vf.time_base = n, 1 / rate
                out.mux(vout.encode(vf))
                n += 1
            elif aout is not None:
                frame.pts = None
                out.mux(aout.encode(frame))
        out.mux(vout.encode())
        if aout is not None:
            out.mux(aout.encode())
    return n


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--source", default=str(SOURCE))
    p.add_argument("--weights", help="default: the bundled weights")
    p.add_argument("--precision", default=None, help="passed to vfi-mini double (default: its own)")
    p.add_argument("--threads", type=int, default=None)
    p.add_argument("--seconds", type=float, default=10.0, help="clip length (default 10)")
    p.add_argument("--json", help="also write the result here")
    args = p.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        clip = Path(tmp) / "clip480p.mp4"
        frames = make_clip(Path(args.source), clip, seconds=args.seconds)
        cmd = [sys.executable, "-m", "vfi_mini", "double", str(clip), "-o", str(Path(tmp) / "out.mp4"), "-q"]
        cmd += ["--weights", args.weights] if args.weights else []
        cmd += ["--precision", args.precision] if args.precision else []
        cmd += ["--threads", str(args.threads)] if args.threads else []
        t0 = time.perf_counter()
        proc = subprocess.run(cmd, capture_output=True, text=True)
        wall = time.perf_counter() - t0
        if proc.returncode:
            sys.stderr.write(proc.stderr)
            return proc.returncode
        with av.open(str(Path(tmp) / "out.mp4")) as c:
            out_frames = c.streams.video[0].frames or sum(1 for _ in c.decode(video=0))
    peak_mb = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024
    result = {
        "input": f"Megamind.avi, first {args.seconds:g} s, 854x480",
        "input_frames": frames,
        "output_frames": out_frames,
        "wall_s": round(wall, 1),
        "seconds_per_interpolated_frame": round(wall / max(1, out_frames - frames), 2),
        "output_fps": round(out_frames / wall, 3),
        "peak_rss_mb": round(peak_mb),
        "command": " ".join(["vfi-mini"] + cmd[3:5] + ["-o", "out.mp4"] + cmd[7:]),
    }
    print(json.dumps(result))
    if args.json:
        Path(args.json).write_text(json.dumps(result, indent=1) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
