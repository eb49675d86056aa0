"""Training loop: overfitting, distillation from both teacher kinds, resume equivalence, DDP on Gloo."""

import json
import math
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from helpers import random_state_dict_from_manifest, save_official
from media import make_video

from vfi_mini.errors import UsageError
from vfi_mini.models import STMFNetConfig
from vfi_mini.train import TrainConfig, TrainingInterrupted, parse_duration, train
from vfi_mini.train.loop import coarse_warp_loss, effective_displacement, flow_distillation_loss, sharp_flow_loss
from vfi_mini.train.losses import LapLoss
from vfi_mini.weights import load_model, save_weights

TINY = STMFNetConfig(
    feat_channels=(32, 32, 32, 32),
    kernel_hidden=6,
    grid_channels=(6, 6, 6),
    tenet_channels=(4, 4, 4, 4),
    tenet_decoder=(4, 4, 4, 4, 4),
    tenet_fuse=2,
    flow=False,
)


@pytest.fixture(scope="module")
def clip(tmp_path_factory):
    """A real encoded video (PyAV, libx264) of a moving pattern: 9 frames of 64x64."""
    d = tmp_path_factory.mktemp("clip")
    return make_video(d / "moving.mp4", frames=9, size=(64, 64), audio=False, lossless=True)


@pytest.fixture(scope="module")
def tiny_arch(tmp_path_factory):
    p = tmp_path_factory.mktemp("arch") / "tiny.json"
    p.write_text(json.dumps(TINY.to_dict()))
    return str(p)


def _cfg(tmp_path, clip, **kw):
    base = dict(
        data=[f"video:{clip}"],
        out=str(tmp_path / "run"),
        crop=64,
        batch_size=2,
        seed=3,
        log_every=1,
        ckpt_every=1000,
        val_every=1000,
        threads=2,
    )
    base.update(kw)
    return TrainConfig(**base)


def _rows(run: Path) -> list[dict]:
    """The rows of a run's metrics.jsonl (training log lines and validations)."""
    return [json.loads(line) for line in (run / "metrics.jsonl").read_text().splitlines()]


def _losses(run: Path) -> list[float]:
    return [r["loss"] for r in _rows(run) if "loss" in r]


def test_mini_overfits_a_clip(tmp_path, clip):
    summary = train(_cfg(tmp_path, clip, arch="stmfnet-mini", max_steps=24, lr=2e-3))
    losses = _losses(tmp_path / "run")
    assert summary["step"] == 24 and len(losses) == 24
    assert sum(losses[-4:]) / 4 < 0.6 * sum(losses[:4]) / 4, losses
    # The checkpoint is in the official format and loads as the Mini.
    model, ckpt = load_model(tmp_path / "run" / "last.pth")
    assert ckpt.config.preset_name() == "stmfnet-mini" and ckpt.epoch == 24
    raw = torch.load(tmp_path / "run" / "last.pth", weights_only=True)
    assert set(raw) == {"epoch", "state_dict"}


def test_distillation_from_an_official_format_stmfnet_teacher(tmp_path, clip):
    teacher = save_official(tmp_path / "stmfnet.pth", random_state_dict_from_manifest("stmfnet", seed=5))
    train(_cfg(tmp_path, clip, arch="stmfnet-mini", teacher=str(teacher), max_steps=12, lr=2e-3))
    losses = _losses(tmp_path / "run")
    assert sum(losses[-3:]) < 0.7 * sum(losses[:3]), losses


def _tiny_rife(path: Path) -> Path:
    from vfi_mini.teachers.rife import PRESETS, IFNet

    torch.manual_seed(0)
    torch.save(IFNet(PRESETS["rife-tiny"]).state_dict(), path)
    return path


def test_distillation_from_rife_with_flow_and_teacher_only_data(tmp_path, clip, tiny_arch):
    rife = _tiny_rife(tmp_path / "flownet.pkl")
    summary = train(
        _cfg(
            tmp_path,
            clip,
            arch=tiny_arch,
            teacher=str(rife),
            flow_distill=0.01,
            teacher_only_data=[f"video:{clip}?consecutive=1"],
            max_steps=12,
            lr=3e-3,
        )
    )
    assert summary["step"] == 12
    losses = _losses(tmp_path / "run")
    assert sum(losses[-3:]) < sum(losses[:3]), losses


