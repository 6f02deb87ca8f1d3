"""What every charter Prefect task shares: retry policy and caching."""

from __future__ import annotations

from typing import Any

from tasks.core.errors import CharterError
from tasks.store.runs import RunContext
from tasks.store.store import Store


def retry_unless_input_error(task: Any, task_run: Any, state: Any) -> bool:
    """Retry transient failures (I/O, a flaky server), never a user error: it would only fail again."""
    return not isinstance(state.data, CharterError)


def task_options(retries: int = 2) -> dict[str, Any]:
    """Keyword arguments for ``@task``: retries on transient errors, no result cache.

    Idempotence comes from content-addressed rows, not from Prefect's result cache, so
    a retried or re-run task recomputes and the store drops what already exists.
    """
    from prefect.cache_policies import NO_CACHE

    return {
        "retries": retries,
        "retry_delay_seconds": 2,
        "retry_condition_fn": retry_unless_input_error,
        "cache_policy": NO_CACHE,
    }


def task_context(store_root: str, run_id: str) -> RunContext:
    """A task's view of its flow run: it appends with the run's id and reports what it added.

    Only the flow writes the run's events; the task's context returns its counts to the flow.
    """
    return RunContext(run_id=run_id, flow="task", store=Store(store_root), parameters={})
