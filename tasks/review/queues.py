"""Review queues: named SQL ``SELECT``s over the store that decide which pairs people see next.

A queue file is YAML people edit (``datasets/review/queues.yaml`` is the bundled one). Each
queue's SQL goes through the same read-only machinery as ``charter sql`` (DuckDB's parser
must see exactly one SELECT; the connection is read-only with external access off), and is
bound once at load, so a queue that is not a single SELECT, does not parse, names an unknown
view, or returns no ``pair_id`` / ``priority`` column fails at start, naming the file and line.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Annotated

import duckdb
from pydantic import BaseModel, ConfigDict, Field, StrictBool

from tasks.core.errors import CharterError, InputError, Problem, read_input_text
from tasks.core.yaml_source import LocatedDocument, load_located_yaml, validate_located
from tasks.store.sql import check_read_only, readonly_connection
from tasks.store.store import Store

BUNDLED_QUEUES = Path(__file__).resolve().parents[2] / "datasets" / "review" / "queues.yaml"
QUEUE_NAME = r"^[a-z][a-z0-9_-]{0,39}$"


class QueueSettings(BaseModel):
    """One queue as written in the file."""

    model_config = ConfigDict(extra="forbid", frozen=True, use_attribute_docstrings=True)

    name: Annotated[str, Field(pattern=QUEUE_NAME)]
    """Short name used in links, exports and the ``queue`` column of labels."""

    title: Annotated[str, Field(min_length=1, max_length=200)]
    """What the queue holds, in a few words, for the bench's queue list."""

    description: str = ""
    """A sentence on why these pairs need people."""

    sql: Annotated[str, Field(min_length=1, max_length=100_000)]
    """One SELECT returning ``pair_id`` and ``priority`` (lowest served first)."""

    show_ai: StrictBool = False
    """Show the AI's verdict as a suggestion on this queue's pages."""


class QueueFile(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    queues: Annotated[list[QueueSettings], Field(min_length=1)]


@dataclass(frozen=True)
class Queue:
    """A checked queue: its settings plus where it was written, for errors found later."""

    settings: QueueSettings
    source: str
    line: int | None

    @property
    def name(self) -> str:
        return self.settings.name


def load_queues(path: str | Path | None, store: Store) -> list[Queue]:
    """Parse and check a queue file against the store's catalog; raises :class:`InputError`."""
    file = Path(path) if path is not None else BUNDLED_QUEUES
    source = str(file)
    document = load_located_yaml(read_input_text(file), source)
    parsed = validate_located(QueueFile, document, source)
    queues = [
        Queue(settings, source, document.line_of(("queues", index, "sql")))
        for index, settings in enumerate(parsed.queues)
    ]
    problems = _duplicate_names(queues, document)
    with readonly_connection(store) as con:
        for index, queue in enumerate(queues):
            problem = _sql_problem(con, queue.settings.sql)
            if problem:
                problems.append(Problem(source, problem, queue.line, f"queues[{index}].sql"))
    if problems:
        raise InputError(problems)
    return queues


def _duplicate_names(queues: list[Queue], document: LocatedDocument) -> list[Problem]:
    seen: dict[str, int] = {}
    problems = []
    for index, queue in enumerate(queues):
        if queue.name in seen:
            problems.append(
                Problem(
                    queue.source,
                    f"queue name {queue.name!r} is already used by queues[{seen[queue.name]}]",
                    document.line_of(("queues", index, "name")),
                    f"queues[{index}].name",
                )
            )
        seen.setdefault(queue.name, index)
    return problems


def _sql_problem(con: duckdb.DuckDBPyConnection, sql: str) -> str | None:
    """Why ``sql`` cannot be a queue, or None: bound (not run) on the read-only catalog."""
    try:
        check_read_only(con, sql)
        columns = [c.lower() for c in con.sql(sql).columns]
    except CharterError as exc:
        return str(exc)
    except duckdb.Error as exc:
        return f"the query does not bind: {_first_line(exc)}"
    missing = [c for c in ("pair_id", "priority") if c not in columns]
    if missing:
        return f"the query must return the columns pair_id and priority; missing {', '.join(missing)}"
    return None


def _first_line(exc: Exception) -> str:
    return str(exc).strip().splitlines()[0]


def _as_subquery(sql: str) -> str:
    """``sql`` fit to sit inside the wrapper's parentheses: trailing ';'s and the comments after
    them cut (found with DuckDB's own tokenizer, so a ';' in a string or comment is kept), and
    a newline, so a trailing '-- comment' cannot swallow the closing parenthesis."""
    tokens = [(at, kind) for at, kind in duckdb.tokenize(sql) if kind != duckdb.token_type.comment]
    end = len(sql)
    while tokens and tokens[-1][1] == duckdb.token_type.operator and sql[tokens[-1][0]] == ";":
        end = tokens.pop()[0]
    return sql[:end] + "\n"


def queue_snapshot(
    con: duckdb.DuckDBPyConnection, queue: Queue, limit: int, exclude: list[str] | None = None
) -> list[tuple[str, float]]:
    """The queue's first ``limit`` (pair id, priority) rows, lowest priority first, one per pair,
    leaving out the pairs in ``exclude`` (those that already have enough annotators)."""
    wrapped = (
        f"select pair_id::varchar as pair_id, min(priority)::double as priority "
        f"from ({_as_subquery(queue.settings.sql)}) as queue "
        f"where pair_id is not null and priority is not null "
        f"and pair_id::varchar not in (select unnest($exclude::varchar[])) "
        f"group by pair_id order by priority, pair_id limit {int(limit)}"
    )
    try:
        rows = con.execute(wrapped, {"exclude": exclude or []}).fetchall()
        return [(row[0], float(row[1])) for row in rows]
    except duckdb.Error as exc:
        raise CharterError(
            f"{queue.source}:{queue.line} [queue {queue.name}]: the query failed: {_first_line(exc)}"
        ) from None


def queue_sizes(store: Store, queues: list[Queue]) -> dict[str, int]:
    """How many pairs each queue holds right now (before the bench's overlap and leases)."""
    sizes = {}
    with readonly_connection(store) as con:
        for queue in queues:
            wrapped = f"select count(distinct pair_id) from ({_as_subquery(queue.settings.sql)}) as queue"
            try:
                sizes[queue.name] = int(con.execute(wrapped).fetchone()[0])
            except duckdb.Error as exc:
                where = f"{queue.source}:{queue.line} [queue {queue.name}]"
                raise CharterError(f"{where}: the query failed: {_first_line(exc)}") from None
    return sizes
