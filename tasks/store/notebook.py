"""The store from Python, for notebooks: ``open_store("store").sql("select ...").df()``.

:func:`open_store` keeps one :func:`tasks.store.sql.readonly_connection` open, without a ``with``
block (awkward across notebook cells): the session's folder goes when the connection is closed,
garbage-collected or the interpreter exits. Its guarantees are ``charter sql``'s: each query is
checked by DuckDB's parser (one SELECT) and runs in a read-only database that sees only the
store's ``tables/``, within the session's memory and timeout.

A DuckDB relation can write files (``write_parquet``, ``write_csv``), and the store's connection
may write where it may read: inside ``tables/``. So :meth:`StoreConnection.sql` runs the query at
once and returns a relation over its rows held by a second, in-memory DuckDB with no file access
at all; ``.df()``, ``.pl()``, ``.to_arrow_table()``, and further relational steps, work on it, and
nothing reached through it can write the store. Running at once is also what lets the timeout and
the notebook's interrupt (SIGINT) stop the query.
"""

from __future__ import annotations

import contextlib
import signal
import weakref
from pathlib import Path
from types import TracebackType

import duckdb
import pyarrow as pa

from tasks.core.errors import CharterError
from tasks.store.sql import check_read_only, interrupt_after, interrupting, readonly_connection
from tasks.store.sql_settings import SqlSettings
from tasks.store.sql_shell import TABLES_QUERY, columns_query
from tasks.store.store import Store


def _results_database(settings: SqlSettings) -> duckdb.DuckDBPyConnection:
    """An in-memory DuckDB for query results, within the session's memory: no file access, no
    spilling to disk (an in-memory database spills to ``./.tmp`` by default), settings locked."""
    con = duckdb.connect(":memory:")
    con.execute(f"set memory_limit = '{settings.memory_limit_bytes()}B'")
    con.execute("set temp_directory = ''")
    con.execute("set enable_external_access = false")
    con.execute("set autoinstall_known_extensions = false")
    con.execute("set autoload_known_extensions = false")
    con.execute("set lock_configuration = true")
    return con


class StoreConnection:
    """A read-only session over a store, usable directly or as a context manager."""

    def __init__(self, store: Store, settings: SqlSettings):
        self.store = store
        self.settings = settings
        resources = contextlib.ExitStack()
        try:
            self._con = resources.enter_context(readonly_connection(store, settings))
            self._results = resources.enter_context(contextlib.closing(_results_database(settings)))
        except BaseException:
            resources.close()
            raise
        # The finalizer holds the resources, not this object, so it can run when this one is collected.
        self._close = weakref.finalize(self, resources.close)

    @property
    def closed(self) -> bool:
        return not self._close.alive

    def sql(self, query: str) -> duckdb.DuckDBPyRelation:
        """Run one SELECT now, within the session's timeout and memory, and return its rows as a
        relation (``.df()``, ``.pl()``, ``.to_arrow_table()``, ``.filter(...)``...)."""
        if self.closed:
            raise CharterError(f"the connection to {self.store.root} is closed; open_store() opens another")
        check_read_only(self._con, query)
        return self._results.from_arrow(self._rows(query))

    def tables(self) -> duckdb.DuckDBPyRelation:
        """Every table and view, with what it holds."""
        return self.sql(TABLES_QUERY)

    def columns(self, name: str) -> duckdb.DuckDBPyRelation:
        """The columns of table or view ``name``, with their types and comments."""
        return self.sql(columns_query(name))

    def close(self) -> None:
        """Close the connection and remove the session's folder (again: nothing happens)."""
        self._close()

    def __enter__(self) -> StoreConnection:
        return self

    def __exit__(
        self, kind: type[BaseException] | None, error: BaseException | None, trace: TracebackType | None
    ) -> None:
        self.close()

    def __repr__(self) -> str:
        return f"<StoreConnection {self.store.root} ({'closed' if self.closed else 'open'})>"

    def _rows(self, query: str) -> pa.Table:
        """The query's rows; the timeout stops it, and so does SIGINT (a notebook's interrupt),
        which then raises KeyboardInterrupt."""
        with (
            interrupting((signal.SIGINT,), self._con) as interrupts,
            interrupt_after(self._con, self.settings.timeout) as timed_out,
        ):
            try:
                rows = self._con.sql(query).to_arrow_table()
            except duckdb.InterruptException:
                if interrupts.received:
                    raise KeyboardInterrupt from None
                if timed_out.is_set():
                    raise CharterError(f"query stopped after {self.settings.timeout:g} s (timeout)") from None
                raise
        if interrupts.received:
            raise KeyboardInterrupt
        return rows


def open_store(
    path: str | Path, *, memory_limit: str | None = None, timeout: float | None = None
) -> StoreConnection:
    """A read-only connection to the store at ``path`` with every table and audit view.

    ``memory_limit`` (e.g. ``"2GB"``) and ``timeout`` (seconds per query) default to ``charter
    sql``'s (a quarter of the machine's memory, 60 s). Close it with ``.close()`` or a ``with``
    block; otherwise it closes when collected or when the interpreter exits.
    """
    given = {"memory_limit": memory_limit, "timeout": timeout}
    settings = SqlSettings(**{name: value for name, value in given.items() if value is not None})
    return StoreConnection(Store.existing(path), settings)
