"""The one progress reporter for long work: a rich bar on a terminal, periodic log lines elsewhere.

Training steps, judge and critique batches, evaluation sampling and label imports can each run
for minutes. ``with progress(label, total, unit=...) as bar:`` around the loop, and
``bar.advance(n)`` as work gets done, shows how far it is, how fast it goes and when it will end:

- on a terminal (stdout and stderr both) a rich bar on stderr: count, percentage, rate, elapsed
  time and ETA. Work started while a bar is shown (a batch inside a flow's batches, another
  thread) adds a row to the same display, since a terminal holds one live display at a time;
  Prefect's and other log lines print above it instead of through it.
- elsewhere (CI, a pipe, Prefect workers) a log line at the first step after every
  ``every_seconds`` (10, or ``$CHARTER_PROGRESS_SECONDS``), through Prefect's run logger inside a
  flow or task run (so the lines reach Prefect's UI) and this module's logger otherwise.

Both say the same :class:`ProgressFigures`. Work that lasted at least ``every_seconds`` logs a last
line with its final figures, on either path (done, or stopped when it raised); quick work stays
quiet, so a short command prints its result and nothing else. The handle returns the figures
(:meth:`ProgressBar.figures`) for the caller to record. This module's logger emits INFO (set its
level to silence it) and prints to stderr when logging is not configured at all. Prefect is only
used when something already imported it (a run context cannot exist otherwise), so importing
this module never imports Prefect.
"""

from __future__ import annotations

import logging
import os
import sys
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import asdict, dataclass
from typing import IO, Any

from rich.console import Console
from rich.file_proxy import FileProxy
from rich.progress import BarColumn, Progress, ProgressColumn, Task, TextColumn
from rich.text import Text

LOG_EVERY_SECONDS = 10.0
INTERVAL_VARIABLE = "CHARTER_PROGRESS_SECONDS"

_logger = logging.getLogger(__name__)
_logger.setLevel(logging.INFO)


@dataclass(frozen=True)
class ProgressFigures:
    """How far one piece of work has got: what a progress line says and what a report records."""

    label: str
    unit: str
    done: int
    total: int | None
    """None when the amount of work is not known beforehand (rows of a file being read)."""
    seconds: float

    @property
    def rate(self) -> float | None:
        """Units per second since the start: a mean over the whole run, not a recent window; None
        before the first unit."""
        return self.done / self.seconds if self.seconds > 0 and self.done else None

    @property
    def eta_seconds(self) -> float | None:
        """Seconds left at the mean rate so far; None without a total, before the first unit, at the end."""
        if self.total is None or not self.rate or self.done >= self.total:
            return None
        return (self.total - self.done) / self.rate

    def count(self) -> str:
        """``"30/120 pairs (25%)"``, or ``"30 rows"`` without a total."""
        if self.total is None:
            return f"{self.done} {self.unit}"
        share = f" ({self.done / self.total:.0%})" if self.total else ""
        return f"{self.done}/{self.total} {self.unit}{share}"

    def timing(self) -> str:
        """``"1.5 pairs/s, 0:00:20 elapsed, ETA 0:01:00"``: the rate and the ETA once they are known."""
        parts = [f"{_clock_time(self.seconds)} elapsed"]
        if self.rate is not None:
            parts.insert(0, f"{_significant(self.rate)} {self.unit}/s")
        if self.eta_seconds is not None:
            parts.append(f"ETA {_clock_time(self.eta_seconds)}")
        return ", ".join(parts)

    def line(self) -> str:
        return f"{self.label}: {self.count()}, {self.timing()}"

    def as_dict(self) -> dict[str, Any]:
        return {**asdict(self), "rate": self.rate}


def _significant(number: float) -> str:
    """Whole numbers from 100 up, else three significant digits; never an exponent: 0.0333, 16.6, 25153."""
    return f"{number:.0f}" if number >= 100 else f"{number:.3g}"


def _clock_time(seconds: float) -> str:
    whole = round(seconds)
    return f"{whole // 3600}:{whole // 60 % 60:02d}:{whole % 60:02d}"


class ProgressBar:
    """What ``with progress(...) as bar`` gives: count work done with :meth:`advance`."""

    def __init__(
        self,
        label: str,
        total: int | None,
        unit: str,
        clock: Callable[[], float],
        on_advance: Callable[[int], None],
    ) -> None:
        self.label, self.total, self.unit = label, total, unit
        self.done = 0
        self._clock = clock
        self._started = clock()
        self._ended: float | None = None
        self._on_advance = on_advance

    def advance(self, count: int = 1) -> None:
        self.done += count
        self._on_advance(count)

    def figures(self) -> ProgressFigures:
        """The figures now, or when the work ended: the ``with`` block's exit stops the clock."""
        ended = self._clock() if self._ended is None else self._ended
        return ProgressFigures(self.label, self.unit, self.done, self.total, ended - self._started)

    def _end(self) -> None:
        self._ended = self._clock()


@contextmanager
def progress(
    label: str,
    total: int | None = None,
    *,
    unit: str = "items",
    every_seconds: float | None = None,
    clock: Callable[[], float] = time.monotonic,
    console: Console | None = None,
    logger: logging.Logger | logging.LoggerAdapter | None = None,
) -> Iterator[ProgressBar]:
    """Report the progress of the work inside the ``with`` block (see the module's docstring).

    ``every_seconds`` defaults to :func:`log_interval`. ``console`` draws the bar there instead of
    deciding by the terminal; ``logger`` replaces the run or module logger.
    """
    every_seconds = log_interval() if every_seconds is None else every_seconds
    console = _terminal_console() if console is None else console
    log = _run_logger() if logger is None else logger
    if console is not None:
        with _live_display(console) as display:
            task_id = display.add_task(label, total=total)
            bar = ProgressBar(label, total, unit, clock, lambda count: display.advance(task_id, count))
            display.update(task_id, bar=bar)
            try:
                with _last_line(bar, log, every_seconds):
                    yield bar
            finally:
                display.refresh()
                display.remove_task(task_id)
        return
    last_line = clock()

    def log_when_due(_count: int) -> None:
        nonlocal last_line
        if clock() - last_line >= every_seconds:
            last_line = clock()
            log.info("%s", bar.figures().line())

    bar = ProgressBar(label, total, unit, clock, log_when_due)
    with _last_line(bar, log, every_seconds):
        yield bar


