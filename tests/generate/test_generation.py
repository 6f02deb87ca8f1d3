"""Generation: prompt selection, content-addressed ids, batches, and rows from a real model."""

from __future__ import annotations

from pathlib import Path

import pytest

from tasks.backends.base import SamplingSettings
from tasks.core.errors import CharterError
from tasks.generate.generation import (
    PromptItem,
    batch_ids,
    batches,
    generate_rows,
    generation_id,
    pending_batches,
    prompt_seed,
    select_prompts,
)
from tasks.ingest.ingest import ingest_prompt_set
from tasks.store.runs import RunContext
from tasks.store.store import Store

PROMPTS = Path(__file__).resolve().parents[2] / "datasets" / "healthcare-scheduling" / "prompts.jsonl"
SAMPLING = SamplingSettings(n=3, temperature=1.0, top_p=0.95, max_tokens=12, seed=7)


@pytest.fixture
def loaded(run: RunContext) -> Store:
    ingest_prompt_set(run, PROMPTS)
    return run.store


def test_selection_spreads_a_limit_across_families(loaded: Store) -> None:
    items = select_prompts(loaded, "healthcare-scheduling", limit=12)
    assert len({item.family for item in items}) == 12
    again = select_prompts(loaded, "healthcare-scheduling", limit=12)
    assert [i.prompt_id for i in items] == [i.prompt_id for i in again]
    urgent = select_prompts(loaded, "healthcare-scheduling", families=["urgent-symptoms"])
    assert len(urgent) == 15 and {i.family for i in urgent} == {"urgent-symptoms"}


def test_unknown_prompt_set_names_the_known_ones(loaded: Store) -> None:
    with pytest.raises(CharterError, match=r"no prompt set 'nope'.*healthcare-scheduling"):
        select_prompts(loaded, "nope")


def test_ids_hash_every_input_that_changes_the_output() -> None:
    base = generation_id("p", "m", "vllm", SAMPLING, 0)
    assert base == generation_id("p", "m", "vllm", SAMPLING, 0)
    variants = [
        generation_id("q", "m", "vllm", SAMPLING, 0),
        generation_id("p", "m2", "vllm", SAMPLING, 0),
        generation_id("p", "m", "hf", SAMPLING, 0),
        generation_id("p", "m", "vllm", SamplingSettings(n=3, temperature=0.5, max_tokens=12, seed=7), 0),
        generation_id("p", "m", "vllm", SAMPLING, 1),
    ]
    assert base not in variants and len(set(variants)) == len(variants)
    assert prompt_seed(7, "p") == prompt_seed(7, "p") != prompt_seed(8, "p")


def test_batches_are_fixed_by_order_and_pending_ones_are_found(store: Store) -> None:
    items = [PromptItem(f"p{i}", "booking", ({"role": "user", "content": f"hi {i}"},)) for i in range(5)]
    planned = batches(items, 2)
    assert [[i.prompt_id for i in b] for b in planned] == [["p0", "p1"], ["p2", "p3"], ["p4"]]
    done = [
        {
            "generation_id": gid,
            "prompt_id": "x",
            "model": "m",
            "backend": "hf",
            "params": "{}",
            "sample_index": 0,
            "text": "t",
            "finish_reason": "stop",
            "num_tokens": 1,
        }
        for gid in batch_ids(planned[1], "m", "hf", SAMPLING)
    ]
    store.append("generations", done, "r")
    assert pending_batches(store, planned, "m", "hf", SAMPLING) == [0, 2]
    assert pending_batches(store, planned, "m", "vllm", SAMPLING) == [0, 1, 2]


@pytest.mark.integration
def test_real_model_rows_are_n_distinct_samples_and_reproducible(hf_backend, loaded: Store) -> None:
    batch = select_prompts(loaded, "healthcare-scheduling", limit=2)
    rows = generate_rows(hf_backend, batch, SAMPLING)
    assert len(rows) == 2 * SAMPLING.n
    for item in batch:
        texts = [r["text"] for r in rows if r["prompt_id"] == item.prompt_id]
        assert len(texts) == SAMPLING.n and len(set(texts)) > 1
    assert all(0 < r["num_tokens"] <= SAMPLING.max_tokens for r in rows)
    assert {r["finish_reason"] for r in rows} <= {"stop", "length"}
    again = generate_rows(hf_backend, batch, SAMPLING)
    assert [r["text"] for r in again] == [r["text"] for r in rows]
    assert [r["generation_id"] for r in again] == [r["generation_id"] for r in rows]
