import logging

import pytest
import torch
from torch import nn

from vfi_mini.errors import BackendUnavailable, InputError, ProcessingError, UsageError
from vfi_mini.interpolator import (
    BYTES_PER_PIXEL_MINI,
    CPU_MEMORY_BUDGET,
    DEFAULT_TILE_OVERLAP,
    Interpolator,
    TilePlan,
    _ramp,
    auto_tile,
    pad_to_multiple,
    resolve_device,
    split_axis,
)
from vfi_mini.models import PRESETS, STMFNetConfig, build_model

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


# --- tiling -----------------------------------------------------------------------------------------------


class Pointwise(nn.Module):
    """A model without spatial context (a per-pixel mix of the four frames): tiling must not change its
    output at all. Records the frame sizes it is called with."""

    def __init__(self, oom_above: int | None = None) -> None:
        super().__init__()
        self.w = nn.Parameter(torch.tensor([0.1, 0.4, 0.3, 0.2]))
        self.config = STMFNetConfig(flow=False)
        self.sizes: list[tuple[int, int]] = []
        self.oom_above = oom_above

    def forward(self, *frames: torch.Tensor) -> torch.Tensor:
        h, w = frames[0].shape[-2:]
        if self.oom_above is not None and h * w > self.oom_above:
            raise torch.cuda.OutOfMemoryError("out of memory (test)")
        self.sizes.append((h, w))
        return sum(wi * f for wi, f in zip(self.w, frames, strict=True))


class Offset(nn.Module):
    """ST-MFNet Mini with its output shifted by 0.5: with PyTorch's default initialisation the network's
    raw output lies in about [-0.45, 0.27], so unshifted most of it would be clamped to 0 and differences
    hidden. The shift keeps every value inside [0, 1] (checked in the test) without changing any difference
    between a tiled and an untiled run."""

    def __init__(self, model: nn.Module) -> None:
        super().__init__()
        self.model = model
        self.config = model.config

    def forward(self, *frames: torch.Tensor) -> torch.Tensor:
        return self.model(*frames) + 0.5


