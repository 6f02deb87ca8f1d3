"""``open_store`` for notebooks: a usable connection with every view that cannot write the store
(not by SQL, not through a result's own write methods), bounded, and that leaves no folder."""

from __future__ import annotations

import gc
import os
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import duckdb
import pytest
from pydantic import ValidationError

from tasks.core.errors import CharterError, ReadOnlyQueryError
from tasks.store import open_store
from tasks.store.notebook import StoreConnection
from tasks.store.schema import TABLES
from tasks.store.sql import WORKDIR_PREFIX
from tasks.store.store import Store
from tests.conftest import PROJECT_ROOT, stored_files

RUNAWAY = "select count(*) from range(100000000) a, range(100000000) b"


def sessions(folder: Path) -> list[Path]:
    return list(folder.glob(f"{WORKDIR_PREFIX}*"))


def test_a_query_comes_back_as_a_relation_with_its_dataframe(prompts_store: Store) -> None:
    with open_store(prompts_store.root) as db:
        families = db.sql("select family, count(*) as n from prompts group by 1 order by 1")
        assert families.df().to_dict("records") == [
            {"family": "booking", "n": 2},
            {"family": "privacy", "n": 1},
        ]
        assert families.to_arrow_table().column("n").to_pylist() == [2, 1]
        assert families.filter("n > 1").fetchall() == [("booking", 2)]  # relational steps work on it


def test_tables_and_columns_carry_the_catalogs_docs(prompts_store: Store) -> None:
    with open_store(prompts_store.root) as db:
        docs = dict(db.tables().fetchall())
        columns = [row[0] for row in db.columns("prompts").fetchall()]
    assert docs["prompts"] == TABLES["prompts"].doc
    assert columns == TABLES["prompts"].schema.names


@pytest.mark.parametrize(
    ("query", "kind"),
    [
        ("insert into prompts (prompt_id) values ('x')", "INSERT"),
        ("create table notes as select 1 as x", "CREATE"),
        ("copy prompts to '{tables}/prompts/part-copy.parquet'", "COPY"),
        ("attach '{tables}/other.duckdb' as other", "ATTACH"),
    ],
)
def test_statements_that_change_anything_are_refused(prompts_store: Store, query: str, kind: str) -> None:
    before = stored_files(prompts_store)
    with open_store(prompts_store.root) as db, pytest.raises(ReadOnlyQueryError, match=f"{kind} statements"):
        db.sql(query.format(tables=prompts_store.root / "tables"))
    assert stored_files(prompts_store) == before
    assert sorted(p.name for p in (prompts_store.root / "tables").iterdir()) == sorted(TABLES)


def test_files_outside_the_store_cannot_be_read(prompts_store: Store) -> None:
    with open_store(prompts_store.root) as db, pytest.raises(duckdb.PermissionException, match="/etc/passwd"):
        db.sql("select * from read_text('/etc/passwd')")


def test_a_results_own_write_methods_cannot_reach_the_store(prompts_store: Store, tmp_path: Path) -> None:
    # The store's connection may write where it reads (tables/); a result's database may write nowhere.
    target = prompts_store.root / "tables" / "prompts" / "part-written.parquet"
    with open_store(prompts_store.root) as db:
        rows = db.sql("select * from prompts")
        with pytest.raises(duckdb.PermissionException):
            rows.write_parquet(str(target))
        with pytest.raises(duckdb.PermissionException):
            rows.write_csv(str(tmp_path / "out.csv"))
    assert not target.exists() and not (tmp_path / "out.csv").exists()


def test_the_timeout_stops_a_runaway_query_and_the_connection_still_answers(prompts_store: Store) -> None:
    with open_store(prompts_store.root, timeout=0.5) as db:
        start = time.monotonic()
        with pytest.raises(CharterError, match=r"^query stopped after 0\.5 s \(timeout\)$"):
            db.sql(RUNAWAY)
        assert time.monotonic() - start < 3
        assert db.sql("select 42").fetchall() == [(42,)]


def test_an_interrupt_stops_the_query_with_keyboard_interrupt(prompts_store: Store) -> None:
    # A notebook's interrupt is SIGINT: without interrupt(), DuckDB would hold it until the query ends.
    with open_store(prompts_store.root) as db:
        threading.Timer(0.5, os.kill, (os.getpid(), signal.SIGINT)).start()
        start = time.monotonic()
        with pytest.raises(KeyboardInterrupt):
            db.sql(RUNAWAY)
        assert time.monotonic() - start < 3
        assert db.sql("select 42").fetchall() == [(42,)]


def test_the_memory_limit_is_the_sessions(prompts_store: Store) -> None:
    with open_store(prompts_store.root, memory_limit="50MB") as db:
        assert db.sql("select current_setting('memory_limit')").fetchall() == [("47.6 MiB",)]
    with pytest.raises(ValidationError, match="too little for any query"):
        open_store(prompts_store.root, memory_limit="1MB")


def test_a_folder_that_is_no_store_is_refused(tmp_path: Path) -> None:
    with pytest.raises(CharterError, match="no charter store at"):
        open_store(tmp_path)


def test_closing_removes_the_session_folder_and_ends_the_connection(
    prompts_store: Store, session_dirs: Path
) -> None:
    db = open_store(prompts_store.root)
    assert len(sessions(session_dirs)) == 1 and repr(db).endswith("(open)>")
    db.close()
    db.close()  # closing twice is harmless
    assert sessions(session_dirs) == [] and db.closed
    with pytest.raises(CharterError, match="is closed; open_store"):
        db.sql("select 1")


def test_a_connection_nobody_holds_removes_its_folder(prompts_store: Store, session_dirs: Path) -> None:
    db: StoreConnection | None = open_store(prompts_store.root)
    assert len(sessions(session_dirs)) == 1
    del db
    gc.collect()
    assert sessions(session_dirs) == []


@pytest.mark.integration
def test_a_connection_left_open_is_removed_when_the_interpreter_exits(
    prompts_store: Store, tmp_path: Path
) -> None:
    code = (
        "from tasks.store import open_store\n"
        f"db = open_store({str(prompts_store.root)!r})\n"
        "print(db.sql('select 1').fetchall())"
    )
    result = subprocess.run(
        [sys.executable, "-c", code],
        cwd=PROJECT_ROOT,
        env={**os.environ, "TMPDIR": str(tmp_path)},
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert (result.returncode, result.stdout) == (0, "[(1,)]\n"), result.stderr
    assert list(tmp_path.glob(f"{WORKDIR_PREFIX}*")) == []
