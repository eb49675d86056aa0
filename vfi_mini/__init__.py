"""vfi-mini: video frame-rate conversion with ST-MFNet Mini.

Conventions used throughout the package:

- Frames are float32 RGB in [0, 1], shape (B, 3, H, W) for tensors, (H, W, 3) for numpy arrays.
- A window is four frames (t-1, t, t+1, t+2); the model predicts the frame at t + 0.5.
- Frame rates and timestamps are `fractions.Fraction` (30000/1001, never 29.97).
"""

from .errors import (
    BackendUnavailable,
    InputError,
    ProcessingError,
    UsageError,
    VfiError,
    WeightsError,
)

__version__ = "0.1.0"

__all__ = [
    "BackendUnavailable",
    "InputError",
    "ProcessingError",
    "UsageError",
    "VfiError",
    "WeightsError",
    "__version__",
]
