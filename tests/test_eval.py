"""`vfi_mini.evaluate` and `vfi-mini eval`: every layout from fixture folders made here, metrics through
the common code path, the baselines (repeat, blend, FFmpeg minterpolate), CLI exit codes and JSON.

Fixture frames say which frame they are: channel 0 = 16 * frame number (uniform), channel 1 = a code of
the sequence, channel 2 = 8 * x (so crops can be checked). The `Oracle` interpolator reads the frame
numbers of its window, records them, and returns the true middle frame (channel 0 = 16 * the mean of the
I1 and I2 numbers, channels 1-2 from I1), which for the lossless (PNG, .npy) layouts equals the ground
truth exactly: the capped PSNR proves that the target read is the frame between I1 and I2.
"""

from __future__ import annotations

import csv
import json
import math
from pathlib import Path

import numpy as np
import pytest
import torch
from click.testing import CliRunner
from media import make_video, pattern

import vfi_mini.cli.double as cli_double
import vfi_mini.io.minterpolate as mi
from vfi_mini import metrics
from vfi_mini.cli import cli
from vfi_mini.errors import InputError, ProcessingError, UsageError
from vfi_mini.evaluate import (
    LAYOUTS,
    compute_metrics,
    evaluate,
    evaluate_methods,
    make_baseline,
    open_test_set,
)
from vfi_mini.io import clips as cio

H, W = 12, 16
CAP = -10 * math.log10(1e-8)  # 80 dB: the PSNR of a perfect prediction (spec §10.1)
REPEAT_DB = -10 * math.log10(16**2 / 3 / 255**2 + 1e-8)  # one channel off by 16 codes: 28.82 dB


def coded(k: int, seq: int = 0, h: int = H, w: int = W) -> np.ndarray:
    xx = np.broadcast_to(np.arange(w), (h, w))
    return np.stack([np.full((h, w), 16 * k), np.full((h, w), 20 + 40 * seq), 8 * xx], -1).astype(np.uint8)


def number(frame: torch.Tensor) -> float:
    """Frame number of a (3, h, w) tensor written by `coded`."""
    return float(frame[0].mean()) * 255 / 16


class Oracle:
    """The true middle frame of a coded window; records (I0..I3 numbers, sequence code, size)."""

    name = "oracle"

    def __init__(self) -> None:
        self.seen: list[tuple] = []

    def __call__(self, window: torch.Tensor) -> torch.Tensor:
        w = window[0]
        nums = tuple(round(number(f)) for f in w)
        self.seen.append(
            (nums, round(float(w[1, 1].mean()) * 255), tuple(w.shape[-2:]), round(float(w[1, 2, 0, 0]) * 255))
        )
        out = w[1].clone()
        out[0] = 16 * (nums[1] + nums[2]) / 2 / 255
        return out.unsqueeze(0)


# ------------------------------------------------------------------------------------- fixture sets


@pytest.fixture(scope="module")
def data_root(tmp_path_factory) -> Path:
    """One folder holding every published layout, tiny."""
    root = tmp_path_factory.mktemp("testsets")
    # UCF101: frame0..3 are frames 0, 2, 4, 6; framet is frame 3
    for s in range(3):
        d = root / "ucf101" / f"v_{s}"
        d.mkdir(parents=True)
        for name, k in (("frame0", 0), ("frame1", 2), ("frame2", 4), ("frame3", 6), ("framet", 3)):
            cio.write_image(d / f"{name}.png", coded(k, s))
    # DAVIS: JPEG, 5-digit names from 0; 12 and 9 frames
    for s, n in ((0, 12), (1, 9)):
        d = root / "davis90" / f"seq{s}"
        d.mkdir(parents=True)
        for k in range(n):
            cio.write_image(d / f"{k:05d}.jpg", coded(k, s))
    # VFITex: PNG, 3-digit 1-based names; the 4K sequence is twice the size and centre-cropped
    for s, (name, n, scale) in enumerate((("plants", 12, 1), ("water4K", 10, 2))):
        d = root / "vfitex" / name
        d.mkdir(parents=True)
        for k in range(1, n + 1):
            cio.write_image(d / f"{k:03d}.png", coded(k, s, H * scale, W * scale))
    # SNU-FILM: frames 0..15 of two sequences; lists in the published form (data/SNU-FILM/... paths)
    for s in range(2):
        d = root / "snufilm" / "test" / "GOPRO_test" / f"GOPR{s}"
        d.mkdir(parents=True)
        for k in range(16):
            cio.write_image(d / f"{k:06d}.png", coded(k, s))

    def line(s: int, *ks: int) -> str:
        return " ".join(f"data/SNU-FILM/test/GOPRO_test/GOPR{s}/{k:06d}.png" for k in ks)

    (root / "snufilm" / "test-easy.txt").write_text(
        "\n".join([line(0, 1, 2, 3), line(0, 5, 6, 7), line(1, 4, 5, 6), line(1, 11, 12, 13)]) + "\n"
    )
    (root / "snufilm" / "test-medium.txt").write_text("\n".join([line(0, 4, 6, 8), line(1, 8, 10, 12)]) + "\n")
    # Vimeo-90K septuplets: im1..im7 are frames 1..7
    base = root / "vimeo_septuplet"
    names = ["00001/0001", "00001/0002", "00002/0001"]
    for s, n in enumerate(names):
        d = base / "sequences" / n
        d.mkdir(parents=True)
        for k in range(1, 8):
            cio.write_image(d / f"im{k}.png", coded(k, s))
    (base / "sep_testlist.txt").write_text("\n".join(names) + "\n")
    return root


