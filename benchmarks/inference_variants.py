"""Inference-time variants of a model on the held-out windows: can the same weights do better without training?

Each variant runs the unchanged model (through `Interpolator`) on modified inputs or with modified maps:

- ``flip``: the mean of the model on the window and on its left-right mirror (test-time augmentation).
- ``align``: global motion compensation: the integer translation d between I1 and I2 (phase correlation),
  I1 moved by +round(d/2), I2 by -round(d/2) (I0, I3 by three times that), so that the model's middle
  frame is the target frame itself; borders replicated.
- ``prewarp-S``: coarse-to-fine with the model's own motion: the x1 displacement (weight-averaged AdaCoF
  sampling offset) of the model run on frames downscaled by S, scaled up, gated to where it is longer than
  2-4 px (linear ramp), pre-warps I0..I3 (bilinear, border) before the model runs at full size. With more
  than one digit (``prewarp-42``) the levels run in turn, each on frames pre-warped by the motion so far
  (the motions composed).
- ``gated-S``: ``prewarp-S`` kept only where it aligns I1 and I2 better than no pre-warp: a ramp over
  0.01 of the 15x15 box-filtered mean absolute difference of the two pre-warped frames against that of the
  two frames as they are (needs no ground truth).
- ``bicubic``: the mean of the two x1 warps with every AdaCoF tap sampled bicubically instead of
  bilinearly (same weights and offsets). It stands for the model only where the model's output is that
  mean (GridNet averaging the x1 candidates, TENet adding nothing: the bundled weights); ``bilinear`` is
  the same code with bilinear taps, which must equal the model there.
- ``gain-G``: every x1 AdaCoF sampling position (tap + offset) multiplied by G (the model's x1 motion
  is shorter than the truth on known translations, see motion_check.py --translate).

    nice -n 5 python benchmarks/inference_variants.py --limit 4 [--weights W] [--variants flip,align,...]

Prints the mean PSNR over clips and the per-clip PSNR of each variant beside the model and blending.
"""

from __future__ import annotations

import argparse
import sys

import torch
import torch.nn.functional as F

from vfi_mini.evaluate import evaluate_methods, make_baseline, open_test_set
from vfi_mini.interpolator import Interpolator, pad_to_multiple
from vfi_mini.train.loop import _tap_offsets, effective_displacement

VARIANTS = ("flip", "align", "prewarp-4", "prewarp-2", "gated-4", "bicubic", "gain-1.15", "gain-1.3")


