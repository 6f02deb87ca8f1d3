"""Each table's record of its own files, written with them, and the checks made against it.

A table folder holds its Parquet files, ``manifest.json`` and the lock file ``.lock``. The
manifest lists every published file in the order written, with its size, its row count, the
sha256 of its bytes and the sha256 of its Parquet footer. Files are checked at two strengths:

* cheap, by every reader on every open: each listed file's size and footer against the record
  (a stat and one small read, ~16 µs a file), so a deleted, truncated or replaced file is
  named at once, and a Parquet file the manifest does not list is named as unexpected rather
  than read;
* full, by every writer before it builds on a table, by compaction and by ``charter store
  verify``: the sha256 of every byte (~1 GB/s). A writer must not trust a flipped byte: the
  ids an append skips come from the stored files, and a changed id would let a rerun add a
  duplicate row.

One manifest per table, replaced whole by each writer under the table lock: a reader gets the
table's whole listing in one atomic read, and compaction swaps many files for one in one
rename. A sidecar per file could not do that (a reader would see old and new files at once).
Publishing a file and recording it are two renames, so the lock file names the files its
holder is publishing (written and fsynced before each one appears): a reader tells a write in
flight from a stray file, and the next writer removes a file whose writer died between the two
renames (its append never returned, so a rerun writes those rows again).

Compaction keeps the files it replaced on disk, listed as retired, for :data:`RETIRED_KEPT_FOR`,
so a reader that listed them just before keeps reading them; the first writer after that
removes them.
"""

from __future__ import annotations

import contextlib
import fcntl
import hashlib
import json
import os
from collections.abc import Iterator
from dataclasses import asdict, dataclass, replace
from datetime import datetime, timedelta
from pathlib import Path

from tasks.core.errors import CharterError
from tasks.core.files import write_atomically
from tasks.core.hashing import file_sha256

MANIFEST_NAME = "manifest.json"
LOCK_NAME = ".lock"
MANIFEST_FORMAT = 1
# Longer than any read charter makes: `charter sql` stops a query at its --timeout.
RETIRED_KEPT_FOR = timedelta(minutes=10)
_MAGIC = b"PAR1"
_TAIL = 8  # a Parquet file ends with its footer's length (4 bytes, little-endian) and the magic


class StoreIntegrityError(CharterError):
    """A table's files are not what its manifest records."""


@dataclass(frozen=True)
class FileEntry:
    """One published file as its writer recorded it."""

    name: str
    bytes: int
    rows: int
    sha256: str
    footer_sha256: str

    @classmethod
    def record(cls, path: Path) -> FileEntry:
        """The entry for ``path`` as it is now (reads it whole once)."""
        import pyarrow.parquet as pq  # only writers record files: readers skip its import

        return cls(
            name=path.name,
            bytes=path.stat().st_size,
            rows=pq.read_metadata(path).num_rows,
            sha256=file_sha256(path),
            footer_sha256=footer_sha256(path),
        )


@dataclass(frozen=True)
class Retired:
    """A file compaction replaced, kept until no reader can still be reading it."""

    name: str
    at: str  # ISO 8601, UTC

    def expired(self, now: datetime) -> bool:
        return now - datetime.fromisoformat(self.at) > RETIRED_KEPT_FOR


@dataclass(frozen=True)
class Manifest:
    """A table's files in the order written, and the retired files still kept for readers."""

    files: tuple[FileEntry, ...] = ()
    retired: tuple[Retired, ...] = ()

    @property
    def names(self) -> frozenset[str]:
        return frozenset(entry.name for entry in self.files) | {r.name for r in self.retired}

    def with_file(self, entry: FileEntry) -> Manifest:
        return replace(self, files=(*self.files, entry))

    def replacing(self, old: list[FileEntry], new: FileEntry, now: datetime) -> Manifest:
        """``new`` where the first of ``old`` was, the rest of ``old`` gone and all of it retired."""
        gone = {entry.name for entry in old}
        files = []
        for entry in self.files:
            if entry.name == old[0].name:
                files.append(new)
            elif entry.name not in gone:
                files.append(entry)
        retired = tuple(Retired(name, now.isoformat()) for name in sorted(gone))
        return Manifest(files=tuple(files), retired=(*self.retired, *retired))


def read_manifest(directory: Path) -> Manifest | None:
    """The table's manifest; None if it has none (a table written before manifests, or never)."""
    path = directory / MANIFEST_NAME
    try:
        data = json.loads(path.read_bytes())
        if data["format"] != MANIFEST_FORMAT:
            raise ValueError(f"format {data['format']!r}; this charter reads format {MANIFEST_FORMAT}")
        return Manifest(
            files=tuple(FileEntry(**entry) for entry in data["files"]),
            retired=tuple(Retired(**entry) for entry in data["retired"]),
        )
    except FileNotFoundError:
        return None
    except (OSError, ValueError, KeyError, TypeError) as exc:
        raise StoreIntegrityError(f"{path}: not a manifest charter can read ({exc})") from None


def write_manifest(directory: Path, manifest: Manifest) -> None:
    data = {"format": MANIFEST_FORMAT, **asdict(manifest)}
    write_atomically(directory / MANIFEST_NAME, json.dumps(data, indent=1) + "\n")


def footer_sha256(path: Path) -> str:
    """sha256 of the file's Parquet footer (its schema, row counts and page offsets) and tail."""
    with open(path, "rb") as handle:
        size = handle.seek(0, os.SEEK_END)
        if size < len(_MAGIC) + _TAIL:
            raise ValueError("too short to be a Parquet file")
        handle.seek(size - _TAIL)
        tail = handle.read(_TAIL)
        footer = int.from_bytes(tail[:4], "little")
        if tail[4:] != _MAGIC or footer > size - len(_MAGIC) - _TAIL:
            raise ValueError("no Parquet footer at its end")
        handle.seek(size - _TAIL - footer)
        return hashlib.sha256(handle.read(footer) + tail).hexdigest()


