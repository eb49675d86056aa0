"""Custom operators vs slow loop transcriptions of the spec (§2.4, §2.5.3, §2.5.4), gradchecks, dtype
handling, backend selection, and CuPy-vs-PyTorch agreement on CUDA (marker `gpu`).

Every test draws fresh random inputs; the seed is printed (shown on failure) and can be pinned
with VFI_TEST_SEED=<seed>.
"""

from __future__ import annotations

import importlib
import logging
import math
import os
import secrets

import pytest
import torch
import torch.nn.functional as F

from vfi_mini.errors import BackendUnavailable
from vfi_mini.ops import adacof, available_backends, backwarp, correlation, softsplat

_cupy = importlib.import_module("vfi_mini.ops._cupy")
adacof_module = importlib.import_module("vfi_mini.ops.adacof")
softsplat_module = importlib.import_module("vfi_mini.ops.softsplat")
correlation_module = importlib.import_module("vfi_mini.ops.correlation")

BACKENDS = available_backends()
requires_cuda = pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")
requires_cupy = pytest.mark.skipif(not _cupy.is_available(), reason="needs CuPy and a CUDA device")


@pytest.fixture
def gen() -> torch.Generator:
    seed = int(os.environ.get("VFI_TEST_SEED") or secrets.randbits(32))
    print(f"random seed {seed} (rerun with VFI_TEST_SEED={seed})")
    return torch.Generator().manual_seed(seed)


def _device(backend: str) -> torch.device:
    return torch.device("cuda" if backend == "cupy" else "cpu")


# ------------------------------------------------------------------------------------------------
# Loop references: literal transcriptions of the spec, Python floats (double precision).


def _clamp(v: int, lo: int, hi: int) -> int:
    return min(max(v, lo), hi)


def _adacof_corners(
    alpha: float, beta: float, i: int, j: int, ky: int, kx: int, d: int, hp: int, wp: int, whole=math.trunc
):
    """Tap (ky, kx) of output pixel (i, j): signed fractions and separately clamped corner indices."""
    big_a, big_b = whole(alpha), whole(beta)  # upstream: the C integer cast, toward zero
    a, b = alpha - big_a, beta - big_b
    y0, y1 = _clamp(i + ky * d + big_a, 0, hp - 1), _clamp(i + ky * d + big_a + 1, 0, hp - 1)
    x0, x1 = _clamp(j + kx * d + big_b, 0, wp - 1), _clamp(j + kx * d + big_b + 1, 0, wp - 1)
    return a, b, y0, y1, x0, x1


def adacof_loop_ref(image, weight, alpha, beta, dilation, whole=math.trunc):
    """§2.4 forward, one output value at a time."""
    bs, cs, hp, wp = image.shape
    kk, hs, ws = weight.shape[1:]
    ks = math.isqrt(kk)
    im, wt, al, be = (t.double().tolist() for t in (image, weight, alpha, beta))
    out = torch.zeros(bs, cs, hs, ws, dtype=torch.float64)
    for b in range(bs):
        for c in range(cs):
            for i in range(hs):
                for j in range(ws):
                    acc = 0.0
                    for t in range(kk):
                        ky, kx = divmod(t, ks)
                        fa, fb, y0, y1, x0, x1 = _adacof_corners(
                            al[b][t][i][j], be[b][t][i][j], i, j, ky, kx, dilation, hp, wp, whole
                        )
                        p = im[b][c]
                        acc += wt[b][t][i][j] * (
                            (1 - fa) * (1 - fb) * p[y0][x0]
                            + fa * (1 - fb) * p[y1][x0]
                            + (1 - fa) * fb * p[y0][x1]
                            + fa * fb * p[y1][x1]
                        )
                    out[b, c, i, j] = acc
    return out


