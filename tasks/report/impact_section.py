"""The run report's "Constitution impact" section: what the latest measured constitution edit did.

It answers the reviewer of a constitution pull request: which principles changed and how, how
many of their labels were judged again and how many flipped, whether the judge became more or
less position-consistent and closer to people on those pairs, and which preference-set rows a
merge under the edited constitution would add, drop or flip. Agreement on fewer than
:data:`~tasks.impact.work.TOO_FEW_HUMAN_PAIRS` human-labelled pairs is shown as "too few to
tell" with the number of pairs, never as a rate one pair could swing.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from tasks.impact.record import ImpactSummary
from tasks.impact.work import TOO_FEW_HUMAN_PAIRS
from tasks.report.blocks import Block, Note, Section, Table, change, format_value
from tasks.report.data import ReportData

SECTION_ID = "impact"
TITLE = "Constitution impact"
NOT_MEASURED = (
    "No constitution edit measured yet: `charter constitution impact OLD.yaml NEW.yaml` (or an "
    "`impact: {against: OLD.yaml}` section in the pipeline config) judges the labels an edit "
    "touches again and shows here what changed."
)


def impact_section(data: ReportData) -> Section:
    summary = data.impact
    if summary is None:
        return Section(SECTION_ID, TITLE, (Note(NOT_MEASURED),))
    if not summary.changes:
        return Section(SECTION_ID, TITLE, (Note(f"{headline(summary)} No principle's meaning changed."),))
    blocks: list[Block] = [Note(headline(summary)), changes_table(summary)]
    judged = [row for row in summary.labels if row["method"] is not None]
    if judged:
        blocks.append(labels_table(judged))
    else:
        blocks.append(Note("No data: no stored AI label was made under OLD's version of these principles."))
    blocks.append(preferences_table(summary))
    return Section(SECTION_ID, TITLE, tuple(blocks))


def headline(summary: ImpactSummary) -> str:
    work = summary.work
    return (
        f"{summary.old.label} \u2192 {summary.new.label}, measured by run {summary.run_id[:8]} "
        f"at {summary.created_at}: {work['judged']} labels judged again by the model, "
        f"{work['carried']} verdicts carried over (the judge's prompt unchanged), rules checked "
        f"again on {work['rechecked_pairs']} pairs."
    )


def changes_table(summary: ImpactSummary) -> Table:
    rows = [
        (
            change_row["principle_id"],
            change_row["change"],
            ", ".join(change_row["fields"]) or None,
            change_row["labels_before"],
            _reasons(change_row["not_rejudged"]),
        )
        for change_row in summary.changes
    ]
    return Table(
        ("principle", "change", "fields changed", "labels under OLD", "not judged again"),
        tuple(rows),
        "Principles whose meaning changed (added principles have no labels to judge again)",
    )


def labels_table(rows: list[Mapping[str, Any]]) -> Table:
    return Table(
        (
            "principle",
            "method",
            "re-judged",
            "not judged again",
            "flipped",
            "mean |\u0394p|",
            "orders agree",
            "human pairs",
            "agreement with people",
            "Cohen's kappa",
            "rules that now decide",
        ),
        tuple(
            (
                row["principle_id"],
                row["method"],
                row["rejudged"],
                row["not_rejudged"],
                row["flipped"],
                row["mean_abs_delta_p"],
                _consistency(row),
                row["human_pairs"],
                *_agreement(row),
                row["new_decisions"] if row["method"] == "rule" else None,
            )
            for row in rows
        ),
        "Labels under OLD judged again under NEW, before \u2192 after (the `impact` view)",
    )


def _consistency(row: Mapping[str, Any]) -> str | None:
    """Position consistency before -> after; rules read no order, so they have none."""
    if row["method"] == "rule":
        return None
    return change(row["consistent_before"], row["consistent_after"])


def _agreement(row: Mapping[str, Any]) -> tuple[str, str]:
    """Accuracy and kappa before -> after, or why they say nothing yet."""
    if row["human_pairs"] < TOO_FEW_HUMAN_PAIRS:
        why = f"too few to tell ({row['human_pairs']} pairs)"
        return why, why
    return (
        change(row["accuracy_before"], row["accuracy_after"]),
        change(row["kappa_before"], row["kappa_after"]),
    )


def preferences_table(summary: ImpactSummary) -> Table:
    changes = summary.preferences
    rows = [
        (principle, counts.added, counts.dropped, counts.flipped)
        for principle, counts in changes.principles.items()
    ]
    rows.append(("all pairs", changes.total.added, changes.total.dropped, changes.total.flipped))
    return Table(
        ("principle", "rows added", "rows dropped", "rows flipped"),
        tuple(rows),
        f"A merge under NEW against one under OLD, same policy, nothing written: "
        f"{format_value(changes.rows_before)} \u2192 {format_value(changes.rows_after)} rows "
        "(a pair judged under two changed principles counts under both)",
    )


def _reasons(counts: Mapping[str, int]) -> str | None:
    return "; ".join(f"{n} {reason}" for reason, n in sorted(counts.items())) or None
