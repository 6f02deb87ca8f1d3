"""``charter sql`` bounded and stoppable: no way out of the store through links, no query that
runs or grows without end, and no traceback or leftover folder when it is stopped."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from tasks.core.errors import CharterError
from tasks.store.sql import WORKDIR_PREFIX, execute, readonly_connection, run_bounded_query, run_query
from tasks.store.sql_settings import SqlSettings, machine_memory, size_in_bytes
from tasks.store.store import MARKER, Store
from tests.conftest import PROJECT_ROOT, run_charter

# Runs for ever: 10^16 rows, and count(*) over a cross join keeps no state, so memory stays flat.
RUNAWAY = "select count(*) from range(100000000) a, range(100000000) b"
# Sorting 20M random keys needs some 300 MB: far more than 20 MB of memory and 20 MB of spill.
GREEDY = "select max(x) from (select range as x from range(20000000) order by random())"


def linked_store(tmp_path: Path, link: str) -> tuple[Store, Path]:
    """A store with one symbolic link under tables/, to a folder or Parquet file outside it."""
    outside = tmp_path / "outside"
    (outside / "prompts").mkdir(parents=True)
    pq.write_table(pa.table({"x": [1]}), outside / "prompts" / "part-x.parquet")
    store = Store.create(tmp_path / "store")
    tables = store.root / "tables"
    if link == "tables":
        for table in tables.iterdir():
            table.rmdir()
        tables.rmdir()
        tables.symlink_to("/")
        return store, tables
    if link == "table-folder":
        (tables / "prompts").rmdir()
        (tables / "prompts").symlink_to(outside / "prompts")
        return store, tables / "prompts"
    (tables / "prompts" / "part-x.parquet").symlink_to(outside / "prompts" / "part-x.parquet")
    return store, tables / "prompts" / "part-x.parquet"


@pytest.mark.parametrize("link", ["tables", "table-folder", "parquet-file"])
def test_a_link_under_tables_is_refused_before_duckdb_opens(
    tmp_path: Path, session_dirs: Path, link: str
) -> None:
    store, linked = linked_store(tmp_path, link)
    with pytest.raises(CharterError) as refused:
        run_query(store, "select count(*) from read_text('/etc/passwd')")
    target = os.readlink(linked)
    assert str(refused.value) == (
        f"{linked}: is a symbolic link (to {target}); charter sql reads only files inside the store, "
        "so it refuses a store with links under tables/"
    )
    assert list(session_dirs.iterdir()) == []  # no catalog was built


def test_a_store_reached_through_a_link_is_still_readable(tmp_path: Path, store: Store) -> None:
    # The store's own root is resolved when it is opened, so a link to it leads nowhere else.
    (tmp_path / "alias").symlink_to(store.root)
    assert run_query(Store.existing(tmp_path / "alias"), "select count(*) from prompts").rows == [(0,)]


@pytest.mark.integration
def test_the_tables_link_to_root_escape_is_refused_by_the_command(tmp_path: Path) -> None:
    root = tmp_path / "store"
    root.mkdir()
    (root / MARKER).write_text('{"format": 1}')
    (root / "tables").symlink_to("/")
    result = run_charter("sql", "select * from read_text('/etc/passwd')", "--store", str(root))
    assert result.returncode == 1
    assert result.stderr.startswith(f"error: {root}/tables: is a symbolic link (to /)")
    assert "root:" not in result.stdout and "Traceback" not in result.stderr


@pytest.mark.parametrize(
    ("text", "size"),
    [("2GB", 2_000_000_000), ("512MiB", 536_870_912), ("1.5 gb", 1_500_000_000), ("16MiB", 16_777_216)],
)
def test_sizes_are_read_in_duckdbs_units(text: str, size: int) -> None:
    assert size_in_bytes(text) == size


@pytest.mark.parametrize(("value", "message"), [("2", "is not a size"), ("15MiB", "at least 16MiB")])
def test_a_memory_limit_that_cannot_work_is_refused(value: str, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        SqlSettings(memory_limit=value)


def test_the_session_is_bounded_in_memory_and_spills_inside_its_own_folder(
    store: Store, session_dirs: Path
) -> None:
    with readonly_connection(store, SqlSettings(memory_limit="20MB")) as con:
        memory, spill, spill_dir = con.sql(
            "select current_setting('memory_limit'), current_setting('max_temp_directory_size'), "
            "current_setting('temp_directory')"
        ).fetchall()[0]
    # 20 MB = 20,000,000 bytes = 19.07 MiB, which DuckDB prints rounded down.
    assert (memory, spill) == ("19.0 MiB", "19.0 MiB")
    assert Path(spill_dir).parent.parent == session_dirs
    assert Path(spill_dir).parent.name.startswith(WORKDIR_PREFIX)
    assert list(session_dirs.iterdir()) == []


def test_by_default_a_session_may_use_a_quarter_of_the_machines_memory(store: Store) -> None:
    with readonly_connection(store) as con:
        limit = con.sql("select current_setting('memory_limit')").fetchall()[0][0]
    quarter_gib = machine_memory() / 4 / 2**30
    number, unit = limit.split()
    assert unit == "GiB" and float(number) == pytest.approx(quarter_gib, abs=0.1)


def test_a_query_that_needs_more_memory_stops_with_the_limit(store: Store) -> None:
    with (
        readonly_connection(store, SqlSettings(memory_limit="20MB")) as con,
        pytest.raises(CharterError) as stopped,
    ):
        execute(con, GREEDY)
    assert str(stopped.value) == (
        "query needs more than 19.0 MiB of memory (--memory-limit; as much again may spill to disk)"
    )


def test_the_timeout_stops_a_runaway_query_on_time(store: Store) -> None:
    with readonly_connection(store) as con:
        start = time.monotonic()
        with pytest.raises(CharterError, match=r"^query stopped after 0\.5 s \(--timeout\)$"):
            execute(con, RUNAWAY, timeout=0.5)
        elapsed = time.monotonic() - start
        assert execute(con, "select 42").rows == [(42,)]  # the connection still answers
    assert 0.5 <= elapsed < 1.5


def test_a_bounded_query_runs_outside_the_main_thread_too(store: Store) -> None:
    # Signal handlers can be set only in the main thread; elsewhere the query runs without them.
    rows: list = []
    worker = threading.Thread(
        target=lambda: rows.extend(run_bounded_query(store, "select 7", SqlSettings()).rows)
    )
    worker.start()
    worker.join()
    assert rows == [(7,)]


@pytest.mark.integration
def test_the_command_stops_a_runaway_query_at_its_timeout(store: Store) -> None:
    start = time.monotonic()
    result = run_charter("sql", RUNAWAY, "--timeout", "2", "--store", str(store.root))
    elapsed = time.monotonic() - start
    assert (result.returncode, result.stderr, result.stdout) == (
        1,
        "error: query stopped after 2 s (--timeout)\n",
        "",
    )
    assert elapsed < 10  # the 2 s and the command's start (1.5-3.5 s on a busy 2-core machine)


@pytest.mark.integration
def test_the_command_reports_a_query_over_its_memory_limit(store: Store) -> None:
    result = run_charter("sql", GREEDY, "--memory-limit", "20MB", "--store", str(store.root))
    assert result.returncode == 1
    assert result.stderr == (
        "error: query needs more than 19.0 MiB of memory (--memory-limit; as much again may spill to disk)\n"
    )


@pytest.mark.integration
@pytest.mark.parametrize(("stop", "exit_code"), [(signal.SIGINT, 130), (signal.SIGTERM, 143)])
def test_a_signal_stops_a_long_query_with_one_line_and_no_leftovers(
    store: Store, tmp_path: Path, stop: signal.Signals, exit_code: int
) -> None:
    temp = tmp_path / "tmp"
    temp.mkdir()
    command = subprocess.Popen(
        [str(Path(sys.executable).parent / "charter"), "sql", RUNAWAY, "--store", str(store.root)],
        cwd=PROJECT_ROOT,
        env={**os.environ, "TMPDIR": str(temp)},
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    deadline = time.monotonic() + 30
    while not list(temp.glob(f"{WORKDIR_PREFIX}*/catalog.duckdb")) and time.monotonic() < deadline:
        time.sleep(0.05)
    time.sleep(1.5)  # the catalog of an empty store takes ~0.2 s: the query is running by now
    assert command.poll() is None
    sent = time.monotonic()
    command.send_signal(stop)
    stdout, stderr = command.communicate(timeout=20)
    assert time.monotonic() - sent < 3  # measured: 0.5-0.6 s
    assert (command.returncode, stderr, stdout) == (exit_code, f"interrupted ({stop.name})\n", "")
    assert list(temp.iterdir()) == []
