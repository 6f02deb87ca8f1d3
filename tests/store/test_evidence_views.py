"""The ``rule_agreement`` and ``reward_uncertainty`` views on a store of hand-built labels and scores.

The labels are those of ``tests.merge.test_evidence`` (six pairs one person decided for X, a
boilerplate rule that agrees on one, a dosing rule that agrees on all six), plus a judge that
agrees with the person on four of the six pairs and contradicts them on two.
"""

from __future__ import annotations

from collections import Counter
from typing import Any

import pytest

from tasks.core.hashing import content_id
from tasks.merge.policy import MergeSettings, merge_preferences
from tasks.store.sql import run_query
from tasks.store.store import Store
from tests.merge.test_evidence import HUMAN_PAIRS, labels, x, y
from tests.merge.test_merge import PROMPTS, ai

SOURCE = {"source_format": "charter", "source_file": "/people.jsonl", "source_sha256": "e" * 64}


def stored_labels(store: Store) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    humans, ais = labels()
    # The judge agrees with the person (X) on pairs 0-3, contradicts them on 4 and 5.
    ais += [ai(f"j{i}", x(i), y(i), 0.7 if i < 4 else 0.2) for i in range(HUMAN_PAIRS)]
    store.append("human_labels", [row | SOURCE for row in humans], "setup")
    store.append("ai_labels", ais, "setup")
    return humans, ais


def test_rule_agreement_counts_match_the_rows_and_the_merge(store: Store) -> None:
    humans, ais = stored_labels(store)
    view = run_query(store, "select * from rule_agreement").records()
    assert [(r["kind"], r["source"], r["pairs"], r["agree"], r["disagree"]) for r in view] == [
        ("rule", "helpful-and-direct/no-ai-boilerplate", 6, 1, 5),
        ("rule", "avoid-serious-harm/no-dosing", 6, 6, 0),
        ("judge", "judge-1", 6, 4, 2),
    ]
    # Recounted from the rows: every person voted X (choice 'a'); a label agrees when it prefers X.
    people_pairs = {row["pair_id"] for row in humans}
    recount: Counter[tuple[str, bool]] = Counter()
    for row in ais:
        if row["pair_id"] in people_pairs:
            source = (
                f"{row['principle_id']}/{row['rule_id']}" if row["method"] == "rule" else row["judge_model"]
            )
            recount[source, row["p_a"] > 0.5] += 1
    for record in view:
        assert (record["agree"], record["disagree"]) == (
            recount[record["source"], True],
            recount[record["source"], False],
        )
        assert record["agreement_rate"] == pytest.approx(record["agree"] / record["pairs"], abs=1e-4)
    # Confidence (agree + 4) / (pairs + 5): 5/11, 10/11 and 8/11; the merge's rule figures agree.
    assert [r["confidence"] for r in view] == [
        pytest.approx(5 / 11, abs=1e-4),
        pytest.approx(10 / 11, abs=1e-4),
        pytest.approx(8 / 11, abs=1e-4),
    ]
    merged = merge_preferences(humans, ais, PROMPTS, MergeSettings()).rule_confidence
    assert {r["source"]: r["confidence"] for r in view if r["kind"] == "rule"} == {
        key: pytest.approx(value, abs=1e-4) for key, value in merged.items()
    }


def test_the_views_prior_is_the_merge_policys_default(store: Store) -> None:
    stored_labels(store)
    defaults = MergeSettings()
    priors = run_query(store, "select distinct prior_agree, prior_disagree from rule_agreement").records()
    assert priors == [
        {"prior_agree": defaults.rule_prior_agree, "prior_disagree": defaults.rule_prior_disagree}
    ]


def score(pair: str, checkpoint: str, p_first: float, std: float) -> dict[str, Any]:
    return {
        "score_id": content_id("reward_score", {"checkpoint": checkpoint, "pair_id": pair}),
        "pair_id": pair,
        "prompt_id": "prompt",
        "first_id": "first",
        "second_id": "second",
        "checkpoint": checkpoint,
        "checkpoint_run_id": f"run-{checkpoint}",
        "members": 3,
        "p_first": p_first,
        "p_first_std": std,
        "score_first": 0.0,
        "score_second": 0.0,
    }


def test_reward_uncertainty_takes_each_pairs_latest_score_beside_the_people(store: Store) -> None:
    humans, _ = stored_labels(store)
    pairs = sorted({row["pair_id"] for row in humans})
    first_is_x = {row["pair_id"]: row["response_a_id"] < row["response_b_id"] for row in humans}
    store.append("reward_scores", [score(pairs[0], "old", 0.9, 0.3), score(pairs[1], "old", 0.5, 0.1)], "r1")
    # A later checkpoint rescored pair 0 only; 'none' is a pair nobody labelled.
    store.append("reward_scores", [score(pairs[0], "new", 0.2, 0.05), score("none", "new", 0.7, 0.2)], "r2")
    rows = {r["pair_id"]: r for r in run_query(store, "select * from reward_uncertainty").records()}
    assert set(rows) == {pairs[0], pairs[1], "none"}
    latest = rows[pairs[0]]
    assert (latest["checkpoint"], latest["p_first"], latest["p_first_std"], latest["rm_vote"]) == (
        "new",
        0.2,
        0.05,
        "second",
    )
    people = "first" if first_is_x[pairs[0]] else "second"
    assert (latest["human_vote"], latest["rm_correct"]) == (people, people == "second")
    # A reward-model tie is a miss; no people, no verdict on correctness.
    assert (rows[pairs[1]]["rm_vote"], rows[pairs[1]]["rm_correct"]) == ("tie", False)
    assert (rows["none"]["human_vote"], rows["none"]["rm_correct"]) == (None, None)
