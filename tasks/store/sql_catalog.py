"""The SQL session's catalog: one view per table and the audit views, built once per state of the
store and reused until a file, a run's liveness or charter's catalog code changes.

Building the catalog binds every view over every Parquet file's schema (~0.6 s on a small store,
much more on one with thousands of files); a ``charter sql`` query itself takes milliseconds. So
the catalog is built into ``$CHARTER_CACHE/sql-catalogs/<store>/<key>.duckdb`` under a key that
hashes everything the catalog holds: the store's path, each table's listed files (name, size,
modification time), which open runs still have a live process (the ``run_liveness`` table),
the code and view files that make it, and DuckDB's version. The same key means the same catalog,
so a reused one answers exactly as a rebuilt one would. Each session opens its own copy
(:func:`tasks.store.sql.readonly_connection`): DuckDB shares one database instance per path in
a process, and a session locks its instance's configuration.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import tempfile
from functools import cache
from pathlib import Path

import duckdb

from tasks.core.cache import cache_root
from tasks.core.errors import CharterError
from tasks.store.runs import run_liveness
from tasks.store.schema import TABLES
from tasks.store.store import Store
from tasks.store.view_files import ViewFile, audit_views

CATALOGS = "sql-catalogs"
_CODE = ("schema.py", "sql_catalog.py", "runs.py", "view_files.py")


def quote(text: str) -> str:
    """``text`` as a SQL string literal."""
    return "'" + text.replace("'", "''") + "'"


def _create_view(con: duckdb.DuckDBPyConnection, view: ViewFile) -> None:
    con.execute(view.sql)
    con.execute(f'comment on view "{view.name}" is {quote(view.doc)}')
    for column, doc in view.columns.items():
        try:
            con.execute(f'comment on column "{view.name}"."{column}" is {quote(doc)}')
        except duckdb.BinderException:
            raise CharterError(f"{view.path}: documents a column {column!r} the view does not have") from None


def build_catalog(store: Store, path: Path, files: dict[str, list[Path]], liveness: list[tuple]) -> None:
    """Write the catalog of ``store`` as it is listed in ``files`` to ``path``."""
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
            # The files the manifest lists, each checked (not a glob, which would read a stray
            # file or one compaction replaced); a failed check is a one-line error naming it.
            if listed := files[name]:
                paths = ", ".join(quote(str(f)) for f in listed)
                body += f" union all by name select * from read_parquet([{paths}], union_by_name = true)"
            con.execute(f'create view "{name}" as {body}')
            con.execute(f'comment on view "{name}" is {quote(spec.doc)}')
        # Which runs that never closed still have a live process: run_summary's running / died.
        con.execute("create table run_liveness (run_id varchar, alive boolean)")
        if liveness:
            con.executemany("insert into run_liveness values (?, ?)", liveness)
        for view in audit_views():
            _create_view(con, view)
        con.execute("commit")


@cache
def _code_digest() -> str:
    """The bytes of what makes a catalog (this module, the schema, the view files), hashed."""
    here = Path(__file__).parent
    digest = hashlib.sha256(duckdb.__version__.encode())
    for path in [*(here / name for name in _CODE), *sorted((here / "views").glob("*.sql"))]:
        digest.update(path.name.encode() + b"\0" + path.read_bytes() + b"\0")
    return digest.hexdigest()


def catalog_key(store: Store, files: dict[str, list[Path]], liveness: list[tuple]) -> str:
    """What the catalog of ``store`` depends on, hashed: equal keys, equal catalogs."""
    listing = {
        name: [(path.name, (stat := path.stat()).st_size, stat.st_mtime_ns) for path in paths]
        for name, paths in files.items()
    }
    state = {"code": _code_digest(), "root": str(store.root), "files": listing, "liveness": liveness}
    return hashlib.sha256(json.dumps(state, sort_keys=True).encode()).hexdigest()


def store_catalog(store: Store, session_dir: Path) -> Path:
    """A catalog of ``store`` as it is now, at ``session_dir/catalog.duckdb``: a copy of the cached
    one when the store has not changed since it was built, else built (and cached) now."""
    files = {name: store.files(name) for name in TABLES}
    liveness = sorted(run_liveness(store).items())
    session_catalog = session_dir / "catalog.duckdb"
    folder = cache_root() / CATALOGS / hashlib.sha256(str(store.root).encode()).hexdigest()[:16]
    cached = folder / f"{catalog_key(store, files, liveness)}.duckdb"
    try:
        session_catalog.write_bytes(cached.read_bytes())
        return session_catalog
    except OSError:  # not built yet, or no cache to read (then none is written either)
        pass
    build_catalog(store, session_catalog, files, liveness)
    with contextlib.suppress(OSError):  # a cache that cannot be written only costs the rebuild
        _keep(session_catalog, cached)
    return session_catalog


def _keep(built: Path, cached: Path) -> None:
    """Publish ``built`` as ``cached`` (atomically: readers see a whole file or none) and drop the
    store's older catalogs, which no key will name again."""
    cached.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
    handle, temporary = tempfile.mkstemp(dir=cached.parent, prefix=".building-", suffix=".duckdb")
    try:
        with os.fdopen(handle, "wb") as copy:
            copy.write(built.read_bytes())
        os.replace(temporary, cached)
    finally:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(temporary)
    for older in cached.parent.glob("*.duckdb"):
        if older != cached:
            with contextlib.suppress(FileNotFoundError):
                older.unlink()