def adacof_grad_loop_ref(grad, image, weight, alpha, beta, dilation, whole=math.trunc):
    """§2.4 backward formulas for weight, alpha and beta."""
    bs, cs, hp, wp = image.shape
    kk, hs, ws = weight.shape[1:]
    ks = math.isqrt(kk)
    g_, im, wt, al, be = (t.double().tolist() for t in (grad, image, weight, alpha, beta))
    gw, ga, gb = (torch.zeros(bs, kk, hs, ws, dtype=torch.float64) for _ in range(3))
    for b in range(bs):
        for t in range(kk):
            ky, kx = divmod(t, ks)
            for i in range(hs):
                for j in range(ws):
                    fa, fb, y0, y1, x0, x1 = _adacof_corners(
                        al[b][t][i][j], be[b][t][i][j], i, j, ky, kx, dilation, hp, wp, whole
                    )
                    w = wt[b][t][i][j]
                    sw = sa = sb = 0.0
                    for c in range(cs):
                        p, g = im[b][c], g_[b][c][i][j]
                        sw += g * (
                            (1 - fa) * (1 - fb) * p[y0][x0]
                            + fa * (1 - fb) * p[y1][x0]
                            + (1 - fa) * fb * p[y0][x1]
                            + fa * fb * p[y1][x1]
                        )
                        sa += g * w * (-(1 - fb) * p[y0][x0] + (1 - fb) * p[y1][x0] - fb * p[y0][x1] + fb * p[y1][x1])
                        sb += g * w * (-(1 - fa) * p[y0][x0] - fa * p[y1][x0] + (1 - fa) * p[y0][x1] + fa * p[y1][x1])
                    gw[b, t, i, j], ga[b, t, i, j], gb[b, t, i, j] = sw, sa, sb
    return gw, ga, gb


def sumsplat_loop_ref(image, flow):
    """§2.5.3 summation splatting: corner (X, Y) gets (1 - |tx - X|)(1 - |ty - Y|), out-of-frame dropped."""
    bs, cs, hs, ws = image.shape
    im, fl = image.double().tolist(), flow.double().tolist()
    out = [[[[0.0] * ws for _ in range(hs)] for _ in range(cs)] for _ in range(bs)]
    for b in range(bs):
        for y in range(hs):
            for x in range(ws):
                tx, ty = x + fl[b][0][y][x], y + fl[b][1][y][x]
                x0, y0 = math.floor(tx), math.floor(ty)
                for xx, yy in ((x0, y0), (x0 + 1, y0), (x0, y0 + 1), (x0 + 1, y0 + 1)):
                    if 0 <= xx < ws and 0 <= yy < hs:
                        weight = (1 - abs(tx - xx)) * (1 - abs(ty - yy))
                        for c in range(cs):
                            out[b][c][yy][xx] += im[b][c][y][x] * weight
    return torch.tensor(out, dtype=torch.float64)


def softsplat_loop_ref(image, flow, metric):
    e = metric.double().exp()
    num = sumsplat_loop_ref(image.double() * e, flow)
    den = sumsplat_loop_ref(e, flow)
    den[den == 0] = 1.0
    return num / den


def correlation_loop_ref(f1, f2):
    bs, cs, hs, ws = f1.shape
    a, b_ = f1.double().tolist(), f2.double().tolist()
    out = torch.zeros(bs, 81, hs, ws, dtype=torch.float64)
    for b in range(bs):
        for dy in range(-4, 5):
            for dx in range(-4, 5):
                for y in range(hs):
                    for x in range(ws):
                        s = 0.0
                        if 0 <= y + dy < hs and 0 <= x + dx < ws:
                            s = sum(a[b][c][y][x] * b_[b][c][y + dy][x + dx] for c in range(cs))
                        out[b, (dy + 4) * 9 + dx + 4, y, x] = s / cs
    return out


