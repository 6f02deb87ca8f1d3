"""Run-report sections about the store: headline numbers, stages, labels and the audit views.

Each builder reads the audit records gathered in :class:`~tasks.report.data.ReportData` and
returns one :class:`~tasks.report.blocks.Section`; a view with no rows becomes a "no data"
note that says why it may legitimately be empty.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Sequence
from typing import Any

from tasks.report.blocks import (
    Block,
    Note,
    Record,
    Section,
    Table,
    figure,
    format_value,
    rate_bars,
    records_table,
    shorten,
    view_blocks,
)
from tasks.report.data import ReportData, StageRecord
from tasks.report.plots import ReliabilityBin, Series, bar_chart, reliability_diagram
from tasks.report.training_sections import length_warning, policy_headline, reward_headline

# --- Headline ---------------------------------------------------------------------------------


def headline_section(data: ReportData) -> Section:
    """The numbers to read first, each pointing at the section that explains it."""
    audit = data.audit
    overall = next((r for r in audit["ai_human_agreement"] if r["dimension"] == "overall"), None)
    latest_set = audit["preference_summary"][0] if audit["preference_summary"] else None
    rows: list[tuple[str, Any]] = [
        ("stages run", f"{len(data.stages)} in {format_value(sum(s.seconds for s in data.stages))} s"),
        (
            "latest preference set",
            f"{latest_set['set_id']}: {latest_set['rows']} rows" if latest_set else None,
        ),
        ("AI-human accuracy (overall)", overall["accuracy"] if overall else None),
        ("AI judge ECE", {r["judge_model"]: r["ece"] for r in audit["calibration_error"]} or None),
    ]
    rows.extend(reward_headline(data.reward))
    rows.extend(policy_headline(data.policy))
    table = Table(("measure", "value"), tuple(rows))
    warning = length_warning(data.policy)
    return Section("headline", "Headline", (table, *([Note(warning, "warning")] if warning else [])))


# --- Stages and counts ------------------------------------------------------------------------


def stages_section(data: ReportData) -> Section:
    """What this run did per stage (time, rows, resumed batches) and what the store now holds."""
    blocks: list[Block] = []
    if data.stages:
        blocks.append(
            figure(
                "stage-seconds",
                "Seconds per stage in this run",
                lambda: bar_chart(
                    [s.name for s in data.stages],
                    [Series("seconds", [(i, s.seconds) for i, s in enumerate(data.stages)])],
                    title="Seconds per stage in this run",
                    value_label="seconds",
                ),
            )
        )
        blocks.append(_stage_table(data.stages))
    else:
        blocks.append(Note("No data: no stage ran in this run."))
    blocks.extend(
        view_blocks(
            data.audit["stage_counts"],
            "the store is empty.",
            lambda: [
                records_table(
                    data.audit["stage_counts"],
                    {"stage": "stage", "model": "model", "items_in": "items in", "rows_out": "rows out"},
                    "What the store holds, per stage (all runs)",
                )
            ],
        )
    )
    return Section("stages", "Stages", tuple(blocks))


def _stage_table(stages: Sequence[StageRecord]) -> Table:
    rows = [(s.name, s.seconds, s.rows_added, s.skipped, s.detail or None) for s in stages]
    rows.append(("total", sum(s.seconds for s in stages), None, sum(s.skipped for s in stages), None))
    return Table(
        ("stage", "seconds", "rows added", "batches skipped (resumed)", "detail"),
        tuple(rows),
        "This run",
    )


def labels_section(data: ReportData) -> Section:
    counts, sets = data.audit["label_counts"], data.audit["preference_summary"]
    blocks = view_blocks(
        counts,
        "no human or AI labels in the store.",
        lambda: [
            records_table(
                counts,
                {
                    "source": "source",
                    "labeller": "labeller",
                    "labels": "labels",
                    "pairs": "pairs",
                    "prompts": "prompts",
                },
                "Labels per source and labeller",
            )
        ],
    ) + view_blocks(
        sets,
        "no preference set has been merged.",
        lambda: [
            records_table(
                sets,
                {
                    "set_id": "set",
                    "created_at": "created",
                    "rows": "rows",
                    "human": "human",
                    "human_majority": "human majority",
                    "rule": "rule",
                    "ai": "AI",
                    "mean_target": "mean target",
                    "mean_weight": "mean weight",
                },
                "Preference sets, newest first (rows per deciding source)",
            )
        ],
    )
    return Section("labels", "Labels and preference sets", blocks)


# --- Audit views ------------------------------------------------------------------------------


def agreement_section(data: ReportData) -> Section:
    rows = data.audit["ai_human_agreement"]
    principles = [r for r in rows if r["dimension"] == "principle"]
    overall = next((r["accuracy"] for r in rows if r["dimension"] == "overall"), None)

    def build() -> list[Block]:
        blocks: list[Block] = []
        if principles:
            blocks.append(
                rate_bars(
                    "agreement-by-principle",
                    "AI-human agreement by principle (dashed: overall)",
                    [r["value"] for r in principles],
                    {"accuracy": [r["accuracy"] for r in principles]},
                    reference=overall,
                )
            )
        columns = {
            "dimension": "dimension",
            "value": "value",
            "labels": "labels",
            "pairs": "pairs",
            "accuracy": "accuracy",
            "cohen_kappa": "Cohen's kappa",
        }
        blocks.append(records_table(rows, columns, "AI label vs the human majority, on decisive pairs"))
        return blocks

    empty = "no AI label falls on a pair with a decisive human majority (judge the human pairs)."
    return Section("agreement", "AI-human agreement", view_blocks(rows, empty, build))


def position_section(data: ReportData) -> Section:
    rows = data.audit["position_consistency"]
    names = [f"{r['judge_model']} / {r['method']}" for r in rows]

    def build() -> list[Block]:
        series = {
            "both orders agree": [r["consistent_rate"] for r in rows],
            "first shown wins": [r["first_position_rate"] for r in rows],
            "second shown wins": [r["second_position_rate"] for r in rows],
        }
        columns = {
            "judge_model": "judge",
            "method": "method",
            "labels": "labels",
            "consistent_rate": "consistent",
            "first_position_rate": "first position",
            "second_position_rate": "second position",
            "mean_abs_order_gap": "mean |gap|",
        }
        return [
            rate_bars("position-consistency", "Position consistency per judge and method", names, series),
            records_table(rows, columns, "Labels judged in both orders (rules excluded)"),
        ]

    empty = "no model-judged AI labels with both orders."
    return Section("position", "Position consistency", view_blocks(rows, empty, build))


def length_section(data: ReportData) -> Section:
    rows = data.audit["length_bias"]
    names = [_labeller_name(r) for r in rows]

    def build() -> list[Block]:
        columns = {
            "source": "source",
            "labeller": "labeller",
            "method": "method",
            "labels": "labels",
            "longer_wins_rate": "longer wins",
            "mean_length_ratio": "chosen/rejected length",
        }
        return [
            rate_bars(
                "length-bias",
                "How often the longer response wins (dashed: no length preference)",
                names,
                {"longer wins": [r["longer_wins_rate"] for r in rows]},
                reference=0.5,
            ),
            records_table(rows, columns, "Decisive labels on pairs of different lengths"),
        ]

    empty = "no decisive labels on pairs whose responses differ in length."
    return Section("length-bias", "Length bias", view_blocks(rows, empty, build))


def _labeller_name(row: Record) -> str:
    """A length-bias row's bar label, with the method only where it adds something:
    'ai: judge (logprob)', 'human: ann-1', 'ai: (all)'."""
    method = f" ({row['method']})" if row["method"] not in ("(all)", "human") else ""
    return f"{row['source']}: {row['labeller']}{method}"


def coverage_section(data: ReportData) -> Section:
    rows = data.audit["coverage_ledger"]

    def build() -> list[Block]:
        series = {
            "human": [r["human_coverage"] for r in rows],
            "AI": [r["ai_coverage"] for r in rows],
        }
        columns = {
            "family": "family",
            "prompts": "prompts",
            "human_labelled": "human-labelled",
            "human_coverage": "human coverage",
            "ai_labelled": "AI-labelled",
            "ai_coverage": "AI coverage",
        }
        blocks: list[Block] = [
            rate_bars(
                "coverage", "Share of each family's prompts with a label", [r["family"] for r in rows], series
            ),
            records_table(rows, columns, "Coverage ledger, least covered first"),
        ]
        for source, families in data.unlabelled_families.items():
            if families:
                blocks.append(Note(f"No {source} label on any prompt of: {', '.join(families)}.", "warning"))
        return blocks

    return Section("coverage", "Coverage ledger", view_blocks(rows, "no prompts in the store.", build))


def calibration_section(data: ReportData) -> Section:
    bins, errors = data.audit["calibration"], data.audit["calibration_error"]

    def build() -> list[Block]:
        grouped: dict[str, list[ReliabilityBin]] = defaultdict(list)
        for r in bins:
            grouped[r["judge_model"]].append(ReliabilityBin(r["mean_confidence"], r["accuracy"], r["labels"]))
        caption = "AI judge reliability: accuracy against the human majority by confidence bin"
        columns = {
            "judge_model": "judge",
            "bin": "bin",
            "labels": "labels",
            "mean_confidence": "mean confidence",
            "accuracy": "accuracy",
            "gap": "gap",
        }
        return [
            figure(
                "judge-calibration",
                caption,
                lambda: reliability_diagram(list(grouped.items()), title=caption),
            ),
            records_table(
                errors,
                {"judge_model": "judge", "labels": "labels", "ece": "ECE"},
                "Expected calibration error",
            ),
            records_table(bins, columns, "Confidence bins (gap > 0: overconfident)"),
        ]

    empty = "no AI label on a pair with a decisive human majority, so no calibration."
    return Section("calibration", "AI judge calibration", view_blocks(bins, empty, build))


def disagreements_section(data: ReportData) -> Section:
    """The pairs worth reading: where people split, and where the judge contradicts them."""
    human = [{**r, "prompt": shorten(r["prompt"])} for r in data.audit["disagreements"]]
    ai = [{**r, "prompt": shorten(r["prompt"])} for r in data.audit["ai_disagreements"]]
    human_columns = {
        "family": "family",
        "annotators": "annotators",
        "votes": "votes",
        "majority_share": "majority share",
        "prompt": "prompt",
    }
    ai_columns = {
        "family": "family",
        "judge_model": "judge",
        "principle_id": "principle",
        "ai_confidence": "AI confidence",
        "ai_vote": "AI",
        "human_vote": "humans",
        "prompt": "prompt",
    }
    blocks = view_blocks(
        human,
        "no pair that annotators labelled differently.",
        lambda: [records_table(human, human_columns, "People disagree (most split first)")],
    ) + view_blocks(
        ai,
        "the AI judge contradicts no decisive human majority.",
        lambda: [
            records_table(
                ai, ai_columns, "The AI judge contradicts the human majority (most confident first)"
            )
        ],
    )
    return Section("disagreements", "Disagreements to read", blocks, in_summary=False)
