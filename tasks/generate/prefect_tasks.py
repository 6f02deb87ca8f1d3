"""Prefect task wrappers for generation: choose the prompts, plan the batches, then one task per batch."""

from __future__ import annotations

from collections.abc import Mapping
from datetime import UTC, datetime
from typing import Any

from prefect import task

from tasks.backends.base import SamplingSettings
from tasks.backends.registry import open_backend
from tasks.backends.settings import BackendSettings, model_identity
from tasks.core.conversation import Message
from tasks.generate.generation import PromptItem, batches, generate_rows, pending_batches, select_prompts
from tasks.generate.selection import GenerationIdentity, Selection, SelectionSettings, resolve_selection
from tasks.orchestration.task_options import task_context, task_options
from tasks.store.store import Store


def _item(data: dict[str, Any]) -> PromptItem:
    messages: tuple[Message, ...] = tuple(data["messages"])
    return PromptItem(prompt_id=data["prompt_id"], family=data["family"], messages=messages)


@task(name="choose-prompts", **task_options())
def choose_prompts(
    store_root: str,
    prompts: str,
    settings: SelectionSettings,
    spec: BackendSettings,
    sampling: dict[str, Any],
    families: list[str] | None,
    limit: int | None,
    flow: str,
    scope: Mapping[str, Any],
) -> Selection:
    """Resolve a selection against the store as it is now, with today's UTC date for ``seed: date``."""
    identity = GenerationIdentity(model_identity(spec).model_id, spec.kind, SamplingSettings(**sampling))
    return resolve_selection(
        Store(store_root),
        prompts,
        settings,
        identity,
        families=families,
        limit=limit,
        flow=flow,
        scope=scope,
        today=datetime.now(UTC).date(),
    )


@task(name="plan-generation", **task_options())
def plan_generation(
    store_root: str,
    prompt_set: str,
    spec: BackendSettings,
    sampling: dict[str, Any],
    batch_size: int,
    families: list[str] | None,
    limit: int | None,
    prompt_ids: list[str] | None = None,
) -> dict[str, Any]:
    """The fixed batches of the prompt selection and which of them still need generating."""
    store = Store(store_root)
    items = select_prompts(store, prompt_set, families=families, limit=limit, prompt_ids=prompt_ids)
    planned = batches(items, batch_size)
    model_id = model_identity(spec).model_id
    todo = pending_batches(store, planned, model_id, spec.kind, SamplingSettings(**sampling))
    return {
        "model_id": model_id,
        "prompts": len(items),
        "batches": [[vars(item) for item in batch] for batch in planned],
        "pending": todo,
    }


@task(name="generate-batch", **task_options())
def generate_batch(
    store_root: str, run_id: str, spec: BackendSettings, batch: list[dict[str, Any]], sampling: dict[str, Any]
) -> dict[str, Any]:
    """Sample one batch and append it in one atomic write."""
    run = task_context(store_root, run_id)
    rows = generate_rows(open_backend(spec), [_item(item) for item in batch], SamplingSettings(**sampling))
    run.append("generations", rows)
    return run.outcome()