@pytest.fixture(scope="module")
def npy_dir(tmp_path_factory) -> Path:
    """Two .npy clips: 'a' with frames 0..9, 'b' with frames 0..7."""
    d = tmp_path_factory.mktemp("npy") / "clips"
    d.mkdir()
    np.save(d / "a.npy", np.stack([coded(k, 0) for k in range(10)]))
    np.save(d / "b.npy", np.stack([coded(k, 1) for k in range(8)]))
    return d


# ---------------------------------------------------------------------------------------- layouts


def test_ucf101(data_root):
    oracle = Oracle()
    r = evaluate(oracle, data_root, "ucf101")
    assert [s[0] for s in oracle.seen] == [(0, 2, 4, 6)] * 3
    assert [s[1] for s in oracle.seen] == [20, 60, 100]  # sample order v_0, v_1, v_2
    assert len(r.rows) == 3 and not r.per_sequence
    assert r.means()["psnr"] == pytest.approx(CAP) and r.means()["ssim_matlab"] == pytest.approx(1.0)
    assert r.means()["ssim"] == pytest.approx(1.0)
    # the set's own folder works as well as its parent
    assert len(open_test_set(data_root / "ucf101", "ucf101")) == 3


def test_davis_windows_and_sequence_mean(data_root):
    oracle = Oracle()
    r = evaluate(oracle, data_root, "davis")
    # n = 12: t = 0, 2, 4 (t < n - 6); n = 9: t = 0, 2
    assert [s[0] for s in oracle.seen] == [
        (0, 2, 4, 6),
        (2, 4, 6, 8),
        (4, 6, 8, 10),
        (0, 2, 4, 6),
        (2, 4, 6, 8),
    ]
    assert [row.name for row in r.rows][:3] == ["seq0/00003", "seq0/00005", "seq0/00007"]
    assert r.per_sequence and set(r.group_means()) == {"seq0", "seq1"}
    # the set mean is the mean of the two sequence means, not of the five samples
    repeat = evaluate(make_baseline("repeat"), data_root, "davis")
    gm = repeat.group_means()
    assert repeat.means()["psnr"] == pytest.approx((gm["seq0"]["psnr"] + gm["seq1"]["psnr"]) / 2)
    assert gm["seq0"]["samples"] == 3 and gm["seq1"]["samples"] == 2


def test_vfitex_windows_and_4k_crop(data_root):
    oracle = Oracle()
    r = evaluate(oracle, data_root, "vfitex")
    nums = [s[0] for s in oracle.seen]
    # n = 12: t = 1, 3, 5 (t < n - 5); n = 10: t = 1, 3
    assert nums == [(1, 3, 5, 7), (3, 5, 7, 9), (5, 7, 9, 11), (1, 3, 5, 7), (3, 5, 7, 9)]
    sizes = [s[2] for s in oracle.seen]
    assert sizes[:3] == [(H, W)] * 3
    assert sizes[3:] == [(H, W)] * 2  # 24x32 centre-cropped to 12x16 ...
    assert [s[3] for s in oracle.seen][3:] == [8 * 8] * 2  # ... starting at x = 8
    assert r.means()["psnr"] == pytest.approx(CAP)
    assert [row.name for row in r.rows][0] == "plants/004"


