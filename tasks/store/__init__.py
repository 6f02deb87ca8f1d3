"""The store.

Immutable Parquet tables, their schemas, run lineage, read-only SQL, the audit views and
the exports in TRL's formats. ``from tasks.store import open_store`` opens one read-only from a
notebook (:mod:`tasks.store.notebook`).
"""

from __future__ import annotations

from typing import Any

__all__ = ["open_store"]


def __getattr__(name: str) -> Any:
    """``open_store`` loads on first use: importing it here would load the SQL session's modules
    (the catalog, the views, the runs) before any ``tasks.store`` module, which they import."""
    if name == "open_store":
        from tasks.store.notebook import open_store

        return open_store
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
