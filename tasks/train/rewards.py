"""Reward functions: one signature for PPO's rollouts, the scoreboard and ``charter score``.

A reward function takes the conversations and the responses to them (in that order, as
``score_texts`` and the judge take them) and returns one float per response. PPO sums
several (a reward model's score and the constitution's rules); the scoreboard compares the
tuned model's scores with its base's. Importable without torch.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

from tasks.constitution.model import Constitution
from tasks.core.conversation import Message, prompt_id
from tasks.evaluate.scoreboard import behaviour

RewardFn = Callable[[Sequence[Sequence[Message]], Sequence[str]], list[float]]


def rule_reward(constitution: Constitution, families: dict[str, str | None]) -> RewardFn:
    """Minus the number of applicable rules a response breaks (0 when it keeps them all).

    ``families`` maps a conversation's prompt id to its family, which decides the rules that apply.
    """

    def reward(conversations: Sequence[Sequence[Message]], responses: Sequence[str]) -> list[float]:
        return [
            -float(
                sum(
                    not kept
                    for kept in behaviour(constitution, families.get(prompt_id(list(c))), c, r)[
                        "rules"
                    ].values()
                )
            )
            for c, r in zip(conversations, responses, strict=True)
        ]

    return reward


def summed(rewards: Sequence[RewardFn]) -> RewardFn:
    """One reward function that adds up the others' rewards per response."""
    if not rewards:
        raise ValueError("no reward functions to sum")

    def reward(conversations: Sequence[Sequence[Message]], responses: Sequence[str]) -> list[float]:
        parts = [fn(conversations, responses) for fn in rewards]
        return [sum(values) for values in zip(*parts, strict=True)]

    return reward
