"""Prefect task wrapper: bench labels reach the store before anything reads human labels."""

from __future__ import annotations

from typing import Any

from prefect import task

from tasks.orchestration.task_options import task_context, task_options
from tasks.review.labels import publish_pending


@task(name="publish-review-labels", **task_options())
def publish_review_labels(store_root: str, run_id: str) -> dict[str, Any]:
    """Publish the review bench's unpublished labels under this run (none: nothing happens).

    The bench publishes every few seconds while it serves; this catches the labels of a bench
    that was killed, or is still running, so a merge right after labelling sees every label.
    """
    run = task_context(store_root, run_id)
    publish_pending(run.store, run)
    return run.outcome()
