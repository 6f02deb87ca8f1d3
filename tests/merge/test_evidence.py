"""Rules as evidence and uncertainty in the merge: hand-built labels whose answers are worked out here.

Six pairs carry one annotator's vote for the X response and two rules' labels:
``helpful-and-direct/no-ai-boilerplate`` votes Y on five of them (one agreement), and
``avoid-serious-harm/no-dosing`` votes X on all six. Under the default Beta(4, 1) prior the
boilerplate rule is trusted (1 + 4) / (6 + 5) = 5/11 = 0.4545 and the dosing rule
(6 + 4) / (6 + 5) = 10/11 = 0.9091. Three more pairs have no person on them:

- ``judged``: the boilerplate rule says Y, the judge says X at 0.8;
- ``ruled``: the dosing rule says X, the judge says Y at 0.7;
- ``alone``: only the boilerplate rule, saying Y.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import pytest

from tasks.core.errors import CharterError
from tasks.merge.evidence import judge_spread, latest_rm_spreads, rule_agreement
from tasks.merge.policy import MergeSettings, merge_preferences
from tasks.merge.preference_sets import merge_store
from tests.merge.test_merge import PROMPTS, ai, human

BOILERPLATE = ("helpful-and-direct", "no-ai-boilerplate")
DOSING = ("avoid-serious-harm", "no-dosing")
HUMAN_PAIRS = 6


def x(i: int | str) -> str:
    return f"Tuesday at 10:00 is free for visit {i}; shall I book it?"


def y(i: int | str) -> str:
    return f"As an AI language model I cannot book visit {i}, but please call the clinic."


def rule(label_id: str, a: str, b: str, p_a: float, which: tuple[str, str]) -> dict[str, Any]:
    principle, rule_id = which
    return ai(label_id, a, b, p_a, method="rule", principle_id=principle, orders_agree=None) | {
        "rule_id": rule_id
    }


def labels() -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    humans = [human(f"h{i}", x(i), y(i), "a") for i in range(HUMAN_PAIRS)]
    ais = []
    for i in range(HUMAN_PAIRS):
        # The boilerplate rule agrees with the person on pair 0 only.
        ais.append(rule(f"b{i}", x(i), y(i), 1.0 if i == 0 else 0.0, BOILERPLATE))
        ais.append(rule(f"d{i}", x(i), y(i), 1.0, DOSING))
    ais += [
        rule("b-judged", x("judged"), y("judged"), 0.0, BOILERPLATE),
        ai("j-judged", x("judged"), y("judged"), 0.8),
        rule("d-ruled", x("ruled"), y("ruled"), 1.0, DOSING),
        ai("j-ruled", x("ruled"), y("ruled"), 0.3),
        rule("b-alone", x("alone"), y("alone"), 0.0, BOILERPLATE),
    ]
    return humans, ais


def by_visit(result) -> dict[str, dict[str, Any]]:
    return {
        visit: row
        for visit in ("judged", "ruled")
        for row in result.rows
        if row["chosen"] in (x(visit), y(visit))
    }


def test_a_rule_that_contradicts_people_no_longer_overrides_the_judge() -> None:
    humans, ais = labels()
    result = merge_preferences(humans, ais, PROMPTS, MergeSettings())
    assert result.rule_confidence == {
        "avoid-serious-harm/no-dosing": pytest.approx(10 / 11),
        "helpful-and-direct/no-ai-boilerplate": pytest.approx(5 / 11),
    }
    rows = by_visit(result)
    # The boilerplate rule (0.45, not above 0.5) is set aside: the judge decides, X at 0.8.
    assert (rows["judged"]["decided_by"], rows["judged"]["chosen"]) == ("ai", x("judged"))
    assert rows["judged"]["target"] == pytest.approx(0.8)
    assert rows["judged"]["label_ids"] == ["j-judged"]
    # The dosing rule still overrides the judge, with its own confidence as the target.
    assert (rows["ruled"]["decided_by"], rows["ruled"]["chosen"]) == ("rule", x("ruled"))
    assert rows["ruled"]["target"] == pytest.approx(10 / 11)
    # Alone, the untrusted rule decides nothing; people's six pairs stay theirs.
    assert result.dropped == {"low-rule-confidence": 1}
    assert sum(row["decided_by"] == "human" for row in result.rows) == HUMAN_PAIRS


def test_fixed_rule_confidence_is_the_old_certain_override() -> None:
    humans, ais = labels()
    result = merge_preferences(humans, ais, PROMPTS, MergeSettings(rule_confidence="fixed"))
    rows = by_visit(result)
    assert (rows["judged"]["decided_by"], rows["judged"]["chosen"], rows["judged"]["target"]) == (
        "rule",
        y("judged"),
        1.0,
    )
    assert (rows["ruled"]["target"], result.rule_confidence, result.dropped) == (1.0, {}, {})
    estimated = merge_preferences(humans, ais, PROMPTS, MergeSettings())
    assert estimated.set_id != result.set_id


def test_the_prior_and_the_minimum_are_policy_keys() -> None:
    humans, ais = labels()
    # A prior of 40 and 1 outweighs six pairs: (1 + 40) / (6 + 41) = 0.872, so the rule decides Y.
    trusting = merge_preferences(humans, ais, PROMPTS, MergeSettings(rule_prior_agree=40.0))
    assert trusting.rule_confidence["helpful-and-direct/no-ai-boilerplate"] == pytest.approx(41 / 47)
    assert by_visit(trusting)["judged"]["chosen"] == y("judged")
    # A minimum of 0.95 sets the dosing rule (0.909) aside too: the judge's Y at 0.7 decides.
    strict = merge_preferences(humans, ais, PROMPTS, MergeSettings(rule_min_confidence=0.95))
    ruled = by_visit(strict)["ruled"]
    assert (ruled["decided_by"], ruled["chosen"], ruled["target"]) == ("ai", y("ruled"), pytest.approx(0.7))
    with pytest.raises(ValueError, match=r"greater than or equal to 0\.5"):
        MergeSettings(rule_min_confidence=0.4)


def vote(pair: str, p_a: float, a: str = "a", method: str = "rule") -> dict[str, Any]:
    """A bare label of rule p/r on ``pair`` (whose first response is 'a') showing ``a`` as A."""
    rule_id = "r" if method == "rule" else None
    return {
        "method": method,
        "principle_id": "p",
        "rule_id": rule_id,
        "pair_id": pair,
        "response_a_id": a,
        "p_a": p_a,
    }


def test_rule_votes_count_once_per_pair_and_only_against_a_decisive_majority() -> None:
    rows = [
        vote("p0", 1.0),  # p0: two versions of the rule agree on 'first', whatever the order shown
        vote("p0", 0.0, a="b"),
        vote("p1", 1.0),  # p1: two versions disagree: mean 0.5, no vote
        vote("p1", 0.0),
        vote("p2", 1.0),  # p2: people tied
        vote("p3", 0.0),  # p3: 'second' against a 'first' majority
        vote("p3", 1.0, method="logprob"),  # judges never count here
    ]
    majorities = {"p0": "first", "p1": "first", "p2": "tie", "p3": "first"}
    (record,) = rule_agreement(majorities, rows, {f"p{i}": "a" for i in range(4)}).values()
    assert (record.source, record.agree, record.disagree, record.pairs) == ("p/r", 1, 1, 2)
    # (1 + 4) / (2 + 4 + 1)
    assert record.confidence(4.0, 1.0) == pytest.approx(5 / 7)


def judge_label(label_id: str, p_first: float, p_second: float, visit: str = "j") -> dict[str, Any]:
    """A judge label with its two per-order probabilities of X (shown as A)."""
    row = ai(label_id, x(visit), y(visit), (p_first + p_second) / 2)
    return row | {
        "p_a_first": p_first,
        "p_a_second": p_second,
        "orders_agree": (p_first > 0.5) == (p_second > 0.5),
    }


def test_judge_spread_is_the_spread_of_every_per_order_probability() -> None:
    # Orders (0.9, 0.7) and (0.8, 0.6): mean 0.75, deviations 0.15, -0.05, 0.05, -0.15:
    # variance (0.0225 + 0.0025 + 0.0025 + 0.0225) / 4 = 0.0125, spread sqrt(0.0125) = 0.1118.
    rows = [judge_label("j1", 0.9, 0.7), judge_label("j2", 0.8, 0.6)]
    first_id = min(rows[0]["response_a_id"], rows[0]["response_b_id"])
    assert judge_spread(rows, first_id) == pytest.approx(0.0125**0.5)
    # Rule labels are left out; one order alone has no spread.
    assert judge_spread([rule("r", x("j"), y("j"), 1.0, DOSING)], first_id) == 0.0


def test_judge_uncertainty_drops_or_down_weights_the_judges_rows() -> None:
    steady = judge_label("steady", 0.8, 0.8, "steady")  # spread 0, mean 0.8
    torn = judge_label("torn", 0.95, 0.45, "torn")  # spread 0.25, mean 0.7 (orders disagree)
    people = human("h", x("people"), y("people"), "a")
    policy = {"max_judge_uncertainty": 0.2}
    dropped = merge_preferences([people], [steady, torn], PROMPTS, MergeSettings(**policy))
    assert dropped.dropped == {"judge-uncertain": 1}
    assert sorted(row["label_ids"][0] for row in dropped.rows) == ["h", "steady"]
    weighted = merge_preferences(
        [people], [steady, torn], PROMPTS, MergeSettings(**policy, uncertain="down-weight", ai_weight=0.5)
    )
    weights = {row["label_ids"][0]: row["weight"] for row in weighted.rows}
    # ai_weight 0.5 times uncertain_weight 0.5 for the torn row only.
    assert weights == {"h": 1.0, "steady": 0.5, "torn": 0.25}
    # A bound of 0.25 is not exceeded by a spread of exactly 0.25.
    assert (
        merge_preferences(
            [people], [steady, torn], PROMPTS, MergeSettings(max_judge_uncertainty=0.25)
        ).dropped
        == {}
    )


def test_reward_model_uncertainty_bounds_ai_rows_and_spares_peoples() -> None:
    humans, ais = labels()
    result = merge_preferences(humans, ais, PROMPTS, MergeSettings())
    pair_of = {row["chosen"]: row["pair_id"] for row in result.rows}
    spreads = {pair_of[x("judged")]: 0.3, pair_of[x("ruled")]: 0.1, pair_of[x(0)]: 0.4}
    policy = MergeSettings(max_rm_uncertainty=0.2)
    bounded = merge_preferences(humans, ais, PROMPTS, policy, spreads)
    # The judged row (0.3 > 0.2) goes; the ruled row (0.1) stays; the person's pair 0 (0.4) stays.
    assert bounded.dropped == {"low-rule-confidence": 1, "rm-uncertain": 1}
    kept = {row["pair_id"] for row in bounded.rows}
    assert pair_of[x("judged")] not in kept and {pair_of[x("ruled")], pair_of[x(0)]} <= kept
    weighted = merge_preferences(
        humans,
        ais,
        PROMPTS,
        policy.model_copy(update={"uncertain": "down-weight", "uncertain_weight": 0.25}),
        spreads,
    )
    weights = {row["pair_id"]: row["weight"] for row in weighted.rows}
    assert (weights[pair_of[x("judged")]], weights[pair_of[x("ruled")]], weights[pair_of[x(0)]]) == (
        0.25,
        1.0,
        1.0,
    )
    assert weighted.set_id not in (bounded.set_id, result.set_id)


def test_latest_spreads_come_from_each_pairs_newest_score() -> None:
    t = [datetime(2026, 1, 1, hour, tzinfo=UTC) for hour in (1, 2)]
    scores = [
        {"score_id": "s2", "pair_id": "p", "p_first_std": 0.05, "created_at": t[1]},
        {"score_id": "s1", "pair_id": "p", "p_first_std": 0.30, "created_at": t[0]},
        {"score_id": "s3", "pair_id": "q", "p_first_std": 0.10, "created_at": t[0]},
        {"score_id": "s4", "pair_id": "q", "p_first_std": 0.20, "created_at": t[0]},  # same time: larger id
    ]
    assert latest_rm_spreads(scores) == {"p": 0.05, "q": 0.20}


def test_a_reward_model_bound_without_scores_is_refused(store) -> None:
    store.append("ai_labels", labels()[1], "setup")
    with pytest.raises(CharterError, match="max_rm_uncertainty, but reward_scores is empty"):
        merge_store(store, MergeSettings(max_rm_uncertainty=0.1))
