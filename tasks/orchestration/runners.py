"""Where a flow's batches run: in order in this process (``local``), or spread over Ray (``ray``).

A Prefect flow's task runner is fixed when the flow is decorated, but charter chooses it per
run (``--runner``, or a pipeline's setting), so the generate, critique and label flows enter
Ray's runner themselves around their batches and submit each batch to it: the direct use of a
task runner that Prefect documents (``with runner: runner.submit(task, parameters)``). Local
batches, planning, imports and rule labels are plain task calls in the flow's own thread.

The rows cannot depend on the runner: every id is a content hash, generation is seeded per
prompt and sample, and a batch's contents are fixed by the plan, not by where or when it runs.
"""

from __future__ import annotations

import importlib.util
import os
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from typing import TYPE_CHECKING, Any, Literal, ParamSpec, TypeVar
from urllib.parse import urlparse

from pydantic import BaseModel, ConfigDict, model_validator

from tasks.backends.settings import BackendSettings
from tasks.core.errors import CharterError
from tasks.core.progress import progress

if TYPE_CHECKING:
    from prefect import Task
    from prefect.futures import PrefectFuture
    from prefect.task_runners import TaskRunner

RUNNERS = ("local", "ray")
P = ParamSpec("P")
R = TypeVar("R")


class RunnerSettings(BaseModel):
    """Where batches run: plain data, like :class:`BackendSettings`, so a pipeline can pass it on.

    ``address`` (ray only): ``None`` or ``auto`` is Ray's own choice: the Ray instance this
    process already joined, else ``RAY_ADDRESS``, else the cluster this machine runs (``ray
    start``), else a temporary local instance for the flow; ``ray://host:10001`` connects to a
    remote cluster's Ray Client server. ``init_kwargs`` go to ``ray.init`` (``num_cpus``,
    ``runtime_env``, ...); an instance the flow starts is shut down when its batches are done.
    """

    model_config = ConfigDict(extra="forbid", frozen=True)

    kind: Literal["local", "ray"] = "local"
    address: str | None = None
    init_kwargs: dict[str, Any] = {}

    @model_validator(mode="after")
    def _ray_settings_need_ray(self) -> RunnerSettings:
        # The local runner reads neither: without this a forgotten ``kind: ray`` runs locally unnoticed.
        if self.kind != "ray" and (self.address or self.init_kwargs):
            raise ValueError("address and init_kwargs are Ray settings: they need kind: ray")
        return self


def runner_spec(kind: str, address: str | None = None) -> RunnerSettings:
    """A checked runner choice from the command line: fails at once, before Prefect starts."""
    if kind not in RUNNERS:
        raise CharterError(f"unknown --runner {kind!r}; runners: {', '.join(RUNNERS)}")
    if address and kind != "ray":
        raise CharterError("--ray-address needs --runner ray")
    spec = RunnerSettings.model_validate({"kind": kind, "address": address})
    check_runnable(spec)
    return spec


def check_runnable(spec: RunnerSettings) -> None:
    """Ray's runner needs Ray installed and, for a remote cluster, a Prefect API its workers reach."""
    if spec.kind == "ray":
        _check_ray_installed()
        check_api_reachable(spec, os.environ.get("PREFECT_API_URL"))


def _check_ray_installed() -> None:
    if importlib.util.find_spec("prefect_ray") is None or importlib.util.find_spec("ray") is None:
        raise CharterError("--runner ray needs Ray and prefect-ray: pip install -e '.[ray]'")


def check_api_reachable(spec: RunnerSettings, api_url: str | None) -> None:
    """A remote cluster's workers must reach the Prefect API that records their task runs.

    Without ``PREFECT_API_URL`` a flow runs against a temporary server on this machine's
    loopback address, which a Ray Client cluster (``ray://``) cannot reach: its workers would
    each start a temporary server of their own and the flow's UI would never see their tasks.
    """
    remote = (spec.address or "").startswith("ray://")
    host = urlparse(api_url).hostname if api_url else None
    if remote and host in (None, "localhost", "127.0.0.1", "::1"):
        raise CharterError(
            f"--ray-address {spec.address} is a remote cluster: set PREFECT_API_URL to a Prefect server "
            "its machines can reach (e.g. `prefect server start --host 0.0.0.0` on this machine, then "
            "PREFECT_API_URL=http://<this host>:4200/api)"
        )