def backwarp_loop_ref(image, flow):
    """§2.5.4 with grid_sample(bilinear, zeros, align_corners=False) written out by hand."""
    bs, cs, hi, wi = image.shape
    hs, ws = flow.shape[2:]
    im, fl = image.double().tolist(), flow.double().tolist()
    out = torch.zeros(bs, cs, hs, ws, dtype=torch.float64)
    for b in range(bs):
        for y in range(hs):
            for x in range(ws):
                gx = -1 + 1 / ws + x * (2 - 2 / ws) / (ws - 1) + fl[b][0][y][x] / ((wi - 1) / 2)
                gy = -1 + 1 / hs + y * (2 - 2 / hs) / (hs - 1) + fl[b][1][y][x] / ((hi - 1) / 2)
                ix, iy = ((gx + 1) * wi - 1) / 2, ((gy + 1) * hi - 1) / 2  # align_corners=False
                x0, y0 = math.floor(ix), math.floor(iy)
                taps = [
                    (xx, yy, (1 - abs(ix - xx)) * (1 - abs(iy - yy)))
                    for xx in (x0, x0 + 1)
                    for yy in (y0, y0 + 1)
                    if 0 <= xx < wi and 0 <= yy < hi
                ]
                if sum(w for _, _, w in taps) > 0.999:  # the sampled ones-channel
                    for c in range(cs):
                        out[b, c, y, x] = sum(im[b][c][yy][xx] * w for xx, yy, w in taps)
    return out


# ------------------------------------------------------------------------------------------------
# Inputs


def adacof_inputs(gen, b=2, c=3, h=4, w=5, k=3, d=1, dtype=torch.float64, smooth=False):
    """Padded image, softmax weights and offsets mixing negative fractions, integers and far
    out-of-range values. smooth=True keeps every offset >= 0.2 away from an integer (gradcheck)."""
    pad = (k - 1) * d
    image = torch.rand(b, c, h + pad, w + pad, generator=gen, dtype=dtype)
    weight = torch.softmax(torch.randn(b, k * k, h, w, generator=gen, dtype=dtype), 1)

    def offsets():
        if smooth:
            whole = torch.randint(-4, 4, (b, k * k, h, w), generator=gen).to(dtype)
            far = 10.0 * torch.randint(-1, 2, (b, k * k, h, w), generator=gen).to(dtype)
            return (
                whole
                + far * (torch.rand(b, k * k, h, w, generator=gen, dtype=dtype) < 0.2)
                + 0.2
                + 0.6 * torch.rand(b, k * k, h, w, generator=gen, dtype=dtype)
            )
        o = 2.5 * torch.randn(b, k * k, h, w, generator=gen, dtype=dtype)
        pick = torch.rand(b, k * k, h, w, generator=gen)
        o = torch.where(pick < 0.1, o.round(), o)  # exact integers
        o = torch.where((pick >= 0.1) & (pick < 0.2), 8 * o, o)  # far outside the padded image
        return o

    return image, weight, offsets(), offsets()


def splat_inputs(gen, b=2, c=3, h=6, w=7, dtype=torch.float64):
    image = torch.rand(b, c, h, w, generator=gen, dtype=dtype)
    flow = 2.5 * torch.randn(b, 2, h, w, generator=gen, dtype=dtype)  # some targets leave the frame
    metric = -torch.rand(b, 1, h, w, generator=gen, dtype=dtype) * 3
    return image, flow, metric


# ------------------------------------------------------------------------------------------------
# AdaCoF


@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("dtype", [torch.float64, torch.float32])
@pytest.mark.parametrize("k,d", [(3, 1), (3, 2), (5, 1), (5, 2)])
@pytest.mark.parametrize("c", [3, 4])
def test_adacof_matches_loop_reference(gen, backend, dtype, k, d, c):
    if backend == "cupy" and dtype == torch.float64:
        pytest.skip("the CuPy kernels compute in float32")
    inputs = adacof_inputs(gen, c=c, k=k, d=d, dtype=dtype)
    got = adacof(*(t.to(_device(backend)) for t in inputs), dilation=d, backend=backend)
    assert got.dtype == dtype and got.shape == (2, c, 4, 5)
    want = adacof_loop_ref(*inputs, d)
    tol = 1e-10 if dtype == torch.float64 else (1e-6 if backend == "torch" else 1e-5)
    torch.testing.assert_close(got.cpu().double(), want, rtol=tol, atol=tol)


