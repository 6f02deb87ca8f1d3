"""The audit views' files: one ``views/<view>.sql`` per view, its documentation, its load order.

Each file holds one ``create view <view> as ...`` (the view named after the file), opened by
a ``--`` comment: what the view answers, then a ``Columns:`` line and one ``name: meaning``
entry per output column (longer meanings continue on further-indented lines)::

    -- Each annotator's latest vote per pair.
    --
    -- Columns:
    --   pair_id: the pair
    --   vote: the annotator's latest vote: 'first', 'second' or 'tie'

The order is derived, not declared: a view reads other views in its ``from`` and ``join``
clauses, and each is created after the ones it reads, so adding a view is adding a file.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from functools import cache
from graphlib import CycleError, TopologicalSorter
from importlib import resources

from tasks.core.errors import CharterError

_CREATE = re.compile(r"^create view (\w+) as\b", re.MULTILINE)
_COLUMN = re.compile(r"^ {2}(\w+): (.+)$")
_CONTINUATION = re.compile(r"^ {4,}(\S.*)$")
_READS = re.compile(r"\b(?:from|join)\s+(\w+)", re.IGNORECASE)
_COMMENT = re.compile(r"--[^\n]*")


@dataclass(frozen=True)
class ViewFile:
    """One view's file: its SQL, its documentation and the relations it reads."""

    name: str
    path: str
    sql: str
    doc: str
    columns: dict[str, str]
    reads: frozenset[str]


def parse_view_file(path: str, text: str) -> ViewFile:
    """A view file, checked; a :class:`CharterError` names the file and line of what is wrong."""
    lines = text.splitlines()
    doc_lines = []
    for line in lines:
        if not line.startswith("--"):
            break
        doc_lines.append(line[3:] if line.startswith("-- ") else line[2:])
    name = path.rsplit("/", 1)[-1].removesuffix(".sql")
    creates = _CREATE.findall(text)
    if creates != [name]:
        raise CharterError(
            f"{path}: must hold exactly one `create view {name} as`, found {creates or 'none'}"
        )
    if len(doc_lines) < len(lines) and not _CREATE.match(lines[len(doc_lines)]):
        raise CharterError(
            f"{path}:{len(doc_lines) + 1}: the view's `--` comment must run up to its `create view`"
        )
    description, columns = _split_doc(path, doc_lines)
    body = _COMMENT.sub("", text)
    return ViewFile(name, path, text, description, columns, frozenset(_READS.findall(body)) - {name})


def _split_doc(path: str, doc_lines: list[str]) -> tuple[str, dict[str, str]]:
    """The description (one line) and each column's meaning, from the leading comment."""
    if "Columns:" not in doc_lines:
        raise CharterError(f"{path}: the leading comment needs a `-- Columns:` line listing every column")
    marker = doc_lines.index("Columns:")
    description = " ".join(line.strip() for line in doc_lines[:marker] if line.strip())
    if not description:
        raise CharterError(f"{path}:1: the leading comment must say what the view answers")
    columns: dict[str, str] = {}
    last = None
    for number, line in enumerate(doc_lines[marker + 1 :], start=marker + 2):
        if entry := _COLUMN.match(line):
            last = entry.group(1)
            if last in columns:
                raise CharterError(f"{path}:{number}: column {last!r} is documented twice")
            columns[last] = entry.group(2).strip()
        elif (more := _CONTINUATION.match(line)) and last is not None:
            columns[last] += " " + more.group(1).strip()
        else:
            raise CharterError(f"{path}:{number}: expected `--   column: meaning`, got {line.strip()!r}")
    return description, columns


def load_order(views: list[ViewFile]) -> list[ViewFile]:
    """``views`` with each after every view it reads (ties in name order, so the order is stable)."""
    by_name = {view.name: view for view in views}
    graph = TopologicalSorter({view.name: view.reads & by_name.keys() for view in views})
    try:
        graph.prepare()
    except CycleError as exc:
        raise CharterError(f"audit views read each other in a cycle: {' -> '.join(exc.args[1])}") from None
    ordered = []
    while graph.is_active():
        ready = sorted(graph.get_ready())
        ordered += [by_name[name] for name in ready]
        graph.done(*ready)
    return ordered


@cache
def audit_views() -> tuple[ViewFile, ...]:
    """Every view file shipped in ``tasks/store/views``, parsed, in load order (read once per process)."""
    folder = resources.files("tasks.store").joinpath("views")
    views = [
        parse_view_file(f"tasks/store/views/{entry.name}", entry.read_text(encoding="utf-8"))
        for entry in folder.iterdir()
        if entry.name.endswith(".sql")
    ]
    return tuple(load_order(views))
