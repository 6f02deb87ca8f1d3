"""Model engines as Ray actors, shared by every batch task of a Ray job.

Why actors, rather than opening the backend inside each batch task:

- A Ray task runs in a pooled worker process that Ray may stop, or reuse for other work; a
  task that asks for a GPU even exits its process after every call by default
  (``max_calls=1``). An engine opened in a task would load again for every batch.
- An actor runs its method calls one at a time, which a vLLM ``LLM`` object needs (it is
  not thread safe), while the batch tasks that call it run concurrently: they plan, read
  the store and write their rows in parallel, and only queue for the model itself.
- An actor holds the GPU it asked for as long as it lives, so Ray places one engine per GPU
  and never a second model on a GPU a first one has filled.

So the flow starts the engines (:func:`start_engines`: one per GPU of the cluster, or one
CPU engine where there are none) before it submits a batch, and a batch task's
``open_backend`` returns an :class:`EngineClient` that calls them (:func:`engine_client`).
Engines are named by job and backend spec: the batch tasks find them by name, and later
flows of the same job with the same spec (a pipeline's generate, critique and label) reuse
them, as the local process cache does. Ray ends them with the job (the driver's
``ray.shutdown``); :func:`release_engines` frees them sooner, and a flow that starts engines
for another spec releases the job's old ones first, so they never hold GPUs another model
needs. The OpenAI-compatible backend holds no model: every task uses its own HTTP client.
"""

from __future__ import annotations

import hashlib
import os
import random
import sys
from collections.abc import Sequence
from typing import Any

from tasks.backends.base import Backend, Completion, SamplingSettings
from tasks.backends.loading import load_backend
from tasks.backends.settings import BackendSettings, concrete
from tasks.core.conversation import Message
from tasks.core.errors import CharterError

ENGINE_PREFIX = "charter-engine"

# The driver's handles to the engines it started. Ray stops a named actor, too, once no
# handle to it is left, and a name lookup holds none: these keep the engines up for the job.
_STARTED: dict[str, list[Any]] = {}


def holds_model(spec: BackendSettings) -> bool:
    """Whether the backend loads a model (and so belongs in an engine actor)."""
    return concrete(spec).kind != "openai"


def in_ray_worker() -> bool:
    """Whether this process is a Ray worker (a task or an actor), not a driver or a plain process.

    Looks only at an already imported ``ray``: a process that never imported it is no worker.
    """
    ray = sys.modules.get("ray")
    return bool(ray and ray.is_initialized() and ray.get_runtime_context().worker.mode == ray.WORKER_MODE)


class Engine:
    """The actor's class: one backend, loaded in the actor's own process."""

    def __init__(self, spec: BackendSettings):
        import ray

        if not ray.get_gpu_ids():
            # Ray gives an actor one thread (OMP_NUM_THREADS=1) unless it reserves CPUs, but a
            # CPU engine is its node's one heavy computation, as it is in a local run: use every
            # core the process may run on (torch's default outside Ray).
            import torch

            torch.set_num_threads(len(os.sched_getaffinity(0)))
        self.backend = load_backend(spec)

    def identity(self) -> tuple[str, str]:
        return self.backend.name, self.backend.model_id

    def generate(
        self, conversations: Sequence[Sequence[Message]], sampling: SamplingSettings, seeds: Sequence[int]
    ) -> list[list[Completion]]:
        return self.backend.generate(conversations, sampling, seeds)

    def next_token_logprobs(
        self,
        conversations: Sequence[Sequence[Message]],
        candidates: Sequence[str],
        assistant_prefix: str | Sequence[str] = "",
    ) -> list[dict[str, float]]:
        return self.backend.next_token_logprobs(conversations, candidates, assistant_prefix)


class EngineClient:
    """The :class:`Backend` protocol over a job's engines for one spec, for a batch task.

    Any engine gives the same rows (each prompt carries its own seed; a batch is the same
    batch wherever it runs), so the pick only spreads load: a random engine per call spreads
    concurrent batches over the GPUs without any coordination between tasks.
    """

    def __init__(self, handles: Sequence[Any], name: str, model_id: str):
        self.handles = list(handles)
        self.name = name
        self.model_id = model_id

    def _call(self, method: str, *args: Any) -> Any:
        import ray

        return ray.get(getattr(random.choice(self.handles), method).remote(*args))

    def generate(
        self, conversations: Sequence[Sequence[Message]], sampling: SamplingSettings, seeds: Sequence[int]
    ) -> list[list[Completion]]:
        return self._call("generate", conversations, sampling, seeds)

    def next_token_logprobs(
        self,
        conversations: Sequence[Sequence[Message]],
        candidates: Sequence[str],
        assistant_prefix: str | Sequence[str] = "",
    ) -> list[dict[str, float]]:
        return self._call("next_token_logprobs", conversations, candidates, assistant_prefix)

    def close(self) -> None:
        """Nothing to close here: the engines belong to the job, not to one task."""


def _job_prefix() -> str:
    import ray

    return f"{ENGINE_PREFIX}-{ray.get_runtime_context().get_job_id()}-"


def engine_prefix(spec: BackendSettings) -> str:
    """The name every engine of ``spec`` in this Ray job starts with (then its index)."""
    key = hashlib.sha256(concrete(spec).model_dump_json().encode()).hexdigest()[:16]
    return f"{_job_prefix()}{key}-"


def _engine_names(prefix: str) -> list[str]:
    from ray.util import list_named_actors

    return sorted(name for name in list_named_actors() if name.startswith(prefix))


def start_engines(spec: BackendSettings) -> int:
    """Start this job's engines for ``spec`` (or find them running); return how many there are.

    One engine per GPU in the cluster, each holding its GPU; without GPUs, one CPU engine.
    Blocks until every engine has loaded its model, so a load failure surfaces here.
    """
    import ray

    spec = concrete(spec)
    if not holds_model(spec):
        return 0
    prefix = engine_prefix(spec)
    release_engines(keep=prefix)
    handles = _STARTED.get(prefix)
    if handles is None or not _engine_names(prefix):  # none yet, or a finished Ray session's
        gpus = int(ray.cluster_resources().get("GPU", 0))
        actor = ray.remote(Engine)
        handles = [
            actor.options(name=f"{prefix}{index}", num_gpus=1 if gpus else 0).remote(spec)
            for index in range(max(gpus, 1))
        ]
        _STARTED[prefix] = handles
    ray.get([handle.identity.remote() for handle in handles])
    return len(handles)


def engine_client(spec: BackendSettings) -> Backend:
    """A batch task's backend: the job's running engines for ``spec``."""
    import ray

    names = _engine_names(engine_prefix(spec))
    if not names:
        raise CharterError(
            f"no model engines for backend {concrete(spec).kind} in this Ray job: a flow starts them "
            "(tasks.orchestration.runners.batch_runner) before it submits batches"
        )
    handles = [ray.get_actor(name) for name in names]
    name, model_id = ray.get(handles[0].identity.remote())
    return EngineClient(handles, name, model_id)


def release_engines(keep: str | None = None) -> None:
    """Stop this job's engines (all, or all but those whose name starts with ``keep``)."""
    import ray

    if not ray.is_initialized():
        _STARTED.clear()
        return
    for name in _engine_names(_job_prefix()):
        if keep is None or not name.startswith(keep):
            ray.kill(ray.get_actor(name))
    for prefix in [prefix for prefix in _STARTED if keep is None or not prefix.startswith(keep)]:
        del _STARTED[prefix]