@pytest.mark.parametrize("case", ["row_chunks", "int64_index"])
def test_adacof_code_paths_match_reference(gen, monkeypatch, case):
    """One-row chunks and int64 index arithmetic (used for huge frames) give the same result."""
    if case == "row_chunks":
        monkeypatch.setitem(adacof_module._CHUNK_ELEMENTS, "cpu", 1)
    else:
        monkeypatch.setattr(adacof_module, "_FLOAT_INDEX_LIMIT", 0)
    for dtype in (torch.float32, torch.float64):
        inputs = adacof_inputs(gen, h=5, w=6, k=5, d=2, dtype=dtype)
        want = adacof_loop_ref(*inputs, 2)
        tol = 1e-10 if dtype == torch.float64 else 1e-6
        torch.testing.assert_close(adacof(*inputs, dilation=2).double(), want, rtol=tol, atol=tol)
        maps = [t.requires_grad_() for t in inputs[1:]]
        grads = torch.autograd.grad(adacof(inputs[0], *maps, dilation=2).sum(), maps)
        for got, ref in zip(grads, adacof_grad_loop_ref(torch.ones(2, 3, 5, 6), *inputs, 2), strict=True):
            torch.testing.assert_close(got.double(), ref, rtol=10 * tol, atol=10 * tol)


def test_adacof_truncates_offsets_toward_zero():
    """alpha = -0.3 extrapolates 1.3*I[p] - 0.3*I[p+1]; floor-based bilinear would interpolate."""
    image = torch.rand(1, 2, 6, 7, dtype=torch.float64)
    ones = torch.ones(1, 1, 6, 7, dtype=torch.float64)
    out = adacof(image, ones, -0.3 * ones, 0 * ones)  # K = 1: tap (0, 0) at the pixel itself
    want = 1.3 * image[:, :, :-1] - 0.3 * image[:, :, 1:]
    torch.testing.assert_close(out[:, :, :-1], want, rtol=0, atol=1e-12)
    torch.testing.assert_close(out[:, :, -1], image[:, :, -1], rtol=0, atol=1e-12)  # both corners clamped
    out = adacof(image, ones, 0 * ones, -1.3 * ones)  # columns: 1.3*I[q-1] - 0.3*I[q]
    torch.testing.assert_close(out[..., 1:], 1.3 * image[..., :-1] - 0.3 * image[..., 1:], rtol=0, atol=1e-12)
    floor_based = 0.7 * image[..., :-2] + 0.3 * image[..., 1:-1]
    assert not torch.allclose(out[..., 1:-1], floor_based)


@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("k,d", [(3, 2), (5, 1)])
def test_adacof_floor_rounding_matches_loop_reference(gen, backend, k, d):
    """rounding="floor": the same formulas with floor instead of truncation, forward and gradients."""
    dtype = torch.float64 if backend == "torch" else torch.float32
    inputs = adacof_inputs(gen, c=3, k=k, d=d, dtype=dtype)
    dev = _device(backend)
    leaves = [t.to(dev).requires_grad_() for t in inputs[1:]]
    got = adacof(inputs[0].to(dev), *leaves, dilation=d, backend=backend, rounding="floor")
    tol = 1e-10 if dtype == torch.float64 else 1e-5
    torch.testing.assert_close(got.cpu().double(), adacof_loop_ref(*inputs, d, math.floor), rtol=tol, atol=tol)
    assert not torch.allclose(got.cpu().double(), adacof_loop_ref(*inputs, d))  # the offsets do go negative
    grad = torch.randn(got.shape, generator=gen, dtype=torch.float64)
    grads = torch.autograd.grad(got, leaves, grad.to(dev, dtype))
    for g, ref in zip(grads, adacof_grad_loop_ref(grad, *inputs, d, math.floor), strict=True):
        torch.testing.assert_close(g.cpu().double(), ref, rtol=10 * tol, atol=10 * tol)


