"""The report's "Constitution impact" section and the record it reads, from a hand-made summary."""

from __future__ import annotations

from pathlib import Path

from tasks.impact.measure import write_impact_report
from tasks.impact.preference_changes import PreferenceChanges, RowChanges
from tasks.impact.record import ConstitutionVersion, ImpactSummary, latest_impact
from tasks.report.report import write_report
from tasks.store.store import Store

NONE = "\u2013"  # how the report writes a missing value


def _label_row(method: str, human_pairs: int, **figures: float | int | None) -> dict:
    return {
        "principle_id": "no-dosing-advice",
        "method": method,
        "rejudged": 12,
        "not_rejudged": 2,
        "new_decisions": 1,
        "flipped": 4,
        "mean_abs_delta_p": 0.14,
        "consistent_before": 0.5,
        "consistent_after": 0.75,
        "human_pairs": human_pairs,
        "accuracy_before": 0.5,
        "accuracy_after": 0.9,
        "kappa_before": -0.02,
        "kappa_after": 0.78,
    } | figures


def _summary(run_id: str = "run-1", created_at: str = "2026-01-02T03:04:05+00:00") -> ImpactSummary:
    return ImpactSummary(
        run_id=run_id,
        created_at=created_at,
        old=ConstitutionVersion("healthcare-scheduling", "1.0.0", "a" * 64, "/c/old.yaml"),
        new=ConstitutionVersion("healthcare-scheduling", "1.1.0", "b" * 64, "/c/new.yaml"),
        changes=[
            {
                "principle_id": "no-dosing-advice",
                "change": "changed",
                "fields": ["comparison", "rules"],
                "labels_before": 35,
                "not_rejudged": {"family not in NEW's tags": 2},
            },
            {
                "principle_id": "be-kind",
                "change": "added",
                "fields": [],
                "labels_before": 0,
                "not_rejudged": {},
            },
        ],
        labels=[_label_row("logprob", 10), _label_row("rule", 9)],
        preferences=PreferenceChanges(15, 16, RowChanges(1, 0, 1), {"no-dosing-advice": RowChanges(1, 0, 1)}),
        work={"judged": 12, "carried": 0, "rule_labels": 21, "rechecked_pairs": 17},
    )


def test_the_section_shows_before_and_after_and_too_few_pairs_as_too_few(tmp_path: Path) -> None:
    store = Store.create(tmp_path / "store")
    paths = write_impact_report(store, _summary())
    markdown = paths.markdown.read_text(encoding="utf-8")
    # Ten human pairs: a before -> after; nine: too few to tell, with the count.
    logprob = "| no-dosing-advice | logprob | 12 | 2 | 4 | 0.140 | 0.500 → 0.750 | 10 | 0.500 → 0.900 |"
    assert f"{logprob} -0.020 → 0.780 | {NONE} |" in markdown
    assert (
        f"| no-dosing-advice | rule | 12 | 2 | 4 | 0.140 | {NONE} | 9 | too few to tell (9 pairs) |"
        in markdown
    )
    assert "| no-dosing-advice | changed | comparison, rules | 35 | 2 family not in NEW's tags |" in markdown
    assert f"| be-kind | added | {NONE} | 0 | {NONE} |" in markdown
    assert "| all pairs | 1 | 0 | 1 |" in markdown and "15 → 16 rows" in markdown
    html = paths.html.read_text(encoding="utf-8")
    assert '<section id="impact">' in html and "NEW&#x27;s tags" in html


def test_the_record_round_trips_and_the_run_report_shows_the_latest(tmp_path: Path) -> None:
    store = Store.create(tmp_path / "store")
    assert latest_impact(store) is None
    write_impact_report(store, _summary("run-1", "2026-01-02T03:04:05+00:00"))
    write_impact_report(store, _summary("run-0", "2025-12-31T00:00:00+00:00"))
    assert latest_impact(store) == _summary("run-1", "2026-01-02T03:04:05+00:00")
    report = write_report(store, tmp_path / "report", title="t", stages=[])
    markdown = report.markdown.read_text(encoding="utf-8")
    assert "## Constitution impact" in markdown and "measured by run run-1 at 2026-01-02" in markdown


def test_a_store_without_a_measured_edit_says_how_to_measure_one(tmp_path: Path) -> None:
    report = write_report(Store.create(tmp_path / "store"), tmp_path / "report", title="t", stages=[])
    assert "No constitution edit measured yet: `charter constitution impact" in report.markdown.read_text()
