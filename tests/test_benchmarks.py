"""Benchmark helpers on a real frame of a held-out clip: the translation probe of benchmarks/motion_check.py
and the global motion estimate of benchmarks/inference_variants.py."""

import importlib.util
from dataclasses import replace
from pathlib import Path

import pytest
import torch
from helpers import DATA

from vfi_mini.errors import WeightsError
from vfi_mini.evaluate import open_test_set
from vfi_mini.models import PRESETS, build_model
from vfi_mini.models.init import blend_init
from vfi_mini.weights import default_weights, load_model


def _script(name: str):  # noqa: ANN202 - the module
    spec = importlib.util.spec_from_file_location(name, Path(__file__).parents[1] / "benchmarks" / f"{name}.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


motion_check = _script("motion_check")
inference_variants = _script("inference_variants")

SIZE = 128  # bikes_crop.mp4 is 192x128


@pytest.fixture(scope="module")
def frame() -> torch.Tensor:
    frames, _ = open_test_set(DATA / "bikes_crop.mp4", "video").samples[0].load()
    return frames[1:2]


def test_shifted_moves_the_content_right(frame):
    base = motion_check.shifted(frame, 0, SIZE)
    moved = motion_check.shifted(frame, 5, SIZE)
    assert base.shape == moved.shape == (1, 3, SIZE, SIZE)
    assert torch.equal(moved[..., 5:], base[..., :-5])
    assert not torch.equal(moved, base)


def test_probe_of_a_model_that_does_not_move(frame):
    torch.manual_seed(0)
    model = blend_init(build_model("stmfnet-mini")).eval()
    (row,) = motion_check.translation_probe(model, [frame], [4], SIZE)
    assert row["truth_px"] == -2.0
    assert abs(row["textured_px"]) < 0.1 and abs(row["all_px"]) < 0.1
    assert abs(row["warp_db"] - row["blend_db"]) < 0.5  # no motion: the warp is the blend (up to a faint blur)


def _bundled() -> bool:
    try:
        default_weights()
    except WeightsError:
        return False
    return True


@pytest.mark.skipif(not _bundled(), reason="no default weights bundled")
def test_bundled_weights_follow_a_known_translation(frame):
    model, _ = load_model(None)
    rows = motion_check.translation_probe(model.eval(), [frame], [2, 4, 5], SIZE)
    for row in rows:  # the right direction, at least half of the way on textured pixels, no overshoot
        assert 1.5 * row["truth_px"] < row["textured_px"] < 0.5 * row["truth_px"], row
    even = [r for r in rows if "warp_db" in r]
    assert len(even) == 2 and all(r["warp_db"] > r["blend_db"] + 3 for r in even), even


@pytest.mark.parametrize("move", [(0, 0), (3, -5), (-7, 2)])
def test_phase_correlation_finds_a_translation(frame, move):
    base = frame[0, :, :, 32:160]
    moved = inference_variants.translate(base, *move)
    assert inference_variants.phase_correlation(base, moved) == move
    if move != (0, 0):  # the content moved: its pixels are the original's, displaced
        dy, dx = move
        inner = moved[:, 8 + dy : -8 + dy, 8 + dx : -8 + dx]
        assert torch.equal(inner, base[:, 8:-8, 8:-8])


def test_tap_sampler_in_bilinear_mode_is_the_models_warp(frame):
    torch.manual_seed(1)
    model = build_model(replace(PRESETS["stmfnet-mini"], adacof_rounding="floor")).eval()
    image = frame[..., :SIZE]
    weight = torch.softmax(torch.randn(1, 25, SIZE, SIZE), dim=1)
    alpha, beta = 3 * torch.randn(2, 1, 25, SIZE, SIZE)  # offsets of several pixels, past the borders too
    ours = inference_variants.sample_taps(image, weight, alpha, beta, 1, "bilinear")
    torch.testing.assert_close(ours, model.warp(image, [weight, alpha, beta]), atol=1e-5, rtol=0)
    sharper = inference_variants.sample_taps(image, weight, alpha, beta, 1, "bicubic")
    assert sharper.shape == ours.shape and not torch.allclose(sharper, ours, atol=1e-3)


def test_alignment_gain_keeps_a_true_motion_and_drops_a_wrong_one(frame):
    i1, i2 = motion_check.shifted(frame, 0, SIZE), motion_check.shifted(frame, 8, SIZE)  # the content moved 8 px right
    true = torch.zeros(1, 2, *i1.shape[-2:])
    true[:, 0] = 4.0  # the middle frame is I1 sampled 4 px left and I2 sampled 4 px right: d1 = -4, d2 = +4
    inner = (..., slice(16, -16), slice(16, -16))
    right = inference_variants.alignment_gain(i1, i2, -true, true)
    wrong = inference_variants.alignment_gain(i1, i2, true, -true)
    assert right[inner].mean() > 0.9 and wrong[inner].mean() < 0.1, (right[inner].mean(), wrong[inner].mean())


@pytest.mark.skipif(not _bundled(), reason="no default weights bundled")
def test_coarse_motion_follows_a_long_translation_further_than_the_model(frame):
    model, _ = load_model(None)
    model.eval()
    # the content moved 12 px right: the truth is d1 = -6 px, d2 = +6 px
    i1, i2 = motion_check.shifted(frame, 0, SIZE), motion_check.shifted(frame, 12, SIZE)
    inner = (..., slice(24, -24), slice(24, -24))
    with torch.inference_mode():
        full = inference_variants.displacement(model, i1, i2)
        coarse = inference_variants.coarse_motion(model, i1, i2, [4, 2])
    assert full[0].shape == coarse[0].shape == (1, 2, SIZE, SIZE)
    for f, truth in ((0, -6.0), (1, 6.0)):
        ours, theirs = coarse[f][:, 0][inner].median(), full[f][:, 0][inner].median()
        assert abs(ours - truth) < abs(theirs - truth) - 0.5, (f, float(ours), float(theirs))
        assert abs(coarse[f][:, 1][inner].median()) < 1.0  # no vertical motion invented
