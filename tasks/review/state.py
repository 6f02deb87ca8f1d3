"""The bench's own database: annotators, sessions, queue snapshots, leases and submitted labels.

SQLite (in the store's ``review/`` folder, WAL mode) rather than the Parquet tables, because
the bench's writes are many, tiny and concurrent: a label is committed here in one
transaction the moment it is submitted (so a killed server loses nothing it acknowledged),
and published to the store's ``human_labels`` table in batches (:meth:`BenchState.publish`).
A submission carries a key the page was rendered with, and the label id hashes that key, so a
browser that resubmits, a crash between publishing and marking published, or two
publishers at once never duplicate a row: the store drops ids it already holds.

Tokens and session ids are stored only as sha256 hashes; a login link is good once.
"""

from __future__ import annotations

import contextlib
import hashlib
import hmac
import json
import secrets
import sqlite3
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from tasks.core.errors import CharterError
from tasks.review.items import ReviewItem

ROLES = ("annotator", "viewer")
CHOICES = {"left": "a", "right": "b", "tie": "tie"}
SESSION_SECONDS = 12 * 3600

_SCHEMA = """
create table if not exists annotators (
    name text primary key, role text not null, token_hash text, created_at real not null);
create table if not exists sessions (
    session_hash text primary key, annotator text not null, csrf text not null, expires_at real not null);
create table if not exists items (pair_id text primary key, item text not null) without rowid;
create table if not exists queue_items (
    queue text not null, rank integer not null, pair_id text not null, priority real not null,
    primary key (queue, rank)) without rowid;
create index if not exists queue_items_by_pair on queue_items (queue, pair_id);
create table if not exists voters (
    pair_id text not null, annotator text not null, bench integer not null,
    primary key (pair_id, annotator)) without rowid;
create table if not exists skips (
    queue text not null, pair_id text not null, annotator text not null,
    primary key (queue, annotator, pair_id)) without rowid;
create table if not exists leases (
    pair_id text not null, annotator text not null, queue text not null, expires_at real not null,
    primary key (pair_id, annotator)) without rowid;
create index if not exists leases_by_annotator on leases (annotator, queue);
create table if not exists labels (
    seq integer primary key, submission text not null unique, label_id text not null,
    annotator text not null, queue text not null, pair_id text not null, choice text not null,
    row text not null, published integer not null default 0, submitted_at real not null);
create index if not exists labels_unpublished on labels (published) where published = 0;
create index if not exists labels_by_annotator on labels (annotator, seq);
create index if not exists labels_by_queue on labels (queue, annotator);
create index if not exists labels_by_annotator_pair on labels (annotator, pair_id, seq);
"""


_WRITE_LOCKS: dict[Path, threading.Lock] = {}
_WRITE_LOCKS_GUARD = threading.Lock()


def _write_lock(path: Path) -> threading.Lock:
    """One lock per bench database in this process, shared by every BenchState opened on it."""
    with _WRITE_LOCKS_GUARD:
        return _WRITE_LOCKS.setdefault(path.resolve(), threading.Lock())


