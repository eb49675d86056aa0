"""Quality regression: the bundled default weights beat frame blending on a real held-out clip.

`tests/data/bikes_crop.mp4` is a crop of a held-out clip (never trained on, see tests/data/README.md);
every window (frame t from t-3, t-1, t+1, t+3) is evaluated through `vfi-mini eval`'s own code path.
"""

import pytest
from helpers import DATA

from vfi_mini.errors import WeightsError
from vfi_mini.evaluate import evaluate, make_baseline, open_test_set
from vfi_mini.interpolator import Interpolator
from vfi_mini.weights import default_weights

MARGIN_DB = 1.5


def _bundled() -> bool:
    try:
        default_weights()
    except WeightsError:
        return False
    return True


@pytest.mark.skipif(not _bundled(), reason="no default weights bundled")
def test_default_weights_beat_blending_on_real_footage():
    ts = open_test_set(DATA / "bikes_crop.mp4", "video")
    assert len(ts.samples) >= 8
    model = evaluate(Interpolator.from_weights(None, device="cpu", threads=2), ts, method="model")
    blend = evaluate(make_baseline("blend"), ts, method="blend")
    m, b = model.means(), blend.means()
    assert m["psnr"] >= b["psnr"] + MARGIN_DB, (m, b)
    assert m["ssim_matlab"] > b["ssim_matlab"]