def phase_correlation(a: torch.Tensor, b: torch.Tensor) -> tuple[int, int]:
    """Integer (dy, dx) with b(x) ~ a(x - d), for frames (3, H, W) (Hann-windowed, on the grey means)."""
    ga, gb = a.mean(0), b.mean(0)
    h, w = ga.shape
    win = torch.hann_window(h, periodic=False)[:, None] * torch.hann_window(w, periodic=False)[None]
    fa = torch.fft.rfft2((ga - ga.mean()) * win)
    fb = torch.fft.rfft2((gb - gb.mean()) * win)
    r = fb * fa.conj()
    c = torch.fft.irfft2(r / (r.abs() + 1e-9), s=(h, w))
    dy, dx = divmod(int(c.argmax()), w)
    return (dy - h if dy > h // 2 else dy), (dx - w if dx > w // 2 else dx)


def translate(img: torch.Tensor, sy: int, sx: int) -> torch.Tensor:
    """(3, H, W) content moved by (sy, sx) pixels, borders replicated."""
    p = max(abs(sy), abs(sx))
    if p == 0:
        return img
    h, w = img.shape[-2:]
    padded = F.pad(img[None], (p, p, p, p), mode="replicate")[0]
    return padded[:, p - sy : p - sy + h, p - sx : p - sx + w]


def warp(img: torch.Tensor, flow: torch.Tensor, mode: str = "bilinear") -> torch.Tensor:
    """Backward warp of (B, C, H, W) by a pixel flow (B, 2, H, W) (x, y), sampled in `mode` (a
    `grid_sample` mode), border padding."""
    _, _, h, w = img.shape
    gy, gx = torch.meshgrid(torch.arange(h, dtype=img.dtype), torch.arange(w, dtype=img.dtype), indexing="ij")
    x, y = gx + flow[:, 0], gy + flow[:, 1]
    grid = torch.stack([2 * x / (w - 1) - 1, 2 * y / (h - 1) - 1], dim=-1)
    return F.grid_sample(img, grid, mode=mode, padding_mode="border", align_corners=True)


def displacement(net: torch.nn.Module, i1: torch.Tensor, i2: torch.Tensor) -> list[torch.Tensor]:
    """The model's x1 displacements of I1 and I2 (each (B, 2, H, W), x then y) for frames (B, 3, H, W)."""
    h, w = i1.shape[-2:]
    _, maps = net.motion(pad_to_multiple(i1, 64).float(), pad_to_multiple(i2, 64).float())
    return [effective_displacement(*maps[3 * f : 3 * f + 3], net.config.dilation)[..., :h, :w] for f in (0, 1)]


def coarse_motion(
    net: torch.nn.Module, i1: torch.Tensor, i2: torch.Tensor, levels: list[int]
) -> tuple[torch.Tensor, torch.Tensor]:
    """Coarse-to-fine displacements of I1 and I2 from the model's own motion on downscaled frames.

    At each level S in turn the frames, pre-warped by the displacements so far, are downscaled by S; the
    model's displacement there, scaled up, is composed with them (d <- e + d(x + e)). The result is gated
    to where it is longer than 2-4 px (linear ramp), where the full-size model alone falls short."""
    h, w = i1.shape[-2:]
    disp = [i1.new_zeros(i1.shape[0], 2, h, w), i1.new_zeros(i1.shape[0], 2, h, w)]
    for scale in levels:
        small = [
            F.interpolate(warp(x, d), scale_factor=1 / scale, mode="bilinear", antialias=True)
            for x, d in zip((i1, i2), disp)
        ]
        steps = [F.interpolate(e, size=(h, w), mode="bilinear") * scale for e in displacement(net, *small)]
        disp = [e + warp(d, e) for e, d in zip(steps, disp)]
    d1, d2 = (d * ((d.norm(dim=1, keepdim=True) - 2) / 2).clamp(0, 1) for d in disp)
    return d1, d2


def _box(x: torch.Tensor, k: int) -> torch.Tensor:
    return F.avg_pool2d(F.pad(x, (k // 2,) * 4, mode="replicate"), k, 1)


def alignment_gain(i1: torch.Tensor, i2: torch.Tensor, d1: torch.Tensor, d2: torch.Tensor) -> torch.Tensor:
    """(B, 1, H, W) in [0, 1]: 1 where pre-warping I1 by d1 and I2 by d2 makes them agree better (15x15 box
    mean of the absolute difference, by at least 0.01), 0 where it makes them agree no better."""
    before = _box((i1 - i2).abs().mean(1, keepdim=True), 15)
    after = _box((warp(i1, d1) - warp(i2, d2)).abs().mean(1, keepdim=True), 15)
    return ((before - after) / 0.01).clamp(0, 1)


def sample_taps(
    image: torch.Tensor, weight: torch.Tensor, alpha: torch.Tensor, beta: torch.Tensor, dilation: int, mode: str
) -> torch.Tensor:
    """AdaCoF of an unpadded image (B, 3, H, W) with floor rounding, each tap sampled by `grid_sample` in
    `mode` ('bilinear': the model's own warp; 'bicubic'), borders replicated."""
    b, taps = weight.shape[:2]
    tx, ty = _tap_offsets(weight, dilation)
    flows = torch.stack([tx + beta, ty + alpha], dim=2).flatten(0, 1).float()  # (B * taps, 2, H, W)
    samples = warp(image.float().repeat_interleave(taps, dim=0), flows, mode)
    return (samples.unflatten(0, (b, taps)) * weight[:, :, None].float()).sum(1)


def make_variant(name: str, interp: Interpolator):  # noqa: ANN201 - a window -> frame callable
    net = interp.model
    if name == "flip":
        return lambda win: (interp(win) + interp(win.flip(-1)).flip(-1)) / 2
    if name == "align":

        def align(win: torch.Tensor) -> torch.Tensor:
            f = win[0]
            dy, dx = phase_correlation(f[1], f[2])
            sy, sx = round(dy / 2), round(dx / 2)
            moved = [translate(f[i], k * sy, k * sx) for i, k in enumerate((3, 1, -1, -3))]
            return interp(torch.stack(moved)[None])

        return align
    if name.startswith(("prewarp-", "gated-")):
        levels = [int(c) for c in name.split("-")[1]]
        gated = name.startswith("gated-")

        @torch.inference_mode()
        def prewarp(win: torch.Tensor) -> torch.Tensor:
            i0, i1, i2, i3 = win.unbind(1)
            d1, d2 = coarse_motion(net, i1, i2, levels)
            if gated:
                keep = alignment_gain(i1, i2, d1, d2)
                d1, d2 = d1 * keep, d2 * keep
            return interp(torch.stack([warp(i0, 3 * d1), warp(i1, d1), warp(i2, d2), warp(i3, 3 * d2)], 1))

        return prewarp
    if name in ("bicubic", "bilinear"):

        @torch.inference_mode()
        def resampled(win: torch.Tensor) -> torch.Tensor:
            h, w = win.shape[-2:]
            frames = [pad_to_multiple(f, interp.multiple) for f in win.unbind(1)]
            _, maps = net(*frames, return_maps=True)
            warps = [
                sample_taps(frames[1 + f], *maps[6 + 3 * f : 9 + 3 * f], net.config.dilation, name) for f in (0, 1)
            ]
            return (0.5 * (warps[0] + warps[1]))[..., :h, :w].clamp(0, 1)

        return resampled
    if name.startswith("gain-"):
        gain = float(name.split("-")[1])
        gained = Interpolator(_gained(net, gain), device="cpu", threads=torch.get_num_threads())
        return gained
    known = ", ".join((*VARIANTS, "bilinear"))
    raise SystemExit(f"unknown variant {name!r}; choose from {known} (prewarp-/gated- take any level digits)")


def _gained(net: torch.nn.Module, gain: float) -> torch.nn.Module:
    import copy

    model = copy.deepcopy(net)
    heads = model.get_kernel
    forward = heads.forward

    def scaled(feat: torch.Tensor) -> list[torch.Tensor]:
        maps = forward(feat)
        for f in (0, 1):  # x1 maps of I1 and I2 are maps[6:9] and maps[9:12]
            w, a, b = maps[6 + 3 * f : 9 + 3 * f]
            tx, ty = _tap_offsets(w, model.config.dilation)
            maps[7 + 3 * f] = gain * (ty + a) - ty
            maps[8 + 3 * f] = gain * (tx + b) - tx
        return maps

    heads.forward = scaled
    return model


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--weights", default=None, help="weights (default: the bundled ones)")
    p.add_argument("--data", default="footage/clips")
    p.add_argument("--limit", type=int, default=4, help="evenly spaced windows per held-out clip (default 4)")
    p.add_argument("--variants", default=",".join(VARIANTS))
    p.add_argument("--threads", type=int, default=1)
    args = p.parse_args()
    torch.set_num_threads(args.threads)
    ts = open_test_set(args.data, "heldout", limit=args.limit)
    interp = Interpolator.from_weights(args.weights, device="cpu", threads=args.threads)
    methods = {"blend": make_baseline("blend"), "model": interp}
    for name in args.variants.split(","):
        methods[name] = make_variant(name, interp)
    results = evaluate_methods(methods, ts)
    clips = sorted(results["model"].group_means())
    print("| method | mean | " + " | ".join(c.split("/")[-1] for c in clips) + " |")
    print("|---|---:|" + "---:|" * len(clips))
    for m, r in results.items():
        gm = r.group_means()
        print(f"| {m} | {r.means()['psnr']:.2f} | " + " | ".join(f"{gm[c]['psnr']:.2f}" for c in clips) + " |")
    return 0


if __name__ == "__main__":
    sys.exit(main())
