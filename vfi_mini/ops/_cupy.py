"""Optional CuPy CUDA kernels for the custom operators, plus backend selection and the self-check.

The kernels hold only the minimal primitives (AdaCoF, summation splatting, correlation); dtype
handling, softmax normalisation and padding stay in the shared PyTorch code of each op module. Every
kernel works on contiguous float32 CUDA tensors; the op modules cast float16/bfloat16 to float32
around the call. Kernels run on PyTorch's current CUDA stream, so they are ordered with the
surrounding PyTorch work without extra synchronisation.

CuPy is detected once, at import. With ``backend="auto"`` a kernel is used only after it has passed
a self-check against the PyTorch implementation on the same device (forward and backward, small
random input); a kernel that fails to compile or disagrees is reported once through ``logging`` and
the PyTorch path is used from then on.
"""

from __future__ import annotations

import functools
import logging
import math
import warnings
from collections.abc import Callable, Sequence

import numpy as np
import torch
from torch.autograd.function import once_differentiable

from ..errors import BackendUnavailable

try:
    import cupy
except Exception:  # noqa: BLE001 - a missing or broken optional GPU stack must never break CPU use.
    cupy = None

logger = logging.getLogger(__name__)

BACKENDS = ("auto", "torch", "cupy")
_INSTALL_HINT = "install vfi-mini[cuda12] (or vfi-mini[cuda13])"