@pytest.mark.parametrize(
    "mode, expected, skipped",
    [
        # off = 2: (1, 2, 3) needs frame -1 and is skipped; (11, 12, 13) reaches frame 15, the last one
        ("easy", [(3, 5, 7, 9), (2, 4, 6, 8), (9, 11, 13, 15)], 1),
        # off = 4: (8, 10, 12) needs frame 16 and is skipped
        ("medium", [(0, 4, 8, 12)], 1),
    ],
)
def test_snufilm(data_root, mode, expected, skipped):
    oracle = Oracle()
    ts = open_test_set(data_root, f"snufilm-{mode}")
    r = evaluate(oracle, ts)
    assert [s[0] for s in oracle.seen] == expected
    assert ts.skipped == skipped and r.skipped == skipped
    assert r.means()["psnr"] == pytest.approx(CAP)


def test_vimeo_septuplet(data_root):
    oracle = Oracle()
    r = evaluate(oracle, data_root, "vimeo-septuplet")
    assert [s[0] for s in oracle.seen] == [(1, 3, 5, 7)] * 3
    assert [row.name for row in r.rows] == ["00001/0001", "00001/0002", "00002/0001"]
    assert r.means()["psnr"] == pytest.approx(CAP)


def test_video_layout_npy_folder(npy_dir):
    oracle = Oracle()
    r = evaluate(oracle, npy_dir, "video")
    nums = [s[0] for s in oracle.seen]
    # each frame t with t-3 and t+3 inside the clip: 'a' t = 3..6, 'b' t = 3..4
    assert nums == [(t - 3, t - 1, t + 1, t + 3) for t in (3, 4, 5, 6)] + [(t - 3, t - 1, t + 1, t + 3) for t in (3, 4)]
    assert set(r.group_means()) == {"clips/a", "clips/b"}
    assert r.means()["psnr"] == pytest.approx(CAP)
    # blend is exact on this constant-speed ramp, repeat is 16 codes off in one channel
    res = evaluate_methods(
        {"repeat": make_baseline("repeat"), "blend": make_baseline("blend")}, open_test_set(npy_dir, "video")
    )
    assert res["blend"].means()["psnr"] == pytest.approx(CAP)
    assert res["repeat"].means()["psnr"] == pytest.approx(REPEAT_DB)
    # --limit: evenly spaced per clip
    oracle = Oracle()
    evaluate(oracle, npy_dir / "a.npy", "video", limit=2)
    assert [s[0][1] + 1 for s in oracle.seen] == [3, 6]


def test_heldout_layout(tmp_path):
    cache = tmp_path / "clips"
    cache.mkdir()
    entries = []
    for name, clip, n in (
        ("src.held.000", "src/held", 9),
        ("src.held.001", "src/held", 8),
        ("src.train.000", "src/train", 12),
    ):
        np.save(cache / f"{name}.npy", np.stack([coded(k) for k in range(n)]))
        entries.append({"name": name, "file": f"{name}.npy", "clip": clip, "source": "src"})
    (cache / "index.json").write_text(json.dumps({"clips": entries}))
    splits = tmp_path / "splits.json"
    splits.write_text(json.dumps({"val": ["src/held"]}))
    oracle = Oracle()
    r = evaluate(oracle, cache, "heldout", splits_file=splits)
    assert set(r.group_means()) == {"src/held"}
    assert len(r.rows) == 3 + 2  # 9 frames: t = 3..5; 8 frames: t = 3..4
    assert r.means()["psnr"] == pytest.approx(CAP)
    assert len(open_test_set(cache, "heldout", limit=2, splits_file=splits)) == 2
    # the whole cache with the video layout
    assert len(open_test_set(cache, "video")) == 5 + 6
    other = tmp_path / "other-splits.json"  # (splits files are cached by name)
    other.write_text(json.dumps({"val": ["other/clip"]}))
    with pytest.raises(InputError, match="held-out"):
        open_test_set(cache, "heldout", splits_file=other)


