"""The PSNR rule of the fast paths: a model in fp32 and in reduced precision on the same real windows.

Evaluates WEIGHTS on the held-out clips (the ``heldout`` layout of `vfi_mini.evaluate`, like
benchmarks/heldout_table.py) in fp32 and in each other precision asked for, through the same code path,
and prints one JSON object: mean PSNR per precision, the difference to fp32 per clip and overall, and
whether each mode meets the rule of the speed issue (within 0.05 dB of fp32).

    nice -n 5 python benchmarks/precision_check.py --weights W [--precision bf16] [--limit 12] [--device cpu]
"""

from __future__ import annotations

import argparse
import json
import sys

from vfi_mini.evaluate import evaluate_methods, open_test_set
from vfi_mini.interpolator import Interpolator

TOLERANCE_DB = 0.05


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--weights", default=None, help="weights (default: the bundled ones)")
    p.add_argument("--data", default="footage/clips", help="footage cache (default: footage/clips)")
    p.add_argument("--limit", type=int, default=12, help="evenly spaced windows per clip (default 12)")
    p.add_argument("--precision", action="append", choices=["bf16", "fp16"], help="default: bf16")
    p.add_argument("--device", default="cpu")
    p.add_argument("--threads", type=int, default=None)
    args = p.parse_args()
    modes = ["fp32", *(args.precision or ["bf16"])]
    ts = open_test_set(args.data, "heldout", limit=args.limit)
    methods = {
        m: Interpolator.from_weights(args.weights, device=args.device, precision=m, threads=args.threads) for m in modes
    }
    results = evaluate_methods(methods, ts)
    ref = results["fp32"].group_means()
    out = {"weights": args.weights or "default", "windows": len(ts), "device": args.device, "modes": {}}
    for m in modes:
        gm = results[m].group_means()
        per_clip = {g: round(gm[g]["psnr"] - ref[g]["psnr"], 4) for g in ref}
        delta = results[m].means()["psnr"] - results["fp32"].means()["psnr"]
        out["modes"][m] = {
            "psnr": round(results[m].means()["psnr"], 4),
            "delta_db": round(delta, 4),
            "worst_clip_delta_db": min(per_clip.values()),
            "per_clip_delta_db": per_clip,
            "seconds_per_window": round(results[m].seconds_per_sample, 3),
            "meets_rule": abs(delta) <= TOLERANCE_DB,
        }
    print(json.dumps(out, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
