"""Sequence log-probabilities of given completions: what DPO's margin and the eval's KL are made of."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from tasks.core.conversation import Message

# Sequences per forward pass: one at a time left a 2-core CPU mostly idle between small matmuls.
BATCH_SIZE = 8


def _encode(tokenizer: Any, messages: Sequence[Message], completion: str) -> tuple[list[int], int]:
    """The chat-formatted prompt then the completion (end-of-sequence included), and the prompt's length."""
    text = tokenizer.apply_chat_template(list(messages), add_generation_prompt=True, tokenize=False)
    prompt_ids = tokenizer(text, add_special_tokens=False)["input_ids"]
    completion = completion + (tokenizer.eos_token or "")
    completion_ids = tokenizer(completion, add_special_tokens=False)["input_ids"]
    return prompt_ids + completion_ids, len(prompt_ids)


def sequence_logprobs(
    model: Any,
    tokenizer: Any,
    prompts: Sequence[Sequence[Message]],
    completions: Sequence[str],
    batch_size: int = BATCH_SIZE,
) -> list[float]:
    """Sum of each completion's token log-probabilities (end-of-sequence included) after its prompt.

    Sequences of similar length are batched and right-padded: under a causal mask the padding
    comes after every real token, so it cannot change their logits and the sums equal the
    one-sequence-at-a-time ones up to float rounding.
    """
    import torch

    encoded = [_encode(tokenizer, m, c) for m, c in zip(prompts, completions, strict=True)]
    order = sorted(range(len(encoded)), key=lambda i: len(encoded[i][0]))
    pad_id = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else 0
    totals = [0.0] * len(encoded)
    model.eval()
    for start in range(0, len(order), batch_size):
        chunk = order[start : start + batch_size]
        width = max(len(encoded[i][0]) for i in chunk)
        ids = torch.full((len(chunk), width), pad_id, dtype=torch.long)
        mask = torch.zeros((len(chunk), width), dtype=torch.long)
        for row, index in enumerate(chunk):
            sequence = encoded[index][0]
            ids[row, : len(sequence)] = torch.tensor(sequence)
            mask[row, : len(sequence)] = 1
        with torch.inference_mode():
            logits = model(input_ids=ids, attention_mask=mask).logits
        for row, index in enumerate(chunk):
            sequence, prompt_length = encoded[index]
            scores = logits[row, prompt_length - 1 : len(sequence) - 1].float()
            targets = torch.tensor(sequence[prompt_length:])[:, None]
            token_logprobs = scores.gather(1, targets).squeeze(1) - torch.logsumexp(scores, dim=-1)
            totals[index] = float(token_logprobs.sum())
    return totals
