"""Reaching an OpenAI-compatible server: its API root, and a quick check before work starts."""

from __future__ import annotations

import httpx

from tasks.core.errors import CharterError


def server_root(base_url: str) -> str:
    """The server's root URL: users paste either ``http://host:port`` or ``http://host:port/v1``.

    The chat endpoint lives under ``/v1`` but vLLM's ``/tokenize`` lives at the root, so the
    backend keeps the root and adds each endpoint's own path.
    """
    url = base_url.strip().rstrip("/")
    if not url.startswith(("http://", "https://")):
        raise CharterError(f"the openai backend needs an http:// or https:// base URL, not {base_url!r}")
    return url.removesuffix("/v1")


def check_server(base_url: str, timeout: float = 5.0) -> list[str]:
    """The server's model names; a clear error if it cannot be reached or does not answer as expected."""
    if not base_url:
        raise CharterError("the openai backend needs --base-url (e.g. http://127.0.0.1:8000/v1)")
    url = f"{server_root(base_url)}/v1/models"
    try:
        response = httpx.get(url, timeout=timeout)
    except httpx.HTTPError as exc:
        raise CharterError(f"cannot reach the OpenAI-compatible server at {url}: {exc}") from None
    if response.status_code != 200:
        raise CharterError(f"{url} answered {response.status_code}: {response.text[:200]}")
    return [model.get("id", "") for model in response.json().get("data", [])]
