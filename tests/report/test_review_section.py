"""The report's "Review" section, the audit's people-position-bias rows and ``charter run``'s last
lines, on a small hand-built store whose every number is worked out below.

Rows are written straight into the store with real ids (the helpers of the AI-audit tests), so
the bundled queues and the views meet them exactly as they meet a real run's. Bench labels are
ordinary ``human_labels`` rows with source_format 'review', a queue and the display order.

The store (family; AI label j1 unless noted; humans, latest vote per annotator):

pair  family   AI                           humans                              majority
1     booking  first 0.9                    x first, y first (imported)         first
2     booking  first 0.55                   alice first, bob second (bench)     split
3     booking  first 0.8                    alice first, then second (bench)    second
4     billing  orders disagree              -                                   -
5     billing  second 0.7                   <b>x</b> first (bench)              first
6     billing  rule label only              -                                   -
7     booking  orders disagree              -                                   -
8     billing  second 0.9                   -                                   -

Queues: uncertain = model-judged pairs {1,2,3,4,5,7,8} = 7; inconsistent = {4,7} = 2;
conflict = confident AI against the majority {3,5} + people split {2} = 3; coverage = AI pairs
whose prompt nobody labelled, in families under full human coverage {4,6,7,8} = 4; audit = every
AI-labelled pair = 8. AI-human agreement: pairs 1 (right), 3 and 5 (wrong): 3 labels, accuracy
1/3; both sides vote first 2/3 of the time, so expected agreement 5/9 and kappa
(1/3 - 5/9) / (4/9) = -0.5. Position bias (latest decisive vote, chose the left response?):
alice 2 of 2 (z = 0.5 / sqrt(0.25 / 2) = 1.41), bob 0 of 1, <b>x</b> 0 of 1 (z = -1), pooled
2 of 4 (0.5, z = 0).
"""

from __future__ import annotations

import re
from pathlib import Path

import pytest
from typer.testing import CliRunner

from flows.cli import app
from tasks.core.hashing import content_id
from tasks.ingest.human_labels import LabelOrigin, human_label_row
from tasks.report.report import write_report
from tasks.report.review_section import bench_summary_lines
from tasks.store.audit import audit_summary
from tasks.store.store import Store
from tests.store.test_audit_ai import add_prompts, ai, ai_row, default_texts, human, in_id_order, messages

HOSTILE_NAME = "<b>x</b>"
FAMILIES = {1: "booking", 2: "booking", 3: "booking", 7: "booking"} | dict.fromkeys((4, 5, 6, 8), "billing")
QUEUE_SIZES = {"uncertain": 7, "inconsistent": 2, "conflict": 3, "coverage": 4, "audit": 8, "rm-uncertain": 0}


def bench(pair: int, annotator: str, vote: str, queue: str, shown_first: str) -> dict:
    """A bench label voting ``vote`` (orientation-free) with the ``shown_first`` response (in id
    order) on the left, as the bench stores it: response_a is the left one."""
    first, second = in_id_order(default_texts(pair))
    left, right = (first, second) if shown_first == "first" else (second, first)
    row = human_label_row(
        messages=messages(pair),
        response_a=left,
        response_b=right,
        choice="a" if (vote == "first") == (shown_first == "first") else "b",
        annotator=annotator,
        origin=LabelOrigin("review", "review/bench.sqlite3", content_id("test", [pair, annotator, vote])),
        source_row=0,
    )
    return {**row, "queue": queue, "shown_first": shown_first, "ai_shown": False}


def ai_judged(root: Path) -> Store:
    store = Store.create(root)
    add_prompts(store, FAMILIES)
    store.append(
        "ai_labels",
        [
            ai(1, "first", 0.9),
            ai(2, "first", 0.55),
            ai(3, "first", 0.8),
            ai_row(4, 0.6, orders=(0.8, 0.4)),
            ai(5, "second", 0.7),
            ai(6, "first", 1.0, method="rule"),
            ai_row(7, 0.3, orders=(0.2, 0.6)),
            ai(8, "second", 0.9),
        ],
        "label",
    )
    store.append("human_labels", [human(1, "x", "first"), human(1, "y", "first")], "import")
    return store


@pytest.fixture
def reviewed(tmp_path: Path) -> Store:
    store = ai_judged(tmp_path / "store")
    store.append(
        "human_labels",
        [
            bench(2, "alice", "first", "conflict", "first"),
            bench(3, "alice", "first", "conflict", "second"),
            bench(2, "bob", "second", "uncertain", "first"),
            bench(5, HOSTILE_NAME, "first", "audit", "second"),
        ],
        "review",
    )
    # alice changes her vote on pair 3: a new label, later, whose vote is the one that counts.
    store.append("human_labels", [bench(3, "alice", "second", "conflict", "second")], "review")
    return store


def section(page: str, section_id: str = "review") -> str:
    return re.search(f'<section id="{section_id}">(.*?)</section>', page, re.S).group(1)


def markdown_review(text: str) -> str:
    return text.split("## Review\n", 1)[1].split("\n## ", 1)[0]


