"""Image-quality metrics with the conventions of the ST-MFNet evaluation code (spec §10).

All functions take float tensors in [0, 1] of shape (B, 3, H, W) and return one value per image (B,).
Both images are first quantised to 8 bits: round(255 * clamp(x, 0, 1)).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F


def quantise(x: torch.Tensor) -> torch.Tensor:
    """round(255 * clamp(x, 0, 1)) as float64 (exact integer values)."""
    return torch.round(x.double().clamp(0, 1) * 255)


def psnr(pred: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """PSNR on 8-bit RGB: -10 log10(MSE / 255^2 + 1e-8), MSE over (C, H, W) per image."""
    mse = (quantise(pred) - quantise(target)).pow(2).flatten(1).mean(1)
    return -10 * torch.log10(mse / 255**2 + 1e-8)


def _gaussian_1d(size: int, sigma: float = 1.5) -> torch.Tensor:
    r = torch.arange(size, dtype=torch.float64) - size // 2
    g = torch.exp(-(r**2) / (2 * sigma**2))
    return g / g.sum()


_C1, _C2 = (0.01 * 255) ** 2, (0.03 * 255) ** 2


def _ssim_map(x: torch.Tensor, y: torch.Tensor, blur) -> torch.Tensor:  # noqa: ANN001
    mu_x, mu_y = blur(x), blur(y)
    sxx = blur(x * x) - mu_x**2
    syy = blur(y * y) - mu_y**2
    sxy = blur(x * y) - mu_x * mu_y
    return ((2 * mu_x * mu_y + _C1) * (2 * sxy + _C2)) / ((mu_x**2 + mu_y**2 + _C1) * (sxx + syy + _C2))


def ssim_matlab(pred: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """The CAIN/FLAVR/ST-MFNet "matlab" SSIM: an 11x11x11 Gaussian window over the (C, H, W) volume,
    replicate padding 5, on 8-bit values (spec §10.2).

    The window is separable, so it is applied as three 1-D passes (the same values to ~1e-15 as one
    3-D convolution, ~40x faster).
    """
    x, y = quantise(pred).unsqueeze(1), quantise(target).unsqueeze(1)  # (B, 1, C, H, W)
    size = min(11, x.shape[-1], x.shape[-2])
    pad = size // 2
    g = _gaussian_1d(size).to(x.device)
    kernels = (g.view(1, 1, -1, 1, 1), g.view(1, 1, 1, -1, 1), g.view(1, 1, 1, 1, -1))

    def blur(v: torch.Tensor) -> torch.Tensor:
        v = F.pad(v, (pad,) * 6, mode="replicate")
        for k in kernels:
            v = F.conv3d(v, k)
        return v

    return _ssim_map(x, y, blur).flatten(1).mean(1)


def ssim(pred: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """Standard SSIM (Wang et al. 2004): 11x11 Gaussian window (sigma 1.5) per channel, valid
    convolution, averaged over channels and pixels, on 8-bit values (as skimage with
    gaussian_weights=True, data_range=255, use_sample_covariance=False). Separable: two 1-D passes."""
    x, y = quantise(pred), quantise(target)
    c = x.shape[1]
    size = min(11, x.shape[-1], x.shape[-2])
    g = _gaussian_1d(size).to(x.device)
    kh = g.view(1, 1, -1, 1).expand(c, 1, size, 1).contiguous()
    kw = g.view(1, 1, 1, -1).expand(c, 1, 1, size).contiguous()

    def blur(v: torch.Tensor) -> torch.Tensor:
        return F.conv2d(F.conv2d(v, kh, groups=c), kw, groups=c)

    return _ssim_map(x, y, blur).flatten(1).mean(1)
