"""PPO's arithmetic against numbers worked out by hand (the working is in the comments)."""

from __future__ import annotations

import math

import pytest
import torch

from tasks.train.rl_math import (
    AdaptiveKLController,
    FixedKLController,
    entropy_from_logits,
    gae,
    kl_penalised_rewards,
    masked_mean,
    masked_whiten,
    policy_loss,
    value_loss,
)


def t(rows: list) -> torch.Tensor:
    return torch.tensor(rows, dtype=torch.float64)


def close(actual: torch.Tensor, expected: list | float, atol: float = 1e-9) -> None:
    torch.testing.assert_close(actual, torch.as_tensor(expected, dtype=actual.dtype), rtol=0, atol=atol)


def test_masked_mean_counts_real_tokens_only() -> None:
    x = t([[1, 2, 3], [4, 5, 6]])
    mask = t([[1, 1, 0], [1, 0, 0]])
    close(masked_mean(x, mask), 7 / 3)  # (1 + 2 + 4) / 3
    close(masked_mean(x, mask, dim=1), [1.5, 4.0])  # (1 + 2) / 2 and 4 / 1


def test_masked_whiten_normalises_over_masked_positions_only() -> None:
    # Real values 1..6: mean 3.5, population variance (6.25 + 2.25 + 0.25) * 2 / 6 = 17.5 / 6.
    # The padded 100 and -50 would wreck both if they counted.
    x = t([[1, 2, 3, 100], [4, 5, 6, -50]])
    mask = t([[1, 1, 1, 0], [1, 1, 1, 0]])
    whitened = masked_whiten(x, mask)
    close(masked_mean(whitened, mask), 0.0)
    close(masked_mean(whitened**2, mask), 1.0, atol=1e-8)  # the 1e-8 guarding the division
    assert whitened[0, 0].item() == pytest.approx(-2.5 / math.sqrt(17.5 / 6))
    close(whitened[:, 3], [0.0, 0.0])  # padding comes back as 0

    kept = masked_whiten(x, mask, shift_mean=False)
    close(masked_mean(kept, mask), 3.5)
    close(masked_mean((kept - 3.5) ** 2, mask), 1.0, atol=1e-8)


def test_gae_three_steps_by_hand() -> None:
    # rewards [0, 0, 1], values [0.5, 0.6, 0.7], gamma 1, lam 0.95; the value after the end is 0.
    # delta_2 = 1 + 0   - 0.7 = 0.3    A_2 = 0.3
    # delta_1 = 0 + 0.7 - 0.6 = 0.1    A_1 = 0.1 + 0.95 * 0.3   = 0.385
    # delta_0 = 0 + 0.6 - 0.5 = 0.1    A_0 = 0.1 + 0.95 * 0.385 = 0.46575
    # returns = A + V = [0.96575, 0.985, 1.0]
    advantages, returns = gae(t([[0, 0, 1]]), t([[0.5, 0.6, 0.7]]), t([[1, 1, 1]]), gamma=1.0, lam=0.95)
    close(advantages, [[0.46575, 0.385, 0.3]])
    close(returns, [[0.96575, 0.985, 1.0]])


def test_gae_with_a_padded_row_bootstraps_zero_after_the_last_real_token() -> None:
    # Row 1 ends after two tokens; its padded column holds junk (reward 7, value 9) that must be
    # ignored: the episode ends at column 1, so delta_1 = 1 + 0 - 0.6 = 0.4 (not 1 + 9 - 0.6).
    # delta_0 = 0 + 0.6 - 0.5 = 0.1, A_0 = 0.1 + 0.95 * 0.4 = 0.48; returns [0.98, 1.0, 0].
    rewards = t([[0, 0, 1], [0, 1, 7]])
    values = t([[0.5, 0.6, 0.7], [0.5, 0.6, 9]])
    mask = t([[1, 1, 1], [1, 1, 0]])
    advantages, returns = gae(rewards, values, mask, gamma=1.0, lam=0.95)
    close(advantages, [[0.46575, 0.385, 0.3], [0.48, 0.4, 0.0]])
    close(returns, [[0.96575, 0.985, 1.0], [0.98, 1.0, 0.0]])


