"""The run report's race section: candidate policies and their bases on the same held-out prompts.

It reads the store's latest ``compare.json`` (``charter compare``, :mod:`tasks.evaluate.compare`):
the standings as a table beside a chart of each entrant's win rate over the rest of the field
and its rule pass rate, then the win-rate matrix per judge, the stress set per candidate, the
held-out preference accuracy, and what made each candidate. Every text (entrant names are
folder names and model ids) is escaped by the renderer, as in every section.
"""

from __future__ import annotations

from collections.abc import Sequence

from tasks.evaluate.race import JUDGES, latest_race, matrix_cell
from tasks.report.blocks import (
    Block,
    Note,
    Record,
    Section,
    SideBySide,
    Table,
    change,
    rate_bars,
    records_table,
)
from tasks.report.data import ReportData

SECTION_ID, TITLE = "compare", "Race between candidates"
STANDINGS = {
    "model": "entrant",
    "kind": "kind",
    "reward": "reward",
    "rule_pass_rate": "rule pass",
    "kl_to_base": "KL to base",
    "base_win_rate_rm": "beats base (RM)",
    "field_win_rate_rm": "beats field (RM)",
    "field_win_rate_judge": "beats field (judge)",
}
BARS = {
    "field_win_rate_rm": "beats the field (reward model)",
    "field_win_rate_judge": "beats the field (AI judge)",
    "rule_pass_rate": "rule pass rate",
}


def compare_section(data: ReportData) -> Section:
    race = latest_race(data.store_root)
    if race is None:
        return Section(
            SECTION_ID,
            TITLE,
            (
                Note(
                    "No race: run `charter compare CKPT [CKPT ...]` to race candidate policies "
                    "and their bases."
                ),
            ),
        )
    return Section(SECTION_ID, TITLE, tuple(race_blocks(race)))


def race_blocks(race: Record) -> list[Block]:
    rows = race["standings"]
    names = [row["model"] for row in rows]
    caption = (
        f"{len(names)} entrants on {race['prompts']} held-out prompts (same seeds); "
        "win rates over the rest of the field and rule pass rate"
    )
    bars = rate_bars(
        "compare-standings", caption, names, {label: [r[k] for r in rows] for k, label in BARS.items()}, 0.5
    )
    standings = records_table(rows, STANDINGS, f"Standings (reward model: {race['reward_model'] or 'none'})")
    blocks: list[Block] = [SideBySide((standings, bars))]
    blocks += [_matrix_table(race, judge) for judge in JUDGES if _judged(race, judge)]
    if not race["judge"]:
        blocks.append(Note("No AI judge in this race (--no-judge): win rates by the reward model only."))
    blocks += _warnings(race)
    blocks += _stress_blocks(race)
    blocks += _preference_blocks(race)
    columns = {
        "model": "candidate",
        "kind": "kind",
        "run_id": "run",
        "base_model": "base",
        "preference_set": "preference set",
        "start_checkpoint": "started from",
        "checkpoint": "checkpoint",
    }
    blocks.append(records_table(race["lineage"], columns, "What made each candidate"))
    return blocks


def _judged(race: Record, judge: str) -> bool:
    return any(row["judge"] == judge for row in race["win_matrix"])


def _matrix_table(race: Record, judge: str) -> Table:
    names = [entrant["name"] for entrant in race["entrants"]]
    rows = tuple(
        (name, *(matrix_cell(race["win_matrix"], judge, name, other) for other in names)) for name in names
    )
    both = " (both orders)" if judge == "ai judge" else ""
    return Table(("row beats column", *names), rows, f"Win rate by the {judge}{both}; a tie counts half")


def _warnings(race: Record) -> list[Block]:
    return [
        Note(f"{name}: {warning}", "warning")
        for name, board in race["candidates"].items()
        if (warning := (board.get("length_check") or {}).get("warning"))
    ]


def _stress_blocks(race: Record) -> list[Block]:
    """Per stress type, each candidate's expected-behaviour rate against its base's."""
    sections = {name: board["stress"] for name, board in race["candidates"].items() if board.get("stress")}
    if not sections:
        return []
    types = sorted({row["stress_type"] for s in sections.values() for row in s["table"]}, key=_all_last)
    rows = tuple((kind, *(_expected_change(s["table"], kind) for s in sections.values())) for kind in types)
    first = next(iter(sections.values()))
    caption = f"Stress set {first['file']}: expected behaviour met, base \u2192 candidate"
    return [Table(("stress type", *sections), rows, caption)]


def _all_last(kind: str) -> tuple[bool, str]:
    return kind == "(all)", kind


def _expected_change(table: Sequence[Record], kind: str) -> str:
    found = {row["model"]: row.get("expected_rate") for row in table if row["stress_type"] == kind}
    return change(found.get("base"), found.get("tuned"))


def _preference_blocks(race: Record) -> list[Block]:
    preference = race.get("preferences")
    if not preference:
        return []
    overlap = {o["checkpoint"]: o["overlapping"] for o in preference["overlap"]}
    rows = [
        {**figures, "model": name, "overlapping": overlap.get(figures.get("checkpoint"))}
        for name, figures in preference["accuracy"].items()
    ]
    columns = {
        "model": "candidate",
        "decisive_pairs": "decisive pairs",
        "implicit_reward_accuracy": "implicit-reward accuracy",
        "logprob_margin_accuracy": "log-prob margin accuracy",
        "mean_logprob_margin": "mean log-prob margin",
        "overlapping": "pairs it trained on",
    }
    return [records_table(rows, columns, f"Held-out preferences: {preference['source']}")]
