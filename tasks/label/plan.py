"""What a label run must do, from plain parameters: its pairs, their comparisons, what is left.

Shared by the label flow's planning task and its batch tasks, so both derive the same pairs
and label ids from the store; batches are fixed by pair order, never by what is missing.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from tasks.backends.settings import BackendSettings, model_identity
from tasks.constitution.model import Constitution
from tasks.label.judge import Comparison, JudgeSettings, plan_comparisons
from tasks.label.pairs import PairPlan, PairSettings, plan_pairs
from tasks.store.store import Store


@dataclass
class LabelPlan:
    pairs: PairPlan
    comparisons: list[Comparison]


def label_plan(
    store: Store,
    selection: dict[str, Any],
    pair_settings: PairSettings,
    constitution: Constitution,
    judge_settings: JudgeSettings,
    spec: BackendSettings,
) -> LabelPlan:
    """The run's pairs and its model-judged comparisons (none when only rules label)."""
    pairs = plan_pairs(store, selection, pair_settings)
    comparisons: list[Comparison] = []
    if set(judge_settings.methods) - {"rule"}:
        model = model_identity(spec).model_id
        comparisons = plan_comparisons(pairs.pairs, constitution, judge_settings, model, spec.kind)
    return LabelPlan(pairs, comparisons)


def comparison_batches(comparisons: list[Comparison], batch_size: int) -> list[list[str]]:
    """Label ids in fixed batches of ``batch_size`` pairs' comparisons (a pair never straddles two)."""
    batches: list[list[str]] = []
    current_pairs: set[str] = set()
    for comparison in comparisons:
        if comparison.pair.pair_id not in current_pairs and len(current_pairs) == batch_size:
            current_pairs = set()
        if not current_pairs:
            batches.append([])
        current_pairs.add(comparison.pair.pair_id)
        batches[-1].append(comparison.label_id)
    return batches
