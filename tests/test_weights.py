import json
import os
import subprocess
import sys

import pytest
import torch
from helpers import random_state_dict_from_manifest, save_official

from vfi_mini.errors import WeightsError
from vfi_mini.interpolator import Interpolator
from vfi_mini.models import STMFNetConfig, build_model
from vfi_mini.weights import infer_config, load_model, read_checkpoint, save_weights

SIZES = [(48, 64), (98, 130), (270, 480)]  # (H, W)


@pytest.fixture(scope="module")
def official_checkpoints(tmp_path_factory):
    d = tmp_path_factory.mktemp("official")
    return {
        arch: save_official(d / f"{arch}.pth", random_state_dict_from_manifest(arch, seed=1))
        for arch in ("stmfnet", "stmfnet-mini")
    }


@pytest.mark.parametrize("arch", ["stmfnet-mini", "stmfnet"])
def test_official_format_checkpoint_loads_strictly_and_runs(arch, official_checkpoints):
    model, ckpt = load_model(official_checkpoints[arch])
    assert ckpt.config.preset_name() == arch and ckpt.config_source == "inferred"
    assert ckpt.epoch == 7
    expected = random_state_dict_from_manifest(arch, seed=1)
    for k, v in model.state_dict().items():
        assert torch.equal(v, expected[k]), k
    interp = Interpolator(model, device="cpu")
    torch.manual_seed(0)
    for h, w in SIZES:
        if arch == "stmfnet" and h > 100:
            continue  # the full model at 480x270 is covered by test_full_model_at_480x270 (slow)
        out = interp(torch.rand(1, 4, 3, h, w))
        assert out.shape == (1, 3, h, w) and torch.isfinite(out).all()
        assert 0 <= float(out.min()) and float(out.max()) <= 1


@pytest.mark.slow
def test_full_model_at_480x270(official_checkpoints):
    model, _ = load_model(official_checkpoints["stmfnet"])
    out = Interpolator(model, device="cpu")(torch.rand(1, 4, 3, 270, 480))
    assert out.shape == (1, 3, 270, 480) and torch.isfinite(out).all()


def test_bare_state_dict_prefixed_keys_and_safetensors(tmp_path):
    sd = random_state_dict_from_manifest("stmfnet-mini", seed=2)
    torch.save({f"module.{k}": v for k, v in sd.items()}, tmp_path / "bare.pt")
    model, ckpt = load_model(tmp_path / "bare.pt")
    assert ckpt.epoch is None and ckpt.config.preset_name() == "stmfnet-mini"
    save_weights(model, tmp_path / "m.safetensors", epoch=3)
    model2, ckpt2 = load_model(tmp_path / "m.safetensors")
    assert ckpt2.config_source == "stored" and ckpt2.epoch == 3
    for k, v in model.state_dict().items():
        assert torch.equal(v, model2.state_dict()[k])


def test_custom_architecture_is_stored_and_recovered(tmp_path):
    cfg = STMFNetConfig(
        feat_channels=(32, 48, 64, 64),
        kernel_hidden=12,
        dilation=2,
        grid_channels=(8, 12, 16),
        tenet_channels=(8, 8, 12, 16),
        tenet_decoder=(12, 8, 8, 8, 8),
        tenet_fuse=4,
        flow=False,
    )
    model = build_model(cfg)
    save_weights(model, tmp_path / "custom.pth")
    raw = torch.load(tmp_path / "custom.pth", weights_only=True)
    assert set(raw) == {"epoch", "state_dict", "model_config"}
    loaded, ckpt = load_model(tmp_path / "custom.pth")
    assert ckpt.config == cfg and ckpt.config_source == "stored"
    # Without the stored config, everything but the dilation is recovered from the shapes.
    inferred = infer_config(raw["state_dict"])
    assert inferred == STMFNetConfig(**{**cfg.to_dict(), "dilation": 1})


def test_official_preset_files_carry_no_extra_keys(tmp_path):
    save_weights(build_model("stmfnet-mini"), tmp_path / "mini.pth", epoch=70)
    raw = torch.load(tmp_path / "mini.pth", weights_only=True)
    assert set(raw) == {"epoch", "state_dict"} and raw["epoch"] == 70


