"""How much motion a model has learned: its x1 AdaCoF displacement against RIFE 4.25's flow, per held-out clip.

For each window of the held-out clips (layout ``heldout``, as benchmarks/heldout_table.py), the model's
weight-averaged displacement from the middle frame to I1 (`vfi_mini.train.loop.effective_displacement` of
the x1 maps of I1) is compared with RIFE's ``flow_t0`` for the same I1, I2: mean length of each, and the
mean end-point error (EPE) between them, in pixels. A model that has not learned a motion shows a
displacement much shorter than RIFE's and an EPE close to RIFE's length.

    nice -n 5 python benchmarks/motion_check.py --weights W [--limit 12] [--rife ~/.cache/vfi-mini/rife/flownet.pkl]

Prints a markdown table and, with --json, writes the figures per clip.

With ``--translate 2,4,8,12`` it also measures the motion against a known truth, without RIFE: the first
frame of each held-out window, cropped to 256x256 at its centre, is moved by V pixels to the right to make
I2 (reflect-padded), so the true displacement from the middle frame to I1 is exactly -V/2 pixels in x. The
table gives the model's mean x displacement over the textured pixels (horizontal gradient > 0.05, where a
wrong motion shows) and over all pixels, and the PSNR of the x1 warp (the mean of the two warped
frames) against the true middle frame (I1 moved by V/2), beside that of frame blending.
"""

from __future__ import annotations

import argparse
import json
import sys
from collections import defaultdict
from pathlib import Path

import torch
import torch.nn.functional as F

from vfi_mini.evaluate import open_test_set
from vfi_mini.interpolator import pad_to_multiple
from vfi_mini.teachers.rife import RifeTeacher
from vfi_mini.train.loop import effective_displacement
from vfi_mini.weights import load_model

PROBE = 256  # side of the centre crop the translation probe moves


def shifted(frame: torch.Tensor, dx: int, size: int = PROBE) -> torch.Tensor:
    """(1, 3, size, size) centre crop of `frame` (1, 3, H, W), its content moved dx pixels to the right
    (the columns that come in from the left are the frame's own, reflected only at the frame's edge)."""
    h, w = frame.shape[-2:]
    top, left = (h - size) // 2, (w - size) // 2
    rows = frame[..., top : top + size, :]
    return (F.pad(rows, (dx, 0, 0, 0), mode="reflect") if dx else rows)[..., left : left + size]


def _psnr(a: torch.Tensor, b: torch.Tensor) -> float:
    return float(-10 * torch.log10(F.mse_loss(a.clamp(0, 1), b)))


def translation_probe(
    model: torch.nn.Module, frames: list[torch.Tensor], speeds: list[int], size: int = PROBE
) -> list[dict]:
    """Per speed V: mean x displacement of I1 (textured pixels, all pixels; truth -V/2) and the PSNR of
    the x1 warp and of blending against the true middle frame (even V only), averaged over `frames` (each
    (1, 3, H, W), at least `size` (a multiple of 16) on each side). A border of size/8 is left out (the
    replication padding of the warp at the edges)."""
    rows = []
    b = size // 8
    inner = (slice(None), slice(None), slice(b, -b), slice(b, -b))
    for v in speeds:
        acc = defaultdict(float)
        for frame in frames:
            im1, im2, mid = (shifted(frame, d, size) for d in (0, v, v // 2))
            with torch.no_grad():
                warped, maps = model.motion(im1, im2)
            dx = effective_displacement(*maps[:3], model.config.dilation)[:, :1][inner]
            grey = im1.mean(1, keepdim=True)
            textured = (F.pad(grey[..., 2:] - grey[..., :-2], (1, 1)).abs() > 0.05)[inner].float()
            acc["textured_px"] += float((dx * textured).sum() / textured.sum().clamp(min=1))
            acc["all_px"] += float(dx.mean())
            if v % 2 == 0:
                acc["warp_db"] += _psnr(warped[inner], mid[inner])
                acc["blend_db"] += _psnr(((im1 + im2) / 2)[inner], mid[inner])
        row = {"speed_px": v, "truth_px": -v / 2, **{k: a / len(frames) for k, a in acc.items()}}
        rows.append(row)
    return rows


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--weights", default=None, help="weights (default: the bundled ones)")
    p.add_argument("--data", default="footage/clips", help="footage cache (default: footage/clips)")
    p.add_argument("--limit", type=int, default=12, help="evenly spaced windows per clip (default 12)")
    p.add_argument("--rife", default=str(Path("~/.cache/vfi-mini/rife/flownet.pkl").expanduser()))
    p.add_argument("--threads", type=int, default=1)
    p.add_argument("--json", dest="json_path", default=None)
    p.add_argument(
        "--translate", default="", metavar="V,V,...", help="also probe known translations of V pixels (see above)"
    )
    args = p.parse_args()
    torch.set_num_threads(args.threads)
    model, _ = load_model(args.weights)
    model.eval()
    teacher = RifeTeacher.from_file(args.rife)
    ts = open_test_set(args.data, "heldout", limit=args.limit)
    sums: dict[str, list[float]] = defaultdict(lambda: [0.0, 0.0, 0.0, 0])
    first_frames = []
    for s in ts.samples:
        frames, _ = s.load()
        first_frames.append(frames[1:2])
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
    doc = {"weights": args.weights, "clips": rows, "mean": mean}
    if args.translate:
        speeds = [int(v) for v in args.translate.split(",")]
        probe = translation_probe(model, [f for f in first_frames if min(f.shape[-2:]) >= PROBE], speeds)
        print(
            f"\nKnown translations of the first frame of each window ({PROBE}x{PROBE} centre crops): x "
            "displacement of I1 (pixels) and PSNR (dB) against the true middle frame\n"
        )
        print("| move (px) | truth | model, textured pixels | model, all pixels | x1 warp | blend |")
        print("|---:|---:|---:|---:|---:|---:|")
        for r in probe:
            db = f"{r['warp_db']:.2f} | {r['blend_db']:.2f}" if "warp_db" in r else "- | -"
            print(f"| {r['speed_px']} | {r['truth_px']:+.1f} | {r['textured_px']:+.2f} | {r['all_px']:+.2f} | {db} |")
        doc["translate"] = probe
    if args.json_path:
        Path(args.json_path).write_text(json.dumps(doc, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
