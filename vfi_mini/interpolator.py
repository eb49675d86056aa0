"""The inference API shared by the CLI, evaluation and training code.

`Interpolator` owns everything around the pure `nn.Module`: device placement, precision, thread count,
padding to the model's size multiple (reflect padding at the bottom and right, as upstream; sizes too
small for one reflect pass are padded in several passes) and cropping back, `torch.inference_mode`, and
clamping the output to [0, 1].

Conventions: a window is (B, 4, 3, H, W) float32 RGB in [0, 1] holding frames (t-1, t, t+1, t+2); the
result is the frame at t + 0.5, (B, 3, H, W) float32 in [0, 1].
"""

from __future__ import annotations

import logging
from pathlib import Path

import torch
import torch.nn.functional as F
from torch import nn

from .errors import BackendUnavailable, InputError
from .models import STMFNet

log = logging.getLogger(__name__)

PAD_MULTIPLE = 128  # upstream pads every side to a multiple of 128 (spec §1.2)
PRECISIONS = {"fp32": torch.float32, "fp16": torch.float16, "bf16": torch.bfloat16}


def resolve_device(device: str | torch.device = "auto") -> torch.device:
    """'auto' -> first CUDA device if present, else CPU. Raises BackendUnavailable for absent CUDA."""
    if isinstance(device, torch.device):
        return device
    if device == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    try:
        dev = torch.device(device)
    except RuntimeError as exc:
        raise BackendUnavailable(f"unknown device {device!r}; use auto, cpu, cuda or cuda:N") from exc
    if dev.type == "cuda":
        if not torch.cuda.is_available():
            raise BackendUnavailable(f"device {device} requested but CUDA is not available on this machine")
        if dev.index is not None and dev.index >= torch.cuda.device_count():
            raise BackendUnavailable(
                f"device {device} requested but only {torch.cuda.device_count()} CUDA device(s) are present"
            )
    elif dev.type != "cpu":
        raise BackendUnavailable(f"device type {dev.type!r} is not supported; use cpu or cuda")
    return dev


def check_precision(precision: str, device: torch.device) -> torch.dtype:
    if precision not in PRECISIONS:
        raise BackendUnavailable(f"unknown precision {precision!r}; use fp32, fp16 or bf16")
    if precision == "fp16" and device.type != "cuda":
        raise BackendUnavailable("fp16 needs a CUDA device; on CPU use bf16 or fp32")
    if precision == "bf16" and device.type == "cuda" and not torch.cuda.is_bf16_supported():
        raise BackendUnavailable("bf16 is not supported by this GPU; use fp16 or fp32")
    return PRECISIONS[precision]


def pad_to_multiple(x: torch.Tensor, multiple: int) -> torch.Tensor:
    """Reflect-pad the bottom and right of (..., H, W) up to multiples of `multiple`.

    PyTorch's reflect padding needs pad < size, so small frames are padded in several passes (each
    reflecting what is already there); a 1-pixel side is replicated first.
    """
    h, w = x.shape[-2:]
    need_h, need_w = (-h) % multiple, (-w) % multiple
    while need_h or need_w:
        h, w = x.shape[-2:]
        mode = "reflect" if min(h if need_h else 2, w if need_w else 2) > 1 else "replicate"
        ph = min(need_h, h - 1) if mode == "reflect" else min(need_h, 1)
        pw = min(need_w, w - 1) if mode == "reflect" else min(need_w, 1)
        x = F.pad(x, (0, pw, 0, ph), mode=mode)
        need_h, need_w = need_h - ph, need_w - pw
    return x


def to_channels_last(model: nn.Module) -> nn.Module:
    """Store every 4-D parameter (2-D convolution weight) in channels-last layout, in place."""
    for p in model.parameters():
        if p.dim() == 4:
            p.data = p.data.contiguous(memory_format=torch.channels_last)
    return model


class Interpolator:
    """Makes middle frames with an ST-MFNet-family model.

    Args:
        model: the network (its `forward(I0, I1, I2, I3)` takes padded frames).
        device: 'auto', 'cpu', 'cuda' or 'cuda:N'.
        precision: 'fp32', 'fp16' (CUDA only) or 'bf16' (autocast).
        threads: CPU threads for PyTorch (None: leave PyTorch's default).
    """

    def __init__(
        self,
        model: nn.Module,
        device: str | torch.device = "auto",
        precision: str = "fp32",
        threads: int | None = None,
    ) -> None:
        self.device = resolve_device(device)
        self.dtype = check_precision(precision, self.device)
        self.precision = precision
        if threads is not None:
            if threads < 1:
                raise BackendUnavailable(f"--threads must be >= 1, got {threads}")
            torch.set_num_threads(threads)
        self.model = model.to(self.device).eval()
        self.multiple = PAD_MULTIPLE
        # NHWC is oneDNN's (and cuDNN's) fast layout for 2-D convolutions: same results, less time.
        to_channels_last(self.model)

    @classmethod
    def from_weights(
        cls,
        weights: str | Path | None = None,
        device: str | torch.device = "auto",
        precision: str = "fp32",
        threads: int | None = None,
    ) -> Interpolator:
        """Load weights (None: the bundled default) and wrap the model. Raises WeightsError."""
        from .weights import load_model

        model, ckpt = load_model(weights)
        log.debug("loaded %s (%s)", ckpt.path, ckpt.config.preset_name() or "custom architecture")
        return cls(model, device=device, precision=precision, threads=threads)

    def interpolate(self, window: torch.Tensor) -> torch.Tensor:
        """(B, 4, 3, H, W) in [0, 1] -> (B, 3, H, W) in [0, 1], on the interpolator's device."""
        if window.dim() != 5 or window.shape[1] != 4 or window.shape[2] != 3:
            raise InputError(f"expected a window of shape (B, 4, 3, H, W), got {tuple(window.shape)}")
        h, w = window.shape[-2:]
        if h < 1 or w < 1:
            raise InputError(f"frame size {w}x{h} is empty")
        x = window.to(self.device, torch.float32, non_blocking=True)
        x = pad_to_multiple(x.flatten(0, 1), self.multiple).unflatten(0, (window.shape[0], 4))
        frames = [f.contiguous(memory_format=torch.channels_last) for f in x.unbind(1)]
        with torch.inference_mode():
            if self.dtype is torch.float32:
                out = self.model(*frames)
            else:
                with torch.autocast(self.device.type, dtype=self.dtype):
                    out = self.model(*frames)
            return out[..., :h, :w].float().clamp(0.0, 1.0)

    def __call__(self, window: torch.Tensor) -> torch.Tensor:
        """Like `interpolate`, but the result is always on the CPU."""
        return self.interpolate(window).cpu()

    @property
    def config(self):  # noqa: ANN201 - STMFNetConfig when the model is an STMFNet
        return self.model.config if isinstance(self.model, STMFNet) else None