# Interpolation kernels in the style of the upstream CuPy modules (sniklaus/softmax-splatting,
# HyeongminLEE/AdaCoF-pytorch), written with explicit size arguments instead of per-shape string
# substitution so that one compiled module serves every shape. Offsets are 64-bit wherever a tensor
# index can exceed 2^31.
_SOURCE = r"""
__device__ __forceinline__ int clampi(const int v, const int lo, const int hi) {
    return min(max(v, lo), hi);
}

// Integer part of offsets: truncation toward zero (upstream AdaCoF) or floor (true bilinear sampling).
__device__ __forceinline__ float whole_part(const float v, const int floor_mode) {
    return floor_mode ? floorf(v) : truncf(v);
}

// Integer part of row/column position base + trunc(offset), limited to [-1, size] so that the
// float -> int conversion cannot overflow; the limit does not change the clamped corner indices.
__device__ __forceinline__ int tap_position(const int base, const float whole, const int size) {
    return (int)fminf(fmaxf((float)base + whole, -1.0f), (float)size);
}

// out[b, c, i, j] = sum_t W_t * bilinear(I, i + k*D + alpha_t, j + l*D + beta_t), with the offsets
// truncated toward zero (so negative fractions extrapolate; F = 1: floored) and each corner clamped
// separately.
extern "C" __global__ void adacof_forward(
    const long long n,                  // B * C * H * W
    const float* __restrict__ input,    // (B, C, Hp, Wp), already padded
    const float* __restrict__ weight,   // (B, K*K, H, W)
    const float* __restrict__ alpha,    // (B, K*K, H, W), vertical offsets
    const float* __restrict__ beta,     // (B, K*K, H, W), horizontal offsets
    float* __restrict__ output,         // (B, C, H, W)
    const int C, const int H, const int W, const int Hp, const int Wp, const int K, const int D,
    const int F
) {
    const long long hw = (long long)H * W;
    const long long plane = (long long)Hp * Wp;
    for (long long idx = (long long)blockIdx.x * blockDim.x + threadIdx.x; idx < n;
         idx += (long long)blockDim.x * gridDim.x) {
        const int j = (int)(idx % W);
        const int i = (int)((idx / W) % H);
        const long long bc = idx / hw;  // b * C + c
        const long long b = bc / C;
        const float* img = input + bc * plane;
        const long long m0 = b * K * K * hw + (long long)i * W + j;
        float acc = 0.0f;
        for (int k = 0; k < K; ++k) {
            for (int l = 0; l < K; ++l) {
                const long long m = m0 + (long long)(k * K + l) * hw;
                const float al = alpha[m], be = beta[m];
                const float wa = whole_part(al, F), wb = whole_part(be, F);
                const float fa = al - wa, fb = be - wb;
                const int y = tap_position(i + k * D, wa, Hp), x = tap_position(j + l * D, wb, Wp);
                const long long y0 = clampi(y, 0, Hp - 1) * (long long)Wp;
                const long long y1 = clampi(y + 1, 0, Hp - 1) * (long long)Wp;
                const int x0 = clampi(x, 0, Wp - 1), x1 = clampi(x + 1, 0, Wp - 1);
                acc += weight[m] * ((1.0f - fa) * (1.0f - fb) * img[y0 + x0] + fa * (1.0f - fb) * img[y1 + x0]
                                    + (1.0f - fa) * fb * img[y0 + x1] + fa * fb * img[y1 + x1]);
            }
        }
        output[idx] = acc;
    }
}

// Gradients of adacof_forward w.r.t. weight, alpha and beta (the image gets none, as upstream).
// One thread per (b, t, i, j); unlike upstream (hard-coded c < 3) it sums over all C channels.
extern "C" __global__ void adacof_backward(
    const long long n,                      // B * K*K * H * W
    const float* __restrict__ grad_output,  // (B, C, H, W)
    const float* __restrict__ input,        // (B, C, Hp, Wp)
    const float* __restrict__ weight,       // (B, K*K, H, W)
    const float* __restrict__ alpha,
    const float* __restrict__ beta,
    float* __restrict__ grad_weight,        // (B, K*K, H, W)
    float* __restrict__ grad_alpha,
    float* __restrict__ grad_beta,
    const int C, const int H, const int W, const int Hp, const int Wp, const int K, const int D,
    const int F
) {
    const long long hw = (long long)H * W;
    const long long plane = (long long)Hp * Wp;
    for (long long idx = (long long)blockIdx.x * blockDim.x + threadIdx.x; idx < n;
         idx += (long long)blockDim.x * gridDim.x) {
        const int j = (int)(idx % W);
        const int i = (int)((idx / W) % H);
        const int t = (int)((idx / hw) % (K * K));
        const long long b = idx / (hw * K * K);
        const int k = t / K, l = t % K;
        const float al = alpha[idx], be = beta[idx];
        const float wa = whole_part(al, F), wb = whole_part(be, F);
        const float fa = al - wa, fb = be - wb;
        const int y = tap_position(i + k * D, wa, Hp), x = tap_position(j + l * D, wb, Wp);
        const long long y0 = clampi(y, 0, Hp - 1) * (long long)Wp;
        const long long y1 = clampi(y + 1, 0, Hp - 1) * (long long)Wp;
        const int x0 = clampi(x, 0, Wp - 1), x1 = clampi(x + 1, 0, Wp - 1);
        float gw = 0.0f, ga = 0.0f, gb = 0.0f;
        for (int c = 0; c < C; ++c) {
            const float* img = input + (b * C + c) * plane;
            const float g = grad_output[(b * C + c) * hw + (long long)i * W + j];
            const float v00 = img[y0 + x0], v10 = img[y1 + x0], v01 = img[y0 + x1], v11 = img[y1 + x1];
            gw += g * ((1.0f - fa) * (1.0f - fb) * v00 + fa * (1.0f - fb) * v10
                       + (1.0f - fa) * fb * v01 + fa * fb * v11);
            ga += g * ((1.0f - fb) * (v10 - v00) + fb * (v11 - v01));
            gb += g * ((1.0f - fa) * (v01 - v00) + fa * (v11 - v10));
        }
        const float w = weight[idx];
        grad_weight[idx] = gw;
        grad_alpha[idx] = w * ga;
        grad_beta[idx] = w * gb;
    }
}

// Position of a source pixel after forward warping. False when no bilinear neighbour can be
// inside the frame; this also rejects NaN/inf and keeps the float -> int conversion in range.
__device__ __forceinline__ bool splat_target(
    const float* flow, const long long b, const long long hw, const int y, const int x,
    const int H, const int W, float& tx, float& ty
) {
    const long long p = (long long)y * W + x;
    tx = (float)x + flow[(2 * b) * hw + p];
    ty = (float)y + flow[(2 * b + 1) * hw + p];
    return tx > -2.0f && tx < (float)W + 1.0f && ty > -2.0f && ty < (float)H + 1.0f;
}

// Summation splatting: each source value is added to the 4 floor-based bilinear neighbours of its
// target; neighbours outside the frame are dropped. Atomic adds: the sum order is not deterministic.
extern "C" __global__ void sumsplat_forward(
    const long long n,                 // B * C * H * W
    const float* __restrict__ input,   // (B, C, H, W)
    const float* __restrict__ flow,    // (B, 2, H, W), (x, y) in pixels
    float* __restrict__ output,        // (B, C, H, W), zero-initialised
    const int C, const int H, const int W
) {
    const long long hw = (long long)H * W;
    for (long long idx = (long long)blockIdx.x * blockDim.x + threadIdx.x; idx < n;
         idx += (long long)blockDim.x * gridDim.x) {
        const int x = (int)(idx % W);
        const int y = (int)((idx / W) % H);
        const long long bc = idx / hw;
        float tx, ty;
        if (!splat_target(flow, bc / C, hw, y, x, H, W, tx, ty)) continue;
        const int x0 = (int)floorf(tx), y0 = (int)floorf(ty);
        const int x1 = x0 + 1, y1 = y0 + 1;
        const float v = input[idx];
        float* out = output + bc * hw;
        const bool in_x0 = x0 >= 0 && x0 < W, in_x1 = x1 >= 0 && x1 < W;
        const bool in_y0 = y0 >= 0 && y0 < H, in_y1 = y1 >= 0 && y1 < H;
        const long long r0 = (long long)y0 * W, r1 = (long long)y1 * W;
        if (in_x0 && in_y0) atomicAdd(out + r0 + x0, v * (((float)x1 - tx) * ((float)y1 - ty)));
        if (in_x1 && in_y0) atomicAdd(out + r0 + x1, v * ((tx - (float)x0) * ((float)y1 - ty)));
        if (in_x0 && in_y1) atomicAdd(out + r1 + x0, v * (((float)x1 - tx) * (ty - (float)y0)));
        if (in_x1 && in_y1) atomicAdd(out + r1 + x1, v * ((tx - (float)x0) * (ty - (float)y0)));
    }
}

// d(sum splat)/d(input): gather the output gradient at the 4 neighbours with the same weights.
extern "C" __global__ void sumsplat_backward_input(
    const long long n,                      // B * C * H * W
    const float* __restrict__ grad_output,  // (B, C, H, W)
    const float* __restrict__ flow,         // (B, 2, H, W)
    float* __restrict__ grad_input,         // (B, C, H, W)
    const int C, const int H, const int W
) {
    const long long hw = (long long)H * W;
    for (long long idx = (long long)blockIdx.x * blockDim.x + threadIdx.x; idx < n;
         idx += (long long)blockDim.x * gridDim.x) {
        const int x = (int)(idx % W);
        const int y = (int)((idx / W) % H);
        const long long bc = idx / hw;
        float tx, ty;
        float acc = 0.0f;
        if (splat_target(flow, bc / C, hw, y, x, H, W, tx, ty)) {
            const int x0 = (int)floorf(tx), y0 = (int)floorf(ty);
            const int x1 = x0 + 1, y1 = y0 + 1;
            const float* g = grad_output + bc * hw;
            const bool in_x0 = x0 >= 0 && x0 < W, in_x1 = x1 >= 0 && x1 < W;
            const bool in_y0 = y0 >= 0 && y0 < H, in_y1 = y1 >= 0 && y1 < H;
            if (in_x0 && in_y0) acc += g[(long long)y0 * W + x0] * (((float)x1 - tx) * ((float)y1 - ty));
            if (in_x1 && in_y0) acc += g[(long long)y0 * W + x1] * ((tx - (float)x0) * ((float)y1 - ty));
            if (in_x0 && in_y1) acc += g[(long long)y1 * W + x0] * (((float)x1 - tx) * (ty - (float)y0));
            if (in_x1 && in_y1) acc += g[(long long)y1 * W + x1] * ((tx - (float)x0) * (ty - (float)y0));
        }
        grad_input[idx] = acc;
    }
}

// d(sum splat)/d(flow), one thread per source pixel (both flow channels), floor held constant.
extern "C" __global__ void sumsplat_backward_flow(
    const long long n,                      // B * H * W
    const float* __restrict__ grad_output,  // (B, C, H, W)
    const float* __restrict__ input,        // (B, C, H, W)
    const float* __restrict__ flow,         // (B, 2, H, W)
    float* __restrict__ grad_flow,          // (B, 2, H, W)
    const int C, const int H, const int W
) {
    const long long hw = (long long)H * W;
    for (long long idx = (long long)blockIdx.x * blockDim.x + threadIdx.x; idx < n;
         idx += (long long)blockDim.x * gridDim.x) {
        const int x = (int)(idx % W);
        const int y = (int)((idx / W) % H);
        const long long b = idx / hw;
        const long long p = (long long)y * W + x;
        float tx, ty;
        float gx = 0.0f, gy = 0.0f;
        if (splat_target(flow, b, hw, y, x, H, W, tx, ty)) {
            const int x0 = (int)floorf(tx), y0 = (int)floorf(ty);
            const int x1 = x0 + 1, y1 = y0 + 1;
            const float ex = (float)x1 - tx, wx = tx - (float)x0;  // west / east x-factors
            const float ny = (float)y1 - ty, sy = ty - (float)y0;  // north / south y-factors
            const bool in_x0 = x0 >= 0 && x0 < W, in_x1 = x1 >= 0 && x1 < W;
            const bool in_y0 = y0 >= 0 && y0 < H, in_y1 = y1 >= 0 && y1 < H;
            const long long r0 = (long long)y0 * W, r1 = (long long)y1 * W;
            for (int c = 0; c < C; ++c) {
                const float v = input[(b * C + c) * hw + p];
                const float* g = grad_output + (b * C + c) * hw;
                if (in_x0 && in_y0) { const float q = v * g[r0 + x0]; gx -= ny * q; gy -= ex * q; }
                if (in_x1 && in_y0) { const float q = v * g[r0 + x1]; gx += ny * q; gy -= wx * q; }
                if (in_x0 && in_y1) { const float q = v * g[r1 + x0]; gx -= sy * q; gy += ex * q; }
                if (in_x1 && in_y1) { const float q = v * g[r1 + x1]; gx += sy * q; gy += wx * q; }
            }
        }
        grad_flow[(2 * b) * hw + p] = gx;
        grad_flow[(2 * b + 1) * hw + p] = gy;
    }
}

// PWC-Net cost volume: out[b, (dy+4)*9 + (dx+4), y, x] = mean_c f1[b,c,y,x] * f2[b,c,y+dy,x+dx],
// with f2 zero outside the frame.
extern "C" __global__ void correlation_forward(
    const long long n,               // B * 81 * H * W
    const float* __restrict__ f1,    // (B, C, H, W)
    const float* __restrict__ f2,    // (B, C, H, W)
    float* __restrict__ output,      // (B, 81, H, W)
    const int C, const int H, const int W
) {
    const long long hw = (long long)H * W;
    for (long long idx = (long long)blockIdx.x * blockDim.x + threadIdx.x; idx < n;
         idx += (long long)blockDim.x * gridDim.x) {
        const int x = (int)(idx % W);
        const int y = (int)((idx / W) % H);
        const int d = (int)((idx / hw) % 81);
        const long long b = idx / (hw * 81);
        const int yy = y + d / 9 - 4, xx = x + d % 9 - 4;
        float acc = 0.0f;
        if (yy >= 0 && yy < H && xx >= 0 && xx < W) {
            const float* p1 = f1 + b * C * hw + (long long)y * W + x;
            const float* p2 = f2 + b * C * hw + (long long)yy * W + xx;
            for (int c = 0; c < C; ++c) acc += p1[c * hw] * p2[c * hw];
        }
        output[idx] = acc / (float)C;
    }
}
"""

