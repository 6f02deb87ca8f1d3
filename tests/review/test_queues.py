"""Review queues: the bundled file against a real store, files that must be refused at start
(with the file, the line of the queue's ``sql:`` and its field), and the snapshot's order."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path

import duckdb
import pytest

from tasks.core.errors import CharterError, InputError
from tasks.review.queues import (
    BUNDLED_QUEUES,
    Queue,
    QueueSettings,
    load_queues,
    queue_sizes,
    queue_snapshot,
)
from tasks.store.sql import readonly_connection
from tasks.store.store import Store
from tests.core.hostile import DEEP_BRACKETS, alias_bomb, folder, write
from tests.review.conftest import CASES, UNCERTAIN_ORDER
from tests.store.test_evidence_views import score

NAMES = {case.pair_id: name for name, case in CASES.items()}
GOOD_SQL = "select pair_id, 1 as priority from ai_labels"


def queue_file(tmp_path: Path, sql: str, *, second_name: str = "bad") -> Path:
    """Two queues; the second one's ``sql:`` is on line 7, its text on line 8."""
    text = (
        "queues:\n"
        "  - name: good\n"
        "    title: A fine queue\n"
        f"    sql: {GOOD_SQL}\n"
        f"  - name: {second_name}\n"
        "    title: The queue under test\n"
        "    sql: |\n"
        f"      {sql}\n"
    )
    return write(tmp_path / "queues.yaml", text)


@pytest.fixture(scope="module")
def store(_bench_template: Path) -> Store:
    """The fixture store itself: these tests only read it (load_queues and snapshots write nothing)."""
    return Store.existing(_bench_template)


@pytest.fixture(scope="module")
def con(store: Store) -> Iterator[duckdb.DuckDBPyConnection]:
    with readonly_connection(store) as connection:
        yield connection


def snapshot(con: duckdb.DuckDBPyConnection, sql: str, **kwargs) -> list[tuple[str, float]]:
    queue = Queue(QueueSettings(name="test", title="Under test", sql=sql), "queues.yaml", 7)
    return queue_snapshot(con, queue, **{"limit": 100, **kwargs})


def named(rows: list[tuple[str, float]]) -> list[tuple[str, float]]:
    return [(NAMES[pair], round(priority, 6)) for pair, priority in rows]


def test_the_bundled_queues_load_and_rank_the_fixture_pairs_as_worked_out_by_hand(
    store: Store, con: duckdb.DuckDBPyConnection
) -> None:
    queues = load_queues(None, store)
    assert [q.name for q in queues] == [
        "uncertain",
        "inconsistent",
        "conflict",
        "coverage",
        "audit",
        "rm-uncertain",
    ]
    assert {q.source for q in queues} == {str(BUNDLED_QUEUES)}
    lines = BUNDLED_QUEUES.read_text().splitlines()
    assert all(lines[q.line - 1].strip().startswith("sql:") for q in queues)
    ranked = {q.name: named(queue_snapshot(con, q, 100)) for q in queues}
    # uncertain: |mean p(first) - 0.5| over the model's labels, rule labels left out:
    # close 0.52 -> 0.02, lopsided (0.9 + 0.2) / 2 -> 0.05, conflict 0.35 -> 0.15,
    # averaged mean(0.8, 0.6) -> 0.2, ruled 0.1 -> 0.4 (with its rule label it would be 0.05).
    assert ranked["uncertain"] == [
        ("close", 0.02),
        ("lopsided", 0.05),
        ("conflict", 0.15),
        ("averaged", 0.2),
        ("ruled", 0.4),
    ]
    assert [name for name, _ in ranked["uncertain"]] == UNCERTAIN_ORDER
    # inconsistent: 1 - |p_a_first - p_a_second| over pairs whose orders disagree.
    assert ranked["inconsistent"] == [("lopsided", 0.3), ("close", 0.92)]
    # conflict: the judge 0.65 sure of 'second' where both people chose 'first' (1 - 0.65),
    # then the pair people split 1-1 on (1 + majority share 0.5).
    assert ranked["conflict"] == [("conflict", 0.35), ("split", 1.5)]
    # coverage: travel has no human labels (0), writing half its prompts (0.5); cooking's
    # pairs all have human votes already.
    assert ranked["coverage"] == [("close", 0.0), ("lopsided", 0.0), ("ruled", 0.5)]
    assert sorted(name for name, _ in ranked["audit"]) == sorted(UNCERTAIN_ORDER)
    # rm-uncertain: no reward model has scored the fixture's pairs.
    assert ranked["rm-uncertain"] == []
    assert queue_sizes(store, queues) == {
        "uncertain": 5,
        "inconsistent": 2,
        "conflict": 2,
        "coverage": 3,
        "audit": 5,
        "rm-uncertain": 0,
    }


