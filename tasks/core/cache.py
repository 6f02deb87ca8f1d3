"""Where charter keeps what it can rebuild: converted models, compiled engines, SQL catalogs."""

from __future__ import annotations

import os
from pathlib import Path


def cache_root() -> Path:
    """``$CHARTER_CACHE``, else ``$XDG_CACHE_HOME/charter``, else ``~/.cache/charter``."""
    explicit = os.environ.get("CHARTER_CACHE")
    if explicit:
        return Path(explicit)
    return Path(os.environ.get("XDG_CACHE_HOME", Path.home() / ".cache")) / "charter"
