"""Errors that tell a person exactly what to fix: which file, which line or row, which field."""

from __future__ import annotations

from dataclasses import dataclass


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
