"""``charter sql --interactive``: a read-only prompt over one store session.

The session's connection (:func:`tasks.store.sql.readonly_connection`) is opened once, so each
query costs only itself, not the catalog's copy and the connection's setup. Every statement goes
through the same :func:`tasks.store.sql.execute` as a one-shot ``charter sql`` (the parser's
read-only check, the timeout, the memory limit), so the prompt can do nothing the command cannot.

A statement ends with ``;`` outside quotes and comments, as in ``duckdb`` and ``psql``, so it may
span lines and a line may hold several. Lines starting with ``.`` when nothing is pending are meta
commands (:data:`HELP`). An error prints one line and the session goes on.

At a terminal, Ctrl-C interrupts the running query only, or clears the pending input at the
prompt; SIGTERM ends the session (exit 143) after its folder is removed. With stdin piped, the
statements are read without a prompt, errors name their line, any signal ends the session
(130, 143) and :func:`run_session` answers 1 when any statement failed, so scripts can check it.
"""

from __future__ import annotations

import contextlib
import signal
import sys
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import TextIO

import duckdb

from tasks.core.cache import cache_root
from tasks.core.errors import CharterError
from tasks.store.sql import (
    QueryInterrupted,
    QueryResult,
    execute,
    handling_signals,
    interrupting,
    readonly_connection,
)
from tasks.store.sql_catalog import quote
from tasks.store.sql_settings import SqlSettings
from tasks.store.store import Store

PROMPT = "charter> "
CONTINUATION = "    ...> "
HISTORY_FILE = "sql_history"

HELP = """\
SQL statements end with ';' and may span lines; only SELECT (WITH, DESCRIBE, SHOW, SUMMARIZE) runs.
.tables          every table and view, with what it holds
.schema NAME     the columns of a table or view, with their types and comments (also .columns)
.help            this text
.quit, .exit     leave (so does Ctrl-D)
Ctrl-C stops the running query, or clears what was typed."""

# The catalog's own helper tables start with '_' (each table's full schema): not for users.
TABLES_QUERY = """
select view_name as name, comment from duckdb_views() where not internal and not starts_with(view_name, '_')
union all
select table_name, comment from duckdb_tables() where not internal and not starts_with(table_name, '_')
order by name
"""


def columns_query(name: str) -> str:
    """The columns of table or view ``name`` (case-insensitive, as SQL names are), in order."""
    return (
        "select column_name as column, data_type as type, comment from duckdb_columns() "
        f"where lower(table_name) = lower({quote(name)}) order by column_index"
    )


def split_statements(text: str) -> tuple[list[str], str]:
    """The complete statements in ``text`` (each ending at a ``;`` outside quotes and comments)
    and what is left pending; statements and a rest that hold only comments are dropped."""
    statements: list[str] = []
    start = position = 0
    has_code = False
    while position < len(text):
        char = text[position]
        if char in "'\"":
            end = text.find(char, position + 1)  # a doubled quote closes and reopens: still inside
            if end < 0:
                return statements, text[start:]
            position, has_code = end + 1, True
        elif text.startswith("--", position):
            end = text.find("\n", position)
            position = len(text) if end < 0 else end + 1
        elif text.startswith("/*", position):
            end = text.find("*/", position + 2)
            if end < 0:
                return statements, text[start:]
            position = end + 2
        else:
            if char == ";":
                if has_code:
                    statements.append(text[start : position + 1].strip())
                start, has_code = position + 1, False
            elif not char.isspace():
                has_code = True
            position += 1
    return statements, text[start:] if has_code else ""


def one_line(message: str) -> str:
    """DuckDB's message up to its first blank line (which the query's text and a caret follow),
    on one line: ``Catalog Error: Table with name promts does not exist! Did you mean "prompts"?``"""
    return " ".join(line.strip() for line in message.strip().split("\n\n")[0].splitlines())


@dataclass(frozen=True)
class ShellOutput:
    """Where the shell writes: query results (in the command's --format), plain text, errors."""

    result: Callable[[QueryResult], None]
    text: Callable[[str], None]
    error: Callable[[str], None]


