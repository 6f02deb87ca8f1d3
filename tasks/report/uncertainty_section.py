"""Run-report sections on how far the preference signal can be trusted: each rule and judge
against people (``rule_agreement``), and the reward model's own uncertainty (``reward_uncertainty``).

A rule's label used to count as certain; the first section shows each rule's record where
people labelled the same pairs and warns, in a sentence, about any rule or judge that
contradicts people more often than it agrees on enough pairs to mean it. The second shows how
unsure the reward model is (the spread of P(first better) over its ensemble's members) and
whether that spread means something: accuracy against the human majority should fall from
the most certain fifth of the pairs to the least certain.
"""

from __future__ import annotations

from collections.abc import Sequence

from tasks.merge.evidence import CONTRADICTION_MIN_PAIRS
from tasks.report.blocks import Block, Note, Record, Section, Table, rate_bars, records_table, view_blocks
from tasks.report.data import ReportData
from tasks.train.uncertainty import member_mean, quantile, uncertainty_bins

# The spread's distribution as these quantiles (0 and 1: the smallest and largest).
SPREAD_QUANTILES = (0.0, 0.1, 0.25, 0.5, 0.75, 0.9, 1.0)


def contradiction_warnings(rows: Sequence[Record], min_pairs: int = CONTRADICTION_MIN_PAIRS) -> list[str]:
    """One sentence per rule or judge that contradicts people on more pairs than it agrees on,
    from ``min_pairs`` decided pairs on (fewer say too little to warn about)."""
    return [
        f"{r['kind']} {r['source']} contradicts people on {r['disagree']} of {r['pairs']} pairs "
        f"(estimated confidence {r['confidence']:.3f})."
        for r in rows
        if r["pairs"] >= min_pairs and r["disagree"] > r["agree"]
    ]


def evidence_section(data: ReportData) -> Section:
    rows = data.audit["rule_agreement"]

    def build() -> list[Block]:
        columns = {
            "kind": "kind",
            "source": "rule or judge",
            "pairs": "pairs",
            "agree": "agree",
            "disagree": "disagree",
            "agreement_rate": "agreement",
            "confidence": "confidence",
        }
        caption = (
            "Pairs each rule and judge decided that people decided too; confidence: the posterior "
            f"mean under the Beta({rows[0]['prior_agree']:g}, {rows[0]['prior_disagree']:g}) prior"
        )
        return [
            *(Note(text, "warning") for text in contradiction_warnings(rows)),
            _against_a_coin(
                "rule-agreement",
                "Agreement with the human majority per rule and judge",
                {f"{r['kind']}: {r['source']}": r["agreement_rate"] for r in rows},
            ),
            records_table(rows, columns, caption),
        ]

    empty = "no rule or judge decided a pair with a decisive human majority."
    return Section("rule-agreement", "Rules and judges against people", view_blocks(rows, empty, build))


def uncertainty_section(data: ReportData) -> Section:
    rows = [r for r in data.audit["reward_uncertainty"] if r["p_first_std"] is not None]

    def build() -> list[Block]:
        blocks: list[Block] = [_spread_table(rows)]
        judged = [r for r in rows if r["rm_correct"] is not None]
        if not judged:
            blocks.append(
                Note("No data: people labelled none of the scored pairs, so no accuracy by spread.")
            )
            return blocks
        bins = uncertainty_bins([r["p_first_std"] for r in judged], [r["rm_correct"] for r in judged])
        blocks.append(
            _against_a_coin(
                "rm-accuracy-by-spread",
                "Reward-model accuracy against people by spread quintile (1: most certain)",
                {f"quintile {b['bin']}": b["accuracy"] for b in bins},
            )
        )
        columns = {
            "bin": "quintile",
            "pairs": "pairs",
            "uncertainty_min": "spread from",
            "uncertainty_max": "spread to",
            "mean_uncertainty": "mean spread",
            "accuracy": "accuracy",
        }
        caption = "Reward model's P against the human majority, by spread (accuracy should fall)"
        blocks.append(records_table(bins, columns, caption))
        return blocks

    empty = "no reward model has scored the stored pairs (`charter train reward` scores them)."
    return Section("rm-uncertainty", "Reward-model uncertainty", view_blocks(rows, empty, build))


def _against_a_coin(plot_id: str, caption: str, rates: dict[str, float]) -> Block:
    """Bars of how often a source is right, one per name, against a coin's 0.5 (dashed)."""
    return rate_bars(plot_id, f"{caption} (dashed: a coin)", list(rates), {"rate": list(rates.values())}, 0.5)


def _spread_table(rows: Sequence[Record]) -> Table:
    spreads = [r["p_first_std"] for r in rows]
    members = sorted({r["members"] for r in rows})
    quantiles = [quantile(spreads, q) for q in SPREAD_QUANTILES]
    return Table(
        ("pairs", "members", "mean", *(f"q{round(q * 100)}" for q in SPREAD_QUANTILES)),
        ((len(rows), ", ".join(str(m) for m in members), member_mean(spreads), *quantiles),),
        "Spread of P(first better) over the ensemble's members, each pair's latest score (q0: least)",
    )
