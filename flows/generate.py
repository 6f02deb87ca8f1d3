"""The generate flow: N sampled responses per prompt, one Prefect task per batch of prompts."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from prefect import flow, get_run_logger
from prefect.runtime import flow_run

from flows.results import BatchedResult
from tasks.backends.settings import BackendSettings, concrete
from tasks.generate.prefect_tasks import choose_prompts, generate_batch, plan_generation
from tasks.generate.selection import SelectionSettings
from tasks.generate.settings import GenerateSettings
from tasks.ingest.prefect_tasks import import_prompt_set
from tasks.ingest.prompt_sets import default_prompt_set_name
from tasks.orchestration.runners import RunnerSettings, run_batches
from tasks.store.runs import recorded_run
from tasks.store.store import Store


@dataclass(frozen=True, kw_only=True)
class GenerateResult(BatchedResult):
    backend: str
    model_id: str
    prompts: int
    selected: str = ""
    """How ``select`` chose the prompts, in one line (e.g. that the set is exhausted); empty for ``all``."""


@flow(name="generate")
def generate(
    store: str,
    prompts: str,
    backend: BackendSettings | None = None,
    settings: GenerateSettings | None = None,
    families: list[str] | None = None,
    limit: int | None = None,
    runner: RunnerSettings | None = None,
    selection: SelectionSettings | None = None,
    prompt_ids: list[str] | None = None,
) -> GenerateResult:
    """``prompts`` is a prompt set in the store or a prompt-set JSONL file (imported first).

    ``selection`` says which prompts (default ``all``: the first ``limit`` of the set); any other
    is resolved once, before the run starts, and recorded in its parameters. ``prompt_ids``
    takes exactly those prompts, in that order: the pipeline resolves its selection once for
    every stage and passes it here. ``runner`` says where the batches run (default: in order,
    in this process). It changes no row, so it is not one of the parameters the run records.
    """
    spec = concrete(backend or BackendSettings())
    settings = settings or GenerateSettings()
    sampling = settings.sampling_values()
    target = Store.create(store)
    root = str(target.root)
    parameters = {
        "prompts": prompts,
        "backend": spec.model_dump(),
        "sampling": sampling,
        "batch_size": settings.batch_size,
        "families": families,
        "limit": limit,
    }
    logger = get_run_logger()
    chosen = None
    if prompt_ids is not None:
        parameters["prompt_ids"] = prompt_ids
    elif selection is not None and selection.select != "all":
        chosen = choose_prompts(root, prompts, selection, spec, sampling, families, limit, "generate", {})
        prompt_ids = list(chosen.prompt_ids)
        parameters["selection"] = chosen.record()
        logger.info("%s", chosen.summary)
    logger.info("backend %s, model %s", spec.kind, spec.model or "embedded default")
    with recorded_run(target, "generate", parameters, run_id=flow_run.get_id()) as run:
        prompt_set = prompts
        if Path(prompts).is_file():
            run.merge(import_prompt_set(root, run.run_id, prompts))
            prompt_set = default_prompt_set_name(prompts)
        plan = plan_generation(
            root, prompt_set, spec, sampling, settings.batch_size, families, limit, prompt_ids
        )
        pending = plan["pending"]
        logger.info(
            "%d prompts in %d batches; %d already generated, %d to go",
            plan["prompts"],
            len(plan["batches"]),
            len(plan["batches"]) - len(pending),
            len(pending),
        )
        calls = [(root, run.run_id, spec, plan["batches"][index], sampling) for index in pending]
        for outcome in run_batches(runner, spec, generate_batch, calls):
            run.merge(outcome)
    return GenerateResult(
        run_id=run.run_id,
        rows_added=dict(run.rows_added),
        batches=len(plan["batches"]),
        batches_skipped=len(plan["batches"]) - len(pending),
        backend=spec.kind,
        model_id=plan["model_id"],
        prompts=plan["prompts"],
        selected=chosen.summary if chosen else "",
    )
