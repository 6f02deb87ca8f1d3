"""Prefect task wrappers for the AI judge: plan, rule labels, then one task per batch of pairs."""

from __future__ import annotations

from typing import Any

from prefect import task

from tasks.backends.registry import open_backend
from tasks.backends.settings import BackendSettings
from tasks.constitution.model import load_constitution
from tasks.label.judge import JudgeSettings, judge, rule_labels
from tasks.label.pairs import PairSettings, plan_pairs
from tasks.label.plan import comparison_batches, label_plan
from tasks.orchestration.task_options import task_context, task_options
from tasks.store.store import Store


@task(name="plan-labels", **task_options())
def plan_labels(
    store_root: str,
    selection: dict[str, Any],
    pair_settings: PairSettings,
    constitution_path: str,
    judge_settings: JudgeSettings,
    spec: BackendSettings,
    batch_size: int,
) -> dict[str, Any]:
    """The fixed batches of label ids, which are not yet stored, and what pairing skipped."""
    store = Store(store_root)
    constitution = load_constitution(constitution_path)
    plan = label_plan(store, selection, pair_settings, constitution, judge_settings, spec)
    existing = set(store.read("ai_labels", ["label_id"]).column("label_id").to_pylist())
    batches = comparison_batches(plan.comparisons, batch_size)
    return {
        "pairs": len(plan.pairs.pairs),
        "skipped": dict(plan.pairs.skipped),
        "batches": batches,
        "pending": [index for index, batch in enumerate(batches) if not set(batch) <= existing],
    }


@task(name="rule-labels", **task_options())
def label_by_rules(
    store_root: str,
    run_id: str,
    selection: dict[str, Any],
    pair_settings: PairSettings,
    constitution_path: str,
) -> dict[str, Any]:
    """Deterministic labels from the constitution's rules for every pair: cheap, so in one write."""
    run = task_context(store_root, run_id)
    pairs = plan_pairs(run.store, selection, pair_settings).pairs
    run.append("ai_labels", rule_labels(pairs, load_constitution(constitution_path)))
    return run.outcome()


@task(name="judge-batch", **task_options())
def judge_batch(
    store_root: str,
    run_id: str,
    selection: dict[str, Any],
    pair_settings: PairSettings,
    constitution_path: str,
    judge_settings: JudgeSettings,
    spec: BackendSettings,
    label_ids: list[str],
) -> dict[str, Any]:
    """Judge one batch of comparisons (both orders each) and append the labels in one atomic write."""
    run = task_context(store_root, run_id)
    constitution = load_constitution(constitution_path)
    plan = label_plan(run.store, selection, pair_settings, constitution, judge_settings, spec)
    wanted = set(label_ids)
    batch = [c for c in plan.comparisons if c.label_id in wanted]
    run.append("ai_labels", judge(open_backend(spec), batch, constitution, judge_settings))
    return run.outcome()
