"""Benchmark helpers on a real frame of a held-out clip: the translation probe of benchmarks/motion_check.py
and the global motion estimate of benchmarks/inference_variants.py."""

import importlib.util
from pathlib import Path

import pytest
import torch
from helpers import DATA

from vfi_mini.errors import WeightsError
from vfi_mini.evaluate import open_test_set
from vfi_mini.models import build_model
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
