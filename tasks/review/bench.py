"""The bench's logic, without the web: queues rerun when they run out, items leased and labelled,
labels published to the store in the background, and one server per store.

:class:`Bench` is what the FastAPI app (:mod:`.app`) calls; tests and ``bench/review.py`` call
it directly too. Only the queue reruns touch DuckDB (one read-only catalog per rerun); serving
an item or storing a label touches only the bench's SQLite database, so both stay fast
however many labels the store holds.
"""

from __future__ import annotations

import fcntl
import os
import re
import threading
import time
from dataclasses import dataclass
from typing import IO, Any

from tasks.core.errors import CharterError
from tasks.review.display import shows_second_first
from tasks.review.items import ReviewItem, load_items
from tasks.review.labels import bench_label_row, bench_path, publish
from tasks.review.queues import Queue, queue_snapshot
from tasks.review.settings import ReviewSettings
from tasks.review.state import CHOICES, BenchState, Submitted
from tasks.store.sql import readonly_connection
from tasks.store.store import Store

# A queue found empty is rerun at most this often: its SQL may take a second on a big store.
RERUN_SECONDS = 30.0


@dataclass(frozen=True)
class Page:
    """An item as one annotator sees it: which text is on the left, and whether the AI is shown."""

    queue: Queue
    item: ReviewItem
    swapped: bool
    show_ai: bool
    question: str

    @property
    def left(self) -> str:
        return self.item.second_text if self.swapped else self.item.first_text

    @property
    def right(self) -> str:
        return self.item.first_text if self.swapped else self.item.second_text

    @property
    def ai_suggestion(self) -> str | None:
        """'left', 'right' or 'tie' as the AI voted, when this queue shows it."""
        vote = self.item.ai_vote if self.show_ai else None
        if vote in (None, "tie"):
            return vote
        return "left" if (vote == "first") != self.swapped else "right"


