"""Reaching an OpenAI-compatible server: its API root, and a quick check before work starts."""

from __future__ import annotations

import httpx

from tasks.errors import CharterError


def api_root(base_url: str) -> str:
    """``http://host:port`` or ``http://host:port/v1`` both mean the ``/v1`` API root."""
    root = base_url.rstrip("/")
    return root if root.endswith("/v1") else f"{root}/v1"


def check_server(base_url: str, timeout: float = 5.0) -> list[str]:
    """The server's model names; a clear error if it cannot be reached or does not answer as expected."""
    if not base_url:
        raise CharterError("the openai backend needs --base-url (e.g. http://127.0.0.1:8000/v1)")
    url = f"{api_root(base_url)}/models"
    try:
        response = httpx.get(url, timeout=timeout)
    except httpx.HTTPError as exc:
        raise CharterError(f"cannot reach the OpenAI-compatible server at {url}: {exc}") from None
    if response.status_code != 200:
        raise CharterError(f"{url} answered {response.status_code}: {response.text[:200]}")
    return [model.get("id", "") for model in response.json().get("data", [])]
