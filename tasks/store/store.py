"""The store: a directory of immutable Parquet files per table, for every table charter keeps
(prompts, generations, critiques, human and AI labels, preference sets, runs).

Writes are append-only and idempotent: rows are keyed by content-hash ids and a row
whose id is already stored is dropped, so re-running any step adds nothing. Each
append takes an exclusive lock on its table, checks every stored file it builds on, and
publishes one new file atomically (:mod:`tasks.core.files`: a hidden temporary file,
fsynced, renamed into place) with its entry in the table's manifest
(:mod:`tasks.store.manifest`); readers only ever see whole files, and only the files the
manifest lists, checked against it. A crash leaves at most a hidden ``.partial`` file or a
published file with no entry, both removed by the next writer, and concurrent writers
serialise per table without losing rows.

Stores made before manifests (store format 1) keep working: a table without a manifest is
read as before, and the first append to it records its files under the lock (adopting
them); ``charter store verify --adopt`` records every table's at once and marks the store
format 2, in which a table with files but no manifest is an error, as in every new store.
"""

from __future__ import annotations

import contextlib
import json
import uuid
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, replace
from datetime import UTC, datetime
from functools import cached_property
from pathlib import Path
from typing import Any

import duckdb
import pyarrow as pa

# pyarrow.compute and pyarrow.parquet (~0.1 s to import) are imported where rows are written or
# files adopted, so a process that only reads (``charter sql``) never pays for them.
from tasks.core.errors import CharterError
from tasks.core.files import PARTIAL_SUFFIX, atomic_target, write_atomically
from tasks.store.manifest import (
    FileEntry,
    Manifest,
    StoreIntegrityError,
    TableFiles,
    TableLock,
    check_table,
    read_manifest,
    table_lock,
    write_manifest,
)
from tasks.store.schema import TABLES, table_spec

MARKER = "charter-store.json"
STORE_FORMAT = 2  # 2: every table keeps a manifest; 1: tables may predate manifests
DEFAULT_STORE = "store"
ROW_GROUP_SIZE = 122_880
# Page checksums let pyarrow (and other Parquet readers) check each page on its own.
PARQUET_OPTIONS: dict[str, Any] = {"compression": "zstd", "write_page_checksum": True}