class SqlShell:
    """The prompt's logic over one open connection: lines in, results and errors out."""

    def __init__(
        self,
        con: duckdb.DuckDBPyConnection,
        output: ShellOutput,
        *,
        timeout: float | None = None,
        interactive: bool = True,
    ):
        self.con = con
        self.output = output
        self.timeout = timeout
        self.interactive = interactive
        self.pending = ""
        self.failures = 0
        self.line_number = 0

    @property
    def prompt(self) -> str:
        return CONTINUATION if self.pending else PROMPT

    def run(self, read_line: Callable[[str], str]) -> None:
        """Read lines until end of input or ``.quit``; at a terminal, Ctrl-C clears the input."""
        while True:
            try:
                try:
                    line = read_line(self.prompt if self.interactive else "")
                except EOFError:
                    if self.interactive:
                        self.output.text("")  # Ctrl-D leaves the cursor after the prompt
                    self.finish()
                    return
                if not self.feed(line):
                    return
            except KeyboardInterrupt:
                if not self.interactive:
                    raise
                self.pending = ""
                self.output.text("")

    def feed(self, line: str) -> bool:
        """Take one line: run what it completes; False when it asks to leave."""
        self.line_number += 1
        if not self.pending and line.strip().startswith("."):
            return self._meta(line.split())
        statements, self.pending = split_statements(self.pending + line + "\n")
        for statement in statements:
            self._run(statement)
        return True

    def finish(self) -> None:
        """End of input: a last statement without its ``;`` still runs."""
        if self.pending.strip():
            statement, self.pending = self.pending.strip(), ""
            self._run(statement)

    def _meta(self, words: list[str]) -> bool:
        command, arguments = words[0], words[1:]
        if command in (".quit", ".exit"):
            return False
        if command == ".help":
            self.output.text(HELP)
        elif command == ".tables":
            self._run(TABLES_QUERY)
        elif command in (".schema", ".columns"):
            if len(arguments) != 1:
                self._fail(f"{command} takes one table or view name, e.g. {command} prompts")
            else:
                self._columns(arguments[0].strip('"'))
        else:
            self._fail(f"unknown command {command}; .help lists the commands")
        return True

    def _columns(self, name: str) -> None:
        result = self._result(columns_query(name))
        if result is None:
            return
        if result.rows:
            self.output.result(result)
        else:
            self._fail(f"no table or view named {name!r}; .tables lists them")

    def _run(self, query: str) -> None:
        result = self._result(query)
        if result is not None:
            self.output.result(result)

    def _result(self, query: str) -> QueryResult | None:
        """The query's result, or None once its error is printed; a signal that must end the
        session (SIGTERM; with stdin piped, SIGINT too) raises :class:`QueryInterrupted`."""
        result, error = None, None
        with interrupting((signal.SIGINT, signal.SIGTERM), self.con) as interrupts:
            try:
                result = execute(self.con, query, self.timeout)
            except CharterError as exc:
                error = str(exc)
        for signum in interrupts.received:
            if signum == signal.SIGTERM or not self.interactive:
                raise QueryInterrupted(signum)
        if error is not None:
            self._fail(error)
        return result

    def _fail(self, message: str) -> None:
        self.failures += 1
        message = one_line(message)
        self.output.error(message if self.interactive else f"line {self.line_number}: {message}")


@contextlib.contextmanager
def line_editing(history: Path) -> Iterator[Callable[[str], str]]:
    """``input`` with the stdlib's readline (editing, and history kept in ``history``); a history
    that cannot be read or written only costs the history."""
    import readline  # importing it is what makes input() edit lines

    with contextlib.suppress(OSError):
        readline.read_history_file(history)
    readline.set_history_length(1000)
    try:
        yield input
    finally:
        with contextlib.suppress(OSError):
            history.parent.mkdir(parents=True, exist_ok=True)
            readline.write_history_file(history)


def stream_lines(stream: TextIO) -> Callable[[str], str]:
    """Lines of a piped ``stream``, read without a prompt; EOFError at its end, as input() raises."""

    def read_line(prompt: str) -> str:
        line = stream.readline()
        if not line:
            raise EOFError
        return line.rstrip("\r\n")

    return read_line


def _end_session(signum: int, frame: object) -> None:
    raise QueryInterrupted(signum)


def run_session(store: Store, settings: SqlSettings, output: ShellOutput, stdin: TextIO | None = None) -> int:
    """What ``charter sql --interactive`` runs; its exit status: 0, or 1 when stdin is piped and a
    statement failed. A signal that ends the session raises :class:`QueryInterrupted` after the
    session's folder is removed."""
    stdin = stdin or sys.stdin
    interactive = stdin.isatty()
    try:
        with handling_signals((signal.SIGTERM,), _end_session), readonly_connection(store, settings) as con:
            shell = SqlShell(con, output, timeout=settings.timeout, interactive=interactive)
            if interactive:
                with line_editing(cache_root() / HISTORY_FILE) as read_line:
                    shell.run(read_line)
            else:
                shell.run(stream_lines(stdin))
    except KeyboardInterrupt:  # while the catalog opens, or anywhere with stdin piped
        raise QueryInterrupted(signal.SIGINT) from None
    return 1 if shell.failures and not interactive else 0
