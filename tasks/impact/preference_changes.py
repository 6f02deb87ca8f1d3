"""How a merge under NEW would differ from one under OLD: preference rows added, dropped or flipped.

Nothing is written: both merges run in memory over the stored labels, under the same policy.
The merge under OLD sees every label but those of principle versions only NEW has; the merge
under NEW sees every label but those of versions only OLD has, except the labels an impact run
could not judge again because another judge made them (their NEW verdict is unknown, so they
stay as they were). Labels that NEW would not make at all (a removed principle, a family out of
its tags) are simply gone from the merge under NEW, as they would be from a label run under it.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Collection, Iterable, Mapping
from dataclasses import asdict, dataclass, field
from typing import Any

from tasks.constitution.model import Constitution
from tasks.impact.work import Row, version_of, versions
from tasks.merge.policy import MergeSettings, merge_preferences


@dataclass(frozen=True)
class RowChanges:
    """Preference rows a merge under NEW adds (pairs it now decides), drops or flips (other chosen)."""

    added: int = 0
    dropped: int = 0
    flipped: int = 0


@dataclass(frozen=True)
class PreferenceChanges:
    """The two merges' sizes, and their differences overall and per changed principle."""

    rows_before: int
    rows_after: int
    total: RowChanges
    principles: dict[str, RowChanges] = field(default_factory=dict)
    """Per principle, the changes on pairs with one of its labels under OLD or NEW (a pair judged
    under two changed principles counts under both)."""

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> PreferenceChanges:
        return cls(
            rows_before=data["rows_before"],
            rows_after=data["rows_after"],
            total=RowChanges(**data["total"]),
            principles={key: RowChanges(**value) for key, value in data["principles"].items()},
        )


def labels_under(
    ai_rows: Iterable[Row], old: Constitution, new: Constitution, kept: Collection[str]
) -> tuple[list[Row], list[Row]]:
    """The AI labels a merge under OLD sees, and those a merge under NEW sees."""
    old_versions, new_versions = versions(old), versions(new)
    only_new, only_old = new_versions - old_versions, old_versions - new_versions
    rows = list(ai_rows)
    under_old = [row for row in rows if version_of(row) not in only_new]
    under_new = [row for row in rows if version_of(row) not in only_old or row["label_id"] in kept]
    return under_old, under_new


def preference_changes(
    human_rows: Iterable[Row],
    ai_rows: Iterable[Row],
    prompts: Mapping[str, Mapping[str, Any]],
    old: Constitution,
    new: Constitution,
    kept: Collection[str],
    policy: MergeSettings,
) -> PreferenceChanges:
    """Merge the labels under OLD and under NEW with ``policy`` and compare the chosen responses."""
    human_rows, ai_rows = list(human_rows), list(ai_rows)
    under_old, under_new = labels_under(ai_rows, old, new, kept)
    before = _chosen(human_rows, under_old, prompts, policy)
    after = _chosen(human_rows, under_new, prompts, policy)
    kinds = {
        pair: "added" if pair not in before else "dropped" if pair not in after else "flipped"
        for pair in before.keys() | after.keys()
        if before.get(pair) != after.get(pair)
    }
    edited = versions(old) ^ versions(new)
    touched: dict[str, set[str]] = defaultdict(set)
    for row in ai_rows:
        if version_of(row) in edited:
            touched[row["principle_id"]].add(row["pair_id"])
    return PreferenceChanges(
        rows_before=len(before),
        rows_after=len(after),
        total=_count(kinds.values()),
        principles={
            principle: _count(kinds[pair] for pair in pairs if pair in kinds)
            for principle, pairs in sorted(touched.items())
        },
    )


def _chosen(
    human_rows: list[Row], ai_rows: list[Row], prompts: Mapping[str, Mapping[str, Any]], policy: MergeSettings
) -> dict[str, str]:
    """pair id -> chosen response id, for the rows a merge of these labels keeps."""
    merged = merge_preferences(human_rows, ai_rows, prompts, policy)
    return {row["pair_id"]: row["chosen_id"] for row in merged.rows}


def _count(kinds: Iterable[str]) -> RowChanges:
    counts = {"added": 0, "dropped": 0, "flipped": 0}
    for kind in kinds:
        counts[kind] += 1
    return RowChanges(**counts)