class Store:
    """A charter store rooted at a directory."""

    def __init__(self, root: str | Path):
        self.root = Path(root).resolve()

    # -- layout ---------------------------------------------------------------------------------
    @classmethod
    def create(cls, root: str | Path) -> Store:
        """Open the store at ``root``, creating its layout if it does not exist yet."""
        store = cls(root)
        for name in TABLES:
            store.table_dir(name).mkdir(parents=True, exist_ok=True)
        marker = store.root / MARKER
        if not marker.exists():
            write_atomically(marker, json.dumps({"format": STORE_FORMAT}))
        return store

    @classmethod
    def existing(cls, root: str | Path) -> Store:
        """Open a store that must already exist (for read-only commands)."""
        store = cls(root)
        if not (store.root / MARKER).exists():
            raise CharterError(
                f"no charter store at {store.root} (create one with `charter ingest` or "
                "`charter import-labels`, or pass --store / set CHARTER_STORE)"
            )
        return store

    @cached_property
    def legacy(self) -> bool:
        """Whether this store predates manifests (format 1): its tables may have none yet."""
        marker = self.root / MARKER
        try:
            return json.loads(marker.read_bytes())["format"] < STORE_FORMAT
        except FileNotFoundError:
            return False  # not created yet: it will be made in the current format
        except (OSError, ValueError, KeyError, TypeError) as exc:
            raise CharterError(f"{marker}: not a charter store marker ({exc})") from None

    def table_dir(self, name: str) -> Path:
        table_spec(name)
        return self.root / "tables" / name

    def _checked(self, name: str) -> TableFiles:
        """The table's files with the cheap checks passed (size and footer of each, no strays)."""
        return check_table(self.table_dir(name), full=False, legacy=self.legacy).raise_first()

    def files(self, name: str) -> list[Path]:
        """The table's published Parquet files, oldest first, each checked against the manifest."""
        return self._checked(name).paths

    # -- reading --------------------------------------------------------------------------------
    def read(self, name: str, columns: list[str] | None = None) -> pa.Table:
        """The whole table as Arrow (empty with the table's schema if nothing is stored)."""
        spec = table_spec(name)
        files = self.files(name)
        if not files:
            schema = spec.schema if columns is None else pa.schema([spec.schema.field(c) for c in columns])
            return schema.empty_table()
        select = "*" if columns is None else ", ".join(f'"{c}"' for c in columns)
        with contextlib.closing(duckdb.connect()) as con:
            return con.sql(
                f"select {select} from read_parquet($files, union_by_name = true)",
                params={"files": [str(f) for f in files]},
            ).to_arrow_table()

    def count(self, name: str) -> int:
        state = self._checked(name)
        if state.manifest is None:
            import pyarrow.parquet as pq

            return sum(pq.read_metadata(path).num_rows for path in state.paths)
        return sum(entry.rows for entry in state.manifest.files)

    # -- writing --------------------------------------------------------------------------------
    def append(self, name: str, rows: Iterable[dict[str, Any]] | pa.Table, run_id: str) -> int:
        """Add rows whose ids are not stored yet; returns how many were added.

        ``rows`` hold every column but ``run_id`` and ``created_at``, which are stamped here.
        """
        import pyarrow.compute as pc
        import pyarrow.parquet as pq

        spec = table_spec(name)
        table = rows if isinstance(rows, pa.Table) else _rows_to_table(list(rows), spec.schema)
        if table.num_rows == 0:
            return 0
        created_at = spec.schema.field("created_at")
        table = table.append_column(spec.schema.field("run_id"), pa.repeat(pa.scalar(run_id), table.num_rows))
        table = table.append_column(
            created_at, pa.repeat(pa.scalar(datetime.now(UTC), created_at.type), table.num_rows)
        )
        table = table.select(spec.schema.names).cast(spec.schema)
        table = _first_of_each_id(table, spec.id_column)
        with self.writing(name) as write:
            existing = _stored_ids(write.paths, spec.id_column)
            if existing is not None:
                table = table.filter(pc.invert(pc.is_in(table[spec.id_column], value_set=existing)))
            if table.num_rows == 0:
                return 0
            entry = write.publish(
                lambda path: pq.write_table(table, path, row_group_size=ROW_GROUP_SIZE, **PARQUET_OPTIONS)
            )
            write.commit(write.manifest.with_file(entry))
        return table.num_rows

    @contextlib.contextmanager
    def writing(self, name: str, *, adopt: bool = False) -> Iterator[TableWrite]:
        """The table's one writer: its lock held, what dead writers left removed, every file fully
        checked; a table without a manifest has its files recorded first where that is allowed
        (a format-1 store, or ``adopt``), else the write stops at the error."""
        directory = self.table_dir(name)
        with table_lock(directory) as lock:
            _clear_leftovers(directory, lock)
            state = check_table(directory, full=True, legacy=self.legacy or adopt).raise_first()
            manifest = state.manifest if state.manifest is not None else _adopt(name, state)
            yield TableWrite(directory, lock, manifest)

    def adopt(self) -> dict[str, int]:
        """Record the files of each table without a manifest (how many, by table), then mark the store
        format 2: from then on a table whose manifest goes missing is an error, not an old table."""
        adopted = {}
        for name in TABLES:
            if read_manifest(self.table_dir(name)) is None:
                with self.writing(name, adopt=True) as write:
                    adopted[name] = len(write.manifest.files)
        write_atomically(self.root / MARKER, json.dumps({"format": STORE_FORMAT}))
        self.__dict__.pop("legacy", None)
        return adopted

    def verify(self) -> dict[str, TableFiles]:
        """Every table's files fully checked (sha256 of every byte); nothing is raised or changed."""
        return {name: check_table(self.table_dir(name), full=True, legacy=False) for name in TABLES}


