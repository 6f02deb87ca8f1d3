"""The impact flow: the stored labels a constitution edit touches, judged again under the edit,
and what that changes (the ``impact`` view, a merge under each version, a report)."""

from __future__ import annotations

from dataclasses import dataclass

from prefect import flow, get_run_logger
from prefect.runtime import flow_run

from flows.results import BatchedResult
from tasks.backends.settings import BackendSettings, concrete
from tasks.constitution.model import load_constitution
from tasks.impact.prefect_tasks import label_without_model, plan_rejudging, rejudge_batch, summarise_impact
from tasks.impact.record import ImpactSummary
from tasks.impact.settings import ImpactSettings
from tasks.ingest.prefect_tasks import import_constitution
from tasks.label.judge import JudgeSettings
from tasks.merge.policy import MergeSettings
from tasks.orchestration.runners import run_batches
from tasks.store.runs import recorded_run
from tasks.store.store import Store

# What the no-model task reports doing, recorded with the model's share ("judged") in the summary.
WORK_COUNTS = ("carried", "rule_labels", "rechecked_pairs")


@dataclass(frozen=True, kw_only=True)
class ImpactResult(BatchedResult):
    summary: ImpactSummary
    report_html: str
    report_markdown: str


@flow(name="impact")
def impact(
    store: str,
    constitution: str,
    against: str,
    backend: BackendSettings | None = None,
    judge: JudgeSettings | None = None,
    policy: MergeSettings | None = None,
    batch_size: int = ImpactSettings().batch_size,
) -> ImpactResult:
    """Judge the labels made under ``against`` (OLD) whose principle ``constitution`` (NEW) changed.

    ``backend`` and ``judge`` are the judge the labels were made with: labels another judge made
    are counted and kept, not judged. ``policy`` is the merge policy both merges use.
    """
    spec = concrete(backend or BackendSettings())
    judge = judge or JudgeSettings()
    policy = policy or MergeSettings()
    sources = (against, constitution)
    old, new = (load_constitution(path) for path in sources)
    target = Store.existing(store)
    root = str(target.root)
    parameters = {
        "against": against,
        "constitution": constitution,
        # The impact view finds measured edits by these two ids.
        "old_constitution_id": old.constitution_id,
        "new_constitution_id": new.constitution_id,
        "backend": spec.model_dump(),
        "judge": judge.model_dump(),
        "policy": policy.model_dump(mode="json"),
        "batch_size": batch_size,
    }
    logger = get_run_logger()
    with recorded_run(target, "impact", parameters, run_id=flow_run.get_id()) as run:
        for path in sources:
            run.merge(import_constitution(root, run.run_id, path))
        if judge.template_path:
            run.add_input(judge.template_path)
        plan = plan_rejudging(root, sources, spec, judge, batch_size)
        done = label_without_model(root, run.run_id, sources, spec, judge)
        run.merge(done)
        pending = plan["pending"]
        logger.info(
            "%d labels to judge again in %d batches (%d to run); %d verdicts carried over; "
            "rules checked again on %d pairs",
            plan["judged"],
            len(plan["batches"]),
            len(pending),
            done["carried"],
            done["rechecked_pairs"],
        )
        calls = [(root, run.run_id, sources, spec, judge, plan["batches"][index]) for index in pending]
        for outcome in run_batches(None, spec, rejudge_batch, calls):
            run.merge(outcome)
        work = {"judged": plan["judged"], **{k: done[k] for k in WORK_COUNTS}}
        report = summarise_impact(root, run.run_id, sources, spec, judge, policy, work)
    return ImpactResult(
        run_id=run.run_id,
        rows_added=dict(run.rows_added),
        batches=len(plan["batches"]),
        batches_skipped=len(plan["batches"]) - len(pending),
        summary=report["summary"],
        report_html=report["html"],
        report_markdown=report["markdown"],
    )