def file_problem(path: Path, entry: FileEntry, *, full: bool) -> str | None:
    """What is wrong with ``path`` against its entry (None: nothing found), cheaply or ``full``y."""
    try:
        size = path.stat().st_size
    except FileNotFoundError:
        return f"missing (the manifest lists it: {entry.rows:,} rows, {entry.bytes:,} bytes)"
    if size != entry.bytes:
        if (rows := _footer_rows(path)) is not None:
            return (
                f"replaced: another Parquet file, {rows:,} rows and {size:,} bytes "
                f"(the manifest records {entry.rows:,} rows, {entry.bytes:,} bytes)"
            )
        change = "truncated" if size < entry.bytes else "changed"
        return f"{change}: {size:,} bytes, the manifest records {entry.bytes:,}"
    try:
        footer = footer_sha256(path)
    except (OSError, ValueError) as exc:
        return f"corrupted: {exc}"
    if footer != entry.footer_sha256:
        rows = _footer_rows(path)
        found = "it does not parse" if rows is None else f"{rows:,} rows, the manifest records {entry.rows:,}"
        return f"replaced or corrupted: its Parquet footer is not the one recorded ({found})"
    if full and file_sha256(path) != entry.sha256:
        return "corrupted: its sha256 differs from the manifest's (same size and footer: a changed page)"
    return None


def _footer_rows(path: Path) -> int | None:
    """The row count in the file's footer; None if it has no footer that parses."""
    import pyarrow.parquet as pq  # only a file that failed its check comes here

    try:
        return pq.read_metadata(path).num_rows
    except (OSError, ValueError):  # pyarrow's errors, and bytes that are not UTF-8 where text must be
        return None


@dataclass(frozen=True)
class TableFiles:
    """A table folder's checked state: its manifest (None: written before manifests), every problem."""

    directory: Path
    manifest: Manifest | None
    unlisted: tuple[str, ...] = ()  # Parquet files with no entry: written before manifests, or strays
    problems: tuple[str, ...] = ()

    @property
    def paths(self) -> list[Path]:
        """The files to read, in the order written."""
        if self.manifest is None:
            return [self.directory / name for name in self.unlisted]
        return [self.directory / entry.name for entry in self.manifest.files]

    def raise_first(self) -> TableFiles:
        """This state, if it has no problem; else a one-line error naming the first."""
        if self.problems:
            more = len(self.problems) - 1
            also = f" (and {more} more problem{'s' * (more > 1)}" if more else " ("
            raise StoreIntegrityError(f"{self.problems[0]}{also}: `charter store verify` lists every one)")
        return self


def check_table(directory: Path, *, full: bool, legacy: bool) -> TableFiles:
    """The table's files checked against its manifest; ``legacy``: a table without one is no problem.

    The folder is listed first, then the lock file's publishing names, then the manifest: a file
    seen in the listing but in neither of the others was not being published when the manifest
    was read, so it is a stray, unless it was removed meanwhile (the next writer clearing one
    whose writer died).
    """
    on_disk = sorted(p.name for p in directory.glob("*.parquet")) if directory.is_dir() else []
    publishing = publishing_names(directory)
    manifest = read_manifest(directory)
    if manifest is None:
        unchecked = (
            ()
            if legacy or not on_disk
            else (
                f"{directory / MANIFEST_NAME}: missing, so the table's {len(on_disk)} Parquet files cannot "
                "be checked (written before manifests, or the manifest was deleted: if the files are "
                "charter's own, record them with `charter store verify --adopt`)",
            )
        )
        return TableFiles(directory, None, tuple(on_disk), unchecked)
    problems = [
        f"{directory / entry.name}: {problem}"
        for entry in manifest.files
        if (problem := file_problem(directory / entry.name, entry, full=full))
    ]
    known = manifest.names | publishing
    unlisted = tuple(name for name in on_disk if name not in known and (directory / name).exists())
    problems += [
        f"{directory / name}: unexpected: a Parquet file the table's manifest does not list "
        "(charter did not publish it and never reads it; move it away)"
        for name in unlisted
    ]
    return TableFiles(directory, manifest, unlisted, tuple(problems))


def publishing_names(directory: Path) -> frozenset[str]:
    """The files the table lock's holder is publishing, or was when it died (read without the lock)."""
    try:
        return frozenset((directory / LOCK_NAME).read_text(encoding="utf-8").split())
    except FileNotFoundError:
        return frozenset()


class TableLock:
    """The exclusive lock on one table's folder, held by its one writer at a time."""

    def __init__(self, directory: Path, fd: int):
        self.directory = directory
        self._fd = fd

    def abandoned(self, manifest: Manifest) -> list[Path]:
        """Files an earlier holder published but never recorded: it died between the two renames."""
        return [self.directory / name for name in publishing_names(self.directory) - manifest.names]

    def clear(self) -> None:
        """Forget the earlier holder's names, once its files are recorded or removed."""
        os.ftruncate(self._fd, 0)

    def publishing(self, name: str) -> None:
        """Record ``name`` (durably) before a file of that name appears in the folder."""
        os.write(self._fd, f"{name}\n".encode())
        os.fsync(self._fd)


@contextlib.contextmanager
def table_lock(directory: Path) -> Iterator[TableLock]:
    directory.mkdir(parents=True, exist_ok=True)
    fd = os.open(directory / LOCK_NAME, os.O_RDWR | os.O_CREAT | os.O_APPEND, 0o644)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)
        yield TableLock(directory, fd)
    finally:
        os.close(fd)  # closing releases the lock
