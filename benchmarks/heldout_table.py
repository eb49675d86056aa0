"""The held-out table: PSNR / SSIM per held-out clip of repeat, blend, FFmpeg minterpolate (default and
``mc_mode=aobmc:me_mode=bidir:vsbmc=1``) and, optionally, models.

Clips: the ``val`` list of ``vfi_mini/data/splits.json`` in a footage cache (``footage/clips``, made by
scripts/prepare_footage.py), at the cached resolution (short side <= 360). Each frame t of a clip is
predicted from t-3, t-1, t+1, t+3 (`vfi_mini.evaluate`, layout ``heldout``); ``--limit`` keeps that many
evenly spaced windows per clip. Every method sees the same windows through the same code path.
The clip score is the mean over its windows; the last row is the mean over clips.

    nice -n 5 python benchmarks/heldout_table.py --limit 24 [--weights W ...] [--json table.json]

Prints a markdown table (cells: PSNR dB / SSIM, SSIM being the spec's 3-D "matlab" SSIM; standard SSIM
is in the JSON) and, with models, each model's margin over blend and minterpolate.
"""

from __future__ import annotations

import argparse
import json
import logging
import sys
import time
from pathlib import Path

import torch

from vfi_mini.data.datasets import SPLITS_FILE
from vfi_mini.evaluate import EvalResult, Sample, evaluate_methods, make_baseline, open_test_set
from vfi_mini.interpolator import Interpolator

BASELINES = ("repeat", "blend", "minterpolate", "minterpolate-aobmc")
HEADERS = {
    "minterpolate": "minterpolate (default)",
    "minterpolate-aobmc": "minterpolate (aobmc, bidir, vsbmc)",
}


def _parse() -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0], formatter_class=argparse.RawTextHelpFormatter)
    p.add_argument("--data", default="footage/clips", help="footage cache (default: footage/clips)")
    p.add_argument("--splits", default=None, help=f"splits file (default: {SPLITS_FILE})")
    p.add_argument("--limit", type=int, default=24, help="windows per clip, evenly spaced (0: all; default 24)")
    p.add_argument("-w", "--weights", action="append", default=[], help="a model to add (repeatable)")
    p.add_argument("--no-baselines", action="store_true", help="models only (plus blend, for the margin)")
    p.add_argument("--rife", metavar="FLOWNET_PKL", help="add the RIFE 4.25 teacher (from I1, I2) as a reference")
    p.add_argument("--device", default="auto")
    p.add_argument("--precision", default="fp32", choices=["fp32", "fp16", "bf16"])
    p.add_argument("--threads", type=int, default=1, help="PyTorch CPU threads (default 1: share the machine)")
    p.add_argument("--json", dest="json_path", default=None, help="write everything (all rows) to this file")
    p.add_argument("-q", "--quiet", action="store_true", help="no progress on stderr")
    return p.parse_args()


def _cell(r: EvalResult, group: str | None = None) -> str:
    m = r.group_means()[group] if group is not None else r.means()
    return f"{m['psnr']:.2f} / {m['ssim_matlab']:.4f}"


def markdown(results: dict[str, EvalResult], sizes: dict[str, str]) -> str:
    methods = list(results)
    first = results[methods[0]]
    gm = first.group_means()
    head = ["clip", "size", "windows", *(HEADERS.get(m, m) for m in methods)]
    lines = ["| " + " | ".join(head) + " |", "|" + "|".join(["---"] * 3 + ["---:"] * len(methods)) + "|"]
    for g in sorted(gm):
        row = [g, sizes.get(g, ""), str(gm[g]["samples"]), *(_cell(results[m], g) for m in methods)]
        lines.append("| " + " | ".join(row) + " |")
    row = ["**mean over clips**", "", str(len(first.rows)), *(f"**{_cell(results[m])}**" for m in methods)]
    lines.append("| " + " | ".join(row) + " |")
    return "\n".join(lines)


def margins(results: dict[str, EvalResult], models: list[str]) -> list[str]:
    out = []
    for model in models:
        mp = results[model].means()["psnr"]
        parts = [f"{b} {mp - results[b].means()['psnr']:+.2f} dB" for b in BASELINES if b in results]
        out.append(f"{model}: mean PSNR {mp:.2f} dB; vs " + ", ".join(parts))
    return out


def main() -> int:
    args = _parse()
    logging.basicConfig(level=logging.WARNING, format="%(name)s: %(levelname)s: %(message)s")
    torch.set_num_threads(max(1, args.threads))
    ts = open_test_set(args.data, "heldout", limit=args.limit or None, splits_file=args.splits)

    sizes: dict[str, str] = {}

    def wrap(s: Sample) -> Sample:
        def load():
            frames, target = s.load()
            sizes.setdefault(s.group, f"{target.shape[2]}x{target.shape[1]}")
            return frames, target

        return Sample(s.name, s.group, load)

    ts.samples = [wrap(s) for s in ts.samples]
    names = ["blend"] if args.no_baselines else list(BASELINES)
    methods = {b: make_baseline(b) for b in names}
    models = []
    for w in args.weights:
        label = f"model:{Path(w).name}"
        methods[label] = Interpolator.from_weights(
            w, device=args.device, precision=args.precision, threads=args.threads
        )
        models.append(label)
    if args.rife:
        from vfi_mini.teachers.rife import RifeTeacher

        teacher = RifeTeacher.from_file(args.rife)
        methods["rife-4.25"] = lambda w: teacher(w[:, 1], w[:, 2])["frame"]
        models.append("rife-4.25")

    t0 = time.time()
    total = len(ts)

    def progress(done: int, _total: int | None) -> None:
        if not args.quiet and (done % 10 == 0 or done == total):
            print(
                f"heldout_table: {done}/{total} windows, {time.time() - t0:.0f} s",
                file=sys.stderr,
                flush=True,
            )

    results = evaluate_methods(methods, ts, progress=progress)
    limit = f"at most {args.limit} evenly spaced windows per clip" if args.limit else "all windows"
    print(
        f"Held-out clips of {args.splits or 'vfi_mini/data/splits.json'} in {args.data}: "
        f"{len(results[names[0]].groups())} clips, {total} windows ({limit}); frames t-3, t-1, t+1, t+3 -> t "
        f"at the cached resolution. Cells: PSNR (dB) / SSIM (spec ssim_matlab); the last row is the mean "
        f"over clips.\n"
    )
    print(markdown(results, sizes))
    print()
    secs = ", ".join(f"{m} {1000 * r.seconds_per_sample:.0f} ms" for m, r in results.items())
    print(f"Time per window (method only): {secs}; total {time.time() - t0:.0f} s.")
    for line in margins(results, models):
        print(line)
    if args.json_path:
        doc = {
            "data": args.data,
            "splits": str(args.splits or SPLITS_FILE),
            "limit": args.limit or None,
            "windows": total,
            "sizes": sizes,
            "methods": {m: r.to_dict() for m, r in results.items()},
        }
        Path(args.json_path).write_text(json.dumps(doc, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
