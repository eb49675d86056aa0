"""Training throughput (samples/s) of the Mini on this machine: crop 128/256, fp32/bf16, with/without a teacher.

Usage: python benchmarks/train_speed.py [--steps 4] [--teacher PATH_TO_flownet.pkl] [--threads 2]
Each configuration runs one warm-up step and then --steps timed steps on random frames (the data
pipeline is not included: it is a few ms per sample).
"""

from __future__ import annotations

import argparse
import json
import time

import torch

from vfi_mini.models import build_model
from vfi_mini.train.loop import Teacher
from vfi_mini.train.losses import LapLoss


def step_time(crop: int, batch: int, precision: str, teacher: Teacher | None, steps: int) -> float:
    torch.manual_seed(0)
    model = build_model("stmfnet-mini").train()
    opt = torch.optim.Adamax(model.parameters(), lr=1e-3)
    lap = LapLoss()
    frames = torch.rand(batch, 4, 3, crop, crop)
    target = torch.rand(batch, 3, crop, crop)
    dtype = torch.bfloat16 if precision == "bf16" else torch.float32
    times = []
    for i in range(steps + 1):
        t0 = time.perf_counter()
        with torch.autocast("cpu", dtype=dtype, enabled=precision == "bf16"):
            pred = model(*frames.unbind(1))
        pred = pred.float()
        loss = lap(pred, target)
        if teacher is not None:
            loss = 0.1 * loss + lap(pred, teacher(frames)["frame"])
        opt.zero_grad()
        loss.backward()
        opt.step()
        if i:
            times.append(time.perf_counter() - t0)
    return sorted(times)[len(times) // 2]


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--steps", type=int, default=4)
    ap.add_argument("--batch", type=int, default=4)
    ap.add_argument("--teacher")
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--crops", default="128,256")
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    teacher = Teacher(args.teacher, torch.device("cpu")) if args.teacher else None
    rows = []
    for crop in (int(c) for c in args.crops.split(",")):
        for precision in ("fp32", "bf16"):
            for t in [None, teacher] if teacher else [None]:
                s = step_time(crop, args.batch, precision, t, args.steps)
                row = {
                    "crop": crop,
                    "batch": args.batch,
                    "precision": precision,
                    "teacher": "rife" if t else "none",
                    "seconds_per_step": round(s, 3),
                    "samples_per_s": round(args.batch / s, 3),
                }
                rows.append(row)
                print(json.dumps(row), flush=True)


if __name__ == "__main__":
    main()
