"""Pruning: the OBProx-SG optimizer, the width-derivation rule, and `vfi-mini prune` end to end."""

import dataclasses
import json
import random

import pytest
import torch
from click.testing import CliRunner
from media import make_video
from torch import nn

from vfi_mini.cli import cli
from vfi_mini.errors import ProcessingError
from vfi_mini.models import PRESETS, STMFNetConfig, build_model, count_parameters, resolve_arch
from vfi_mini.prune import DensityReport, OBProxSG, derive_architecture, layer_roles
from vfi_mini.prune.derive import FLOW_PREFIXES, predicted_density, width_groups
from vfi_mini.train import TrainConfig, train
from vfi_mini.weights import load_model, save_weights

FULL, MINI = PRESETS["stmfnet"], PRESETS["stmfnet-mini"]
SMALL = STMFNetConfig(
    feat_channels=(32, 32, 64, 64),
    kernel_hidden=12,
    grid_channels=(8, 12, 12),
    tenet_channels=(8, 8, 12, 12),
    tenet_decoder=(12, 8, 8, 8, 8),
    tenet_fuse=4,
    flow=False,
)


# --- OBProx-SG ---------------------------------------------------------------------------------------


def _toy(seed: int = 0) -> tuple[nn.Module, torch.Tensor, torch.Tensor]:
    torch.manual_seed(seed)
    model = nn.Sequential(nn.Conv2d(2, 6, 3, padding=1), nn.ReLU(), nn.Flatten(), nn.Linear(6 * 16, 3))
    x, y = torch.randn(32, 2, 4, 4), torch.randn(32, 3)
    return model, x, y


def _step(model: nn.Module, opt: torch.optim.Optimizer, x: torch.Tensor, y: torch.Tensor, i: int) -> None:
    batch = slice((4 * i) % 32, (4 * i) % 32 + 4)  # different mini-batches: noisy gradients
    opt.zero_grad()
    nn.functional.mse_loss(model(x[batch]), y[batch]).backward()
    opt.step()


def _zeros(model: nn.Module) -> list[torch.Tensor]:
    return [p.detach() == 0 for p in model.parameters()]


def test_prox_sg_step_soft_thresholds_to_exact_zeros():
    model, x, y = _toy()
    before = [p.detach().clone() for p in model.parameters()]
    opt = OBProxSG(model.parameters(), lr=0.1, lambda_=0.5, np=10, epoch_size=5)
    _step(model, opt, x, y, 0)
    for p, x0 in zip(model.parameters(), before):
        y_ = x0 - 0.1 * p.grad
        expected = torch.sign(y_) * (y_.abs() - 0.05).clamp(min=0)
        torch.testing.assert_close(p.detach(), expected, rtol=0, atol=1e-7)
    zeros = sum(int(z.sum()) for z in _zeros(model))
    assert zeros > 0
    assert all(float(p.detach()[p.detach().abs() < 1e-12].abs().sum()) == 0.0 for p in model.parameters())


def test_orthant_step_by_hand():
    x = nn.Parameter(torch.tensor([0.5, -0.5, 0.0, 0.05, 0.3]))
    x.grad = torch.tensor([1.0, 1.0, 7.0, 0.0, 4.0])
    opt = OBProxSG([x], lr=0.1, lambda_=0.1, eps=0.02, np=0, epoch_size=1)
    assert opt.orthant_phase
    opt.step()
    # 0.5 - 0.1*(1 + 0.1) = 0.39; -0.5 - 0.1*(1 - 0.1) = -0.59; 0 stays 0 whatever its gradient;
    # 0.05 - 0.01 = 0.04 > eps survives; 0.3 - 0.41 crosses zero and is projected to exactly 0.
    torch.testing.assert_close(x.detach(), torch.tensor([0.39, -0.59, 0.0, 0.04, 0.0]))
    assert x[2].item() == 0.0 and x[4].item() == 0.0


def test_density_falls_monotonically_once_orthant_steps_start():
    model, x, y = _toy(1)
    opt = OBProxSG(model.parameters(), lr=0.05, lambda_=0.05, eps=1e-3, np=2, epoch_size=3)
    phases, nonzero, masks = [], [], []
    for i in range(40):
        phases.append(opt.orthant_phase)
        _step(model, opt, x, y, i)
        nonzero.append(sum(int(torch.count_nonzero(p.detach())) for p in model.parameters()))
        masks.append(_zeros(model))
    assert phases[:6] == [False] * 6 and all(phases[6:])  # 2 epochs of 3 Prox-SG steps, then Orthant
    orthant = nonzero[5:]  # from the state the first Orthant step starts from
    assert all(a >= b for a, b in zip(orthant, orthant[1:])), orthant
    assert orthant[-1] < orthant[0]
    for prev, cur in zip(masks[5:], masks[6:]):  # zeros are absorbing
        assert all(bool((p & ~c).sum() == 0) for p, c in zip(prev, cur))