def test_gae_discounting_and_the_monte_carlo_limit() -> None:
    # gamma 0.9, lam 0.5 (gamma * lam = 0.45):
    # delta_2 = 1 - 0.7 = 0.3                 A_2 = 0.3
    # delta_1 = 0.9 * 0.7 - 0.6 = 0.03        A_1 = 0.03 + 0.45 * 0.3   = 0.165
    # delta_0 = 0.9 * 0.6 - 0.5 = 0.04        A_0 = 0.04 + 0.45 * 0.165 = 0.11425
    rewards, values, mask = t([[0, 0, 1]]), t([[0.5, 0.6, 0.7]]), t([[1, 1, 1]])
    advantages, returns = gae(rewards, values, mask, gamma=0.9, lam=0.5)
    close(advantages, [[0.11425, 0.165, 0.3]])
    close(returns, [[0.61425, 0.765, 1.0]])
    # gamma = lam = 1: A_t = (sum of rewards from t on) - V_t = 1 - V, returns are all 1.
    advantages, returns = gae(rewards, values, mask, gamma=1.0, lam=1.0)
    close(advantages, [[0.5, 0.4, 0.3]])
    close(returns, [[1.0, 1.0, 1.0]])


def test_adaptive_kl_controller_follows_ziegler() -> None:
    # error = clip(kl / target - 1, -0.2, 0.2); value *= 1 + error * n_steps / horizon
    above = AdaptiveKLController(0.2, target=6.0, horizon=10000)
    above.update(6.6, n_steps=8)  # error 0.1 -> 0.2 * (1 + 0.1 * 8 / 10000) = 0.200016
    assert above.value == pytest.approx(0.200016, abs=1e-12)

    below = AdaptiveKLController(0.2, target=6.0, horizon=10000)
    below.update(5.4, n_steps=8)  # error -0.1 -> 0.2 * (1 - 0.00008) = 0.199984
    assert below.value == pytest.approx(0.199984, abs=1e-12)

    far_above = AdaptiveKLController(0.2, target=6.0, horizon=10000)
    far_above.update(60.0, n_steps=8)  # error 9 clipped to 0.2 -> 0.2 * 1.00016 = 0.200032
    assert far_above.value == pytest.approx(0.200032, abs=1e-12)

    far_below = AdaptiveKLController(0.2, target=6.0, horizon=10000)
    far_below.update(0.0, n_steps=8)  # error -1 clipped to -0.2 -> 0.2 * 0.99984 = 0.199968
    assert far_below.value == pytest.approx(0.199968, abs=1e-12)

    scaled = AdaptiveKLController(0.2, target=6.0, horizon=100)
    scaled.update(12.0, n_steps=100)  # a whole horizon at error 1 -> 0.2: 0.2 * 1.2 = 0.24
    assert scaled.value == pytest.approx(0.24)
    scaled.update(0.0, n_steps=50)  # half a horizon at error -0.2: 0.24 * (1 - 0.1) = 0.216
    assert scaled.value == pytest.approx(0.216)


def test_fixed_kl_controller_never_moves() -> None:
    fixed = FixedKLController(0.2)
    fixed.update(100.0, n_steps=1000)
    assert fixed.value == 0.2


def test_kl_penalised_rewards_put_the_score_on_the_last_real_token() -> None:
    # kl = logprob - ref: row 0 [0.5, -1, 0]; row 1 [1, -2, (padding)].
    # reward = -0.1 * kl, plus the score at the last real token (column 2, then column 1):
    # row 0 [-0.05, 0.1, 0 + 1.0]; row 1 [-0.1, 0.2 - 2.0, 0]. KL sums: -0.5 and -1.0.
    logprobs = t([[-1.0, -2.0, -0.5], [-1.0, -3.0, -9.0]])
    ref_logprobs = t([[-1.5, -1.0, -0.5], [-2.0, -1.0, 0.0]])
    mask = t([[1, 1, 1], [1, 1, 0]])
    rewards, kl = kl_penalised_rewards(logprobs, ref_logprobs, t([1.0, -2.0]), mask, kl_coef=0.1)
    close(rewards, [[-0.05, 0.1, 1.0], [-0.1, -1.8, 0.0]])
    close(kl, [-0.5, -1.0])