@pytest.mark.parametrize("k,d", [(3, 2), (5, 1)])
@pytest.mark.parametrize("dtype", [torch.float64, torch.float32])
def test_adacof_floor_inference_path_matches_loop_reference(gen, k, d, dtype):
    """Without autograd, floor rounding runs one grid_sample per tap: the same function, border included."""
    inputs = adacof_inputs(gen, c=3, k=k, d=d, dtype=dtype)
    inputs[2][0, 0, :2] = 1e3  # far outside the image: clamped to the border like the corner indices
    inputs[3][-1, -1, -2:] = -1e3
    with torch.no_grad():
        got = adacof(*inputs, dilation=d, rounding="floor")
    tol = 1e-10 if dtype == torch.float64 else 1e-5
    ref = adacof_loop_ref(*(t.double() for t in inputs), d, math.floor)
    torch.testing.assert_close(got.double(), ref, rtol=tol, atol=tol)


def test_adacof_floor_rounding_is_bilinear_sampling():
    """With floor, a tap at a fractional position interpolates its two neighbours (grid_sample's bilinear)."""
    image = torch.rand(1, 2, 6, 7, dtype=torch.float64)
    ones = torch.ones(1, 1, 6, 7, dtype=torch.float64)
    out = adacof(image, ones, -0.3 * ones, 0 * ones, rounding="floor")
    torch.testing.assert_close(out[:, :, 1:], 0.3 * image[:, :, :-1] + 0.7 * image[:, :, 1:], rtol=0, atol=1e-12)
    y, x = torch.meshgrid(torch.arange(6.0, dtype=torch.float64), torch.arange(7.0, dtype=torch.float64), indexing="ij")
    fy, fx = torch.rand(2, 6, 7, dtype=torch.float64) * 4 - 2
    grid = torch.stack([(x + fx) / 6 * 2 - 1, (y + fy) / 5 * 2 - 1], dim=-1)[None]
    want = F.grid_sample(image, grid, mode="bilinear", padding_mode="border", align_corners=True)
    got = adacof(image, ones, fy[None, None], fx[None, None], rounding="floor")
    torch.testing.assert_close(got, want, rtol=0, atol=1e-12)
    with pytest.raises(ValueError, match="rounding"):
        adacof(image, ones, ones, ones, rounding="round")


@pytest.mark.parametrize("k,d,c", [(3, 2, 3), (5, 1, 4)])
def test_adacof_gradients_match_spec_formulas(gen, k, d, c):
    image, weight, alpha, beta = adacof_inputs(gen, c=c, k=k, d=d)
    image.requires_grad_()
    leaves = [t.requires_grad_() for t in (weight, alpha, beta)]
    grad = torch.randn(2, c, 4, 5, generator=gen, dtype=torch.float64)
    adacof(image, *leaves, dilation=d).backward(grad)
    for leaf, ref in zip(leaves, adacof_grad_loop_ref(grad, image, weight, alpha, beta, d), strict=True):
        torch.testing.assert_close(leaf.grad, ref, rtol=1e-10, atol=1e-10)
    assert image.grad is None  # no gradient to the image, as upstream


@pytest.mark.parametrize("k,d,b,fast", [(3, 2, 2, True), (5, 1, 2, True), (3, 2, 1, False)])
def test_adacof_gradcheck(gen, k, d, b, fast):
    # full (slow-mode) Jacobians only on the smallest case to keep the suite quick
    image, weight, alpha, beta = adacof_inputs(
        gen, b=b, h=2 if not fast else 3, w=3 if not fast else 4, k=k, d=d, smooth=True
    )
    leaves = tuple(t.requires_grad_() for t in (weight, alpha, beta))
    assert torch.autograd.gradcheck(lambda *maps: adacof(image, *maps, dilation=d), leaves, fast_mode=fast)