def test_lambda_zero_prox_step_is_a_plain_sgd_step():
    model, x, y = _toy(2)
    twin, _, _ = _toy(2)
    opt = OBProxSG(model.parameters(), lr=0.05, lambda_=0.0, np=100, epoch_size=1)
    sgd = torch.optim.SGD(twin.parameters(), lr=0.05)
    for i in range(3):
        _step(model, opt, x, y, i)
        _step(twin, sgd, x, y, i)
    for a, b in zip(model.parameters(), twin.parameters()):
        torch.testing.assert_close(a, b, rtol=0, atol=0)


def test_state_dict_keeps_the_phase_counters():
    model, x, y = _toy(3)
    straight = OBProxSG(model.parameters(), lr=0.05, lambda_=0.05, np=2, epoch_size=3)
    for i in range(10):
        _step(model, straight, x, y, i)
    split_model, _, _ = _toy(3)
    first = OBProxSG(split_model.parameters(), lr=0.05, lambda_=0.05, np=2, epoch_size=3)
    for i in range(5):
        _step(split_model, first, x, y, i)
    saved = first.state_dict()
    assert saved["obprox"] == {"epoch": 1, "iter": 2}
    second = OBProxSG(split_model.parameters(), lr=0.05, lambda_=0.05, np=2, epoch_size=3)
    second.load_state_dict(saved)
    for i in range(5, 10):
        _step(split_model, second, x, y, i)
    for a, b in zip(model.parameters(), split_model.parameters()):
        assert torch.equal(a, b)
    assert (second.epoch, second.iter) == (straight.epoch, straight.iter) == (3, 1)


# --- deriving an architecture ------------------------------------------------------------------------


@pytest.fixture(scope="module")
def full_numel():
    return {k: p.numel() for k, p in build_model(FULL).named_parameters()}


def _table(numel, default=1.0, flow=1.0, **by_prefix):
    """Hand-made densities: the first matching prefix wins, then the BLFNet value, then `default`."""
    out = {}
    for name in numel:
        d = flow if name.startswith(FLOW_PREFIXES) else default
        for prefix, value in by_prefix.items():
            if name.startswith(prefix.replace("__", ".")):
                d = value
                break
        out[name] = d
    return out


def test_dense_model_keeps_its_architecture(full_numel):
    d = derive_architecture(FULL, _table(full_numel), full_numel)
    assert d.config == FULL and d.flow_density == 1.0
    assert all(abs(r - 1) < 1e-9 for r in d.ratios.values())


def test_kernel_heads_at_half_width(full_numel):
    # Hidden width ratio 0.5: 64->h and h->taps layers keep 0.5 of their weights, h->h layers 0.25.
    heads = {}
    for name in full_numel:
        if name.startswith("get_kernel.") and name.endswith(".weight"):
            layer = name.split(".")[2]
            heads[name.replace(".", "__")] = {"0": 0.5, "2": 0.25, "4": 0.5, "7": 1.0}[layer]
    d = derive_architecture(FULL, _table(full_numel, **heads), full_numel)
    assert d.config == dataclasses.replace(FULL, kernel_hidden=32)


def test_deepest_mifnet_level_rounds_to_a_multiple_of_32(full_numel):
    # Level 4 (512 channels) at ratio 0.4: 0.4 * 512 = 204.8 -> 192 (multiples of 32 for the ResNeXt groups).
    r = 0.4
    boundary = {
        f"feature_extractor__{blk}__resnext_{s}__{layer}": r
        for blk in ("conv4", "deconv3")
        for s in ("small", "large")
        for layer in ("conv1", "downsample")
    }
    table = _table(
        full_numel,
        **boundary,
        feature_extractor__conv4__=r * r,
        feature_extractor__deconv4__=r * r,
    )
    # deconv3's inner layers and SE belong to level 3, whose ratio stays 1.
    d = derive_architecture(FULL, table, full_numel)
    assert d.config.feat_channels == (64, 128, 256, 192)
    assert d.ratios["feat_channels.3"] == pytest.approx(0.4)
    assert dataclasses.replace(d.config, feat_channels=FULL.feat_channels) == FULL