_BLOCK = 256
_MAX_GRID = 65535 * 32  # grid-stride loops make any cap safe
_modules: dict[int, object] = {}  # device index -> cupy.RawModule
_functions: dict[tuple[int, str], object] = {}
_streams: dict[tuple[int, int], object] = {}  # (device index, cudaStream_t) -> cupy ExternalStream
_verdicts: dict[tuple[str, str], bool] = {}  # (op, device) -> self-check passed


def is_available() -> bool:
    """CuPy is importable and PyTorch sees a CUDA device."""
    return cupy is not None and torch.cuda.is_available()


def _kernel(name: str, device_index: int):
    key = (device_index, name)
    if key not in _functions:
        with cupy.cuda.Device(device_index):
            if device_index not in _modules:
                _modules[device_index] = cupy.RawModule(code=_SOURCE)
            _functions[key] = _modules[device_index].get_function(name)
    return _functions[key]


def _launch(name: str, n: int, *args: torch.Tensor | int) -> None:
    """Run kernel `name` with `n` logical threads; tensors become pointers, ints become int32."""
    if n == 0:
        return
    tensors = [a for a in args if isinstance(a, torch.Tensor)]
    device = tensors[0].device
    for t in tensors:
        # Internal invariant (the op modules prepare the tensors), not user input.
        if not (t.is_cuda and t.dtype == torch.float32 and t.is_contiguous() and t.device == device):
            raise RuntimeError(f"{name}: kernel arguments must be contiguous float32 tensors on {device}")
    params = [np.int64(n)]
    params += [np.uint64(a.data_ptr()) if isinstance(a, torch.Tensor) else np.int32(a) for a in args]
    grid = min(math.ceil(n / _BLOCK), _MAX_GRID)
    # The launch goes to CuPy's current stream (RawKernel.__call__ has no stream argument in CuPy
    # 14), which is made PyTorch's current stream here.
    with cupy.cuda.Device(device.index), _torch_stream(device):
        _kernel(name, device.index)((grid,), (_BLOCK,), tuple(params))


