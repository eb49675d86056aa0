"""ST-MFNet and ST-MFNet Mini as one parameterised module (spec §1-§3).

Conventions: frames are RGB in [0, 1], (B, 3, H, W), with H and W multiples of `config.size_multiple`
(the `Interpolator` reflect-pads to multiples of 128 and crops, as upstream does). `forward(I0, I1, I2, I3)`
returns the frame midway between I1 and I2, unclamped. Unlike upstream, the module always returns a tensor
(upstream returns {'frame1': out} in training mode); the state_dict keys are upstream's, key for key.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from ..ops import adacof, backwarp, softsplat
from .config import STMFNetConfig
from .feature import UMultiScaleResNext
from .gridnet import MIMOGridNet
from .kernels import KernelEstimation, Upsampler8Tap, blur_downsample, gaussian_kernel
from .pwcnet import PWCNet
from .tenet import UNet3d18

RGB_MEAN = (0.4631, 0.4352, 0.3990)


class OcclusionMetric(nn.Module):
    """Z = s * mean_c |I - backwarp(I_other, flow)|, with a learnable scale s initialised to -1."""

    def __init__(self) -> None:
        super().__init__()
        self.paramScale = nn.Parameter(torch.full((1, 1, 1, 1), -1.0))

    def forward(self, im: torch.Tensor, other: torch.Tensor, flow: torch.Tensor) -> torch.Tensor:
        return self.paramScale * (im - backwarp(other, flow)).abs().mean(dim=1, keepdim=True)


class STMFNet(nn.Module):
    def __init__(self, config: STMFNetConfig | None = None) -> None:
        super().__init__()
        cfg = config or STMFNetConfig()
        self.config = cfg
        self.gauss_kernel = nn.Parameter(gaussian_kernel(5, 0.5, 3), requires_grad=False)
        self.feature_extractor = UMultiScaleResNext(cfg.feat_channels)
        self.get_kernel = KernelEstimation(cfg.feat_channels[0], cfg.kernel_hidden, cfg.kernel_size)
        self.upsampler = Upsampler8Tap(3)
        row1 = 12 if cfg.flow else 6
        self.scale_synthesis = MIMOGridNet((6, row1, 6), cfg.grid_channels)
        if cfg.flow:
            self.flow_estimator = PWCNet()
            self.flow_estimator.requires_grad_(False)  # frozen unless fine-tuned explicitly
            self.metric = OcclusionMetric()
        self.dyntex_generator = UNet3d18(cfg.tenet_channels, cfg.tenet_decoder, cfg.tenet_fuse)
        self.register_buffer("rgb_mean", torch.tensor(RGB_MEAN).view(1, 3, 1, 1), persistent=False)
        pad = (cfg.kernel_size - 1) * cfg.dilation // 2
        self.adacof_pad = nn.ReplicationPad2d(pad)

    def warp(self, image: torch.Tensor, maps: list[torch.Tensor]) -> torch.Tensor:
        """AdaCoF of `image` with one frame's (Weight, Alpha, Beta) maps (replication-padded)."""
        weight, alpha, beta = maps
        return adacof(
            self.adacof_pad(image), weight, alpha, beta, self.config.dilation, rounding=self.config.adacof_rounding
        )

    def mean_warp(self, im1: torch.Tensor, im2: torch.Tensor, maps: list[torch.Tensor]) -> torch.Tensor:
        """The mean of the warps of I1 and I2 by six maps (Weight, Alpha, Beta of I1, then of I2)."""
        return 0.5 * (self.warp(im1, maps[:3]) + self.warp(im2, maps[3:6]))

    def _flow_candidates(self, im1: torch.Tensor, im2: torch.Tensor) -> list[torch.Tensor]:
        """BLFNet: softmax-splat I1 and I2 half-way along the PWC-Net flows (spec §2.5)."""
        h, w = im1.shape[-2:]
        feats1 = self.flow_estimator.netExtractor(im1)
        feats2 = self.flow_estimator.netExtractor(im2)
        flows = []
        for a, b in ((feats1, feats2), (feats2, feats1)):
            flow = 20.0 * self.flow_estimator.flow(a, b)
            flows.append(F.interpolate(flow, size=(h, w), mode="bilinear", align_corners=False))
        flow_0_2, flow_2_0 = flows
        z0 = self.metric(im1, im2, flow_0_2)
        z2 = self.metric(im2, im1, flow_2_0)
        return [softsplat(im1, 0.5 * flow_0_2, z0), softsplat(im2, 0.5 * flow_2_0, z2)]

    def motion(self, im1: torch.Tensor, im2: torch.Tensor) -> tuple[torch.Tensor, list[torch.Tensor]]:
        """The x1 motion path alone: (mean of the two x1 AdaCoF candidates, their 6 maps).

        The maps are (Weight, Alpha, Beta) of I1 then of I2. Motion pre-training (`train --stage motion`)
        trains this path on its own, at a fraction of the cost of the whole model.
        """
        feat = self.feature_extractor(torch.cat([im1 - self.rgb_mean, im2 - self.rgb_mean], dim=1).contiguous())
        heads = dict(self.get_kernel.named_children())
        maps = [heads[f"module{kind}{frame}"](feat) for frame in (1, 2) for kind in ("Weight", "Alpha", "Beta")]
        return self.mean_warp(im1, im2, maps), maps

    def forward(
        self,
        im0: torch.Tensor,
        im1: torch.Tensor,
        im2: torch.Tensor,
        im3: torch.Tensor,
        return_maps: bool = False,
        motion_only: bool = False,
    ) -> torch.Tensor | tuple[torch.Tensor, list[torch.Tensor]]:
        """Middle frame (B, 3, H, W); with `return_maps`, also the 18 AdaCoF maps (for flow distillation).

        With `motion_only`, see `motion`: only the feature extractor and the x1 kernel heads run.
        """
        if motion_only:
            return self.motion(im1, im2)
        h, w = im1.shape[-2:]
        m = self.config.size_multiple
        if h % m or w % m:
            raise ValueError(f"frame size {w}x{h} is not a multiple of {m}; pad the frames first")
        # The feature extractor's input must be in NCHW layout: PyTorch 2.13's oneDNN backward of its first
        # 1x1 stride-2 projection (6 input channels) corrupts the heap for channels-last inputs.
        feat = self.feature_extractor(torch.cat([im1 - self.rgb_mean, im2 - self.rgb_mean], dim=1).contiguous())
        maps = self.get_kernel(feat)  # 18 maps, see KernelEstimation

        # Candidates per scale; for each frame the maps are (Weight, Alpha, Beta).
        ds = [blur_downsample(im, self.gauss_kernel) for im in (im1, im2)]
        us = [self.upsampler(im) for im in (im1, im2)]
        rows = []
        for s, images in enumerate((ds, (im1, im2), us)):
            base = 6 * s
            rows.append([self.warp(images[f], maps[base + 3 * f : base + 3 * f + 3]) for f in (0, 1)])
        row_ds, row_1, row_us = rows
        if self.config.flow:
            row_1 = row_1 + self._flow_candidates(im1, im2)
        mid = self.scale_synthesis([torch.cat(row_us, 1), torch.cat(row_1, 1), torch.cat(row_ds, 1)])

        residual = self.dyntex_generator(torch.stack([im0, im1, mid, im2, im3], dim=2))
        out = mid + residual
        return (out, maps) if return_maps else out
