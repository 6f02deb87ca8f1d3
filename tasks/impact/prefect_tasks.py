"""Prefect task wrappers for the impact stage: plan, the labels that need no model, one task per
batch of pairs to judge again, then the summary and its report."""

from __future__ import annotations

from typing import Any

from prefect import task

from tasks.backends.registry import open_backend
from tasks.backends.settings import BackendSettings
from tasks.constitution.model import Constitution, load_constitution
from tasks.impact.measure import store_plan, summarise, write_impact_report
from tasks.impact.work import ImpactPlan, rechecked_rules
from tasks.label.judge import JudgeSettings, judge
from tasks.label.plan import comparison_batches
from tasks.merge.policy import MergeSettings
from tasks.orchestration.task_options import task_context, task_options
from tasks.store.store import Store


def _plan(
    store: Store, sources: tuple[str, str], spec: BackendSettings, settings: JudgeSettings
) -> tuple[ImpactPlan, Constitution]:
    """The run's plan from the store as it stands, and NEW; every task derives the same one."""
    old, new = (load_constitution(path) for path in sources)
    return store_plan(store, old, new, spec, settings), new


@task(name="plan-impact", **task_options())
def plan_rejudging(
    store_root: str, sources: tuple[str, str], spec: BackendSettings, settings: JudgeSettings, batch_size: int
) -> dict[str, Any]:
    """The fixed batches of label ids to judge again, and which of them are not stored yet."""
    store = Store(store_root)
    plan, _ = _plan(store, sources, spec, settings)
    existing = set(store.read("ai_labels", ["label_id"]).column("label_id").to_pylist())
    batches = comparison_batches(plan.comparisons, batch_size)
    return {
        "batches": batches,
        "pending": [index for index, batch in enumerate(batches) if not set(batch) <= existing],
        "judged": len(plan.comparisons),
    }


@task(name="label-without-model", **task_options())
def label_without_model(
    store_root: str, run_id: str, sources: tuple[str, str], spec: BackendSettings, settings: JudgeSettings
) -> dict[str, Any]:
    """The carried-over verdicts and NEW's rule labels: deterministic and cheap, so in one write each."""
    run = task_context(store_root, run_id)
    plan, new = _plan(run.store, sources, spec, settings)
    rules = rechecked_rules(plan, new)
    run.append("ai_labels", plan.carried)
    run.append("ai_labels", rules)
    return run.outcome() | {
        "carried": len(plan.carried),
        "rule_labels": len(rules),
        "rechecked_pairs": len(plan.recheck_pairs),
    }


@task(name="rejudge-batch", **task_options())
def rejudge_batch(
    store_root: str,
    run_id: str,
    sources: tuple[str, str],
    spec: BackendSettings,
    settings: JudgeSettings,
    label_ids: list[str],
) -> dict[str, Any]:
    """Judge one batch of pairs again under NEW (both orders each); the labels in one atomic write."""
    run = task_context(store_root, run_id)
    plan, new = _plan(run.store, sources, spec, settings)
    wanted = set(label_ids)
    batch = [comparison for comparison in plan.comparisons if comparison.label_id in wanted]
    run.append("ai_labels", judge(open_backend(spec), batch, new, settings))
    return run.outcome()


@task(name="summarise-impact", **task_options())
def summarise_impact(
    store_root: str,
    run_id: str,
    sources: tuple[str, str],
    spec: BackendSettings,
    settings: JudgeSettings,
    policy: MergeSettings,
    work: dict[str, int],
) -> dict[str, Any]:
    """The figures (the ``impact`` view, two merges in memory) and the report files."""
    store = Store(store_root)
    plan, _ = _plan(store, sources, spec, settings)
    summary = summarise(store, run_id, sources, plan, work, policy)
    paths = write_impact_report(store, summary)
    return {"summary": summary, "html": str(paths.html), "markdown": str(paths.markdown)}
