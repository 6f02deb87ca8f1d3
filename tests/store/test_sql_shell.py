"""``charter sql --interactive``: statements split at ``;``, meta commands, one-line errors that do
not end the session, Ctrl-C, piped stdin's exit status, and the real command with stdin piped."""

from __future__ import annotations

import io
import os
import signal
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from tasks.store.schema import TABLES
from tasks.store.sql import QueryInterrupted, QueryResult, readonly_connection
from tasks.store.sql_settings import SqlSettings
from tasks.store.sql_shell import (
    CONTINUATION,
    HELP,
    PROMPT,
    ShellOutput,
    SqlShell,
    line_editing,
    run_session,
    split_statements,
    stream_lines,
)
from tasks.store.store import Store
from tests.conftest import PROJECT_ROOT

RUNAWAY = "select count(*) from range(100000000) a, range(100000000) b"
REFUSED_INSERT = (
    "charter sql is read-only: INSERT statements are refused; "
    "only SELECT queries run (the store is changed only by charter's own commands)"
)


class Recorded:
    """What a shell wrote, by kind."""

    def __init__(self) -> None:
        self.results: list[QueryResult] = []
        self.texts: list[str] = []
        self.errors: list[str] = []
        self.output = ShellOutput(self.results.append, self.texts.append, self.errors.append)


@pytest.fixture
def shell(prompts_store: Store) -> Iterator[tuple[SqlShell, Recorded]]:
    recorded = Recorded()
    with readonly_connection(prompts_store) as con:
        yield SqlShell(con, recorded.output, timeout=10), recorded


def run_lines(shell: SqlShell, text: str) -> None:
    shell.run(stream_lines(io.StringIO(text)))


@pytest.mark.parametrize(
    ("text", "statements", "rest"),
    [
        ("select 1;", ["select 1;"], ""),
        ("select 1; select 2", ["select 1;"], " select 2"),
        ("select ';' as x;\n", ["select ';' as x;"], ""),
        ("select 'it''s; fine';", ["select 'it''s; fine';"], ""),
        ('select 1 as "a;b";', ['select 1 as "a;b";'], ""),
        ("-- no; code\nselect 1;", ["-- no; code\nselect 1;"], ""),
        ("select /* ; */ 1;", ["select /* ; */ 1;"], ""),
        ("select 'open;\n", [], "select 'open;\n"),
        ("/* open ;\n", [], "/* open ;\n"),
        (";;  -- only comments\n", [], ""),
    ],
)
def test_statements_end_at_a_semicolon_outside_quotes_and_comments(
    text: str, statements: list[str], rest: str
) -> None:
    assert split_statements(text) == (statements, rest)


def test_a_statement_over_two_lines_runs_once_at_its_semicolon(shell: tuple[SqlShell, Recorded]) -> None:
    session, recorded = shell
    assert session.prompt == PROMPT
    session.feed("select count(*) as n")
    assert (recorded.results, session.prompt) == ([], CONTINUATION)
    session.feed("from prompts;")
    assert recorded.results == [QueryResult(["n"], [(3,)])]
    assert session.prompt == PROMPT


def test_a_line_may_hold_several_statements_and_the_last_may_lack_its_semicolon_at_the_end(
    shell: tuple[SqlShell, Recorded],
) -> None:
    session, recorded = shell
    run_lines(session, "select 1 as a; select 2 as b;\n\n   \nselect 3\nas c")
    assert [result.rows for result in recorded.results] == [[(1,)], [(2,)], [(3,)]]
    assert recorded.errors == []


def test_a_blank_line_with_nothing_pending_does_nothing(shell: tuple[SqlShell, Recorded]) -> None:
    session, recorded = shell
    for line in ("", "   ", "-- a comment"):
        session.feed(line)
    assert (recorded.results, recorded.errors, recorded.texts, session.prompt) == ([], [], [], PROMPT)


def test_a_refused_insert_prints_the_refusal_and_the_next_query_still_runs(
    shell: tuple[SqlShell, Recorded],
) -> None:
    session, recorded = shell
    run_lines(session, "insert into prompts values (1);\nselect count(*) as n from prompts;\n")
    assert recorded.errors == [REFUSED_INSERT]
    assert recorded.results == [QueryResult(["n"], [(3,)])]
    assert session.failures == 1


def test_duckdbs_errors_print_on_one_line(shell: tuple[SqlShell, Recorded]) -> None:
    session, recorded = shell
    run_lines(session, "selec 1;\nselect * from promts;\n")
    assert recorded.errors == [
        'SQL syntax error: Parser Error: syntax error at or near "selec"',
        'query failed: Catalog Error: Table with name promts does not exist! Did you mean "prompts"?',
    ]


def test_tables_lists_every_table_and_view_with_its_doc(shell: tuple[SqlShell, Recorded]) -> None:
    session, recorded = shell
    run_lines(session, ".tables\n")
    [result] = recorded.results
    assert result.columns == ["name", "comment"]
    docs = dict(result.rows)
    assert docs["prompts"] == TABLES["prompts"].doc
    assert docs["human_agreement"].startswith("Human-human agreement:")
    assert set(TABLES) < set(docs)
    assert not [name for name in docs if name.startswith("_")]  # the catalog's helper tables


def test_schema_lists_a_views_columns_with_types_and_comments(shell: tuple[SqlShell, Recorded]) -> None:
    session, recorded = shell
    run_lines(session, ".schema prompts\n.columns HUMAN_AGREEMENT\n")
    prompts, agreement = recorded.results
    assert [row[0] for row in prompts.rows] == TABLES["prompts"].schema.names
    assert dict((name, kind) for name, kind, _ in prompts.rows)["created_at"] == "TIMESTAMP WITH TIME ZONE"
    comments = {name: comment for name, _, comment in agreement.rows}
    assert comments["cohen_kappa"].startswith("(agreement - expected_agreement)")


