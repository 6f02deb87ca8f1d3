"""PPO end to end on a real model: the embedded SmolLM2-135M cut to its first 2 decoder layers.

Two layers make rollouts and updates fast enough for the suite on 2 CPU cores; the model then
writes fluent-looking garbage (" ( I and, Iensely ..."), which is fine: PPO must move *its*
behaviour towards the reward, whatever that behaviour is.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import pytest
import torch

from tasks.train.ppo import make_policy, ppo_train, response_mask, rollout_schedule, save_policy
from tasks.train.settings import PPOSettings

PROMPTS = Path(__file__).resolve().parents[2] / "datasets" / "healthcare-scheduling" / "prompts.jsonl"
LOG_KEYS = {
    "step", "reward_mean", "reward_std", "kl", "kl_coef", "entropy", "policy_loss", "value_loss",
    "clip_fraction", "value_clip_fraction", "approx_kl", "response_length", "rollout_s", "update_s",
}  # fmt: skip


@pytest.fixture(autouse=True)
def one_thread() -> Iterator[None]:
    """One torch thread: these matrices are tiny, and on a shared 2-core machine two threads ran
    rollouts ~10x slower than one (13 s vs 1.3 s for 8 x 16 tokens, measured under load)."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


@pytest.fixture(scope="module")
def model_path(embedded_model) -> str:
    return embedded_model.path


def load_two_layers(path: str):
    """The first 2 of SmolLM2's 30 decoder layers (the rest are skipped with a warning)."""
    from transformers import AutoModelForCausalLM

    return AutoModelForCausalLM.from_pretrained(path, num_hidden_layers=2, dtype=torch.float32)


def scheduling_prompts(count: int = 16) -> list[list[dict]]:
    """The shortest booking and rescheduling requests (short prompts keep forward passes cheap),
    with a short system prompt in place of SmolLM2's 20-token default."""
    rows = [json.loads(line) for line in PROMPTS.read_text(encoding="utf-8").splitlines()]
    scheduling = [r for r in rows if r["family"] in ("booking", "rescheduling-cancelling")]
    shortest = sorted(scheduling, key=lambda r: len(r["text"]))[:count]
    return [[{"role": "system", "content": "You book clinic visits."}, {"role": "user", "content": r["text"]}]
            for r in shortest]  # fmt: skip


def ends_a_sentence(conversations: list[list[dict]], responses: list[str]) -> list[float]:
    """1 if the response contains a period. The issue's example rule, "mentions 'appointment'",
    never fires for the 2-layer model (0 of 160 samples); a period appears in 24% of its 10-token
    responses to these prompts (39 of 160, temperature 1), a base rate PPO can climb from."""
    return [float("." in response) for response in responses]


def base_logits(policy_or_model, input_ids: torch.Tensor) -> torch.Tensor:
    with torch.no_grad():
        return policy_or_model(input_ids=input_ids).logits


def test_response_mask_keeps_the_first_eos_and_masks_what_follows() -> None:
    eos = 2
    responses = torch.tensor([[5, 2, 2, 2], [5, 6, 7, 8], [2, 2, 2, 2], [5, 2, 6, 2]])
    expected = torch.tensor([[1, 1, 0, 0], [1, 1, 1, 1], [1, 0, 0, 0], [1, 1, 0, 0]])
    assert torch.equal(response_mask(responses, eos), expected)


def test_rollout_schedule_visits_a_seeded_shuffle_and_wraps_around() -> None:
    config = PPOSettings(steps=3, batch_size=4, seed=7)
    schedule = rollout_schedule(5, config)
    assert [len(batch) for batch in schedule] == [4, 4, 4]
    flat = [i for batch in schedule for i in batch]
    assert sorted(flat[:5]) == list(range(5))  # every prompt once before any comes again
    assert flat[5:] == flat[: len(flat) - 5]  # then the same order again
    assert schedule == rollout_schedule(5, config)
    assert schedule != rollout_schedule(5, config.model_copy(update={"seed": 8}))
    # Two steps of two prompts visit only 4 of 10: the other 6 were never trained on.
    assert len({i for batch in rollout_schedule(10, PPOSettings(steps=2, batch_size=2)) for i in batch}) == 4


def test_config_rejects_unknown_settings() -> None:
    with pytest.raises(ValueError, match="kl_target"):
        PPOSettings(kl_target=3.0)


