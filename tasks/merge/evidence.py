"""Labels as evidence: how often each rule agrees with people, and how sure a verdict is.

A rule label is deterministic, but deterministic is not right: on human-labelled comparisons
some shipped rules contradict people on most pairs they decide. So a rule's certainty is
estimated from its record where people labelled the same pairs: with ``agree`` and
``disagree`` pairs against the human majority and a Beta(a, b) prior, the posterior mean
(agree + a) / (agree + disagree + a + b). The ``rule_agreement`` view computes the same counts
in SQL (a test holds the two to agree), with the judges beside the rules.

A rule's vote on a pair is the side of the mean P(first) of its labels there (one label per
constitution version that holds the rule); a mean of 0.5 (versions that disagree) is no vote.
Only pairs with a strict human majority for one response count: a tie or a split says
nothing about which side the rule should have taken.

The spreads that say how sure a verdict is: the reward model's (``p_first_std`` of the pair's
latest ``reward_scores`` row) and the judge's (how far its per-order probabilities disagree).
"""

from __future__ import annotations

import math
from collections import Counter, defaultdict
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

from tasks.merge.settings import MergeSettings
from tasks.train.uncertainty import member_std

Row = dict[str, Any]
# Means of binary floats miss exact values (0.6 - 0.5 < 0.1): margins and ties compare with this slack.
EPS = 1e-9
# The report warns about a rule (or judge) that contradicts people more often than it agrees only
# from this many decided pairs on: below it, 2 of 3 is as likely luck as a wrong rule.
CONTRADICTION_MIN_PAIRS = 5


def p_first(label: Row, first_id: str) -> float:
    """The label's P(better) for the pair's first-by-id response, whichever order it was shown in."""
    return label["p_a"] if label["response_a_id"] == first_id else 1 - label["p_a"]


def exact_mean(values: Iterable[float]) -> float:
    # fsum is exactly rounded, so the mean (and the set id) does not depend on the labels' order.
    values = list(values)
    return math.fsum(values) / len(values)


def mean_p_first(labels: Iterable[Row], first_id: str) -> float:
    return exact_mean(p_first(row, first_id) for row in labels)


def side(p: float) -> str:
    """'first', 'second' or 'tie' for a P(first better)."""
    if abs(p - 0.5) <= EPS:
        return "tie"
    return "first" if p > 0.5 else "second"


def rule_key(label: Row) -> str:
    """A rule's name across constitutions: ``principle/rule`` (rule ids are unique per principle)."""
    principle = label["principle_id"]
    return label["rule_id"] if principle is None else f"{principle}/{label['rule_id']}"


def majority_vote(votes: Iterable[str]) -> str | None:
    """The vote more annotators gave than any other ('first', 'second' or 'tie'); None when the
    top votes tie. The ``human_majority`` view's ``majority_vote``."""
    ranked = Counter(votes).most_common()
    if not ranked or (len(ranked) > 1 and ranked[1][1] == ranked[0][1]):
        return None
    return ranked[0][0]


def beta_mean(agree: int, disagree: int, prior_agree: float, prior_disagree: float) -> float:
    """Posterior mean of the agreement rate under a Beta(prior_agree, prior_disagree) prior."""
    return (agree + prior_agree) / (agree + disagree + prior_agree + prior_disagree)


@dataclass(frozen=True)
class Agreement:
    """One rule's record against the human majority on the pairs it decided."""

    source: str
    agree: int
    disagree: int

    @property
    def pairs(self) -> int:
        return self.agree + self.disagree

    def confidence(self, prior_agree: float, prior_disagree: float) -> float:
        return beta_mean(self.agree, self.disagree, prior_agree, prior_disagree)


def rule_agreement(
    majorities: Mapping[str, str | None], labels: Iterable[Row], first_ids: Mapping[str, str]
) -> dict[str, Agreement]:
    """Each rule's agree/disagree pairs: ``majorities`` maps a pair to its human majority vote,
    ``labels`` are AI labels (only rule labels count), ``first_ids`` maps a pair to its first id."""
    by_rule_pair: dict[tuple[str, str], list[Row]] = defaultdict(list)
    for row in labels:
        if row["method"] == "rule":
            by_rule_pair[rule_key(row), row["pair_id"]].append(row)
    counts: dict[str, Counter[bool]] = defaultdict(Counter)
    for (key, pair), rows in by_rule_pair.items():
        human = majorities.get(pair)
        vote = side(mean_p_first(rows, first_ids[pair]))
        if human in ("first", "second") and vote != "tie":
            counts[key][vote == human] += 1
    return {key: Agreement(key, c[True], c[False]) for key, c in sorted(counts.items())}


def judge_spread(labels: Iterable[Row], first_id: str) -> float:
    """Population standard deviation of every per-order P(first) of the judge (non-rule) labels:
    0 when both display orders of every label say the same, up to 0.5 when they are opposite
    certainties. A single-order label contributes its one probability."""
    values = []
    for row in labels:
        if row["method"] == "rule":
            continue
        orders = [p for p in (row.get("p_a_first"), row.get("p_a_second")) if p is not None] or [row["p_a"]]
        flip = row["response_a_id"] != first_id
        values += [1 - p if flip else p for p in orders]
    return member_std(values) if values else 0.0


def latest_rm_spreads(scores: Iterable[Row]) -> dict[str, float]:
    """pair id -> ``p_first_std`` of the pair's latest ``reward_scores`` row (by created_at, then
    score id), as the ``reward_uncertainty`` view picks it."""
    latest: dict[str, Row] = {}
    for row in sorted(scores, key=lambda r: (r["created_at"], r["score_id"])):
        latest[row["pair_id"]] = row
    return {pair: row["p_first_std"] for pair, row in latest.items()}


@dataclass(frozen=True)
class Evidence:
    """What the merge knows beyond one pair's labels: each rule's confidence (None when rules are
    certain) and the reward model's spread per pair."""

    rule_confidence: Mapping[str, float] | None
    rm_spreads: Mapping[str, float]

    def trusted(self, label: Row, policy: MergeSettings) -> bool:
        """Whether a label may decide: a judge label always, a rule above the minimum confidence."""
        if label["method"] != "rule" or self.rule_confidence is None:
            return True
        return self.rule_confidence[rule_key(label)] > policy.rule_min_confidence

    def p_first(self, label: Row, first_id: str) -> float:
        """The label's P(first better), a rule's shrunk towards 0.5 by its confidence c: a rule's
        1.0 for its side becomes c (0.5 + (p - 0.5) * (2c - 1) for p = 1 or 0)."""
        p = p_first(label, first_id)
        if label["method"] != "rule" or self.rule_confidence is None:
            return p
        return 0.5 + (p - 0.5) * (2 * self.rule_confidence[rule_key(label)] - 1)

    def mean_p_first(self, labels: list[Row], first_id: str) -> float:
        return exact_mean(self.p_first(row, first_id) for row in labels)
