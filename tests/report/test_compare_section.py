"""The report's race section, from a race made by the race's own arithmetic: its numbers in the
Markdown, its markup-carrying names escaped in the page, and a note when no race was run."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

import pytest

from tasks.report.blocks import Figure, Note, SideBySide, Table
from tasks.report.compare_section import compare_section, race_blocks
from tasks.report.data import ReportData
from tasks.report.report import render_html, render_markdown
from tests.report.race_fixture import MARKUP_NAME, race_record, write_race


def data(root: Path) -> ReportData:
    return ReportData(
        title="Race", created_at=datetime.now(UTC), store_root=root, code_version="test", stages=(),
        audit={}, unlabelled_families={}, reward=None, policy=None,
    )  # fmt: skip


def test_the_standings_table_sits_beside_its_chart_with_the_races_numbers(tmp_path: Path) -> None:
    race = race_record(tmp_path)
    first = race_blocks(race)[0]
    assert isinstance(first, SideBySide)
    table, chart = first.blocks
    assert isinstance(table, Table) and isinstance(chart, Figure) and chart.plot_id == "compare-standings"
    rows = {row[0]: dict(zip(table.columns, row, strict=True)) for row in table.rows}
    # dpo-a beat the PPO on one prompt of two and the base on both (reward model): (0.5 + 1) / 2.
    assert rows["dpo-a"]["beats field (RM)"] == pytest.approx(0.75)
    assert rows["dpo-a"]["beats base (RM)"] == pytest.approx(1.0)
    assert rows["base fixture-model"]["beats field (RM)"] == pytest.approx((0.0 + 0.25) / 2)
    assert rows[MARKUP_NAME]["KL to base"] == 0.1 and rows[MARKUP_NAME]["rule pass"] == 1.0


def test_the_page_escapes_names_and_the_markdown_carries_the_matrix(tmp_path: Path) -> None:
    write_race(tmp_path)
    report = data(tmp_path)
    section = compare_section(report)
    page, summary = render_html(report, [section]), render_markdown(report, [section])
    assert MARKUP_NAME not in page and "&lt;img src=x onerror=alert(1)&gt;" in page
    assert '<div class="side-by-side">' in page
    assert "Win rate by the ai judge (both orders)" in summary
    assert "| buried-urgent | 0.000 \u2192 1.000 | 0.000 \u2192 1.000 |" in summary


def test_a_store_without_a_race_says_how_to_run_one(tmp_path: Path) -> None:
    (note,) = compare_section(data(tmp_path)).blocks
    assert isinstance(note, Note) and "charter compare" in note.text and note.kind == "note"
