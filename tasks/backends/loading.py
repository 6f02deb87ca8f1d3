"""Loading a backend in this process, once: every batch task of a flow run reuses it.

A vLLM engine takes many seconds to start, so the process keeps each backend it opened,
keyed by its settings, until :func:`close_loaded` frees them.
"""

from __future__ import annotations

from tasks.backends.base import Backend
from tasks.backends.settings import BackendSettings, concrete, model_identity

_OPEN: dict[str, Backend] = {}


def load_backend(spec: BackendSettings) -> Backend:
    """The backend for ``spec``, loaded in this process on first use and kept for its life."""
    spec = concrete(spec)
    key = spec.model_dump_json()
    if key not in _OPEN:
        model = model_identity(spec)
        if spec.kind == "vllm":
            from tasks.backends.vllm_backend import VLLMBackend

            _OPEN[key] = VLLMBackend(model, **spec.options)
        elif spec.kind == "hf":
            from tasks.backends.hf import HFBackend

            _OPEN[key] = HFBackend(model, **spec.options)
        else:
            from tasks.backends.openai_backend import OpenAIBackend

            _OPEN[key] = OpenAIBackend(spec.base_url or "", model, **spec.options)
    return _OPEN[key]


def close_loaded() -> None:
    """Free every backend this process loaded."""
    while _OPEN:
        _OPEN.popitem()[1].close()
