"""Prefect task wrapper for the merge: one task, because the merge is one consistent decision."""

from __future__ import annotations

from typing import Any

from prefect import task

from tasks.merge.policy import MergeSettings
from tasks.merge.preference_sets import merge_store
from tasks.orchestration.task_options import task_context, task_options


@task(name="merge-labels", **task_options())
def merge_labels(
    store_root: str, run_id: str, policy: MergeSettings, prompt_set: str | None, families: list[str] | None
) -> dict[str, Any]:
    """Merge the stored labels under ``policy`` and write the set (rows first, then its record).

    The set's record is written last, so a set listed in ``preference_sets`` is complete; a
    crash in between leaves rows that the rerun (same id) completes without duplicating.
    """
    run = task_context(store_root, run_id)
    result = merge_store(run.store, policy, prompt_set, families)
    run.append("preferences", result.rows)
    run.append("preference_sets", [result.set_row])
    return {
        **run.outcome(),
        "set_id": result.set_id,
        "rows": len(result.rows),
        "dropped": dict(result.dropped),
        # Rules people contradicted often enough that the merge let them decide nothing.
        "untrusted_rules": {
            rule: round(confidence, 4)
            for rule, confidence in result.rule_confidence.items()
            if confidence <= policy.rule_min_confidence
        },
    }
