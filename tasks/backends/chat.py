"""Prompt rendering shared by the backends that hold a local tokenizer (vLLM in-process, transformers).

Both tokenize the chat-templated text themselves and hand token ids to the model, so the
two backends see exactly the same tokens and their log-probabilities can be compared.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from tasks.core.conversation import Message
from tasks.core.errors import CharterError


def prompt_token_ids(tokenizer: Any, messages: Sequence[Message], assistant_prefix: str = "") -> list[int]:
    """The model's chat template applied to ``messages``, opened for the assistant's reply."""
    text = tokenizer.apply_chat_template(list(messages), add_generation_prompt=True, tokenize=False)
    return tokenizer(text + assistant_prefix, add_special_tokens=False)["input_ids"]


def candidate_token_ids(tokenizer: Any, candidates: Sequence[str]) -> list[int]:
    """One token id per candidate string; a candidate that is not a single token is an error."""
    ids = []
    for candidate in candidates:
        tokens = tokenizer(candidate, add_special_tokens=False)["input_ids"]
        if len(tokens) != 1:
            raise CharterError(
                f"candidate {candidate!r} is {len(tokens)} tokens for this tokenizer; it must be one"
            )
        ids.append(tokens[0])
    if len(set(ids)) != len(ids):
        raise CharterError(f"candidates {list(candidates)!r} do not map to distinct tokens")
    return ids


def batch_seed(seeds: Sequence[int]) -> int:
    """One seed for a whole batch, determined by the batch's own seeds (and so by its prompts)."""
    value = 0
    for seed in seeds:
        value = (value * 1_000_003 + seed) % (2**63 - 1)
    return value
