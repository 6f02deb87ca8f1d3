"""Opening a backend for a batch task: loaded in this process, or the Ray job's engine actors.

Backends are opened once per process and reused by every batch task of a flow run
(:mod:`tasks.backends.loading`), so a vLLM engine starts once, however many batches there
are. A batch task on Ray runs in a pooled worker process instead, so there the model lives
in the Ray job's engine actors (:mod:`tasks.backends.ray_engines`), which the task calls.
"""

from __future__ import annotations

import sys

from tasks.backends import ray_engines
from tasks.backends.base import Backend
from tasks.backends.loading import close_loaded, load_backend
from tasks.backends.settings import BackendSettings


def open_backend(spec: BackendSettings) -> Backend:
    """The backend for ``spec``: loaded in this process, or in a Ray task the job's engines."""
    if ray_engines.in_ray_worker() and ray_engines.holds_model(spec):
        return ray_engines.engine_client(spec)
    return load_backend(spec)


def close_backends() -> None:
    """Free every model this process holds: its own backends and its Ray job's engines."""
    close_loaded()
    if "ray" in sys.modules and not ray_engines.in_ray_worker():
        ray_engines.release_engines()
