"""The critique flow: k rounds of critique -> revision per generation, one Prefect task per batch."""

from __future__ import annotations

from dataclasses import dataclass

from prefect import flow, get_run_logger
from prefect.runtime import flow_run

from flows.results import BatchedResult
from tasks.backends.settings import BackendSettings, concrete
from tasks.critique.prefect_tasks import critique_batch, plan_critique
from tasks.critique.settings import CritiqueSettings
from tasks.ingest.prefect_tasks import import_constitution
from tasks.orchestration.runners import RunnerSettings, run_batches
from tasks.store.runs import recorded_run
from tasks.store.store import Store


@dataclass(frozen=True, kw_only=True)
class CritiqueResult(BatchedResult):
    generations: int


@flow(name="critique")
def critique(
    store: str,
    prompts: str,
    constitution: str,
    backend: BackendSettings | None = None,
    settings: CritiqueSettings | None = None,
    families: list[str] | None = None,
    limit: int | None = None,
    runner: RunnerSettings | None = None,
    prompt_ids: list[str] | None = None,
) -> CritiqueResult:
    """Critique and revise the stored generations of a prompt set against ``constitution`` (a YAML path).

    ``runner`` says where the batches run (default: in order, in this process); it changes no
    row, so it is not one of the parameters the run records.
    """
    spec = concrete(backend or BackendSettings())
    settings = settings or CritiqueSettings()
    selection = {"prompt_set": prompts, "families": families, "limit": limit, "prompt_ids": prompt_ids}
    target = Store.create(store)
    parameters = {
        "constitution": constitution,
        "backend": spec.model_dump(),
        **selection,
        **settings.model_dump(),
    }
    logger = get_run_logger()
    with recorded_run(target, "critique", parameters, run_id=flow_run.get_id()) as run:
        run.merge(import_constitution(str(target.root), run.run_id, constitution))
        if settings.few_shot_path:
            run.add_input(settings.few_shot_path)
        plan = plan_critique(str(target.root), selection, constitution, settings, spec)
        pending = plan["pending"]
        logger.info(
            "%d generations in %d batches; %d batches to run",
            plan["generations"],
            len(plan["batches"]),
            len(pending),
        )
        calls = [
            (str(target.root), run.run_id, selection, constitution, settings, spec, plan["batches"][index])
            for index in pending
        ]
        for outcome in run_batches(runner, spec, critique_batch, calls):
            run.merge(outcome)
    return CritiqueResult(
        run_id=run.run_id,
        rows_added=dict(run.rows_added),
        batches=len(plan["batches"]),
        batches_skipped=len(plan["batches"]) - len(pending),
        generations=plan["generations"],
    )
