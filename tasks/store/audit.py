"""The audit summary: the audit views' headline rows, read in one read-only session."""

from __future__ import annotations

from dataclasses import dataclass

from tasks.store.sql import QueryResult, execute, readonly_connection
from tasks.store.store import Store

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
    "ai_human_agreement": (
        "select dimension, value, labels, pairs, accuracy, cohen_kappa from ai_human_agreement"
        " where dimension in ('overall', 'judge_model', 'principle')"
        " order by list_position(['overall', 'judge_model', 'principle'], dimension), labels desc, value"
    ),
    "position_consistency": "select * from position_consistency",
    "length_bias": "select * from length_bias",
    "human_position_bias": "select * from human_position_bias",
    "calibration_error": "select * from calibration_error",
    "rule_agreement": "select kind, source, pairs, agree, disagree, confidence from rule_agreement",
    "ai_disagreements": (
        "select family, judge_model, principle_id, ai_confidence, ai_vote, human_vote, prompt"
        " from ai_disagreement_bench limit {limit}"
    ),
    "preference_summary": (
        "select left(set_id, 12) as set_id, created_at, rows, human, human_majority, rule, ai,"
        " mean_target, mean_weight from preference_summary"
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
