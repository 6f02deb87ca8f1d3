"""Reaching an OpenAI-compatible server through the official ``openai`` client.

The client does the HTTP work: connection pooling, timeouts, and retries of 408/409/429/5xx
answers, timeouts and dropped connections, with capped exponential backoff and jitter that
gives way to the server's ``Retry-After`` / ``retry-after-ms`` (up to two minutes; a longer
wait is not retried). This module builds that client for a user's ``--base-url``, checks the
server before any work starts, and turns the client's exceptions into a ``CharterError`` that
names the URL, the status or the kind of failure, and how many attempts were made.

``openai`` is imported where it is used: the CLI imports this module for every command, and
the client costs about a second to import.
"""

from __future__ import annotations

import json
import os
from collections.abc import Callable
from typing import TYPE_CHECKING, Any, TypeVar

from tasks.core.errors import CharterError

if TYPE_CHECKING:
    from openai import APIConnectionError, APIError, APIStatusError, OpenAI

T = TypeVar("T")

# vLLM's convention for a server started without --api-key: the client insists on some key.
NO_API_KEY = "EMPTY"


def server_root(base_url: str) -> str:
    """The server's root URL: users paste either ``http://host:port`` or ``http://host:port/v1``.

    The chat endpoint lives under ``/v1`` but vLLM's ``/tokenize`` lives at the root, so the
    backend keeps the root and adds each endpoint's own path.
    """
    url = base_url.strip().rstrip("/")
    if not url.startswith(("http://", "https://")):
        raise CharterError(f"the openai backend needs an http:// or https:// base URL, not {base_url!r}")
    return url.removesuffix("/v1")


def open_client(base_url: str, *, timeout: float, max_retries: int, api_key: str | None = None) -> OpenAI:
    """The official client on the server's ``/v1``, with the key given, else ``$OPENAI_API_KEY``."""
    from openai import OpenAI

    return OpenAI(
        base_url=f"{server_root(base_url)}/v1",
        api_key=api_key or os.environ.get("OPENAI_API_KEY") or NO_API_KEY,
        timeout=timeout,
        max_retries=max_retries,
    )


def check_server(base_url: str, timeout: float = 5.0) -> list[str]:
    """The server's model names; a clear error if it cannot be reached or does not answer as expected."""
    if not base_url:
        raise CharterError("the openai backend needs --base-url (e.g. http://127.0.0.1:8000/v1)")
    client = open_client(base_url, timeout=timeout, max_retries=0)
    try:
        # A plain GET, not ``models.list()``, whose pager fails on an answer that is not JSON.
        answer = send(client, lambda: client.get("/models", cast_to=object), dict)
    finally:
        client.close()
    models = answer.get("data")
    if not isinstance(models, list):
        raise CharterError(f"{client.base_url}models answered without a model list: {str(answer)[:200]}")
    return [str(model.get("id", "")) for model in models if isinstance(model, dict)]


def send(client: OpenAI, request: Callable[[], Any], answer_type: type[T]) -> T:
    """One request through ``client``; its failures, or an answer of another shape, as ``CharterError``."""
    from openai import APIConnectionError, APIStatusError

    try:
        answer = request()
    except APIStatusError as exc:
        raise CharterError(status_failure(exc, client.max_retries)) from None
    except APIConnectionError as exc:
        raise CharterError(connection_failure(exc)) from None
    except json.JSONDecodeError as exc:
        raise CharterError(f"the server at {client.base_url} sent invalid JSON: {exc}") from None
    if not isinstance(answer, answer_type):
        raise CharterError(
            f"the server at {client.base_url} did not answer with a JSON {answer_type.__name__}: "
            f"{str(answer)[:200]!r}"
        )
    return answer


def attempts_made(exc: APIError) -> int:
    """How many times the client sent the failed request: it numbers its retries in a header."""
    retries = exc.request.headers.get("x-stainless-retry-count", "0")
    return int(retries) + 1 if retries.isdigit() else 1


def status_failure(exc: APIStatusError, max_retries: int) -> str:
    """An error answer: the URL, the status, the server's own message and, if retried, how often."""
    attempts = attempts_made(exc)
    after = f" after {attempts} attempts" if attempts > 1 else ""
    message = f"the OpenAI-compatible server at {exc.request.url} answered HTTP {exc.status_code}{after}: "
    message += server_message(exc.body)
    retry_after = exc.response.headers.get("retry-after")
    if retry_after is not None and attempts <= max_retries:
        # Retries were left, so the client declined the wait the server asked for.
        message += f" (it asked to retry after {retry_after} s; the client waits two minutes at most)"
    return message


def connection_failure(exc: APIConnectionError) -> str:
    """No answer at all: the URL, what went wrong underneath (refused, timed out...), the attempts."""
    from openai import APITimeoutError

    cause = exc.__cause__
    detail = str(cause).strip() if cause is not None else ""
    kind = type(cause).__name__ if cause is not None else type(exc).__name__
    attempts = attempts_made(exc)
    what = "no answer in time from" if isinstance(exc, APITimeoutError) else "cannot reach"
    return (
        f"{what} the OpenAI-compatible server at {exc.request.url}: "
        f"{kind}{': ' + detail if detail else ''} (after {attempts} attempt{'s' if attempts > 1 else ''})"
    )


def server_message(body: object) -> str:
    """The server's own words: OpenAI's ``{"error": {"message"}}`` (the client unwraps ``error``),
    vLLM's older ``message``, FastAPI's ``detail``, or the raw text."""
    if isinstance(body, dict):
        for key in ("message", "detail", "error"):
            if body.get(key):
                return str(body[key])
    text = "" if body is None else str(body).strip()
    return text[:500] or "(no message)"