@pytest.mark.parametrize("length", [1, 100, 128, 129, 300, 1000, 2160, 3840, 16384])
@pytest.mark.parametrize("tile,overlap", [(128, 0), (128, 32), (512, 32), (640, 64)])
def test_split_axis_covers_with_overlap(length, tile, overlap):
    size, starts = split_axis(length, tile, overlap)
    if length <= tile:
        assert (size, starts) == (length, [0])
        return
    assert size % 128 == 0 and size <= tile
    assert starts[0] == 0 and starts[-1] + size == length  # covers both ends, never beyond
    assert all(b - a > 0 and a + size - b >= overlap for a, b in zip(starts, starts[1:]))  # overlap >= asked
    assert len(starts) == -(-(length - overlap) // (tile - overlap))  # as few tiles as possible


@pytest.mark.parametrize("height,width", [(256, 256), (384, 1280), (768, 2048)])
def test_tile_weights_sum_to_one(height, width):
    plan = TilePlan.make(height, width, (256, 384), 48)
    total = torch.zeros(height, width)
    for i, y in enumerate(plan.ys):
        for j, x in enumerate(plan.xs):
            weight = _ramp(plan.ys, plan.size[0], i)[:, None] * _ramp(plan.xs, plan.size[1], j)[None, :]
            assert float(weight.min()) > 0
            total[y : y + plan.size[0], x : x + plan.size[1]] += weight
    torch.testing.assert_close(total, torch.ones(height, width))


def test_tiles_of_a_pointwise_model_match_exactly():
    torch.manual_seed(0)
    window = torch.rand(2, 4, 3, 300, 260)
    ref = Interpolator(Pointwise(), device="cpu", tile=None)(window)
    model = Pointwise()
    out = Interpolator(model, device="cpu", tile=128, tile_overlap=32)(window)
    torch.testing.assert_close(out, ref, rtol=0, atol=1e-6)
    assert len(model.sizes) == 4 * 4  # padded 384x384 in 128-pixel tiles overlapping by >= 32
    assert set(model.sizes) == {(128, 128)}  # no tile needs padding of its own


@pytest.fixture(scope="module")
def mini_window():
    """ST-MFNet Mini (PyTorch's default initialisation, seed 0) and a 256x200 window of moving gratings."""
    from media import pattern

    threads = torch.get_num_threads()
    torch.set_num_threads(1)  # small convolutions: one thread is as fast and does not fight other processes
    torch.manual_seed(0)
    model = Offset(build_model("stmfnet-mini"))
    h, w = 200, 256
    window = torch.stack([torch.from_numpy(pattern(t, w, h)).permute(2, 0, 1).float() for t in range(4)])[None]
    ref = Interpolator(model, device="cpu", tile=None)(window)
    assert 0.02 < float(ref.min()) and float(ref.max()) < 0.98  # nothing clamped: differences are visible
    yield model, window, ref
    torch.set_num_threads(threads)


def _seam_errors(out: torch.Tensor, ref: torch.Tensor, plan: TilePlan) -> tuple[float, float]:
    """Max error within 2 pixels of an inner tile border, and elsewhere (both 16 pixels away from the
    frame's edges)."""
    err = (out - ref).abs().amax(1)[0]  # (H, W)
    h, w = err.shape
    border = torch.zeros(h, w, dtype=torch.bool)
    th, tw = plan.size
    for y in plan.ys[1:]:
        border[y - 2 : y + 2] = True
    for y in plan.ys[:-1]:
        border[y + th - 2 : y + th + 2] = True
    for x in plan.xs[1:]:
        border[:, x - 2 : x + 2] = True
    for x in plan.xs[:-1]:
        border[:, x + tw - 2 : x + tw + 2] = True
    inner = torch.zeros(h, w, dtype=torch.bool)
    inner[16:-16, 16:-16] = True
    return float(err[border & inner].max()), float(err[inner & ~border].max())


def test_tiled_mini_matches_untiled_without_seams(mini_window):
    """The real architecture, whose receptive field spans the frame: tiled and untiled results agree to
    within 0.02 (5 codes in 8 bits; measured 0.006) everywhere, 1e-3 on average, and the error along tile
    borders is of the same size as elsewhere (measured 0.0064 vs 0.0050). What remains comes from the
    network's global-average layers (squeeze-excitation, TENet gating), which see a tile, not the frame."""
    model, window, ref = mini_window
    interp = Interpolator(model, device="cpu", tile=128, tile_overlap=32)
    plan = interp.tile_plan(1, 200, 256)
    assert plan is not None and plan.count == 9 and plan.size == (128, 128)
    out = interp(window)
    diff = (out - ref).abs()
    assert float(diff.max()) < 0.02 and float(diff.mean()) < 1e-3
    at_border, elsewhere = _seam_errors(out, ref, plan)
    assert at_border < 2.5 * elsewhere + 1e-3, (at_border, elsewhere)


def test_seam_check_detects_unblended_tiles(mini_window):
    """Control for the test above: abutting tiles (overlap 0, nothing to blend) leave visible seams, and
    the same checks catch them."""
    model, window, ref = mini_window
    interp = Interpolator(model, device="cpu", tile=128, tile_overlap=0)
    plan = interp.tile_plan(1, 200, 256)
    assert plan is not None and plan.ys == (0, 128) and plan.xs == (0, 128)
    out = interp(window)
    at_border, elsewhere = _seam_errors(out, ref, plan)
    assert float((out - ref).abs().max()) > 0.02 and at_border > 2.5 * elsewhere + 1e-3


def test_auto_tiling_on_cpu_stays_within_the_memory_budget():
    torch.manual_seed(0)
    window = torch.rand(1, 4, 3, 300, 260)
    ref = Interpolator(Pointwise(), device="cpu", tile=None)(window)
    whole = Pointwise()
    Interpolator(whole, device="cpu")(window)  # default budget: a 384x384 padded frame runs whole
    assert whole.sizes == [(384, 384)]
    budget_pixels = 128 * 256
    model = Pointwise()
    interp = Interpolator(model, device="cpu", memory_budget=budget_pixels * BYTES_PER_PIXEL_MINI)
    out = interp(window)
    torch.testing.assert_close(out, ref, rtol=0, atol=1e-6)
    assert len(model.sizes) > 1 and all(h * w <= budget_pixels and h % 128 == w % 128 == 0 for h, w in model.sizes)


@pytest.mark.parametrize("height,width", [(2160, 3840), (4320, 7680), (16, 16384), (1080, 1920)])
def test_auto_tile_shapes_for_large_frames(height, width):
    budget = CPU_MEMORY_BUDGET // BYTES_PER_PIXEL_MINI
    shape = auto_tile(height, width, budget, DEFAULT_TILE_OVERLAP)
    assert shape is not None
    plan = TilePlan.make(-(-height // 128) * 128, -(-width // 128) * 128, shape, DEFAULT_TILE_OVERLAP)
    assert plan.size[0] * plan.size[1] <= budget
    padded = (-(-height // 128) * 128) * (-(-width // 128) * 128)
    assert plan.padded_pixels <= 1.35 * padded  # overlaps cost at most 35 % more work
    assert auto_tile(480, 854, budget, DEFAULT_TILE_OVERLAP) is None  # 480p still runs whole


def test_a_16k_wide_frame_runs_in_tiles_on_the_cpu():
    """Extreme sizes (issue 7): a 16384-pixel-wide frame is neither refused nor run whole: the default
    (auto) tiling cuts it into tiles within the CPU budget, and a per-pixel model gives the untiled result."""
    torch.manual_seed(0)
    window = torch.rand(1, 4, 3, 16, 16384)
    ref = Interpolator(Pointwise(), device="cpu", tile=None)(window)
    model = Pointwise()
    interp = Interpolator(model, device="cpu")
    plan = interp.tile_plan(1, 16, 16384)
    assert plan is not None and plan.count > 1
    out = interp(window)
    assert out.shape == (1, 3, 16, 16384)
    torch.testing.assert_close(out, ref, rtol=0, atol=1e-6)
    budget = CPU_MEMORY_BUDGET // BYTES_PER_PIXEL_MINI
    assert len(model.sizes) == plan.count and all(h * w <= budget for h, w in model.sizes)


def test_out_of_memory_retries_in_smaller_tiles(caplog):
    torch.manual_seed(0)
    window = torch.rand(1, 4, 3, 250, 380)  # padded to 256x384
    ref = Interpolator(Pointwise(), device="cpu", tile=None)(window)
    model = Pointwise(oom_above=128 * 128)
    interp = Interpolator(model, device="cpu")
    with caplog.at_level("WARNING", logger="vfi_mini"):
        out = interp(window)
        out2 = interp(window)
    torch.testing.assert_close(out, ref, rtol=0, atol=1e-6)
    torch.testing.assert_close(out2, ref, rtol=0, atol=1e-6)
    warnings = [r for r in caplog.records if "out of memory" in r.getMessage()]
    assert len(warnings) == 1 and "continuing in tiles" in warnings[0].getMessage()  # warned once
    assert interp._oom_tile == 128 and set(model.sizes) == {(128, 128)}  # the size that fitted is kept
    with pytest.raises(ProcessingError, match="out of memory.*smallest tiles"):
        Interpolator(Pointwise(oom_above=0), device="cpu")(window)
    with pytest.raises(ProcessingError, match="out of memory.*--tile"):
        Interpolator(Pointwise(oom_above=128 * 128), device="cpu", tile=None)(window)
    with pytest.raises(ProcessingError, match="out of memory.*smaller --tile"):
        Interpolator(Pointwise(oom_above=128 * 128), device="cpu", tile=256)(window)


def test_bad_tile_settings():
    model = Pointwise()
    with pytest.raises(UsageError, match="at least 128"):
        Interpolator(model, device="cpu", tile=64)
    with pytest.raises(UsageError, match="less than half the tile size"):
        Interpolator(model, device="cpu", tile=256, tile_overlap=128)
    with pytest.raises(UsageError, match="'auto' or 'off'"):
        Interpolator(model, device="cpu", tile="big")
    assert Interpolator(model, device="cpu", tile=300).tile == 256  # rounded down to a multiple of 128
    assert Interpolator(model, device="cpu", tile="off").tile is None


@pytest.mark.gpu
@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")
def test_a_real_cuda_out_of_memory_falls_back_to_tiles():
    """A 4K window with the real Mini network under a 3 GiB CUDA cap: the whole frame runs out of memory,
    the interpolator catches the real OutOfMemoryError and finishes in tiles (what a small card sees)."""
    total = torch.cuda.get_device_properties(0).total_memory
    torch.cuda.empty_cache()
    torch.cuda.set_per_process_memory_fraction(min(1.0, 3 * 2**30 / total), 0)
    try:
        torch.manual_seed(0)
        interp = Interpolator(build_model(PRESETS["stmfnet-mini"]), device="cuda", tile="auto")
        out = interp(torch.rand(1, 4, 3, 2160, 3840))
        assert out.shape == (1, 3, 2160, 3840) and interp._oom_tile is not None
    finally:
        torch.cuda.set_per_process_memory_fraction(1.0, 0)
        torch.cuda.empty_cache()


def test_auto_precision_is_bf16_only_on_cpus_with_native_bf16(monkeypatch):
    import vfi_mini.interpolator as interp_mod

    cpu, cuda = torch.device("cpu"), torch.device("cuda", 0)
    for native, expected in ((True, "bf16"), (False, "fp32")):
        monkeypatch.setattr(interp_mod, "cpu_has_native_bf16", lambda native=native: native)
        assert interp_mod.resolve_precision("auto", cpu) == expected
        assert interp_mod.resolve_precision("auto", cuda) == "fp32"
        assert interp_mod.resolve_precision("fp32", cpu) == "fp32"
        interp = Interpolator(Pointwise(), device="cpu")  # the default is auto
        assert interp.precision == expected and interp.dtype == interp_mod.PRECISIONS[expected]


# --- batches, pinned host memory and CUDA graphs ------------------------------------------------------------

requires_cuda = pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")


def test_a_batch_of_windows_matches_one_window_at_a_time():
    torch.manual_seed(0)
    interp = Interpolator(build_model(TINY), device="cpu", precision="fp32")
    windows = torch.rand(3, 4, 3, 40, 60)
    one_by_one = torch.cat([interp(w[None]) for w in windows])
    torch.testing.assert_close(interp(windows), one_by_one, rtol=0, atol=1e-5)


def test_cuda_graphs_need_a_cuda_device():
    with pytest.raises(UsageError, match="CUDA graphs"):
        Interpolator(Pointwise(), device="cpu", cuda_graphs=True)


def test_a_failed_graph_capture_warns_once_and_runs_eagerly(monkeypatch, caplog):
    """Simulated on any machine: graphs switched on after construction, and the first CUDA step of the
    capture raises."""

    def fail(*args, **kwargs):
        raise RuntimeError("capture not supported (test)")

    window = torch.rand(2, 4, 3, 40, 60)
    ref = Interpolator(Pointwise(), device="cpu")(window)
    interp = Interpolator(Pointwise(), device="cpu")
    interp.cuda_graphs = True
    monkeypatch.setattr(torch.cuda, "device", fail)
    with caplog.at_level(logging.WARNING, logger="vfi_mini"):
        outs = [interp(window), interp(window), interp(window[:1])]
    warnings = [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING]
    assert len(warnings) == 1 and "CUDA graph" in warnings[0] and "capture not supported" in warnings[0]
    assert not interp.cuda_graphs and not interp._graphs
    torch.testing.assert_close(outs[0], ref, rtol=0, atol=0)
    torch.testing.assert_close(outs[1], ref, rtol=0, atol=0)
    torch.testing.assert_close(outs[2], ref[:1], rtol=0, atol=0)


def _cuda_model(kind: str) -> nn.Module:
    torch.manual_seed(0)
    return Pointwise() if kind == "pointwise" else Offset(build_model(TINY))


@pytest.mark.gpu
@requires_cuda
@pytest.mark.parametrize("precision", ["fp32", "fp16"])
@pytest.mark.parametrize("kind", ["pointwise", "stmfnet"])
def test_cuda_graph_replay_matches_eager(kind, precision, caplog):
    """Two windows of one shape (the second replays the graph of the first), a new shape (a second capture),
    then the first shape again: every result equals the eager run's, and no capture fell back."""
    model = _cuda_model(kind)
    eager = Interpolator(model, device="cuda", precision=precision, tile=None)
    graphed = Interpolator(model, device="cuda", precision=precision, tile=None, cuda_graphs=True)
    captured: list[tuple[int, ...]] = []
    capture = graphed._capture
    graphed._capture = lambda x: captured.append(tuple(x.shape)) or capture(x)  # type: ignore[method-assign]
    g = torch.Generator().manual_seed(1)
    small, large = (2, 4, 3, 40, 60), (1, 4, 3, 72, 130)
    windows = [torch.rand(shape, generator=g) for shape in (small, small, large, small)]
    with caplog.at_level(logging.WARNING, logger="vfi_mini"):
        for window in windows:
            got, want = graphed(window), eager(window)
            assert got.device.type == "cpu" and got.shape == want.shape
            tol = 1e-5 if precision == "fp32" else 1e-3
            torch.testing.assert_close(got, want, rtol=0, atol=tol)
    fallbacks = [r.getMessage() for r in caplog.records if "CUDA graph" in r.getMessage()]
    assert not fallbacks, fallbacks
    assert graphed.cuda_graphs and captured == [small, large] and set(graphed._graphs) == {small, large}


@pytest.mark.gpu
@requires_cuda
def test_cuda_windows_go_through_pinned_memory():
    """Results come back on the CPU, equal to the device result, and are not overwritten by later calls; the
    staging buffer is pinned, kept for windows of the same shape and replaced when the shape changes."""
    interp = Interpolator(_cuda_model("pointwise"), device="cuda", tile=None)
    g = torch.Generator().manual_seed(2)
    a, b, c = (
        torch.rand(2, 4, 3, 40, 60, generator=g),
        torch.rand(2, 4, 3, 40, 60, generator=g),
        torch.rand(1, 4, 3, 50, 70, generator=g),
    )
    out_a = interp(a)
    staging = interp._staging
    assert staging is not None and staging.is_pinned() and out_a.device.type == "cpu"
    kept = out_a.clone()
    out_b = interp(b)
    assert interp._staging is staging  # same shape: the buffer is reused
    torch.testing.assert_close(out_a, kept, rtol=0, atol=0)
    out_c = interp(c)
    assert interp._staging is not staging and interp._staging.shape == c.shape
    for window, out in ((a, out_a), (b, out_b), (c, out_c)):
        torch.testing.assert_close(out, interp.interpolate(window).cpu(), rtol=0, atol=0)