def test_blfnet_is_dropped_when_its_density_is_near_zero(full_numel):
    for flow, kept in ((0.06, True), (0.05, False), (0.0, False)):
        d = derive_architecture(FULL, _table(full_numel, flow=flow), full_numel)
        assert d.config.flow is kept and d.flow_density == pytest.approx(flow)


def _mini_like(numel, noise=0.0, seed=0):
    full, mini = width_groups(FULL), width_groups(MINI)
    ratios = {g: mini[g] / full[g] for g in full}
    rng = random.Random(seed)
    table = {k: 0.01 for k in numel if k.startswith(FLOW_PREFIXES)}
    for name, role in layer_roles(FULL).items():
        table[name] = min(1.0, predicted_density(role, ratios) * rng.uniform(1 - noise, 1 + noise))
    for name in numel:
        table.setdefault(name, 1.0)  # 1-D tensors and layers outside the fit
    return table


def test_mini_like_densities_give_back_the_mini(full_numel):
    d = derive_architecture(FULL, _mini_like(full_numel), full_numel)
    assert d.config == MINI
    assert count_parameters(build_model(d.config)) == 1_822_162


def test_noisy_mini_like_densities_stay_close_to_the_mini(full_numel):
    mini = width_groups(MINI)
    for seed in range(3):
        d = derive_architecture(FULL, _mini_like(full_numel, noise=0.2, seed=seed), full_numel)
        got = width_groups(d.config)
        assert d.config.feat_channels == MINI.feat_channels and not d.config.flow
        for g in ("kernel_hidden", "grid_channels.0", "grid_channels.1", "grid_channels.2"):
            assert abs(got[g] / mini[g] - 1) <= 0.1, (g, got[g])
        assert all(abs(got[g] / mini[g] - 1) <= 0.3 for g in mini), got


def test_missing_tensor_is_reported(full_numel):
    table = _table(full_numel)
    del table["scale_synthesis.lateral_1_1.f.3.weight"]
    with pytest.raises(ValueError, match="lateral_1_1.f.3.weight"):
        derive_architecture(FULL, table, full_numel)


@pytest.mark.parametrize("cfg", [FULL, MINI, SMALL, dataclasses.replace(SMALL, grid_channels=(6, 6, 6))])
def test_roles_match_the_modules(cfg):
    model = build_model(cfg)
    modules = dict(model.named_modules())
    roles = layer_roles(cfg)
    for name, role in roles.items():
        m = modules[name.rsplit(".", 1)[0]]
        cin, cout = (m.in_features, m.out_features) if isinstance(m, nn.Linear) else (m.in_channels, m.out_channels)
        assert (cin, cout) == (role.in_channels, role.out_channels), name
    # Everything with >= 2 dimensions is in the fit except BLFNet, the fixed taps, the fixed->fixed layers
    # and the GridNet blocks that never reach the output.
    left = {k for k, p in model.named_parameters() if p.dim() >= 2 and k not in roles}
    allowed = ("flow_estimator.", "metric.", "gauss_kernel", "upsampler.", "scale_synthesis.lateral_final_1.f.3")
    dead = ("lateral_0_2", "lateral_0_3", "up_0_0", "up_0_1")
    assert all(k.startswith(allowed) or k.endswith(".7.weight") or any(b in k for b in dead) for k in left), left


def test_every_derived_config_builds_and_runs():
    frames = [torch.rand(1, 3, 128, 128) for _ in range(4)]
    bases = [SMALL, dataclasses.replace(SMALL, feat_channels=(64, 64, 96, 128), flow=True)]
    numels = {id(b): {k: p.numel() for k, p in build_model(b).named_parameters()} for b in bases}
    flows_seen = set()
    for seed in range(4):
        rng = random.Random(seed)
        base = bases[seed % 2]
        numel = numels[id(base)]
        flow_scale = 0.02 if seed == 1 else 0.5  # BLFNet nearly pruned away, or not
        table = {k: (flow_scale if k.startswith(FLOW_PREFIXES) else 1.0) * rng.random() ** 2 for k in numel}
        if seed == 2:  # whole layers pruned away
            table.update({k: 0.0 for k in list(table)[::3]})
        d = derive_architecture(base, table, numel)
        cfg = d.config
        assert all(a <= b for a, b in zip(width_groups(cfg).values(), width_groups(base).values()))
        model = build_model(cfg).eval()
        assert count_parameters(model) <= sum(numel.values())
        with torch.inference_mode():
            out = model(*frames)
        assert out.shape == (1, 3, 128, 128) and torch.isfinite(out).all(), cfg
        flows_seen.add(cfg.flow)
    assert flows_seen == {True, False}


