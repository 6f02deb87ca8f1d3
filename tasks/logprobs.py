"""Sequence log-probabilities of given completions: what DPO's margin and the eval's KL are made of."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from tasks.conversation import Message


def sequence_logprobs(
    model: Any, tokenizer: Any, prompts: Sequence[Sequence[Message]], completions: Sequence[str]
) -> list[float]:
    """Sum of each completion's token log-probabilities (end-of-sequence included) after its prompt.

    One sequence per forward pass: exact (no padding effects) and small enough for a CPU.
    """
    import torch

    totals = []
    model.eval()
    for messages, completion in zip(prompts, completions, strict=True):
        text = tokenizer.apply_chat_template(list(messages), add_generation_prompt=True, tokenize=False)
        prompt_ids = tokenizer(text, add_special_tokens=False)["input_ids"]
        completion_ids = tokenizer(completion + (tokenizer.eos_token or ""), add_special_tokens=False)[
            "input_ids"
        ]
        ids = torch.tensor([prompt_ids + completion_ids])
        with torch.inference_mode():
            logits = model(input_ids=ids).logits[0, len(prompt_ids) - 1 : -1].float()
        logprobs = torch.log_softmax(logits, dim=-1).gather(1, torch.tensor(completion_ids)[:, None])
        totals.append(float(logprobs.sum()))
    return totals