@dataclass
class TableWrite:
    """What :meth:`Store.writing` hands its writer: the folder, its lock and the checked manifest."""

    directory: Path
    lock: TableLock
    manifest: Manifest

    @property
    def paths(self) -> list[Path]:
        return [self.directory / entry.name for entry in self.manifest.files]

    def publish(self, write_file: Callable[[Path], None]) -> FileEntry:
        """A new Parquet file, made by ``write_file`` at a temporary path and renamed into place;
        it is read by no one until :meth:`commit` records its entry."""
        stamp = datetime.now(UTC).strftime("%Y%m%dT%H%M%S%fZ")
        final = self.directory / f"part-{stamp}-{uuid.uuid4().hex[:12]}.parquet"
        self.lock.publishing(final.name)
        with atomic_target(final) as partial:
            write_file(partial)
        return FileEntry.record(final)

    def commit(self, manifest: Manifest) -> None:
        write_manifest(self.directory, manifest)
        self.manifest = manifest


def _clear_leftovers(directory: Path, lock: TableLock) -> None:
    """Under the table lock: remove what writers that died left behind, and retired files no
    reader can still be reading."""
    for partial in directory.glob(f".*{PARTIAL_SUFFIX}"):
        partial.unlink(missing_ok=True)
    manifest = read_manifest(directory)
    if manifest is not None:  # without one nothing can be told apart; adoption checks every file
        for path in lock.abandoned(manifest):
            path.unlink(missing_ok=True)
    lock.clear()
    if manifest is None:
        return
    now = datetime.now(UTC)
    expired = {retired for retired in manifest.retired if retired.expired(now)}
    if expired:
        for retired in expired:  # removed before the entry: a reader never sees an unlisted file
            (directory / retired.name).unlink(missing_ok=True)
        kept = tuple(retired for retired in manifest.retired if retired not in expired)
        write_manifest(directory, replace(manifest, retired=kept))


def _adopt(name: str, state: TableFiles) -> Manifest:
    """A manifest for a table's files as they are, each read whole first (page checksums checked
    where it has them) and required to hold the table's id column."""
    import pyarrow.parquet as pq

    id_column = table_spec(name).id_column
    entries = []
    for path in state.paths:
        try:
            names = pq.read_table(path, page_checksum_verification=True).column_names
        except (OSError, ValueError) as exc:  # pyarrow's errors, and UnicodeDecodeError
            reason = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
            raise StoreIntegrityError(f"{path}: unreadable, not adopted ({reason})") from None
        if id_column not in names:
            raise StoreIntegrityError(f"{path}: has no {id_column} column: not a file of table {name}")
        entries.append(FileEntry.record(path))
    manifest = Manifest(files=tuple(entries))
    write_manifest(state.directory, manifest)
    return manifest


def _stored_ids(files: list[Path], id_column: str) -> pa.Array | None:
    if not files:
        return None
    with contextlib.closing(duckdb.connect()) as con:
        ids = con.sql(
            f'select "{id_column}" from read_parquet($files)', params={"files": [str(f) for f in files]}
        ).to_arrow_table()
    return ids.column(0).combine_chunks()


def _rows_to_table(rows: list[dict[str, Any]], schema: pa.Schema) -> pa.Table:
    data_schema = pa.schema([f for f in schema if f.name not in ("run_id", "created_at")])
    return pa.Table.from_pylist(rows, schema=data_schema)


def _first_of_each_id(table: pa.Table, id_column: str) -> pa.Table:
    """Drop repeated ids within one batch, keeping the first occurrence."""
    import pyarrow.compute as pc

    ids = table[id_column]
    if pc.count_distinct(ids).as_py() == table.num_rows:
        return table
    indices = (
        pa.table({"id": ids, "i": pa.array(range(table.num_rows), pa.int64())})
        .group_by("id", use_threads=False)
        .aggregate([("i", "min")])["i_min"]
    )
    return table.take(pc.take(indices, pc.sort_indices(indices)))
