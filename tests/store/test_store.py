"""The store: idempotent appends, atomic files, concurrent writers, crashes mid-write."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pyarrow as pa
import pytest

from tasks.core.errors import CharterError
from tasks.store.schema import TABLES
from tasks.store.store import Store


def prompt_rows(ids: list[str], family: str = "booking") -> list[dict]:
    return [
        {
            "row_id": i,
            "prompt_id": i,
            "prompt_set": "s",
            "source_id": None,
            "family": family,
            "text": "t",
            "messages": "[]",
        }
        for i in ids
    ]


def test_appending_the_same_rows_twice_adds_nothing(store: Store) -> None:
    assert store.append("prompts", prompt_rows(["a", "b"]), "run-1") == 2
    assert store.append("prompts", prompt_rows(["a", "b"]), "run-2") == 0
    assert store.append("prompts", prompt_rows(["b", "c"]), "run-3") == 1
    rows = store.read("prompts").to_pylist()
    assert sorted(r["row_id"] for r in rows) == ["a", "b", "c"]
    # The first writer's lineage is kept.
    assert {r["row_id"]: r["run_id"] for r in rows} == {"a": "run-1", "b": "run-1", "c": "run-3"}
    assert len(store.files("prompts")) == 2  # the no-op append published no file


def test_duplicates_within_one_batch_keep_the_first(store: Store) -> None:
    rows = prompt_rows(["x", "y", "x"])
    rows[2]["text"] = "second copy"
    assert store.append("prompts", rows, "r") == 2
    assert {r["row_id"]: r["text"] for r in store.read("prompts").to_pylist()} == {"x": "t", "y": "t"}


def test_empty_tables_read_with_their_schema(store: Store) -> None:
    for name, spec in TABLES.items():
        table = store.read(name)
        assert table.num_rows == 0 and table.schema.names == spec.schema.names


def test_rows_must_match_the_schema(store: Store) -> None:
    bad = prompt_rows(["a"])
    bad[0]["text"] = 42
    with pytest.raises(pa.ArrowTypeError):
        store.append("prompts", bad, "r")
    assert store.count("prompts") == 0


def test_read_only_commands_need_an_existing_store(tmp_path: Path) -> None:
    with pytest.raises(CharterError, match="no charter store"):
        Store.existing(tmp_path / "nothing-here")
    assert not (tmp_path / "nothing-here").exists()


WRITER = textwrap.dedent(
    """
    import sys, time
    from pathlib import Path
    from tasks.store.store import Store
    root, start, count, go = sys.argv[1], int(sys.argv[2]), int(sys.argv[3]), Path(sys.argv[4])
    store = Store.create(root)
    while not go.exists():
        time.sleep(0.005)
    batch = 250
    for offset in range(start, start + count, batch):
        ids = [f"id-{i:06d}" for i in range(offset, min(offset + batch, start + count))]
        rows = [{"row_id": i, "prompt_id": i, "prompt_set": "s", "source_id": None, "family": "f",
                 "text": "t", "messages": "[]"} for i in ids]
        store.append("prompts", rows, f"writer-{start}")
    """
)


def test_four_processes_appending_at_once_lose_no_rows(store: Store, tmp_path: Path) -> None:
    go = tmp_path / "go"
    # Overlapping ranges: 0-3999, 1500-5499, 3000-6999, 4500-8499 -> 8500 distinct ids.
    writers = [
        subprocess.Popen([sys.executable, "-c", WRITER, str(store.root), str(k * 1500), "4000", str(go)])
        for k in range(4)
    ]
    time.sleep(1.0)
    go.touch()
    assert [w.wait(timeout=120) for w in writers] == [0, 0, 0, 0]
    ids = store.read("prompts", ["row_id"]).column("row_id").to_pylist()
    assert len(ids) == len(set(ids)) == 8500
    assert not list(store.table_dir("prompts").glob(".*.partial"))


KILLED_WRITER = textwrap.dedent(
    """
    import sys
    import pyarrow as pa
    from tasks.store.store import Store
    n = int(sys.argv[2])
    ids = pa.array([f"id-{i:08d}-{'x' * 40}" for i in range(n)])
    table = pa.table({"row_id": ids, "prompt_id": ids, "prompt_set": pa.array(["s"] * n),
                      "source_id": pa.nulls(n, pa.string()), "family": pa.array(["f"] * n),
                      "text": ids, "messages": pa.array(["[]"] * n)})
    Store.create(sys.argv[1]).append("prompts", table, "doomed")
    """
)


def test_a_writer_killed_mid_write_leaves_nothing_visible_and_the_rerun_completes(store: Store) -> None:
    rows = 1_500_000
    store.append("prompts", prompt_rows(["before"]), "earlier")
    writer = subprocess.Popen([sys.executable, "-c", KILLED_WRITER, str(store.root), str(rows)])
    table_dir = store.table_dir("prompts")
    deadline = time.monotonic() + 120
    while not list(table_dir.glob(".*.partial")):
        assert writer.poll() is None, "the writer finished before it could be killed; raise the row count"
        assert time.monotonic() < deadline
        time.sleep(0.001)
    os.kill(writer.pid, signal.SIGKILL)
    writer.wait()
    assert writer.returncode == -signal.SIGKILL
    # The half-written file is hidden from readers; only the earlier row is visible.
    assert list(table_dir.glob(".*.partial"))
    assert store.count("prompts") == 1
    assert store.read("prompts", ["row_id"]).column("row_id").to_pylist() == ["before"]
    # Rerunning the same write completes it exactly once and clears the abandoned file.
    rerun = subprocess.run([sys.executable, "-c", KILLED_WRITER, str(store.root), str(rows)], timeout=300)
    assert rerun.returncode == 0
    assert store.count("prompts") == rows + 1
    assert not list(table_dir.glob(".*.partial"))
    again = subprocess.run([sys.executable, "-c", KILLED_WRITER, str(store.root), str(rows)], timeout=300)
    assert again.returncode == 0 and store.count("prompts") == rows + 1