class ServerLock:
    """An exclusive lock on the store's bench: a second ``charter review`` on it is refused."""

    def __init__(self, store: Store) -> None:
        self.path = bench_path(store).with_name("server.lock")
        self._handle: IO[str] | None = None

    def acquire(self, address: str) -> None:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        handle = open(self.path, "a+")  # noqa: SIM115 - held open for the server's lifetime
        try:
            fcntl.flock(handle.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            handle.seek(0)
            holder = handle.read().strip() or "another process"
            handle.close()
            raise CharterError(
                f"another charter review already serves this store ({holder}); stop it first, or "
                "open that one: two servers would hand the same items out twice"
            ) from None
        self._handle = handle
        self.note_holder(address)

    def note_holder(self, address: str) -> None:
        """Record who holds the lock (shown to a second server that is refused)."""
        assert self._handle is not None
        self._handle.seek(0)
        self._handle.truncate()
        self._handle.write(f"pid {os.getpid()} at {address}\n")
        self._handle.flush()

    def serving_address(self) -> str | None:
        """The address of the bench that holds the lock now, or None when none serves."""
        if not self.path.exists():
            return None
        with open(self.path) as handle:
            try:
                fcntl.flock(handle.fileno(), fcntl.LOCK_SH | fcntl.LOCK_NB)
            except BlockingIOError:
                found = re.search(r" at (\S+)", handle.read())
                return found.group(1) if found and found.group(1).startswith("http") else None
            fcntl.flock(handle.fileno(), fcntl.LOCK_UN)
        return None

    def release(self) -> None:
        if self._handle is not None:
            self._handle.close()
            self._handle = None


class Bench:
    """The review bench over one store."""

    def __init__(self, store: Store, settings: ReviewSettings, queues: list[Queue]) -> None:
        self.store = store
        self.settings = settings
        self.queues = {queue.name: queue for queue in queues}
        self.state = BenchState(bench_path(store))
        self._rerun_locks = {name: threading.Lock() for name in self.queues}
        self._last_rerun: dict[str, float] = {}
        self._publish_lock = threading.Lock()

    # -- queues ---------------------------------------------------------------------------------
    def queue(self, name: str) -> Queue:
        try:
            return self.queues[name]
        except KeyError:
            raise CharterError(f"no queue {name!r}; queues: {', '.join(self.queues)}") from None

    def rerun(self, name: str) -> int:
        """Run the queue's SQL again and make its first items the snapshot; returns how many."""
        queue = self.queue(name)
        with self._rerun_locks[name]:
            with readonly_connection(self.store) as con:
                done = self.state.completed_pairs(self.settings.overlap)
                ranked = queue_snapshot(con, queue, self.settings.snapshot_size, exclude=done)
                pair_ids = [pair for pair, _ in ranked]
                items = load_items(con, pair_ids)
                voters = con.execute(
                    "select pair_id, annotator from human_votes where pair_id in (select unnest($ids))",
                    {"ids": pair_ids},
                ).fetchall()
            kept = self.state.replace_snapshot(name, ranked, items, voters)
            self._last_rerun[name] = time.monotonic()
        return kept

    def rerun_all(self) -> dict[str, int]:
        return {name: self.rerun(name) for name in self.queues}

    def next_page(self, name: str, annotator: str) -> Page | None:
        """The next item for ``annotator`` in queue ``name`` (leased to them), or None when done."""
        queue = self.queue(name)
        pair = self._next_pair(name, annotator)
        if pair is None and time.monotonic() - self._last_rerun.get(name, -RERUN_SECONDS) >= RERUN_SECONDS:
            self.rerun(name)
            pair = self._next_pair(name, annotator)
        return None if pair is None else self.page(queue, pair, annotator)

    def _next_pair(self, name: str, annotator: str) -> str | None:
        return self.state.next_item(
            name, annotator, overlap=self.settings.overlap, lease_seconds=self.settings.lease_seconds
        )

    def page(self, queue: Queue, pair_id: str, annotator: str) -> Page | None:
        item = self.state.item(pair_id)
        if item is None:
            return None
        return Page(
            queue=queue,
            item=item,
            swapped=shows_second_first(self.settings.seed, annotator, pair_id),
            show_ai=queue.settings.show_ai and item.ai_vote is not None,
            question=item.question(self.settings.question),
        )

    # -- labels ---------------------------------------------------------------------------------
    def submit(
        self,
        *,
        queue_name: str,
        pair_id: str,
        annotator: str,
        choice: str,
        submission: str,
        confidence: float | None = None,
        comment: str | None = None,
    ) -> Submitted | None:
        """Store a label (``choice`` left/right/tie) or a skip (``choice`` 'skip': returns None)."""
        queue = self.queue(queue_name)
        page = self.page(queue, pair_id, annotator)
        if page is None or not (
            self.state.in_queue(queue_name, pair_id) or self.state.has_voted(annotator, pair_id)
        ):
            raise CharterError(f"pair {pair_id[:12]} is not an item of queue {queue_name!r}")
        if choice == "skip":
            self.state.skip(queue_name, pair_id, annotator)
            return None
        if choice not in CHOICES:
            raise CharterError(f"unknown choice {choice!r}; choices: {', '.join(CHOICES)}, skip")
        row = bench_label_row(
            page.item,
            annotator=annotator,
            queue=queue_name,
            choice=choice,
            submission=submission,
            seed=self.settings.seed,
            ai_shown=page.show_ai,
            bench_file=str(self.state.path),
            confidence=confidence,
            comment=comment,
        )
        return self.state.submit(submission, row)

    def publish(self, run_id: str) -> int:
        """Publish pending labels to the store (one publisher at a time in this process)."""
        with self._publish_lock:
            return publish(self.state, self.store, run_id)

    def progress(self, queue_name: str | None = None) -> list[dict[str, Any]]:
        """Every queue's progress, or only ``queue_name``'s (one review page's)."""
        counts = {row["queue"]: row for row in self.state.progress(queue_name)}
        empty = {"items": 0, "labelled_items": 0, "labels": 0, "annotators": 0}
        return [
            {"queue": name, "title": queue.settings.title, **counts.get(name, {**empty, "queue": name})}
            for name, queue in self.queues.items()
            if queue_name is None or name == queue_name
        ]


class Publisher(threading.Thread):
    """Publishes the bench's labels every ``interval`` seconds until stopped, then once more."""

    def __init__(self, bench: Bench, run_id: str, interval: float) -> None:
        super().__init__(name="charter-review-publisher", daemon=True)
        self.bench, self.run_id, self.interval = bench, run_id, interval
        self._stopping = threading.Event()
        self.published = 0
        self.error: BaseException | None = None

    def run(self) -> None:
        while not self._stopping.wait(self.interval):
            self._publish_once()

    def _publish_once(self) -> None:
        try:
            self.published += self.bench.publish(self.run_id)
            self.error = None
        except Exception as exc:  # the labels stay in the bench database; try again next time
            self.error = exc

    def stop(self) -> int:
        self._stopping.set()
        if self.is_alive():
            self.join()
        self.published += self.bench.publish(self.run_id)
        return self.published


def bench_address(settings: ReviewSettings, port: int) -> str:
    host = f"[{settings.host}]" if ":" in settings.host else settings.host
    return f"http://{host}:{port}"


def login_link(address: str, token: str) -> str:
    return f"{address}/login?token={token}"
