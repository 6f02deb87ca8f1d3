"""Serving the bench: checks before binding, one server per store, labels published on the way out.

The order matters for "nothing lost, nothing left behind": the queues are checked and the
address validated before anything binds; the server lock is taken before the socket is
opened; the publisher's last pass and the run's closing event happen after uvicorn has
finished its in-flight requests (it handles SIGINT and SIGTERM itself), so a label
acknowledged to a browser is in the bench database, and normally already in the store.
"""

from __future__ import annotations

import signal
import socket
import sys
from collections.abc import Callable

from tasks.core.errors import CharterError
from tasks.review.bench import Bench, Publisher, ServerLock, bench_address
from tasks.review.queues import load_queues
from tasks.review.settings import LOOPBACK_HOSTS, ReviewSettings
from tasks.store.runs import recorded_run
from tasks.store.store import Store


class Stopped(Exception):
    """SIGTERM arrived: the server has finished its requests; publish and exit cleanly."""


def _stopped(signum: int, frame: object) -> None:
    raise Stopped


def check_host(settings: ReviewSettings) -> None:
    if settings.host not in LOOPBACK_HOSTS and not settings.allow_remote:
        raise CharterError(
            f"--host {settings.host} would open the bench to the network; pass --allow-remote to mean it"
        )


def open_bench(store: Store, settings: ReviewSettings) -> Bench:
    """The bench with its queues checked (a bad queue file fails here, before any socket)."""
    return Bench(store, settings, load_queues(settings.queues, store))


def bind(settings: ReviewSettings) -> socket.socket:
    family = socket.AF_INET6 if ":" in settings.host else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    try:
        sock.bind((settings.host, settings.port))
    except OSError as exc:
        sock.close()
        raise CharterError(f"cannot listen on {settings.host}:{settings.port}: {exc.strerror}") from None
    sock.listen(128)
    sock.set_inheritable(True)
    return sock


def serve(store: Store, settings: ReviewSettings, announce: Callable[[str], None] = print) -> int:
    """Serve the bench until SIGINT/SIGTERM; returns how many labels were published."""
    import uvicorn

    from tasks.review.app import create_app

    check_host(settings)
    bench = open_bench(store, settings)
    lock = ServerLock(store)
    lock.acquire(f"{settings.host}:{settings.port}")
    try:
        sock = bind(settings)
        address = bench_address(settings, sock.getsockname()[1])
        lock.note_holder(address)
        if settings.host not in LOOPBACK_HOSTS:
            print(f"warning: the bench answers on {settings.host}, beyond this machine", file=sys.stderr)
        sizes = bench.rerun_all()
        with recorded_run(store, "review", settings.model_dump()) as run:
            publisher = Publisher(bench, run.run_id, settings.publish_seconds)
            publisher.start()
            # uvicorn shuts down gracefully on SIGINT/SIGTERM, then raises the signal again under
            # the handler it found: make that handler an exception, so the publish below still runs.
            # It is in place before the address is announced: a SIGTERM sent as soon as the address
            # is seen (before uvicorn has taken the signals) still ends in a clean publish.
            previous = signal.signal(signal.SIGTERM, _stopped)
            try:
                announce(
                    f"review bench at {address} (queues: "
                    + ", ".join(f"{name} {n}" for name, n in sizes.items())
                    + ")"
                )
                hosts = ["*"] if settings.allow_remote else sorted({settings.host, *LOOPBACK_HOSTS})
                config = uvicorn.Config(create_app(bench, hosts), log_level="warning", access_log=False)
                uvicorn.Server(config).run(sockets=[sock])
            except (Stopped, KeyboardInterrupt):
                pass
            finally:
                signal.signal(signal.SIGTERM, previous)
                published = publisher.stop()
                run.rows_added["human_labels"] += published
                sock.close()
        return published
    finally:
        lock.release()
