"""Reading, writing and describing weight files.

Accepted formats:
- the official checkpoint ``{'epoch': int, 'state_dict': {...}}`` (``.pth``), optionally with a
  ``'model_config'`` dict for architectures that are not presets;
- a bare state_dict saved with ``torch.save``;
- ``.safetensors``, with the architecture in the metadata key ``model_config`` (JSON) when not a preset.

Loading never executes code: ``torch.load(..., weights_only=True)`` or safetensors. The architecture is
taken from the stored config or inferred from the tensor shapes, and the state_dict is loaded strictly.
Sources: a local path, the name of a file in the bundled ``weights/`` folder, or ``hf://OWNER/REPO/FILE``.
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass
from importlib import resources
from pathlib import Path
from typing import Any

import torch

from .errors import WeightsError
from .models import STMFNet, STMFNetConfig, build_model, count_parameters

DEFAULT_WEIGHTS = ("stmfnet-mini.safetensors", "stmfnet-mini.pth")
WEIGHT_SUFFIXES = (".safetensors", ".pth", ".pt", ".ckpt", ".bin")


def bundled_dir() -> Path:
    """The folder of weights shipped with the package (``vfi_mini/_weights`` in a wheel, ``weights/`` in a
    source checkout)."""
    packaged = Path(str(resources.files("vfi_mini"))) / "_weights"
    if packaged.is_dir():
        return packaged
    return Path(__file__).resolve().parent.parent / "weights"


def bundled_weights() -> list[Path]:
    d = bundled_dir()
    if not d.is_dir():
        return []
    return sorted(p for p in d.iterdir() if p.suffix in WEIGHT_SUFFIXES and p.is_file())


def default_weights() -> Path:
    """The bundled default weights.

    Raises:
        WeightsError: none are bundled yet.
    """
    for name in DEFAULT_WEIGHTS:
        p = bundled_dir() / name
        if p.is_file():
            return p
    raise WeightsError(
        "no default weights are bundled with this version of vfi-mini yet; pass --weights FILE "
        "(an ST-MFNet / ST-MFNet Mini checkpoint, e.g. one written by `vfi-mini train`)"
    )


def resolve(source: str | Path | None) -> Path:
    """Turn a weights source into a local file path (downloading ``hf://`` sources)."""
    if source is None:
        return default_weights()
    s = str(source)
    if s.startswith("hf://"):
        from .hub import download

        return download(s)
    p = Path(s).expanduser()
    if p.is_file():
        return p
    if p.exists():
        raise WeightsError(f"weights path {s} is not a file")
    if p.parent == Path(".") or not p.parent.name:
        for cand in (bundled_dir() / s, *(bundled_dir() / (s + suf) for suf in WEIGHT_SUFFIXES)):
            if cand.is_file():
                return cand
    raise WeightsError(f"weights file {s} not found")


@dataclass
class Checkpoint:
    """The contents of a weights file."""

    path: Path
    state_dict: dict[str, torch.Tensor]
    config: STMFNetConfig
    config_source: str  # "stored" or "inferred"
    epoch: int | None
    metadata: dict[str, Any]


def _strip_prefix(sd: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    # Checkpoints saved from DataParallel / DDP wrappers carry a 'module.' prefix on every key.
    if sd and all(k.startswith("module.") for k in sd):
        return {k[len("module.") :]: v for k, v in sd.items()}
    return sd


def _read_raw(
    path: Path,
) -> tuple[dict[str, torch.Tensor], dict[str, Any] | None, int | None, dict[str, Any]]:
    if path.suffix == ".safetensors":
        try:
            from safetensors import safe_open

            with safe_open(str(path), framework="pt") as f:
                meta = dict(f.metadata() or {})
                sd = {k: f.get_tensor(k) for k in f.keys()}
        except Exception as exc:  # noqa: BLE001
            raise WeightsError(f"cannot read weights file {path}: not a valid safetensors file ({exc})") from exc
        cfg = json.loads(meta["model_config"]) if "model_config" in meta else None
        epoch = int(meta["epoch"]) if meta.get("epoch", "").isdigit() else None
        return sd, cfg, epoch, meta
    try:
        obj = torch.load(str(path), map_location="cpu", weights_only=True)
    except Exception as exc:  # noqa: BLE001 - corrupt zip, truncated file, pickled code, ...
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        if "weights_only" in str(exc) or "Unsupported global" in str(exc):
            first = "it contains pickled objects other than tensors, which vfi-mini refuses to unpickle"
        raise WeightsError(f"cannot read weights file {path}: {first[:200]}") from exc
    if not isinstance(obj, dict):
        raise WeightsError(f"weights file {path} holds a {type(obj).__name__}, not a state_dict")
    meta = {k: v for k, v in obj.items() if k not in ("state_dict", "optimizer") and not torch.is_tensor(v)}
    if "state_dict" in obj:
        sd, cfg, epoch = obj["state_dict"], obj.get("model_config"), obj.get("epoch")
    else:
        sd, cfg, epoch = obj, None, None
    if not isinstance(sd, dict) or not sd or not all(torch.is_tensor(v) for v in sd.values()):
        raise WeightsError(f"weights file {path} has no state_dict of tensors")
    return sd, cfg, epoch if isinstance(epoch, int) else None, meta


def _shape(sd: dict[str, torch.Tensor], key: str, dim: int) -> int:
    if key not in sd:
        raise WeightsError(f"not an ST-MFNet-family state_dict: key '{key}' is missing")
    t = sd[key]
    if t.dim() <= dim:
        raise WeightsError(f"key '{key}' has shape {tuple(t.shape)}, which no ST-MFNet-family model has")
    return int(t.shape[dim])


def infer_config(sd: dict[str, torch.Tensor]) -> STMFNetConfig:
    """Recover the architecture from the tensor shapes of a state_dict (dilation cannot be seen: 1)."""
    fe, dt = "feature_extractor", "dyntex_generator"
    taps = _shape(sd, "get_kernel.moduleWeight1_ds.4.weight", 0)
    k = math.isqrt(taps)
    if k * k != taps:
        raise WeightsError(f"kernel head has {taps} outputs, not a square number of AdaCoF taps")
    try:
        return STMFNetConfig(
            feat_channels=tuple(2 * _shape(sd, f"{fe}.conv{i}.resnext_small.conv3.weight", 0) for i in range(1, 5)),
            kernel_hidden=_shape(sd, "get_kernel.moduleWeight1_ds.0.weight", 0),
            kernel_size=k,
            grid_channels=tuple(_shape(sd, f"scale_synthesis.lateral_{r}_1.f.1.weight", 0) for r in range(3)),
            tenet_channels=tuple(_shape(sd, f"{dt}.encoder.layer{i}.0.conv1.0.weight", 0) for i in range(1, 5)),
            tenet_decoder=(
                _shape(sd, f"{dt}.decoder.0.conv.0.weight", 0),
                _shape(sd, f"{dt}.decoder.1.upconv.0.weight", 1),
                _shape(sd, f"{dt}.decoder.2.upconv.0.weight", 1),
                _shape(sd, f"{dt}.decoder.3.conv.0.weight", 0),
                _shape(sd, f"{dt}.decoder.4.upconv.0.weight", 1),
            ),
            tenet_fuse=_shape(sd, f"{dt}.feature_fuse.0.weight", 0),
            flow="metric.paramScale" in sd,
        )
    except ValueError as exc:
        raise WeightsError(f"state_dict describes an invalid architecture: {exc}") from exc


def read_checkpoint(source: str | Path | None) -> Checkpoint:
    """Read a weights file (without building a model)."""
    path = resolve(source)
    sd, cfg_dict, epoch, meta = _read_raw(path)
    sd = _strip_prefix(sd)
    if cfg_dict is not None:
        try:
            config, how = STMFNetConfig.from_dict(cfg_dict), "stored"
        except (TypeError, ValueError) as exc:
            raise WeightsError(f"weights file {path} stores an invalid architecture: {exc}") from exc
    else:
        config, how = infer_config(sd), "inferred"
    return Checkpoint(path, sd, config, how, epoch, meta)


def check_state_dict(model: torch.nn.Module, sd: dict[str, torch.Tensor], where: str) -> None:
    """Raise a `WeightsError` naming the first missing, unexpected or mis-shaped key."""
    ours = model.state_dict()
    missing = [k for k in ours if k not in sd]
    unexpected = [k for k in sd if k not in ours]
    shaped = [k for k in ours if k in sd and tuple(sd[k].shape) != tuple(ours[k].shape)]
    if missing:
        raise WeightsError(
            f"{where} does not fit the architecture: missing key '{missing[0]}'"
            + (f" (and {len(missing) - 1} more)" if len(missing) > 1 else "")
        )
    if unexpected:
        raise WeightsError(
            f"{where} does not fit the architecture: unexpected key '{unexpected[0]}'"
            + (f" (and {len(unexpected) - 1} more)" if len(unexpected) > 1 else "")
        )
    if shaped:
        k = shaped[0]
        raise WeightsError(
            f"{where} does not fit the architecture: key '{k}' has shape "
            f"{tuple(sd[k].shape)}, expected {tuple(ours[k].shape)}"
        )


def load_model(source: str | Path | None = None, config: STMFNetConfig | None = None) -> tuple[STMFNet, Checkpoint]:
    """Build the model a weights file describes and load it strictly. `source` None: bundled default.

    Args:
        source: local path, bundled file name, ``hf://OWNER/REPO/FILE``, or None for the default.
        config: force this architecture instead of the stored/inferred one.

    Returns:
        (model in eval mode on the CPU, the checkpoint read).

    Raises:
        WeightsError: the file is missing, unreadable, or does not fit.
    """
    ckpt = read_checkpoint(source)
    model = build_model(config or ckpt.config)
    check_state_dict(model, ckpt.state_dict, f"weights file {ckpt.path}")
    sd = {k: v.to(model.state_dict()[k].dtype) for k, v in ckpt.state_dict.items()}
    model.load_state_dict(sd, strict=True)
    return model.eval(), ckpt


def save_weights(model: STMFNet, path: str | Path, epoch: int = 0, metadata: dict[str, str] | None = None) -> Path:
    """Write weights in the official format (``.pth``) or as ``.safetensors``.

    The architecture is stored with the weights unless it is a preset (so official-format files written
    for the presets are byte-compatible with upstream loaders). `metadata` (string values) goes into the
    safetensors metadata, or next to ``epoch`` and ``state_dict`` in a ``.pth`` file, where upstream
    loaders ignore it; `vfi-mini info` shows the ``derived_config`` and ``density`` entries that
    `vfi-mini prune` writes.

    Raises:
        ValueError: `metadata` uses a reserved key (epoch, state_dict, model_config, format).
    """
    reserved = {"epoch", "state_dict", "model_config", "format"} & set(metadata or {})
    if reserved:
        raise ValueError(f"metadata key {sorted(reserved)[0]!r} is reserved")
    path = Path(path)
    cfg = model.config
    sd = {k: v.detach().cpu().contiguous() for k, v in model.state_dict().items()}
    path.parent.mkdir(parents=True, exist_ok=True)
    if path.suffix == ".safetensors":
        from safetensors.torch import save_file

        meta = {"format": "pt", "epoch": str(epoch), "model_config": cfg.to_json(), **(metadata or {})}
        save_file(sd, str(path), metadata=meta)
    else:
        obj: dict[str, Any] = {"epoch": epoch, "state_dict": sd}
        if cfg.preset_name() is None:
            obj["model_config"] = cfg.to_dict()
        obj.update(metadata or {})
        torch.save(obj, str(path))
    return path


def describe(source: str | Path | None) -> dict[str, Any]:
    """What a weights file contains, for `vfi-mini info --weights`. Raises WeightsError if it does not load."""
    model, ckpt = load_model(source)
    out: dict[str, Any] = {
        "path": str(ckpt.path),
        "architecture": ckpt.config.preset_name() or "custom",
        "config": ckpt.config.to_dict(),
        "config_source": ckpt.config_source,
        "parameters": count_parameters(model),
        "epoch": ckpt.epoch,
        "loads": True,
    }
    derived = ckpt.metadata.get("derived_config")
    if isinstance(derived, str):  # written by `vfi-mini prune` next to sparse weights
        try:
            cfg = STMFNetConfig.from_dict(json.loads(derived))
        except (TypeError, ValueError) as exc:
            raise WeightsError(f"weights file {ckpt.path} stores an invalid derived architecture: {exc}") from exc
        out["density"] = float(ckpt.metadata.get("density", "nan"))
        out["derived_architecture"] = {
            "name": cfg.preset_name() or "custom",
            "config": cfg.to_dict(),
            "parameters": count_parameters(build_model(cfg)),
        }
    return out
