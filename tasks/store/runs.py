"""Run lineage: every flow run writes a 'started' and a closing event to the ``runs`` table.

The events record the parameters, the code version, the constitutions and the content
hashes of every input file, so any row (which carries ``run_id``) can be traced back to
exactly what produced it, including runs that crashed. The closing event says how the run
ended: ``completed``, ``failed`` (an error) or ``cancelled`` (stopped from outside: SIGINT,
SIGTERM, a flow run cancelled through Prefect). A run killed outright (SIGKILL, a lost machine)
writes none; each event also names the process that wrote it (host, pid and when the kernel
started it), so :func:`run_liveness` can tell such a run from one still running.
"""

from __future__ import annotations

import contextlib
import json
import os
import socket
import subprocess
import uuid
from collections import Counter
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from functools import cache
from importlib.metadata import PackageNotFoundError, version
from pathlib import Path
from typing import Any

import duckdb

from tasks.core.hashing import content_id, file_sha256
from tasks.store.store import Store

PROC = Path("/proc")


@cache
def code_version() -> str:
    """``charter <version>`` plus the git commit of the source tree when there is one."""
    try:
        text = f"charter {version('charter')}"
    except PackageNotFoundError:
        text = "charter (not installed)"
    source = str(Path(__file__).resolve().parent.parent)

    def git(*args: str) -> str:
        return subprocess.run(
            ["git", "-C", source, *args], capture_output=True, text=True, timeout=5, check=True
        ).stdout.strip()

    try:
        commit = git("rev-parse", "--short=12", "HEAD")
        dirty = git("status", "--porcelain", "--untracked-files=no")
    except (OSError, subprocess.SubprocessError):
        return text
    return f"{text} ({commit}{'-dirty' if dirty else ''})"


@dataclass
class RunContext:
    """What a run has done so far; tasks add to it as they write."""

    run_id: str
    flow: str
    store: Store
    parameters: dict[str, Any]
    input_hashes: dict[str, str] = field(default_factory=dict)
    constitution_ids: set[str] = field(default_factory=set)
    rows_added: Counter[str] = field(default_factory=Counter)

    def add_input(self, path: str | Path) -> str:
        digest = file_sha256(path)
        self.input_hashes[str(Path(path).resolve())] = digest
        return digest

    def append(self, table: str, rows: Any) -> int:
        added = self.store.append(table, rows, self.run_id)
        self.rows_added[table] += added
        return added

    def outcome(self) -> dict[str, Any]:
        """What this context recorded, as plain data a Prefect task can return to its flow."""
        return {
            "rows_added": dict(self.rows_added),
            "input_hashes": dict(self.input_hashes),
            "constitution_ids": sorted(self.constitution_ids),
        }

    def merge(self, outcome: dict[str, Any]) -> None:
        """Fold a task's :meth:`outcome` into the flow run's record."""
        self.rows_added.update(outcome["rows_added"])
        self.input_hashes.update(outcome["input_hashes"])
        self.constitution_ids.update(outcome["constitution_ids"])

    def _event(self, status: str, error: str | None = None) -> dict[str, Any]:
        return {
            "event_id": content_id("run_event", {"run_id": self.run_id, "status": status}),
            "flow": self.flow,
            "status": status,
            "parameters": json.dumps(self.parameters, sort_keys=True, default=str),
            "code_version": code_version(),
            "constitution_ids": sorted(self.constitution_ids),
            "input_hashes": json.dumps(self.input_hashes, sort_keys=True),
            "rows_added": json.dumps(dict(sorted(self.rows_added.items()))) if status != "started" else None,
            "error": error,
            "host": socket.gethostname(),
            "pid": os.getpid(),
            "process_start": process_start(os.getpid()),
        }


@contextmanager
def recorded_run(
    store: Store, flow: str, parameters: dict[str, Any], run_id: str | None = None
) -> Iterator[RunContext]:
    """Record a run's start and end around its body: completed, failed with the error, or cancelled.

    Only an ``Exception`` is a failure. The other ``BaseException``s come from outside the work:
    :class:`tasks.orchestration.stopping.Stopped` (SIGINT or SIGTERM), Prefect's
    ``TerminationSignal`` (SIGTERM during a flow run, or its runner cancelling the flow run),
    ``KeyboardInterrupt``, ``SystemExit``: the run was cancelled, and says by what.
    """
    context = RunContext(run_id=run_id or str(uuid.uuid4()), flow=flow, store=store, parameters=parameters)
    store.append("runs", [context._event("started")], context.run_id)
    try:
        yield context
    except Exception as exc:
        store.append("runs", [context._event("failed", f"{type(exc).__name__}: {exc}")], context.run_id)
        raise
    except BaseException as exc:
        reason = f"{type(exc).__name__}: {exc}" if str(exc) else type(exc).__name__
        store.append("runs", [context._event("cancelled", reason)], context.run_id)
        raise
    store.append("runs", [context._event("completed")], context.run_id)


def process_start(pid: int) -> str | None:
    """The kernel's mark of when process ``pid`` started (``<boot id>:<start time in ticks>``).

    A pid is reused once its process is gone; the start time since boot, with the boot's id,
    is not, so it tells the process that wrote a run's events from a later one with its pid.
    None where there is no such process, or no ``/proc`` (not Linux): then nothing can be told.
    """
    try:
        stat = (PROC / str(pid) / "stat").read_text()
        boot_id = (PROC / "sys" / "kernel" / "random" / "boot_id").read_text().strip()
    except OSError:
        return None
    # Fields after the parenthesised command name (which may hold spaces): state is field 3,
    # the start time field 22. A zombie (killed, not yet reaped) no longer runs.
    fields = stat.rsplit(")", 1)[1].split()
    if fields[0] in ("Z", "X"):
        return None
    return f"{boot_id}:{fields[19]}"


def run_liveness(store: Store) -> dict[str, bool]:
    """For each run still open (no closing event) begun on this machine: is its process alive?

    What the SQL catalog's ``run_liveness`` table holds (``run_id``, ``alive``), from which
    the ``run_summary`` view tells ``running`` from ``died``. A run left open by a process that
    is gone was killed (SIGKILL, the OOM killer) or lost its machine. Runs begun on another
    machine (a shared store) or recorded before events named their process are left out:
    nothing here can tell whether they still run.
    """
    files = [str(path) for path in store.files("runs")]
    process = ["run_id", "status", "host", "pid", "process_start"]
    rows: list[dict[str, Any]] = []
    # Tuples through DuckDB, not Arrow: ``charter sql`` comes here on every query without pyarrow.
    with contextlib.closing(duckdb.connect()) as con:
        if files:
            query = "select * from read_parquet($files, union_by_name = true)"
            events = con.sql(query, params={"files": files})
            # Files written before events named their process lack those columns: nothing to check.
            if set(process) <= set(events.columns):
                rows = [dict(zip(process, row, strict=True)) for row in events.select(*process).fetchall()]
    closed = {row["run_id"] for row in rows if row["status"] != "started"}
    host = socket.gethostname()
    return {
        row["run_id"]: process_start(row["pid"]) == row["process_start"]
        for row in rows
        if row["status"] == "started"
        and row["run_id"] not in closed
        and row["host"] == host
        and row["process_start"] is not None
    }


def live_run_ids(store: Store) -> set[str]:
    """The runs whose process is running now, on this machine (see :func:`run_liveness`)."""
    return {run_id for run_id, alive in run_liveness(store).items() if alive}