def test_video_layout_encoded_video(tmp_path):
    path = make_video(tmp_path / "moving.mp4", frames=14, size=(64, 48), audio=False)
    ts = open_test_set(path, "video")
    assert len(ts) == 14 - 6 and {s.group for s in ts.samples} == {f"{tmp_path.name}/moving"}
    res = evaluate_methods({b: make_baseline(b) for b in ("repeat", "blend")}, ts)
    frames, target = ts.samples[0].load()
    assert frames.shape == (4, 3, 48, 64) and target.shape == (3, 48, 64)
    assert 15 < res["repeat"].means()["psnr"] < res["blend"].means()["psnr"] < 60


def test_errors(tmp_path, data_root):
    with pytest.raises(InputError, match="does not exist"):
        open_test_set(tmp_path / "missing", "davis")
    with pytest.raises(InputError, match="unknown layout"):
        open_test_set(data_root, "middlebury")
    (tmp_path / "empty").mkdir()
    for layout in ("ucf101", "davis", "vfitex", "snufilm-hard", "vimeo-septuplet", "video"):
        with pytest.raises(InputError):
            open_test_set(tmp_path / "empty", layout)
    with pytest.raises(UsageError):
        make_baseline("nearest")

    def bad(window):
        return window[:, 1, :2]

    with pytest.raises(ProcessingError, match="returned"):
        evaluate(bad, data_root, "ucf101")
    assert set(LAYOUTS) >= {
        "ucf101",
        "davis",
        "vfitex",
        "video",
        "heldout",
        "vimeo-septuplet",
        "snufilm-extreme",
    }


# ---------------------------------------------------------------------------------------- metrics


def test_compute_metrics_matches_reference():
    g = torch.Generator().manual_seed(0)
    for shape in ((3, 23, 31), (3, 7, 9)):
        a = torch.rand(shape, generator=g)
        b = (a + 0.1 * torch.randn(shape, generator=g)).clamp(0, 1)
        m = compute_metrics(b, a)
        assert m["psnr"] == pytest.approx(float(metrics.psnr(b[None], a[None])[0]), abs=1e-9)
        assert m["ssim_matlab"] == pytest.approx(float(metrics.ssim_matlab(b[None], a[None])[0]), abs=1e-9)
        assert m["ssim"] == pytest.approx(float(metrics.ssim(b[None], a[None])[0]), abs=1e-9)
    perfect = compute_metrics(a, a)
    assert perfect == {
        "psnr": pytest.approx(CAP),
        "ssim_matlab": pytest.approx(1.0),
        "ssim": pytest.approx(1.0),
    }


# ------------------------------------------------------------------------------------ minterpolate


def _moving(times, w=96, h=64) -> list[np.ndarray]:
    return [(pattern(t, w, h) * 255).round().astype(np.uint8) for t in times]


def _psnr(a: np.ndarray, b: np.ndarray) -> float:
    return 10 * math.log10(255**2 / np.mean((a.astype(np.float64) - b) ** 2))


@pytest.mark.parametrize("options", [None, mi.AOBMC_OPTIONS])
def test_minterpolate_is_motion_compensated(options):
    frames = _moving([0, 2, 4, 6])  # 6 px per frame in one channel
    gt = _moving([3])[0]
    out = mi.minterpolate_middle(frames, options)
    assert out.shape == gt.shape and out.dtype == np.uint8
    blend = (frames[1].astype(np.float64) + frames[2]) / 2
    assert _psnr(out, gt) > _psnr(blend, gt) + 2 > _psnr(frames[1], gt) + 2
    # a new frame, not a copy of a neighbour
    assert np.abs(out.astype(int) - frames[1]).mean() > 10 and np.abs(out.astype(int) - frames[2]).mean() > 10
    assert np.array_equal(out, mi.minterpolate_middle(frames, options))  # deterministic


def test_minterpolate_scene_detection_is_off(monkeypatch):
    # motion that starts at I1: FFmpeg's default scene detection (scd=fdiff) sees a cut and repeats I1
    frames = _moving([0, 0, 3, 6], 64, 48)
    out = mi.minterpolate_middle(frames)
    assert np.abs(out.astype(int) - frames[1]).mean() > 10
    monkeypatch.setattr(mi, "_FIXED", {"fps": "2"})
    copy = mi.minterpolate_middle(frames)
    assert np.abs(copy.astype(int) - frames[1]).mean() < 1  # what scd=none prevents


