"""The bench without the web: the seeded display order and the label row it shapes, people's
position bias measured from it, pages and AI suggestions, votes from before the bench, changed
votes, publishing, and one server per store."""

from __future__ import annotations

import json
from dataclasses import replace
from pathlib import Path

import pytest

from tasks.constitution.model import load_constitution
from tasks.core.errors import CharterError
from tasks.review.bench import Bench, Publisher, ServerLock, bench_address, login_link
from tasks.review.display import shows_second_first
from tasks.review.items import GENERAL_QUESTION
from tasks.review.labels import bench_label_row, publish_pending
from tasks.review.queues import Queue, QueueSettings
from tasks.review.settings import ReviewSettings
from tasks.store.sql import run_query
from tasks.store.store import Store
from tests.review.conftest import CASES, CONSTITUTION, UNCERTAIN_ORDER, add_case, bundled_queues, make_bench

NAMES = {case.pair_id: name for name, case in CASES.items()}


def annotator_seeing(pair_name: str, swapped: bool, seed: int = 0) -> str:
    """The first of ann-0, ann-1, ... shown ``pair_name``'s second response on the left (or not)."""
    pair = CASES[pair_name].pair_id
    return next(f"ann-{n}" for n in range(100) if shows_second_first(seed, f"ann-{n}", pair) == swapped)


def label_all(bench: Bench, annotator: str, choices: list[str], queue: str = "uncertain") -> list[str]:
    """Label the queue's next items with ``choices`` in turn; returns the pairs' names."""
    labelled = []
    for n, choice in enumerate(choices):
        page = bench.next_page(queue, annotator)
        assert page is not None, f"{annotator} ran out of items after {labelled}"
        submission = f"{annotator}-{queue}-{n:04d}"
        bench.submit(
            queue_name=queue,
            pair_id=page.item.pair_id,
            annotator=annotator,
            choice=choice,
            submission=submission,
        )
        labelled.append(NAMES[page.item.pair_id])
    return labelled


def records(store: Store, sql: str) -> list[dict]:
    return run_query(store, sql).records()


# -- display order ----------------------------------------------------------------------------------


def test_the_display_order_is_fixed_per_seed_annotator_and_pair_and_roughly_balanced() -> None:
    pairs = [f"pair-{n:05d}" for n in range(2000)]
    ana = [shows_second_first(0, "ana", p) for p in pairs]
    assert ana == [shows_second_first(0, "ana", p) for p in pairs]  # the same every time
    assert 0.45 <= sum(ana) / len(pairs) <= 0.55
    # Another annotator, or another seed, gets an independent order: about half the pairs differ.
    ben = [shows_second_first(0, "ben", p) for p in pairs]
    reseeded = [shows_second_first(1, "ana", p) for p in pairs]
    assert 0.45 <= sum(a != b for a, b in zip(ana, ben, strict=True)) / len(pairs) <= 0.55
    assert 0.45 <= sum(a != b for a, b in zip(ana, reseeded, strict=True)) / len(pairs) <= 0.55


@pytest.mark.parametrize("swapped", [True, False])
def test_a_label_row_stores_the_left_text_as_response_a_and_what_was_shown_first(
    snapshot_store: Store, swapped: bool
) -> None:
    bench = make_bench(snapshot_store, rerun=[])
    case = CASES["close"]
    who = annotator_seeing("close", swapped)
    item = bench.state.item(case.pair_id)
    row = bench_label_row(
        item,
        annotator=who,
        queue="uncertain",
        choice="left",
        submission="sub-00001",
        seed=0,
        ai_shown=False,
        bench_file="bench.sqlite3",
        confidence=0.8,
        comment="clearer",
    )
    left = case.second if swapped else case.first
    assert (row["response_a"], row["response_b"]) == (left, case.first if swapped else case.second)
    assert row["shown_first"] == ("second" if swapped else "first")
    assert row["choice"] == "a"  # 'left' is response_a
    assert row["vote"] == ("second" if swapped else "first")  # in id order: the left one
    assert (row["pair_id"], row["annotator"], row["queue"]) == (case.pair_id, who, "uncertain")
    assert (row["source_format"], row["ai_shown"], row["confidence"], row["comment"]) == (
        "review",
        False,
        0.8,
        "clearer",
    )
    again = bench_label_row(
        item, annotator=who, queue="uncertain", choice="left", submission="sub-00001", seed=0,
        ai_shown=False, bench_file="bench.sqlite3", confidence=0.8, comment="clearer",
    )  # fmt: skip
    other = bench_label_row(
        item, annotator=who, queue="uncertain", choice="left", submission="sub-00002", seed=0,
        ai_shown=False, bench_file="bench.sqlite3", confidence=0.8, comment="clearer",
    )  # fmt: skip
    assert again["label_id"] == row["label_id"] != other["label_id"]


