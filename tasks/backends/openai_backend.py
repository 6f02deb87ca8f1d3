"""The OpenAI-compatible HTTP backend: a vLLM server, or any hosted chat-completions endpoint.

The server holds the model and its tokenizer, so this backend sends messages and lets the
server apply the chat template; vLLM's template is the one the in-process backends use, so
their judge log-probabilities agree. Requests run on a small thread pool: the server batches
whatever is in flight, and one request per conversation keeps each conversation's seed its own.
Transient failures (429, 5xx, timeouts, dropped connections) are retried with exponential
backoff; a request the server refuses (any other 4xx) fails at once, because retrying it
cannot help and the server's message says what to fix.
"""

from __future__ import annotations

import email.utils
import os
import time
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime
from typing import Any, TypeVar

import httpx

from tasks.backends.base import Completion, SamplingSettings, prefixes_for
from tasks.backends.models import ResolvedModel
from tasks.backends.server import server_root
from tasks.core.conversation import Message
from tasks.core.errors import CharterError

T = TypeVar("T")
R = TypeVar("R")

# A server may ask for any Retry-After; a run should not hang for hours because one did.
MAX_RETRY_AFTER = 120.0
# vLLM's prefix for log-prob tokens when ``return_tokens_as_token_ids`` is set.
TOKEN_ID_PREFIX = "token_id:"


def is_retryable(status: int) -> bool:
    """Rate limits, request timeouts and server errors are transient; other 4xx are the request's fault."""
    return status in (408, 429) or status >= 500


def retry_after_seconds(response: httpx.Response) -> float | None:
    """The server's ``Retry-After`` (seconds or an HTTP date), capped at ``MAX_RETRY_AFTER``."""
    value = response.headers.get("retry-after")
    if value is None:
        return None
    try:
        seconds = float(value)
    except ValueError:
        try:
            when = email.utils.parsedate_to_datetime(value)
        except (TypeError, ValueError):
            return None
        if when.tzinfo is None:
            when = when.replace(tzinfo=UTC)
        seconds = (when - datetime.now(UTC)).total_seconds()
    return min(max(seconds, 0.0), MAX_RETRY_AFTER)


def error_message(response: httpx.Response) -> str:
    """The server's own words: OpenAI's ``{"error": {"message"}}``, FastAPI's ``detail``, or the text."""
    try:
        body = response.json()
    except ValueError:
        return response.text.strip()[:500] or response.reason_phrase
    if isinstance(body, dict):
        error = body.get("error")
        if isinstance(error, dict) and error.get("message"):
            return str(error["message"])
        for key in ("error", "detail", "message"):
            if body.get(key):
                return str(body[key])
    return str(body)[:500]


def describe_transport_error(exc: httpx.TransportError) -> str:
    """httpx's messages are sometimes empty (a bare timeout): always name the kind of failure."""
    text = str(exc).strip()
    return f"{type(exc).__name__}: {text}" if text else type(exc).__name__


