"""The review bench in real headless Chromium, driven by the keyboard alone (issue 13's acceptance).

A person signs in with the login link ``charter review add-annotator`` printed, labels two items
of the ``uncertain`` queue (1 Enter, 2 Enter), skips the third (S) — a pair whose response is
hostile markup, which must render as text and run nothing — labels one item of the
``conflict`` queue as a tie (3 Enter), then changes that vote (U, 1 Enter). After SIGTERM the
store must hold exactly those four labels with what the page showed, the audit views must
count them, and ``charter merge`` must let them decide their pairs.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tasks.constitution.model import load_constitution
from tasks.ingest.prompt_sets import prompt_record
from tasks.store.sql import run_query
from tasks.store.store import Store
from tests.browsers import chromium
from tests.conftest import run_charter
from tests.review.conftest import CASES, CONSTITUTION, Case, _judged
from tests.review.test_review_server import add_annotator, serving

pytestmark = pytest.mark.integration

HOSTILE = '<script>window.__pwned=1</script><img src=x onerror="window.__pwned=2">'
# Margin 0.10: served by `uncertain` after close (0.02) and lopsided (0.05), before conflict (0.15).
HOSTILE_CASE = Case(
    "hostile",
    "booking",
    "Can you book me in for Friday?",
    (HOSTILE, "Friday at nine is free; shall I book it?"),
    logprob=(0.60, 0.60),
)
MERGE_POLICY = Path("datasets") / "healthcare-scheduling" / "merge-policy.yaml"


@pytest.fixture
def browser(tmp_path: Path) -> Iterator[Any]:
    """Debian's headless Chromium under chromedriver (missing: the test fails, not skips)."""
    with chromium(tmp_path / "chromium-profile") as driver:
        yield driver


@pytest.fixture
def hostile_store(bench_store: Store) -> Store:
    """The bench fixture store plus one pair whose first response is hostile markup."""
    constitution = load_constitution(CONSTITUTION)
    prompt = prompt_record(HOSTILE_CASE.messages, "review-test", HOSTILE_CASE.family).row()
    bench_store.append("prompts", [prompt], "fixture-ingest")
    bench_store.append(
        "ai_labels", [_judged(HOSTILE_CASE, constitution, "logprob", (0.60, 0.60))], "fixture-label"
    )
    return bench_store


class Reviewer:
    """The keyboard, and what the page in front of it shows."""

    def __init__(self, driver: Any) -> None:
        self.driver = driver

    def keys(self, *keys: str) -> None:
        from selenium.webdriver.common.action_chains import ActionChains

        ActionChains(self.driver).send_keys(*keys).perform()

    def keys_then_new_page(self, *keys: str) -> None:
        """Press ``keys`` and wait for the document they lead to.

        The old document is marked with a window property that a new document cannot carry.
        Waiting for an old element to go stale instead is racy: mid-navigation Chromium
        answers "Node with given id does not belong to the document" as an unknown error, not
        as staleness, so the wait tolerates driver errors while the page is being replaced.
        """
        from selenium.common.exceptions import WebDriverException
        from selenium.webdriver.common.by import By
        from selenium.webdriver.support.ui import WebDriverWait

        self.driver.execute_script("window.__charterOldPage = true;")
        self.keys(*keys)
        WebDriverWait(self.driver, 10, ignored_exceptions=(WebDriverException,)).until(
            lambda d: (
                d.execute_script(
                    "return window.__charterOldPage === undefined && document.readyState === 'complete';"
                )
                and d.find_elements(By.TAG_NAME, "main")
            )
        )

    def shown(self) -> dict[str, str]:
        """The item on the page: its pair and the two texts, as rendered."""
        return self.driver.execute_script(
            "const text = (id) => document.getElementById(id).textContent;"
            "return {pair_id: document.getElementById('review').dataset.pair,"
            " queue: document.querySelector('input[name=queue]').value,"
            " left: text('response-left'), right: text('response-right')};"
        )

    def label(self, key: str) -> dict[str, str]:
        """Choose with ``key`` and submit with Enter; returns what the page showed."""
        shown = self.shown()
        self.keys_then_new_page(key, "\ue007")  # Enter
        return shown


def by_pair(name: str) -> str:
    return (HOSTILE_CASE if name == "hostile" else CASES[name]).pair_id


def case_of(pair_id: str) -> Case:
    return next(case for case in CASES.values() if case.pair_id == pair_id)