def test_rm_uncertain_serves_the_widest_ensemble_spread_first(tmp_path: Path) -> None:
    scored = Store.create(tmp_path / "scored")
    scored.append(
        "reward_scores",
        [
            score("narrow", "ensemble", 0.8, 0.02),
            score("wide", "ensemble", 0.55, 0.31),
            score("middle", "ensemble", 0.3, 0.12),
            score("single", "one-model", 0.9, 0.0) | {"members": 1},  # one model: no spread to rank by
            score("rescored", "old", 0.5, 0.4),
        ],
        "r1",
    )
    # A later checkpoint rescored one pair: its newest spread (0.05) is the one that counts.
    scored.append("reward_scores", [score("rescored", "new", 0.6, 0.05)], "r2")
    (queue,) = [q for q in load_queues(None, scored) if q.name == "rm-uncertain"]
    with readonly_connection(scored) as connection:
        ranked = queue_snapshot(connection, queue, 100)
    assert [(pair, round(priority, 6)) for pair, priority in ranked] == [
        ("wide", -0.31),
        ("middle", -0.12),
        ("rescored", -0.05),
        ("narrow", -0.02),
    ]


REFUSED = {
    "two-statements": (f"{GOOD_SQL}; select 1", "charter sql runs exactly one statement; got 2"),
    "insert": (
        "insert into ai_labels select * from ai_labels",
        "charter sql is read-only: INSERT statements are refused",
    ),
    "copy": (
        "copy ai_labels to '/tmp/queue-out.csv'",
        "charter sql is read-only: COPY statements are refused",
    ),
    "attach": (
        "attach '/tmp/other.duckdb' as other",
        "charter sql is read-only: ATTACH statements are refused",
    ),
    "does-not-parse": ("selec pair_id from ai_labels", "SQL syntax error: Parser Error"),
    "unknown-table": (
        "select pair_id, 1 as priority from no_such_view",
        "the query does not bind: Catalog Error: Table with name no_such_view does not exist",
    ),
    "outside-the-store": (
        "select 'x' as pair_id, 1 as priority from read_csv('/etc/passwd')",
        "the query does not bind: Permission Error",
    ),
    "no-pair-id": (
        "select prompt_id, 1 as priority from ai_labels",
        "the query must return the columns pair_id and priority; missing pair_id",
    ),
    "no-priority": (
        "select pair_id from ai_labels",
        "the query must return the columns pair_id and priority; missing priority",
    ),
}


@pytest.mark.parametrize("case", sorted(REFUSED))
def test_a_queue_that_is_not_one_read_only_select_of_pairs_is_refused_at_its_sql_line(
    store: Store, tmp_path: Path, case: str
) -> None:
    sql, message = REFUSED[case]
    path = queue_file(tmp_path, sql)
    with pytest.raises(InputError) as caught:
        load_queues(path, store)
    (problem,) = caught.value.problems
    assert (problem.path, problem.line, problem.field) == (str(path), 7, "queues[1].sql")
    assert str(problem).startswith(f"{path}:7 [queues[1].sql]: {message}")


def test_a_duplicate_queue_name_is_refused_at_the_second_name(store: Store, tmp_path: Path) -> None:
    path = queue_file(tmp_path, GOOD_SQL, second_name="good")
    with pytest.raises(InputError) as caught:
        load_queues(path, store)
    assert str(caught.value) == f"{path}:5 [queues[1].name]: queue name 'good' is already used by queues[0]"