def choice_token_counts(choices: list[dict[str, Any]], usage: dict[str, Any] | None) -> list[int]:
    """Completion lengths in tokens, one per choice, from the best evidence in the response.

    In order: vLLM's per-choice ``token_ids``; the per-token ``logprobs.content`` (requested
    whenever n > 1, so that every OpenAI-compatible server gives an exact count); the usage
    total, exact for a single choice. Only a server that gives none of these for several
    choices gets the total divided evenly, an estimate, because ``Completion.num_tokens``
    must be an integer.
    """
    counts: list[int | None] = []
    for choice in choices:
        token_ids = choice.get("token_ids")
        content = (choice.get("logprobs") or {}).get("content")
        if isinstance(token_ids, list):
            counts.append(len(token_ids))
        elif isinstance(content, list):
            counts.append(len(content))
        else:
            counts.append(None)
    if all(count is not None for count in counts):
        return [int(count) for count in counts if count is not None]
    total = int((usage or {}).get("completion_tokens") or 0)
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
        backoff: float = 0.5,
        api_key: str | None = None,
    ):
        if concurrency < 1 or max_retries < 0 or backoff < 0 or timeout <= 0:
            raise CharterError(
                "openai backend options: concurrency must be >= 1, max_retries >= 0, backoff >= 0, "
                "timeout > 0"
            )
        self.model_id = model.model_id
        self.served_model = model.path
        self.root_url = server_root(base_url)
        self.concurrency = concurrency
        self.max_retries = max_retries
        self.backoff = backoff
        key = api_key or os.environ.get("OPENAI_API_KEY")
        self._client = httpx.Client(
            headers={"Authorization": f"Bearer {key}"} if key else {},
            timeout=timeout,
            limits=httpx.Limits(max_connections=concurrency, max_keepalive_connections=concurrency),
        )
        self._token_ids: dict[str, int] = {}

    # -- HTTP -----------------------------------------------------------------------------

    def _post(self, path: str, payload: dict[str, Any]) -> dict[str, Any]:
        """POST JSON and return the JSON answer, retrying what is transient and failing on the rest."""
        url = self.root_url + path
        attempts = self.max_retries + 1
        for attempt in range(attempts):
            final = attempt == attempts - 1
            try:
                response = self._client.post(url, json=payload)
            except httpx.TransportError as exc:
                if final:
                    raise CharterError(
                        f"cannot reach the OpenAI-compatible server at {url}: "
                        f"{describe_transport_error(exc)} (after {attempts} attempts)"
                    ) from None
                self._wait(attempt, None)
                continue
            if response.is_success:
                return self._json(response, url)
            status = response.status_code
            if not is_retryable(status):
                raise CharterError(
                    f"the OpenAI-compatible server at {url} refused the request: "
                    f"HTTP {status}: {error_message(response)}"
                )
            if final:
                raise CharterError(
                    f"the OpenAI-compatible server at {url} still answered HTTP {status} after "
                    f"{attempts} attempts: {error_message(response)}"
                )
            self._wait(attempt, retry_after_seconds(response))
        raise AssertionError("unreachable: the last attempt returns or raises")

    def _wait(self, attempt: int, retry_after: float | None) -> None:
        """Exponential backoff, unless the server said how long to wait."""
        time.sleep(retry_after if retry_after is not None else self.backoff * 2**attempt)

    @staticmethod
    def _json(response: httpx.Response, url: str) -> dict[str, Any]:
        try:
            body = response.json()
        except ValueError:
            raise CharterError(
                f"the server at {url} did not answer with JSON: {response.text[:200]!r}"
            ) from None
        if not isinstance(body, dict):
            raise CharterError(f"the server at {url} answered {type(body).__name__}, not a JSON object")
        return body

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
        body = self._post("/v1/chat/completions", request)
        choices = sorted(body.get("choices") or [], key=lambda c: c.get("index", 0))
        if len(choices) != request["n"]:
            raise CharterError(f"asked the server for {request['n']} completions and got {len(choices)}")
        counts = choice_token_counts(choices, body.get("usage"))
        return [
            Completion(
                text=(choice.get("message") or {}).get("content") or "",
                finish_reason=choice.get("finish_reason"),
                num_tokens=count,
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
        ids = self._candidate_token_ids(candidates)
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

    def _candidate_token_ids(self, candidates: Sequence[str]) -> list[int]:
        """One token id per candidate, by the server's own tokenizer, as ``chat.candidate_token_ids`` does."""
        ids = []
        for candidate in candidates:
            if candidate not in self._token_ids:
                body = self._post(
                    "/tokenize",
                    {"model": self.served_model, "prompt": candidate, "add_special_tokens": False},
                )
                tokens = body.get("tokens")
                if not isinstance(tokens, list):
                    raise CharterError(f"the server's /tokenize gave no token list for {candidate!r}")
                if len(tokens) != 1:
                    raise CharterError(
                        f"candidate {candidate!r} is {len(tokens)} tokens for this tokenizer; it must be one"
                    )
                self._token_ids[candidate] = int(tokens[0])
            ids.append(self._token_ids[candidate])
        if len(set(ids)) != len(ids):
            raise CharterError(f"candidates {list(candidates)!r} do not map to distinct tokens")
        return ids

    def _judge_request(
        self, messages: Sequence[Message], token_ids: list[int], assistant_prefix: str
    ) -> dict[str, Any]:
        request: dict[str, Any] = {
            "model": self.served_model,
            "messages": [dict(m) for m in messages],
            "max_tokens": 1,
            "temperature": 1.0,
            "logprobs": True,
            "logprob_token_ids": token_ids,
            "return_tokens_as_token_ids": True,
        }
        if assistant_prefix:
            # The template renders the prefix as the open start of the assistant's turn: the same
            # text the in-process backends build as generation prompt + prefix.
            request["messages"].append({"role": "assistant", "content": assistant_prefix})
            request["continue_final_message"] = True
            request["add_generation_prompt"] = False
        return request

    def _judge_one(self, request: dict[str, Any]) -> dict[int, float]:
        """Token id -> log-probability at the first generated position."""
        body = self._post("/v1/chat/completions", request)
        try:
            position = body["choices"][0]["logprobs"]["content"][0]
        except (KeyError, IndexError, TypeError):
            raise CharterError("the server's answer has no log-probabilities for the first token") from None
        logprobs: dict[int, float] = {}
        # The sampled token and the requested ones; the sampled one may also be a candidate.
        for entry in [position, *position.get("top_logprobs", [])]:
            token_id = token_id_of(str(entry.get("token", "")))
            if token_id is not None:
                logprobs[token_id] = float(entry["logprob"])
        return logprobs

    def close(self) -> None:
        self._client.close()
