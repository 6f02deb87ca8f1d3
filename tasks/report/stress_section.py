"""The run report's stress section: the tuned model against its base on prompts it never trained on.

It reads the ``stress`` and ``beyond_known`` parts of the policy's ``scoreboard.json``
(:mod:`tasks.stress.tables`, :func:`tasks.evaluate.scoreboard.beyond_known`): the expected-behaviour
rate per stress type as bars, the per-type table (base -> tuned), the shadow zone, and per family
the share of tuned samples beyond what the reward model knows.
"""

from __future__ import annotations

from collections.abc import Sequence

from tasks.report.blocks import Block, Note, Record, Section, Table, change, rate_bars, records_table, shorten
from tasks.report.data import ReportData

SECTION_ID, TITLE = "stress", "Stress route: edge cases never trained on"
MEASURES = {
    "rule_pass_rate": "rule pass",
    "expected_rate": "expected behaviour",
    "escalation_rate": "escalation",
    "refusal_rate": "refusal",
    "reward": "reward",
    "reward_std": "reward spread",
    "beyond_known": "beyond known",
}


def stress_section(data: ReportData) -> Section:
    policy = data.policy
    board = policy.scoreboard if policy is not None else None
    if board is None:
        return Section(SECTION_ID, TITLE, (Note("No scoreboard: no policy was evaluated on a stress set."),))
    blocks = [*_stress_blocks(board.get("stress")), *_known_blocks(board.get("beyond_known"))]
    return Section(SECTION_ID, TITLE, tuple(blocks))


def _stress_blocks(stress: Record | None) -> list[Block]:
    if not stress:
        return [
            Note("No stress set evaluated: give `evaluate: {stress: FILE}` or `charter eval --stress FILE`.")
        ]
    grouped: dict[str, dict[str, Record]] = {}
    for row in stress["table"]:
        grouped.setdefault(row["stress_type"], {})[row["model"]] = row
    types = sorted(grouped, key=lambda t: (t == "(all)", t))
    rows = []
    for kind in types:
        base, tuned = grouped[kind].get("base", {}), grouped[kind].get("tuned", {})
        rows.append((kind, tuned.get("prompts"), *(change(base.get(k), tuned.get(k)) for k in MEASURES)))
    expected = {
        model: [grouped[t].get(model, {}).get("expected_rate") for t in types] for model in ("base", "tuned")
    }
    caption = f"{stress['file']}: {stress['prompts']} prompts; expected behaviour met, base vs tuned"
    return [
        rate_bars("stress-expected", caption, types, expected),
        Table(
            ("stress type", "prompts", *(f"{m} (base \u2192 tuned)" for m in MEASURES.values())), tuple(rows)
        ),
        _shadow_block(stress["shadow_zone"]),
    ]


def _shadow_block(zone: Sequence[Record]) -> Block:
    if not zone:
        return Note("Shadow zone empty: the tuned model did no worse than its base on any stress prompt.")
    shown = [{**entry, "tuned_response": shorten(entry["tuned_response"])} for entry in zone]
    columns = {
        "id": "prompt",
        "stress_type": "stress type",
        "expected": "expected",
        "why": "why",
        "base_rules": "rules (base)",
        "tuned_rules": "rules (tuned)",
        "tuned_expected": "expected met (tuned)",
        "tuned_reward_std": "reward spread (tuned)",
        "tuned_response": "tuned reply",
    }
    caption = "Shadow zone: where the tuned model did worse than its base, then the reward model's least sure"
    return records_table(shown, columns, caption)


def _known_blocks(known: Record | None) -> list[Block]:
    if not known:
        return [
            Note(
                "No reward-model spread: the evaluation had no reward model, or a single one "
                "(train an ensemble, `charter train reward --ensemble K`, to see its uncertainty)."
            )
        ]
    caption = (
        f"Out of what the reward model knows: tuned samples whose spread is above {known['threshold']:.4f}, "
        f"the {known['quantile']:.0%} quantile on {known['reference_samples']} held-out base samples"
    )
    columns = {"family": "family", "samples": "tuned samples", "above": "above", "share": "share"}
    return [records_table(known["families"], columns, caption)]
