"""Reading JSONL exports line by line, turning every unreadable line into a located problem."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from tasks.core.errors import InputError, Problem


def read_jsonl(path: str | Path) -> Iterator[tuple[int, dict[str, Any] | Problem]]:
    """Yield ``(line, object)`` per non-blank line, or ``(line, Problem)`` where the line is unusable."""
    source = str(path)
    if not Path(path).is_file():
        raise InputError.single(source, "file not found")
    with open(path, "rb") as handle:
        for line_number, raw in enumerate(handle, start=1):
            try:
                line = raw.decode("utf-8")
            except UnicodeDecodeError as exc:
                yield (
                    line_number,
                    Problem(source, f"not UTF-8 text ({exc.reason} at byte {exc.start})", line_number),
                )
                continue
            if not line.strip():
                continue
            try:
                value = json.loads(line)
            except json.JSONDecodeError as exc:
                yield (
                    line_number,
                    Problem(source, f"invalid JSON: {exc.msg} (column {exc.colno})", line_number),
                )
                continue
            if not isinstance(value, dict):
                yield (
                    line_number,
                    Problem(source, f"expected a JSON object, got {type(value).__name__}", line_number),
                )
                continue
            yield line_number, value