def token_hash(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


@dataclass(frozen=True)
class Session:
    annotator: str
    role: str
    csrf: str

    def csrf_matches(self, token: str | None) -> bool:
        # As bytes: compare_digest refuses non-ASCII str with a TypeError (a 500, not a 403).
        return token is not None and hmac.compare_digest(self.csrf.encode(), token.encode())


@dataclass(frozen=True)
class Submitted:
    """A stored label as the bench reports it back; ``new`` is False for a resubmission."""

    seq: int
    label_id: str
    new: bool


class BenchState:
    """One bench database; safe to share between threads (one connection per thread)."""

    def __init__(self, path: str | Path) -> None:
        self.path = Path(path)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self._local = threading.local()
        self._connection().executescript(_SCHEMA)  # each statement idempotent; executescript commits

    # -- connections ----------------------------------------------------------------------------
    def _connection(self) -> sqlite3.Connection:
        con = getattr(self._local, "con", None)
        if con is None:
            con = sqlite3.connect(self.path, timeout=30, isolation_level=None, check_same_thread=True)
            con.execute("pragma journal_mode = wal")
            con.execute("pragma synchronous = full")  # an acknowledged label survives power loss
            con.execute("pragma busy_timeout = 30000")
            self._local.con = con
        return con

    @contextlib.contextmanager
    def _transaction(self) -> Iterator[sqlite3.Connection]:
        """A write transaction. Threads of this process queue for it on a lock of their own
        first: left to SQLite's busy handler, a waiting writer polls, sleeping 1, 2, 5 ... up to
        100 ms between tries, and in a load test with 8 annotators writing at once 1% of writes
        waited 130 ms or more (the worst 0.5-1.3 s); the lock hands over as the last commit ends."""
        con = self._connection()
        with _write_lock(self.path):
            con.execute("begin immediate")
            try:
                yield con
            except BaseException:
                con.execute("rollback")
                raise
            con.execute("commit")

    def _one(self, sql: str, params: tuple[Any, ...] = ()) -> Any:
        row = self._connection().execute(sql, params).fetchone()
        return None if row is None else row[0]

    # -- people ---------------------------------------------------------------------------------
    def add_annotator(self, name: str, role: str = "annotator", *, new_link: bool = False) -> str:
        """Create (or, with ``new_link``, re-link) an annotator; returns the one-time login token."""
        if role not in ROLES:
            raise CharterError(f"unknown role {role!r}; roles: {', '.join(ROLES)}")
        token = secrets.token_urlsafe(32)
        with self._transaction() as con:
            exists = con.execute("select role from annotators where name = ?", (name,)).fetchone()
            if exists and not new_link:
                raise CharterError(
                    f"annotator {name!r} already exists; pass --new-link to issue a new login link"
                )
            if exists:
                con.execute(
                    "update annotators set token_hash = ?, role = ? where name = ?",
                    (token_hash(token), role, name),
                )
            else:
                con.execute(
                    "insert into annotators values (?, ?, ?, ?)", (name, role, token_hash(token), time.time())
                )
        return token

    def annotators(self) -> list[tuple[str, str]]:
        return self._connection().execute("select name, role from annotators order by name").fetchall()

    def log_in(self, token: str, now: float | None = None) -> tuple[str, Session] | None:
        """Trade a login token (good once) for a new session; returns (session id, session)."""
        now = time.time() if now is None else now
        with self._transaction() as con:
            row = con.execute(
                "select name, role from annotators where token_hash = ?", (token_hash(token),)
            ).fetchone()
            if row is None:
                return None
            name, role = row
            con.execute("update annotators set token_hash = null where name = ?", (name,))
            session_id, csrf = secrets.token_urlsafe(32), secrets.token_urlsafe(32)
            con.execute("delete from sessions where expires_at < ?", (now,))
            con.execute(
                "insert into sessions values (?, ?, ?, ?)",
                (token_hash(session_id), name, csrf, now + SESSION_SECONDS),
            )
        return session_id, Session(name, role, csrf)

    def session(self, session_id: str | None, now: float | None = None) -> Session | None:
        if not session_id:
            return None
        now = time.time() if now is None else now
        row = (
            self._connection()
            .execute(
                "select s.annotator, a.role, s.csrf from sessions s "
                "join annotators a on a.name = s.annotator where s.session_hash = ? and s.expires_at > ?",
                (token_hash(session_id), now),
            )
            .fetchone()
        )
        return None if row is None else Session(*row)

    def log_out(self, session_id: str) -> None:
        with self._transaction() as con:
            con.execute("delete from sessions where session_hash = ?", (token_hash(session_id),))

    # -- queues ---------------------------------------------------------------------------------
    def replace_snapshot(
        self,
        queue: str,
        ranked: list[tuple[str, float]],
        items: dict[str, ReviewItem],
        prior_voters: list[tuple[str, str]],
    ) -> int:
        """Make ``ranked`` (pairs with items only) the queue's items; returns how many were kept."""
        kept = [(pair, priority) for pair, priority in ranked if pair in items]
        with self._transaction() as con:
            con.executemany(
                # Replace, not ignore: a pair's texts never change, but a new judge run does
                # change its AI verdict, which a queue that shows the AI must not show stale.
                "insert or replace into items values (?, ?)",
                [(pair, json.dumps(items[pair].__dict__)) for pair, _ in kept],
            )
            con.execute("delete from queue_items where queue = ?", (queue,))
            con.executemany(
                "insert into queue_items values (?, ?, ?, ?)",
                [(queue, rank, pair, priority) for rank, (pair, priority) in enumerate(kept)],
            )
            con.executemany("insert or ignore into voters values (?, ?, 0)", prior_voters)
        return len(kept)

    def completed_pairs(self, overlap: int) -> list[str]:
        """Pairs ``overlap`` annotators labelled on this bench: a queue rerun leaves them out."""
        rows = self._connection().execute(
            "select pair_id from voters where bench = 1 group by pair_id having count(*) >= ?", (overlap,)
        )
        return [row[0] for row in rows]

    def item(self, pair_id: str) -> ReviewItem | None:
        text = self._one("select item from items where pair_id = ?", (pair_id,))
        return None if text is None else ReviewItem(**json.loads(text))

    def in_queue(self, queue: str, pair_id: str) -> bool:
        return self._one("select 1 from queue_items where queue = ? and pair_id = ?", (queue, pair_id)) == 1

    def next_item(
        self, queue: str, annotator: str, *, overlap: int, lease_seconds: float, now: float | None = None
    ) -> str | None:
        """The pair this annotator should label next in ``queue``, leased to them; None when done.

        An item still leased to the annotator comes back (a reload shows the same pair); else
        the lowest-ranked item they have neither labelled (here or in an imported file) nor
        skipped, whose bench labels plus other people's live leases are fewer than ``overlap``.
        Labels people made before the bench do not count towards ``overlap``: a pair people
        split on is queued to get *more* eyes.
        """
        now = time.time() if now is None else now
        with self._transaction() as con:
            held = con.execute(
                "select l.pair_id from leases l "
                "join queue_items q on q.queue = l.queue and q.pair_id = l.pair_id "
                "where l.annotator = ? and l.queue = ? and l.expires_at > ? and not exists "
                "(select 1 from voters v where v.pair_id = l.pair_id and v.annotator = l.annotator) "
                "order by q.rank limit 1",
                (annotator, queue, now),
            ).fetchone()
            if held is None:
                held = con.execute(
                    "select q.pair_id from queue_items q where q.queue = ? "
                    "and not exists (select 1 from voters v where v.pair_id = q.pair_id and v.annotator = ?) "
                    "and not exists (select 1 from skips s where s.queue = q.queue and s.pair_id = q.pair_id "
                    "                and s.annotator = ?) "
                    "and (select count(*) from voters v where v.pair_id = q.pair_id and v.bench = 1) "
                    "  + (select count(*) from leases l where l.pair_id = q.pair_id and l.expires_at > ? "
                    "     and l.annotator <> ?) < ? "
                    "order by q.rank limit 1",
                    (queue, annotator, annotator, now, annotator, overlap),
                ).fetchone()
            if held is None:
                return None
            con.execute(
                "insert or replace into leases values (?, ?, ?, ?)",
                (held[0], annotator, queue, now + lease_seconds),
            )
        return held[0]

    def has_voted(self, annotator: str, pair_id: str) -> bool:
        return (
            self._one("select 1 from voters where pair_id = ? and annotator = ?", (pair_id, annotator)) == 1
        )

    def skip(self, queue: str, pair_id: str, annotator: str) -> None:
        with self._transaction() as con:
            con.execute("insert or ignore into skips values (?, ?, ?)", (queue, pair_id, annotator))
            con.execute("delete from leases where pair_id = ? and annotator = ?", (pair_id, annotator))

    # -- labels ---------------------------------------------------------------------------------
    def submit(self, submission: str, row: dict[str, Any]) -> Submitted:
        """Commit one label row (built by :func:`tasks.review.labels.bench_label_row`).

        ``row['source_row']`` is filled here with the label's sequence number, so a later vote
        by the same person on the same pair always sorts after an earlier one.
        """
        with self._transaction() as con:
            existing = con.execute(
                "select seq, label_id from labels where submission = ?", (submission,)
            ).fetchone()
            if existing:
                return Submitted(existing[0], existing[1], new=False)
            seq = con.execute("select coalesce(max(seq), 0) + 1 from labels").fetchone()[0]
            row = {**row, "source_row": seq}
            con.execute(
                "insert into labels (seq, submission, label_id, annotator, queue, pair_id, choice, row, "
                "submitted_at) values (?, ?, ?, ?, ?, ?, ?, ?, ?)",
                (seq, submission, row["label_id"], row["annotator"], row["queue"], row["pair_id"],
                 row["choice"], json.dumps(row), time.time()),
            )  # fmt: skip
            voter = (row["pair_id"], row["annotator"])
            con.execute("insert or replace into voters values (?, ?, 1)", voter)
            con.execute("delete from leases where pair_id = ? and annotator = ?", voter)
        return Submitted(seq, row["label_id"], new=True)

    def labels_of(self, annotator: str, limit: int = 50) -> list[dict[str, Any]]:
        """The annotator's latest label per pair, newest first (for the 'my labels' page).

        Walks their labels newest first and stops after ``limit``: every review page asks for
        the last one, and grouping all of a prolific annotator's labels first cost 6 ms a page
        at 12,500 labels each (under 0.1 ms this way)."""
        rows = self._connection().execute(
            "select row from labels l where l.annotator = ? and not exists (select 1 from labels n "
            "where n.annotator = l.annotator and n.pair_id = l.pair_id and n.seq > l.seq) "
            "order by l.seq desc limit ?",
            (annotator, limit),
        )
        return [json.loads(row[0]) for row in rows]

    def progress(self, queue: str | None = None) -> list[dict[str, Any]]:
        """Per queue (or for ``queue`` alone: what every review page shows, so it is kept to
        that queue's rows): items in the snapshot, items with a label, labels, annotators."""
        rows = self._connection().execute(
            "select q.queue, count(*), count(*) filter (where exists "
            "  (select 1 from voters v where v.pair_id = q.pair_id and v.bench = 1)), "
            "(select count(*) from labels l where l.queue = q.queue), "
            "(select count(distinct annotator) from labels l where l.queue = q.queue) "
            "from queue_items q where ? is null or q.queue = ? group by q.queue",
            (queue, queue),
        )
        keys = ("queue", "items", "labelled_items", "labels", "annotators")
        return [dict(zip(keys, row, strict=True)) for row in rows]

    def unpublished(self) -> list[tuple[int, dict[str, Any]]]:
        rows = self._connection().execute("select seq, row from labels where published = 0 order by seq")
        return [(seq, json.loads(row)) for seq, row in rows]

    def mark_published(self, last_seq: int) -> None:
        with self._transaction() as con:
            con.execute("update labels set published = 1 where published = 0 and seq <= ?", (last_seq,))

    def count(self, table: str) -> int:
        if table not in ("labels", "annotators", "sessions", "leases", "skips", "queue_items", "items"):
            raise ValueError(table)
        return int(self._one(f"select count(*) from {table}"))