def _torch_stream(device: torch.device):
    """PyTorch's current stream on `device` as a CuPy stream (cached per stream handle)."""
    ptr = torch.cuda.current_stream(device).cuda_stream
    key = (device.index, ptr)
    if key not in _streams:
        with warnings.catch_warnings():
            # Deprecated in CuPy 14 in favour of Stream.from_external, which CuPy 13 lacks.
            warnings.simplefilter("ignore", DeprecationWarning)
            _streams[key] = cupy.cuda.ExternalStream(ptr)
    return _streams[key]


# A probe returns (outputs of the CuPy path, outputs of the PyTorch path), compared pairwise.
Probe = tuple[Sequence[torch.Tensor], Sequence[torch.Tensor]]


def compute_dtypes(*tensors: torch.Tensor) -> tuple[torch.dtype, torch.dtype]:
    """(result dtype, dtype to compute in) for an op's inputs: half types compute in float32 and are
    cast back; float64 stays float64 (gradcheck)."""
    out = functools.reduce(torch.promote_types, (t.dtype for t in tensors))
    if not out.is_floating_point:
        raise TypeError(f"expected floating-point tensors, got {out}")
    return out, (torch.float64 if out == torch.float64 else torch.float32)


def use_cupy(
    backend: str, op: str, device: torch.device, dtype: torch.dtype, probe: Callable[[torch.device], Probe]
) -> bool:
    """Decide whether an op call runs the CuPy kernel.

    Args:
        backend: "auto", "torch" or "cupy".
        op: operator name, for messages and the self-check cache.
        device: device of the op's tensors.
        dtype: dtype the op computes in; "auto" keeps float64 on the PyTorch path (the kernels are
            float32-only, an explicit "cupy" computes float64 inputs in float32).
        probe: runs the op's CuPy and PyTorch paths on a small random input (see `self_check`).

    Returns:
        True to use the CuPy kernel, False for the PyTorch implementation.

    Raises:
        ValueError: unknown backend name.
        BackendUnavailable: backend "cupy" requested without CuPy or on non-CUDA tensors.
    """
    if backend == "torch":
        return False
    if backend == "cupy":
        if cupy is None:
            raise BackendUnavailable(f"{op}: backend 'cupy' requested but CuPy is not installed; {_INSTALL_HINT}")
        if device.type != "cuda":
            raise BackendUnavailable(f"{op}: backend 'cupy' needs CUDA tensors, got tensors on {device}")
        return True
    if backend != "auto":
        raise ValueError(f"{op}: unknown backend {backend!r}; expected one of {', '.join(BACKENDS)}")
    return cupy is not None and device.type == "cuda" and dtype == torch.float32 and self_check(op, device, probe)


