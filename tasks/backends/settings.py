"""Which backend and model a stage uses: plain settings, checked when a config or flag is read.

``kind`` is a closed set (``auto`` or one of :data:`tasks.backends.base.BACKENDS`), so a typo
such as ``vlm`` fails when the config loads, naming the key, instead of being treated as
some other backend and failing minutes later.
"""

from __future__ import annotations

import importlib.util
from typing import Any, Literal, get_args

from pydantic import BaseModel, ConfigDict, Field

from tasks.backends.base import BACKENDS
from tasks.backends.models import ResolvedModel, resolve_model
from tasks.core.errors import CharterError

BackendKind = Literal["auto", "vllm", "hf", "openai"]
assert get_args(BackendKind)[1:] == BACKENDS, "BackendKind must list every backend"


class BackendSettings(BaseModel):
    """Which backend and model: plain data that Prefect tasks can take as a parameter."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    kind: BackendKind = Field(default="auto", description="auto, vllm, hf or openai.")
    model: str | None = Field(
        default=None, description="Local model folder or Hugging Face id (default: embedded SmolLM2)."
    )
    base_url: str | None = Field(default=None, description="OpenAI-compatible server (backend openai).")
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


def concrete(spec: BackendSettings) -> BackendSettings:
    """The settings with ``auto`` replaced by the backend that will actually run."""
    return spec if spec.kind != "auto" else spec.model_copy(update={"kind": choose_kind("auto")[0]})


def model_identity(spec: BackendSettings) -> ResolvedModel:
    """The model to load and its id for content hashes, without loading anything heavy."""
    spec = concrete(spec)
    if spec.kind == "openai":
        if not spec.model or not spec.base_url:
            raise CharterError("the openai backend needs --model (the served model name) and --base-url")
        return ResolvedModel(path=spec.model, model_id=f"openai:{spec.model}")
    return resolve_model(spec.model)
