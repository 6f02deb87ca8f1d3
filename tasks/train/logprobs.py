"""Sequence log-probabilities of given completions: what DPO's margin and the eval's KL are made of.

The transformers backend scores through :func:`sequence_logprobs` and the vLLM backend
tokenizes through :func:`encode_completion`, so both score exactly the same tokens.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from tasks.backends.chat import prompt_token_ids
from tasks.core.conversation import Message

# Sequences per forward pass: one at a time left a 2-core CPU mostly idle between small matmuls.
BATCH_SIZE = 8


def encode_completion(tokenizer: Any, messages: Sequence[Message], completion: str) -> tuple[list[int], int]:
    """The chat-formatted prompt then the completion (end-of-sequence included), and the prompt's length."""
    prompt_ids = prompt_token_ids(tokenizer, messages)
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

    encoded = [encode_completion(tokenizer, m, c) for m, c in zip(prompts, completions, strict=True)]
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
            logits = model(input_ids=ids.to(model.device), attention_mask=mask.to(model.device)).logits
        for row, index in enumerate(chunk):
            sequence, prompt_length = encoded[index]
            scores = logits[row, prompt_length - 1 : len(sequence) - 1].float()
            targets = torch.tensor(sequence[prompt_length:], device=scores.device)[:, None]
            token_logprobs = scores.gather(1, targets).squeeze(1) - torch.logsumexp(scores, dim=-1)
            totals[index] = float(token_logprobs.sum())
    return totals
