"""``--store``: the one option nearly every command takes (apart from :mod:`flows.cli.common`, so
the read-only commands can take it without importing what the pipeline commands share)."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from tasks.store.store import DEFAULT_STORE

StoreOption = Annotated[
    Path,
    typer.Option(
        "--store", envvar="CHARTER_STORE", help="Store directory (default ./store or $CHARTER_STORE)."
    ),
]
DEFAULT_STORE_PATH = Path(DEFAULT_STORE)
