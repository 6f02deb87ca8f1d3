"""Prefect task wrappers for ingestion: thin, so the work itself stays in :mod:`tasks.ingest`.

Tasks take and return plain data (store path, run id, file paths; row counts and input
hashes), so they run the same under any Prefect task runner.
"""

from __future__ import annotations

from typing import Any

from prefect import task
from prefect.cache_policies import NO_CACHE

from tasks.errors import CharterError
from tasks.ingest import ingest_constitution, ingest_label_file, ingest_prompt_set
from tasks.label_files import LabelFileSpec
from tasks.runs import RunContext
from tasks.store import Store


def retry_unless_input_error(task: Any, task_run: Any, state: Any) -> bool:
    """Retry transient failures (I/O), never a bad input file: it would fail the same way again."""
    return not isinstance(state.data, CharterError)


_TASK_OPTIONS: dict[str, Any] = {
    "retries": 2,
    "retry_delay_seconds": 1,
    "retry_condition_fn": retry_unless_input_error,
    # Idempotence comes from content-addressed rows, not from Prefect's result cache.
    "cache_policy": NO_CACHE,
}


def _context(store_root: str, run_id: str) -> RunContext:
    return RunContext(run_id=run_id, flow="ingest", store=Store(store_root), parameters={})


@task(name="import-constitution", **_TASK_OPTIONS)
def import_constitution(store_root: str, run_id: str, path: str) -> dict[str, Any]:
    run = _context(store_root, run_id)
    ingest_constitution(run, path)
    return run.outcome()


@task(name="import-prompt-set", **_TASK_OPTIONS)
def import_prompt_set(store_root: str, run_id: str, path: str) -> dict[str, Any]:
    run = _context(store_root, run_id)
    ingest_prompt_set(run, path)
    return run.outcome()


@task(name="import-label-file", **_TASK_OPTIONS)
def import_label_file(store_root: str, run_id: str, spec: LabelFileSpec) -> dict[str, Any]:
    run = _context(store_root, run_id)
    result = ingest_label_file(
        run,
        spec.path,
        spec.format,
        annotator=spec.annotator,
        family=spec.family,
        skip_invalid=spec.skip_invalid,
    )
    return {
        **run.outcome(),
        "rejected": result.rejected,
        "rejects_path": str(result.rejects_path) if result.rejects_path else None,
    }