def test_people_s_position_bias_counts_the_response_shown_first(snapshot_store: Store) -> None:
    bench = make_bench(snapshot_store, rerun=[], overlap=1)
    labelled = label_all(bench, "zoe", ["left", "left", "left", "right"])
    assert labelled == UNCERTAIN_ORDER[:4]
    swaps = [shows_second_first(0, "zoe", CASES[name].pair_id) for name in labelled]
    # zoe saw some pairs in id order and some swapped, so 'left' meant different responses.
    assert True in swaps[:3] and False in swaps[:3]
    assert bench.publish("run-1") == 4
    rows = records(snapshot_store, "select * from human_position_bias")
    # The imported labels (hana, ivan) have no display order: only zoe's 4 count.
    # 3 of 4 chose the left response: rate 0.75, z = 0.25 / sqrt(0.25 / 4) = 1.0.
    assert rows == [
        {"annotator": "(all)", "labels": 4, "first_shown_rate": 0.75, "z": 1.0},
        {"annotator": "zoe", "labels": 4, "first_shown_rate": 0.75, "z": 1.0},
    ]


# -- pages ------------------------------------------------------------------------------------------


def test_a_page_puts_the_seeded_response_on_the_left_and_asks_the_principle(snapshot_store: Store) -> None:
    bench = make_bench(snapshot_store, rerun=[])
    comparison = load_constitution(CONSTITUTION).principle("avoid-serious-harm").comparison
    for swapped in (True, False):
        page = bench.next_page("uncertain", annotator_seeing("close", swapped))
        assert NAMES[page.item.pair_id] == "close" and page.swapped is swapped
        case = CASES["close"]
        assert (page.left, page.right) == (
            (case.second, case.first) if swapped else (case.first, case.second)
        )
        assert page.question == comparison
        assert page.item.messages == case.messages and page.item.family == "travel"
        assert (page.show_ai, page.ai_suggestion) == (False, None)  # the bundled queues hide the AI
    general = make_bench(snapshot_store, rerun=[], question="general")
    assert (
        general.page(general.queue("uncertain"), CASES["close"].pair_id, "ana").question == GENERAL_QUESTION
    )


@pytest.mark.parametrize("swapped", [True, False])
def test_a_queue_that_shows_the_ai_points_at_its_choice_on_the_page(
    snapshot_store: Store, swapped: bool
) -> None:
    (uncertain,) = [q for q in bundled_queues(snapshot_store) if q.name == "uncertain"]
    suggest = Queue(
        QueueSettings(name="suggest", title="With the AI", sql=uncertain.settings.sql, show_ai=True), "q", 1
    )
    bench = make_bench(snapshot_store, queues=[suggest], overlap=1)
    who = annotator_seeing("conflict", swapped)
    page = bench.page(suggest, CASES["conflict"].pair_id, who)
    # The judge's mean P(first) on "conflict" is 0.35: it prefers the second response by id.
    assert page.item.ai_p_first == pytest.approx(0.35) and page.item.ai_vote == "second"
    assert page.ai_suggestion == ("left" if swapped else "right")
    averaged = bench.page(suggest, CASES["averaged"].pair_id, who).item
    assert (averaged.ai_labels, averaged.ai_p_first) == (2, pytest.approx(0.7))  # mean of 0.8 and 0.6
    bench.submit(
        queue_name="suggest", pair_id=page.item.pair_id, annotator=who, choice="tie", submission="s" * 8
    )
    assert bench.state.labels_of(who)[0]["ai_shown"] is True


