"""Machine-checkable rules: deterministic verdicts on a response, and the pairwise labels they imply.

A rule (see :class:`tasks.constitution.model.Rule`) applies to a response when its principle's
tags admit the prompt's family and its ``when`` pattern (if any) matches the user's last
turn. It passes when ``must_match`` matches, ``must_not_match`` does not, and the word
count is within bounds. Rules decide a pair only when exactly one response breaks one:
then the other is better with certainty, whatever a judge model thinks.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass
from functools import cache

from tasks.constitution.model import Constitution, Principle, Rule
from tasks.core.conversation import Message, last_user_text


@cache
def _compiled(pattern: str) -> re.Pattern[str]:
    return re.compile(pattern)


@dataclass(frozen=True)
class AppliedRule:
    """A rule in force for one conversation, with the principle it belongs to."""

    principle: Principle
    rule: Rule


def applicable_rules(
    constitution: Constitution, family: str | None, messages: Sequence[Message]
) -> list[AppliedRule]:
    """The rules that apply to replies to ``messages``, in principle then rule id order."""
    user_turn = last_user_text(list(messages))
    applied = [
        AppliedRule(principle, rule)
        for principle in constitution.principles
        if principle.applies_to(family)
        for rule in principle.rules
        if rule.when is None or _compiled(rule.when).search(user_turn)
    ]
    return sorted(applied, key=lambda a: (a.principle.id, a.rule.id))


def violation(rule: Rule, response: str) -> str | None:
    """Why ``response`` breaks ``rule``, or None when it passes (the trigger is checked elsewhere)."""
    if rule.must_match is not None and not _compiled(rule.must_match).search(response):
        return f"does not match required pattern of rule {rule.id}"
    if rule.must_not_match is not None:
        found = _compiled(rule.must_not_match).search(response)
        if found:
            return f"contains {found.group(0)!r}, forbidden by rule {rule.id}"
    words = len(response.split())
    if rule.min_words is not None and words < rule.min_words:
        return f"has {words} words, fewer than the {rule.min_words} rule {rule.id} requires"
    if rule.max_words is not None and words > rule.max_words:
        return f"has {words} words, more than the {rule.max_words} rule {rule.id} allows"
    return None


@dataclass(frozen=True)
class RuleVerdict:
    """A rule that tells two responses apart: ``a_better`` is True when only B breaks it."""

    applied: AppliedRule
    a_better: bool
    reason: str


def decisive_rules(
    constitution: Constitution,
    family: str | None,
    messages: Sequence[Message],
    response_a: str,
    response_b: str,
) -> list[RuleVerdict]:
    """Every applicable rule that exactly one of the two responses breaks."""
    verdicts = []
    for applied in applicable_rules(constitution, family, messages):
        broken_a = violation(applied.rule, response_a)
        broken_b = violation(applied.rule, response_b)
        if (broken_a is None) != (broken_b is None):
            a_better = broken_a is None
            reason = f"response {'B' if a_better else 'A'} {broken_b if a_better else broken_a}"
            verdicts.append(RuleVerdict(applied, a_better, reason))
    return verdicts
