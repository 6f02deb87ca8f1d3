"""The arithmetic of PPO for language models, as small pure torch functions.

Kept apart from the training loop (``tasks/train/ppo.py``) so that every formula can be checked
against numbers worked out by hand, without a model. Tensors are ``[batch, T]`` over response
tokens, right-padded, with a ``mask`` that is 1 on real tokens and 0 on padding; every mean
and sum counts real tokens only, so padding never dilutes a loss or a statistic.
"""

from __future__ import annotations

import torch


def masked_mean(x: torch.Tensor, mask: torch.Tensor, dim: int | None = None) -> torch.Tensor:
    """Mean of ``x`` over positions where ``mask`` is 1 (all of them, or along ``dim``).

    A plain mean would count padding as zeros and shrink losses of batches with short responses.
    """
    mask = mask.to(x.dtype)
    if dim is None:
        return (x * mask).sum() / mask.sum().clamp(min=1)
    return (x * mask).sum(dim) / mask.sum(dim).clamp(min=1)


def masked_whiten(x: torch.Tensor, mask: torch.Tensor, shift_mean: bool = True) -> torch.Tensor:
    """Normalise ``x`` to mean 0 and (population) variance 1 over the masked positions.

    Whitening advantages keeps the policy-gradient step's size independent of the reward's
    scale; with ``shift_mean=False`` the mean is kept (only the scale changes). Padded
    positions come back as 0.
    """
    mean = masked_mean(x, mask)
    var = masked_mean((x - mean) ** 2, mask)
    whitened = (x - mean) * torch.rsqrt(var + 1e-8)
    if not shift_mean:
        whitened = whitened + mean
    return whitened * mask.to(x.dtype)


def gae(
    rewards: torch.Tensor, values: torch.Tensor, mask: torch.Tensor, gamma: float, lam: float
) -> tuple[torch.Tensor, torch.Tensor]:
    """Generalised advantage estimation (Schulman et al. 2016) over each response's tokens.

    ``delta_t = r_t + gamma * V_{t+1} - V_t`` and ``A_t = delta_t + gamma * lam * A_{t+1}``,
    computed backwards. The episode ends at each row's last real token, so the value after it
    is 0 (nothing is bootstrapped from padding). ``lam`` trades bias (low: trusts the value
    head) for variance (1: Monte Carlo returns). Returns ``(advantages, returns)`` with
    ``returns = advantages + values``: the value head's regression target.
    """
    mask = mask.to(values.dtype)
    values = values * mask
    rewards = rewards * mask
    advantages = torch.zeros_like(rewards)
    running = torch.zeros_like(rewards[:, 0])
    steps = rewards.shape[1]
    for t in reversed(range(steps)):
        next_value = values[:, t + 1] if t + 1 < steps else torch.zeros_like(running)
        delta = rewards[:, t] + gamma * next_value - values[:, t]
        running = (delta + gamma * lam * running) * mask[:, t]
        advantages[:, t] = running
    return advantages, (advantages + values) * mask


class AdaptiveKLController:
    """The KL coefficient of Ziegler et al. 2019, steering the measured KL towards ``target``.

    A fixed coefficient is either too weak early (the policy runs away from the reference) or
    too strong late; this one grows while the KL is above target and shrinks while below, by at
    most 20% of ``n_steps / horizon`` per update, so it moves slowly and smoothly.
    """

    def __init__(self, init_kl_coef: float, target: float, horizon: float) -> None:
        self.value = init_kl_coef
        self.target = target
        self.horizon = horizon

    def update(self, current_kl: float, n_steps: int) -> None:
        """Scale the coefficient after ``n_steps`` samples were seen with mean KL ``current_kl``."""
        proportional_error = min(max(current_kl / self.target - 1, -0.2), 0.2)
        self.value *= 1 + proportional_error * n_steps / self.horizon


class FixedKLController:
    """A constant KL coefficient (``adaptive_kl=False``): same interface, ``update`` does nothing."""

    def __init__(self, kl_coef: float) -> None:
        self.value = kl_coef

    def update(self, current_kl: float, n_steps: int) -> None:
        """Keep the coefficient: a fixed controller ignores the measured KL."""