def test_nobody_is_given_a_pair_they_labelled_before_the_bench(snapshot_store: Store) -> None:
    # hana's imported labels cover "conflict" and "averaged"; ivan's cover "conflict".
    bench = make_bench(snapshot_store, rerun=[], overlap=2)
    assert label_all(bench, "hana", ["left"] * 3) == ["close", "lopsided", "ruled"]
    assert bench.next_page("uncertain", "hana") is None
    assert label_all(bench, "ivan", ["left"] * 4) == ["close", "lopsided", "averaged", "ruled"]
    assert bench.next_page("uncertain", "ivan") is None


def test_a_rerun_leaves_out_pairs_with_enough_bench_labels(snapshot_store: Store) -> None:
    bench = make_bench(snapshot_store, rerun=[], overlap=1)
    label_all(bench, "zoe", ["left"])
    assert bench.rerun("uncertain") == 4
    assert bench.progress()[0] | {"title": None} == {
        "queue": "uncertain", "title": None, "items": 4, "labelled_items": 0, "labels": 1, "annotators": 1,
    }  # fmt: skip


# -- labels -----------------------------------------------------------------------------------------


def test_a_changed_vote_is_the_latest_in_human_votes_once_published(snapshot_store: Store) -> None:
    bench = make_bench(snapshot_store, rerun=[], overlap=1)
    close = CASES["close"].pair_id
    who = annotator_seeing("close", swapped=False)  # left is the first response by id
    first = bench.submit(
        queue_name="uncertain", pair_id=close, annotator=who, choice="left", submission="k-000001"
    )
    assert bench.publish("run-1") == 1
    resent = bench.submit(
        queue_name="uncertain", pair_id=close, annotator=who, choice="left", submission="k-000001"
    )
    assert resent.new is False and bench.publish("run-2") == 0
    bench.rerun("uncertain")  # close now has its one label and leaves the queue ...
    assert not bench.state.in_queue("uncertain", close)
    # ... but its annotator may still change the vote (the "change your last label" link).
    changed = bench.submit(
        queue_name="uncertain", pair_id=close, annotator=who, choice="right", submission="k-000002"
    )
    assert changed.new and changed.seq > first.seq and changed.label_id != first.label_id
    assert bench.publish("run-3") == 1
    rows = records(
        snapshot_store,
        f"select choice, vote, source_row from human_labels where annotator = '{who}' order by source_row",
    )
    assert rows == [
        {"choice": "a", "vote": "first", "source_row": first.seq},
        {"choice": "b", "vote": "second", "source_row": changed.seq},
    ]
    votes = records(snapshot_store, f"select vote from human_votes where annotator = '{who}'")
    assert votes == [{"vote": "second"}]


def test_labels_published_in_one_batch_order_by_source_row(snapshot_store: Store) -> None:
    # Both versions get the same created_at; the bench's sequence number must decide.
    bench = make_bench(snapshot_store, rerun=[])
    close = CASES["close"].pair_id
    who = annotator_seeing("close", swapped=False)
    for n, choice in enumerate(["right", "tie", "left"]):
        bench.submit(
            queue_name="uncertain", pair_id=close, annotator=who, choice=choice, submission=f"key-{n:05d}"
        )
    assert bench.publish("run-1") == 3
    assert records(snapshot_store, f"select vote from human_votes where annotator = '{who}'") == [
        {"vote": "first"}
    ]


def test_a_submission_outside_the_queue_or_with_an_unknown_choice_stores_nothing(
    snapshot_store: Store,
) -> None:
    bench = make_bench(snapshot_store, rerun=[])
    split = CASES["split"].pair_id  # in conflict, not in uncertain
    with pytest.raises(CharterError, match="is not an item of queue 'uncertain'"):
        bench.submit(
            queue_name="uncertain", pair_id=split, annotator="zoe", choice="left", submission="k" * 8
        )
    with pytest.raises(CharterError, match="no queue 'nope'"):
        bench.submit(queue_name="nope", pair_id=split, annotator="zoe", choice="left", submission="k" * 8)
    with pytest.raises(CharterError, match="unknown choice 'a'"):
        bench.submit(queue_name="conflict", pair_id=split, annotator="zoe", choice="a", submission="k" * 8)
    assert (
        bench.submit(queue_name="conflict", pair_id=split, annotator="zoe", choice="skip", submission="k" * 8)
        is None
    )
    assert (bench.state.count("labels"), bench.state.count("skips")) == (0, 1)
    assert bench.next_page("conflict", "zoe").item.pair_id == CASES["conflict"].pair_id