@pytest.mark.parametrize(
    ("line", "error"),
    [
        (".schema nowhere", "no table or view named 'nowhere'; .tables lists them"),
        (".schema", ".schema takes one table or view name, e.g. .schema prompts"),
        (".drop prompts", "unknown command .drop; .help lists the commands"),
    ],
)
def test_a_bad_meta_command_is_one_error(shell: tuple[SqlShell, Recorded], line: str, error: str) -> None:
    session, recorded = shell
    run_lines(session, f"{line}\nselect 1 as one;\n")
    assert recorded.errors == [error]
    assert len(recorded.results) == 1


def test_help_and_quit(shell: tuple[SqlShell, Recorded]) -> None:
    session, recorded = shell
    run_lines(session, ".help\n.quit\nselect 1;\n")
    assert recorded.texts == [HELP]
    assert recorded.results == []  # nothing after .quit runs


def test_ctrl_c_at_the_prompt_clears_the_pending_input(shell: tuple[SqlShell, Recorded]) -> None:
    session, recorded = shell
    typed = iter(["select 1 +", KeyboardInterrupt(), "select 2 as two;"])

    def read_line(prompt: str) -> str:
        line = next(typed, None)
        if line is None:
            raise EOFError
        if isinstance(line, BaseException):
            raise line
        return line

    session.run(read_line)
    assert recorded.results == [QueryResult(["two"], [(2,)])]
    assert recorded.errors == []


def test_ctrl_c_during_a_query_stops_only_that_query(shell: tuple[SqlShell, Recorded]) -> None:
    session, recorded = shell
    threading.Timer(0.5, os.kill, (os.getpid(), signal.SIGINT)).start()
    start = time.monotonic()
    run_lines(session, f"{RUNAWAY};\nselect 2 as two;\n")
    assert time.monotonic() - start < 5
    assert recorded.errors == ["query interrupted"]
    assert recorded.results == [QueryResult(["two"], [(2,)])]


def piped_session(store: Store, text: str, settings: SqlSettings | None = None) -> tuple[int, Recorded]:
    recorded = Recorded()
    return run_session(store, settings or SqlSettings(), recorded.output, io.StringIO(text)), recorded


def test_piped_statements_exit_0_when_all_ran(prompts_store: Store) -> None:
    code, recorded = piped_session(prompts_store, "select count(*) as n\nfrom prompts;\n.tables\n")
    assert code == 0
    assert recorded.results[0] == QueryResult(["n"], [(3,)])


def test_piped_statements_exit_1_after_a_failure_naming_its_line_and_run_the_rest(
    prompts_store: Store,
) -> None:
    text = f"select 1;\n{RUNAWAY};\ninsert into prompts\nvalues (1);\nselect 2 as two;\n"
    code, recorded = piped_session(prompts_store, text, SqlSettings(timeout=0.5))
    assert code == 1
    assert recorded.errors == ["line 2: query stopped after 0.5 s (--timeout)", f"line 4: {REFUSED_INSERT}"]
    assert recorded.results[-1] == QueryResult(["two"], [(2,)])


def test_sigterm_during_a_query_ends_the_session_and_removes_its_folder(
    prompts_store: Store, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(tempfile, "tempdir", str(tmp_path))
    threading.Timer(0.5, os.kill, (os.getpid(), signal.SIGTERM)).start()
    with pytest.raises(QueryInterrupted) as stopped:
        piped_session(prompts_store, f"{RUNAWAY};\nselect 2;\n")
    assert stopped.value.exit_code == 143
    assert list(tmp_path.glob("charter-sql-*")) == []


def test_the_history_is_kept_and_one_that_cannot_be_written_is_ignored(tmp_path: Path) -> None:
    import readline

    history = tmp_path / "cache" / "sql_history"
    with line_editing(history):
        readline.clear_history()
        readline.add_history("select 42;")
    assert history.read_text().splitlines()[-1] == "select 42;"
    (tmp_path / "file").write_text("")
    with line_editing(tmp_path / "file" / "sql_history"):  # its folder cannot be made: no error
        pass


@pytest.mark.integration
def test_the_command_reads_piped_statements_and_exits_1_after_a_failure(prompts_store: Store) -> None:
    script = ".tables\nselect family, count(*) as n\nfrom prompts group by 1 order by 1;\n"
    command = [str(Path(sys.executable).parent / "charter"), "sql", "--interactive", "--format", "csv"]
    run = [*command, "--store", str(prompts_store.root)]
    env = {**os.environ, "COLUMNS": "200"}
    ok = subprocess.run(run, input=script, capture_output=True, text=True, cwd=PROJECT_ROOT, env=env)
    assert (ok.returncode, ok.stderr) == (0, "")
    assert f'prompts,"{TABLES["prompts"].doc}"' in ok.stdout.splitlines()
    assert ok.stdout.endswith("family,n\nbooking,2\nprivacy,1\n")
    failed = subprocess.run(
        run,
        input="delete from prompts;\nselect 1 as one;\n",
        capture_output=True,
        text=True,
        cwd=PROJECT_ROOT,
    )
    assert failed.returncode == 1
    assert failed.stderr == "error: line 1: charter sql is read-only: DELETE statements are refused; " + (
        "only SELECT queries run (the store is changed only by charter's own commands)\n"
    )
    assert failed.stdout == "one\n1\n"