def test_adacof_saves_only_inputs_and_skips_graph_in_inference(gen):
    image, *maps = adacof_inputs(gen, k=5, d=1, dtype=torch.float32)
    maps = [m.requires_grad_() for m in maps]
    out = adacof(image, *maps)
    saved = out.grad_fn.saved_tensors
    assert len(saved) == 4 and [s.shape for s in saved] == [image.shape] + [m.shape for m in maps]
    with torch.no_grad():
        assert adacof(image, *maps).grad_fn is None
    with torch.inference_mode():
        torch.testing.assert_close(adacof(image, *maps), out.detach(), rtol=0, atol=0)


def test_adacof_channels_last_and_shape_errors(gen):
    inputs = adacof_inputs(gen, c=4, k=3, d=2, dtype=torch.float32)
    want = adacof(*inputs, dilation=2)
    got = adacof(*(t.to(memory_format=torch.channels_last) for t in inputs), dilation=2)
    torch.testing.assert_close(got, want, rtol=0, atol=0)
    image, weight, alpha, beta = inputs
    with pytest.raises(ValueError, match="not K\\*K"):
        adacof(image, weight[:, :8], alpha[:, :8], beta[:, :8], dilation=2)
    with pytest.raises(ValueError, match="does not fit"):
        adacof(image, weight, alpha, beta, dilation=1)
    with pytest.raises(ValueError, match="dilation"):
        adacof(image, weight, alpha, beta, dilation=0)


# ------------------------------------------------------------------------------------------------
# Softmax splatting


@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("dtype", [torch.float64, torch.float32])
@pytest.mark.parametrize("c", [3, 4])
def test_softsplat_matches_loop_reference(gen, backend, dtype, c):
    if backend == "cupy" and dtype == torch.float64:
        pytest.skip("the CuPy kernels compute in float32")
    image, flow, metric = splat_inputs(gen, c=c, dtype=dtype)
    got = softsplat(*(t.to(_device(backend)) for t in (image, flow, metric)), backend=backend)
    assert got.dtype == dtype
    tol = 1e-10 if dtype == torch.float64 else 1e-5
    want = softsplat_loop_ref(image, flow, metric)
    torch.testing.assert_close(got.cpu().double(), want, rtol=tol, atol=tol)
    # the summation splatting primitive on its own
    sums = softsplat_module._sumsplat(image.to(_device(backend)), flow.to(_device(backend)), backend)
    torch.testing.assert_close(sums.cpu().double(), sumsplat_loop_ref(image, flow), rtol=tol, atol=tol)


def test_softsplat_holes_stay_zero_and_zero_flow_is_identity(gen):
    image, _, metric = splat_inputs(gen, dtype=torch.float32)
    flow = torch.zeros(2, 2, 6, 7)
    torch.testing.assert_close(softsplat(image, flow, metric), image, rtol=1e-6, atol=1e-6)
    flow[:, 0] = 3.5  # everything moves right: columns 0..2 receive nothing
    out = softsplat(image, flow, metric)
    assert torch.equal(out[..., :3], torch.zeros_like(out[..., :3]))
    assert torch.isfinite(out).all() and (out[..., 3:] > 0).all()
    flow[:, 0] = 100.0  # everything leaves the frame
    assert torch.equal(softsplat(image, flow, metric), torch.zeros_like(image))


def test_softsplat_gradcheck(gen):
    image, flow, metric = splat_inputs(gen, h=3, w=4)
    leaves = tuple(t.requires_grad_() for t in (image, flow, metric))
    assert torch.autograd.gradcheck(softsplat, leaves)


# ------------------------------------------------------------------------------------------------
# Correlation and backward warping


@pytest.mark.parametrize("backend", BACKENDS)
def test_correlation_matches_loop_reference(gen, backend):
    f1, f2 = (torch.randn(2, 5, 6, 7, generator=gen, dtype=torch.float32) for _ in range(2))
    got = correlation(f1.to(_device(backend)), f2.to(_device(backend)), backend=backend)
    assert got.shape == (2, 81, 6, 7) and got.dtype == torch.float32
    torch.testing.assert_close(got.cpu().double(), correlation_loop_ref(f1, f2), rtol=1e-5, atol=1e-6)