def test_labels_a_stopped_bench_left_behind_are_published_once_as_a_recorded_run(
    snapshot_store: Store,
) -> None:
    assert publish_pending(snapshot_store) == 0  # nothing to publish yet
    bench = make_bench(snapshot_store, rerun=[], overlap=1)
    label_all(bench, "zoe", ["left", "tie"])
    before = snapshot_store.count("human_labels")
    assert publish_pending(snapshot_store) == 2
    assert publish_pending(snapshot_store) == 0
    assert snapshot_store.count("human_labels") == before + 2
    runs = records(
        snapshot_store, "select status, rows_added from runs where flow = 'review-publish' order by status"
    )
    assert runs == [
        {"status": "completed", "rows_added": json.dumps({"human_labels": 2})},
        {"status": "started", "rows_added": None},
    ]


def test_the_publisher_publishes_what_is_left_when_stopped(snapshot_store: Store) -> None:
    bench = make_bench(snapshot_store, rerun=[], overlap=1)
    publisher = Publisher(bench, "run-1", interval=3600)
    publisher.start()
    label_all(bench, "zoe", ["left"])
    assert publisher.stop() == 1
    assert not publisher.is_alive() and bench.state.unpublished() == []
    assert records(
        snapshot_store, "select annotator, queue from human_labels where source_format = 'review'"
    ) == [{"annotator": "zoe", "queue": "uncertain"}]


def test_a_second_server_on_the_store_is_refused_naming_the_first(snapshot_store: Store) -> None:
    first = ServerLock(snapshot_store)
    first.acquire("127.0.0.1:8765")
    first.note_holder("http://127.0.0.1:8765")
    try:
        with pytest.raises(
            CharterError,
            match=r"another charter review already serves this store \(pid \d+ at http://127.0.0.1:8765\)",
        ):
            ServerLock(snapshot_store).acquire("127.0.0.1:9999")
    finally:
        first.release()
    second = ServerLock(snapshot_store)
    second.acquire("127.0.0.1:9999")  # free again
    second.release()


def test_addresses_and_login_links() -> None:
    assert bench_address(ReviewSettings(), 8765) == "http://127.0.0.1:8765"
    assert bench_address(ReviewSettings(host="::1"), 9000) == "http://[::1]:9000"
    assert login_link("http://127.0.0.1:8765", "tok") == "http://127.0.0.1:8765/login?token=tok"


def test_bench_path_is_inside_the_store(snapshot_store: Store) -> None:
    bench = make_bench(snapshot_store, rerun=[])
    assert bench.state.path == snapshot_store.root / "review" / "bench.sqlite3"
    assert Path(bench.state.path).exists()


def test_a_rerun_refreshes_the_ai_verdict_an_item_shows(snapshot_store: Store) -> None:
    (uncertain,) = [q for q in bundled_queues(snapshot_store) if q.name == "uncertain"]
    suggest = Queue(
        QueueSettings(name="suggest", title="With the AI", sql=uncertain.settings.sql, show_ai=True), "q", 1
    )
    bench = make_bench(snapshot_store, queues=[suggest])
    close = CASES["close"].pair_id
    assert bench.state.item(close).ai_p_first == pytest.approx(0.52)
    # A second judge run labels "close" again, now sure of the second response (p 0.1 and 0.2).
    second_run = replace(CASES["close"], logprob=None, cot=(0.1, 0.2))
    add_case(snapshot_store, second_run)
    bench.rerun("suggest")
    item = bench.state.item(close)
    # The mean of 0.52 (logprob) and 0.15 (cot, clamped into 0.4-0.6: 0.4) is 0.46: now 'second'.
    assert (item.ai_labels, item.ai_p_first, item.ai_vote) == (2, pytest.approx(0.46), "second")