def test_the_review_section_shows_queues_bench_labels_agreement_and_position_bias(
    reviewed: Store, tmp_path: Path
) -> None:
    paths = write_report(reviewed, tmp_path / "out", title="Run", stages=[])
    md = markdown_review(paths.markdown.read_text(encoding="utf-8"))

    queue_rows = re.findall(r"^\| ([\w-]+) \| [^|]+ \| (\d+) \|$", md, re.M)
    assert {name: int(n) for name, n in queue_rows} == QUEUE_SIZES
    assert [name for name, _ in queue_rows] == list(QUEUE_SIZES)  # the file's order
    escaped = "&lt;b&gt;x&lt;/b&gt;"  # the Markdown, too, keeps the name from becoming HTML
    assert f"| {escaped} | audit | 1 | 1 |" in md and HOSTILE_NAME not in md
    assert "| alice | conflict | 3 | 2 |" in md  # a changed vote is a second label on one pair
    assert "| bob | uncertain | 1 | 1 |" in md
    # 4 human-labelled pairs (1, 2, 3, 5), 3 of them in the bench; AI vs majority on 1, 3, 5.
    assert "| 4 | 3 | 3 | 3 | 0.333 | -0.500 |" in md
    assert "| (all) | 4 | 0.500 | 0.000 |" in md
    assert "| alice | 2 | 1.000 | 1.410 |" in md
    assert f"| {escaped} | 1 | 0.000 | -1.000 |" in md
    assert "| bob | 1 | 0.000 | -1.000 |" in md
    store_path = str(reviewed.root)
    assert f"`charter review add-annotator NAME --store {store_path}`" in md
    assert f"then `charter review --store {store_path}`." in md
    assert "Nobody has labelled" not in md

    html = section(paths.html.read_text(encoding="utf-8"))
    assert "<h2>Review</h2>" in html
    assert '<td>alice</td><td>conflict</td><td class="num">3</td><td class="num">2</td>' in html
    assert "&lt;b&gt;x&lt;/b&gt;" in html and HOSTILE_NAME not in html
    assert '<td>inconsistent</td><td>The judge contradicts itself</td><td class="num">2</td>' in html


def test_before_anyone_uses_the_bench_it_says_so_in_one_line_and_still_sizes_the_queues(
    tmp_path: Path,
) -> None:
    store = ai_judged(tmp_path / "store")
    paths = write_report(store, tmp_path / "out", title="Run", stages=[])
    md = markdown_review(paths.markdown.read_text(encoding="utf-8"))
    # Only pair 1 is human-labelled, and the AI agrees with it: conflict is empty, and coverage
    # holds every other AI-labelled pair, {2, ..., 8}.
    sizes = {name: int(n) for name, n in re.findall(r"^\| ([\w-]+) \| [^|]+ \| (\d+) \|$", md, re.M)}
    assert sizes == {
        "uncertain": 7,
        "inconsistent": 2,
        "conflict": 0,
        "coverage": 7,
        "audit": 8,
        "rm-uncertain": 0,
    }
    assert md.count("Nobody has labelled in the review bench yet.") == 1
    assert "shown first wins" not in md  # imported labels carry no display order
    assert "| 1 | 0 | 1 | 1 | 1.000 |" in md  # pair 1: the AI agrees with the imported majority
    assert 'data-note="note">Nobody has labelled' in section(paths.html.read_text(encoding="utf-8"))


def test_a_queue_file_that_fails_is_shown_as_its_error_and_the_report_is_still_written(
    reviewed: Store, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    broken = tmp_path / "queues.yaml"
    broken.write_text(
        "queues:\n  - name: broken\n    title: Broken\n    sql: delete from human_labels\n", encoding="utf-8"
    )
    monkeypatch.setattr("tasks.review.queues.BUNDLED_QUEUES", broken)
    paths = write_report(reviewed, tmp_path / "out", title="Run", stages=[])
    md = markdown_review(paths.markdown.read_text(encoding="utf-8"))
    assert f"> **Warning:** The review queues could not be read: {broken}:4" in md
    assert "| alice | conflict | 3 | 2 |" in md  # the rest of the section is unaffected
    lines = bench_summary_lines(reviewed, str(reviewed.root))
    assert lines[0].startswith(f"review queues could not be read: {broken}:4")


def test_charter_run_ends_with_the_queue_sizes_and_how_to_open_the_bench(reviewed: Store) -> None:
    path = str(reviewed.root)
    first, second = bench_summary_lines(reviewed, path)
    assert first == (
        "review queues (pairs each holds): uncertain 7, inconsistent 2, conflict 3, coverage 4, audit 8, "
        "rm-uncertain 0"
    )
    assert second == (
        f"To label these pairs, run `charter review add-annotator NAME --store {path}` "
        f"(it prints a one-time login link), then `charter review --store {path}`."
    )
    assert bench_summary_lines(reviewed, "my store")[1].endswith("`charter review --store 'my store'`.")


def test_charter_audit_lists_peoples_position_bias(reviewed: Store) -> None:
    rows = audit_summary(reviewed).sections["human_position_bias"].records()
    assert [(r["annotator"], r["labels"], r["first_shown_rate"], r["z"]) for r in rows] == [
        ("(all)", 4, 0.5, 0.0),
        ("alice", 2, 1.0, 1.41),
        (HOSTILE_NAME, 1, 0.0, -1.0),
        ("bob", 1, 0.0, -1.0),
    ]
    result = CliRunner().invoke(app, ["audit", "--store", str(reviewed.root)], env={"COLUMNS": "200"})
    assert result.exit_code == 0, result.output
    assert "People's position bias (how often the response shown first wins; 0.5 is none)" in result.output