def test_correlation_gradcheck(gen):
    f1, f2 = (torch.randn(1, 3, 5, 6, generator=gen, dtype=torch.float64).requires_grad_() for _ in range(2))
    assert torch.autograd.gradcheck(correlation, (f1, f2), fast_mode=True)


@pytest.mark.parametrize("image_size", [(6, 7), (8, 5)])
def test_backwarp_matches_loop_reference(gen, image_size):
    image = torch.rand(2, 3, *image_size, generator=gen, dtype=torch.float64)
    flow = 1.5 * torch.randn(2, 2, 6, 7, generator=gen, dtype=torch.float64)
    got = backwarp(image, flow)
    want = backwarp_loop_ref(image, flow)
    torch.testing.assert_close(got, want, rtol=1e-10, atol=1e-10)
    assert (want == 0).any() and (want != 0).any()  # the mask did zero some pixels


def test_backwarp_identity_and_outside_mask(gen):
    image = torch.rand(1, 3, 6, 7, generator=gen)
    torch.testing.assert_close(backwarp(image, torch.zeros(1, 2, 6, 7)), image, rtol=1e-5, atol=1e-5)
    flow = torch.zeros(1, 2, 6, 7)
    flow[:, 0] = -0.5  # samples straddle the left border in column 0 only
    out = backwarp(image, flow)
    assert torch.equal(out[..., 0], torch.zeros_like(out[..., 0])) and (out[..., 1:] > 0).all()


# ------------------------------------------------------------------------------------------------
# dtypes and backends


def _all_ops(gen, dtype):
    """(name, fn, inputs) of every op on small CPU inputs."""
    ad = adacof_inputs(gen, k=5, d=1, dtype=dtype)
    sp = splat_inputs(gen, dtype=dtype)
    co = tuple(torch.randn(2, 8, 6, 7, generator=gen).to(dtype) for _ in range(2))
    bw = (
        torch.rand(2, 3, 6, 7, generator=gen).to(dtype),
        1.5 * torch.randn(2, 2, 6, 7, generator=gen).to(dtype),
    )
    return [
        ("adacof", adacof, ad),
        ("softsplat", softsplat, sp),
        ("correlation", correlation, co),
        ("backwarp", backwarp, bw),
    ]


@pytest.mark.parametrize("dtype", [torch.float16, torch.bfloat16])
def test_half_inputs_keep_dtype_and_match_fp32(gen, dtype):
    for name, fn, inputs in _all_ops(gen, dtype):
        got = fn(*inputs)
        assert got.dtype == dtype, name
        want = fn(*(t.float() for t in inputs))  # same (rounded) values, full precision
        torch.testing.assert_close(got.float(), want, rtol=1e-2, atol=1e-2, msg=name)


def test_backend_cupy_unavailable_raises(gen, monkeypatch):
    monkeypatch.setattr(_cupy, "cupy", None)
    ops = _all_ops(gen, torch.float32)[:3]  # backwarp has no backend argument
    assert available_backends() == ["torch"]
    for _name, fn, inputs in ops:
        with pytest.raises(BackendUnavailable, match=r"vfi-mini\[cuda12\]"):
            fn(*inputs, backend="cupy")
        with pytest.raises(ValueError, match="unknown backend"):
            fn(*inputs, backend="triton")
        fn(*inputs, backend="torch")
        fn(*inputs, backend="auto")


def test_backend_cupy_needs_cuda_tensors(gen, monkeypatch):
    monkeypatch.setattr(_cupy, "cupy", object())  # "installed", but the tensors are on the CPU
    for _name, fn, inputs in _all_ops(gen, torch.float32)[:3]:
        with pytest.raises(BackendUnavailable, match="CUDA tensors"):
            fn(*inputs, backend="cupy")


