"""Atomic file writes: a reader, or the next run after a crash, sees the old file or the new one whole.

Every file charter writes outside the store's tables (the store marker, exports, rejects,
checkpoint lineage, scoreboards, reports) and every Parquet file inside them goes through
:func:`atomic_target`: the bytes go to a hidden temporary file in the same folder (a rename
is atomic only within one filesystem), which is fsynced before it is renamed over the
target, and the folder is fsynced after, so a power loss cannot leave the new name
pointing at a file whose data never reached the disk, nor lose the rename. A write that
fails removes its temporary file and leaves the target as it was. Temporary names are
unique (two writers of one file never share one) and match ``.*.partial``, the pattern
the store's writers clear under their table lock after a crash.
"""

from __future__ import annotations

import contextlib
import json
import os
import uuid
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import Any

PARTIAL_SUFFIX = ".partial"


@contextlib.contextmanager
def atomic_target(path: str | Path) -> Iterator[Path]:
    """Yield a hidden temporary path beside ``path`` to write (and close) the new file at; on a
    clean exit it is fsynced and renamed onto ``path``, on an exception it is removed."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    partial = path.with_name(f".{path.name}.{uuid.uuid4().hex[:12]}{PARTIAL_SUFFIX}")
    try:
        yield partial
        _fsync(partial)
        os.replace(partial, path)
    except BaseException:
        partial.unlink(missing_ok=True)
        raise
    _fsync(path.parent)


def write_atomically(path: str | Path, data: str | bytes) -> Path:
    """Replace ``path`` with ``data`` (text is written as UTF-8)."""
    with atomic_target(path) as partial:
        partial.write_bytes(data.encode("utf-8") if isinstance(data, str) else data)
    return Path(path)


def write_jsonl_atomically(path: str | Path, records: Iterable[Any]) -> Path:
    """Replace ``path`` with one JSON value per line, non-ASCII text kept as it is."""
    with atomic_target(path) as partial, open(partial, "w", encoding="utf-8") as handle:
        for record in records:
            handle.write(json.dumps(record, ensure_ascii=False) + "\n")
    return Path(path)


def _fsync(path: Path) -> None:
    """Flush a file's data, or a folder's entries, to the disk."""
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)
