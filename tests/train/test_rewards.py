"""The reward functions PPO and GRPO share, on a two-principle constitution with worked numbers.

``be-brief`` applies to booking prompts only and has two rules (at most 5 words; says "please");
``no-shouting`` applies to urgent prompts only (no word of 4+ capitals). A 7-word booking reply
with "please" breaks exactly one of its two applicable rules.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from tasks.constitution.model import Constitution, load_constitution
from tasks.core.conversation import prompt_id
from tasks.train.checkpoints import policy_reward
from tasks.train.rewards import (
    NamedReward,
    applicable_rule_ids,
    reward_functions,
    rule_reward,
    trl_reward_function,
    weighted_sum,
)
from tasks.train.settings import PPOSettings

CONSTITUTION = """\
name: tiny
version: "1"
principles:
  - id: be-brief
    title: Be brief and polite
    tags: [booking]
    rules:
      - id: short
        max_words: 5
      - id: polite
        must_match: '(?i)\\bplease\\b'
  - id: no-shouting
    title: Do not shout
    tags: [urgent]
    rules:
      - id: no-caps
        must_not_match: '\\b[A-Z]{4,}\\b'
"""
BOOKING = [{"role": "user", "content": "Can I book a visit on Friday?"}]
URGENT = [{"role": "user", "content": "My chest hurts."}]
FAMILIES = {prompt_id(BOOKING): "booking", prompt_id(URGENT): "urgent"}
SEVEN_POLITE_WORDS = "Please come in on Friday at nine."  # breaks be-brief/short, keeps be-brief/polite
SHOUTING = "CALL NOW please"  # 3 words, polite: breaks only no-shouting/no-caps, where it applies


@pytest.fixture(scope="module")
def constitution(tmp_path_factory: pytest.TempPathFactory) -> Constitution:
    path: Path = tmp_path_factory.mktemp("rules") / "tiny.yaml"
    path.write_text(CONSTITUTION, encoding="utf-8")
    return load_constitution(path)


def per_rule(constitution: Constitution, **weights: float) -> list[NamedReward]:
    rules = applicable_rule_ids(constitution, [("booking", BOOKING), ("urgent", URGENT)])
    return reward_functions(constitution, FAMILIES, per_rule=rules, **weights)


def test_applicable_rules_are_those_of_the_prompts_families(constitution: Constitution) -> None:
    assert applicable_rule_ids(constitution, [("booking", BOOKING)]) == ["be-brief/polite", "be-brief/short"]
    assert applicable_rule_ids(constitution, [("booking", BOOKING), ("urgent", URGENT)]) == [
        "be-brief/polite",
        "be-brief/short",
        "no-shouting/no-caps",
    ]
    assert applicable_rule_ids(constitution, [(None, BOOKING)]) == []  # both principles are tagged


def test_one_broken_rule_of_two_is_minus_one_in_the_aggregate_and_per_rule(
    constitution: Constitution,
) -> None:
    conversations, responses = [BOOKING], [SEVEN_POLITE_WORDS]
    assert rule_reward(constitution, FAMILIES)(conversations, responses) == [-1.0]
    functions = per_rule(constitution)
    assert [f.name for f in functions] == [
        "rule/be-brief/polite",
        "rule/be-brief/short",
        "rule/no-shouting/no-caps",
    ]
    assert [f.fn(conversations, responses) for f in functions] == [[0.0], [-1.0], [0.0]]


def test_a_rule_gives_zero_where_it_does_not_apply(constitution: Constitution) -> None:
    """The same shouting reply breaks no-caps for the urgent prompt only; brevity and politeness
    are not checked there (their principle is tagged booking)."""
    no_caps = {f.name: f.fn for f in per_rule(constitution)}["rule/no-shouting/no-caps"]
    assert no_caps([BOOKING, URGENT], [SHOUTING, SHOUTING]) == [0.0, -1.0]
    assert rule_reward(constitution, FAMILIES)(
        [BOOKING, URGENT], [SHOUTING, "Long words here. Call HELP."]
    ) == [
        0.0,
        -1.0,
    ]
    # A conversation whose prompt id is unknown has no family: tagged principles do not apply.
    assert rule_reward(constitution, {})([BOOKING], [SEVEN_POLITE_WORDS]) == [0.0]


def test_per_rule_functions_sum_to_the_aggregate(constitution: Constitution) -> None:
    conversations = [BOOKING, BOOKING, URGENT, URGENT]
    responses = [SEVEN_POLITE_WORDS, "LOUD and long reply, no thanks", SHOUTING, "fine"]
    aggregate = rule_reward(constitution, FAMILIES)(conversations, responses)
    assert aggregate == [-1.0, -2.0, -1.0, 0.0]
    assert weighted_sum(per_rule(constitution))(conversations, responses) == aggregate


def test_weights_scale_each_function(constitution: Constitution) -> None:
    def words(conversations, responses):  # a stand-in reward model: its score is the word count
        return [float(len(r.split())) for r in responses]

    rewards = reward_functions(
        constitution, FAMILIES, rules_weight=2.0, reward_model=words, reward_model_weight=0.5
    )
    assert [(r.name, r.weight) for r in rewards] == [("rules", 2.0), ("reward_model", 0.5)]
    # 2 * (-1 broken rule) + 0.5 * 7 words
    assert weighted_sum(rewards)([BOOKING], [SEVEN_POLITE_WORDS]) == [1.5]
    scaled = per_rule(constitution, rules_weight=3.0)
    assert weighted_sum(scaled)([BOOKING], [SEVEN_POLITE_WORDS]) == [-3.0]


def test_ppo_reward_is_the_same_definition(constitution: Constitution) -> None:
    reward, figures = policy_reward(PPOSettings(), None, constitution, FAMILIES)
    assert figures is None
    assert reward([BOOKING, URGENT], [SEVEN_POLITE_WORDS, SHOUTING]) == [-1.0, -1.0]


def test_the_trl_adapter_returns_the_same_numbers_under_the_rule_name(constitution: Constitution) -> None:
    logged: list[tuple[str, float]] = []
    functions = per_rule(constitution)
    prompts = [BOOKING, URGENT]
    completions = [[{"role": "assistant", "content": text}] for text in (SEVEN_POLITE_WORDS, SHOUTING)]
    for named in functions:
        trl_fn = trl_reward_function(named, figures=lambda: {"rm/mean": 0.25})
        assert trl_fn.__name__ == named.name
        values = trl_fn(
            prompts=prompts,
            completions=completions,
            completion_ids=[[1], [2]],
            log_metric=lambda *a: logged.append(a),
        )
        assert values == named.fn(prompts, [SEVEN_POLITE_WORDS, SHOUTING])
    assert [trl_reward_function(f)(prompts, completions) for f in functions] == [
        [0.0, 0.0],
        [-1.0, 0.0],
        [0.0, -1.0],
    ]
    assert logged == [("rm/mean", 0.25)] * 3
    # Plain-text completions (a non-conversational dataset) are read as they are.
    assert trl_reward_function(functions[1])([BOOKING], [SEVEN_POLITE_WORDS]) == [-1.0]


def test_no_reward_function_is_an_error(constitution: Constitution) -> None:
    assert reward_functions(None, FAMILIES) == []
    with pytest.raises(ValueError, match="no reward functions"):
        weighted_sum([])
