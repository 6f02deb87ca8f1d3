"""The scoreboard's "out of what the reward model knows": per family, the share of tuned samples
whose reward-model spread is above the 90th percentile of the spread on the base model's
held-out samples (worked numbers)."""

from __future__ import annotations

import pytest

from tasks.evaluate.scoreboard import beyond_known


def sample(model: str, family: str, spread: float | None) -> dict:
    return {"model": model, "family": family, "reward_std": spread}


def test_shares_above_the_held_out_ninetieth_percentile() -> None:
    # Base spreads 0.1 .. 0.5: the 0.9 quantile sits 3.6 of 4 steps up, 0.4 + 0.6 * 0.1 = 0.46.
    base = [sample("base", "booking", s) for s in (0.1, 0.2, 0.3, 0.4)] + [sample("base", "medication", 0.5)]
    tuned = [
        sample("tuned", "booking", 0.5),
        sample("tuned", "booking", 0.46),  # equal to the threshold: not above it
        sample("tuned", "booking", 0.1),
        sample("tuned", "medication", 0.47),
        sample("tuned", "medication", 0.9),
        sample("tuned", "medication", None),  # not scored: left out
    ]
    result = beyond_known([*base, *tuned])
    assert result["threshold"] == pytest.approx(0.46)
    assert (result["quantile"], result["reference_samples"]) == (0.9, 5)
    shares = {row["family"]: (row["samples"], row["above"], row["share"]) for row in result["families"]}
    assert shares == {
        "(all)": (5, 3, pytest.approx(0.6)),
        "booking": (3, 1, pytest.approx(1 / 3)),
        "medication": (2, 2, 1.0),
    }
    # The tuned samples never move the yardstick: only the base's held-out spreads make it.
    assert beyond_known([*base, *[{**t, "reward_std": 5.0} for t in tuned[:-1]]])[
        "threshold"
    ] == pytest.approx(0.46)


def test_no_reward_model_no_share() -> None:
    assert beyond_known([sample("base", "booking", None), sample("tuned", "booking", None)]) is None
    assert beyond_known([sample("base", "booking", 0.2)]) is None


def test_reward_figures_split_the_members_mean_and_spread_per_model() -> None:
    from tasks.evaluate.evaluation import reward_figures, split_rewards

    calls = []

    def members(conversations, responses):  # two members: the reply's length, and that plus 0 or 2
        calls.append(len(responses))
        return [[float(len(r)) for r in responses], [len(r) + (2.0 if "!" in r else 0.0) for r in responses]]

    chats = [[{"role": "user", "content": "a"}], [{"role": "user", "content": "b"}]]
    texts = {"base": ["ok", "fine"], "tuned": ["ok!", "sure"]}
    rewards = reward_figures(members, chats, texts)
    assert calls == [4]  # one call scores both models
    assert rewards == {"base": ([2.0, 4.0], [0.0, 0.0]), "tuned": ([4.0, 4.0], [1.0, 0.0])}  # "ok!": 3 and 5
    head, tail = split_rewards(rewards, 1)
    assert head == {"base": ([2.0], [0.0]), "tuned": ([4.0], [1.0])}
    assert tail == {"base": ([4.0], [0.0]), "tuned": ([4.0], [0.0])}
    assert split_rewards(None, 1) == (None, None)
    single = reward_figures(lambda c, r: [[1.0] * len(r)], chats, texts)
    assert single["tuned"] == ([1.0, 1.0], [None, None])  # one member: no spread, not a spread of 0