def test_minterpolate_small_frames_and_bad_input():
    frames = _moving([0, 1, 2, 3], 20, 9)  # below the filter's 32x32 minimum: padded and cropped back
    assert mi.minterpolate_middle(frames).shape == (9, 20, 3)
    with pytest.raises(InputError):
        mi.minterpolate_middle(frames[:3])
    with pytest.raises(ValueError, match="fixed"):
        mi.minterpolate_middle(frames, {"fps": "50"})


def test_minterpolate_baseline_through_evaluate(tmp_path):
    np.save(tmp_path / "moving.npy", np.stack(_moving([2 * k for k in range(9)])))
    ts = open_test_set(tmp_path / "moving.npy", "video")
    res = evaluate_methods({b: make_baseline(b) for b in ("repeat", "blend", "minterpolate", "minterpolate-aobmc")}, ts)
    psnr = {k: v.means()["psnr"] for k, v in res.items()}
    assert psnr["minterpolate"] > psnr["blend"] + 2 and psnr["minterpolate-aobmc"] > psnr["blend"] + 2
    assert psnr["blend"] > psnr["repeat"]


# --------------------------------------------------------------------------------------------- CLI


def run(*args):
    return CliRunner().invoke(cli, [str(a) for a in args], catch_exceptions=False)


def _one_error_line(result, code: int, fragment: str) -> None:
    assert result.exit_code == code, result.output
    lines = [ln for ln in result.stderr.splitlines() if ln.strip()]
    assert len(lines) == 1 and lines[0].startswith("vfi-mini: error:") and fragment in lines[0], result.stderr


def test_cli_json_and_csv(data_root, tmp_path):
    out = tmp_path / "rows.csv"
    r = run("eval", "--data", data_root, "--layout", "davis", "--baseline", "blend", "--json", "--csv", out, "-q")
    assert r.exit_code == 0, r.output
    d = json.loads(r.stdout)
    assert d["layout"] == "davis" and d["method"] == "blend" and d["samples"] == 5
    assert set(d["mean"]) == {"psnr", "ssim_matlab", "ssim"} and set(d["sequences"]) == {"seq0", "seq1"}
    assert len(d["rows"]) == 5 and d["rows"][0]["sample"] == "seq0/00003"
    rows = list(csv.DictReader(out.open()))
    assert len(rows) == 5 and rows[0]["method"] == "blend" and float(rows[0]["psnr"]) > 20


def test_cli_model_path_and_text(data_root, monkeypatch):
    seen = {}

    def load(weights, device, precision, threads):
        seen["args"] = (weights, device, precision, threads)
        return Oracle()

    monkeypatch.setattr(cli_double, "load_interpolator", load)
    r = run("eval", "--data", data_root, "--layout", "ucf101", "-w", "mine.pth", "--threads", "1", "--json")
    assert r.exit_code == 0, r.output
    d = json.loads(r.stdout)
    assert d["method"] == "model:mine.pth" and d["mean"]["psnr"] == pytest.approx(CAP)
    assert seen["args"] == ("mine.pth", "auto", "auto", 1)
    r = run("eval", "--data", data_root, "--layout", "vfitex", "--baseline", "repeat", "--limit", "1")
    assert r.exit_code == 0, r.output
    assert "plants" in r.stdout and "water4K" in r.stdout and "2 samples, 2 sequences" in r.stdout


def test_cli_exit_codes(data_root, tmp_path):
    _one_error_line(
        run("eval", "--data", tmp_path / "nope", "--layout", "davis", "--baseline", "blend"),
        3,
        "does not exist",
    )
    _one_error_line(run("eval", "--data", data_root, "--layout", "kitti", "--baseline", "blend"), 3, "unknown layout")
    (tmp_path / "empty").mkdir()
    _one_error_line(
        run("eval", "--data", tmp_path / "empty", "--layout", "ucf101", "--baseline", "blend"),
        3,
        "no ucf101 samples",
    )
    _one_error_line(run("eval", "--data", data_root, "--layout", "ucf101", "-w", tmp_path / "none.pth"), 4, "not found")
    bad = tmp_path / "bad.pth"
    bad.write_bytes(b"not a checkpoint")
    _one_error_line(run("eval", "--data", data_root, "--layout", "ucf101", "-w", bad), 4, "bad.pth")
    _one_error_line(
        run("eval", "--data", data_root, "--layout", "ucf101", "-w", bad, "--baseline", "blend"),
        2,
        "not both",
    )
