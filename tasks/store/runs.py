"""Run lineage: every flow run writes a 'started' and a closing event to the ``runs`` table.

The events record the parameters, the code version, the constitutions and the content
hashes of every input file, so any row (which carries ``run_id``) can be traced back to
exactly what produced it, including runs that crashed.
"""

from __future__ import annotations

import json
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

from tasks.core.hashing import content_id, file_sha256
from tasks.store.store import Store


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
        }


@contextmanager
def recorded_run(
    store: Store, flow: str, parameters: dict[str, Any], run_id: str | None = None
) -> Iterator[RunContext]:
    """Record a run's start and end (completed, or failed with the error) around its body."""
    context = RunContext(run_id=run_id or str(uuid.uuid4()), flow=flow, store=store, parameters=parameters)
    store.append("runs", [context._event("started")], context.run_id)
    try:
        yield context
    except BaseException as exc:
        store.append("runs", [context._event("failed", f"{type(exc).__name__}: {exc}")], context.run_id)
        raise
    store.append("runs", [context._event("completed")], context.run_id)
