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


def read_input_text(path: str | Path) -> str:
    """A user's input file as text; a missing or non-UTF-8 file is an :class:`InputError` naming it."""
    try:
        return Path(path).read_text(encoding="utf-8")
    except FileNotFoundError:
        raise InputError.single(str(path), "file not found") from None
    except UnicodeDecodeError as exc:
        raise InputError.single(str(path), f"not UTF-8 text ({exc.reason} at byte {exc.start})") from None
