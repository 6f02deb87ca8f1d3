"""Field checks for one JSON record: required and optional keys, their types, no unknown keys.

Shared by every JSONL importer so that each bad row is reported the same way:
file, line, field, and what is wrong with it.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

from tasks.core.errors import Problem
from tasks.core.jsonl import read_jsonl

_TYPE_NAMES = {str: "a string", list: "a list", dict: "an object", float: "a number", bool: "true or false"}


def check_record(
    record: dict[str, Any],
    *,
    source: str,
    line: int,
    required: dict[str, type],
    optional: dict[str, type],
    unit: str = "line",
) -> list[Problem]:
    """Problems with ``record``'s keys and value types; empty when it is well-formed.

    Strings must be non-empty; ``float`` accepts ints too (JSON has one number type), never booleans.
    """
    problems = []

    def problem(field: str, message: str) -> None:
        problems.append(Problem(path=source, line=line, field=field, message=message, unit=unit))

    for key in sorted(set(record) - set(required) - set(optional)):
        allowed = ", ".join([*required, *optional])
        problem(key, f"unknown field (allowed: {allowed})")
    for key in required:
        if key not in record or record[key] is None:
            problem(key, "required field is missing")
    for key, kind in {**required, **optional}.items():
        value = record.get(key)
        if value is None:
            continue
        if not _is_instance(value, kind):
            problem(key, f"expected {_TYPE_NAMES.get(kind, kind.__name__)}, got {type(value).__name__}")
        elif kind is str and not value.strip():
            problem(key, "must not be empty")
    return problems


def _is_instance(value: Any, kind: type) -> bool:
    if isinstance(value, bool):
        return kind is bool
    if kind is float:
        return isinstance(value, int | float)
    return isinstance(value, kind)


def checked_jsonl(
    path: str | Path, *, required: dict[str, type], optional: dict[str, type]
) -> Iterator[tuple[int, dict[str, Any] | None, list[Problem]]]:
    """Each JSONL record with its line and its field problems (the record is None if unreadable)."""
    for line, item in read_jsonl(path):
        if isinstance(item, Problem):
            yield line, None, [item]
        else:
            yield (
                line,
                item,
                check_record(item, source=str(path), line=line, required=required, optional=optional),
            )
