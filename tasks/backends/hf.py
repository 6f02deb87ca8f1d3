"""The transformers backend: the light fallback where vLLM is not installed.

Batched the way ``generate`` is fast: many sequences per call, left padding, and each
prompt repeated ``n`` times through ``num_return_sequences``. transformers samples from
one global generator, so a batch is seeded as a whole (from its prompts' seeds): the
same batch gives the same samples, and charter's batches are fixed by the prompt order.
"""

from __future__ import annotations

from collections.abc import Sequence

from tasks.backends.base import Completion, SamplingSettings, prefixes_for
from tasks.backends.chat import batch_seed, candidate_token_ids, prompt_token_ids
from tasks.backends.models import ResolvedModel
from tasks.core.conversation import Message
from tasks.core.errors import CharterError


class HFBackend:
    name = "hf"

    def __init__(self, model: ResolvedModel, *, max_batch_sequences: int = 128, device: str | None = None):
        import torch
        from transformers import AutoModelForCausalLM, AutoTokenizer

        self.model_id = model.model_id
        self.max_batch_sequences = max_batch_sequences
        self._torch = torch
        try:
            self.tokenizer = AutoTokenizer.from_pretrained(model.path)
            dtype = torch.float32 if not torch.cuda.is_available() else torch.bfloat16
            self.model = AutoModelForCausalLM.from_pretrained(model.path, dtype=dtype)
        except OSError as exc:
            raise CharterError(f"could not load model {model.path!r} with transformers: {exc}") from None
        self.device = device or ("cuda" if torch.cuda.is_available() else "cpu")
        self.model.to(self.device).eval()
        self.tokenizer.padding_side = "left"
        if self.tokenizer.pad_token_id is None:
            self.tokenizer.pad_token = self.tokenizer.eos_token

    def _padded(self, sequences: list[list[int]]):
        batch = self.tokenizer.pad({"input_ids": sequences}, padding=True, return_tensors="pt")
        return batch["input_ids"].to(self.device), batch["attention_mask"].to(self.device)

    def generate(
        self, conversations: Sequence[Sequence[Message]], sampling: SamplingSettings, seeds: Sequence[int]
    ) -> list[list[Completion]]:
        prompts = [prompt_token_ids(self.tokenizer, c) for c in conversations]
        per_call = max(1, self.max_batch_sequences // sampling.n)
        results: list[list[Completion]] = []
        for start in range(0, len(prompts), per_call):
            chunk, chunk_seeds = prompts[start : start + per_call], seeds[start : start + per_call]
            results.extend(self._generate_chunk(chunk, sampling, batch_seed(chunk_seeds)))
        return results

    def _generate_chunk(
        self, prompts: list[list[int]], sampling: SamplingSettings, seed: int
    ) -> list[list[Completion]]:
        torch = self._torch
        input_ids, attention_mask = self._padded(prompts)
        torch.manual_seed(seed)
        sample = sampling.temperature > 0
        with torch.inference_mode():
            output = self.model.generate(
                input_ids=input_ids,
                attention_mask=attention_mask,
                do_sample=sample,
                temperature=sampling.temperature if sample else None,
                top_p=sampling.top_p if sample else None,
                top_k=None,
                max_new_tokens=sampling.max_tokens,
                num_return_sequences=sampling.n,
                pad_token_id=self.tokenizer.pad_token_id,
            )
        new_tokens = output[:, input_ids.shape[1] :].tolist()
        eos = self.tokenizer.eos_token_id
        completions = []
        for tokens in new_tokens:
            finished = eos in tokens
            kept = tokens[: tokens.index(eos)] if finished else tokens
            completions.append(
                Completion(
                    text=self.tokenizer.decode(kept, skip_special_tokens=True),
                    finish_reason="stop" if finished else "length",
                    num_tokens=len(kept) + int(finished),
                )
            )
        return [completions[i * sampling.n : (i + 1) * sampling.n] for i in range(len(prompts))]

    def next_token_logprobs(
        self,
        conversations: Sequence[Sequence[Message]],
        candidates: Sequence[str],
        assistant_prefix: str | Sequence[str] = "",
    ) -> list[dict[str, float]]:
        torch = self._torch
        ids = candidate_token_ids(self.tokenizer, candidates)
        prefixes = prefixes_for(assistant_prefix, len(conversations))
        prompts = [
            prompt_token_ids(self.tokenizer, c, prefix)
            for c, prefix in zip(conversations, prefixes, strict=True)
        ]
        results: list[dict[str, float]] = []
        for start in range(0, len(prompts), self.max_batch_sequences):
            input_ids, attention_mask = self._padded(prompts[start : start + self.max_batch_sequences])
            # Left padding shifts every position; give each sequence its own positions from 0.
            position_ids = (attention_mask.cumsum(-1) - 1).clamp(min=0)
            with torch.inference_mode():
                # Only the last position's logits: the whole sequence's would be batch x length x
                # vocabulary floats (gigabytes for a judge batch) and a quarter of the time.
                logits = self.model(
                    input_ids=input_ids,
                    attention_mask=attention_mask,
                    position_ids=position_ids,
                    logits_to_keep=1,
                ).logits[:, -1, :]
            logprobs = torch.log_softmax(logits.float(), dim=-1)[:, ids].tolist()
            results.extend(dict(zip(candidates, row, strict=True)) for row in logprobs)
        return results

    def sequence_logprobs(
        self, conversations: Sequence[Sequence[Message]], completions: Sequence[str]
    ) -> list[float]:
        from tasks.train.logprobs import sequence_logprobs

        return sequence_logprobs(self.model, self.tokenizer, conversations, completions)

    def close(self) -> None:
        del self.model
