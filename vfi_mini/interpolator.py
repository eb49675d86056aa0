"""The inference API shared by the CLI, evaluation and training code.

`Interpolator` owns everything around the pure `nn.Module`: device placement, precision, thread count,
padding to the model's size multiple (reflect padding at the bottom and right, as upstream; sizes too
small for one reflect pass are padded in several passes) and cropping back, `torch.inference_mode`,
spatial tiling, and clamping the output to [0, 1].

Conventions: a window is (B, 4, 3, H, W) float32 RGB in [0, 1] holding frames (t-1, t, t+1, t+2); the
result is the frame at t + 0.5, (B, 3, H, W) float32 in [0, 1].

Tiling: a window too large for memory is padded as a whole (as above, so that tiles on the bottom and
right borders see the same reflected pixels as an untiled run) and cut into overlapping tiles whose sides
are multiples of 128 (so the model pads none of them). Each tile is interpolated on its own and the
results are blended with linear ramps across every overlap (the two weights sum to one), so there are no
seams. Tiles spread evenly over the frame and overlap by at least `tile_overlap` pixels. The network sees
less context near a tile border, and its global-average layers (squeeze-excitation, TENet gating) see
tile statistics instead of frame statistics, so a tiled result is close to, not identical with, the
untiled one. With ``tile="auto"`` (the default):

- on the CPU, a window whose padded size would need more than `memory_budget` bytes of activations
  (estimated per padded pixel: `bytes_per_pixel`, measured for fp32) is tiled with the tile shape that
  fits the budget with the fewest pixels computed (tiles at most 4:1); smaller windows are not tiled;
- on CUDA (or whenever the model raises an out-of-memory error), the window is tried as planned first;
  the error is caught, logged once, and the window is retried in tiles of half the longer side, halved
  again until it fits (down to 128). The tile size that worked is kept for the following windows.

CUDA: windows go to the GPU through a reusable pinned (page-locked) staging buffer and come back through
pinned memory, so both copies are DMA transfers; `__call__` waits for the copy back before it returns. With
``cuda_graphs=True`` the untiled model call (padding, layout, autocast, network) is captured once per window
shape as a CUDA graph and replayed for later windows of that shape, which removes the per-kernel launch cost
of the Python forward pass; tiled windows run eagerly.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from pathlib import Path

import torch
import torch.nn.functional as F
from torch import nn

from .errors import BackendUnavailable, InputError, ProcessingError, UsageError
from .models import STMFNet

log = logging.getLogger(__name__)

PAD_MULTIPLE = 128  # upstream pads every side to a multiple of 128 (spec §1.2)
PRECISIONS = {"fp32": torch.float32, "fp16": torch.float16, "bf16": torch.bfloat16}
DEFAULT_TILE_OVERLAP = 32
# Activations the CPU may hold for one model call when tile="auto": with the per-pixel figures below, at
# most 0.5 padded megapixels of ST-MFNet Mini per call. 854x480 (896x512 padded) runs whole; 1280x720 runs
# in 3 tiles of 768x512 (1.2x the pixels), 3840x2160 in 24 (1.13x).
CPU_MEMORY_BUDGET = 3584 * 1024**2  # 3.5 GiB
# Peak memory of one fp32 forward pass on the CPU per padded pixel and window (measured with ru_maxrss at
# 256x256 and 512x512: ST-MFNet Mini 6-7 KiB, ST-MFNet with its PWC-Net flow branch ~10 KiB).
BYTES_PER_PIXEL_MINI = 7 * 1024
BYTES_PER_PIXEL_FLOW = 11 * 1024
# Eager runs before a CUDA graph is captured: cuDNN picks its algorithms and the CuPy kernels compile and
# pass their self-check (which synchronises) here, since neither may happen during the capture.
GRAPH_WARMUP_RUNS = 2


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


def check_cuda_graphs(device: torch.device) -> None:
    """CUDA graphs (``cuda_graphs=True``, ``--cuda-graphs``) need a CUDA device. Raises UsageError."""
    if device.type != "cuda":
        raise UsageError(f"--cuda-graphs needs a CUDA device, not {device} (CUDA graphs replay CUDA kernels)")


def cpu_has_native_bf16() -> bool:
    """True when the CPU computes bf16 natively (AVX-512 BF16 or AMX), where bf16 autocast is faster than
    fp32; elsewhere oneDNN emulates it and it is not. Linux only (reads /proc/cpuinfo); False elsewhere."""
    try:
        flags = Path("/proc/cpuinfo").read_text()
    except OSError:
        return False
    return "avx512_bf16" in flags or "amx_bf16" in flags


def resolve_precision(precision: str, device: torch.device) -> str:
    """'auto' -> the fastest precision that keeps within 0.05 dB of fp32 on real frames (BENCHMARKS.md):
    bf16 on CPUs with native bf16, fp32 elsewhere (CUDA included, until measured there). Others unchanged."""
    if precision != "auto":
        return precision
    return "bf16" if device.type == "cpu" and cpu_has_native_bf16() else "fp32"


def check_precision(precision: str, device: torch.device) -> torch.dtype:
    precision = resolve_precision(precision, device)
    if precision not in PRECISIONS:
        raise BackendUnavailable(f"unknown precision {precision!r}; use auto, fp32, fp16 or bf16")
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


def _round_up(n: int, multiple: int) -> int:
    return -(-n // multiple) * multiple


def split_axis(length: int, tile: int, overlap: int) -> tuple[int, list[int]]:
    """Cover [0, length) with the fewest tiles of at most `tile` pixels overlapping by >= `overlap`.

    The tile length is the smallest multiple of 128 (at most `tile`) that still covers `length` with that
    many tiles, and the tiles are spread evenly, so overlaps may exceed `overlap`.

    Returns:
        (tile length, start of each tile); ``(length, [0])`` when one tile covers the axis.
    """
    if length <= tile:
        return length, [0]
    n = -(-(length - overlap) // (tile - overlap))
    size = min(tile, _round_up(-(-(length + (n - 1) * overlap) // n), PAD_MULTIPLE))
    return size, [i * (length - size) // (n - 1) for i in range(n)]


@dataclass(frozen=True)
class TilePlan:
    """Where the tiles of an H x W frame lie: tiles of `size` (h, w) starting at every (y, x) pair of
    `ys` x `xs`."""

    size: tuple[int, int]
    ys: tuple[int, ...]
    xs: tuple[int, ...]

    @classmethod
    def make(cls, height: int, width: int, tile: tuple[int, int], overlap: int) -> TilePlan:
        (th, ys), (tw, xs) = split_axis(height, tile[0], overlap), split_axis(width, tile[1], overlap)
        return cls((th, tw), tuple(ys), tuple(xs))

    @property
    def count(self) -> int:
        return len(self.ys) * len(self.xs)

    @property
    def padded_pixels(self) -> int:
        """Pixels the model computes over all tiles (each tile padded to multiples of 128)."""
        return self.count * _round_up(self.size[0], PAD_MULTIPLE) * _round_up(self.size[1], PAD_MULTIPLE)


def _ramp(starts: tuple[int, ...], size: int, i: int) -> torch.Tensor:
    """1-D blending weight of tile i: rises linearly across the overlap with the previous tile and falls
    across the overlap with the next one, so that two overlapping weights always sum to one."""
    pos = torch.arange(size, dtype=torch.float32) + 0.5
    w = torch.ones(size)
    if i > 0:
        overlap = starts[i - 1] + size - starts[i]
        w = torch.minimum(w, pos / overlap)
    if i + 1 < len(starts):
        overlap = starts[i] + size - starts[i + 1]
        w = torch.minimum(w, (size - pos) / overlap)
    return w


def auto_tile(height: int, width: int, max_pixels: int, overlap: int) -> tuple[int, int] | None:
    """The tile shape (h, w), sides multiples of 128, whose padded tiles hold at most `max_pixels` each
    and that computes the fewest pixels in all (ties: fewer tiles, then squarer); None when the whole
    padded frame fits."""
    hp, wp = _round_up(height, PAD_MULTIPLE), _round_up(width, PAD_MULTIPLE)
    if hp * wp <= max_pixels:
        return None
    best: tuple[tuple[int, int, int], tuple[int, int]] | None = None
    sizes_h = [t for t in range(PAD_MULTIPLE, hp + 1, PAD_MULTIPLE) if t >= 2 * overlap]
    sizes_w = [t for t in range(PAD_MULTIPLE, wp + 1, PAD_MULTIPLE) if t >= 2 * overlap]
    for th in sizes_h:
        for tw in sizes_w:
            # Thin strips leave more of each tile near a cut (less context): at most 4:1 unless the frame
            # itself is that thin.
            if max(th, tw) > 4 * min(th, tw) and min(th, tw) not in (hp, wp):
                continue
            plan = TilePlan.make(hp, wp, (th, tw), overlap)
            h, w = _round_up(plan.size[0], PAD_MULTIPLE), _round_up(plan.size[1], PAD_MULTIPLE)
            if h * w > max_pixels:
                continue
            key = (plan.padded_pixels, plan.count, abs(h - w))
            if best is None or key < best[0]:
                best = (key, (th, tw))
    # Not even one 128x128 tile fits the budget: use the smallest tiles there are.
    return best[1] if best is not None else (PAD_MULTIPLE, PAD_MULTIPLE)


def _parse_tile(tile: int | str | None) -> int | str | None:
    if tile is None or tile == "auto":
        return tile
    if isinstance(tile, str):
        if tile.lower() in ("off", "none", "0"):
            return None
        try:
            tile = int(tile)
        except ValueError:
            raise UsageError(f"tile size must be a number of pixels, 'auto' or 'off', got {tile!r}") from None
    if tile == 0:
        return None
    if tile < PAD_MULTIPLE:
        raise UsageError(f"tile size must be at least {PAD_MULTIPLE} pixels (the model's size multiple), got {tile}")
    return tile


@dataclass(frozen=True)
class _Graph:
    """A captured model call: copy a window into `window`, replay `graph`, read `out`."""

    graph: torch.cuda.CUDAGraph
    window: torch.Tensor  # (B, 4, 3, H, W) float32, the captured input
    out: torch.Tensor  # (B, 3, H, W) float32, unclamped; overwritten by every replay


class Interpolator:
    """Makes middle frames with an ST-MFNet-family model.

    Args:
        model: the network (its `forward(I0, I1, I2, I3)` takes padded frames).
        device: 'auto', 'cpu', 'cuda' or 'cuda:N'.
        precision: 'auto' (see `resolve_precision`), 'fp32', 'fp16' (CUDA only) or 'bf16' (autocast).
        threads: CPU threads for PyTorch (None: leave PyTorch's default).
        tile: 'auto' (tile when the frame does not fit; see the module docstring), None or 'off' (never
            tile), or a tile side in pixels (>= 128; rounded down to a multiple of 128 so that no tile is
            padded).
        tile_overlap: minimum overlap of neighbouring tiles in pixels (blended with linear ramps); must be
            less than half the tile side.
        memory_budget: bytes of activations one model call may use on the CPU with tile='auto'.
        cuda_graphs: capture the untiled model call as a CUDA graph per window shape and replay it (CUDA
            only). If a capture fails, a warning is logged and the model runs eagerly from then on.

    Raises:
        BackendUnavailable: the device or precision is not available.
        UsageError: bad tile settings, or `cuda_graphs` on a device other than CUDA.
    """

    def __init__(
        self,
        model: nn.Module,
        device: str | torch.device = "auto",
        precision: str = "auto",
        threads: int | None = None,
        *,
        tile: int | str | None = "auto",
        tile_overlap: int = DEFAULT_TILE_OVERLAP,
        memory_budget: int = CPU_MEMORY_BUDGET,
        cuda_graphs: bool = False,
    ) -> None:
        self.device = resolve_device(device)
        if cuda_graphs:
            check_cuda_graphs(self.device)
        self.dtype = check_precision(precision, self.device)
        self.precision = resolve_precision(precision, self.device)
        if threads is not None:
            if threads < 1:
                raise BackendUnavailable(f"--threads must be >= 1, got {threads}")
            torch.set_num_threads(threads)
        tile = _parse_tile(tile)
        if isinstance(tile, int):
            if tile % PAD_MULTIPLE:
                log.info("tile size %d rounded down to %d (a multiple of 128)", tile, tile - tile % PAD_MULTIPLE)
            tile -= tile % PAD_MULTIPLE
        if tile_overlap < 0 or (isinstance(tile, int) and 2 * tile_overlap >= tile):
            raise UsageError(f"tile overlap must be >= 0 and less than half the tile size ({tile}), got {tile_overlap}")
        self.tile = tile
        self.tile_overlap = tile_overlap
        self.memory_budget = memory_budget
        self.model = model.to(self.device).eval()
        self.multiple = PAD_MULTIPLE
        config = getattr(model, "config", None)
        self.bytes_per_pixel = BYTES_PER_PIXEL_MINI if config is not None and not config.flow else BYTES_PER_PIXEL_FLOW
        self._oom_tile: int | None = None  # tile side that fitted after an out-of-memory error (auto mode)
        self.cuda_graphs = cuda_graphs
        self._graphs: dict[tuple[int, ...], _Graph] = {}  # window shape -> captured model call
        self._graph_pool: tuple[int, int] | None = None  # memory pool all captures share
        self._graph_stream: torch.cuda.Stream | None = None  # side stream of the warm-ups and captures
        self._staging: torch.Tensor | None = None  # pinned copy of the last window sent to CUDA
        self._staged: torch.cuda.Event | None = None  # recorded after that copy was queued
        # NHWC is oneDNN's (and cuDNN's) fast layout for 2-D convolutions: same results, less time.
        to_channels_last(self.model)

    @classmethod
    def from_weights(
        cls,
        weights: str | Path | None = None,
        device: str | torch.device = "auto",
        precision: str = "auto",
        threads: int | None = None,
        *,
        tile: int | str | None = "auto",
        tile_overlap: int = DEFAULT_TILE_OVERLAP,
        cuda_graphs: bool = False,
    ) -> Interpolator:
        """Load weights (None: the bundled default) and wrap the model. Raises WeightsError."""
        from .weights import load_model

        model, ckpt = load_model(weights)
        log.debug("loaded %s (%s)", ckpt.path, ckpt.config.preset_name() or "custom architecture")
        return cls(
            model,
            device=device,
            precision=precision,
            threads=threads,
            tile=tile,
            tile_overlap=tile_overlap,
            cuda_graphs=cuda_graphs,
        )

    def tile_plan(self, batch: int, height: int, width: int) -> TilePlan | None:
        """The tiles of the padded frame (sides rounded up to multiples of 128) that the next window of
        this size will be cut into; None when it runs whole."""
        if self.tile is None:
            return None
        height, width = _round_up(height, PAD_MULTIPLE), _round_up(width, PAD_MULTIPLE)
        if isinstance(self.tile, int):
            shape: tuple[int, int] | None = (self.tile, self.tile)
        elif self._oom_tile is not None:
            shape = (self._oom_tile, self._oom_tile)
        elif self.device.type == "cpu":
            shape = auto_tile(height, width, self.memory_budget // (batch * self.bytes_per_pixel), self.tile_overlap)
        else:
            shape = None
        if shape is None:
            return None
        plan = TilePlan.make(height, width, shape, self.tile_overlap)
        return plan if plan.count > 1 else None

    def interpolate(self, window: torch.Tensor) -> torch.Tensor:
        """(B, 4, 3, H, W) in [0, 1] -> (B, 3, H, W) in [0, 1], on the interpolator's device.

        Raises:
            InputError: the window has the wrong shape.
            ProcessingError: out of memory even with the smallest tiles (or with a fixed tile size).
        """
        if window.dim() != 5 or window.shape[1] != 4 or window.shape[2] != 3:
            raise InputError(f"expected a window of shape (B, 4, 3, H, W), got {tuple(window.shape)}")
        b, h, w = window.shape[0], *window.shape[-2:]
        if h < 1 or w < 1:
            raise InputError(f"frame size {w}x{h} is empty")
        x = self._upload(window)
        while True:
            plan = self.tile_plan(b, h, w)
            try:
                with torch.inference_mode():
                    out = self._run_whole(x) if plan is None else self._run_tiles(x, plan)
                    return out.clamp(0.0, 1.0)
            except torch.cuda.OutOfMemoryError:  # = torch.OutOfMemoryError (any device) since torch 2.5
                pass  # leave the except block first so that the failed attempt's memory can be freed
            self._next_oom_tile(h, w, plan)

    def _next_oom_tile(self, h: int, w: int, plan: TilePlan | None) -> None:
        where = f"{w}x{h} frame" + (f" in {plan.size[1]}x{plan.size[0]} tiles" if plan is not None else "")
        if self.tile != "auto":
            hint = "try a smaller --tile" if self.tile is not None else "try --tile auto or --tile 512"
            raise ProcessingError(f"out of memory interpolating a {where} on {self.device}; {hint}")
        side = plan.size if plan is not None else (_round_up(h, PAD_MULTIPLE), _round_up(w, PAD_MULTIPLE))
        tile = max(side) // 2 // PAD_MULTIPLE * PAD_MULTIPLE
        if tile < PAD_MULTIPLE or 2 * self.tile_overlap >= tile:
            raise ProcessingError(
                f"out of memory interpolating a {where} on {self.device}, even with the smallest tiles"
            )
        if self._oom_tile is None:
            log.warning(
                "out of memory on %s for a whole %dx%d frame; continuing in tiles (at most %d pixels a side)",
                self.device,
                w,
                h,
                tile,
            )
        else:
            log.info("out of memory for a %s; retrying with %d-pixel tiles", where, tile)
        self._oom_tile = tile
        if self.device.type == "cuda":
            torch.cuda.empty_cache()

    def _upload(self, window: torch.Tensor) -> torch.Tensor:
        """The window as float32 on the device. From the CPU to CUDA it is staged in a pinned buffer (kept
        for the next window of the same shape) and copied asynchronously."""
        if self.device.type != "cuda" or window.is_cuda:
            return window.to(self.device, torch.float32, non_blocking=True)
        if self._staging is None or self._staging.shape != window.shape:
            self._staging = torch.empty(window.shape, dtype=torch.float32, pin_memory=True)
        elif self._staged is not None:
            self._staged.synchronize()  # the previous window's copy may still be reading the buffer
        self._staging.copy_(window)
        x = self._staging.to(self.device, non_blocking=True)
        self._staged = torch.cuda.Event()
        self._staged.record(torch.cuda.current_stream(self.device))
        return x

    def _run_whole(self, x: torch.Tensor) -> torch.Tensor:
        """(B, 4, 3, h, w) on the device -> (B, 3, h, w) float32, unclamped: the replay of a CUDA graph
        with `cuda_graphs`, else `_forward`."""
        if self.cuda_graphs:
            graph = self._graphs.get(tuple(x.shape)) or self._capture(x)
            if graph is not None:
                graph.window.copy_(x)
                with torch.cuda.device(self.device):  # a replay goes to the current device's current stream
                    graph.graph.replay()
                # Every graph shares one memory pool, so the next replay of any of them may overwrite `out`.
                return graph.out.clone()
        return self._forward(x)

    def _capture(self, x: torch.Tensor) -> _Graph | None:
        """Capture `_forward` for windows shaped like `x` (after warm-up runs on a side stream, as
        `torch.cuda.graph` asks). None when the capture fails: one warning, and no graphs from then on."""
        try:
            window = x.clone()
            with torch.cuda.device(self.device):
                if self._graph_stream is None:
                    self._graph_stream = torch.cuda.Stream(self.device)
                    self._graph_pool = torch.cuda.graph_pool_handle()
                stream, side = torch.cuda.current_stream(self.device), self._graph_stream
                side.wait_stream(stream)
                with torch.cuda.stream(side):
                    for _ in range(GRAPH_WARMUP_RUNS):
                        self._forward(window)
                stream.wait_stream(side)
                graph = torch.cuda.CUDAGraph()
                # Sharing one pool (captured on one stream) is safe because replays never overlap and `out` is
                # copied before the next one. thread_local: decode and encode threads may use CUDA meanwhile.
                with torch.cuda.graph(graph, pool=self._graph_pool, stream=side, capture_error_mode="thread_local"):
                    out = self._forward(window)
        except Exception as exc:  # noqa: BLE001 - any capture failure (unsupported op, OOM, ...) means eager
            log.warning(
                "could not capture the model as a CUDA graph (%s: %s); running it without CUDA graphs",
                type(exc).__name__,
                exc,
            )
            self.cuda_graphs = False
            self._graphs.clear()
            return None
        log.debug("captured a CUDA graph for windows of shape %s", tuple(x.shape))
        self._graphs[tuple(x.shape)] = captured = _Graph(graph, window, out)
        return captured

    def _forward(self, x: torch.Tensor) -> torch.Tensor:
        """The untiled model call, run eagerly: (B, 4, 3, h, w) on the device -> (B, 3, h, w) float32,
        unclamped."""
        b, h, w = x.shape[0], *x.shape[-2:]
        x = pad_to_multiple(x.flatten(0, 1), self.multiple).unflatten(0, (b, 4))
        frames = [f.contiguous(memory_format=torch.channels_last) for f in x.unbind(1)]
        if self.dtype is torch.float32:
            out = self.model(*frames)
        else:
            with torch.autocast(self.device.type, dtype=self.dtype):
                out = self.model(*frames)
        return out[..., :h, :w].float()

    def _run_tiles(self, x: torch.Tensor, plan: TilePlan) -> torch.Tensor:
        """Interpolate each tile of `plan` and blend them with linear ramps across the overlaps.

        The frame is padded as a whole first, so tiles on its bottom and right borders see the same
        reflected rows and columns as an untiled run (not a tile border)."""
        b, h, w = x.shape[0], *x.shape[-2:]
        x = pad_to_multiple(x.flatten(0, 1), self.multiple).unflatten(0, (b, 4))  # (B, 4, 3, Hp, Wp)
        hp, wp = x.shape[-2:]
        th, tw = plan.size
        log.debug("interpolating a %dx%d frame in %d tiles of %dx%d", w, h, plan.count, tw, th)
        out = torch.zeros(b, 3, hp, wp, device=x.device)
        weight = torch.zeros(hp, wp, device=x.device)
        for i, y0 in enumerate(plan.ys):
            wy = _ramp(plan.ys, th, i).to(x.device)
            for j, x0 in enumerate(plan.xs):
                tile_w = wy[:, None] * _ramp(plan.xs, tw, j).to(x.device)[None, :]  # (th, tw)
                pred = self._forward(x[..., y0 : y0 + th, x0 : x0 + tw])  # (B, 3, th, tw)
                out[..., y0 : y0 + th, x0 : x0 + tw] += pred * tile_w
                weight[y0 : y0 + th, x0 : x0 + tw] += tile_w
        return out[..., :h, :w].div_(weight[:h, :w])

    def __call__(self, window: torch.Tensor) -> torch.Tensor:
        """Like `interpolate`, but the result is always on the CPU."""
        out = self.interpolate(window)
        if not out.is_cuda:
            return out.cpu()
        # A fresh pinned tensor from PyTorch's caching host allocator, which reuses its blocks once they are
        # freed (the pipeline copies the result at once), so no extra copy out of a staging buffer is needed.
        host = torch.empty(out.shape, dtype=out.dtype, pin_memory=True)
        host.copy_(out, non_blocking=True)
        torch.cuda.current_stream(self.device).synchronize()  # the copy is asynchronous: wait before reading
        return host

    @property
    def config(self):  # noqa: ANN201 - STMFNetConfig when the model is an STMFNet
        return self.model.config if isinstance(self.model, STMFNet) else None
