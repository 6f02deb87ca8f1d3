"""The OpenAI-compatible backend: a vLLM server, or any hosted chat-completions endpoint.

The server holds the model and its tokenizer, so this backend sends messages and lets the
server apply the chat template; vLLM's template is the one the in-process backends use, so
their judge log-probabilities agree. HTTP, timeouts, retries and backoff (``Retry-After``
honoured) are the official ``openai`` client's (see ``tasks.backends.server``); vLLM's
extensions travel in ``extra_body``.

One request per conversation keeps each conversation's seed its own, and the server batches
whatever is in flight. The requests run on a small thread pool over one synchronous client,
not on ``AsyncOpenAI``: the backend protocol is synchronous and is called from Prefect task
threads and Ray actors, where an event loop per call (``asyncio.run``) fails if one is
already running and could not keep an async client, whose connections belong to the loop
that opened them; the synchronous client is thread-safe and shares one connection pool.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from typing import Any, TypeVar

from openai.types.chat import ChatCompletion
from openai.types.chat.chat_completion import Choice
from openai.types.completion_usage import CompletionUsage

from tasks.backends.base import Completion, SamplingSettings, prefixes_for
from tasks.backends.chat import candidate_token_ids
from tasks.backends.models import ResolvedModel
from tasks.backends.server import open_client, send, server_root
from tasks.core.conversation import Message
from tasks.core.errors import CharterError

T = TypeVar("T")
R = TypeVar("R")

# vLLM's prefix for log-prob tokens when ``return_tokens_as_token_ids`` is set.
TOKEN_ID_PREFIX = "token_id:"


def choice_token_counts(choices: Sequence[Choice], usage: CompletionUsage | None) -> list[int]:
    """Completion lengths in tokens, one per choice, from the best evidence in the response.

    The per-token ``logprobs.content`` (requested whenever n > 1, so that every
    OpenAI-compatible server gives an exact count), else the usage total, exact for a single
    choice. Only a server that gives neither for several choices gets the total divided
    evenly, an estimate, because ``Completion.num_tokens`` must be an integer.
    """
    counts = [len(c.logprobs.content) if c.logprobs and c.logprobs.content else None for c in choices]
    if all(count is not None for count in counts):
        return [int(count) for count in counts if count is not None]
    total = usage.completion_tokens if usage and usage.completion_tokens else 0
    known = sum(count for count in counts if count is not None)
    missing = sum(1 for count in counts if count is None)
    share = max(total - known, 0) // missing
    return [share if count is None else count for count in counts]


def token_id_of(token: str) -> int | None:
    """The id in vLLM's ``token_id:N`` form, or None for a plain token string."""
    if not token.startswith(TOKEN_ID_PREFIX):
        return None
    try:
        return int(token.removeprefix(TOKEN_ID_PREFIX))
    except ValueError:
        return None