def test_effective_displacement_and_flow_loss():
    b, k, h, w = 1, 5, 4, 6
    weight = torch.zeros(b, k * k, h, w)
    weight[:, 7] = 1.0  # tap (1, 2): row offset 1 - 2 = -1, column offset 2 - 2 = 0
    alpha = torch.full((b, k * k, h, w), 0.25)
    beta = torch.full((b, k * k, h, w), -0.5)
    disp = effective_displacement(weight, alpha, beta, dilation=1)
    torch.testing.assert_close(disp[:, 0], torch.full((b, h, w), -0.5))  # x
    torch.testing.assert_close(disp[:, 1], torch.full((b, h, w), -0.75))  # y
    # A displacement equal to the teacher's flow, scaled per AdaCoF scale, costs nothing.
    maps, teacher = [], {}
    flow = torch.randn(b, 2, 8, 12)
    teacher["flow_t0"] = teacher["flow_t1"] = flow
    for scale, size in ((0.5, (4, 6)), (1.0, (8, 12)), (2.0, (16, 24))):
        target = torch.nn.functional.interpolate(flow, size=size, mode="bilinear", align_corners=False) * scale
        centre = torch.zeros(b, k * k, *size)
        centre[:, 12] = 1.0  # the centre tap has no built-in displacement
        for _ in range(2):
            maps += [centre, target[:, 1:2].expand(b, k * k, *size), target[:, 0:1].expand(b, k * k, *size)]
    assert float(flow_distillation_loss(maps, teacher, 1)) < 1e-6


def test_resume_is_bit_for_bit(tmp_path, clip, tiny_arch):
    straight = tmp_path / "straight"
    train(_cfg(tmp_path, clip, arch=tiny_arch, out=str(straight), max_steps=6, ckpt_every=2))
    split = tmp_path / "split"
    train(_cfg(tmp_path, clip, arch=tiny_arch, out=str(split), max_steps=3))
    with pytest.raises(UsageError, match="already holds a run"):
        train(_cfg(tmp_path, clip, arch=tiny_arch, out=str(split), max_steps=6))
    train(_cfg(tmp_path, clip, arch=tiny_arch, out=str(split), max_steps=6), resume=True)
    a = torch.load(straight / "last.pth", weights_only=True)["state_dict"]
    b = torch.load(split / "last.pth", weights_only=True)["state_dict"]
    assert a.keys() == b.keys()
    for k in a:
        assert torch.equal(a[k], b[k]), k
    assert _losses(straight) == _losses(split)


def test_time_budget_and_interrupt_save_state(tmp_path, clip, tiny_arch, monkeypatch):
    import vfi_mini.train.loop as loop

    calls = {"n": 0}
    real = loop._fetch

    def interrupting_fetch(*args, **kwargs):
        calls["n"] += 1
        if calls["n"] == 3:
            raise KeyboardInterrupt
        return real(*args, **kwargs)

    monkeypatch.setattr(loop, "_fetch", interrupting_fetch)
    with pytest.raises(TrainingInterrupted) as exc_info:
        train(_cfg(tmp_path, clip, arch=tiny_arch, max_steps=50))
    assert exc_info.value.summary["step"] == 2
    state = torch.load(tmp_path / "run" / "state.pt", weights_only=True)
    assert state["step"] == 2
    assert parse_duration("1h30m") == 5400 and parse_duration("45m") == 2700 and parse_duration("90") == 90
    with pytest.raises(UsageError):
        parse_duration("soon")


def test_init_from_weights_and_custom_arch_checkpoint(tmp_path, clip, tiny_arch):
    init = tmp_path / "init.pth"
    from vfi_mini.models import build_model

    save_weights(build_model(TINY), init)
    train(_cfg(tmp_path, clip, arch=tiny_arch, init=str(init), max_steps=2))
    raw = torch.load(tmp_path / "run" / "last.pth", weights_only=True)
    assert STMFNetConfig.from_dict(raw["model_config"]) == TINY


def test_bad_training_requests(tmp_path, clip):
    from vfi_mini.errors import InputError

    with pytest.raises(InputError):
        train(_cfg(tmp_path, clip, data=[str(tmp_path / "nowhere")], max_steps=1))
    with pytest.raises(UsageError, match="--epochs, --max-steps or --time-budget"):
        train(_cfg(tmp_path, clip))
    with pytest.raises(UsageError, match="need a --teacher"):
        train(_cfg(tmp_path, clip, flow_distill=1.0, max_steps=1))
    with pytest.raises(UsageError, match="multiple of 16"):
        train(_cfg(tmp_path, clip, crop=40, max_steps=1))


