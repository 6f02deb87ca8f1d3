"""Conservative optimisation: PPO against an ensemble's worst case, and the log of what it saw.

The policy is the two-layer SmolLM2 of ``test_ppo.py``; the reward model is a saved ensemble of
two tiny random encoders (different seeds, so they disagree on every response). With
``reward_aggregation: min`` each step's reward must be the lower member's score, and the log
must record the members' mean, spread and that aggregate. For two members the arithmetic is
exact: min(a, b) = (a + b) / 2 - |a - b| / 2 = mean - std (the population std of two).
"""

from __future__ import annotations

from pathlib import Path

import pytest

from tasks.core.errors import CharterError
from tasks.store.store import Store
from tasks.train.checkpoints import policy_reward, train_ppo_checkpoint
from tasks.train.ensemble import RewardEnsemble, load_ensemble, save_ensemble
from tasks.train.ppo import make_policy, ppo_train
from tasks.train.settings import PPOSettings, RewardModelSettings
from tests.train.test_ppo import load_two_layers, one_thread, scheduling_prompts  # noqa: F401
from tests.train.tiny_models import tiny_bert

RM_KEYS = {"rm/mean", "rm/std", "rm/aggregate"}


@pytest.fixture(scope="module")
def two_member_ensemble(tmp_path_factory: pytest.TempPathFactory) -> Path:
    settings = RewardModelSettings(backbone="tiny", max_length=32, ensemble=2)
    ensemble = RewardEnsemble(
        [(model.eval(), tokenizer) for model, tokenizer in map(tiny_bert, (0, 1))], settings.max_length
    )
    return save_ensemble(
        ensemble, tmp_path_factory.mktemp("rm") / "ensemble", {"config": settings.model_dump()}
    )


def test_min_aggregation_optimises_the_worst_member_and_logs_it(
    embedded_model, two_member_ensemble: Path
) -> None:
    from transformers import AutoTokenizer

    config = PPOSettings(
        steps=2, batch_size=4, mini_batch_size=2, ppo_epochs=1, max_new_tokens=6, reward_aggregation="min"
    )
    reward, reward_log = policy_reward(config, str(two_member_ensemble), None, {})
    batches: list[tuple[list, list[str]]] = []

    def recorded(conversations, responses):
        batches.append((list(conversations), list(responses)))
        return reward(conversations, responses)

    policy = make_policy(load_two_layers(embedded_model.path), config)
    tokenizer = AutoTokenizer.from_pretrained(embedded_model.path)
    history = ppo_train(policy, tokenizer, scheduling_prompts(), recorded, config, reward_log=reward_log)

    members = load_ensemble(two_member_ensemble)[0]
    assert len(history) == len(batches) == 2
    for log, (conversations, responses) in zip(history, batches, strict=True):
        assert set(log) >= RM_KEYS
        a, b = members.member_scores(conversations, responses)
        worst = [min(x, y) for x, y in zip(a, b, strict=True)]
        mean = [(x + y) / 2 for x, y in zip(a, b, strict=True)]
        std = [abs(x - y) / 2 for x, y in zip(a, b, strict=True)]
        assert log["rm/aggregate"] == pytest.approx(sum(worst) / 4, abs=1e-5)
        assert log["rm/mean"] == pytest.approx(sum(mean) / 4, abs=1e-5)
        assert log["rm/std"] == pytest.approx(sum(std) / 4, abs=1e-5)
        assert log["rm/std"] > 0  # the members disagree, so min is below the mean
        assert log["rm/aggregate"] == pytest.approx(log["rm/mean"] - log["rm/std"], abs=1e-5)
        # The reward PPO optimised is that aggregate and nothing else.
        assert log["reward_mean"] == pytest.approx(log["rm/aggregate"], abs=1e-5)


def test_uwo_penalises_the_spread_by_the_configured_weight(two_member_ensemble: Path) -> None:
    conversations = [[{"role": "user", "content": "Can I book a physical on Friday?"}]] * 2
    responses = ["Yes, 9am works.", "No."]
    a, b = load_ensemble(two_member_ensemble)[0].member_scores(conversations, responses)
    config = PPOSettings(reward_aggregation="uwo", uncertainty_penalty=2.5)
    reward, reward_log = policy_reward(config, str(two_member_ensemble), None, {})
    got = reward(conversations, responses)
    # mean - 2.5 * std, with std = |a - b| / 2 for two members.
    want = [(x + y) / 2 - 2.5 * abs(x - y) / 2 for x, y in zip(a, b, strict=True)]
    assert got == pytest.approx(want, abs=1e-5)
    assert reward_log()["rm/aggregate"] == pytest.approx(sum(want) / 2, abs=1e-5)


def test_an_aggregation_without_a_reward_model_is_refused_before_any_work(tmp_path: Path) -> None:
    store = Store.create(tmp_path / "store")
    config = PPOSettings(reward_aggregation="min")
    with pytest.raises(CharterError, match="--reward-aggregation min aggregates a reward model's members"):
        train_ppo_checkpoint(store, "run", "no-such-set", "nobody/no-model", config, None, "rules.yaml", None)
