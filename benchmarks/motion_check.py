"""How much motion a model has learned: its x1 AdaCoF displacement against RIFE 4.25's flow, per held-out clip.

For each window of the held-out clips (layout ``heldout``, as benchmarks/heldout_table.py), the model's
weight-averaged displacement from the middle frame to I1 (`vfi_mini.train.loop.effective_displacement` of
the x1 maps of I1) is compared with RIFE's ``flow_t0`` for the same I1, I2: mean length of each, and the
mean end-point error (EPE) between them, in pixels. A model that has not learned a motion shows a
displacement much shorter than RIFE's and an EPE close to RIFE's length.

    nice -n 5 python benchmarks/motion_check.py --weights W [--limit 12] [--rife ~/.cache/vfi-mini/rife/flownet.pkl]

Prints a markdown table and, with --json, writes the figures per clip.
"""

from __future__ import annotations

import argparse
import json
import sys
from collections import defaultdict
from pathlib import Path

import torch

from vfi_mini.evaluate import open_test_set
from vfi_mini.interpolator import pad_to_multiple
from vfi_mini.teachers.rife import RifeTeacher
from vfi_mini.train.loop import effective_displacement
from vfi_mini.weights import load_model


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--weights", default=None, help="weights (default: the bundled ones)")
    p.add_argument("--data", default="footage/clips", help="footage cache (default: footage/clips)")
    p.add_argument("--limit", type=int, default=12, help="evenly spaced windows per clip (default 12)")
    p.add_argument("--rife", default=str(Path("~/.cache/vfi-mini/rife/flownet.pkl").expanduser()))
    p.add_argument("--threads", type=int, default=1)
    p.add_argument("--json", dest="json_path", default=None)
    args = p.parse_args()
    torch.set_num_threads(args.threads)
    model, _ = load_model(args.weights)
    model.eval()
    teacher = RifeTeacher.from_file(args.rife)
    ts = open_test_set(args.data, "heldout", limit=args.limit)
    sums: dict[str, list[float]] = defaultdict(lambda: [0.0, 0.0, 0.0, 0])
    for s in ts.samples:
        frames, _ = s.load()
        im1, im2 = frames[1:2], frames[2:3]
        h, w = im1.shape[-2:]
        with torch.no_grad():
            flow = teacher(im1, im2)["flow_t0"]
            _, maps = model.motion(pad_to_multiple(im1, 16), pad_to_multiple(im2, 16))
            disp = effective_displacement(*maps[:3], model.config.dilation)[..., :h, :w]
        acc = sums[s.group]
        acc[0] += float(flow.norm(dim=1).mean())
        acc[1] += float(disp.norm(dim=1).mean())
        acc[2] += float((disp - flow).norm(dim=1).mean())
        acc[3] += 1
    rows = {g: {"rife_px": a / n, "model_px": b / n, "epe_px": e / n, "windows": n} for g, (a, b, e, n) in sums.items()}
    print(f"weights: {args.weights or 'bundled'}; x1 displacement of I1 against RIFE 4.25 flow_t0 (pixels)\n")
    print("| clip | windows | RIFE mean length | model mean length | EPE |\n|---|---:|---:|---:|---:|")
    for g in sorted(rows):
        r = rows[g]
        print(f"| {g} | {r['windows']} | {r['rife_px']:.2f} | {r['model_px']:.2f} | {r['epe_px']:.2f} |")
    mean = {k: sum(r[k] for r in rows.values()) / len(rows) for k in ("rife_px", "model_px", "epe_px")}
    print(f"| **mean over clips** | | {mean['rife_px']:.2f} | {mean['model_px']:.2f} | {mean['epe_px']:.2f} |")
    if args.json_path:
        Path(args.json_path).write_text(json.dumps({"weights": args.weights, "clips": rows, "mean": mean}, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
