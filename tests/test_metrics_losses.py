import math

import pytest
import torch
import torch.nn.functional as F

from vfi_mini.metrics import psnr, quantise, ssim, ssim_matlab
from vfi_mini.train.losses import LapLoss, charbonnier, get_loss


def test_psnr_on_known_error():
    a = torch.zeros(2, 3, 8, 8)
    b = torch.full((2, 3, 8, 8), 10 / 255)
    expected = -10 * math.log10(100 / 255**2 + 1e-8)
    torch.testing.assert_close(psnr(b, a), torch.full((2,), expected, dtype=torch.float64))
    # Quantisation: values that round to the same 8-bit level have infinite-ish PSNR (80 dB cap).
    assert float(psnr(a + 0.001, a)[0]) == pytest.approx(80.0)


def test_quantise_clamps_and_rounds():
    x = torch.tensor([-0.5, 0.0, 0.4 / 255, 1.4 / 255, 1.0, 2.0])
    assert quantise(x).tolist() == [0, 0, 0, 1, 255, 255]


def _naive_ssim_2d(x, y):
    """Per-channel SSIM with loops over windows (float64, 8-bit values, Gaussian 11x11, valid)."""
    r = torch.arange(11, dtype=torch.float64) - 5
    g = torch.exp(-(r**2) / (2 * 1.5**2))
    g /= g.sum()
    w = torch.outer(g, g)
    c1, c2 = (0.01 * 255) ** 2, (0.03 * 255) ** 2
    vals = []
    for c in range(x.shape[0]):
        for i in range(x.shape[1] - 10):
            for j in range(x.shape[2] - 10):
                a = x[c, i : i + 11, j : j + 11]
                b = y[c, i : i + 11, j : j + 11]
                ma, mb = (w * a).sum(), (w * b).sum()
                va, vb = (w * a * a).sum() - ma**2, (w * b * b).sum() - mb**2
                cov = (w * a * b).sum() - ma * mb
                vals.append(((2 * ma * mb + c1) * (2 * cov + c2)) / ((ma**2 + mb**2 + c1) * (va + vb + c2)))
    return torch.stack(vals).mean()


def test_ssim_matches_a_loop_reference_and_orders_by_noise():
    torch.manual_seed(0)
    x = torch.rand(1, 3, 16, 18)
    y = (x + 0.1 * torch.randn_like(x)).clamp(0, 1)
    ref = _naive_ssim_2d(quantise(x)[0], quantise(y)[0])
    torch.testing.assert_close(ssim(y, x)[0], ref)
    assert float(ssim(x, x)) == pytest.approx(1.0)
    z = (x + 0.3 * torch.randn_like(x)).clamp(0, 1)
    assert float(ssim(z, x)) < float(ssim(y, x)) < 1


def test_ssim_matlab_is_a_3d_window_over_channels():
    torch.manual_seed(1)
    x = torch.rand(2, 3, 20, 24)
    assert ssim_matlab(x, x).tolist() == pytest.approx([1.0, 1.0])
    y = (x + 0.1 * torch.randn_like(x)).clamp(0, 1)
    s3 = ssim_matlab(y, x)
    assert (s3 < 1).all() and (s3 > 0).all()
    # Independent check: one full 11x11x11 3-D convolution (the implementation uses 1-D passes).
    r = torch.arange(11, dtype=torch.float64) - 5
    g = torch.exp(-(r**2) / 4.5)
    g /= g.sum()
    k3 = (g.view(-1, 1, 1) * g.view(1, -1, 1) * g.view(1, 1, -1)).view(1, 1, 11, 11, 11)

    def blur(v):  # v: (B, 1, C, H, W), replicate pad 5 on all three axes, valid 3-D convolution
        return F.conv3d(F.pad(v, (5, 5, 5, 5, 5, 5), mode="replicate"), k3)

    a, b = quantise(y).unsqueeze(1), quantise(x).unsqueeze(1)
    ma, mb = blur(a), blur(b)
    va, vb, cov = blur(a * a) - ma**2, blur(b * b) - mb**2, blur(a * b) - ma * mb
    c1, c2 = (0.01 * 255) ** 2, (0.03 * 255) ** 2
    m = ((2 * ma * mb + c1) * (2 * cov + c2)) / ((ma**2 + mb**2 + c1) * (va + vb + c2))
    torch.testing.assert_close(s3, m.flatten(1).mean(1))


def _lap_reference(x, y):
    k1 = torch.tensor([1.0, 4, 6, 4, 1], dtype=x.dtype)
    g = (torch.outer(k1, k1) / 256).expand(3, 1, 5, 5)

    def blur(v, k):
        return F.conv2d(F.pad(v, (2, 2, 2, 2), mode="reflect"), k, groups=3)

    def pyr(v):
        out = []
        for _ in range(4):
            low = F.avg_pool2d(blur(v, g), 2)
            up = torch.zeros_like(v)
            up[:, :, 0::2, 0::2] = low
            out.append(v - blur(up, 4 * g))
            v = low
        return out + [v]

    return sum(2**i * (a - b).abs().sum() for i, (a, b) in enumerate(zip(pyr(x), pyr(y))))


def test_lap_loss_matches_reference_and_is_sum_reduced():
    torch.manual_seed(2)
    x, y = torch.rand(2, 3, 32, 48), torch.rand(2, 3, 32, 48)
    lap = LapLoss()
    torch.testing.assert_close(lap(x, y), _lap_reference(x, y))
    assert float(lap(x, x)) == 0
    # Sum reduction: doubling the batch with the same content doubles the loss.
    torch.testing.assert_close(lap(torch.cat([x, x]), torch.cat([y, y])), 2 * lap(x, y))
    # The pyramid reconstructs the image: collapsing it gives the input back.
    levels = lap.pyramid(x)
    k = lap.kernel
    rec = levels[-1]
    for band in reversed(levels[:-1]):
        up = torch.zeros_like(band)
        up[..., ::2, ::2] = rec
        rec = band + F.conv2d(F.pad(up, (2, 2, 2, 2), mode="reflect"), 4 * k, groups=3)
    torch.testing.assert_close(rec, x)
    with pytest.raises(ValueError, match="divisible by 16"):
        lap(torch.rand(1, 3, 24, 24), torch.rand(1, 3, 24, 24))


def test_other_losses():
    x, y = torch.zeros(1, 3, 4, 4), torch.ones(1, 3, 4, 4)
    assert float(charbonnier(x, y)) == pytest.approx(math.sqrt(1 + 1e-6))
    assert float(get_loss("l1")(x, y)) == 1.0
    with pytest.raises(ValueError):
        get_loss("vgg")