@pytest.mark.integration
def test_zero_learning_rate_keeps_the_policy_equal_to_the_reference(model_path: str) -> None:
    """With nothing learnt, the policy and its reference (the same weights, adapters disabled)
    score every sampled token alike, so the measured KL is 0; the minibatch re-scoring agrees
    with the rollout's (ratio 1, nothing clipped). The training test below checks that the
    reference is still the untouched base model after real updates."""
    from transformers import AutoTokenizer

    config = PPOSettings(
        steps=2, batch_size=4, mini_batch_size=2, ppo_epochs=1, max_new_tokens=6, learning_rate=0.0
    )
    policy = make_policy(load_two_layers(model_path), config)
    tokenizer = AutoTokenizer.from_pretrained(model_path)
    prompts = scheduling_prompts()
    rewarded: list[list[dict]] = []

    def reward(conversations: list[list[dict]], responses: list[str]) -> list[float]:
        rewarded.extend(conversations)
        return ends_a_sentence(conversations, responses)

    history = ppo_train(policy, tokenizer, prompts, reward, config)
    # The rollouts answered exactly the prompts the schedule names (what a checkpoint records).
    assert rewarded == [prompts[i] for batch in rollout_schedule(len(prompts), config) for i in batch]
    for log in history:
        assert abs(log["kl"]) < 1e-4
        assert log["approx_kl"] < 1e-8
        assert log["clip_fraction"] == 0.0


@pytest.mark.integration
def test_ppo_raises_the_reward_with_bounded_kl(model_path: str, tmp_path: Path) -> None:
    from peft import PeftModel
    from transformers import AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(model_path)
    model = load_two_layers(model_path)
    probe = tokenizer("Can I book a physical for Friday?", return_tensors="pt").input_ids
    before = base_logits(model, probe)
    # target_kl 1.0 with a short horizon: the KL starts at 0 (below target) and ends above it,
    # so the coefficient visibly moves both ways; learning rate and steps chosen from runs below.
    config = PPOSettings(
        steps=10, batch_size=8, mini_batch_size=4, ppo_epochs=2, max_new_tokens=10, learning_rate=2e-3,
        init_kl_coef=0.05, target_kl=1.0, kl_horizon=100, seed=0,
    )  # fmt: skip
    policy = make_policy(model, config)
    history = ppo_train(policy, tokenizer, scheduling_prompts(), ends_a_sentence, config)

    assert [log["step"] for log in history] == list(range(10))
    assert all(set(log) == LOG_KEYS for log in history)
    assert all(1 <= log["response_length"] <= 10 for log in history)
    rewards = [log["reward_mean"] for log in history]
    kls = [log["kl"] for log in history]
    coefs = [log["kl_coef"] for log in history]
    # The first two steps sample the base policy and one update away from it (16 responses);
    # the last three, the trained one (24). Measured with this config for seeds 0-9 (the loop is
    # seeded, but CPU matmuls are not bit-reproducible across processes and Adam's first steps
    # amplify that, so every run is a fresh draw): first two 0.06-0.44, last three 0.75-0.96,
    # gap 0.50-0.77 (mean 0.63, sd 0.09). A margin of 0.3 sits over 3 sd below that mean.
    first, last = sum(rewards[:2]) / 2, sum(rewards[-3:]) / 3
    assert last - first >= 0.3, rewards
    # KL (nats per 10-token response) peaked at 4.1-8.2 in those runs (0.4-0.8 per token,
    # against the base's entropy of ~1.2 nats per token): 20 (2 per token) means a runaway.
    assert max(kls) < 20.0, kls
    # The controller raised the coefficient after every step above target and lowered it below.
    for kl, coef, next_coef in zip(kls, coefs, coefs[1:], strict=False):
        assert (next_coef > coef) == (kl > config.target_kl), (kls, coefs)
    assert kls[0] < config.target_kl < max(kls)

    # The reference is still exactly the untrained base; the policy is not.
    with policy.lm.disable_adapter():
        torch.testing.assert_close(base_logits(policy.lm, probe), before)
    trained = base_logits(policy.lm, probe)
    assert not torch.allclose(trained, before, atol=1e-3)

    # save_policy round-trips: adapter onto a fresh base reproduces the policy, value head too.
    save_policy(policy, tmp_path / "policy")
    reloaded = PeftModel.from_pretrained(load_two_layers(model_path), tmp_path / "policy")
    torch.testing.assert_close(base_logits(reloaded, probe), trained)
    head = torch.load(tmp_path / "policy" / "value_head.pt")
    torch.testing.assert_close(head["weight"], policy.value_head.weight.detach())
