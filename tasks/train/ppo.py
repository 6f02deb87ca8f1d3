"""charter's own PPO for language models: LoRA policy, value head, adaptive KL control.

TRL 1.16 dropped its PPOTrainer, so this is a small, readable loop in the style of Ziegler et
al. 2019 / the original TRL: sample responses, score them with a reward function, turn the
scores into per-token rewards penalised by the KL to a frozen reference model, estimate
advantages with GAE, and take a few epochs of clipped-surrogate steps. The formulas live in
``tasks/train/rl_math.py``; this module only moves tensors between them and the model.

The reference model is the policy's own base with its LoRA adapters disabled, so one copy of
the weights serves both. Pure Python and torch: importable without Prefect.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Mapping
from pathlib import Path

import torch
from peft import LoraConfig, PeftModel, get_peft_model
from torch import nn
from transformers import PreTrainedModel, PreTrainedTokenizerBase

from tasks.core.progress import progress
from tasks.train.rewards import RewardFn
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
from tasks.train.settings import LORA_TARGET_MODULES, PPOSettings


class PolicyWithValueHead(nn.Module):
    """A causal LM with LoRA adapters (the policy) and a linear value head on its last hidden state.

    Only the adapters and the value head train. The head is float32 whatever the model's dtype,
    and starts at zero so the first advantages are the plain rewards, not noise.
    """

    def __init__(self, model: PreTrainedModel, lora_r: int, lora_alpha: int) -> None:
        super().__init__()
        lora = LoraConfig(
            task_type="CAUSAL_LM",
            r=lora_r,
            lora_alpha=lora_alpha,
            lora_dropout=0.0,
            target_modules=list(LORA_TARGET_MODULES),
        )
        self.lm: PeftModel = get_peft_model(model, lora)
        self.value_head = nn.Linear(model.config.hidden_size, 1, dtype=torch.float32, device=model.device)
        nn.init.zeros_(self.value_head.weight)
        nn.init.zeros_(self.value_head.bias)


def make_policy(model: PreTrainedModel, config: PPOSettings) -> PolicyWithValueHead:
    """Wrap ``model`` (in place: peft injects the adapters into it) for :func:`ppo_train`."""
    return PolicyWithValueHead(model, config.lora_r, config.lora_alpha)


def save_policy(policy: PolicyWithValueHead, path: str | Path) -> None:
    """Save what training changed: the LoRA adapter (peft's format) and ``value_head.pt``."""
    path = Path(path)
    policy.lm.save_pretrained(path)
    torch.save(policy.value_head.state_dict(), path / "value_head.pt")


def score_responses(
    policy: PolicyWithValueHead,
    sequences: torch.Tensor,
    attention_mask: torch.Tensor,
    response_length: int,
    temperature: float,
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Log-probs of the last ``response_length`` tokens, the values before each, and the logits.

    The logits are divided by the sampling temperature so the log-probs are those of the
    distribution the tokens were drawn from. Position ids follow the attention mask, as in
    ``generate``, so left-padded prompts are scored at the positions they were sampled at.
    Call inside ``policy.lm.disable_adapter()`` for the reference model (ignore its values).
    """
    position_ids = (attention_mask.cumsum(-1) - 1).clamp(min=0)
    # The states that predict each response token: from the prompt's last token to the second last.
    end = sequences.shape[1] - 1
    states = torch.arange(end - response_length, end, device=sequences.device)
    out = policy.lm(
        input_ids=sequences,
        attention_mask=attention_mask,
        position_ids=position_ids,
        output_hidden_states=True,
        logits_to_keep=states,  # the LM head over a 49k vocabulary costs more than 2 layers
    )
    logits = out.logits.float() / temperature
    hidden = out.hidden_states[-1][:, states]
    values = policy.value_head(hidden.float()).squeeze(-1)
    responses = sequences[:, -response_length:]
    logprobs = torch.log_softmax(logits, dim=-1).gather(-1, responses.unsqueeze(-1)).squeeze(-1)
    return logprobs, values, logits


def response_mask(responses: torch.Tensor, eos_token_id: int) -> torch.Tensor:
    """1 on each response's tokens up to and including its first EOS, 0 after (padding).

    ``generate`` keeps sampling rows that already ended (it fills them with the pad token, often
    the EOS itself), so the mask marks where each response really stops.
    """
    is_eos = (responses == eos_token_id).long()
    return ((is_eos.cumsum(1) - is_eos) == 0).long()


def _generate(
    policy: PolicyWithValueHead,
    tokenizer: PreTrainedTokenizerBase,
    conversations: list[list[dict]],
    config: PPOSettings,
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, list[str]]:
    """Sample one response per chat-templated prompt: ``(sequences, attention_mask, response_mask, texts)``.

    Prompts are left-padded so every response starts at the same column; a response's EOS is
    kept (the policy is credited for stopping), what follows it is masked. ``top_k=0`` so the
    sampler draws from the very distribution that is scored.
    """
    texts = [
        tokenizer.apply_chat_template(c, add_generation_prompt=True, tokenize=False) for c in conversations
    ]
    enc = tokenizer(texts, return_tensors="pt", padding=True, padding_side="left", add_special_tokens=False)
    enc = enc.to(policy.lm.device)
    eos = tokenizer.eos_token_id
    sequences = policy.lm.generate(
        **enc,
        do_sample=True,
        temperature=config.temperature,
        top_p=config.top_p,
        top_k=0,
        max_new_tokens=config.max_new_tokens,
        eos_token_id=eos,
        pad_token_id=tokenizer.pad_token_id,
    )
    responses = sequences[:, enc.input_ids.shape[1] :]
    mask = response_mask(responses, eos)
    attention_mask = torch.cat([enc.attention_mask, mask], dim=1)
    decoded = [
        tokenizer.decode(r[m.bool()], skip_special_tokens=True) for r, m in zip(responses, mask, strict=True)
    ]
    return sequences, attention_mask, mask, decoded


# charter's PPO log keys and the names TRL's PPOTrainer (TRL 0.x; ``objective/kl_coef`` from its
# first, adaptive-KL version) logged the same figures under; the others keep their charter names.
TRL_PPO_NAMES = {
    "kl": "objective/kl",
    "kl_coef": "objective/kl_coef",
    "entropy": "objective/entropy",
    "reward_mean": "objective/scores",
    "policy_loss": "loss/policy_avg",
    "value_loss": "loss/value_avg",
    "clip_fraction": "policy/clipfrac_avg",
    "value_clip_fraction": "val/clipfrac_avg",
    "approx_kl": "policy/approxkl_avg",
}


def trl_step_metrics(log: Mapping[str, float]) -> dict[str, float]:
    """One step's log with TRL's names where TRL has one (``objective/kl``, ...), for the tracker."""
    return {TRL_PPO_NAMES.get(key, key): value for key, value in log.items() if key != "step"}


def rollout_schedule(prompt_count: int, config: PPOSettings) -> list[list[int]]:
    """The prompt indices each step rolls out: a seeded shuffle, ``config.batch_size`` per step,
    wrapping around. Its own generator, so a checkpoint can record the prompts PPO trained on
    (the scoreboard must not count them as held out) without touching the sampling's RNG."""
    if prompt_count < 1:
        raise ValueError("PPO needs at least one prompt")
    order = torch.randperm(prompt_count, generator=torch.Generator().manual_seed(config.seed)).tolist()
    size = config.batch_size
    return [[order[(step * size + i) % prompt_count] for i in range(size)] for step in range(config.steps)]


def ppo_train(
    model: PolicyWithValueHead,
    tokenizer: PreTrainedTokenizerBase,
    prompts: list[list[dict]],
    reward_fn: RewardFn,
    config: PPOSettings,
    on_step: Callable[[dict], None] | None = None,
    reward_log: Callable[[], Mapping[str, float]] | None = None,
) -> list[dict]:
    """Train ``model`` (from :func:`make_policy`) in place with PPO; return one log dict per step.

    ``prompts`` are chat conversations (lists of ``{"role", "content"}``), visited in the order of
    :func:`rollout_schedule`; ``reward_fn(conversations, responses)`` scores the decoded responses.
    ``reward_log`` (e.g. an ensemble scorer's ``figures``) gives figures of the step's reward call
    to add to its log: what the reward model thought, beside the reward that was optimised.
    ``on_step`` sees each step's log as soon as it is made.
    """
    schedule = rollout_schedule(len(prompts), config)
    torch.manual_seed(config.seed)
    kl_ctl = (
        AdaptiveKLController(config.init_kl_coef, config.target_kl, config.kl_horizon)
        if config.adaptive_kl
        else FixedKLController(config.init_kl_coef)
    )
    optimizer = torch.optim.AdamW([p for p in model.parameters() if p.requires_grad], lr=config.learning_rate)
    model.eval()  # no dropout: rollout and update must score tokens identically
    history = []
    with progress("PPO training", total=len(schedule), unit="steps") as bar:
        for step, indices in enumerate(schedule):
            started = time.perf_counter()
            batch = [prompts[i] for i in indices]
            with torch.no_grad():
                sequences, attention_mask, mask, texts = _generate(model, tokenizer, batch, config)
                length = mask.shape[1]
                logprobs, values, logits = score_responses(
                    model, sequences, attention_mask, length, config.temperature
                )
                entropy = masked_mean(entropy_from_logits(logits), mask)
                with model.lm.disable_adapter():
                    ref_logprobs, _, _ = score_responses(
                        model, sequences, attention_mask, length, config.temperature
                    )
            scores = torch.tensor(reward_fn(batch, texts), dtype=torch.float32, device=logprobs.device)
            kl_coef = kl_ctl.value
            rewards, kl = kl_penalised_rewards(logprobs, ref_logprobs, scores, mask, kl_coef)
            advantages, returns = gae(rewards, values, mask, config.gamma, config.lam)
            if config.whiten_advantages:
                advantages = masked_whiten(advantages, mask)
            rollout_s = time.perf_counter() - started

            started = time.perf_counter()
            stats: dict[str, list[float]] = {k: [] for k in ("pg", "vf", "clip", "vclip", "approx_kl")}
            for _ in range(config.ppo_epochs):
                for idx in torch.randperm(config.batch_size).split(config.mini_batch_size):
                    new_logprobs, new_values, _ = score_responses(
                        model, sequences[idx], attention_mask[idx], length, config.temperature
                    )
                    pg, clip, approx_kl = policy_loss(
                        new_logprobs, logprobs[idx], advantages[idx], mask[idx], config.clip_range
                    )
                    vf, vclip = value_loss(
                        new_values, values[idx], returns[idx], mask[idx], config.clip_range_value
                    )
                    optimizer.zero_grad()
                    (pg + config.vf_coef * vf).backward()
                    optimizer.step()
                    for key, value in zip(stats, (pg, vf, clip, vclip, approx_kl), strict=True):
                        stats[key].append(value.item())
            kl_ctl.update(kl.mean().item(), config.batch_size)

            log = {
                "step": step,
                "reward_mean": scores.mean().item(),
                "reward_std": scores.std().item() if len(scores) > 1 else 0.0,
                "kl": kl.mean().item(),
                "kl_coef": kl_coef,
                "entropy": entropy.item(),
                "policy_loss": _mean(stats["pg"]),
                "value_loss": _mean(stats["vf"]),
                "clip_fraction": _mean(stats["clip"]),
                "value_clip_fraction": _mean(stats["vclip"]),
                "approx_kl": _mean(stats["approx_kl"]),
                "response_length": mask.sum(1).float().mean().item(),
                "rollout_s": rollout_s,
                "update_s": time.perf_counter() - started,
                **(reward_log() if reward_log is not None else {}),
            }
            history.append(log)
            if on_step is not None:
                on_step(log)
            bar.advance()
    return history


def _mean(values: list[float]) -> float:
    return sum(values) / len(values)
