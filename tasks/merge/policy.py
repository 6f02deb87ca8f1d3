"""Merging human and AI labels into a versioned preference set.

Every labelled pair gets at most one row: which response is chosen, how sure the labels
are (the soft target, P(chosen is better)), how much the row should weigh in training,
and which labels, principles and constitutions decided it. A :class:`MergeSettings` says
how conflicts are resolved; it is a reviewable YAML file, and the set's id hashes the
policy with every decided row, so a trained checkpoint can name exactly the data it saw.

Labels meet on ``pair_id``, which does not depend on display order; every probability
is therefore turned to the pair's *first* response (the one whose id sorts first)
before labels are compared or averaged.

A rule label's certainty is, by default, not its stored 1.0 but the rule's estimated
confidence (``tasks.merge.evidence``): its agreement with people on the pairs they labelled.
A rule's label then counts as P(first) = confidence for the side it voted, and a rule not
trusted above ``rule_min_confidence`` neither decides nor overrides the judge.
"""

from __future__ import annotations

from collections import Counter, defaultdict
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

from tasks.core.errors import CharterError, read_input_text
from tasks.core.hashing import canonical_json, content_id
from tasks.core.yaml_source import load_located_yaml, validate_located
from tasks.merge.evidence import (
    EPS,
    Evidence,
    beta_mean,
    judge_spread,
    majority_vote,
    p_first,
    rule_agreement,
    rule_key,
    side,
)
from tasks.merge.settings import MergeSettings

Row = dict[str, Any]


def load_merge_policy(path: str | Path) -> MergeSettings:
    """Load a merge policy YAML file; raises :class:`InputError` naming the file, line and field."""
    source = str(path)
    return validate_located(MergeSettings, load_located_yaml(read_input_text(path), source), source)


@dataclass(frozen=True)
class MergeResult:
    """A merged preference set: its rows, its ``preference_sets`` row and why pairs were dropped."""

    rows: list[Row]
    set_row: Row
    dropped: Counter[str]
    rule_confidence: dict[str, float] = field(default_factory=dict)
    """Each rule's confidence in this merge (``principle/rule`` -> P(right)); empty when fixed."""

    @property
    def set_id(self) -> str:
        return self.set_row["set_id"]


@dataclass(frozen=True)
class _Pair:
    """Everything known about one pair: its responses in id order and its labels."""

    pair_id: str
    prompt_id: str
    first_id: str
    second_id: str
    texts: dict[str, str]
    humans: list[Row]  # each annotator's latest label
    ai: list[Row]  # every AI label


@dataclass(frozen=True)
class _Decision:
    """One source's verdict: the winning vote, the target for the chosen response, the labels."""

    vote: str  # 'first' | 'second' | 'tie' (a tie's chosen is the first response)
    target: float
    decided_by: str
    labels: list[Row]
    weight_factor: float = 1.0  # below 1 for a row above an uncertainty bound, down-weighted


@dataclass(frozen=True)
class _NoDecision:
    """A source that kept no row: ``final`` drops the pair, otherwise the next source is asked.

    ``reason`` is None when the source had nothing to say at all (no labels on the pair).
    """

    reason: str | None
    final: bool


def merge_preferences(
    human_rows: Iterable[Row],
    ai_rows: Iterable[Row],
    prompts: Mapping[str, Mapping[str, Any]],
    policy: MergeSettings | None = None,
    rm_spreads: Mapping[str, float] | None = None,
) -> MergeResult:
    """Decide every labelled pair under ``policy``; rows follow the ``preferences`` table (less
    run_id and created_at), sorted by pair_id, and equal inputs give an equal set id.

    ``rm_spreads`` maps a pair to its reward-model spread (``latest_rm_spreads``), read only
    under ``max_rm_uncertainty``. Rule confidences are estimated from these same labels.
    """
    policy = policy or MergeSettings()
    human_rows, ai_rows = list(human_rows), list(ai_rows)
    _check_prompts([*human_rows, *ai_rows], prompts)
    pairs = _pairs(human_rows, ai_rows)
    confidence = _rule_confidence(pairs, policy) if policy.rule_confidence == "estimated" else None
    evidence = Evidence(confidence, rm_spreads or {})
    dropped: Counter[str] = Counter()
    rows = []
    for pair in pairs:
        decision = _decide(pair, policy, evidence)
        if isinstance(decision, _NoDecision):
            dropped[decision.reason] += 1
        else:
            rows.append(_row(pair, decision, prompts[pair.prompt_id], policy, evidence))
    set_id = _set_id(policy, rows)
    rows = [
        {"row_id": content_id("preference", {"set_id": set_id, "pair_id": row["pair_id"]}), "set_id": set_id}
        | row
        for row in rows
    ]
    counts = {"kept": dict(Counter(row["decided_by"] for row in rows)), "dropped": dict(dropped)}
    set_row = {
        "set_id": set_id,
        "policy": canonical_json(policy.model_dump(mode="json")),
        "rows": len(rows),
        "counts": canonical_json(counts),
    }
    return MergeResult(rows=rows, set_row=set_row, dropped=dropped, rule_confidence=dict(confidence or {}))


