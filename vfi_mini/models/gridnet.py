"""GridNet (`MIMOGridNet`, spec §2.6): fuses the multi-scale AdaCoF candidates into one frame.

Three rows at 2H, H and H/2; four columns (two downward, two upward); output from row 1.

In the upward half, information only flows from lower rows to upper ones, so the row-0 blocks of
columns 2 and 3 (`lateral_0_2`, `lateral_0_3`, `up_0_0`, `up_0_1`) never reach the output row. Upstream
computes them anyway; we skip them (same output, and they are the most expensive blocks, at 2H x 2W).
Their parameters stay in the state_dict for checkpoint compatibility and receive no gradient.
"""

from __future__ import annotations

import torch
from torch import nn


class LateralBlock(nn.Module):
    def __init__(self, cin: int, cout: int) -> None:
        super().__init__()
        self.f = nn.Sequential(nn.PReLU(), nn.Conv2d(cin, cout, 3, 1, 1), nn.PReLU(), nn.Conv2d(cout, cout, 3, 1, 1))
        self.conv = nn.Conv2d(cin, cout, 3, 1, 1) if cin != cout else None

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.f(x) + (x if self.conv is None else self.conv(x))


class DownSamplingBlock(nn.Module):
    def __init__(self, cin: int, cout: int) -> None:
        super().__init__()
        self.f = nn.Sequential(nn.PReLU(), nn.Conv2d(cin, cout, 3, 2, 1), nn.PReLU(), nn.Conv2d(cout, cout, 3, 1, 1))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.f(x)


class UpSamplingBlock(nn.Module):
    def __init__(self, cin: int, cout: int) -> None:
        super().__init__()
        self.f = nn.Sequential(
            nn.Upsample(scale_factor=2, mode="bilinear", align_corners=False),
            nn.PReLU(),
            nn.Conv2d(cin, cout, 3, 1, 1),
            nn.PReLU(),
            nn.Conv2d(cout, cout, 3, 1, 1),
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.f(x)


class MIMOGridNet(nn.Module):
    """3 x 4 GridNet with per-row inputs `in_chs`, row widths `grid_chs`, output from row 1."""

    def __init__(self, in_chs: tuple[int, int, int], grid_chs: tuple[int, int, int], out_ch: int = 3) -> None:
        super().__init__()
        self.n_row, self.n_col = 3, 4
        for r in range(self.n_row):
            for c in range(self.n_col):
                cin = in_chs[r] if c == 0 else grid_chs[r]
                self.add_module(f"lateral_{r}_{c}", LateralBlock(cin, grid_chs[r]))
        for r in range(self.n_row - 1):
            for c in range(self.n_col // 2):
                self.add_module(f"down_{r}_{c}", DownSamplingBlock(grid_chs[r], grid_chs[r + 1]))
        for r in range(self.n_row - 1):
            for c in range(self.n_col // 2):
                self.add_module(f"up_{r}_{c}", UpSamplingBlock(grid_chs[r + 1], grid_chs[r]))
        self.out_row = 1
        self.lateral_final_1 = LateralBlock(grid_chs[self.out_row], out_ch)

    def forward(self, inputs: list[torch.Tensor]) -> torch.Tensor:
        cur = list(inputs)  # rows at 2H, H, H/2
        for c in range(self.n_col // 2):
            for r in range(self.n_row):
                cur[r] = getattr(self, f"lateral_{r}_{c}")(cur[r])
                if r > 0:
                    cur[r] = cur[r] + getattr(self, f"down_{r - 1}_{c}")(cur[r - 1])
        for c in range(self.n_col // 2, self.n_col):
            for r in reversed(range(self.out_row, self.n_row)):  # rows above out_row are dead ends
                cur[r] = getattr(self, f"lateral_{r}_{c}")(cur[r])
                if r < self.n_row - 1:
                    cur[r] = cur[r] + getattr(self, f"up_{r}_{c - self.n_col // 2}")(cur[r + 1])
        return self.lateral_final_1(cur[self.out_row])
