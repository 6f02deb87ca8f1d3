"""How far one read-only SQL session may go: the single source of ``charter sql``'s bounds.

DuckDB by default takes 80% of the machine's memory, spills as much again to disk, and runs a
query for as long as it takes: a cross join of two 10M-row ranges ran ten minutes at full CPU.
A session here is bounded in time (the caller's timeout), in memory (a quarter of the machine
unless told) and in temporary disk (as much as its memory), so a runaway query ends with a
one-line reason instead of taking the machine with it.
"""

from __future__ import annotations

import os
import re
from typing import Annotated

from pydantic import BaseModel, ConfigDict, Field, field_validator

# DuckDB's units: KB, MB, ... are powers of 1000, KiB, MiB, ... powers of 1024.
_UNITS = {"b": 1, "kb": 10**3, "mb": 10**6, "gb": 10**9, "tb": 10**12}
_UNITS |= {"kib": 2**10, "mib": 2**20, "gib": 2**30, "tib": 2**40}
_SIZE = re.compile(r"(\d+(?:\.\d+)?)\s*([kmgt]i?b|b)", re.IGNORECASE)
# Below this DuckDB cannot even open the catalog: every query would fail for memory.
SMALLEST_MEMORY_LIMIT = 16 * 2**20


def machine_memory() -> int:
    """Physical memory in bytes."""
    return os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")


def size_in_bytes(text: str) -> int:
    """``2GB``, ``512MiB``, ``1.5 GB`` as a number of bytes (DuckDB's units)."""
    match = _SIZE.fullmatch(text.strip())
    if match is None:
        raise ValueError(f"{text!r} is not a size; write a number and a unit, e.g. 2GB or 512MB")
    number, unit = match.groups()
    return int(float(number) * _UNITS[unit.lower()])


class SqlSettings(BaseModel):
    """Bounds on one ``charter sql`` query."""

    model_config = ConfigDict(extra="forbid", frozen=True, use_attribute_docstrings=True)

    timeout: Annotated[float, Field(gt=0, le=86_400)] = 60
    """Stop the query after this many seconds."""

    memory_limit: str | None = None
    """Memory the query may use, e.g. 2GB or 512MB; as much again may spill to a temporary folder
    (default: a quarter of this machine's memory)."""

    @field_validator("memory_limit")
    @classmethod
    def _a_size_duckdb_can_run_in(cls, value: str | None) -> str | None:
        if value is not None and size_in_bytes(value) < SMALLEST_MEMORY_LIMIT:
            raise ValueError(f"{value!r} is too little for any query; give at least 16MiB")
        return value

    def memory_limit_bytes(self) -> int:
        return machine_memory() // 4 if self.memory_limit is None else size_in_bytes(self.memory_limit)
