"""Real ``prefect server start`` processes for tests: started, waited for, stopped with their group.

Used by the deployment tests (a server of their own) and by ``run_charter`` (one server shared
by every charter subprocess that runs a flow, so each does not start Prefect's temporary
server: ~8 s a process on this machine).
"""

from __future__ import annotations

import contextlib
import os
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

BIN = Path(sys.executable).parent


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def wait_for(
    condition: Callable[[], Any], timeout: float, what: str, process: subprocess.Popen, log: Path
) -> Any:
    """Poll ``condition`` until it returns something truthy; fail early, with the log, if ``process`` died."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if process.poll() is not None:
            pytest.fail(f"{what}: {process.args[0]} exited with {process.returncode}:\n{tail(log)}")
        found = condition()
        if found:
            return found
        time.sleep(0.5)
    pytest.fail(f"{what}: not within {timeout:.0f} s:\n{tail(log)}")


def schedule_env(api_url: str, client_home: Path) -> dict[str, str]:
    """The environment of a ``charter schedule`` subprocess serving against ``api_url``."""
    return {
        **os.environ,
        "PREFECT_API_URL": api_url,
        "PREFECT_HOME": str(client_home),
        "PREFECT_RUNNER_POLL_FREQUENCY": "1",  # triggered runs and cancellations within a second
        "COLUMNS": "200",
    }


def registered_deployment(client: Any, name: str, process: subprocess.Popen, log: Path) -> Any:
    """The served deployment ``name`` once the server knows it.

    ``charter schedule`` prints "serving" before Prefect registers the deployment, so ask the
    server rather than read the log.
    """
    from prefect.exceptions import ObjectNotFound

    def registered() -> Any:
        try:
            return client.read_deployment_by_name(name)
        except ObjectNotFound:
            return None

    return wait_for(registered, 90, "deployment registration", process, log)


def tail(log: Path, lines: int = 30) -> str:
    return "\n".join(log.read_text().splitlines()[-lines:]) if log.exists() else ""


def stop(process: subprocess.Popen, grace: float = 20) -> None:
    """SIGTERM by PID, SIGKILL after ``grace`` seconds; then its process group, for any child."""
    if process.poll() is None:
        process.send_signal(signal.SIGTERM)
        try:
            process.wait(grace)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait(10)
    with contextlib.suppress(ProcessLookupError):  # start_new_session=True: the group id is the PID
        os.killpg(process.pid, signal.SIGKILL)


def group_alive(pgid: int) -> bool:
    try:
        os.killpg(pgid, 0)
    except ProcessLookupError:
        return False
    return True


def healthy(url: str) -> bool:
    try:
        with urllib.request.urlopen(f"{url}/health", timeout=2) as response:
            return response.status == 200
    except OSError:
        return False


@contextlib.contextmanager
def prefect_server(home: Path) -> Iterator[str]:
    """A real server on 127.0.0.1 with its own home and SQLite database; its API URL."""
    home.mkdir(parents=True, exist_ok=True)
    env = {
        **os.environ,
        "PREFECT_HOME": str(home),
        "PREFECT_SERVER_ANALYTICS_ENABLED": "false",
        "PREFECT_API_DATABASE_CONNECTION_URL": f"sqlite+aiosqlite:///{home / 'prefect.db'}",
    }
    env.pop("PREFECT_API_URL", None)
    port = free_port()
    log_path = home / "server.log"
    with log_path.open("w") as log:
        server = subprocess.Popen(
            [str(BIN / "prefect"), "server", "start", "--host", "127.0.0.1", "--port", str(port), "--no-ui"],
            env=env,
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
        url = f"http://127.0.0.1:{port}/api"
        try:
            wait_for(lambda: healthy(url), 90, "server health", server, log_path)
            yield url
        finally:
            stop(server)
            assert server.poll() is not None and not group_alive(server.pid)
