"""Render `vfi-mini bench --json` lines (one per line in FILE) as the markdown table of BENCHMARKS.md.

Usage: python benchmarks/table.py results.jsonl
"""

from __future__ import annotations

import json
import sys


def main(path: str) -> None:
    rows = [json.loads(line) for line in open(path) if line.strip()]
    print(
        "| size | device | precision | threads | model s/frame | pipeline out fps | decode ms | encode ms "
        "| GFLOP/frame | GFLOP/s | % of machine conv | peak RSS MB | CUDA max MB |"
    )
    print("|---|---|---|---|---|---|---|---|---|---|---|---|---|")
    for r in rows:
        if r.get("error"):
            print(f"| {r['size']} | | {r['precision']} | failed | | | | | | | | | |")
            continue

        def f(key: str, scale: float = 1.0, digits: int = 2, r: dict = r) -> str:
            v = r.get(key)
            return "" if v is None else f"{v * scale:.{digits}f}"

        # Runs with several windows per model call or CUDA graphs say so next to the precision.
        precision = r["precision"] + (f", batch {r['batch']}" if r.get("batch", 1) != 1 else "")
        precision += ", CUDA graphs" if r.get("cuda_graphs") else ""
        print(
            f"| {r['width']}x{r['height']} | {r['device']} | {precision} | {r['threads']} "
            f"| {f('model_seconds_per_frame', digits=3)} | {f('pipeline_fps')} "
            f"| {f('decode_seconds_per_frame', 1000, 1)} | {f('encode_seconds_per_frame', 1000, 1)} "
            f"| {f('gflops_per_frame', digits=1)} | {f('achieved_gflops_per_s', digits=1)} "
            f"| {f('fraction_of_machine', 100, 0)} | {f('peak_rss_mb', digits=0)} "
            f"| {f('cuda_max_allocated_mb', digits=0)} |"
        )


if __name__ == "__main__":
    main(sys.argv[1])
