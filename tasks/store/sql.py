"""Read-only SQL over the store, enforced by DuckDB itself.

Each session builds a throwaway DuckDB catalog with one view per table (over that
table's Parquet files) and the audit views, then reopens it ``read_only`` with
external access disabled except for the store's ``tables/`` folder and the
configuration locked. So DuckDB refuses writes and DDL (read-only database),
``ATTACH``/``INSTALL``/``LOAD`` and any file outside the store (external access),
and changing those settings (locked). ``COPY``/``EXPORT`` could still write inside the
allowed folder, so statements are also checked with DuckDB's own parser: only
``SELECT`` (including ``WITH``, ``DESCRIBE``, ``SHOW``, ``SUMMARIZE``) runs.

The audit views live one per file in ``views/`` (``<view>.sql``, dbt style), each opening
with a ``--`` comment that documents the view and, under ``Columns:``, every output column;
the catalog carries those as the view's and the columns' comments (``duckdb_views()``,
``duckdb_columns()``). A view may read tables and other views; the files are loaded in the
order their ``from``/``join`` references require. The views that aggregate read only the
narrow columns they need (ids, votes, times), never the response texts, so they stay fast
at millions of labels.
"""

from __future__ import annotations

import contextlib
import shutil
import tempfile
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import duckdb

from tasks.core.errors import CharterError, ReadOnlyQueryError
from tasks.store.schema import TABLES
from tasks.store.store import Store
from tasks.store.view_files import ViewFile, audit_views


@dataclass(frozen=True)
class QueryResult:
    columns: list[str]
    rows: list[tuple[Any, ...]]

    def records(self) -> list[dict[str, Any]]:
        return [dict(zip(self.columns, row, strict=True)) for row in self.rows]


def _create_view(con: duckdb.DuckDBPyConnection, view: ViewFile) -> None:
    con.execute(view.sql)
    con.execute(f'comment on view "{view.name}" is {_quote(view.doc)}')
    for column, doc in view.columns.items():
        try:
            con.execute(f'comment on column "{view.name}"."{column}" is {_quote(doc)}')
        except duckdb.BinderException:
            raise CharterError(f"{view.path}: documents a column {column!r} the view does not have") from None


def _quote(text: str) -> str:
    return "'" + text.replace("'", "''") + "'"


def _build_catalog(store: Store, path: Path) -> None:
    with contextlib.closing(duckdb.connect(str(path))) as con:
        # One transaction: a commit per statement (hundreds, with the column comments) is slow.
        con.execute("begin transaction")
        for name, spec in TABLES.items():
            # An empty table with the full schema keeps every column present, even when the
            # Parquet files are empty or were written before a column was added.
            con.register("_schema_source", spec.schema.empty_table())
            con.execute(f'create table "_schema_{name}" as select * from _schema_source')
            con.unregister("_schema_source")
            body = f'select * from "_schema_{name}"'
            if store.files(name):
                pattern = _quote(str(store.table_dir(name) / "*.parquet"))
                body += f" union all by name select * from read_parquet({pattern}, union_by_name = true)"
            con.execute(f'create view "{name}" as {body}')
            con.execute(f'comment on view "{name}" is {_quote(spec.doc)}')
        for view in audit_views():
            _create_view(con, view)
        con.execute("commit")


@contextlib.contextmanager
def readonly_connection(store: Store) -> Iterator[duckdb.DuckDBPyConnection]:
    """A DuckDB connection that can read the store and change nothing."""
    workdir = Path(tempfile.mkdtemp(prefix="charter-sql-"))
    try:
        catalog = workdir / "catalog.duckdb"
        _build_catalog(store, catalog)
        con = duckdb.connect(str(catalog), read_only=True)
        try:
            tables_dir = str(store.root / "tables") + "/"
            con.execute(f"set allowed_directories = [{_quote(tables_dir)}]")
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


def execute(con: duckdb.DuckDBPyConnection, query: str) -> QueryResult:
    """Run one query on a :func:`readonly_connection` after the read-only check."""
    check_read_only(con, query)
    try:
        relation = con.sql(query)
        return QueryResult(list(relation.columns), relation.fetchall())
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
