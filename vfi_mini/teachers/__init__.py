"""Teachers for knowledge distillation: frozen models that give a middle frame (and, for RIFE, flows)."""

from .rife import (
    RIFE_WEIGHTS,
    IFNet,
    IFNetConfig,
    RifeTeacher,
    backwarp,
    fetch_rife_weights,
    is_rife_state_dict,
    load_rife,
)

__all__ = [
    "RIFE_WEIGHTS",
    "IFNet",
    "IFNetConfig",
    "RifeTeacher",
    "backwarp",
    "fetch_rife_weights",
    "is_rife_state_dict",
    "load_rife",
]
