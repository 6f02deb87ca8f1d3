"""The race between candidate policies (``charter compare``), as a recorded flow run.

Each candidate and its base answer the same held-out prompts with the same seeds; the result
(:mod:`tasks.evaluate.compare`) is saved under ``STORE/compare/<id>/compare.json``, and the same
race asked again is read back from there instead of being run twice.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

from prefect import flow, get_run_logger
from prefect.runtime import flow_run

from tasks.backends.settings import BackendSettings
from tasks.evaluate.compare import ComparisonSettings
from tasks.evaluate.prefect_tasks import compare_task
from tasks.evaluate.settings import CompareSettings
from tasks.store.runs import recorded_run
from tasks.store.store import Store


@dataclass(frozen=True, kw_only=True)
class CompareResult:
    run_id: str
    path: str
    """The race's ``compare.json``."""
    reused: bool
    """Whether an earlier run had already raced exactly these candidates with these inputs."""
    compare: dict[str, Any]
    """The race: ``standings`` (one row per entrant), ``win_matrix``, per-family ``families``, each
    candidate's scoreboard against its base (``candidates``: principles, length check, stress),
    ``preferences`` (accuracy per candidate), ``lineage``, and every response."""


@flow(name="compare")
def compare_policies(
    store: str,
    checkpoints: list[str],
    constitution: str,
    prompts: str,
    reward_model: str | None = None,
    preferences: str | None = None,
    settings: CompareSettings | None = None,
    judge_model: BackendSettings | None = None,
) -> CompareResult:
    """Race policy checkpoints (dpo, ppo, grpo, sft) and their bases on held-out prompts."""
    race = ComparisonSettings(
        checkpoints=tuple(checkpoints),
        constitution_path=constitution,
        prompt_set=prompts,
        reward_model=reward_model,
        preferences=preferences,
        judge_model=judge_model or BackendSettings(),
        **(settings or CompareSettings()).model_dump(),
    )
    target = Store.existing(store)
    with recorded_run(target, "compare", race.model_dump(), run_id=flow_run.get_id()) as run:
        for path in (constitution, race.stress, preferences):
            if path and Path(path).is_file():  # --preferences may name a stored set instead
                run.add_input(path)
        done = compare_task(str(target.root), race)
    get_run_logger().info("race of %d candidates: %s", len(checkpoints), done["path"])
    compare = {k: v for k, v in done.items() if k not in ("path", "reused")}
    return CompareResult(run_id=run.run_id, path=done["path"], reused=done["reused"], compare=compare)
