"""What the command groups share: consoles, the store, runner and selection options, backend
checks, Prefect's environment and the progress bar.

Only light modules are imported here (pydantic settings, Typer, rich), so ``charter --help``
and a failing command answer fast; the flows, Prefect and torch load inside the commands.
"""

from __future__ import annotations

import contextlib
import os
import threading
from collections.abc import Iterator
from pathlib import Path

from pydantic import BaseModel, ConfigDict, Field
from rich.progress import Progress

from flows.cli.console import err, out
from flows.cli.options import Flag, Options
from tasks.backends.settings import BackendSettings, choose_kind, model_identity
from tasks.orchestration.runners import RUNNERS, RunnerSettings, runner_spec
from tasks.store.store import Store

PROJECT_ROOT = Path(__file__).resolve().parents[2]


class PromptSelection(BaseModel):
    """Which prompts a stage command covers: the same two options on every one of them."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    family: list[str] | None = Field(default=None, description="Only these prompt families (repeatable).")
    limit: int | None = Field(
        default=None, ge=1, description="Only the first N prompts (label --pairs human: the first N pairs)."
    )


class BatchPlacement(BaseModel):
    """Where a stage command's batches run; checked (Ray installed, a reachable API) before any work."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    runner: str = Field(
        default="local",
        description=f"Where batches run: {', '.join(RUNNERS)} (local: in order, in this process).",
    )
    ray_address: str | None = Field(
        default=None,
        description="With --runner ray: ray://HOST:10001 or auto (default: $RAY_ADDRESS, else local Ray).",
    )

    def checked(self) -> RunnerSettings:
        return runner_spec(self.runner, self.ray_address)


def backend_options(role: str | None = None, prefix: str = "") -> Options:
    """``--backend``, ``--model`` and ``--base-url``; ``role`` names the model in the help ("Judge").

    ``prefix`` ("judge") gives a second backend its own options (``--judge-backend``, ...) on a
    command that already has the first's.
    """
    flags = {"kind": Flag(names=("--backend",), parameter="backend_kind")}
    if role:
        flags["model"] = Flag(help=f"{role} model (default: embedded SmolLM2).")
    return Options(BackendSettings, skip=("options",), flags=flags, prefix=prefix)


def prefect_environment() -> None:
    """Defaults for running flows from the CLI, before Prefect is imported (users' settings win),
    and how they stop: on SIGINT/SIGTERM, with Prefect's temporary server going with them.

    This machine is offline (Prefect's telemetry only logs errors), and on a loaded 2-core
    machine the ephemeral API server can take longer than Prefect's default 20 s to start.
    """
    from tasks.orchestration.prefect_server import temporary_server_dies_with_this_process
    from tasks.orchestration.stopping import stop_on_signals

    os.environ.setdefault("PREFECT_SERVER_ANALYTICS_ENABLED", "false")
    os.environ.setdefault("PREFECT_SERVER_EPHEMERAL_STARTUP_TIMEOUT_SECONDS", "120")
    stop_on_signals()
    temporary_server_dies_with_this_process()


def checked_backend(spec: BackendSettings) -> BackendSettings:
    """Check the backend choice before any work: the kind, the model path, the server."""
    from tasks.backends.server import check_server

    kind, reason = choose_kind(spec.kind)
    spec = spec.model_copy(update={"kind": kind})
    identity = model_identity(spec)
    if kind == "openai":
        check_server(spec.base_url or "")
    out.print(f"backend [bold]{kind}[/bold] ({reason}), model {identity.model_id}")
    return spec


@contextlib.contextmanager
def progress(store: Path, table: str, total: int, description: str) -> Iterator[None]:
    """A progress bar fed by the rows landing in ``table`` (the flow runs in this process)."""
    root = Store(store)
    start = root.count(table) if (root.root / "tables" / table).exists() else 0
    stop = threading.Event()
    with Progress(*Progress.get_default_columns(), console=err, transient=True) as bar_display:
        bar = bar_display.add_task(description, total=total)

        def poll() -> None:
            while not stop.wait(1.0):
                with contextlib.suppress(OSError):
                    bar_display.update(bar, completed=min(total, root.count(table) - start))

        watcher = threading.Thread(target=poll, daemon=True)
        watcher.start()
        try:
            yield
        finally:
            stop.set()
            watcher.join()
