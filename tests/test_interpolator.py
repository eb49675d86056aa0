import pytest
import torch

from vfi_mini.errors import BackendUnavailable, InputError
from vfi_mini.interpolator import Interpolator, pad_to_multiple, resolve_device
from vfi_mini.models import STMFNetConfig, build_model

TINY = STMFNetConfig(
    feat_channels=(32, 32, 32, 32),
    kernel_hidden=4,
    grid_channels=(4, 4, 4),
    tenet_channels=(4, 4, 4, 4),
    tenet_decoder=(4, 4, 4, 4, 4),
    tenet_fuse=2,
    flow=False,
)


@pytest.mark.parametrize("h,w", [(1, 1), (1, 7), (2, 3), (5, 64), (64, 65), (130, 98), (128, 256)])
def test_pad_to_multiple_keeps_the_frame_top_left(h, w):
    x = torch.rand(2, 3, h, w)
    y = pad_to_multiple(x, 128)
    assert y.shape[-2] % 128 == 0 and y.shape[-1] % 128 == 0
    assert y.shape[-2] - h < 128 and y.shape[-1] - w < 128
    torch.testing.assert_close(y[..., :h, :w], x)


def test_pad_is_a_plain_reflection_when_possible():
    x = torch.rand(1, 3, 100, 70)
    y = pad_to_multiple(x, 128)
    torch.testing.assert_close(y[..., 100, :70], x[..., 98, :])  # reflect (not symmetric) at the bottom
    torch.testing.assert_close(y[..., :100, 70], x[..., :, 68])


@pytest.mark.parametrize("h,w", [(1, 1), (3, 5), (48, 64), (98, 130)])
def test_interpolator_any_size(h, w):
    torch.manual_seed(0)
    interp = Interpolator(build_model(TINY), device="cpu")
    out = interp(torch.rand(2, 4, 3, h, w))
    assert out.shape == (2, 3, h, w) and out.dtype == torch.float32 and out.device.type == "cpu"
    assert float(out.min()) >= 0 and float(out.max()) <= 1


def test_interpolator_bf16_on_cpu_is_close_to_fp32():
    torch.manual_seed(0)
    model = build_model(TINY)
    window = torch.rand(1, 4, 3, 40, 60)
    ref = Interpolator(model, device="cpu")(window)
    bf = Interpolator(model, device="cpu", precision="bf16")(window)
    assert bf.dtype == torch.float32
    assert (bf - ref).abs().mean() < 0.05


def test_interpolator_rejects_bad_requests():
    model = build_model(TINY)
    with pytest.raises(BackendUnavailable, match="fp16 needs a CUDA device"):
        Interpolator(model, device="cpu", precision="fp16")
    with pytest.raises(BackendUnavailable, match="unknown precision"):
        Interpolator(model, device="cpu", precision="int8")
    with pytest.raises(InputError, match=r"\(B, 4, 3, H, W\)"):
        Interpolator(model, device="cpu")(torch.rand(1, 3, 3, 8, 8))
    if not torch.cuda.is_available():
        with pytest.raises(BackendUnavailable, match="CUDA is not available"):
            resolve_device("cuda:0")
    with pytest.raises(BackendUnavailable, match="unknown device"):
        resolve_device("tpu-ish")
