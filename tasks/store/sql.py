"""Read-only SQL over the store, enforced by DuckDB itself.

Each session opens its own copy of the store's DuckDB catalog (one view per table over
that table's Parquet files, and the audit views; built once per state of the store,
:mod:`tasks.store.sql_catalog`) ``read_only``, with external access disabled except
for the store's ``tables/`` folder and the configuration locked. So DuckDB refuses
writes and DDL (read-only database), ``ATTACH``/``INSTALL``/``LOAD`` and any file
outside the store (external access), and changing those settings (locked).
``COPY``/``EXPORT`` could still write inside the allowed folder, so statements are
also checked with DuckDB's own parser: only ``SELECT`` (including ``WITH``,
``DESCRIBE``, ``SHOW``, ``SUMMARIZE``) runs.

The audit views live one per file in ``views/`` (``<view>.sql``, dbt style), each opening
with a ``--`` comment that documents the view and, under ``Columns:``, every output column;
the catalog carries those as the view's and the columns' comments (``duckdb_views()``,
``duckdb_columns()``). A view may read tables and other views; the files are loaded in the
order their ``from``/``join`` references require. The views that aggregate read only the
narrow columns they need (ids, votes, times), never the response texts, so they stay fast
at millions of labels.

A session is bounded (:mod:`tasks.store.sql_settings`): its memory and temporary disk always,
its query's time when the caller gives a timeout (``charter sql``: :func:`run_bounded_query`,
which SIGINT and SIGTERM also stop). Every way out of a session removes its catalog folder.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import tempfile
import threading
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import duckdb

from tasks.core.errors import CharterError, ReadOnlyQueryError
from tasks.store.sql_catalog import quote, store_catalog
from tasks.store.sql_settings import SqlSettings
from tasks.store.store import Store


@dataclass(frozen=True)
class QueryResult:
    columns: list[str]
    rows: list[tuple[Any, ...]]

    def records(self) -> list[dict[str, Any]]:
        return [dict(zip(self.columns, row, strict=True)) for row in self.rows]


WORKDIR_PREFIX = "charter-sql-"
"""Each session's catalog folder is ``<temp dir>/charter-sql-XXXX``, removed when it ends."""


def _refuse_links(store: Store) -> None:
    """Refuse a store with a symbolic link where DuckDB reads, before DuckDB opens.

    DuckDB resolves links in the allowed folder once: a ``tables`` that links to ``/`` would
    allow ``read_text('/etc/passwd')``. A linked table folder or Parquet file would put files
    from elsewhere into the views (DuckDB refuses one whose target lies outside only when a
    query reads it, table by table). Charter writes no links, so any link is refused. The
    store's root is resolved when it is opened, so only a link below it can lead outside.
    """
    tables = store.root / "tables"
    paths = [tables]
    if tables.is_dir() and not tables.is_symlink():
        for folder in tables.iterdir():
            paths.append(folder)
            if folder.is_dir() and not folder.is_symlink():
                paths.extend(folder.iterdir())
    linked = next((path for path in paths if path.is_symlink()), None)
    if linked is not None:
        raise CharterError(
            f"{linked}: is a symbolic link (to {os.readlink(linked)}); charter sql reads only "
            "files inside the store, so it refuses a store with links under tables/"
        )


@contextlib.contextmanager
def readonly_connection(
    store: Store, settings: SqlSettings | None = None
) -> Iterator[duckdb.DuckDBPyConnection]:
    """A DuckDB connection that can read the store and change nothing, within ``settings``'
    memory (default: :class:`SqlSettings`'), spilling at most as much again to its own folder."""
    _refuse_links(store)
    memory = f"'{(settings or SqlSettings()).memory_limit_bytes()}B'"
    workdir = Path(tempfile.mkdtemp(prefix=WORKDIR_PREFIX))
    try:
        con = duckdb.connect(str(store_catalog(store, workdir)), read_only=True)
        try:
            tables_dir = str(store.root / "tables") + "/"
            con.execute(f"set memory_limit = {memory}")
            con.execute(f"set temp_directory = {quote(str(workdir / 'spill'))}")
            con.execute(f"set max_temp_directory_size = {memory}")
            con.execute(f"set allowed_directories = [{quote(tables_dir)}]")
            con.execute("set enable_external_access = false")
            con.execute("set autoinstall_known_extensions = false")
            con.execute("set autoload_known_extensions = false")
            con.execute("set lock_configuration = true")
            yield con
        finally:
            con.close()
    finally:
        shutil.rmtree(workdir, ignore_errors=True)


def check_read_only(con: duckdb.DuckDBPyConnection, query: str) -> None:
    """Refuse anything but one SELECT statement, using DuckDB's parser (not string matching)."""
    try:
        statements = con.extract_statements(query)
    except duckdb.ParserException as exc:
        raise CharterError(f"SQL syntax error: {exc}") from None
    if len(statements) != 1:
        raise ReadOnlyQueryError(f"charter sql runs exactly one statement; got {len(statements)}")
    kind = statements[0].type
    if kind != duckdb.StatementType.SELECT:
        raise ReadOnlyQueryError(
            f"charter sql is read-only: {kind.name} statements are refused; "
            "only SELECT queries run (the store is changed only by charter's own commands)"
        )