def kl_penalised_rewards(
    logprobs: torch.Tensor,
    ref_logprobs: torch.Tensor,
    scores: torch.Tensor,
    mask: torch.Tensor,
    kl_coef: float,
) -> tuple[torch.Tensor, torch.Tensor]:
    """Per-token rewards: ``-kl_coef * (logprob - ref_logprob)``, plus each score at its last token.

    The reward model scores whole responses, so the score lands on the token that ends one (the
    last real token); the per-token KL penalty keeps the policy near the reference model at
    every token, which keeps text fluent and stops reward hacking. ``logprob - ref_logprob`` of
    the sampled token is an unbiased per-token estimate of KL(policy || reference); its sum over
    a response estimates the sequence's KL, returned as the second value (``[batch]``).
    """
    mask = mask.to(logprobs.dtype)
    kl = (logprobs - ref_logprobs) * mask
    rewards = -kl_coef * kl
    last = mask.sum(dim=1).long() - 1
    rows = torch.arange(rewards.shape[0], device=rewards.device)
    rewards[rows, last] += scores.to(rewards.dtype)
    return rewards, kl.sum(dim=1)


def policy_loss(
    logprobs: torch.Tensor,
    old_logprobs: torch.Tensor,
    advantages: torch.Tensor,
    mask: torch.Tensor,
    clip_range: float,
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """PPO's clipped surrogate (Schulman et al. 2017), to minimise.

    With ``ratio = pi / pi_old`` the loss per token is ``max(-A * ratio, -A * clip(ratio, 1-eps,
    1+eps))``: the pessimistic one of the two, so a step gains nothing by moving the ratio past
    the clip range in the direction the advantage favours, which lets several epochs reuse one
    batch of rollouts safely. Returns ``(loss, clip_fraction, approx_kl)``: the share of tokens
    where the clipped term was chosen, and ``0.5 * mean((log pi - log pi_old)^2)``, a cheap
    estimate of how far the update moved the policy.
    """
    log_ratio = logprobs - old_logprobs
    ratio = torch.exp(log_ratio)
    unclipped = -advantages * ratio
    clipped = -advantages * torch.clamp(ratio, 1.0 - clip_range, 1.0 + clip_range)
    loss = masked_mean(torch.maximum(unclipped, clipped), mask)
    clip_fraction = masked_mean((clipped > unclipped).to(logprobs.dtype), mask)
    approx_kl = 0.5 * masked_mean(log_ratio**2, mask)
    return loss, clip_fraction, approx_kl


def value_loss(
    values: torch.Tensor,
    old_values: torch.Tensor,
    returns: torch.Tensor,
    mask: torch.Tensor,
    clip_range_value: float,
) -> tuple[torch.Tensor, torch.Tensor]:
    """The value head's clipped regression loss: ``0.5 * max((V - R)^2, (V_clipped - R)^2)``.

    ``V_clipped`` keeps the new value within ``clip_range_value`` of the rollout's value, and
    the max makes the loss pessimistic in the same way as the policy's, so the value head
    cannot jump far on one batch. Returns ``(loss, clip_fraction)``, the share of tokens where
    the clipped error was the larger.
    """
    clipped_values = old_values + torch.clamp(values - old_values, -clip_range_value, clip_range_value)
    unclipped_error = (values - returns) ** 2
    clipped_error = (clipped_values - returns) ** 2
    loss = 0.5 * masked_mean(torch.maximum(unclipped_error, clipped_error), mask)
    clip_fraction = masked_mean((clipped_error > unclipped_error).to(values.dtype), mask)
    return loss, clip_fraction


def entropy_from_logits(logits: torch.Tensor) -> torch.Tensor:
    """Entropy of each token's distribution: ``logsumexp(z) - sum(softmax(z) * z)`` over the vocabulary.

    Logged to watch for the policy collapsing onto a few tokens (entropy falling to 0), the
    usual first sign of reward hacking; computed from logits so no probability underflows.
    """
    probs = torch.softmax(logits, dim=-1)
    return torch.logsumexp(logits, dim=-1) - (probs * logits).sum(dim=-1)
