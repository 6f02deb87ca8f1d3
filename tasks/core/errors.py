"""Errors that tell a person exactly what to fix: which file, which line or row, which field."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path


class CharterError(Exception):
    """Base class for errors charter reports to users without a traceback."""


@dataclass(frozen=True)
class Problem:
    """One thing wrong with one input: where it is and what is wrong."""

    path: str
    message: str
    line: int | None = None
    field: str | None = None
    # What ``line`` counts: a text line (printed as path:N) or a record such as a JSON export's task.
    unit: str = "line"

    def __str__(self) -> str:
        if self.line is None:
            where = self.path
        elif self.unit == "line":
            where = f"{self.path}:{self.line}"
        else:
            where = f"{self.path} ({self.unit} {self.line})"
        field = f" [{self.field}]" if self.field else ""
        return f"{where}{field}: {self.message}"


class InputError(CharterError):
    """One or more problems in a user's input file; nothing was written."""

    def __init__(self, problems: list[Problem]):
        self.problems = list(problems)
        super().__init__("\n".join(str(p) for p in self.problems))

    @classmethod
    def single(cls, path: str, message: str, line: int | None = None, field: str | None = None) -> InputError:
        return cls([Problem(path=path, message=message, line=line, field=field)])


class ReadOnlyQueryError(CharterError):
    """A query asked charter's read-only SQL interface to change something."""


# Limits on what charter reads. No real input comes near them (the shipped constitution is 20 KB,
# the deepest shipped value 5 levels, the longest hh-rlhf line 7 KB); they keep a hostile or broken
# file from hanging the program or exhausting its memory or stack before it can report a problem.
MAX_NESTING_DEPTH = 100
# Hand-written files (constitutions, policies, pipeline configs, judge templates) are parsed by
# PyYAML's pure-Python reader at about 0.5 MB/s: 1 MiB keeps even the largest answer under 2 s.
MAX_TEXT_FILE_BYTES = 1 << 20


class BinaryInputError(InputError):
    """The input holds NUL bytes: it is binary data, so reading on would only repeat the problem."""


def input_file(path: str | Path) -> Path:
    """``path`` if it names a regular file; otherwise an :class:`InputError` saying what it names instead."""
    file = Path(path)
    if file.is_dir():
        raise InputError.single(str(path), "is a directory, not a file")
    if not file.exists():
        raise InputError.single(str(path), "file not found")
    if not file.is_file():
        raise InputError.single(str(path), "not a regular file")
    return file


def read_input_text(path: str | Path, *, max_bytes: int = MAX_TEXT_FILE_BYTES) -> str:
    """A user's hand-written input file as text; anything unreadable is an :class:`InputError` naming it."""
    file = input_file(path)
    size = file.stat().st_size
    if size > max_bytes:
        raise InputError.single(
            str(path), f"the file is {size:,} bytes; files of this kind are read up to {max_bytes:,}"
        )
    try:
        data = file.read_bytes()
    except OSError as exc:
        raise InputError.single(str(path), f"cannot read the file: {exc.strerror}") from None
    return decode_text(data, str(path))


def decode_text(data: bytes, source: str, first_line: int = 1) -> str:
    """``data`` (a file, or the line ``first_line`` of one) as UTF-8 text.

    A byte-order mark at the start of a file is dropped: Windows tools and Excel write one,
    and it is not part of the content. Binary data and other encodings are refused with the
    line they start on, which a byte offset alone does not tell a person with an editor.
    """
    refuse_binary(data, source, first_line)
    try:
        return data.decode("utf-8-sig" if first_line == 1 else "utf-8")
    except UnicodeDecodeError as exc:
        line_start = data.rfind(b"\n", 0, exc.start) + 1
        line = first_line + data.count(b"\n", 0, exc.start)
        message = f"not UTF-8 text ({exc.reason} at byte {exc.start - line_start + 1} of the line)"
        raise InputError.single(source, message, line=line) from None


def refuse_binary(data: bytes, source: str, first_line: int = 1) -> None:
    """Raise :class:`BinaryInputError` at the line of the first NUL byte in ``data``, if it has one.

    No text format charter reads contains NUL, and binary files nearly always do early on,
    which is how tools such as git tell binary from text.
    """
    nul = data.find(b"\0")
    if nul >= 0:
        line = first_line + data.count(b"\n", 0, nul)
        raise BinaryInputError([Problem(source, "binary data (a NUL byte), not UTF-8 text", line)])