@contextlib.contextmanager
def interrupt_after(con: duckdb.DuckDBPyConnection, timeout: float | None) -> Iterator[threading.Event]:
    """Interrupt ``con``'s query after ``timeout`` seconds (None: never) from a timer thread
    (DuckDB stops within ~0.1 s); the event yielded says whether the timer did it."""
    timed_out = threading.Event()

    def stop() -> None:
        timed_out.set()
        con.interrupt()

    timer = threading.Timer(timeout, stop) if timeout is not None else None
    if timer is not None:
        timer.daemon = True
        timer.start()
    try:
        yield timed_out
    finally:
        if timer is not None:
            timer.cancel()


def execute(con: duckdb.DuckDBPyConnection, query: str, timeout: float | None = None) -> QueryResult:
    """Run one query on a :func:`readonly_connection` after the read-only check, within ``timeout``
    seconds (:func:`interrupt_after`)."""
    check_read_only(con, query)
    with interrupt_after(con, timeout) as timed_out:
        try:
            relation = con.sql(query)
            return QueryResult(list(relation.columns), relation.fetchall())
        except duckdb.InterruptException:
            if timed_out.is_set():
                raise CharterError(f"query stopped after {timeout:g} s (--timeout)") from None
            raise CharterError("query interrupted") from None
        except duckdb.OutOfMemoryException:
            limit = con.sql("select current_setting('memory_limit')").fetchall()[0][0]
            raise CharterError(
                f"query needs more than {limit} of memory (--memory-limit; as much again may spill to disk)"
            ) from None
        except duckdb.PermissionException as exc:
            raise ReadOnlyQueryError(
                f"charter sql is read-only and sees only the store's tables: {exc}"
            ) from None
        except duckdb.Error as exc:
            raise CharterError(f"query failed: {exc}") from None


def run_query(store: Store, query: str) -> QueryResult:
    """Run one read-only query against the store."""
    with readonly_connection(store) as con:
        return execute(con, query)


class QueryInterrupted(CharterError):
    """SIGINT or SIGTERM stopped the query; ``charter sql`` exits 128 + the signal (130, 143)."""

    def __init__(self, signum: int):
        self.exit_code = 128 + signum
        super().__init__(f"interrupted ({signal.Signals(signum).name})")


@contextlib.contextmanager
def handling_signals(signums: tuple[int, ...], handler: Callable[[int, object], None]) -> Iterator[None]:
    """``handler`` for these signals while the block runs (Python sets handlers only in the main
    thread; elsewhere, a server's request say, the signals keep theirs)."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    previous = {signum: signal.signal(signum, handler) for signum in signums}
    try:
        yield
    finally:
        for signum, before in previous.items():
            signal.signal(signum, before)


class Interrupts:
    """A session's signal handler: each signal interrupts ``connection``'s query and is listed.

    Raising from the handler is not enough: DuckDB runs Python's handlers while it executes
    but holds back what they raise until the query ends (a runaway query: never). Its
    ``interrupt()`` stops the query at once; the caller raises (or not) after, from ``received``.
    """

    def __init__(self, connection: duckdb.DuckDBPyConnection | None = None) -> None:
        self.connection = connection  # None until there is one: a signal is then only listed
        self.received: list[int] = []

    def __call__(self, signum: int, frame: object) -> None:
        self.received.append(signum)
        if self.connection is not None:
            with contextlib.suppress(duckdb.Error):  # a connection already closed: nothing runs
                self.connection.interrupt()

    def raise_if_received(self) -> None:
        if self.received:
            raise QueryInterrupted(self.received[-1])


@contextlib.contextmanager
def interrupting(
    signums: tuple[int, ...], connection: duckdb.DuckDBPyConnection | None = None
) -> Iterator[Interrupts]:
    """While the block runs, these signals interrupt the query of ``connection`` (or of the one
    set on the :class:`Interrupts` later) and are listed, not raised."""
    interrupts = Interrupts(connection)
    with handling_signals(signums, interrupts):
        yield interrupts


def run_bounded_query(store: Store, query: str, settings: SqlSettings) -> QueryResult:
    """What ``charter sql`` runs: one read-only query within ``settings``' time and memory.

    SIGINT or SIGTERM, at any point, ends it with :class:`QueryInterrupted` (instead of
    DuckDB's traceback, or a SIGTERM that leaves the catalog folder behind), after the
    session's folder is removed.
    """
    with interrupting((signal.SIGINT, signal.SIGTERM)) as signals:
        try:
            with readonly_connection(store, settings) as con:
                signals.connection = con
                signals.raise_if_received()  # one that came while the catalog was built
                return execute(con, query, settings.timeout)
        finally:
            signals.raise_if_received()  # a signal wins over the query's result or error
