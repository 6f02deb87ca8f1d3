"""Prefect task wrappers for critique/revision: plan batches of generations, then one task per batch."""

from __future__ import annotations

from typing import Any

from prefect import task

from tasks.backends.registry import open_backend
from tasks.backends.settings import BackendSettings
from tasks.constitution.model import load_constitution
from tasks.critique.chains import run_rounds
from tasks.critique.plan import chain_states
from tasks.critique.settings import CritiqueSettings
from tasks.orchestration.task_options import task_context, task_options
from tasks.store.store import Store


@task(name="plan-critique", **task_options())
def plan_critique(
    store_root: str,
    selection: dict[str, Any],
    constitution_path: str,
    settings: CritiqueSettings,
    spec: BackendSettings,
) -> dict[str, Any]:
    """Fixed batches of generation ids (``settings.batch_size`` each), and which still have rounds to run."""
    states = chain_states(Store(store_root), None, selection, constitution_path, settings, spec)
    ids = [state.item.generation_id for state in states]
    unfinished = {state.item.generation_id for state in states if state.next_round < settings.rounds}
    size = settings.batch_size
    planned = [ids[i : i + size] for i in range(0, len(ids), size)]
    return {
        "generations": len(ids),
        "batches": planned,
        "pending": [index for index, batch in enumerate(planned) if unfinished.intersection(batch)],
    }


@task(name="critique-batch", **task_options())
def critique_batch(
    store_root: str,
    run_id: str,
    selection: dict[str, Any],
    constitution_path: str,
    settings: CritiqueSettings,
    spec: BackendSettings,
    generation_ids: list[str],
) -> dict[str, Any]:
    """Run the missing rounds of one batch of generations and append them in one atomic write."""
    run = task_context(store_root, run_id)
    states = chain_states(run.store, set(generation_ids), selection, constitution_path, settings, spec)
    rows = run_rounds(open_backend(spec), states, load_constitution(constitution_path), settings.config())
    run.append("critiques", rows)
    return run.outcome()
