"""The generate flow: N sampled responses per prompt, one Prefect task per batch of prompts."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from prefect import flow, get_run_logger
from prefect.runtime import flow_run

from tasks.backends.base import SamplingSettings
from tasks.backends.settings import BackendSettings, concrete
from tasks.generate.prefect_tasks import generate_batch, plan_generation
from tasks.ingest.prefect_tasks import import_prompt_set
from tasks.ingest.prompt_sets import default_prompt_set_name
from tasks.orchestration.runners import RunnerSettings, run_batches
from tasks.store.runs import recorded_run
from tasks.store.store import Store


@flow(name="generate")
def generate(
    store: str,
    prompts: str,
    backend: BackendSettings | None = None,
    n: int = 4,
    temperature: float = 0.8,
    top_p: float = 0.95,
    max_tokens: int = 128,
    seed: int = 0,
    batch_size: int = 8,
    families: list[str] | None = None,
    limit: int | None = None,
    runner: RunnerSettings | None = None,
) -> dict[str, Any]:
    """``prompts`` is a prompt set in the store or a prompt-set JSONL file (imported first).

    ``runner`` says where the batches run (default: in order, in this process). It changes no
    row, so it is not one of the parameters the run records.
    """
    spec = concrete(backend or BackendSettings())
    sampling = SamplingSettings(n=n, temperature=temperature, top_p=top_p, max_tokens=max_tokens, seed=seed)
    target = Store.create(store)
    parameters = {
        "prompts": prompts,
        "backend": spec.model_dump(),
        "sampling": sampling.as_dict(),
        "batch_size": batch_size,
        "families": families,
        "limit": limit,
    }
    logger = get_run_logger()
    logger.info("backend %s, model %s", spec.kind, spec.model or "embedded default")
    with recorded_run(target, "generate", parameters, run_id=flow_run.get_id()) as run:
        prompt_set = prompts
        if Path(prompts).is_file():
            run.merge(import_prompt_set(str(target.root), run.run_id, prompts))
            prompt_set = default_prompt_set_name(prompts)
        plan = plan_generation(
            str(target.root), prompt_set, spec, sampling.as_dict(), batch_size, families, limit
        )
        pending = plan["pending"]
        logger.info(
            "%d prompts in %d batches; %d already generated, %d to go",
            plan["prompts"],
            len(plan["batches"]),
            len(plan["batches"]) - len(pending),
            len(pending),
        )
        root, settings = str(target.root), sampling.as_dict()
        calls = [(root, run.run_id, spec, plan["batches"][index], settings) for index in pending]
        for outcome in run_batches(runner, spec, generate_batch, calls):
            run.merge(outcome)
    return {
        "run_id": run.run_id,
        "backend": spec.kind,
        "model_id": plan["model_id"],
        "prompts": plan["prompts"],
        "batches": len(plan["batches"]),
        "batches_skipped": len(plan["batches"]) - len(pending),
        "rows_added": dict(run.rows_added),
    }
