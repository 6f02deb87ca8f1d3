"""Reward functions: one definition for PPO's rollouts, GRPO/RLOO (TRL), the scoreboard and ``charter score``.

A reward function takes the conversations and the responses to them (in that order, as
``score_texts`` and the judge take them) and returns one float per response. A policy optimiser's
reward is a weighted sum of named ones (:class:`NamedReward`):

- the constitution's rules, either as one aggregate (``rules``: minus the number of applicable rules
  a response breaks) or one function per applicable rule (``rule/<principle>/<rule>``: -1 when the
  response breaks that rule, 0 when it keeps it or the rule does not apply to the prompt); summed
  with equal weights the per-rule functions give exactly the aggregate;
- a reward model's (or ensemble's aggregated) score (``reward_model``).

Charter's PPO adds them up itself (:func:`weighted_sum`); TRL's trainers get each one through
:func:`trl_reward_function` with its weight in ``reward_weights``, and log each under its name
(``rewards/<name>/mean``). Whether a rule applies, and whether it is kept, is decided exactly as the
scoreboard decides it (``tasks.evaluate.scoreboard.behaviour``). Importable without torch.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Literal

from tasks.constitution.model import Constitution
from tasks.constitution.rules import applicable_rules
from tasks.core.conversation import Message, prompt_id
from tasks.evaluate.scoreboard import behaviour

RewardFn = Callable[[Sequence[Sequence[Message]], Sequence[str]], list[float]]
RuleRewards = Literal["per_rule", "aggregate"]

AGGREGATE_RULES_NAME = "rules"
REWARD_MODEL_NAME = "reward_model"


@dataclass(frozen=True)
class NamedReward:
    """A reward function, the stable name its figures are logged under, and its weight in the total."""

    name: str
    fn: RewardFn
    weight: float = 1.0


def _rule_checks(
    constitution: Constitution,
    families: Mapping[str, str | None],
    conversations: Sequence[Sequence[Message]],
    responses: Sequence[str],
) -> list[dict[str, bool]]:
    """Per response, ``{"<principle>/<rule>": kept}`` for the rules that apply to its prompt."""
    return [
        behaviour(constitution, families.get(prompt_id(list(c))), c, r)["rules"]
        for c, r in zip(conversations, responses, strict=True)
    ]


def rule_reward(constitution: Constitution, families: Mapping[str, str | None]) -> RewardFn:
    """Minus the number of applicable rules a response breaks (0 when it keeps them all).

    ``families`` maps a conversation's prompt id to its family, which decides the rules that apply.
    """

    def reward(conversations: Sequence[Sequence[Message]], responses: Sequence[str]) -> list[float]:
        checks = _rule_checks(constitution, families, conversations, responses)
        return [-float(sum(not kept for kept in rules.values())) for rules in checks]

    return reward


def one_rule_reward(constitution: Constitution, families: Mapping[str, str | None], rule: str) -> RewardFn:
    """-1 when a response breaks ``rule`` ("<principle>/<rule>") where it applies, else 0."""

    def reward(conversations: Sequence[Sequence[Message]], responses: Sequence[str]) -> list[float]:
        checks = _rule_checks(constitution, families, conversations, responses)
        return [-1.0 if rules.get(rule) is False else 0.0 for rules in checks]

    return reward


def applicable_rule_ids(
    constitution: Constitution, prompts: Iterable[tuple[str | None, Sequence[Message]]]
) -> list[str]:
    """The rules ("<principle>/<rule>") that apply to at least one of ``prompts`` ((family, messages)
    pairs), sorted: a rule that applies to none would only log zeros."""
    return sorted(
        {
            f"{applied.principle.id}/{applied.rule.id}"
            for family, messages in prompts
            for applied in applicable_rules(constitution, family, messages)
        }
    )


def reward_functions(
    constitution: Constitution | None,
    families: Mapping[str, str | None],
    *,
    per_rule: Sequence[str] = (),
    rules_weight: float = 1.0,
    reward_model: RewardFn | None = None,
    reward_model_weight: float = 1.0,
) -> list[NamedReward]:
    """The named reward functions of a policy optimiser: the constitution's rules (one function per
    rule in ``per_rule``, or the aggregate when it is empty), then the reward model, each weighted."""
    rewards: list[NamedReward] = []
    if constitution is not None and per_rule:
        rewards += [
            NamedReward(f"rule/{rule}", one_rule_reward(constitution, families, rule), rules_weight)
            for rule in per_rule
        ]
    elif constitution is not None:
        rewards.append(NamedReward(AGGREGATE_RULES_NAME, rule_reward(constitution, families), rules_weight))
    if reward_model is not None:
        rewards.append(NamedReward(REWARD_MODEL_NAME, reward_model, reward_model_weight))
    return rewards


def weighted_sum(rewards: Sequence[NamedReward]) -> RewardFn:
    """One reward function: the weighted sum of the others' rewards per response (TRL's total)."""
    if not rewards:
        raise ValueError("no reward functions to sum")

    def reward(conversations: Sequence[Sequence[Message]], responses: Sequence[str]) -> list[float]:
        parts = [[r.weight * value for value in r.fn(conversations, responses)] for r in rewards]
        return [sum(values) for values in zip(*parts, strict=True)]

    return reward


def completion_text(completion: str | Sequence[Message]) -> str:
    """A TRL completion's text: a plain string, or the conversational ``[{"role": "assistant", ...}]``."""
    if isinstance(completion, str):
        return completion
    return "".join(str(message["content"]) for message in completion)


def trl_reward_function(
    reward: NamedReward, figures: Callable[[], Mapping[str, float]] | None = None
) -> Callable[..., list[float]]:
    """``reward`` in TRL's ``reward_funcs`` form, ``(prompts, completions, **kwargs) -> list[float]``,
    named ``reward.name`` (TRL logs ``rewards/<__name__>/mean``). Unweighted: TRL applies
    ``reward_weights``. ``figures`` (a reward model's last-call figures, ``rm/mean``, ...) go to TRL's
    ``log_metric``, so they are logged with the step."""

    def trl_reward(prompts: Sequence[Any], completions: Sequence[Any], **kwargs: Any) -> list[float]:
        values = reward.fn([list(p) for p in prompts], [completion_text(c) for c in completions])
        if figures is not None and "log_metric" in kwargs:
            for name, value in figures().items():
                kwargs["log_metric"](name, value)
        return values

    trl_reward.__name__ = trl_reward.__qualname__ = reward.name
    return trl_reward
