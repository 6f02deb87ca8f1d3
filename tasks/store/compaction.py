"""Compaction: a table's many small files (one per append: thousands, after months of nightly
runs) merged into few, with the same rows in the same order.

Each run of consecutive small files (under one row group, :data:`ROW_GROUP_SIZE` rows, and of
one schema) becomes one file of full row groups, at the run's place in the manifest, so
:meth:`Store.read` returns the rows in the same order and every id, ``run_id`` and
``created_at`` is kept. It runs as the table's writer (:meth:`Store.writing`): under the table
lock, after the sha256 of every file is checked (a corrupt file is never copied into a new one
with a fresh checksum); the new files are published first, then the manifest swaps them for
the old ones in one rename. The old files stay on disk, retired, for
:data:`tasks.store.manifest.RETIRED_KEPT_FOR`, so a reader that listed them just before keeps
reading them; the first writer after that removes them.

It is not a Prefect flow: it adds no rows and no run, and has nothing to retry or resume (an
interrupted compaction leaves the table as it was).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq

from tasks.store.manifest import FileEntry
from tasks.store.store import PARQUET_OPTIONS, ROW_GROUP_SIZE, Store


@dataclass(frozen=True)
class Compaction:
    """What compacting one table did."""

    table: str
    files_before: int
    files_after: int
    rows_merged: int  # rows copied into new files (the rest stayed where they were)
    files_retired: int  # old files kept on disk for readers until RETIRED_KEPT_FOR has passed


def compact(store: Store, name: str) -> Compaction:
    """Merge each run of the table's small files into one file."""
    with store.writing(name) as write:
        before = write.manifest
        manifest, rows, retired = before, 0, 0
        now = datetime.now(UTC)
        for run in small_runs(write.directory, before.files):
            merged = write.publish(lambda path, run=run: _merge(write.directory, run, path))
            manifest = manifest.replacing(run, merged, now)
            rows, retired = rows + merged.rows, retired + len(run)
        if manifest is not before:
            write.commit(manifest)
    return Compaction(name, len(before.files), len(manifest.files), rows, retired)


def small_runs(directory: Path, entries: tuple[FileEntry, ...]) -> list[list[FileEntry]]:
    """Runs of two or more consecutive files, each under one row group, that share a schema."""
    runs: list[list[FileEntry]] = []
    run: list[FileEntry] = []
    schema = None
    for entry in entries:
        small = entry.rows < ROW_GROUP_SIZE
        this_schema = pq.read_schema(directory / entry.name) if small else None
        if not small or (run and not this_schema.equals(schema)):
            runs.append(run)
            run = []
        if small:
            run.append(entry)
            schema = this_schema
    runs.append(run)
    return [run for run in runs if len(run) > 1]


def _merge(directory: Path, run: list[FileEntry], path: Path) -> None:
    """Copy ``run``'s rows, in order, into ``path`` in row groups of exactly ROW_GROUP_SIZE rows
    (the last one shorter), holding at most about one row group in memory."""
    schema = pq.read_schema(directory / run[0].name)
    with pq.ParquetWriter(path, schema, **PARQUET_OPTIONS) as writer:
        pending: list[pa.Table] = []
        held = 0
        for entry in run:
            table = pq.read_table(directory / entry.name, schema=schema)
            pending.append(table)
            held += table.num_rows
            if held >= ROW_GROUP_SIZE:
                rows = pa.concat_tables(pending)
                whole = held - held % ROW_GROUP_SIZE
                writer.write_table(rows.slice(0, whole), row_group_size=ROW_GROUP_SIZE)
                pending, held = [rows.slice(whole)], held - whole
        if held:
            writer.write_table(pa.concat_tables(pending), row_group_size=ROW_GROUP_SIZE)