def self_check(op: str, device: torch.device, probe: Callable[[torch.device], Probe]) -> bool:
    """Run `probe` once per (op, device) and remember whether the CuPy kernel agrees with PyTorch.

    A kernel that fails to compile, raises, or disagrees beyond float32 round-off is reported with one
    warning; the caller then falls back to the PyTorch implementation for the rest of the process.
    """
    device = torch.device(device)
    if device.type == "cuda" and device.index is None:
        device = torch.device("cuda", torch.cuda.current_device())
    key = (op, str(device))
    if key in _verdicts:
        return _verdicts[key]
    try:
        # The probe builds its own graph even when the caller runs under inference_mode/no_grad.
        with torch.inference_mode(False), torch.enable_grad():
            got, want = probe(device)
        pairs = [(g.float(), w.float()) for g, w in zip(got, want, strict=True)]
        errors = [(g - w).abs().max().item() for g, w in pairs]
        ok = all(torch.allclose(g, w, rtol=1e-4, atol=1e-4) for g, w in pairs)
        reason = f"max abs difference {max(errors, default=0.0):.3g} to the PyTorch implementation"
    except Exception as exc:  # noqa: BLE001 - compile/driver errors come in many types; all mean "fall back".
        ok, reason = False, f"{type(exc).__name__}: {exc}"
    if not ok:
        logger.warning(
            "CuPy %s kernel failed its self-check on %s (%s); using the PyTorch implementation",
            op,
            device,
            reason,
        )
    _verdicts[key] = ok
    return ok


