"""Compaction: many small files merged into few, every row, id and audit view unchanged, with
readers and writers running alongside."""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap
from datetime import UTC, datetime, timedelta

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from tasks.store.compaction import compact
from tasks.store.manifest import MANIFEST_NAME, StoreIntegrityError, read_manifest
from tasks.store.schema import TABLES, table_spec
from tasks.store.sql import execute, readonly_connection
from tasks.store.store import MARKER, ROW_GROUP_SIZE, Store
from tasks.store.view_files import audit_views
from tests.conftest import run_charter
from tests.store.test_audit_ai import add_prompts, ai, human, preference_row
from tests.store.test_integrity import extra_prompts, flip


def one_append_per_row(store: Store, table: str, rows: list[dict]) -> None:
    for i, row in enumerate(rows):
        store.append(table, [row], f"run-{table}-{i}")


@pytest.fixture
def fragmented(store: Store) -> Store:
    """The AI-audit tests' six labelled pairs, written one row per append: one file per row."""
    families = {1: "booking", 2: "privacy", 3: "booking", 4: "privacy", 5: "booking", 6: "privacy"}
    for pair, family in families.items():
        add_prompts(store, {pair: family})
    votes = {1: "ff", 2: "s", 3: "f", 4: "ssf", 5: "fs", 6: "tt"}
    words = {"f": "first", "s": "second", "t": "tie"}
    humans = [human(p, "xyz"[i], words[v]) for p, vs in votes.items() for i, v in enumerate(vs)]
    one_append_per_row(store, "human_labels", humans)
    judge = [
        ai(1, "first", 0.8),
        ai(2, "second", 0.6),
        ai(3, "first", 0.9, principle="p2"),
        ai(4, "first", 0.7),
    ]
    one_append_per_row(store, "ai_labels", [*judge, ai(5, "first", 0.9, judge="j2", method="cot")])
    one_append_per_row(
        store, "preferences", [preference_row("set-a", p, "human", 1.0, 1.0) for p in (1, 2, 3)]
    )
    return store


def every_view(store: Store) -> dict[str, list[tuple]]:
    with readonly_connection(store) as con:
        return {
            view.name: execute(con, f"select * from {view.name} order by all").rows for view in audit_views()
        }


def test_compaction_keeps_every_row_id_and_audit_view_identical(fragmented: Store) -> None:
    views = every_view(fragmented)
    tables = {name: fragmented.read(name) for name in TABLES}
    assert sum(bool(rows) for rows in views.values()) >= 15  # the views have something to compare
    assert [len(fragmented.files(t)) for t in ("prompts", "human_labels", "ai_labels")] == [6, 11, 5]
    done = {name: compact(fragmented, name) for name in TABLES}
    assert (done["human_labels"].files_before, done["human_labels"].files_after) == (11, 1)
    assert (done["human_labels"].rows_merged, done["human_labels"].files_retired) == (11, 11)
    assert {name: len(fragmented.files(name)) for name in TABLES} == {
        name: min(1, len(tables[name])) for name in TABLES
    }
    assert every_view(fragmented) == views
    assert all(fragmented.read(name).equals(table) for name, table in tables.items())  # same order too
    assert all(not state.problems for state in fragmented.verify().values())
    assert compact(fragmented, "human_labels").files_retired == 0  # nothing left to merge


def make_prompts(ids: range, prompt_set: str = "s") -> pa.Table:
    n = len(ids)
    names = pa.array([f"id-{i:07d}" for i in ids])
    stamp = pa.array([datetime(2025, 1, 1, tzinfo=UTC)] * n, pa.timestamp("us", "UTC"))
    columns = {"row_id": names, "prompt_id": names, "prompt_set": pa.array([prompt_set] * n)}
    columns |= {"source_id": pa.nulls(n, pa.string()), "family": pa.array(["f"] * n), "text": names}
    columns |= {"messages": pa.array(["[]"] * n), "run_id": pa.array(["old"] * n), "created_at": stamp}
    return pa.table(columns).cast(table_spec("prompts").schema)


def test_runs_of_small_files_merge_around_big_files_and_schema_changes(store: Store) -> None:
    """Files as written (rows): A 10, B 10 (an older schema, without `family`), C 5, D 122,880 (one
    full row group: not small), E 5, F 5. Merged: A+B and E+F; C stays (alone between B's schema
    and D), D stays. Six files become four; the rows keep their order."""
    (store.root / MARKER).write_text(json.dumps({"format": 1}))  # files written before manifests
    folder = store.table_dir("prompts")
    sizes, start = [10, 10, 5, ROW_GROUP_SIZE, 5, 5], 0
    for name, n in zip("ABCDEF", sizes, strict=True):
        table = make_prompts(range(start, start + n))
        pq.write_table(
            table.drop_columns(["family"]) if name in "AB" else table, folder / f"part-{name}.parquet"
        )
        start += n
    store = Store(store.root)
    before = store.read("prompts")
    done = compact(store, "prompts")
    assert (done.files_before, done.files_after, done.rows_merged, done.files_retired) == (6, 4, 30, 4)
    files = read_manifest(folder).files
    assert [entry.rows for entry in files] == [20, 5, ROW_GROUP_SIZE, 10]
    assert [files[1].name, files[2].name] == ["part-C.parquet", "part-D.parquet"]
    assert store.read("prompts").equals(before)
    assert store.read("prompts", ["family"]).column(0).null_count == 20