def test_density_report_counts_exact_zeros():
    model = build_model(SMALL)
    with torch.no_grad():
        model.get_kernel.moduleWeight1_ds[0].weight[:6].zero_()
        model.scale_synthesis.lateral_1_1.f[1].bias.zero_()
    report = DensityReport.from_model(model)
    dens = report.density
    assert dens["get_kernel.moduleWeight1_ds.0.weight"] == 0.5
    assert dens["scale_synthesis.lateral_1_1.f.1.bias"] == 0.0
    weights = [(k, p) for k, p in model.named_parameters() if "weight" in k]
    expected = sum(int(torch.count_nonzero(p)) for _, p in weights) / sum(p.numel() for _, p in weights)
    assert report.global_density == pytest.approx(expected)  # biases are not in the global figure
    again = DensityReport.from_dict(json.loads(json.dumps(report.to_dict())))
    assert again.density == dens and "gauss_kernel" in report.table()


# --- end to end --------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def clip(tmp_path_factory):
    """A real encoded video (PyAV, libx264) of a moving pattern: 9 frames of 64x64."""
    d = tmp_path_factory.mktemp("clip")
    return make_video(d / "moving.mp4", frames=9, size=(64, 64), audio=False, lossless=True)


@pytest.fixture(scope="module")
def small_weights(tmp_path_factory):
    torch.manual_seed(0)
    return save_weights(build_model(SMALL), tmp_path_factory.mktemp("w") / "small.pth")


def _run(*args):
    return CliRunner().invoke(cli, [str(a) for a in args], catch_exceptions=False)


def test_prune_then_train_the_derived_architecture(tmp_path, clip, small_weights):
    out = tmp_path / "pruned"
    common = ["--data", f"video:{clip}", "--crop", 64, "--batch-size", 2, "--threads", 2]
    res = _run("prune", "--weights", small_weights, "--out", out, "--max-steps", 3, "--np", 1, "--lr", 1e-6,
               "--json", *common)  # fmt: skip
    assert res.exit_code == 0, res.output
    summary = json.loads(res.stdout.strip().splitlines()[-1])
    assert summary["step"] == 3
    for name in ("density.json", "density.txt", "arch.json", "sparse.pth", "metrics.jsonl"):
        assert (out / name).is_file(), name
    rows = [json.loads(line) for line in (out / "metrics.jsonl").read_text().splitlines()]
    assert rows[-1]["phase"] == "orthant" and "density" in rows[-1]
    # The report describes the sparse weights exactly, and the weights hold exact zeros.
    model, ckpt = load_model(out / "sparse.pth")
    report = json.loads((out / "density.json").read_text())
    assert report["global_density"] == pytest.approx(DensityReport.from_model(model).global_density)
    assert summary["global_density"] == pytest.approx(report["global_density"]) and report["global_density"] < 1
    assert ckpt.config == SMALL and ckpt.epoch == 3
    # arch.json is what `train --arch` reads, and `info` shows it next to the sparse weights.
    derived = resolve_arch(str(out / "arch.json"))
    assert derived.to_dict() == summary["derived_config"]
    assert json.loads((out / "arch.json").read_text())["parameters"] == count_parameters(build_model(derived))
    res = _run("info", "--weights", out / "sparse.pth")
    assert res.exit_code == 0 and "derived architecture" in res.output
    assert f"{summary['derived_parameters']:,} parameters" in res.output
    res = _run("train", "--arch", out / "arch.json", "--out", tmp_path / "student", "--max-steps", 2, "-q", *common)
    assert res.exit_code == 0, res.output
    _, student = load_model(tmp_path / "student" / "last.pth")
    assert student.config == derived


def test_prune_cli_errors(tmp_path, clip, small_weights):
    res = _run("prune", "--data", f"video:{clip}", "--out", tmp_path / "a", "--max-steps", 1)
    assert res.exit_code == 2 and "--weights" in res.output
    res = _run("prune", "--weights", tmp_path / "nope.pth", "--data", f"video:{clip}", "--out", tmp_path / "b",
               "--max-steps", 1)  # fmt: skip
    assert res.exit_code == 4 and "not found" in res.output


def test_divergence_stops_with_an_error(tmp_path, clip):
    arch = tmp_path / "small.json"
    arch.write_text(SMALL.to_json())
    cfg = TrainConfig(
        data=[f"video:{clip}"], out=str(tmp_path / "run"), arch=str(arch), crop=64, batch_size=2,
        max_steps=3, threads=2, optimizer="obproxsg", obprox_np=0, lr=1e3,
    )  # fmt: skip
    with pytest.raises(ProcessingError, match="non-finite"):
        train(cfg)
