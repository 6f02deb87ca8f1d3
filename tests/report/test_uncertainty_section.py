"""The report's rule-agreement and reward-model uncertainty sections, in Markdown and HTML.

The store holds the hand-built labels of ``tests.store.test_evidence_views`` (the boilerplate rule
contradicts the person on 5 of 6 pairs) and a reward model's scores on those six pairs plus one
nobody labelled. Spreads and verdicts on the six, most certain first: 0.01, 0.02, 0.05 and 0.10
right, 0.20 and 0.30 wrong; the unlabelled pair's spread is 0.15.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from tasks.report.report import write_report
from tasks.report.uncertainty_section import contradiction_warnings
from tasks.store.store import Store
from tests.store.test_evidence_views import score, stored_labels

SPREADS = [(0.01, True), (0.02, True), (0.05, True), (0.10, True), (0.20, False), (0.30, False)]
WARNING = (
    "rule helpful-and-direct/no-ai-boilerplate contradicts people on 5 of 6 pairs "
    "(estimated confidence 0.455)."
)


def section(text: str, start: str, end: str) -> str:
    return text.split(start, 1)[1].split(end, 1)[0]


@pytest.fixture
def report(store: Store, tmp_path: Path) -> tuple[str, str]:
    humans, _ = stored_labels(store)
    by_pair = {row["pair_id"]: row for row in humans}
    scores = []
    for pair, (spread, right) in zip(sorted(by_pair), SPREADS, strict=True):
        row = by_pair[pair]
        x_first = row["response_a_id"] < row["response_b_id"]  # the person chose X, shown as A
        scores.append(score(pair, "ensemble", 0.8 if x_first == right else 0.2, spread))
    scores.append(score("unlabelled", "ensemble", 0.6, 0.15))
    store.append("reward_scores", scores, "score")
    paths = write_report(store, tmp_path / "out", title="Run", stages=[])
    return paths.markdown.read_text(encoding="utf-8"), paths.html.read_text(encoding="utf-8")


def test_the_report_warns_about_a_rule_that_contradicts_people(report: tuple[str, str]) -> None:
    md, html = report
    part = section(md, "## Rules and judges against people\n", "\n## ")
    assert f"> **Warning:** {WARNING}" in part
    assert part.count("**Warning:**") == 1  # the dosing rule (6 of 6) and the judge (4 of 6) are fine
    assert "| rule | helpful-and-direct/no-ai-boilerplate | 6 | 1 | 5 | 0.167 | 0.455 |" in part
    assert "| judge | judge-1 | 6 | 4 | 2 | 0.667 | 0.727 |" in part
    assert "Beta(4, 1) prior" in part
    page = section(html, '<section id="rule-agreement">', "</section>")
    assert f'<p class="note warning" data-note="warning">{WARNING}</p>' in page
    assert 'data-plot="rule-agreement"' in page


def test_the_report_shows_the_spread_and_accuracy_by_spread_quintile(report: tuple[str, str]) -> None:
    md, html = report
    part = section(md, "## Reward-model uncertainty\n", "\n## ")
    # Seven scored pairs: spreads 0.01 0.02 0.05 0.10 0.15 0.20 0.30, mean 0.83 / 7 = 0.1186;
    # q10 = 0.01 + 0.6 * 0.01 = 0.016, q25 = 0.02 + 0.5 * 0.03 = 0.035, q75 = 0.15 + 0.5 * 0.05 = 0.175,
    # q90 = 0.20 + 0.4 * 0.10 = 0.24.
    assert "| pairs | members | mean | q0 | q10 | q25 | q50 | q75 | q90 | q100 |" in part
    assert "| 7 | 3 | 0.119 | 0.010 | 0.016 | 0.035 | 0.100 | 0.175 | 0.240 | 0.300 |" in part
    # The six labelled pairs in five bins (the first takes two): right, right, right, wrong, wrong.
    rows = [line for line in part.splitlines() if line.startswith("| ") and line[2].isdigit()][1:]
    assert rows == [
        "| 1 | 2 | 0.010 | 0.020 | 0.015 | 1.000 |",
        "| 2 | 1 | 0.050 | 0.050 | 0.050 | 1.000 |",
        "| 3 | 1 | 0.100 | 0.100 | 0.100 | 1.000 |",
        "| 4 | 1 | 0.200 | 0.200 | 0.200 | 0.000 |",
        "| 5 | 1 | 0.300 | 0.300 | 0.300 | 0.000 |",
    ]
    page = section(html, '<section id="rm-uncertainty">', "</section>")
    assert 'data-plot="rm-accuracy-by-spread"' in page and "<td>quintile</td>" not in page


def test_without_scores_or_rule_evidence_each_section_says_why_it_is_empty(tmp_path: Path) -> None:
    store = Store.create(tmp_path / "empty")
    md = write_report(store, tmp_path / "out", title="Run", stages=[]).markdown.read_text(encoding="utf-8")
    assert "No data: no rule or judge decided a pair with a decisive human majority." in md
    assert "No data: no reward model has scored the stored pairs" in md


def test_a_warning_needs_more_contradictions_than_agreements_on_enough_pairs() -> None:
    def row(agree: int, disagree: int) -> dict[str, object]:
        return {
            "kind": "rule",
            "source": "p/r",
            "pairs": agree + disagree,
            "agree": agree,
            "disagree": disagree,
            "confidence": (agree + 4) / (agree + disagree + 5),
        }

    # 0 of 4: too few pairs; 2 of 4 at five pairs: agrees more; 3 of 6: even; 3 of 5 warns.
    rows = [row(0, 4), row(3, 2), row(3, 3), row(2, 3)]
    assert contradiction_warnings(rows) == [
        "rule p/r contradicts people on 3 of 5 pairs (estimated confidence 0.600)."
    ]
    assert len(contradiction_warnings(rows, min_pairs=4)) == 2