def test_a_merged_file_has_row_groups_of_the_stores_size(store: Store) -> None:
    for k in range(3):  # 3 x 50,000 = 150,000 rows: one full row group and the rest
        store.append(
            "prompts",
            make_prompts(range(k * 50_000, (k + 1) * 50_000)).drop_columns(["run_id", "created_at"]),
            "r",
        )
    compact(store, "prompts")
    (merged,) = store.files("prompts")
    metadata = pq.read_metadata(merged)
    assert [metadata.row_group(i).num_rows for i in range(metadata.num_row_groups)] == [
        ROW_GROUP_SIZE,
        27_120,
    ]


def test_a_reader_that_listed_the_old_files_keeps_reading_until_the_next_write_after_the_grace(
    fragmented: Store,
) -> None:
    with readonly_connection(fragmented) as con:  # the catalog names the six small prompts files
        compact(fragmented, "prompts")
        assert execute(con, "select count(*) from prompts").rows == [(6,)]
    folder = fragmented.table_dir("prompts")
    manifest = json.loads((folder / MANIFEST_NAME).read_text())
    assert len(manifest["retired"]) == 6 and len(list(folder.glob("*.parquet"))) == 7
    fragmented.append("prompts", extra_prompts("p7"), "r")
    assert len(list(folder.glob("*.parquet"))) == 8  # retired 0 minutes ago: kept
    # Eleven minutes later (past RETIRED_KEPT_FOR), the next writer removes them.
    past = (datetime.now(UTC) - timedelta(minutes=11)).isoformat()
    manifest = json.loads((folder / MANIFEST_NAME).read_text())
    manifest["retired"] = [{**retired, "at": past} for retired in manifest["retired"]]
    (folder / MANIFEST_NAME).write_text(json.dumps(manifest))
    fragmented.append("prompts", extra_prompts("p8"), "r")
    assert sorted(folder.glob("*.parquet")) == sorted(fragmented.files("prompts"))
    assert len(fragmented.files("prompts")) == 3 and fragmented.count("prompts") == 8
    assert read_manifest(folder).retired == ()


def test_compaction_never_copies_a_corrupted_file(fragmented: Store) -> None:
    second = fragmented.files("prompts")[1]
    flip(second, 100)
    with pytest.raises(StoreIntegrityError, match="corrupted") as raised:
        compact(fragmented, "prompts")
    assert str(raised.value).startswith(f"{second}: ")
    assert len(read_manifest(fragmented.table_dir("prompts")).files) == 6


APPENDER = textwrap.dedent(
    """
    import sys
    from tasks.store.store import Store
    store = Store(sys.argv[1])
    for batch in range(15):
        rows = [{"row_id": f"id-{batch:02d}-{i:02d}", "prompt_id": "p", "prompt_set": "s", "source_id": None,
                 "family": "f", "text": "t", "messages": "[]"} for i in range(20)]
        store.append("prompts", rows, f"batch-{batch}")
    """
)


def test_compaction_alongside_a_writer_loses_and_duplicates_nothing(store: Store) -> None:
    writer = subprocess.Popen([sys.executable, "-c", APPENDER, str(store.root)])
    merged_while_writing, seen = 0, []
    while writer.poll() is None:
        merged_while_writing += compact(store, "prompts").files_retired
        seen.append(store.count("prompts"))  # a reader between compactions: whole batches only
    assert writer.returncode == 0 and merged_while_writing > 0
    compact(store, "prompts")
    ids = store.read("prompts", ["row_id"]).column(0).to_pylist()
    assert len(ids) == len(set(ids)) == 300
    assert all(count % 20 == 0 for count in seen) and seen == sorted(seen)
    assert len(store.files("prompts")) == 1
    assert all(not state.problems for state in store.verify().values())


@pytest.mark.integration
def test_charter_store_compact_merges_and_names_what_it_did(fragmented: Store) -> None:
    result = run_charter("store", "compact", "--table", "human_labels", "--store", str(fragmented.root))
    assert result.returncode == 0, result.stderr
    assert "human_labels: 11 files -> 1 (11 rows merged from 11 files)" in result.stdout
    assert len(fragmented.files("human_labels")) == 1 and len(fragmented.files("prompts")) == 6
    result = run_charter("store", "compact", "--store", str(fragmented.root))
    assert "human_labels: 1 files, nothing to merge" in result.stdout
    assert "prompts: 6 files -> 1 (6 rows merged from 6 files)" in result.stdout
    result = run_charter("store", "compact", "--table", "labels", "--store", str(fragmented.root))
    assert result.returncode == 1 and result.stderr.startswith(
        "error: unknown --table 'labels'; tables: prompts"
    )