def test_label_from_two_queues_by_keyboard_then_merge_uses_the_labels(
    browser: Any, hostile_store: Store
) -> None:
    store = hostile_store
    you = Reviewer(browser)
    with serving(store) as served:
        link = add_annotator(store, "rosa", served.port)
        browser.get(link)
        assert browser.find_element("id", "login")  # GET only shows the button; Enter spends the token
        you.keys_then_new_page("\ue007")
        assert browser.current_url == f"{served.url}/"
        assert browser.find_element("css selector", "tr[data-queue=uncertain]")

        browser.get(f"{served.url}/queue/uncertain")
        first = you.label("1")
        second = you.label("2")

        # The third item is the hostile pair: its markup is text, and nothing of it ran.
        hostile = you.shown()
        assert hostile["pair_id"] == by_pair("hostile")
        assert HOSTILE in (hostile["left"], hostile["right"])
        assert browser.execute_script("return typeof window.__pwned") == "undefined"
        assert browser.execute_script("return document.querySelectorAll('main script, main img').length") == 0
        you.keys_then_new_page("s")
        assert you.shown()["pair_id"] == by_pair("conflict")  # skipped: on to the next item

        browser.get(f"{served.url}/queue/conflict")
        tie = you.label("3")
        you.keys_then_new_page("u")  # change your last label
        assert browser.current_url == f"{served.url}/queue/conflict/pair/{tie['pair_id']}"
        changed = you.label("1")
        assert browser.execute_script("return typeof window.__pwned") == "undefined"
        severe = [
            entry["message"]
            for entry in browser.get_log("browser")
            if entry["level"] == "SEVERE" and "/favicon.ico " not in entry["message"]
        ]
        assert severe == []  # no script error, no refused request, no Content-Security-Policy violation

        assert served.terminate() == 0
        assert "review bench stopped; 4 labels published" in served.output()

    assert [first["pair_id"], second["pair_id"], tie["pair_id"]] == [
        by_pair("close"),
        by_pair("lopsided"),
        by_pair("conflict"),
    ]
    assert changed["pair_id"] == tie["pair_id"] and changed["queue"] == "conflict"
    expected = [(first, "a"), (second, "b"), (tie, "tie"), (changed, "a")]
    labels = run_query(
        store,
        "select pair_id, queue, annotator, choice, response_a, response_b, shown_first, confidence, "
        "comment, ai_shown, source_row from human_labels where source_format = 'review' order by source_row",
    ).records()
    assert [(row["pair_id"], row["queue"], row["choice"]) for row in labels] == [
        (shown["pair_id"], shown["queue"], choice) for shown, choice in expected
    ]
    for row, (shown, _) in zip(labels, expected, strict=True):
        case = case_of(row["pair_id"])
        # Response A is what the page showed on the left, and shown_first says which one that was.
        assert (row["response_a"], row["response_b"]) == (shown["left"], shown["right"])
        assert row["shown_first"] == ("first" if shown["left"] == case.first else "second")
        assert (row["annotator"], row["confidence"], row["comment"], row["ai_shown"]) == (
            "rosa",
            None,
            None,
            False,
        )
    assert [row["source_row"] for row in labels] == [1, 2, 3, 4]
    # Seeded per annotator and pair: close and lopsided showed their second response on the left.
    assert [row["shown_first"] for row in labels] == ["second", "second", "first", "first"]
    # The skip stored nothing.
    assert run_query(
        store, f"select count(*) from human_labels where pair_id = '{by_pair('hostile')}'"
    ).rows == [(0,)]

    # human_votes holds rosa's changed vote (the left response, by id order), not the tie.
    votes = dict(run_query(store, "select pair_id, vote from human_votes where annotator = 'rosa'").rows)
    picked = {
        first["pair_id"]: first["left"],
        second["pair_id"]: second["right"],
        tie["pair_id"]: changed["left"],
    }
    assert votes == {
        pair: "first" if text == case_of(pair).first else "second" for pair, text in picked.items()
    }

    # People's position bias: rosa's latest decisive labels are left, right, left: 2 of 3 chose
    # the response shown first; z = (2/3 - 0.5) / sqrt(0.25 / 3) = 0.577. Imported labels do not
    # record a display order, so the pooled row counts rosa's alone.
    bias = run_query(store, "select annotator, labels, first_shown_rate, z from human_position_bias").rows
    assert bias == [("(all)", 3, 0.6667, 0.58), ("rosa", 3, 0.6667, 0.58)]

    merged = run_charter("merge", "--store", str(store.root), "--policy", str(MERGE_POLICY))
    assert merged.returncode == 0, merged.stderr
    decided = {
        row[0]: row[1:]
        for row in run_query(
            store,
            "select pair_id, decided_by, chosen, human_labels from preferences "
            "where set_id = (select arg_max(set_id, created_at) from preference_sets)",
        ).rows
    }
    # close and lopsided: the judge's two orders disagree, so the policy alone would drop them;
    # rosa's one vote decides each. conflict: hana and ivan voted for the first response by id,
    # and rosa's changed vote (not her tie) is the third vote of the majority.
    assert decided[by_pair("close")] == ("human", first["left"], 1)
    assert decided[by_pair("lopsided")] == ("human", second["right"], 1)
    assert decided[by_pair("conflict")] == ("human-majority", case_of(tie["pair_id"]).first, 3)