class OpenAIBackend:
    name = "openai"

    def __init__(
        self,
        base_url: str,
        model: ResolvedModel,
        *,
        concurrency: int = 8,
        timeout: float = 120.0,
        max_retries: int = 4,
        api_key: str | None = None,
    ):
        if concurrency < 1 or max_retries < 0 or timeout <= 0:
            raise CharterError(
                "openai backend options: concurrency must be >= 1, max_retries >= 0, timeout > 0"
            )
        self.model_id = model.model_id
        self.served_model = model.path
        self.root_url = server_root(base_url)
        self.concurrency = concurrency
        self._client = open_client(base_url, timeout=timeout, max_retries=max_retries, api_key=api_key)
        self._tokens: dict[tuple[str, bool], list[int]] = {}

    def _map(self, function: Callable[[T], R], items: Sequence[T]) -> list[R]:
        """``function`` over ``items`` on ``concurrency`` threads; results in input order.

        The first failure cancels the requests not yet started, so a bad request or a dead
        server ends the call after at most ``concurrency`` more attempts, not one per item.
        """
        if len(items) <= 1 or self.concurrency == 1:
            return [function(item) for item in items]
        pool = ThreadPoolExecutor(max_workers=self.concurrency, thread_name_prefix="charter-openai")
        try:
            futures = [pool.submit(function, item) for item in items]
            return [future.result() for future in futures]
        finally:
            pool.shutdown(wait=True, cancel_futures=True)

    def _chat(self, request: dict[str, Any]) -> ChatCompletion:
        return send(self._client, lambda: self._client.chat.completions.create(**request), ChatCompletion)

    # -- Backend protocol -------------------------------------------------------------------

    def generate(
        self, conversations: Sequence[Sequence[Message]], sampling: SamplingSettings, seeds: Sequence[int]
    ) -> list[list[Completion]]:
        if len(seeds) != len(conversations):
            raise CharterError(f"{len(conversations)} conversations but {len(seeds)} seeds")
        requests = [
            self._generation_request(c, sampling, s) for c, s in zip(conversations, seeds, strict=True)
        ]
        return self._map(self._generate_one, requests)

    def _generation_request(
        self, messages: Sequence[Message], sampling: SamplingSettings, seed: int
    ) -> dict[str, Any]:
        request: dict[str, Any] = {
            "model": self.served_model,
            "messages": [dict(m) for m in messages],
            "n": sampling.n,
            "temperature": sampling.temperature,
            "top_p": sampling.top_p,
            "max_tokens": sampling.max_tokens,
            "seed": seed,
        }
        if sampling.n > 1:
            # Standard OpenAI field, and the only portable per-choice token count (see choice_token_counts).
            request["logprobs"] = True
        return request

    def _generate_one(self, request: dict[str, Any]) -> list[Completion]:
        answer = self._chat(request)
        choices = sorted(getattr(answer, "choices", None) or [], key=lambda c: c.index)
        if len(choices) != request["n"]:
            raise CharterError(f"asked the server for {request['n']} completions and got {len(choices)}")
        counts = choice_token_counts(choices, answer.usage)
        return [
            Completion(
                text=choice.message.content or "", finish_reason=choice.finish_reason, num_tokens=count
            )
            for choice, count in zip(choices, counts, strict=True)
        ]

    def next_token_logprobs(
        self,
        conversations: Sequence[Sequence[Message]],
        candidates: Sequence[str],
        assistant_prefix: str | Sequence[str] = "",
    ) -> list[dict[str, float]]:
        """Candidate log-probabilities through vLLM's extensions (``/tokenize``, ``logprob_token_ids``).

        ``logprob_token_ids`` returns exactly the candidates' log-probabilities, where
        ``top_logprobs=k`` would miss the unlikely ones; ``return_tokens_as_token_ids`` names
        them ``token_id:N``, so they map back by id and not by decoded text (which is ambiguous
        for tokens such as a leading space).
        """
        ids = candidate_token_ids(self._tokenize, candidates)
        prefixes = prefixes_for(assistant_prefix, len(conversations))
        requests = [
            self._judge_request(c, ids, prefix) for c, prefix in zip(conversations, prefixes, strict=True)
        ]
        by_id = self._map(self._judge_one, requests)
        results = []
        for logprobs in by_id:
            missing = [c for c, i in zip(candidates, ids, strict=True) if i not in logprobs]
            if missing:
                raise CharterError(
                    f"the server returned no log-probabilities for candidates {missing!r}; "
                    "the openai backend's judge needs a vLLM server (logprob_token_ids)"
                )
            results.append({c: logprobs[i] for c, i in zip(candidates, ids, strict=True)})
        return results

    def _tokenize(self, text: str, add_special_tokens: bool) -> dict[str, list[int]]:
        """The server's tokenizer (vLLM's ``/tokenize``), called as ``chat.candidate_token_ids`` calls one."""
        key = (text, add_special_tokens)
        if key not in self._tokens:
            body = {"model": self.served_model, "prompt": text, "add_special_tokens": add_special_tokens}
            url = f"{self.root_url}/tokenize"
            answer = send(self._client, lambda: self._client.post(url, cast_to=object, body=body), dict)
            tokens = answer.get("tokens")
            if not isinstance(tokens, list):
                raise CharterError(f"the server's /tokenize gave no token list for {text!r}")
            self._tokens[key] = [int(token) for token in tokens]
        return {"input_ids": self._tokens[key]}

    def _judge_request(
        self, messages: Sequence[Message], token_ids: list[int], assistant_prefix: str
    ) -> dict[str, Any]:
        vllm_fields: dict[str, Any] = {"logprob_token_ids": token_ids, "return_tokens_as_token_ids": True}
        request: dict[str, Any] = {
            "model": self.served_model,
            "messages": [dict(m) for m in messages],
            "max_tokens": 1,
            "temperature": 1.0,
            "logprobs": True,
            "extra_body": vllm_fields,
        }
        if assistant_prefix:
            # The template renders the prefix as the open start of the assistant's turn: the same
            # text the in-process backends build as generation prompt + prefix.
            request["messages"].append({"role": "assistant", "content": assistant_prefix})
            vllm_fields.update(continue_final_message=True, add_generation_prompt=False)
        return request

    def _judge_one(self, request: dict[str, Any]) -> dict[int, float]:
        """Token id -> log-probability at the first generated position."""
        answer = self._chat(request)
        try:
            position = answer.choices[0].logprobs.content[0]
        except (AttributeError, IndexError, TypeError):
            raise CharterError("the server's answer has no log-probabilities for the first token") from None
        logprobs: dict[int, float] = {}
        # The sampled token and the requested ones; the sampled one may also be a candidate.
        for entry in [position, *(position.top_logprobs or [])]:
            token_id = token_id_of(entry.token)
            if token_id is not None:
                logprobs[token_id] = float(entry.logprob)
        return logprobs

    def close(self) -> None:
        self._client.close()
