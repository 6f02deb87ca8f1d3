"""The merge flow: human and AI labels into one versioned preference set under a declared policy."""

from __future__ import annotations

from dataclasses import dataclass

from prefect import flow, get_run_logger
from prefect.runtime import flow_run

from flows.results import FlowResult
from tasks.merge.policy import MergeSettings
from tasks.merge.prefect_tasks import merge_labels
from tasks.review.prefect_tasks import publish_review_labels
from tasks.store.runs import recorded_run
from tasks.store.store import Store


@dataclass(frozen=True, kw_only=True)
class PreferenceSetResult(FlowResult):
    set_id: str
    rows: int
    dropped: dict[str, int]
    """Pairs the policy dropped, by reason (``tie``, ``below-margin``, ...)."""


@flow(name="merge")
def merge(
    store: str,
    policy: MergeSettings | None = None,
    policy_path: str | None = None,
    prompts: str | None = None,
    families: list[str] | None = None,
) -> PreferenceSetResult:
    """Write the preference set ``policy`` makes of the stored labels; ``policy_path`` is lineage only.

    Labels made in the review bench are published first, so the set uses every one of them.
    """
    policy = policy or MergeSettings()
    target = Store.existing(store)
    parameters = {"policy": policy.model_dump(mode="json"), "prompts": prompts, "families": families}
    with recorded_run(target, "merge", parameters, run_id=flow_run.get_id()) as run:
        if policy_path:
            run.add_input(policy_path)
        run.merge(publish_review_labels(str(target.root), run.run_id))
        outcome = merge_labels(str(target.root), run.run_id, policy, prompts, families)
        run.merge(outcome)
    logger = get_run_logger()
    logger.info(
        "preference set %s: %d rows, dropped %s", outcome["set_id"], outcome["rows"], outcome["dropped"]
    )
    if outcome["untrusted_rules"]:
        logger.warning(
            "rules whose agreement with people is too low to decide (estimated confidence): %s",
            outcome["untrusted_rules"],
        )
    return PreferenceSetResult(
        run_id=run.run_id,
        rows_added=dict(run.rows_added),
        set_id=outcome["set_id"],
        rows=outcome["rows"],
        dropped=dict(outcome["dropped"]),
    )