def test_policy_loss_clipped_surrogate_by_hand() -> None:
    # clip 0.2; old log-probs 0, so ratio = exp(logprob). Loss per token = max(-A r, -A clip(r)):
    # r 1.1, A  2: -2.2 vs -2.2 -> -2.2 (inside the range, not clipped)
    # r 1.5, A  1: -1.5 vs -1.2 -> -1.2 (clipped: no gain from pushing r past 1.2)
    # r 0.5, A -1:  0.5 vs  0.8 ->  0.8 (clipped: no gain from pushing r below 0.8)
    # r 1.5, A -1:  1.5 vs  1.2 ->  1.5 (not clipped: a step against the advantage is always paid)
    # loss = (-2.2 - 1.2 + 0.8 + 1.5) / 4 = -0.275; clip fraction 2 / 4. Row 1's padding is junk.
    ratios = t([[1.1, 1.5, 0.5], [1.5, 50.0, 50.0]])
    logprobs = ratios.log().requires_grad_()
    advantages = t([[2.0, 1.0, -1.0], [-1.0, 100.0, 100.0]])
    mask = t([[1, 1, 1], [1, 0, 0]])
    loss, clip_fraction, approx_kl = policy_loss(logprobs, torch.zeros_like(ratios), advantages, mask, 0.2)
    assert loss.item() == pytest.approx(-0.275)
    assert clip_fraction.item() == pytest.approx(0.5)
    log_ratios = [math.log(1.1), math.log(1.5), math.log(0.5), math.log(1.5)]
    assert approx_kl.item() == pytest.approx(0.5 * sum(x * x for x in log_ratios) / 4)
    # Clipped tokens get no gradient; d/dlogprob of -A r / 4 is -A r / 4: -0.55 and +0.375.
    loss.backward()
    close(logprobs.grad, [[-0.55, 0.0, 0.0], [0.375, 0.0, 0.0]])


def test_value_loss_clipping_by_hand() -> None:
    # clip 0.2, old value 1.0 everywhere; V_clipped = 1 + clip(V - 1, -0.2, 0.2).
    # V 1.1, R 2: (1.1-2)^2 = 0.81 vs V_clipped 1.1: 0.81 -> 0.81 (inside the range)
    # V 1.5, R 2: 0.25 vs V_clipped 1.2: 0.64 -> 0.64 (clipped error larger: counted as clipped)
    # V 1.5, R 0: 2.25 vs V_clipped 1.2: 1.44 -> 2.25
    # loss = 0.5 * (0.81 + 0.64 + 2.25) / 3 = 0.61667; clip fraction 1 / 3. The padded token is junk.
    values = t([[1.1, 1.5], [1.5, 40.0]])
    returns = t([[2.0, 2.0], [0.0, -40.0]])
    mask = t([[1, 1], [1, 0]])
    loss, clip_fraction = value_loss(values, torch.ones_like(values), returns, mask, 0.2)
    assert loss.item() == pytest.approx(0.5 * 3.7 / 3)
    assert clip_fraction.item() == pytest.approx(1 / 3)


def test_entropy_from_logits() -> None:
    logits = t([[0.0, 0.0, 0.0, 0.0], [1.0, 1.0, -1e4, -1e4], [50.0, 0.0, 0.0, 0.0]])
    # uniform over 4: ln 4; uniform over 2: ln 2; all mass on one token: ~0
    close(entropy_from_logits(logits), [math.log(4), math.log(2), 0.0])
    random = torch.randn(3, 5, 11, generator=torch.Generator().manual_seed(0), dtype=torch.float64)
    expected = torch.distributions.Categorical(logits=random).entropy()
    torch.testing.assert_close(entropy_from_logits(random), expected)