def _bad_files(tmp_path, good):
    data = good.read_bytes()
    (tmp_path / "truncated.pth").write_bytes(data[: len(data) // 2])
    (tmp_path / "text.pth").write_text("this is not a checkpoint\n")
    sd = random_state_dict_from_manifest("stmfnet-mini")
    del sd["dyntex_generator.outconv.1.bias"]
    save_official(tmp_path / "missing.pth", sd)
    sd = random_state_dict_from_manifest("stmfnet-mini")
    sd["scale_synthesis.lateral_1_1.f.3.weight"] = torch.zeros(32, 32, 5, 5)
    save_official(tmp_path / "shape.pth", sd)
    sd = random_state_dict_from_manifest("stmfnet-mini")
    sd["extra.weight"] = torch.zeros(1)
    save_official(tmp_path / "unexpected.pth", sd)
    torch.save({"state_dict": {"conv.weight": torch.zeros(1)}}, tmp_path / "other_model.pth")
    (tmp_path / "garbage.safetensors").write_bytes(b"\x00" * 100)
    return {
        "truncated.pth": "cannot read",
        "text.pth": "cannot read",
        "missing.pth": "missing key 'dyntex_generator.outconv.1.bias'",
        "shape.pth": "key 'scale_synthesis.lateral_1_1.f.3.weight' has shape (32, 32, 5, 5), expected (32, 32, 3, 3)",
        "unexpected.pth": "unexpected key 'extra.weight'",
        "other_model.pth": "not an ST-MFNet-family state_dict",
        "garbage.safetensors": "not a valid safetensors file",
        "does-not-exist.pth": "not found",
    }


def test_bad_weight_files_give_one_line_errors(tmp_path, official_checkpoints):
    for name, message in _bad_files(tmp_path, official_checkpoints["stmfnet-mini"]).items():
        with pytest.raises(WeightsError) as exc_info:
            load_model(tmp_path / name)
        text = str(exc_info.value)
        assert message in text, (name, text)
        assert "\n" not in text


def test_pickled_code_is_never_executed(tmp_path):
    marker = tmp_path / "executed"

    class Evil:
        def __reduce__(self):
            return (os.system, (f"touch {marker}",))

    torch.save({"epoch": 1, "state_dict": {"x": torch.zeros(1)}, "payload": Evil()}, tmp_path / "evil.pth")
    with pytest.raises(WeightsError, match="refuses to unpickle"):
        read_checkpoint(tmp_path / "evil.pth")
    assert not marker.exists()


def test_bundled_name_and_missing_default(tmp_path, monkeypatch, official_checkpoints):
    import vfi_mini.weights as W

    monkeypatch.setattr(W, "bundled_dir", lambda: tmp_path)
    with pytest.raises(WeightsError, match="no default weights are bundled"):
        load_model(None)
    (tmp_path / "stmfnet-mini.pth").write_bytes(official_checkpoints["stmfnet-mini"].read_bytes())
    assert load_model(None)[1].path == tmp_path / "stmfnet-mini.pth"
    assert load_model("stmfnet-mini")[1].path == tmp_path / "stmfnet-mini.pth"


def _populate_hf_cache(cache, repo_id, filename, payload):
    commit = "0123456789abcdef0123456789abcdef01234567"
    repo_dir = cache / f"models--{repo_id.replace('/', '--')}"
    (repo_dir / "refs").mkdir(parents=True)
    (repo_dir / "refs" / "main").write_text(commit)
    snap = repo_dir / "snapshots" / commit
    snap.mkdir(parents=True)
    (snap / filename).write_bytes(payload)


def test_hf_source_from_local_cache_offline(tmp_path, official_checkpoints):
    cache = tmp_path / "hub"
    _populate_hf_cache(cache, "vfi-mini/weights", "mini.pth", official_checkpoints["stmfnet-mini"].read_bytes())
    code = (
        "from vfi_mini.weights import load_model\n"
        "from vfi_mini.errors import WeightsError\n"
        "m, c = load_model('hf://vfi-mini/weights/mini.pth'); print('OK', c.config.preset_name())\n"
        "try:\n    load_model('hf://vfi-mini/weights/absent.pth')\n"
        "except WeightsError as e:\n    print('ERR', e)\n"
    )
    env = {**os.environ, "HF_HUB_CACHE": str(cache), "HF_HUB_OFFLINE": "1"}
    out = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, check=True).stdout
    assert "OK stmfnet-mini" in out
    err_line = [line for line in out.splitlines() if line.startswith("ERR")][0]
    assert "hf://vfi-mini/weights/absent.pth" in err_line and str(cache) in err_line


def test_bad_hf_url():
    with pytest.raises(WeightsError, match="expected hf://OWNER/REPO/FILE"):
        load_model("hf://just-a-repo")


def test_info_json_reports_both_presets():
    out = subprocess.run(
        [sys.executable, "-m", "vfi_mini", "info", "--json"], capture_output=True, text=True, check=True
    ).stdout
    data = json.loads(out)
    assert data["architectures"]["stmfnet"]["parameters"] == 21_028_799
    assert data["architectures"]["stmfnet-mini"]["parameters"] == 1_822_162


def test_info_describes_weights_and_rejects_bad_ones(tmp_path, official_checkpoints):
    run = [sys.executable, "-m", "vfi_mini", "info", "--json", "--weights"]
    out = subprocess.run(run + [str(official_checkpoints["stmfnet"])], capture_output=True, text=True, check=True)
    w = json.loads(out.stdout)["weights"]
    assert w["architecture"] == "stmfnet" and w["parameters"] == 21_028_799 and w["loads"] is True
    (tmp_path / "broken.pth").write_bytes(official_checkpoints["stmfnet-mini"].read_bytes()[:5000])
    res = subprocess.run(run + [str(tmp_path / "broken.pth")], capture_output=True, text=True)
    assert res.returncode == 4
    assert res.stdout == ""
    lines = res.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("vfi-mini: error: cannot read weights file")
    assert "Traceback" not in res.stderr