HOSTILE: dict[str, tuple[Callable[[Path], Path], str]] = {
    "alias-bomb": (
        lambda tmp: write(tmp / "q.yaml", alias_bomb(9)),
        ":5: aliases expand to more than 10,000 values",
    ),
    "deep-nesting": (
        lambda tmp: write(tmp / "q.yaml", "queues: " + DEEP_BRACKETS),
        ":1: nested more than 100 levels deep",
    ),
    "binary": (
        lambda tmp: write(tmp / "q.yaml", b"queues:\n\x00\x01\x02"),
        ":2: binary data (a NUL byte), not UTF-8 text",
    ),
    "a-directory": (lambda tmp: folder(tmp / "q.yaml"), ": is a directory, not a file"),
}


@pytest.mark.parametrize("case", sorted(HOSTILE))
def test_a_hostile_queue_file_is_refused_by_the_shared_loader(
    store: Store, tmp_path: Path, case: str
) -> None:
    make, message = HOSTILE[case]
    path = make(tmp_path)
    with pytest.raises(InputError) as caught:
        load_queues(path, store)
    assert str(caught.value) == f"{path}{message}"


def test_the_snapshot_keeps_one_row_per_pair_at_its_lowest_priority(con: duckdb.DuckDBPyConnection) -> None:
    # One row per AI label: averaged has p 0.8 (logprob) and 0.6 (cot), ruled 0.1 and 1.0 (rule).
    rows = named(snapshot(con, "select pair_id, p_a as priority from ai_labels"))
    assert rows == [
        ("ruled", 0.1),
        ("conflict", 0.35),
        ("close", 0.52),
        ("lopsided", 0.55),
        ("averaged", 0.6),
    ]


def test_the_snapshot_breaks_priority_ties_by_pair_id_and_honours_limit_and_exclude(
    con: duckdb.DuckDBPyConnection,
) -> None:
    every = sorted(case.pair_id for case in CASES.values() if case.logprob)
    rows = snapshot(con, GOOD_SQL)
    assert [pair for pair, _ in rows] == every
    assert {priority for _, priority in rows} == {1.0}
    assert [pair for pair, _ in snapshot(con, GOOD_SQL, limit=2)] == every[:2]
    excluded = snapshot(con, GOOD_SQL, limit=2, exclude=[every[0], every[2]])
    assert [pair for pair, _ in excluded] == [every[1], every[3]]


def test_null_pairs_and_priorities_are_left_out(con: duckdb.DuckDBPyConnection) -> None:
    sql = (
        "select if(method = 'cot', null, pair_id) as pair_id,"
        " if(method = 'rule', null, 1 - p_a) as priority from ai_labels"
    )
    # averaged keeps only its logprob row (its cot row has no pair), ruled only its logprob row.
    assert named(snapshot(con, sql)) == [
        ("averaged", 0.2),
        ("lopsided", 0.45),
        ("close", 0.48),
        ("conflict", 0.65),
        ("ruled", 0.9),
    ]


def test_a_trailing_semicolon_and_comment_run_as_they_were_checked(
    store: Store, con: duckdb.DuckDBPyConnection, tmp_path: Path
) -> None:
    # DuckDB takes "...; -- note" as one statement; the wrapper must too (it once failed here).
    rows = snapshot(con, "select pair_id, p_a as priority from ai_labels where p_a < 0.5; -- low ones")
    assert named(rows) == [("ruled", 0.1), ("conflict", 0.35)]
    rows = snapshot(con, "select pair_id, p_a as priority from ai_labels where p_a < 0.2 /* ; */ ;;")
    assert named(rows) == [("ruled", 0.1)]
    queues = load_queues(queue_file(tmp_path, "select pair_id, 0 as priority from ai_labels -- all;"), store)
    assert queue_sizes(store, queues) == {"good": 5, "bad": 5}


def test_a_query_that_fails_when_run_names_the_file_line_and_queue(con: duckdb.DuckDBPyConnection) -> None:
    with pytest.raises(CharterError) as caught:
        snapshot(con, "select pair_id, 'high' as priority from ai_labels")
    assert str(caught.value).startswith("queues.yaml:7 [queue test]: the query failed: Conversion Error")