def test_cli_train_and_double_with_the_result(tmp_path, clip, tiny_arch):
    run = tmp_path / "cli-run"
    cmd = [
        sys.executable,
        "-m",
        "vfi_mini",
        "train",
        "--data",
        f"video:{clip}",
        "--out",
        str(run),
        "--arch",
        tiny_arch,
        "--crop",
        "64",
        "--batch-size",
        "2",
        "--max-steps",
        "2",
        "--threads",
        "2",
        "--json",
        "-q",
    ]
    res = subprocess.run(cmd, capture_output=True, text=True, timeout=600)
    assert res.returncode == 0, res.stderr
    assert json.loads(res.stdout)["step"] == 2
    out = tmp_path / "doubled.mp4"
    res = subprocess.run(
        [
            sys.executable,
            "-m",
            "vfi_mini",
            "double",
            str(clip),
            "-o",
            str(out),
            "--weights",
            str(run / "last.pth"),
            "-q",
            "--json",
        ],
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert res.returncode == 0, res.stderr
    assert json.loads(res.stdout)["output_frames"] == 18


@pytest.mark.slow
def test_two_process_gloo_run(tmp_path, clip, tiny_arch):
    run = tmp_path / "ddp"
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    cmd = [
        sys.executable,
        "-m",
        "torch.distributed.run",
        "--standalone",
        "--nproc_per_node",
        "2",
        "-m",
        "vfi_mini",
        "train",
        "--data",
        f"video:{clip}",
        "--out",
        str(run),
        "--arch",
        tiny_arch,
        "--crop",
        "64",
        "--batch-size",
        "1",
        "--max-steps",
        "3",
        "--threads",
        "1",
        "--device",
        "cpu",
        "--log-every",
        "1",
        "-q",
    ]
    res = subprocess.run(cmd, capture_output=True, text=True, timeout=600, env=env)
    assert res.returncode == 0, res.stderr[-2000:]
    rows = _rows(run)
    assert [r["step"] for r in rows] == [1, 2, 3]  # rank 0 logs alone
    assert (run / "last.pth").is_file()


def test_teacher_cache_is_reused_across_epochs(tmp_path, clip, tiny_arch):
    rife = _tiny_rife(tmp_path / "flownet.pkl")
    cache = tmp_path / "cache"
    # 3 windows of the 9-frame clip, batch 1: epochs of 3 steps, so 6 steps = 2 epochs.
    summary = train(
        _cfg(
            tmp_path,
            clip,
            arch=tiny_arch,
            teacher=str(rife),
            teacher_cache=str(cache),
            batch_size=1,
            max_steps=6,
        )
    )
    assert summary["teacher_cache"] == {"hits": 3, "misses": 3}
    entries = list(cache.rglob("*.pt"))
    assert len(entries) == 3
    entry = torch.load(entries[0], weights_only=True)
    assert set(entry) == {"frame", "flow_t0", "flow_t1"} and entry["frame"].dtype == torch.float16


def test_teacher_gate_keeps_only_samples_where_the_teacher_beats_blending():
    from vfi_mini.train.loop import _teacher_gate

    g = torch.Generator().manual_seed(0)
    frames = torch.rand(3, 4, 3, 32, 32, generator=g)
    target = torch.rand(3, 3, 32, 32, generator=g)
    blend = (frames[:, 1] + frames[:, 2]) / 2
    teacher = torch.stack([target[0], 1 - target[1], 0.5 * (blend[2] + target[2])])
    assert _teacher_gate(frames, target, teacher).tolist() == [True, False, True]


def test_gated_distillation_from_blend_init(tmp_path, clip, tiny_arch):
    """A random tiny RIFE is worse than blending everywhere: every sample is gated to ground truth."""
    rife = _tiny_rife(tmp_path / "flownet.pkl")
    cfg = _cfg(tmp_path, clip, arch=tiny_arch, teacher=str(rife), flow_distill=0.01, max_steps=4, init="blend")
    cfg.teacher_gate = True
    cfg.log_every = 2
    train(cfg)
    rows = _rows(tmp_path / "run")
    rows = [r for r in rows if "teacher_gated" in r]
    assert [r["teacher_gated"] for r in rows] == [2 * cfg.batch_size] * 2
    assert all(r["loss_teacher"] == 0 and "loss_flow" not in r for r in rows)


def test_sharp_flow_loss_counts_every_weighted_tap():
    b, k, h, w = 1, 5, 4, 6
    flow = torch.randn(b, 2, h, w)
    teacher = {"flow_t0": flow, "flow_t1": -flow}
    grid = torch.arange(k, dtype=torch.float32) - 2
    ty = grid.repeat_interleave(k).view(1, k * k, 1, 1)
    tx = grid.repeat(k).view(1, k * k, 1, 1)
    maps = []
    for f in (flow, -flow):  # every tap points exactly at the flow: alpha = flow_y - ty, beta = flow_x - tx
        maps += [torch.full((b, k * k, h, w), 1 / (k * k)), f[:, 1:2] - ty, f[:, 0:1] - tx]
    assert float(sharp_flow_loss(maps, teacher, 1)) < 1e-4
    # Two taps at -1 and +1 around the flow, half weight each: the mean displacement is right (the averaged
    # loss is 0) but each tap is 1 px off, so the sharp loss is 1 per pixel and frame.
    spread = torch.zeros(b, k * k, h, w)
    spread[:, 11] = spread[:, 13] = 0.5  # taps (2, 1) and (2, 3): x offsets -1 and +1, y offset 0
    maps = [spread, flow[:, 1:2].expand(b, k * k, h, w), flow[:, 0:1].expand(b, k * k, h, w)] * 2
    teacher = {"flow_t0": flow, "flow_t1": flow}
    assert abs(float(sharp_flow_loss(maps, teacher, 1)) - h * w) < 1e-3
    disp = effective_displacement(spread, maps[1], maps[2], 1)
    torch.testing.assert_close(disp, flow)


def test_motion_path_matches_the_full_model_at_blend_init():
    """STMFNet.motion runs the x1 heads the full model uses; at blend init the full output is their mean."""
    from vfi_mini.models import build_model
    from vfi_mini.models.init import blend_init

    torch.manual_seed(0)
    model = blend_init(build_model(TINY)).eval()
    frames = [torch.rand(1, 3, 128, 128) for _ in range(4)]
    with torch.no_grad():
        full, maps = model(*frames, return_maps=True)
        warped, motion_maps = model(*frames, motion_only=True)
    for a, b in zip(maps[6:12], motion_maps):
        torch.testing.assert_close(a, b)
    assert float((full - warped).abs().mean()) < 0.01


def test_motion_stage_learns_the_teacher_flow(tmp_path, clip, tiny_arch):
    """--stage motion trains only the motion path: the flow term falls, GridNet and TENet stay as they were."""
    rife = _tiny_rife(tmp_path / "flownet.pkl")
    cfg = _cfg(
        tmp_path, clip, arch=tiny_arch, teacher=str(rife), flow_distill=0.01, max_steps=10, lr=3e-3, init="blend"
    )
    cfg.stage = "motion"
    train(cfg)
    rows = _rows(tmp_path / "run")
    flow = [r["loss_flow"] for r in rows if "loss_flow" in r]
    assert len(flow) == 10 and all("loss_gt" in r for r in rows if "loss_flow" in r)
    assert sum(flow[-3:]) < sum(flow[:3]), flow
    from vfi_mini.models import build_model
    from vfi_mini.models.init import blend_init

    torch.manual_seed(cfg.seed)
    start = blend_init(build_model(TINY)).state_dict()
    trained, _ = load_model(tmp_path / "run" / "last.pth")
    after = trained.state_dict()
    for key in start:
        same = torch.equal(start[key], after[key])
        if key.startswith(("scale_synthesis.", "dyntex_generator.", "get_kernel.moduleWeight1_")):
            assert same, key
    assert not torch.equal(start["get_kernel.moduleAlpha1.0.weight"], after["get_kernel.moduleAlpha1.0.weight"])
    with pytest.raises(UsageError, match="stage motion"):
        train(_cfg(tmp_path / "x", clip, arch=tiny_arch, stage="motion", teacher=str(rife), alpha=0.0, max_steps=1))


def test_motion_stage_without_flow_learns_from_pixels_alone(tmp_path, clip, tiny_arch):
    """--stage motion --flow-distill 0 (the flow ablation's control arm): no teacher, only the warped-mean loss
    against the ground truth, which falls; only the motion path changes."""
    cfg = _cfg(tmp_path, clip, arch=tiny_arch, alpha=1.0, max_steps=12, lr=3e-3, init="blend")
    cfg.stage = "motion"
    train(cfg)
    rows = _rows(tmp_path / "run")
    gt = [r["loss_gt"] for r in rows if "loss_gt" in r]
    assert len(gt) == 12 and not any("loss_flow" in r for r in rows)
    assert sum(gt[-3:]) < sum(gt[:3]), gt
    trained, _ = load_model(tmp_path / "run" / "last.pth")
    from vfi_mini.models import build_model
    from vfi_mini.models.init import blend_init

    torch.manual_seed(cfg.seed)
    start = blend_init(build_model(TINY)).state_dict()
    after = trained.state_dict()
    assert all(torch.equal(start[k], after[k]) for k in start if k.startswith("scale_synthesis."))
    assert not torch.equal(start["get_kernel.moduleAlpha1.0.weight"], after["get_kernel.moduleAlpha1.0.weight"])


def test_synthesis_stage_trains_only_gridnet_and_tenet(tmp_path, clip, tiny_arch):
    """--stage synthesis: the motion path (feature extractor, kernel heads) is frozen; GridNet and TENet learn."""
    cfg = _cfg(tmp_path, clip, arch=tiny_arch, max_steps=4, lr=3e-3, init="blend", stage="synthesis")
    train(cfg)
    from vfi_mini.models import build_model
    from vfi_mini.models.init import blend_init

    torch.manual_seed(cfg.seed)
    start = blend_init(build_model(TINY)).state_dict()
    after = load_model(tmp_path / "run" / "last.pth")[0].state_dict()
    frozen = [k for k in start if k.startswith(("feature_extractor.", "get_kernel."))]
    trained = [k for k in start if k.startswith(("scale_synthesis.", "dyntex_generator.")) and "running" not in k]
    assert frozen and all(torch.equal(start[k], after[k]) for k in frozen)
    assert any(not torch.equal(start[k], after[k]) for k in trained)
    losses = _losses(tmp_path / "run")
    assert len(losses) == 4 and all(math.isfinite(v) for v in losses)


def test_coarse_warp_term_points_towards_motions_of_several_pixels():
    """On a real frame (the held-out bikes crop) moving 6 px between I1 and the middle, at zero motion: the
    ground-truth Lap term's gradient on the centre tap's horizontal offset points the right way at fewer than
    half of the pixels (a sharp image says nothing about a 6 px move), the blurred-warp term's at most."""
    import av

    with av.open(str(Path(__file__).parent / "data" / "bikes_crop.mp4")) as c:
        frame = next(c.decode(video=0)).to_ndarray(format="rgb24")
    x = torch.from_numpy(frame).permute(2, 0, 1)[None].float() / 255  # (1, 3, 128, 192)
    shift, w = 6, 128
    im1, target, im2 = (x[..., :, k * shift : k * shift + w] for k in (0, 1, 2))  # the middle is I1 moved 6 px
    from vfi_mini.models import build_model

    model = build_model(STMFNetConfig(adacof_rounding="floor"))
    weight = torch.zeros(1, 25, 128, w)
    weight[:, 12] = 1.0  # all weight on the centre tap
    zeros = torch.zeros_like(weight)
    beta = torch.zeros_like(weight, requires_grad=True)  # horizontal offsets of I1; the right move is +6
    maps = [weight, zeros, beta, weight, zeros, zeros]
    mean = model.mean_warp(im1, im2, maps)
    g_sharp = torch.autograd.grad(LapLoss()(mean, target), [beta])[0][:, 12]
    g_coarse = torch.autograd.grad(coarse_warp_loss(model, im1, im2, maps, target), [beta])[0][:, 12]
    right_sharp, right_coarse = float((g_sharp < 0).float().mean()), float((g_coarse < 0).float().mean())
    assert right_sharp < 0.5 and right_coarse > 0.68, (right_sharp, right_coarse)
    assert float(g_coarse.mean()) < 2 * float(g_sharp.mean()) < 0  # and it pulls harder on average


def test_motion_stage_with_the_coarse_warp_term(tmp_path, clip, tiny_arch):
    """--coarse-warp adds a logged term to the motion stage that falls with training; it is a motion-stage term."""
    cfg = _cfg(tmp_path, clip, arch=tiny_arch, alpha=1.0, max_steps=12, lr=3e-3, init="blend", coarse_warp=0.5)
    cfg.stage = "motion"
    train(cfg)
    rows = _rows(tmp_path / "run")
    coarse = [r["loss_coarse"] for r in rows if "loss_coarse" in r]
    assert len(coarse) == 12 and all("loss_gt" in r for r in rows if "loss_coarse" in r)
    assert sum(coarse[-3:]) < sum(coarse[:3]), coarse
    with pytest.raises(UsageError, match="--coarse-warp"):
        train(_cfg(tmp_path / "x", clip, arch=tiny_arch, coarse_warp=1.0, max_steps=1))
