"""The bench's SQLite state: one-time login links stored hashed, sessions that expire, leases
that keep two people off one copy of an item, skips, idempotent submissions, and many threads
submitting at once. Times are passed in (``now=``), so expiry is checked to the second."""

from __future__ import annotations

import hashlib
import threading
from pathlib import Path

import pytest

from tasks.core.errors import CharterError
from tasks.review.items import ReviewItem
from tasks.review.labels import bench_label_row, bench_path, publish
from tasks.review.state import SESSION_SECONDS, BenchState, Session
from tasks.store.store import Store
from tests.review.conftest import CASES

LEASE = 300.0
Q = "uncertain"


def item(name: str) -> ReviewItem:
    case = CASES[name]
    return ReviewItem(
        pair_id=case.pair_id,
        prompt_id=case.pair.prompt.prompt_id,
        family=case.family,
        messages=case.messages,
        first_id=case.pair.response_a_id,
        first_text=case.first,
        second_id=case.pair.response_b_id,
        second_text=case.second,
        principle_id=case.principle,
        comparison=None,
        ai_p_first=None,
        ai_labels=0,
    )


ORDER = ["close", "lopsided", "conflict"]
PAIR = {name: CASES[name].pair_id for name in ORDER}
NAME = {pair: name for name, pair in PAIR.items()}


@pytest.fixture
def state(tmp_path: Path) -> BenchState:
    """A bench whose queue holds close, lopsided, conflict in that order."""
    bench = BenchState(tmp_path / "review" / "bench.sqlite3")
    items = {PAIR[name]: item(name) for name in ORDER}
    ranked = [(PAIR[name], rank / 10) for rank, name in enumerate(ORDER)]
    assert bench.replace_snapshot(Q, ranked, items, prior_voters=[]) == 3
    return bench


def next_name(state: BenchState, annotator: str, now: float, overlap: int = 1) -> str | None:
    pair = state.next_item(Q, annotator, overlap=overlap, lease_seconds=LEASE, now=now)
    return None if pair is None else NAME[pair]


def row(name: str, annotator: str, submission: str, choice: str = "left") -> dict:
    return bench_label_row(
        item(name),
        annotator=annotator,
        queue=Q,
        choice=choice,
        submission=submission,
        seed=0,
        ai_shown=False,
        bench_file="bench.sqlite3",
    )


def stored_bytes(path: Path) -> bytes:
    """The database and its WAL and shared-memory files: everything SQLite wrote."""
    return b"".join(p.read_bytes() for p in path.parent.glob(path.name + "*"))


# -- people ---------------------------------------------------------------------------------------


def test_a_login_token_works_once_and_only_its_hash_is_stored(state: BenchState) -> None:
    token = state.add_annotator("ana")
    assert len(token) >= 40
    digest = hashlib.sha256(token.encode()).hexdigest()
    assert state._one("select token_hash from annotators where name = 'ana'") == digest
    assert token.encode() not in stored_bytes(state.path)
    opened = state.log_in(token, now=1000.0)
    assert opened is not None
    session_id, session = opened
    assert session == Session("ana", "annotator", session.csrf) and len(session.csrf) >= 40
    assert state.session(session_id, now=1000.0) == session
    assert state.log_in(token, now=1001.0) is None  # spent
    assert state._one("select token_hash from annotators where name = 'ana'") is None
    stored = stored_bytes(state.path)
    assert token.encode() not in stored and session_id.encode() not in stored
    assert hashlib.sha256(session_id.encode()).hexdigest().encode() in stored


def test_a_session_expires_after_its_lifetime(state: BenchState) -> None:
    session_id, _ = state.log_in(state.add_annotator("ana"), now=1000.0)
    assert state.session(session_id, now=1000.0 + SESSION_SECONDS - 1) is not None
    assert state.session(session_id, now=1000.0 + SESSION_SECONDS) is None
    assert state.session("not-a-session", now=1000.0) is None
    assert state.session(None) is None and state.session("") is None


def test_log_out_ends_only_that_session(state: BenchState) -> None:
    first, _ = state.log_in(state.add_annotator("ana"), now=0.0)
    second, _ = state.log_in(state.add_annotator("ana", new_link=True), now=0.0)
    state.log_out(first)
    assert state.session(first, now=1.0) is None
    assert state.session(second, now=1.0) is not None


