"""Downloads from the Hugging Face Hub. The only module that imports `huggingface_hub`.

Sources are written ``hf://OWNER/REPO/PATH/IN/REPO[@REVISION]``. Files are cached by huggingface-hub
(``HF_HUB_CACHE``, default ``~/.cache/huggingface/hub``); with ``HF_HUB_OFFLINE=1`` or no network, a file
already in the cache is used and a missing one gives a `WeightsError` that says where to put it.
"""

from __future__ import annotations

from pathlib import Path

from .errors import WeightsError

PREFIX = "hf://"


def parse_hf_url(url: str) -> tuple[str, str, str | None]:
    """Split ``hf://owner/repo/path[@rev]`` into (repo_id, filename, revision)."""
    rest = url[len(PREFIX) :]
    revision = None
    if "@" in rest:
        rest, revision = rest.rsplit("@", 1)
    parts = rest.split("/")
    if len(parts) < 3 or not all(parts):
        raise WeightsError(f"bad Hugging Face source {url!r}: expected hf://OWNER/REPO/FILE[@REVISION]")
    return "/".join(parts[:2]), "/".join(parts[2:]), revision


def download(url: str) -> Path:
    """Return a local path for ``hf://...``, downloading into the huggingface-hub cache if needed.

    Raises:
        WeightsError: the file is neither cached nor downloadable.
    """
    repo_id, filename, revision = parse_hf_url(url)
    try:
        from huggingface_hub import hf_hub_download
        from huggingface_hub.constants import HF_HUB_CACHE
    except ImportError as exc:  # pragma: no cover - it is a hard dependency
        raise WeightsError("huggingface-hub is not installed; pip install huggingface-hub") from exc
    try:
        return Path(hf_hub_download(repo_id=repo_id, filename=filename, revision=revision))
    except Exception as exc:  # noqa: BLE001 - offline, 404, auth, ... all mean "not available"
        reason = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise WeightsError(
            f"cannot get {url} ({type(exc).__name__}: {reason[:160]}); without network access, download it "
            f"elsewhere and pass --weights /path/to/{Path(filename).name}, or place it in the Hugging Face "
            f"cache at {HF_HUB_CACHE}"
        ) from exc
