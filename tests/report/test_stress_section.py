"""The report's stress section, from a scoreboard with a stress part made by the real aggregations:
the bars, the per-type table (base -> tuned), the shadow zone and the beyond-known shares, in both
the HTML and the Markdown; and a plain note where no stress set or no scoreboard exists."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

from tasks.evaluate.scoreboard import beyond_known
from tasks.report.blocks import Figure, Note, Table
from tasks.report.data import Checkpoint, ReportData
from tasks.report.report import SECTIONS, render_html, render_markdown
from tasks.report.stress_section import stress_section
from tasks.report.training_sections import scoreboard_section
from tasks.stress.tables import shadow_zone, stress_table
from tests.stress.test_tables import ROWS


def _data(scoreboard: dict | None, policy: bool = True) -> ReportData:
    checkpoint = Checkpoint(Path("/ckpt/dpo"), {"kind": "dpo", "metrics": {}}, scoreboard) if policy else None
    return ReportData(
        title="t", created_at=datetime(2026, 1, 1, tzinfo=UTC), store_root=Path("/store"), code_version="x",
        stages=[], audit={}, unlabelled_families={}, reward=None, policy=checkpoint,
    )  # fmt: skip


def _board() -> dict:
    known = beyond_known(ROWS)
    return {
        "stress": {
            "file": "stress.jsonl",
            "prompts": 3,
            "table": stress_table(ROWS, known["threshold"]),
            "shadow_zone": shadow_zone(ROWS),
        },
        "beyond_known": known,
    }


def test_the_section_shows_types_shadow_zone_and_beyond_known() -> None:
    section = stress_section(_data(_board()))
    figure, per_type, zone, known = section.blocks
    assert isinstance(figure, Figure) and figure.plot_id == "stress-expected"
    assert isinstance(per_type, Table) and [row[0] for row in per_type.rows] == [
        "authority",
        "urgent",
        "(all)",
    ]
    urgent = dict(zip(per_type.columns, per_type.rows[1], strict=True))
    assert urgent["expected behaviour (base \u2192 tuned)"] == "1.000 \u2192 0.000"
    assert urgent["rule pass (base \u2192 tuned)"] == "1.000 \u2192 0.500"
    assert isinstance(zone, Table) and [row[0] for row in zone.rows] == ["p2", "p3", "p1"]
    assert isinstance(known, Table) and known.rows[0][:3] == ("(all)", 3, 2)
    assert "0.2800" in known.caption  # the base spreads 0.1, 0.2, 0.3: 0.2 + 0.8 * 0.1


def test_the_report_carries_the_section_in_html_and_markdown() -> None:
    assert SECTIONS[SECTIONS.index(scoreboard_section) + 1] is stress_section  # it breaks the scoreboard down
    data = _data(_board())
    sections = [stress_section(data)]
    html, markdown = render_html(data, sections), render_markdown(data, sections)
    assert '<section id="stress">' in html and 'data-plot="stress-expected"' in html
    assert "fewer rules passed, expected behaviour lost" in markdown


def test_without_a_stress_set_or_a_scoreboard_the_section_says_so() -> None:
    plain = stress_section(_data({"families": [], "beyond_known": None}))
    assert [type(b) for b in plain.blocks] == [Note, Note]
    assert "charter eval --stress FILE" in plain.blocks[0].text and "no reward model" in plain.blocks[1].text
    for data in (_data(None), _data(None, policy=False)):
        [note] = stress_section(data).blocks
        assert note.kind == "note" and note.text.startswith("No scoreboard")