def test_a_new_link_replaces_the_old_one_and_an_existing_name_needs_it(state: BenchState) -> None:
    old = state.add_annotator("ana")
    with pytest.raises(CharterError, match="already exists; pass --new-link"):
        state.add_annotator("ana")
    new = state.add_annotator("ana", "viewer", new_link=True)
    assert new != old
    assert state.log_in(old) is None
    _, session = state.log_in(new)
    assert (session.annotator, session.role) == ("ana", "viewer")
    assert state.annotators() == [("ana", "viewer")]


def test_a_viewer_session_says_so_and_an_unknown_role_is_refused(state: BenchState) -> None:
    _, session = state.log_in(state.add_annotator("vera", "viewer"))
    assert session.role == "viewer"
    with pytest.raises(CharterError, match="unknown role 'admin'"):
        state.add_annotator("eve", "admin")
    assert state.count("annotators") == 1


def test_csrf_matches_only_the_exact_token() -> None:
    session = Session("ana", "annotator", "s3cret-token")
    assert session.csrf_matches("s3cret-token")
    assert not session.csrf_matches("s3cret-tokeN")
    assert not session.csrf_matches("")
    assert not session.csrf_matches("s3cret-tökén")  # not ASCII: refused, not an error
    assert not session.csrf_matches(None)


# -- leases -----------------------------------------------------------------------------------------


def test_with_overlap_1_two_annotators_never_hold_the_same_item(state: BenchState) -> None:
    assert next_name(state, "ana", now=0) == "close"
    assert next_name(state, "ben", now=1) == "lopsided"
    assert next_name(state, "cai", now=2) == "conflict"
    assert next_name(state, "dan", now=3) is None
    assert state.count("leases") == 3


def test_with_overlap_2_two_annotators_get_the_same_item(state: BenchState) -> None:
    assert next_name(state, "ana", now=0, overlap=2) == "close"
    assert next_name(state, "ben", now=1, overlap=2) == "close"
    assert next_name(state, "cai", now=2, overlap=2) == "lopsided"  # close has its 2 people


def test_an_expired_lease_frees_the_item(state: BenchState) -> None:
    assert next_name(state, "ana", now=0) == "close"  # leased until 300
    assert next_name(state, "ben", now=299) == "lopsided"  # until 599
    assert next_name(state, "cai", now=300) == "close"  # ana's lease ran out


def test_a_reload_returns_the_leased_item_and_renews_the_lease(state: BenchState) -> None:
    assert next_name(state, "ana", now=0) == "close"
    assert next_name(state, "ana", now=10) == "close"  # the same item, leased until 310
    assert next_name(state, "ben", now=305) == "lopsided"  # still ana's
    assert next_name(state, "cai", now=310) == "close"  # expired at 310


def test_a_skip_hides_the_item_from_that_annotator_only(state: BenchState) -> None:
    assert next_name(state, "ana", now=0) == "close"
    state.skip(Q, PAIR["close"], "ana")
    assert next_name(state, "ana", now=1) == "lopsided"
    assert next_name(state, "ben", now=2) == "close"  # the skip gave up ana's lease too
    state.skip(Q, PAIR["close"], "ana")  # skipping twice is harmless
    assert state.count("skips") == 1


def test_an_annotator_never_gets_a_pair_they_voted_on_before_the_bench(state: BenchState) -> None:
    state.replace_snapshot(
        Q,
        [(PAIR[name], rank) for rank, name in enumerate(ORDER)],
        {PAIR[name]: item(name) for name in ORDER},
        prior_voters=[(PAIR["close"], "ana")],
    )
    assert next_name(state, "ana", now=0) == "lopsided"
    # A vote from before the bench does not count towards overlap: ben still gets close.
    assert next_name(state, "ben", now=1) == "close"


def test_a_label_frees_its_lease_and_counts_towards_overlap(state: BenchState) -> None:
    assert next_name(state, "ana", now=0) == "close"
    state.submit("ana-close-1", row("close", "ana", "ana-close-1"))
    assert state.count("leases") == 0
    assert next_name(state, "ana", now=1) == "lopsided"  # never close again
    assert next_name(state, "ben", now=2) == "conflict"  # close has its one label
    assert next_name(state, "ben", now=3, overlap=2) == "conflict"  # ben's lease comes back first
    assert next_name(state, "cai", now=4, overlap=2) == "close"  # a second label is wanted
    assert state.completed_pairs(1) == [PAIR["close"]] and state.completed_pairs(2) == []