# --------------------------------------------------------------------------------------------------
# autograd wrappers. Inputs: contiguous float32 CUDA tensors (prepared by the op modules).


class _AdaCoF(torch.autograd.Function):
    @staticmethod
    def forward(ctx, image, weight, alpha, beta, dilation: int, floor: bool = False):
        b, c, hp, wp = image.shape
        kk, h, w = weight.shape[1:]
        k = math.isqrt(kk)
        out = image.new_empty(b, c, h, w)
        _launch(
            "adacof_forward", out.numel(), image, weight, alpha, beta, out, c, h, w, hp, wp, k, dilation, int(floor)
        )
        ctx.save_for_backward(image, weight, alpha, beta)
        ctx.dilation, ctx.floor = dilation, floor
        return out

    @staticmethod
    @once_differentiable
    def backward(ctx, grad_out):
        image, weight, alpha, beta = ctx.saved_tensors
        b, c, hp, wp = image.shape
        kk, h, w = weight.shape[1:]
        grad_w, grad_a, grad_b = (torch.empty_like(weight) for _ in range(3))
        _launch(
            "adacof_backward",
            weight.numel(),
            grad_out.contiguous(),
            image,
            weight,
            alpha,
            beta,
            grad_w,
            grad_a,
            grad_b,
            c,
            h,
            w,
            hp,
            wp,
            math.isqrt(kk),
            ctx.dilation,
            int(ctx.floor),
        )
        return None, grad_w, grad_a, grad_b, None, None


class _SumSplat(torch.autograd.Function):
    @staticmethod
    def forward(ctx, image, flow):
        b, c, h, w = image.shape
        out = torch.zeros_like(image)
        _launch("sumsplat_forward", image.numel(), image, flow, out, c, h, w)
        ctx.save_for_backward(image, flow)
        return out

    @staticmethod
    @once_differentiable
    def backward(ctx, grad_out):
        image, flow = ctx.saved_tensors
        b, c, h, w = image.shape
        grad_out = grad_out.contiguous()
        grad_image = grad_flow = None
        if ctx.needs_input_grad[0]:
            grad_image = torch.empty_like(image)
            _launch("sumsplat_backward_input", image.numel(), grad_out, flow, grad_image, c, h, w)
        if ctx.needs_input_grad[1]:
            grad_flow = torch.empty_like(flow)
            _launch("sumsplat_backward_flow", b * h * w, grad_out, image, flow, grad_flow, c, h, w)
        return grad_image, grad_flow


class _Correlation(torch.autograd.Function):
    """Fast forward kernel; the backward differentiates the PyTorch implementation (PWC-Net is
    normally frozen, so this path only matters when fine-tuning it)."""

    @staticmethod
    def forward(ctx, f1, f2, torch_impl):
        b, c, h, w = f1.shape
        out = f1.new_empty(b, 81, h, w)
        _launch("correlation_forward", out.numel(), f1, f2, out, c, h, w)
        ctx.save_for_backward(f1, f2)
        ctx.torch_impl = torch_impl
        return out

    @staticmethod
    @once_differentiable
    def backward(ctx, grad_out):
        f1, f2 = ctx.saved_tensors
        with torch.enable_grad():
            f1, f2 = f1.detach().requires_grad_(), f2.detach().requires_grad_()
            grads = torch.autograd.grad(ctx.torch_impl(f1, f2), (f1, f2), grad_out)
        return grads[0], grads[1], None


def adacof(
    image: torch.Tensor,
    weight: torch.Tensor,
    alpha: torch.Tensor,
    beta: torch.Tensor,
    dilation: int,
    floor: bool = False,
) -> torch.Tensor:
    """AdaCoF kernel; float32 contiguous CUDA tensors with the shapes of `vfi_mini.ops.adacof`."""
    return _AdaCoF.apply(image, weight, alpha, beta, dilation, floor)


def sumsplat(image: torch.Tensor, flow: torch.Tensor) -> torch.Tensor:
    """Summation splatting kernel; image (B, C, H, W), flow (B, 2, H, W), float32 contiguous CUDA."""
    return _SumSplat.apply(image, flow)


def correlation(
    f1: torch.Tensor, f2: torch.Tensor, torch_impl: Callable[[torch.Tensor, torch.Tensor], torch.Tensor]
) -> torch.Tensor:
    """Correlation kernel (B, C, H, W) x 2 -> (B, 81, H, W); `torch_impl` provides the backward."""
    return _Correlation.apply(f1, f2, torch_impl)
