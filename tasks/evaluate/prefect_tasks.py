"""Prefect task wrappers for evaluation: one task per race (a retry restarts it whole)."""

from __future__ import annotations

from typing import Any

from prefect import task

from tasks.evaluate.compare import ComparisonSettings, compare_checkpoints
from tasks.orchestration.task_options import task_options
from tasks.store.store import Store


@task(name="compare-policies", **task_options(retries=0))
def compare_task(store_root: str, settings: ComparisonSettings) -> dict[str, Any]:
    return compare_checkpoints(Store(store_root), settings)
