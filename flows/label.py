"""The label flow: pairs from the store, judged by rules and by an AI judge, into ``ai_labels``."""

from __future__ import annotations

from dataclasses import dataclass

from prefect import flow, get_run_logger
from prefect.runtime import flow_run

from flows.results import BatchedResult
from tasks.backends.settings import BackendSettings, concrete
from tasks.ingest.prefect_tasks import import_constitution
from tasks.label.judge import JudgeSettings
from tasks.label.pairs import PairSettings
from tasks.label.prefect_tasks import judge_batch, label_by_rules, plan_labels
from tasks.label.settings import LabelSettings
from tasks.orchestration.runners import RunnerSettings, run_batches
from tasks.store.runs import recorded_run
from tasks.store.store import Store


@dataclass(frozen=True, kw_only=True)
class LabelResult(BatchedResult):
    pairs: int
    skipped: dict[str, int]
    """Pairs not judged, by reason (``identical responses``)."""


@flow(name="label")
def label(
    store: str,
    constitution: str,
    prompts: str | None = None,
    backend: BackendSettings | None = None,
    pairs: PairSettings | None = None,
    judge: JudgeSettings | None = None,
    batch_size: int = LabelSettings().batch_size,
    families: list[str] | None = None,
    limit: int | None = None,
    runner: RunnerSettings | None = None,
    prompt_ids: list[str] | None = None,
) -> LabelResult:
    """Label pairs of ``prompts``' responses (or the human-labelled pairs) against ``constitution``.

    ``runner`` says where the judge batches run (default: in order, in this process); it
    changes no label, so it is not one of the parameters the run records.
    """
    spec = concrete(backend or BackendSettings())
    pairs = pairs or PairSettings()
    judge = judge or JudgeSettings()
    selection = {"prompt_set": prompts, "families": families, "limit": limit, "prompt_ids": prompt_ids}
    target = Store.create(store)
    parameters = {
        "constitution": constitution,
        "backend": spec.model_dump(),
        "pairs": pairs.model_dump(),
        "judge": judge.model_dump(),
        "batch_size": batch_size,
        **selection,
    }
    logger = get_run_logger()
    with recorded_run(target, "label", parameters, run_id=flow_run.get_id()) as run:
        run.merge(import_constitution(str(target.root), run.run_id, constitution))
        if judge.template_path:
            run.add_input(judge.template_path)
        root = str(target.root)
        plan = plan_labels(root, selection, pairs, constitution, judge, spec, batch_size)
        pending = plan["pending"]
        logger.info(
            "%d pairs (%s skipped); %d judge batches, %d to run",
            plan["pairs"],
            ", ".join(f"{n} {why}" for why, n in plan["skipped"].items()) or "none",
            len(plan["batches"]),
            len(pending),
        )
        if "rule" in judge.methods:
            run.merge(label_by_rules(root, run.run_id, selection, pairs, constitution))
        calls = [
            (root, run.run_id, selection, pairs, constitution, judge, spec, plan["batches"][index])
            for index in pending
        ]
        for outcome in run_batches(runner, spec, judge_batch, calls):
            run.merge(outcome)
    return LabelResult(
        run_id=run.run_id,
        rows_added=dict(run.rows_added),
        batches=len(plan["batches"]),
        batches_skipped=len(plan["batches"]) - len(pending),
        pairs=plan["pairs"],
        skipped=dict(plan["skipped"]),
    )
