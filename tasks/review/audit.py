"""What the bench's audit page shows: the review labels so far, people's position bias, and
agreement (human-human and AI-human), read from the store's views in one read-only session."""

from __future__ import annotations

from dataclasses import dataclass

from tasks.store.sql import QueryResult, execute, readonly_connection
from tasks.store.store import Store

BENCH_AUDIT = {
    "Review labels per annotator and queue": (
        "select annotator, queue, count(*) as labels, count(distinct pair_id) as pairs,"
        " round(avg(ai_shown::int), 4) as ai_shown_rate"
        " from human_labels where source_format = 'review'"
        " group by annotator, queue order by annotator, queue"
    ),
    "People's position bias (0.5 is none)": "select * from human_position_bias",
    "Human-human agreement": "select * from human_agreement",
    "AI-human agreement": (
        "select dimension, value, labels, pairs, accuracy, cohen_kappa from ai_human_agreement"
        " where dimension in ('overall', 'judge_model') order by dimension desc, labels desc"
    ),
    "Judge position consistency": "select * from position_consistency",
}


@dataclass(frozen=True)
class AuditSection:
    title: str
    result: QueryResult


def bench_audit(store: Store) -> list[AuditSection]:
    with readonly_connection(store) as con:
        return [AuditSection(title, execute(con, query)) for title, query in BENCH_AUDIT.items()]
