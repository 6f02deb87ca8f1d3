"""bench/judge.py's prefill limit: how fast the engine reads the judge's prompts when it only reads them.

The log-prob judge needs one forward pass per order and no generated text, so its ceiling is the
engine's prefill rate: limit in pairs/s = prefill tokens/s / prompt tokens per pair (both orders).
The prefill rate is measured on the judge's own prompts (token ids built as ``tasks.label.judge``
and ``VLLMBackend.next_token_logprobs`` build them, every first order then every second, the
order the judge sends), in one ``generate`` call with ``max_tokens=1``, no log-probabilities and
``skip_reading_prefix_cache=True``: every prompt token is computed. The judge itself reads vLLM's
prefix cache, so it may beat this limit (a fraction above 1) by not recomputing what the two
orders (and every prompt's chat-template start) share; how many prompt tokens the cache served in
the judge's timed call is read from each request's ``num_cached_tokens``, and vLLM caches whole
KV blocks only (``block_size`` tokens: a shared prefix shorter than a block is recomputed).
"""

from __future__ import annotations

import time
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from typing import Any

TARGET_OF_LIMIT = 0.8


def judge_prompt_ids(backend: Any, comparisons: Sequence[Any], template: str) -> list[list[int]]:
    """Each order's prompt as token ids, every comparison's first order then its second."""
    from tasks.backends.chat import prompt_token_ids
    from tasks.label.judge import ANSWER_PREFIX, judge_messages

    return [
        prompt_token_ids(
            backend.tokenizer, judge_messages(template, c.pair, c.principle, a_first, False), ANSWER_PREFIX
        )
        for a_first in (True, False)
        for c in comparisons
    ]


def measure_prefill(backend: Any, prompts: list[list[int]]) -> dict[str, Any]:
    """One call computing every prompt token once (no cache read) and sampling one token each."""
    from vllm import SamplingParams
    from vllm.inputs import TokensPrompt

    params = SamplingParams(max_tokens=1, temperature=1.0, skip_reading_prefix_cache=True)
    backend.llm.reset_prefix_cache()
    start = time.perf_counter()
    outputs = backend.llm.generate(
        [TokensPrompt(prompt_token_ids=p) for p in prompts], params, use_tqdm=False
    )
    seconds = time.perf_counter() - start
    tokens = sum(len(p) for p in prompts)
    return {
        "prompts": len(prompts),
        "prompt_tokens": tokens,
        "cached_tokens": sum(o.num_cached_tokens or 0 for o in outputs),
        "seconds": seconds,
        "tokens_per_s": tokens / seconds,
    }


@contextmanager
def recording_cache_hits(backend: Any) -> Iterator[dict[str, int]]:
    """Counts prompt tokens and prefix-cache hits of the vLLM ``generate`` calls made inside."""
    hits = {"prompts": 0, "prompt_tokens": 0, "cached_tokens": 0}
    llm = backend.llm
    generate = llm.generate

    def counted(*args: Any, **kwargs: Any) -> Any:
        outputs = generate(*args, **kwargs)
        for output in outputs:
            hits["prompts"] += 1
            hits["prompt_tokens"] += len(output.prompt_token_ids)
            hits["cached_tokens"] += output.num_cached_tokens or 0
        return outputs

    llm.generate = counted
    try:
        yield hits
    finally:
        del llm.generate  # the instance attribute goes; the class's method shows through again


def prefill_figures(
    backend: Any, prompts: list[list[int]], judge_pairs_per_s: float, hits: dict[str, int]
) -> dict[str, Any]:
    prefill = measure_prefill(backend, prompts)
    tokens_per_pair = 2 * prefill["prompt_tokens"] / len(prompts)
    limit = prefill["tokens_per_s"] / tokens_per_pair
    fraction = judge_pairs_per_s / limit
    return {
        "prefill": prefill,
        "block_size": backend.llm.llm_engine.vllm_config.cache_config.block_size,
        "judge_cache": hits,
        "prompt_tokens_per_pair": tokens_per_pair,
        "limit_pairs_per_s": limit,
        "fraction_of_limit": fraction,
        "target": {"fraction": TARGET_OF_LIMIT, "pass": fraction >= TARGET_OF_LIMIT},
    }


def print_prefill(figures: dict[str, Any] | None) -> None:
    if figures is None:
        print("prefill limit: measured on vLLM only")
        return
    prefill, hits = figures["prefill"], figures["judge_cache"]
    share = hits["cached_tokens"] / hits["prompt_tokens"] if hits["prompt_tokens"] else 0.0
    verdict = "PASS" if figures["target"]["pass"] else "MISS"
    print(
        f"prefill limit: {prefill['prompt_tokens']:,} prompt tokens ({prefill['prompts']} prompts, "
        f"{figures['prompt_tokens_per_pair']:.0f} per pair) in {prefill['seconds']:.1f} s, no cache read: "
        f"{prefill['tokens_per_s']:.0f} tokens/s -> {figures['limit_pairs_per_s']:.2f} pairs/s; the judge's "
        f"timed call got {hits['cached_tokens']:,} of {hits['prompt_tokens']:,} prompt tokens "
        f"({share:.0%}) from the prefix cache (KV blocks of {figures['block_size']} tokens)\n"
        f"logprob judge / prefill limit: {figures['fraction_of_limit']:.2f}; "
        f"target >= {TARGET_OF_LIMIT}: {verdict}"
    )
