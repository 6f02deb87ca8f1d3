"""Prefect's temporary API server: started early, so its start overlaps the command's own
start-up, and bound to this process, so it never outlives it.

Without ``PREFECT_API_URL`` Prefect runs its API in a uvicorn child process for the command and
stops it from an ``atexit`` hook, which a SIGKILL, the OOM killer or ``os._exit`` skip: the
server was left running, re-parented to PID 1. :func:`temporary_server_dies_with_this_process`
has the kernel end it instead (Linux's parent-death signal).
"""

from __future__ import annotations

import contextlib
import ctypes
import os
import queue
import signal
import subprocess
import threading
from collections.abc import Callable, Iterator
from concurrent.futures import Future
from types import SimpleNamespace
from typing import Any, TypeVar

R = TypeVar("R")
PR_SET_PDEATHSIG = 1  # <linux/prctl.h>
DEATH_SIGNAL = int(signal.SIGTERM)  # a plain int: the forked child hands it to prctl as it is


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

    temporary_server_dies_with_this_process()

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


def temporary_server_dies_with_this_process() -> None:
    """From now on, a temporary server Prefect starts gets SIGTERM when this process ends, however.

    Prefect spawns the server in ``SubprocessASGIServer._run_uvicorn_command`` with the
    ``subprocess`` module of :mod:`prefect.server.api.server` (its only use of ``Popen``); that
    module gets a copy of ``subprocess`` whose ``Popen`` is :class:`_ServerProcess`. It is the
    smallest point: Prefect offers no hook, and the command it builds stays Prefect's own.
    Nothing changes where no temporary server would start (``PREFECT_API_URL`` set) or where
    the kernel has no parent-death signal (not Linux). Safe to call more than once.
    """
    if _prctl is None or not ephemeral_api():
        return
    from prefect.server.api import server

    server.subprocess = SimpleNamespace(**{**vars(subprocess), "Popen": _ServerProcess})


class _ServerProcess(subprocess.Popen[Any]):
    """A ``Popen`` whose child is sent SIGTERM by the kernel when this process ends.

    The kernel sends a parent-death signal when the *thread* that forked the child ends, not
    the process: the server would die with the short-lived thread that started it (say
    :func:`api_server_starting`'s). So the fork happens on :data:`_SPAWNER`, a thread that
    lasts as long as the process. The child arms the signal between fork and exec, then
    checks that its parent is still the one that forked it (else it was orphaned already).
    uvicorn takes SIGTERM as a request to shut down gracefully.
    """

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        parent = os.getpid()

        def die_with_parent() -> None:
            _prctl(PR_SET_PDEATHSIG, DEATH_SIGNAL)
            if os.getppid() != parent:
                os._exit(1)

        _SPAWNER.call(lambda: subprocess.Popen.__init__(self, *args, preexec_fn=die_with_parent, **kwargs))


class _LastingThread:
    """A daemon thread, started on first use, that runs the calls handed to it until the process ends."""

    def __init__(self, name: str) -> None:
        self._name = name
        self._calls: queue.SimpleQueue[tuple[Callable[[], Any], Future[Any]]] = queue.SimpleQueue()
        self._thread: threading.Thread | None = None
        self._lock = threading.Lock()

    def call(self, function: Callable[[], R]) -> R:
        """``function()``, run on this thread; its result or its exception, here."""
        with self._lock:
            if self._thread is None:
                self._thread = threading.Thread(target=self._serve, name=self._name, daemon=True)
                self._thread.start()
        outcome: Future[R] = Future()
        self._calls.put((function, outcome))
        return outcome.result()

    def _serve(self) -> None:
        while True:
            function, outcome = self._calls.get()
            try:
                outcome.set_result(function())
            except BaseException as exc:  # the caller re-raises it
                outcome.set_exception(exc)


def _libc_prctl() -> Callable[..., int] | None:
    """``prctl(2)``, looked up once here: the forked child must not import or load anything."""
    try:
        return ctypes.CDLL(None, use_errno=True).prctl
    except (OSError, AttributeError):
        return None


_prctl = _libc_prctl()
_SPAWNER = _LastingThread("charter-spawner")