def log_interval() -> float:
    """Seconds between progress lines: ``$CHARTER_PROGRESS_SECONDS``, else 10.

    0 logs every step, which is for debugging; CI that wants fewer lines sets a larger number. A
    value that is no number >= 0 is named in a warning and 10 used: a display setting should not
    stop work that may already have run for minutes.
    """
    text = os.environ.get(INTERVAL_VARIABLE, "").strip()
    if not text:
        return LOG_EVERY_SECONDS
    try:
        seconds = float(text)
    except ValueError:
        seconds = -1.0
    if not seconds >= 0:  # also refuses nan
        _logger.warning(
            "%s=%r is not a number of seconds >= 0; logging progress every %g s",
            INTERVAL_VARIABLE,
            text,
            LOG_EVERY_SECONDS,
        )
        return LOG_EVERY_SECONDS
    return seconds


@contextmanager
def _last_line(
    bar: ProgressBar, log: logging.Logger | logging.LoggerAdapter, every_seconds: float
) -> Iterator[None]:
    """Stop the bar's clock when the work ends, and log its final figures if the work took long
    enough for lines to be due, marked done or, when it raised, stopped."""
    outcome = "stopped"
    try:
        yield
        outcome = "done"
    finally:
        bar._end()
        figures = bar.figures()
        if figures.seconds >= every_seconds:
            log.info("%s (%s)", figures.line(), outcome)


class _FiguresColumn(ProgressColumn):
    """The bar's count, rate, elapsed time and ETA, from the same figures a log line shows."""

    def render(self, task: Task) -> Text:
        bar: ProgressBar | None = task.fields.get("bar")
        if bar is None:
            return Text("")
        figures = bar.figures()
        return Text(f"{figures.count()}  {figures.timing()}", style="progress.remaining")


def _terminal_console() -> Console | None:
    """A console on stderr when both stdout and stderr are terminals, else None (log lines)."""
    if sys.stdout.isatty() and sys.stderr.isatty():
        return Console(stderr=True)
    return None


def _run_logger() -> logging.Logger | logging.LoggerAdapter:
    """Prefect's logger of the flow or task run in progress here, else this module's logger."""
    if "prefect" in sys.modules:
        from prefect.exceptions import MissingContextError
        from prefect.logging import get_run_logger

        try:
            return get_run_logger()
        except MissingContextError:
            pass
    return _logger


_display_lock = threading.Lock()
_display: Progress | None = None
_display_users = 0


@contextmanager
def _live_display(console: Console) -> Iterator[Progress]:
    """The live display to add a bar to: the one already shown, or a new one on ``console``."""
    global _display, _display_users
    with _display_lock:
        if _display is None:
            _display = Progress(
                TextColumn("{task.description}"), BarColumn(bar_width=24), _FiguresColumn(), console=console
            )
            _display.start()
            _handlers_through(_display.console)
        _display_users += 1
        display = _display
    try:
        yield display
    finally:
        with _display_lock:
            _display_users -= 1
            if _display_users == 0:
                _display.stop()
                _handlers_through(None)
                _display = None


_routed: list[tuple[Any, Any]] = []


def _handlers_through(console: Console | None) -> None:
    """Send the root logger's terminal handlers through ``console`` while it shows a bar (None: back).

    Such handlers hold the terminal's stream itself (Prefect's rich console handler among them),
    so a live display's redirect of ``sys.stderr`` misses them and their lines would be written
    into the bar; through the display's console they print above it.
    """
    if console is None:
        for holder, stream in _routed:
            _set_stream(holder, stream)
        _routed.clear()
        return
    for handler in logging.getLogger().handlers:
        holder = getattr(handler, "console", handler)  # Prefect's handler prints with a rich console
        stream = getattr(holder, "file", None) or getattr(holder, "stream", None)
        if _is_terminal(stream):
            _routed.append((holder, stream))
            _set_stream(holder, _AboveTheBar(console, stream))


class _AboveTheBar(FileProxy):
    """A stream whose lines the live display's console prints above the bar.

    rich's own proxy names the stream it wraps, and a rich console given it writes to that
    stream directly, into the bar; this one names itself, so Prefect's console writes through it.
    """

    @property
    def rich_proxied_file(self) -> IO[str]:
        return self


def _is_terminal(stream: Any) -> bool:
    try:
        return bool(stream is not None and stream.isatty())
    except ValueError:  # a closed stream
        return False


def _set_stream(holder: Any, stream: Any) -> None:
    if isinstance(holder, Console):
        holder.file = stream
    else:
        holder.setStream(stream)


class _StderrWhenUnconfigured(logging.Handler):
    """Prints this module's lines to the current ``sys.stderr`` when no root handler exists.

    With logging configured (Prefect configures it on import) the lines reach the root handlers
    instead; without it, Python would drop INFO records.
    """

    def emit(self, record: logging.LogRecord) -> None:
        if logging.getLogger().handlers:
            return
        try:
            sys.stderr.write(self.format(record) + "\n")
        except Exception:  # as logging's own handlers do: never raise into the work reported on
            self.handleError(record)


_logger.addHandler(_StderrWhenUnconfigured())
