"""The store checks itself: each file is recorded in its table's manifest as it is published, and a
missing, truncated, corrupted or unexpected file is named by path, by `charter store verify`, by
every reader and by every writer, in one line; stores written before manifests keep working."""

from __future__ import annotations

import json
import shutil
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from tasks.core.hashing import file_sha256
from tasks.ingest.prompt_sets import load_prompt_set
from tasks.store.manifest import MANIFEST_NAME, StoreIntegrityError, read_manifest
from tasks.store.schema import table_spec
from tasks.store.sql import run_query
from tasks.store.store import MARKER, Store
from tests.conftest import PROJECT_ROOT, run_charter

PROMPTS = PROJECT_ROOT / "datasets" / "healthcare-scheduling" / "prompts.jsonl"
PROMPT_ROWS = [record.row() for record in load_prompt_set(PROMPTS)]  # the 180 bundled prompts


def extra_prompts(*ids: str) -> list[dict]:
    return [
        {"row_id": i, "prompt_id": i, "prompt_set": "extra", "source_id": None, "family": "booking",
         "text": f"Question {i}?", "messages": "[]"}
        for i in ids
    ]  # fmt: skip


@pytest.fixture
def prompts_store(store: Store) -> Store:
    store.append("prompts", PROMPT_ROWS, "ingest")
    return store


def prompts_file(store: Store) -> Path:
    (path,) = store.files("prompts")
    return path


def flip(path: Path, offset: int) -> None:
    data = bytearray(path.read_bytes())
    data[offset] ^= 0xFF
    path.write_bytes(bytes(data))


def footer_bytes(path: Path) -> int:
    """How many bytes at the end of the file are its footer, its length and the magic."""
    return int.from_bytes(path.read_bytes()[-8:-4], "little") + 8


def test_each_append_records_its_file_size_rows_and_sha256(prompts_store: Store) -> None:
    assert prompts_store.append("prompts", extra_prompts("x1", "x2", "x3"), "later") == 3
    manifest = read_manifest(prompts_store.table_dir("prompts"))
    files = prompts_store.files("prompts")
    assert [entry.name for entry in manifest.files] == [f.name for f in files]
    assert [entry.rows for entry in manifest.files] == [180, 3]
    assert [entry.bytes for entry in manifest.files] == [f.stat().st_size for f in files]
    assert [entry.sha256 for entry in manifest.files] == [file_sha256(f) for f in files]
    assert prompts_store.count("prompts") == 183


