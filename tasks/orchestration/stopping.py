"""Stop a charter command when told: SIGINT or SIGTERM unwinds it, records its run ``cancelled``
and exits 130 or 143 (128 + the signal, as a shell reports a process the signal killed).

The stop is an exception raised in the main thread, where Python runs signal handlers (between
two bytecodes), and where a command's work runs: the local runner runs each batch in that
thread (:func:`tasks.orchestration.runners.run_batches`), training and evaluation too. So the
batch in flight is **abandoned** at its next model step, not finished: nothing of it is
written, because a batch's rows land in one atomic append at its end and a checkpoint is built
beside its folder and renamed into place. Every id is a content hash, so a rerun redoes exactly
the abandoned batch and ends with the rows an uninterrupted run writes, as after a SIGKILL.

Inside a Prefect flow run Prefect owns SIGTERM: its handler raises its ``TerminationSignal``
instead, marks the flow runs crashed (or cancelled, when its runner asked for the stop), and
once the outermost flow run has unwound puts this handler back and sends the signal again,
which then lands here. Either exception is a ``BaseException`` and no ``Exception``, so
``except Exception`` blocks let it through and :func:`tasks.store.runs.recorded_run` records
``cancelled``. A second signal while the command is stopping ends it at once (``os._exit``):
whoever sent it does not want to wait; Prefect's temporary server dies with it all the same
(:func:`tasks.orchestration.prefect_server.temporary_server_dies_with_this_process`).
"""

from __future__ import annotations

import os
import signal
from types import FrameType

STOP_SIGNALS = (signal.SIGINT, signal.SIGTERM)


class Stopped(BaseException):
    """A stop signal arrived: raised in the main thread, caught by the entry point, which exits.

    Not a ``KeyboardInterrupt``: Click turns those into "Aborted!" and exit status 1.
    """

    def __init__(self, signum: int):
        self.signum = signum
        super().__init__(f"stopped by {signal.Signals(signum).name}")

    @property
    def exit_code(self) -> int:
        return 128 + self.signum


class _StopHandler:
    """The handler for every stop signal: the first raises :class:`Stopped`, a later one exits."""

    def __init__(self) -> None:
        self.stopping = False

    def __call__(self, signum: int, frame: FrameType | None) -> None:
        if self.stopping:
            os._exit(128 + signum)
        self.stopping = True
        raise Stopped(signum)


def stop_on_signals() -> None:
    """From now on SIGINT and SIGTERM stop this process as the module says (main thread only)."""
    handler = _StopHandler()
    for signum in STOP_SIGNALS:
        signal.signal(signum, handler)
