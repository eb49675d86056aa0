"""Pruning (spec §12): OBProx-SG sparsity training, density reports, and compressed architectures."""

from .density import DensityReport, TensorDensity, global_density
from .derive import Derivation, derive_architecture, layer_roles
from .driver import finish, prune
from .obprox import OBProxSG

__all__ = [
    "DensityReport",
    "Derivation",
    "OBProxSG",
    "TensorDensity",
    "derive_architecture",
    "finish",
    "global_density",
    "layer_roles",
    "prune",
]
