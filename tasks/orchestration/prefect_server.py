"""Start Prefect's temporary API server early, so its start overlaps the command's own start-up."""

from __future__ import annotations

import contextlib
import threading
from collections.abc import Iterator


def ephemeral_api() -> bool:
    """Whether a flow run here would start Prefect's temporary server (no ``PREFECT_API_URL`` set)."""
    from prefect.settings import PREFECT_API_URL, PREFECT_SERVER_ALLOW_EPHEMERAL_MODE

    return not PREFECT_API_URL.value() and bool(PREFECT_SERVER_ALLOW_EPHEMERAL_MODE.value())


@contextlib.contextmanager
def api_server_starting() -> Iterator[None]:
    """Start the temporary API server on a thread for the duration of the block; wait for it at the end.

    Without a ``PREFECT_API_URL``, Prefect starts a uvicorn process at the first flow call and
    waits, idle, for it to answer: it imports Prefect's server and, the first time, creates its
    database (seconds to tens of seconds: README, "Benchmarks"). Started here, it comes up while the command
    imports torch and prepares the model. The block's end waits for it because Prefect marks
    the server running before it answers: a flow started earlier would not wait. A failed
    start is not raised here; the flow's own start then retries it and reports the error.
    """
    if not ephemeral_api():
        yield
        return
    from prefect.server.api.server import SubprocessASGIServer

    def start() -> None:
        with contextlib.suppress(Exception):
            SubprocessASGIServer().start()

    thread = threading.Thread(target=start, name="prefect-api-start", daemon=True)
    thread.start()
    try:
        yield
    finally:
        thread.join()


@contextlib.contextmanager
def without_heartbeats_when_ephemeral() -> Iterator[None]:
    """No flow-run heartbeats while the API is the temporary server; a real server keeps them.

    A heartbeat lets a server notice that a flow run's process died. The temporary server
    lives and dies with this process, so nothing is left to notice, while Prefect joins the
    heartbeat thread at the end of every flow run, subflows included, waiting up to its sleep
    step each time: a cost per subflow for nothing (README, "Benchmarks", has the figures).
    """
    if not ephemeral_api():
        yield
        return
    from prefect.settings import PREFECT_FLOWS_HEARTBEAT_FREQUENCY, temporary_settings

    with temporary_settings(updates={PREFECT_FLOWS_HEARTBEAT_FREQUENCY: None}):
        yield