def _rule_confidence(pairs: list[_Pair], policy: MergeSettings) -> dict[str, float]:
    """Every rule's posterior agreement with the human majority over these pairs (the prior's
    mean for a rule no person checked)."""
    majorities = {pair.pair_id: majority_vote(row["vote"] for row in pair.humans) for pair in pairs}
    labels = [row for pair in pairs for row in pair.ai]
    record = rule_agreement(majorities, labels, {pair.pair_id: pair.first_id for pair in pairs})
    prior = (policy.rule_prior_agree, policy.rule_prior_disagree)
    keys = sorted({rule_key(row) for row in labels if row["method"] == "rule"})
    return {key: record[key].confidence(*prior) if key in record else beta_mean(0, 0, *prior) for key in keys}


def _check_prompts(labels: list[Row], prompts: Mapping[str, Any]) -> None:
    """A label without its prompt cannot become a training row; silently losing it would skew the set."""
    missing = sorted((row["label_id"], row["prompt_id"]) for row in labels if row["prompt_id"] not in prompts)
    if missing:
        label, prompt = missing[0]
        more = f" (and {len(missing) - 1} more labels)" if len(missing) > 1 else ""
        raise CharterError(f"label {label} refers to prompt {prompt}, which is not among the prompts{more}")


def _pairs(human_rows: list[Row], ai_rows: list[Row]) -> list[_Pair]:
    humans: dict[str, list[Row]] = defaultdict(list)
    ai: dict[str, list[Row]] = defaultdict(list)
    for row in human_rows:
        humans[row["pair_id"]].append(row)
    for row in ai_rows:
        ai[row["pair_id"]].append(row)
    pairs = []
    for pid in sorted(humans.keys() | ai.keys()):
        labels = humans[pid] + ai[pid]
        texts = {}
        for row in labels:
            texts[row["response_a_id"]] = row["response_a"]
            texts[row["response_b_id"]] = row["response_b"]
        ids = (labels[0]["response_a_id"], labels[0]["response_b_id"])
        pairs.append(
            _Pair(
                pair_id=pid,
                prompt_id=labels[0]["prompt_id"],
                first_id=min(ids),
                second_id=max(ids),
                texts=texts,
                humans=_latest_votes(humans[pid]),
                ai=sorted(ai[pid], key=lambda row: row["label_id"]),
            )
        )
    return pairs


def _latest_votes(rows: list[Row]) -> list[Row]:
    """Each annotator's latest label, as the ``human_votes`` view picks it: a relabel replaces a vote."""
    latest: dict[str, Row] = {}
    for row in sorted(rows, key=lambda r: (r["created_at"], r["source_row"], r["label_id"])):
        latest[row["annotator"]] = row
    return sorted(latest.values(), key=lambda row: row["label_id"])


def _decide(pair: _Pair, policy: MergeSettings, evidence: Evidence) -> _Decision | _NoDecision:
    """Ask the sources in the policy's order; the first that decides (or drops) settles the pair."""
    if pair.texts[pair.first_id].strip() == pair.texts[pair.second_id].strip():
        return _NoDecision("identical-responses", final=True)
    human = _human_verdict(pair, policy)
    ai = _ai_verdict(pair, policy, evidence)
    reason = None
    for verdict in (human, ai) if policy.human_override else (ai, human):
        if isinstance(verdict, _Decision):
            return _bounded(verdict, pair, policy, evidence)
        if verdict.final:
            return verdict
        # The last source to give a reason explains the drop: a split that the AI could not
        # resolve is a split when the pair has no AI labels, else the AI's own reason.
        reason = verdict.reason or reason
    return _NoDecision(reason or "no-usable-label", final=True)


def _human_verdict(pair: _Pair, policy: MergeSettings) -> _Decision | _NoDecision:
    votes = pair.humans
    if not votes:
        return _NoDecision(None, final=False)
    counts = Counter(row["vote"] for row in votes)
    top = majority_vote(row["vote"] for row in votes)
    if top is None:
        return _NoDecision("human-split", final=policy.human_split == "drop")
    # P(chosen better) as the annotators see it: a tie vote is half a vote for each side.
    soft = (counts[top] + 0.5 * counts["tie"]) / len(votes)
    return _decided(top, soft, "human" if len(votes) == 1 else "human-majority", votes, policy)


def _ai_verdict(pair: _Pair, policy: MergeSettings, evidence: Evidence) -> _Decision | _NoDecision:
    if not pair.ai:
        return _NoDecision(None, final=False)
    labels, reason = _deciding_ai(pair.ai, policy, evidence)
    if not labels:
        return _NoDecision(reason, final=False)
    # A trusted rule's confidence is above 0.5 (rule_min_confidence >= 0.5), so shrinking its
    # label keeps its side: the mean is that of the rules' confidences, on the side they agree on.
    p = evidence.mean_p_first(labels, pair.first_id)
    if all(row["method"] == "rule" for row in labels):
        if len({side(p_first(row, pair.first_id)) for row in labels}) > 1:
            return _NoDecision("rule-conflict", final=True)
        return _decided(side(p), max(p, 1 - p), "rule", labels, policy)
    if abs(p - 0.5) + EPS < policy.ai_min_margin:
        return _NoDecision("below-margin", final=True)
    return _decided(side(p), max(p, 1 - p), "ai", labels, policy)


