"""The audit summary: the audit views' headline rows, read in one read-only session."""

from __future__ import annotations

from dataclasses import dataclass

from tasks.sql import QueryResult, execute, readonly_connection
from tasks.store import Store

AUDIT_QUERIES = {
    "stage_counts": "select * from stage_counts",
    "label_counts": "select source, labeller, labels, pairs, prompts from label_counts",
    "coverage_ledger": (
        "select family, any_value(prompts) as prompts,"
        " sum(labelled_prompts) filter (where source = 'human') as human_labelled,"
        " sum(coverage) filter (where source = 'human') as human_coverage,"
        " sum(labelled_prompts) filter (where source = 'ai') as ai_labelled,"
        " sum(coverage) filter (where source = 'ai') as ai_coverage"
        " from coverage_ledger group by family order by human_coverage, ai_coverage, family"
    ),
    "human_agreement": "select * from human_agreement",
    "disagreements": (
        "select family, annotators, votes, majority_share, prompt from disagreement_bench limit {limit}"
    ),
}


@dataclass(frozen=True)
class AuditSummary:
    sections: dict[str, QueryResult]

    def unlabelled_families(self, source: str = "human") -> list[str]:
        """Families none of whose prompts has a label from ``source`` ('human' or 'ai')."""
        coverage = self.sections["coverage_ledger"].records()
        return sorted(r["family"] for r in coverage if r[f"{source}_labelled"] == 0)


def audit_summary(store: Store, disagreement_limit: int = 10) -> AuditSummary:
    sections = {}
    with readonly_connection(store) as con:
        for name, query in AUDIT_QUERIES.items():
            sections[name] = execute(con, query.format(limit=int(disagreement_limit)))
    return AuditSummary(sections)
