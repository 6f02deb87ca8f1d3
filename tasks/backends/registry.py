"""Choosing and opening a backend: by flag or config, defaulting to vLLM where it is installed.

Backends are opened once per process and reused by every batch task of a flow run, so a
vLLM engine starts once, however many batches there are. A batch task on Ray runs in a
pooled worker process instead, so there the model lives in the Ray job's engine actors
(:mod:`tasks.backends.ray_engines`), which the task calls.
"""

from __future__ import annotations

import importlib.util
import sys
from typing import Any

from pydantic import BaseModel, ConfigDict

from tasks.backends.base import BACKENDS, Backend
from tasks.errors import CharterError
from tasks.models import ResolvedModel, resolve_model


class BackendSpec(BaseModel):
    """Which backend and model: plain data that Prefect tasks can take as a parameter."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    kind: str = "auto"
    model: str | None = None
    base_url: str | None = None
    options: dict[str, Any] = {}


def choose_kind(kind: str) -> tuple[str, str]:
    """The backend to use and why: ``auto`` means vLLM if it is importable, else transformers."""
    if kind != "auto":
        if kind not in BACKENDS:
            raise CharterError(f"unknown backend {kind!r}; backends: auto, {', '.join(BACKENDS)}")
        return kind, "chosen explicitly"
    if importlib.util.find_spec("vllm") is not None:
        return "vllm", "auto: vLLM is installed"
    return "hf", "auto: vLLM is not installed, using transformers"


def concrete(spec: BackendSpec) -> BackendSpec:
    """The spec with ``auto`` replaced by the backend that will actually run."""
    return spec if spec.kind != "auto" else spec.model_copy(update={"kind": choose_kind("auto")[0]})


def model_identity(spec: BackendSpec) -> ResolvedModel:
    """The model to load and its id for content hashes, without loading anything heavy."""
    spec = concrete(spec)
    if spec.kind == "openai":
        if not spec.model or not spec.base_url:
            raise CharterError("the openai backend needs --model (the served model name) and --base-url")
        return ResolvedModel(path=spec.model, model_id=f"openai:{spec.model}")
    return resolve_model(spec.model)


_OPEN: dict[str, Backend] = {}


def open_backend(spec: BackendSpec) -> Backend:
    """The backend for ``spec``: loaded in this process, or in a Ray task the job's engines."""
    from tasks.backends import ray_engines

    if ray_engines.in_ray_worker() and ray_engines.holds_model(spec):
        return ray_engines.engine_client(spec)
    return load_backend(spec)


def load_backend(spec: BackendSpec) -> Backend:
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


def close_backends() -> None:
    """Free every model this process holds: its own backends and its Ray job's engines."""
    from tasks.backends.ray_engines import in_ray_worker, release_engines

    while _OPEN:
        _OPEN.popitem()[1].close()
    if "ray" in sys.modules and not in_ray_worker():
        release_engines()
