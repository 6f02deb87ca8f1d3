"""Serve a charter flow as a Prefect deployment: its cron runs and triggered runs execute here.

``charter schedule`` is the no-infrastructure way to run flows on a schedule: one process
registers the deployment with a Prefect server and polls it for runs, which execute in
subprocesses of this one. (For work pools and workers, use prefect.yaml and
``prefect deploy``.) A served deployment needs a server that outlives the command, so
unlike the other commands this one refuses Prefect's temporary ephemeral server.
"""

from __future__ import annotations

import importlib
import inspect
import logging
import sys
import typing
from dataclasses import dataclass
from typing import Any

from prefect import Flow
from prefect.exceptions import ParameterTypeError
from prefect.settings import PREFECT_API_URL

from tasks.core.errors import CharterError
from tasks.orchestration.deployments import flow_path, parse_params

SERVER_HINT = (
    "start one with `prefect server start` (it listens on http://127.0.0.1:4200), then "
    "`export PREFECT_API_URL=http://127.0.0.1:4200/api`"
)


@dataclass(frozen=True)
class ServePlan:
    """A checked deployment, ready to serve: every input was validated before any API call."""

    flow: Flow[..., Any]
    name: str
    cron: str | None
    timezone: str
    parameters: dict[str, Any]

    @property
    def full_name(self) -> str:
        """The ``flow/deployment`` name that ``prefect deployment run`` and ``run_deployment`` take."""
        return f"{self.flow.name}/{self.name}"

    @property
    def trigger_command(self) -> str:
        return f"prefect deployment run '{self.full_name}'"


def require_api_url() -> str:
    """The configured Prefect API (environment or profile); without one, serving makes no sense.

    With no API URL Prefect would start a temporary server inside this process: the deployment
    and its schedule would vanish with it and nothing else could trigger a run.
    """
    url = PREFECT_API_URL.value()
    if not url:
        raise CharterError(
            f"charter schedule needs a running Prefect server and PREFECT_API_URL: {SERVER_HINT}"
        )
    return url


def check_api(url: str) -> None:
    """Fail with a message, not a connection traceback from inside the runner, if nothing answers."""
    from prefect.client.orchestration import get_client

    with get_client(sync_client=True) as client:
        problem = client.api_healthcheck()
    if problem is not None:
        raise CharterError(f"no Prefect server answers at {url} ({problem}): {SERVER_HINT}")


def load_flow(name: str) -> Flow[..., Any]:
    """The flow object registered under ``name`` in :data:`tasks.orchestration.deployments.FLOWS`."""
    module_name, _, attribute = flow_path(name).rpartition(".")
    try:
        module = importlib.import_module(module_name)
    except ModuleNotFoundError as exc:
        if exc.name != module_name:
            raise
        raise CharterError(f"flow {name!r}: module {module_name} does not exist in this checkout") from None
    flow = getattr(module, attribute, None)
    if not isinstance(flow, Flow):
        raise CharterError(f"flow {name!r}: {module_name}.{attribute} is not a Prefect flow")
    return flow


def string_parameters(flow: Flow[..., Any]) -> set[str]:
    """Parameters annotated ``str`` or ``str | None``: their ``--param`` values stay text, never JSON."""
    hints = typing.get_type_hints(flow.fn)
    return {name for name in inspect.signature(flow.fn).parameters if hints.get(name) in (str, str | None)}


def deployment_parameters(flow: Flow[..., Any], items: list[str]) -> dict[str, Any]:
    """Default parameters for the deployment, checked against the flow's signature and types.

    Every required parameter must be given: the printed ``prefect deployment run`` command and
    every cron run start from these defaults, and a missing one would only fail at run time.
    The values are returned as given (JSON-able), not as the coerced objects, because the
    deployment stores them as JSON.
    """
    params = parse_params(items, string_parameters(flow))
    known = list(inspect.signature(flow.fn).parameters)
    unknown = sorted(set(params) - set(known))
    if unknown:
        raise CharterError(
            f"flow {flow.name!r} has no parameter {', '.join(unknown)}; its parameters: {', '.join(known)}"
        )
    # Prefect logs the pydantic error at ERROR before raising it; the message below says it once.
    flow_logger = logging.getLogger("prefect.flows")
    level = flow_logger.level
    flow_logger.setLevel(logging.CRITICAL)
    try:
        flow.validate_parameters(params)
    except ParameterTypeError as exc:
        detail = str(exc).replace("Flow run received invalid parameters:", "").strip()
        raise CharterError(
            f"--param for flow {flow.name!r}:\n{detail}\n(a missing field is given with --param NAME=VALUE)"
        ) from None
    finally:
        flow_logger.setLevel(level)
    return params


def plan(flow_name: str, cron: str | None, timezone: str, name: str | None, items: list[str]) -> ServePlan:
    """Check the server and the flow's parameters; ``cron`` and ``timezone`` arrive already checked."""
    check_api(require_api_url())
    flow = load_flow(flow_name)
    return ServePlan(
        flow=flow,
        name=name or flow.name,
        cron=cron,
        timezone=timezone,
        parameters=deployment_parameters(flow, items),
    )


def serve(serve_plan: ServePlan) -> None:
    """Register the deployment and execute its runs until SIGINT or SIGTERM.

    The deployment's entrypoint is the module path (``flows.ingest.ingest``), importable from
    any working directory because charter is installed, and each run re-imports it in a
    ``python -m prefect.engine`` child. ``flow.serve()`` would instead hand the in-memory flow
    to a spawned child by pickling it: cloudpickle copies the function by value (its module
    attribute is the Flow, not the function), leaving behind names used only in annotations
    under ``from __future__ import annotations``, and pydantic then fails every run of
    ``ingest`` with "IngestModel is not fully defined; you should define LabelFileSettings".

    Runs execute in this process's working directory, so relative paths in the parameters
    mean what they meant where the command was typed. On shutdown the schedule is paused, so
    scheduled runs do not pile up as Late while nothing serves them. Prefect's runner pauses it
    itself only when its SIGTERM handler's ``sys.exit`` happens to land inside the runner's
    task (its ``stop()`` runs on another event loop), so charter pauses it again on the way
    out, whichever way the runner ended.
    """
    from prefect import serve as prefect_serve
    from prefect.schedules import Cron
    from prefect.types.entrypoint import EntrypointType

    schedules = [Cron(serve_plan.cron, timezone=serve_plan.timezone)] if serve_plan.cron else None
    deployment = serve_plan.flow.to_deployment(
        name=serve_plan.name,
        schedules=schedules,
        parameters=serve_plan.parameters,
        tags=["charter"],
        entrypoint_type=EntrypointType.MODULE_PATH,
    )
    try:
        prefect_serve(deployment, pause_on_shutdown=True, print_starting_message=False)
    finally:
        pause_served_deployment(f"{serve_plan.flow.name}/{serve_plan.name}")


def pause_served_deployment(full_name: str) -> None:
    """Pause the deployment's schedule; a server already gone is reported, not raised."""
    from prefect.client.orchestration import get_client

    try:
        with get_client(sync_client=True) as client:
            client.pause_deployment(client.read_deployment_by_name(full_name).id)
    except Exception as problem:  # shutting down: say so and let the exit finish
        print(f"could not pause deployment {full_name}: {problem}", file=sys.stderr)