def _bounded(
    decision: _Decision, pair: _Pair, policy: MergeSettings, evidence: Evidence
) -> _Decision | _NoDecision:
    """An AI decision above an uncertainty bound, dropped or down-weighted (once, whichever bounds
    it passes); people's decisions and rows within the bounds unchanged."""
    if decision.decided_by not in ("rule", "ai"):
        return decision
    above = []
    spread = evidence.rm_spreads.get(pair.pair_id)
    if (
        policy.max_rm_uncertainty is not None
        and spread is not None
        and spread > policy.max_rm_uncertainty + EPS
    ):
        above.append("rm-uncertain")
    if (
        decision.decided_by == "ai"
        and policy.max_judge_uncertainty is not None
        and judge_spread(decision.labels, pair.first_id) > policy.max_judge_uncertainty + EPS
    ):
        above.append("judge-uncertain")
    if not above:
        return decision
    if policy.uncertain == "drop":
        return _NoDecision(above[0], final=True)
    return replace(decision, weight_factor=policy.uncertain_weight)


def _deciding_ai(labels: list[Row], policy: MergeSettings, evidence: Evidence) -> tuple[list[Row], str]:
    """The AI labels the policy lets decide, or none and the reason why none."""
    usable = [
        row
        for row in labels
        if row["method"] in policy.ai_methods
        and (policy.judge_models is None or row["judge_model"] in policy.judge_models)
    ]
    if not usable:
        return [], "no-usable-label"
    if policy.ai_require_consistent:
        usable = [row for row in usable if row["method"] == "rule" or row["orders_agree"] is True]
        if not usable:
            return [], "inconsistent"
    usable = [row for row in usable if evidence.trusted(row, policy)]
    if not usable:
        return [], "low-rule-confidence"
    rules = [row for row in usable if row["method"] == "rule"]
    return (rules if rules and policy.rules_override_judge else usable), ""


def _decided(
    vote: str, soft: float, decided_by: str, labels: list[Row], policy: MergeSettings
) -> _Decision | _NoDecision:
    """Apply the tie and target settings to a source's winning vote."""
    if vote == "tie":
        if policy.ties == "drop":
            return _NoDecision("tie", final=True)
        return _Decision("tie", 0.5, decided_by, labels)
    return _Decision(vote, soft if policy.soft_targets else 1.0, decided_by, labels)


def _row(
    pair: _Pair, decision: _Decision, prompt: Mapping[str, Any], policy: MergeSettings, evidence: Evidence
) -> Row:
    chosen, rejected = (pair.first_id, pair.second_id)
    if decision.vote == "second":
        chosen, rejected = rejected, chosen
    human = decision.decided_by.startswith("human")
    return {
        "pair_id": pair.pair_id,
        "prompt_id": pair.prompt_id,
        "family": prompt.get("family"),
        "prompt": prompt["messages"],
        "chosen_id": chosen,
        "rejected_id": rejected,
        "chosen": pair.texts[chosen],
        "rejected": pair.texts[rejected],
        "target": decision.target,
        "weight": (policy.human_weight if human else policy.ai_weight) * decision.weight_factor,
        "decided_by": decision.decided_by,
        "human_labels": len(pair.humans),
        "human_agreement": _agreement(pair.humans),
        "ai_labels": len(pair.ai),
        "ai_p_chosen": _ai_p_chosen(pair, chosen, policy, evidence),
        "label_ids": sorted(row["label_id"] for row in decision.labels),
        "principle_ids": _distinct(decision.labels, "principle_id"),
        "constitution_ids": _distinct(decision.labels, "constitution_id"),
    }


def _agreement(votes: list[Row]) -> float | None:
    """The largest vote's share of the annotators (the ``disagreements`` view's majority_share)."""
    if not votes:
        return None
    return Counter(row["vote"] for row in votes).most_common(1)[0][1] / len(votes)


def _ai_p_chosen(pair: _Pair, chosen: str, policy: MergeSettings, evidence: Evidence) -> float | None:
    """What the AI labels the policy would let decide say about the chosen response, also on
    human rows: the audit compares it with the humans' choice."""
    labels, _ = _deciding_ai(pair.ai, policy, evidence)
    if not labels:
        return None
    p = evidence.mean_p_first(labels, pair.first_id)
    return p if chosen == pair.first_id else 1 - p


def _distinct(labels: list[Row], column: str) -> list[str]:
    return sorted({row[column] for row in labels if row.get(column) is not None})


def _set_id(policy: MergeSettings, rows: list[Row]) -> str:
    """Hash of the policy and every decided row: what a checkpoint trained on the set can cite."""
    decided = sorted(
        [row["pair_id"], row["chosen_id"], row["target"], row["weight"], row["label_ids"]] for row in rows
    )
    return content_id("preference_set", {"policy": policy.model_dump(mode="json"), "rows": decided})
