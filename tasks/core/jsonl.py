"""Reading JSON and JSONL exports, turning everything unreadable into a located problem.

Exports come from other tools and are not always well-formed: a byte-order mark, a binary
file under a .jsonl name, a line of 50 MB, an array nested 100,000 deep. Each gives one
problem naming the file and line, read in bounded memory and time, never a traceback.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from tasks.core.errors import (
    MAX_NESTING_DEPTH,
    BinaryInputError,
    InputError,
    Problem,
    decode_text,
    input_file,
    refuse_binary,
)

# One JSONL record is one label or prompt: the longest hh-rlhf line is 7 KB, so 4 MiB is room
# for any real conversation while a runaway line is neither held in memory whole nor stored.
MAX_RECORD_BYTES = 4 << 20
_SKIP_CHUNK = 1 << 20
# How much of a file is looked at first for NUL bytes, so that a binary file whose first
# line is merely not UTF-8 is still called binary (each later line is checked as it is read).
_BINARY_SNIFF_BYTES = 8192


def read_jsonl(path: str | Path) -> Iterator[tuple[int, dict[str, Any] | Problem]]:
    """Yield ``(line, object)`` per non-blank line, or ``(line, Problem)`` where the line is unusable.

    A binary file gives one problem, at its first NUL byte, rather than one per line of noise.
    """
    source = str(path)
    with open(input_file(path), "rb") as handle:
        try:
            refuse_binary(handle.read(_BINARY_SNIFF_BYTES), source)
        except BinaryInputError as exc:
            yield exc.problems[0].line or 1, exc.problems[0]
            return
        handle.seek(0)
        line_number = 0
        while raw := handle.readline(MAX_RECORD_BYTES + 1):
            line_number += 1
            if len(raw) > MAX_RECORD_BYTES and not raw.endswith(b"\n"):
                size = len(raw) + _skip_rest_of_line(handle)
                message = f"the line is {size:,} bytes; one record may have at most {MAX_RECORD_BYTES:,}"
                yield line_number, Problem(source, message, line_number)
                continue
            try:
                line = decode_text(raw, source, line_number)
                if not line.strip():
                    continue
                value = parse_json(line.rstrip("\r\n"), source, line_number)
            except BinaryInputError as exc:
                yield line_number, exc.problems[0]
                return
            except InputError as exc:
                yield line_number, exc.problems[0]
                continue
            if not isinstance(value, dict):
                yield (
                    line_number,
                    Problem(source, f"expected a JSON object, got {type(value).__name__}", line_number),
                )
                continue
            yield line_number, value


def read_json(path: str | Path) -> Any:
    """A whole JSON file (a Label Studio export, a CAI principles file), or an :class:`InputError`."""
    source = str(path)
    file = input_file(path)
    try:
        data = file.read_bytes()
    except OSError as exc:
        raise InputError.single(source, f"cannot read the file: {exc.strerror}") from None
    return parse_json(decode_text(data, source), source)


def parse_json(text: str, source: str, first_line: int = 1) -> Any:
    """``text`` (a file, or its line ``first_line``) parsed; bad or too deeply nested JSON names its line.

    Python's parser recurses per level and fails on deep input with a RecursionError; a value
    nested deeper than :data:`MAX_NESTING_DEPTH` but shallow enough to parse would fail later,
    wherever it is walked again (writing a rejects file, hashing), so both are refused here.
    """
    try:
        value = json.loads(text)
        too_deep = _deeper_than(value, MAX_NESTING_DEPTH)
    except json.JSONDecodeError as exc:
        line = first_line + exc.lineno - 1
        raise InputError.single(source, f"invalid JSON: {exc.msg} (column {exc.colno})", line) from None
    except RecursionError:
        too_deep = True
    if too_deep:
        line = first_line + _line_of_excess_depth(text, MAX_NESTING_DEPTH) - 1
        message = f"invalid JSON: nested more than {MAX_NESTING_DEPTH} levels deep"
        raise InputError.single(source, message, line)
    return value


def _skip_rest_of_line(handle: Any) -> int:
    """Read past the rest of an over-long line in bounded chunks; returns how many bytes were skipped."""
    skipped = 0
    while chunk := handle.readline(_SKIP_CHUNK):
        skipped += len(chunk)
        if chunk.endswith(b"\n"):
            break
    return skipped


def _deeper_than(value: Any, limit: int) -> bool:
    """Whether ``value`` nests lists and objects more than ``limit`` levels (walked without recursion)."""
    stack = [(value, 1)]
    while stack:
        item, depth = stack.pop()
        children = item.values() if isinstance(item, dict) else item if isinstance(item, list) else None
        if children is None:
            continue
        if depth > limit:
            return True
        stack.extend((child, depth + 1) for child in children)
    return False


# Strings (whose brackets do not count) and the brackets that open and close a level.
_STRUCTURE = re.compile(r'"(?:[^"\\]|\\.)*"|[\[\]{}]')


def _line_of_excess_depth(text: str, limit: int) -> int:
    """The line (1-based) where the nesting of ``text`` first passes ``limit``; only read on failure."""
    depth = 0
    for match in _STRUCTURE.finditer(text):
        token = match.group()
        if token in "[{":
            depth += 1
            if depth > limit:
                return text.count("\n", 0, match.start()) + 1
        elif token in "]}":
            depth -= 1
    return 1
