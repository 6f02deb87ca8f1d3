"""The store: a directory of immutable Parquet files per table, for every table charter keeps
(prompts, generations, critiques, human and AI labels, preference sets, runs).

Writes are append-only and idempotent: rows are keyed by content-hash ids and a row
whose id is already stored is dropped, so re-running any step adds nothing. Each
append takes an exclusive lock on its table and publishes one new file atomically
(:mod:`tasks.core.files`: a hidden temporary file, fsynced, renamed into place); readers
only ever see whole files, a crash leaves at most a hidden ``.partial`` file (cleaned up
by the next writer), and concurrent writers serialise per table without losing rows.
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import uuid
from collections.abc import Iterable, Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import duckdb
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from tasks.core.errors import CharterError
from tasks.core.files import PARTIAL_SUFFIX, atomic_target, write_atomically
from tasks.store.schema import TABLES, table_spec

MARKER = "charter-store.json"
STORE_FORMAT = 1
DEFAULT_STORE = "store"
ROW_GROUP_SIZE = 122_880


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

    def table_dir(self, name: str) -> Path:
        table_spec(name)
        return self.root / "tables" / name

    def files(self, name: str) -> list[Path]:
        """The table's published Parquet files, oldest first."""
        return sorted(self.table_dir(name).glob("*.parquet"))

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
        files = self.files(name)
        return sum(pq.ParquetFile(f).metadata.num_rows for f in files)

    # -- writing --------------------------------------------------------------------------------
    def append(self, name: str, rows: Iterable[dict[str, Any]] | pa.Table, run_id: str) -> int:
        """Add rows whose ids are not stored yet; returns how many were added.

        ``rows`` hold every column but ``run_id`` and ``created_at``, which are stamped here.
        """
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
        with self._table_lock(name):
            self._remove_abandoned_partials(name)
            existing = self._stored_ids(name, spec.id_column)
            if existing is not None:
                table = table.filter(pc.invert(pc.is_in(table[spec.id_column], value_set=existing)))
            if table.num_rows == 0:
                return 0
            self._publish(name, table)
        return table.num_rows

    @contextlib.contextmanager
    def _table_lock(self, name: str) -> Iterator[None]:
        directory = self.table_dir(name)
        directory.mkdir(parents=True, exist_ok=True)
        with open(directory / ".lock", "a+") as handle:
            fcntl.flock(handle.fileno(), fcntl.LOCK_EX)
            try:
                yield
            finally:
                fcntl.flock(handle.fileno(), fcntl.LOCK_UN)

    def _remove_abandoned_partials(self, name: str) -> None:
        # Only called under the table lock, so any partial file belongs to a writer that died.
        for partial in self.table_dir(name).glob(f".*{PARTIAL_SUFFIX}"):
            partial.unlink(missing_ok=True)

    def _stored_ids(self, name: str, id_column: str) -> pa.Array | None:
        files = self.files(name)
        if not files:
            return None
        with contextlib.closing(duckdb.connect()) as con:
            ids = con.sql(
                f'select "{id_column}" from read_parquet($files)', params={"files": [str(f) for f in files]}
            ).to_arrow_table()
        return ids.column(0).combine_chunks()

    def _publish(self, name: str, table: pa.Table) -> Path:
        directory = self.table_dir(name)
        stamp = datetime.now(UTC).strftime("%Y%m%dT%H%M%S%fZ")
        final = directory / f"part-{stamp}-{uuid.uuid4().hex[:12]}.parquet"
        with atomic_target(final) as partial:
            # Row groups of DuckDB's own size let its scans of one big file run on every core.
            pq.write_table(table, partial, compression="zstd", row_group_size=ROW_GROUP_SIZE)
        return final


def _rows_to_table(rows: list[dict[str, Any]], schema: pa.Schema) -> pa.Table:
    data_schema = pa.schema([f for f in schema if f.name not in ("run_id", "created_at")])
    return pa.Table.from_pylist(rows, schema=data_schema)


def _first_of_each_id(table: pa.Table, id_column: str) -> pa.Table:
    """Drop repeated ids within one batch, keeping the first occurrence."""
    ids = table[id_column]
    if pc.count_distinct(ids).as_py() == table.num_rows:
        return table
    indices = (
        pa.table({"id": ids, "i": pa.array(range(table.num_rows), pa.int64())})
        .group_by("id", use_threads=False)
        .aggregate([("i", "min")])["i_min"]
    )
    return table.take(pc.take(indices, pc.sort_indices(indices)))