def test_self_check_failure_warns_once_and_falls_back(monkeypatch, caplog):
    monkeypatch.setattr(_cupy, "_verdicts", {})
    calls = []

    def bad_probe(device):
        calls.append(device)
        return [torch.zeros(3)], [torch.ones(3)]

    def broken_probe(device):
        raise RuntimeError("nvrtc: error: identifier undefined")

    with caplog.at_level(logging.WARNING, logger=_cupy.__name__):
        assert not _cupy.self_check("fake", torch.device("cpu"), bad_probe)
        assert not _cupy.self_check("fake", torch.device("cpu"), bad_probe)
        assert not _cupy.self_check("broken", torch.device("cpu"), broken_probe)
        assert _cupy.self_check("good", torch.device("cpu"), lambda dev: ([torch.ones(3)], [torch.ones(3)]))
    assert len(calls) == 1
    messages = [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING]
    assert len(messages) == 2 and "fake" in messages[0] and "nvrtc" in messages[1]
    # "auto" never probes on CPU tensors
    assert not _cupy.use_cupy("auto", "fake2", torch.device("cpu"), torch.float32, bad_probe)
    assert len(calls) == 1


# ------------------------------------------------------------------------------------------------
# CUDA: the PyTorch path on the GPU and the CuPy kernels agree with the CPU reference path.


def _to_cuda_leaves(tensors, dtype):
    return [t.to("cuda", dtype).requires_grad_() for t in tensors]


@pytest.mark.gpu
@requires_cuda
def test_torch_path_on_cuda_matches_cpu(gen):
    for name, fn, inputs in _all_ops(gen, torch.float32):
        torch.testing.assert_close(fn(*(t.cuda() for t in inputs)).cpu(), fn(*inputs), rtol=1e-5, atol=1e-5, msg=name)


@pytest.mark.gpu
@requires_cupy
@pytest.mark.parametrize("op", ["adacof", "softsplat", "correlation"])
def test_cupy_self_check_passes(op):
    module = {"adacof": adacof_module, "softsplat": softsplat_module, "correlation": correlation_module}[op]
    _cupy._verdicts.pop((op, "cuda:0"), None)
    assert _cupy.self_check(op, torch.device("cuda", 0), module._probe)


@pytest.mark.gpu
@requires_cupy
@pytest.mark.parametrize("dtype", [torch.float32, torch.float16])
@pytest.mark.parametrize("op", ["adacof", "softsplat", "correlation"])
def test_cupy_matches_torch_forward_and_backward(gen, dtype, op):
    name, fn, inputs = {n: (n, f, i) for n, f, i in _all_ops(gen, torch.float32)}[op]
    if op == "adacof":
        inputs = adacof_inputs(gen, b=2, c=3, h=37, w=45, k=5, d=1, dtype=torch.float32)
    tol = 1e-4 if dtype == torch.float32 else 2e-3
    results = []
    for backend in ("cupy", "torch"):
        leaves = _to_cuda_leaves(inputs, dtype)
        if op == "adacof":
            leaves[0].requires_grad_(False)
        out = fn(*leaves, backend=backend)
        assert out.dtype == dtype
        grad = 1 + (torch.arange(out.numel(), device="cuda") % 7).view(out.shape).to(dtype)
        wrt = [t for t in leaves if t.requires_grad]
        results.append([out, *torch.autograd.grad(out, wrt, grad)])
    for got, want in zip(*results, strict=True):
        torch.testing.assert_close(got.float(), want.float(), rtol=tol, atol=tol, msg=op)


@pytest.mark.gpu
@requires_cupy
def test_cupy_adacof_large_frame_matches_torch():
    """Multi-block grids and 64-bit offsets on a realistic size (x2 scale of a padded 480p frame)."""
    g = torch.Generator(device="cuda").manual_seed(0)
    image = torch.rand(1, 3, 1028, 1796, device="cuda", generator=g)
    weight = torch.softmax(torch.randn(1, 25, 1024, 1792, device="cuda", generator=g), 1)
    alpha, beta = (3 * torch.randn(1, 25, 1024, 1792, device="cuda", generator=g) for _ in range(2))
    torch.testing.assert_close(
        adacof(image, weight, alpha, beta, backend="cupy"),
        adacof(image, weight, alpha, beta, backend="torch"),
        rtol=1e-4,
        atol=1e-4,
    )
