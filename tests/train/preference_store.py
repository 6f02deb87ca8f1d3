"""A store with a small preference set of known soft targets, made by the real merge (no Prefect)."""

from __future__ import annotations

from pathlib import Path

from tasks.constitution.model import load_constitution
from tasks.label.judge import rule_labels
from tasks.label.pairs import PairSettings, plan_pairs
from tasks.merge.policy import MergeSettings
from tasks.merge.preference_sets import merge_store
from tasks.store.store import Store
from tests.conftest import PROJECT_ROOT
from tests.rule_cases import store_with_rule_cases

CONSTITUTION = PROJECT_ROOT / "constitutions" / "healthcare-scheduling.yaml"


def store_with_soft_set(root: Path, p_chosen: float = 0.8) -> tuple[Store, str]:
    """The rule cases' pairs decided by a judge ``p_chosen`` sure of the rule-keeping response.

    The rules' certain labels are turned into log-prob judge labels of that confidence, so the
    merged rows have target ``p_chosen`` (confidence ``|2 * p_chosen - 1|``). Returns the store
    and the set's id.
    """
    store = store_with_rule_cases(root)
    pairs = plan_pairs(store, {"prompt_set": "rules"}, PairSettings()).pairs
    labels = [
        label
        | {"method": "logprob", "judge_model": "fixture-judge", "rule_id": None}
        | {key: p_chosen if label[key] > 0.5 else 1 - p_chosen for key in ("p_a", "p_a_first", "p_a_second")}
        for label in rule_labels(pairs, load_constitution(CONSTITUTION))
    ]
    store.append("ai_labels", labels, "setup")
    result = merge_store(store, MergeSettings())
    store.append("preferences", result.rows, "setup")
    store.append("preference_sets", [result.set_row], "setup")
    return store, result.set_id