# -- labels -----------------------------------------------------------------------------------------


def test_a_resubmission_stores_nothing_new(state: BenchState) -> None:
    first = state.submit("key-00001", row("close", "ana", "key-00001"))
    again = state.submit("key-00001", row("close", "ana", "key-00001", choice="right"))
    assert (first.seq, first.new) == (1, True)
    assert (again.seq, again.label_id, again.new) == (1, first.label_id, False)
    assert state.count("labels") == 1
    assert state.labels_of("ana")[0]["choice"] == "a"  # the first submission's vote stands


def test_a_changed_vote_is_a_new_label_with_a_larger_source_row(state: BenchState) -> None:
    first = state.submit("key-00001", row("close", "ana", "key-00001", choice="left"))
    state.submit("key-00002", row("lopsided", "ana", "key-00002", choice="tie"))
    changed = state.submit("key-00003", row("close", "ana", "key-00003", choice="right"))
    assert changed.new and changed.seq == 3 and changed.label_id != first.label_id
    latest = state.labels_of("ana")
    assert [(r["pair_id"], r["choice"], r["source_row"]) for r in latest] == [
        (PAIR["close"], "b", 3),
        (PAIR["lopsided"], "tie", 2),
    ]
    assert [seq for seq, _ in state.unpublished()] == [1, 2, 3]


def test_publishing_marks_only_what_the_store_took(state: BenchState, bench_store: Store) -> None:
    before = bench_store.count("human_labels")
    state.submit("key-00001", row("close", "ana", "key-00001"))
    assert publish(state, bench_store, "r1") == 1
    state.submit("key-00002", row("lopsided", "ana", "key-00002"))
    assert [seq for seq, _ in state.unpublished()] == [2]
    assert publish(state, bench_store, "r2") == 1
    assert publish(state, bench_store, "r3") == 0
    assert bench_store.count("human_labels") == before + 2


THREADS, PER_THREAD = 8, 50


def test_eight_threads_submitting_and_resubmitting_store_each_label_once(bench_store: Store) -> None:
    state = BenchState(bench_path(bench_store))
    names = list(CASES)
    results: dict[str, list] = {}
    errors: list[BaseException] = []
    start = threading.Barrier(THREADS)

    def annotate(worker: int) -> None:
        annotator = f"worker-{worker}"
        keys = [f"w{worker}-k{n:03d}" for n in range(PER_THREAD)]
        rows = [row(names[n % len(names)], annotator, key, choice="left") for n, key in enumerate(keys)]
        try:
            start.wait()
            done = [state.submit(key, r) for key, r in zip(keys, rows, strict=True)]
            done += [state.submit(key, r) for key, r in zip(keys, rows, strict=True)]  # a browser resubmits
            results[annotator] = done
        except BaseException as exc:
            errors.append(exc)

    threads = [threading.Thread(target=annotate, args=(w,)) for w in range(THREADS)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert errors == []
    total = THREADS * PER_THREAD
    assert state.count("labels") == total
    every = [s for done in results.values() for s in done]
    assert sum(s.new for s in every) == total  # each first submission new, each resubmission not
    assert sorted(s.seq for s in every if s.new) == list(range(1, total + 1))
    for done in results.values():
        firsts, resubmitted = done[:PER_THREAD], done[PER_THREAD:]
        assert [(s.seq, s.label_id) for s in resubmitted] == [(s.seq, s.label_id) for s in firsts]
    pending = state.unpublished()
    assert len({r["label_id"] for _, r in pending}) == total

    # A crash between the store's append and mark_published: the next publish adds nothing.
    before = bench_store.count("human_labels")
    assert bench_store.append("human_labels", [r for _, r in pending], "crashed-run") == total
    assert publish(state, bench_store, "next-run") == 0
    assert state.unpublished() == []
    assert publish(state, bench_store, "next-run") == 0
    assert bench_store.count("human_labels") == before + total