def task_runner(spec: RunnerSettings) -> TaskRunner:
    """The Prefect task runner for a ``ray`` ``spec`` (not yet entered): prefect-ray's
    ``RayTaskRunner``, each batch a Ray task on some worker. Local batches need none
    (:func:`run_batches` calls them in the flow's own thread).
    """
    from prefect_ray import RayTaskRunner

    return RayTaskRunner(address=spec.address, init_kwargs=dict(spec.init_kwargs))


@contextmanager
def runner_session(spec: RunnerSettings | None) -> Iterator[None]:
    """Hold ``spec``'s Ray instance across several flows (a pipeline's stages); local: nothing.

    Each flow then joins that instance instead of starting and stopping its own, so the model
    engines one stage starts serve the next stages with the same backend.
    """
    if spec is None or spec.kind == "local":
        yield
        return
    with task_runner(spec):
        yield


def submit(runner: TaskRunner, task: Task[P, R], *args: P.args, **kwargs: P.kwargs) -> PrefectFuture[R]:
    """``task.submit(*args, **kwargs)``, but on ``runner`` rather than the flow's decorated one."""
    from prefect.utilities.callables import get_call_parameters

    return runner.submit(task, get_call_parameters(task.fn, args, kwargs))


def run_batches(
    spec: RunnerSettings | None,
    backend: BackendSettings,
    task: Task[..., R],
    calls: Sequence[tuple[Any, ...]],
) -> Iterator[R]:
    """Run ``task`` once per argument tuple in ``calls`` on ``spec``'s runner; yield the results in order.

    Local batches run one after another in this thread (an in-process vLLM engine is not
    thread safe), so a stop signal, raised in the main thread, abandons the batch in flight at
    once (:mod:`tasks.orchestration.stopping`); a worker thread would finish it first and hold
    the process until then. On Ray every batch is submitted at once (the runner decides how
    many run together). Results come back in order, so the flow merges each into its run
    record as it arrives, and a progress bar (or log line, :mod:`tasks.core.progress`) counts
    them, named after the task. Nothing starts, neither Ray nor an engine, when there is
    nothing to run (a resumed flow). If a batch fails the flow fails at once: locally the
    batches not yet started never start; on a shared Ray cluster those already running may
    still land their rows, which are content-addressed, so the rerun skips them.
    """
    if not calls:
        return
    with batch_runner(spec, backend) as runner:
        if runner is None:
            results = (task(*arguments) for arguments in calls)
        else:
            futures = [submit(runner, task, *arguments) for arguments in calls]
            results = (future.result() for future in futures)
        with progress(task.name, total=len(calls), unit="batches") as bar:
            for result in results:
                bar.advance()
                yield result


@contextmanager
def batch_runner(spec: RunnerSettings | None, backend: BackendSettings) -> Iterator[TaskRunner | None]:
    """The entered Ray task runner a flow submits its batches to, with the model engines up;
    None for local batches, which need no runner.

    Engines start before the first batch (see :mod:`tasks.backends.ray_engines`), so a model
    that cannot load fails the flow once, not every batch after its retries.
    """
    spec = spec or RunnerSettings()
    if spec.kind == "local":
        yield None
        return
    with task_runner(spec) as runner:
        from tasks.backends.ray_engines import start_engines

        with _prefect_api_for_ray_workers(spec):
            start_engines(backend)
            yield runner


@contextmanager
def _prefect_api_for_ray_workers(spec: RunnerSettings) -> Iterator[None]:
    """Send Ray workers to the Prefect API this flow uses.

    A Ray worker runs its Prefect task under the flow's serialised settings. Without
    ``PREFECT_API_URL`` those name no API (the flow uses a temporary server), and every worker
    would start a temporary server of its own (seconds each, and the flow's UI would not see
    its tasks): point them at the flow's. That server listens on loopback, so it serves a local
    Ray instance, not a cluster's other machines (:func:`check_api_reachable`).
    """
    from prefect.context import FlowRunContext
    from prefect.settings import PREFECT_API_URL, temporary_settings

    context = FlowRunContext.get()
    if PREFECT_API_URL.value() or context is None or context.client is None:
        yield
        return
    api_url = str(context.client.api_url).rstrip("/")
    check_api_reachable(spec, api_url)
    with temporary_settings(updates={PREFECT_API_URL: api_url}):
        yield
