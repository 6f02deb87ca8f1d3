"""Prefect task wrappers for ingestion: thin, so the work itself stays in :mod:`tasks.ingest.ingest`.

Tasks take and return plain data (store path, run id, file paths; row counts and input
hashes), so they run the same under any Prefect task runner.
"""

from __future__ import annotations

from typing import Any

from prefect import task

from tasks.ingest.ingest import ingest_constitution, ingest_label_file, ingest_prompt_set
from tasks.ingest.label_files import LabelFileSettings
from tasks.orchestration.task_options import task_context, task_options


@task(name="import-constitution", **task_options())
def import_constitution(store_root: str, run_id: str, path: str) -> dict[str, Any]:
    run = task_context(store_root, run_id)
    ingest_constitution(run, path)
    return run.outcome()


@task(name="import-prompt-set", **task_options())
def import_prompt_set(store_root: str, run_id: str, path: str) -> dict[str, Any]:
    run = task_context(store_root, run_id)
    ingest_prompt_set(run, path)
    return run.outcome()


@task(name="import-label-file", **task_options())
def import_label_file(store_root: str, run_id: str, spec: LabelFileSettings) -> dict[str, Any]:
    run = task_context(store_root, run_id)
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
