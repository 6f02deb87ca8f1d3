"""Batched sequence log-probabilities against the plain one-sequence-at-a-time sum (real SmolLM2)."""

from __future__ import annotations

import pytest

from tasks.train.logprobs import sequence_logprobs

PROMPTS = [
    [{"role": "user", "content": "Can I book a check-up next Tuesday?"}],
    [{"role": "user", "content": "I have had chest pain since this morning, what should I do?"}],
    [{"role": "system", "content": "You schedule visits."}, {"role": "user", "content": "Hi"}],
]
COMPLETIONS = [
    "Yes, Tuesday at 10:00 is free. Shall I book it?",
    "Chest pain can be an emergency: call 911 or go to the nearest emergency department now.",
    "Hello!",
]


def unbatched(model, tokenizer, messages, completion: str) -> float:
    """The definition: log-softmax over the whole vocabulary at each completion position, summed."""
    import torch

    text = tokenizer.apply_chat_template(messages, add_generation_prompt=True, tokenize=False)
    prompt = tokenizer(text, add_special_tokens=False)["input_ids"]
    answer = tokenizer(completion + tokenizer.eos_token, add_special_tokens=False)["input_ids"]
    with torch.inference_mode():
        logits = model(input_ids=torch.tensor([prompt + answer])).logits[0]
    logprobs = torch.log_softmax(logits[len(prompt) - 1 : -1].float(), dim=-1)
    return float(logprobs[torch.arange(len(answer)), torch.tensor(answer)].sum())


def test_batched_sums_equal_one_sequence_at_a_time(hf_backend) -> None:
    model, tokenizer = hf_backend.model, hf_backend.tokenizer
    expected = [unbatched(model, tokenizer, m, c) for m, c in zip(PROMPTS, COMPLETIONS, strict=True)]

    batched = sequence_logprobs(model, tokenizer, PROMPTS, COMPLETIONS, batch_size=3)
    single = sequence_logprobs(model, tokenizer, PROMPTS, COMPLETIONS, batch_size=1)

    assert batched == pytest.approx(expected, abs=1e-3)
    assert single == pytest.approx(expected, abs=1e-3)
    # Each sum is its own sequence's: a longer, less likely completion scores lower.
    assert len(set(round(x, 3) for x in batched)) == 3
    assert all(x < 0 for x in batched)


def test_order_of_inputs_is_kept_when_lengths_sort_differently(hf_backend) -> None:
    model, tokenizer = hf_backend.model, hf_backend.tokenizer
    forward = sequence_logprobs(model, tokenizer, PROMPTS, COMPLETIONS)
    backward = sequence_logprobs(model, tokenizer, PROMPTS[::-1], COMPLETIONS[::-1])

    assert backward[::-1] == pytest.approx(forward, abs=1e-3)