def test_files_carry_page_checksums_that_pyarrow_checks(prompts_store: Store) -> None:
    path = prompts_file(prompts_store)
    text = pq.read_metadata(path).row_group(0).column(5)  # the prompt texts: most of the file
    assert text.path_in_schema == "text"
    flip(path, text.data_page_offset + text.total_compressed_size // 2)
    with pytest.raises(OSError, match="CRC checksum verification failed"):
        pq.read_table(path, page_checksum_verification=True)


def test_verify_names_every_single_byte_flip_and_readers_the_ones_in_the_footer(prompts_store: Store) -> None:
    path = prompts_file(prompts_store)
    original = path.read_bytes()
    footer_starts = len(original) - footer_bytes(path)
    # Every 41st byte of the 43 KB file, and every byte of the footer's last 64.
    offsets = sorted({*range(0, len(original), 41), *range(len(original) - 64, len(original))})
    named_by_readers = set()
    for offset in offsets:
        flip(path, offset)
        (problem,) = prompts_store.verify()["prompts"].problems
        assert problem.startswith(f"{path}: ") and "corrupted" in problem
        try:
            prompts_store.files("prompts")
        except StoreIntegrityError as exc:
            assert str(exc).startswith(f"{path}: ")
            named_by_readers.add(offset)
        path.write_bytes(original)
    assert len(offsets) > 1100
    # The cheap check on every open compares the footer: it names exactly the flips there.
    assert named_by_readers == {offset for offset in offsets if offset >= footer_starts}
    assert not prompts_store.verify()["prompts"].problems


def test_a_write_never_builds_on_a_flipped_byte(prompts_store: Store) -> None:
    """The probe that found the hole: a flipped byte in a row_id page, then re-ingesting the same
    prompts, added duplicates. Now the append refuses before reading any id."""
    path = prompts_file(prompts_store)
    original = path.read_bytes()
    row_id = pq.read_metadata(path).row_group(0).column(0)
    assert row_id.path_in_schema == "row_id"
    start = row_id.dictionary_page_offset or row_id.data_page_offset
    for offset in range(start, start + row_id.total_compressed_size, 97):
        flip(path, offset)
        with pytest.raises(StoreIntegrityError, match="corrupted") as raised:
            prompts_store.append("prompts", PROMPT_ROWS, "re-ingest")
        assert str(raised.value).startswith(f"{path}: ")
        path.write_bytes(original)
    assert prompts_store.append("prompts", PROMPT_ROWS, "re-ingest") == 0
    assert prompts_store.count("prompts") == 180


def truncate(store: Store) -> Path:
    path = prompts_file(store)
    path.write_bytes(path.read_bytes()[:5000])
    return path


def replace_with_other_prompts(store: Store) -> Path:
    path = prompts_file(store)
    pq.write_table(pa.Table.from_pylist(store.read("prompts").to_pylist()[:90]), path)
    return path


def delete(store: Store) -> Path:
    path = prompts_file(store)
    path.unlink()
    return path


def add_stray(store: Store) -> Path:
    stray = store.table_dir("prompts") / "part-copied-from-elsewhere.parquet"
    shutil.copy(prompts_file(store), stray)
    return stray


DAMAGE: dict[str, tuple[Callable[[Store], Path], str]] = {
    "truncated": (truncate, "truncated: 5,000 bytes, the manifest records "),
    "replaced": (replace_with_other_prompts, "replaced: another Parquet file, 90 rows and "),
    "deleted": (delete, "missing (the manifest lists it: 180 rows"),
    "stray": (add_stray, "unexpected: a Parquet file the table's manifest does not list"),
}


@pytest.mark.parametrize("damage", DAMAGE)
def test_every_reader_and_writer_names_the_damaged_file_in_one_line(
    prompts_store: Store, damage: str
) -> None:
    make, message = DAMAGE[damage]
    path = make(prompts_store)
    reads = {
        "files": lambda: prompts_store.files("prompts"),
        "read": lambda: prompts_store.read("prompts"),
        "count": lambda: prompts_store.count("prompts"),
        "append": lambda: prompts_store.append("prompts", extra_prompts("new"), "r"),
        "sql": lambda: run_query(prompts_store, "select count(*) from human_labels"),
    }
    for name, read in reads.items():
        with pytest.raises(StoreIntegrityError) as raised:
            read()
        assert str(raised.value).startswith(f"{path}: {message}"), name
        assert "\n" not in str(raised.value)
    (problem,) = prompts_store.verify()["prompts"].problems
    assert problem.startswith(f"{path}: {message}")


def test_an_unreadable_manifest_is_named(prompts_store: Store) -> None:
    manifest = prompts_store.table_dir("prompts") / MANIFEST_NAME
    manifest.write_text(manifest.read_text()[:200])
    with pytest.raises(StoreIntegrityError) as raised:
        prompts_store.count("prompts")
    assert str(raised.value).startswith(f"{manifest}: not a manifest charter can read (")
    assert "\n" not in str(raised.value)


def test_a_writer_that_dies_between_publishing_and_recording_leaves_nothing_seen(
    prompts_store: Store,
) -> None:
    table = pa.Table.from_pylist(prompts_store.read("prompts").to_pylist()[:5])
    with pytest.raises(RuntimeError), prompts_store.writing("prompts") as write:
        write.publish(lambda path: pq.write_table(table, path))
        raise RuntimeError("killed before the manifest was written")
    on_disk = set(prompts_store.table_dir("prompts").glob("*.parquet"))
    (orphan,) = on_disk - set(prompts_store.files("prompts"))
    # Listed nowhere but in the lock file: no reader reads it or calls it a stray.
    assert prompts_store.count("prompts") == 180
    assert not prompts_store.verify()["prompts"].problems
    assert prompts_store.append("prompts", extra_prompts("after"), "next") == 1
    assert not orphan.exists()  # the next writer removed it
    assert prompts_store.count("prompts") == 181


def make_format_1_store(root: Path) -> Store:
    """A store as charter wrote it before manifests: format 1, two Parquet files, no manifest."""
    store = Store.create(root)
    (store.root / MARKER).write_text(json.dumps({"format": 1}))
    stamp = {"run_id": "old", "created_at": datetime(2025, 1, 1, tzinfo=UTC)}
    for i, rows in enumerate((PROMPT_ROWS[:100], PROMPT_ROWS[100:])):
        table = pa.Table.from_pylist([{**row, **stamp} for row in rows], schema=table_spec("prompts").schema)
        pq.write_table(table, store.table_dir("prompts") / f"part-2025010{i + 1}T000000Z-old.parquet")
    return Store(root)


def test_a_store_from_before_manifests_is_read_as_before_and_adopted_on_the_next_append(
    tmp_path: Path,
) -> None:
    store = make_format_1_store(tmp_path / "old")
    assert store.count("prompts") == 180
    assert run_query(store, "select count(distinct row_id) from prompts").rows == [(180,)]
    (problem,) = store.verify()["prompts"].problems
    assert problem.startswith(f"{store.table_dir('prompts') / MANIFEST_NAME}: missing")
    assert "charter store verify --adopt" in problem
    assert store.append("prompts", PROMPT_ROWS + extra_prompts("new"), "r") == 1
    manifest = read_manifest(store.table_dir("prompts"))
    assert [entry.rows for entry in manifest.files] == [100, 80, 1]
    assert not store.verify()["prompts"].problems


def test_adopting_marks_the_store_so_a_lost_manifest_is_an_error(tmp_path: Path) -> None:
    store = make_format_1_store(tmp_path / "old")
    assert store.adopt()["prompts"] == 2
    assert json.loads((store.root / MARKER).read_text()) == {"format": 2}
    assert all(not state.problems for state in store.verify().values())
    (store.table_dir("prompts") / MANIFEST_NAME).unlink()
    with pytest.raises(StoreIntegrityError, match=r"manifest\.json: missing, so the table's 2 Parquet files"):
        Store(store.root).count("prompts")


def test_adoption_refuses_a_file_that_does_not_read(tmp_path: Path) -> None:
    store = make_format_1_store(tmp_path / "old")
    broken = sorted(store.table_dir("prompts").glob("*.parquet"))[1]
    broken.write_bytes(broken.read_bytes()[:2000])
    with pytest.raises(StoreIntegrityError, match="unreadable, not adopted") as raised:
        store.adopt()
    assert str(raised.value).startswith(f"{broken}: ")
    assert read_manifest(store.table_dir("prompts")) is None


@pytest.mark.integration
def test_charter_store_verify_passes_a_sound_store_and_adopts_an_old_one(
    prompts_store: Store, tmp_path
) -> None:
    result = run_charter("store", "verify", "--store", str(prompts_store.root))
    assert result.returncode == 0, result.stderr
    assert "✓ prompts: 1 files, 180 rows" in result.stdout
    old = make_format_1_store(tmp_path / "old")
    result = run_charter("store", "verify", "--store", str(old.root))
    assert result.returncode == 1 and "manifest.json: missing" in result.stderr
    result = run_charter("store", "verify", "--adopt", "--store", str(old.root))
    assert result.returncode == 0, result.stderr
    assert "prompts: recorded 2 files written before manifests" in result.stdout
    assert "✓ prompts: 2 files, 180 rows" in result.stdout


def flip_in_footer(store: Store) -> Path:
    path = prompts_file(store)
    flip(path, len(path.read_bytes()) - footer_bytes(path) + 40)
    return path


def flip_in_data(store: Store) -> Path:
    path = prompts_file(store)
    flip(path, 1000)
    return path


CLI_DAMAGE = {
    **{name: make for name, (make, _) in DAMAGE.items() if name != "replaced"},
    "flipped in the footer": flip_in_footer,
    "flipped in a page": flip_in_data,
}


@pytest.mark.integration
@pytest.mark.parametrize("damage", CLI_DAMAGE)
def test_charter_store_verify_and_charter_sql_name_the_file_without_a_traceback(
    prompts_store: Store, damage: str
) -> None:
    path = CLI_DAMAGE[damage](prompts_store)
    store = ("--store", str(prompts_store.root))
    verify = run_charter("store", "verify", *store)
    assert verify.returncode == 1
    assert f"✗ {path}: " in verify.stderr and "Traceback" not in verify.stderr + verify.stdout
    if damage == "flipped in a page":
        return  # only a full read finds it: verify (above), writers and compaction, not every open
    sql = run_charter("sql", "select count(*) from human_labels", *store)
    assert sql.returncode == 1 and sql.stdout == ""
    assert sql.stderr.startswith(f"error: {path}: ") and sql.stderr.count("\n") == 1
