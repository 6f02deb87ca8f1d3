"""Spreadsheet labels: a CSV file with a header row, one pairwise label per row.

Columns ``prompt``, ``response_a``, ``response_b``, ``choice`` (a, b or tie, in any case),
``annotator`` (or pass ``--annotator``) and optionally ``confidence`` (0 to 1), ``comment``
and ``family``. Header names are matched without regard to case or surrounding spaces; an
unknown column is refused, so that a misspelt ``confidnce`` is not silently dropped.

The file is read line by line in bounded memory, as the JSONL readers do: each physical line
is checked for NUL bytes and UTF-8 (a BOM, as Excel writes, is dropped) before the ``csv``
module sees it, so a binary or Latin-1 file gives one problem naming its line; a field may
span lines inside quotes but is capped by ``csv.field_size_limit``. Problems name the CSV
line a row starts on and its column.
"""

from __future__ import annotations

import csv
import math
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from tasks.core.errors import (
    BinaryInputError,
    InputError,
    Problem,
    decode_text,
    input_file,
    refuse_binary,
)
from tasks.core.jsonl import MAX_RECORD_BYTES
from tasks.ingest.human_labels.label_rows import LabelOrigin, RowOutcome, human_label_row

REQUIRED = ("prompt", "response_a", "response_b", "choice")
OPTIONAL = ("annotator", "confidence", "comment", "family")
_CHOICES = {"a": "a", "b": "b", "tie": "tie"}
_BINARY_SNIFF_BYTES = 8192


def csv_rows(
    path: str | Path, origin: LabelOrigin, annotator: str | None
) -> Iterator[tuple[int, Any, RowOutcome]]:
    """One label per data row; a file that cannot be read as CSV text is one located problem."""
    source = str(path)
    lines = _Lines(path)
    try:  # a binary file is called binary, at its first NUL, before its header is judged
        refuse_binary(lines.handle.read(_BINARY_SNIFF_BYTES), source)
    except BinaryInputError as exc:
        lines.handle.close()
        yield exc.problems[0].line or 1, None, exc.problems
        return
    lines.handle.seek(0)
    previous_limit = csv.field_size_limit(MAX_RECORD_BYTES)
    try:
        reader = csv.reader(lines, strict=True)
        header = _next_row(reader, lines, source)
        if isinstance(header, Problem) or header is None:
            yield 1, None, [header or Problem(source, "the file is empty: a header row is required", 1)]
            return
        columns, problems = _columns(header, source)
        if problems:
            yield 1, header, problems
            return
        while True:
            start = lines.number + 1
            row = _next_row(reader, lines, source)
            if row is None:
                return
            if isinstance(row, Problem):
                yield row.line or start, None, [row]
                return
            if not any(cell.strip() for cell in row):
                continue
            record = dict(zip(columns, row, strict=False))
            if len(row) != len(columns):
                message = f"the row has {len(row)} values; the header has {len(columns)} columns"
                yield start, record, [Problem(source, message, start)]
                continue
            yield start, record, _label(record, source, start, origin, annotator)
    finally:
        lines.handle.close()
        csv.field_size_limit(previous_limit)


class _Lines:
    """The file's lines as text for ``csv.reader``; an unreadable line raises a located InputError.

    ``number`` is the last physical line read, so a row starts one after where the last ended.
    """

    def __init__(self, path: str | Path):
        self.source = str(path)
        self.handle = open(input_file(path), "rb")  # noqa: SIM115 (csv_rows closes it)
        self.number = 0

    def __iter__(self) -> _Lines:
        return self

    def __next__(self) -> str:
        raw = self.handle.readline(MAX_RECORD_BYTES + 1)
        if not raw:
            raise StopIteration
        self.number += 1
        if len(raw) > MAX_RECORD_BYTES and not raw.endswith(b"\n"):
            message = f"the line is over {MAX_RECORD_BYTES:,} bytes; one row may have at most that"
            raise InputError.single(self.source, message, self.number)
        return decode_text(raw, self.source, self.number)


def _next_row(reader: Any, lines: _Lines, source: str) -> list[str] | Problem | None:
    """The next row, None at the end, or the problem that ends reading: csv cannot find its
    place again after a line it never saw (binary, not UTF-8, over-long) or broken quoting."""
    try:
        return next(reader)
    except StopIteration:
        return None
    except InputError as exc:
        return exc.problems[0]
    except csv.Error as exc:
        return Problem(source, f"not valid CSV: {exc}", lines.number)


def _columns(header: list[str], source: str) -> tuple[list[str], list[Problem]]:
    """The header's column names (trimmed, lower case) and what is wrong with them."""
    names = [cell.strip().lower() for cell in header]
    problems = []
    allowed = ", ".join((*REQUIRED, *OPTIONAL))
    for name in dict.fromkeys(names):
        if name not in REQUIRED and name not in OPTIONAL:
            problems.append(Problem(source, f"unknown column (allowed: {allowed})", 1, name or "(blank)"))
        elif names.count(name) > 1:
            problems.append(Problem(source, "the column appears more than once", 1, name))
    for name in REQUIRED:
        if name not in names:
            problems.append(Problem(source, "required column is missing from the header", 1, name))
    return names, problems


def _label(
    record: dict[str, str], source: str, line: int, origin: LabelOrigin, annotator: str | None
) -> RowOutcome:
    problems = []

    def problem(field: str, message: str) -> None:
        problems.append(Problem(source, message, line, field))

    for name in ("prompt", "response_a", "response_b"):
        if not record[name].strip():
            problem(name, "must not be empty")
    choice = _CHOICES.get(record["choice"].strip().lower())
    if choice is None:
        problem("choice", f"{record['choice']!r} is not one of a, b, tie")
    row_annotator = (record.get("annotator") or "").strip() or annotator
    if not row_annotator:
        problem("annotator", "required (give an annotator column value or pass --annotator)")
    confidence = _confidence(record.get("confidence") or "")
    if isinstance(confidence, str):
        problem("confidence", confidence)
    if not problems and record["response_a"] == record["response_b"]:
        problem("response_b", "response_a and response_b are identical")
    if problems:
        return problems
    messages = [{"role": "user", "content": record["prompt"]}]
    label = human_label_row(
        messages=messages,
        response_a=record["response_a"],
        response_b=record["response_b"],
        choice=choice,
        annotator=row_annotator,
        origin=origin,
        source_row=line,
        confidence=confidence,
        comment=(record.get("comment") or "").strip() or None,
    )
    family = (record.get("family") or "").strip() or None
    return label, messages, family


def _confidence(cell: str) -> float | str | None:
    """The confidence in [0, 1], None for an empty cell, or what is wrong with the cell."""
    if not cell.strip():
        return None
    try:
        value = float(cell)
    except ValueError:
        return f"{cell!r} is not a number"
    if math.isnan(value) or not 0 <= value <= 1:
        return f"{cell.strip()} is outside [0, 1]"
    return value
