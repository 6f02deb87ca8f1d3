"""Principle-level differences between two constitution versions, for review and changelogs."""

from __future__ import annotations

import difflib
import textwrap
from dataclasses import dataclass, field

from tasks.constitution.model import PROMPT_FIELDS, Constitution, Principle, normalise_text


@dataclass(frozen=True)
class FieldChange:
    field: str
    old: str
    new: str

    def unified(self) -> str:
        """A word-wrapped unified diff of the field's text."""
        old_lines = _wrap(self.old)
        new_lines = _wrap(self.new)
        return "\n".join(difflib.unified_diff(old_lines, new_lines, "old", "new", lineterm="", n=2))


@dataclass
class ConstitutionDiff:
    old_id: str
    new_id: str
    metadata: list[FieldChange] = field(default_factory=list)
    added: list[Principle] = field(default_factory=list)
    removed: list[Principle] = field(default_factory=list)
    changed: dict[str, list[FieldChange]] = field(default_factory=dict)

    @property
    def meaning_changed(self) -> bool:
        return self.old_id != self.new_id

    @property
    def empty(self) -> bool:
        return not (self.metadata or self.added or self.removed or self.changed)


def diff_constitutions(old: Constitution, new: Constitution) -> ConstitutionDiff:
    """Added, removed and changed principles (matched by id), with each changed field's text."""
    result = ConstitutionDiff(old_id=old.constitution_id, new_id=new.constitution_id)
    for name in ("name", "version", "description"):
        before, after = getattr(old, name) or "", getattr(new, name) or ""
        if normalise_text(before) != normalise_text(after):
            result.metadata.append(FieldChange(name, before, after))
    old_by_id = {p.id: p for p in old.principles}
    new_by_id = {p.id: p for p in new.principles}
    result.added = [p for p in new.principles if p.id not in old_by_id]
    result.removed = [p for p in old.principles if p.id not in new_by_id]
    for principle in new.principles:
        before = old_by_id.get(principle.id)
        if before is not None:
            changes = _principle_changes(before, principle)
            if changes:
                result.changed[principle.id] = changes
    return result


def _principle_changes(old: Principle, new: Principle) -> list[FieldChange]:
    changes = []
    for name in ("title", *PROMPT_FIELDS):
        before, after = getattr(old, name) or "", getattr(new, name) or ""
        if normalise_text(before) != normalise_text(after):
            changes.append(FieldChange(name, before, after))
    if sorted(old.tags) != sorted(new.tags):
        changes.append(FieldChange("tags", ", ".join(sorted(old.tags)), ", ".join(sorted(new.tags))))
    old_rules = [r.meaning() for r in old.rules]
    new_rules = [r.meaning() for r in new.rules]
    if sorted(map(str, old_rules)) != sorted(map(str, new_rules)):
        changes.append(FieldChange("rules", _rules_text(old_rules), _rules_text(new_rules)))
    return changes


def _rules_text(rules: list[dict]) -> str:
    return "\n".join(
        f"{rule['id']}: " + ", ".join(f"{k}={v}" for k, v in sorted(rule.items()) if k != "id")
        for rule in sorted(rules, key=lambda r: r["id"])
    )


def _wrap(text: str) -> list[str]:
    return [line for paragraph in text.splitlines() for line in (textwrap.wrap(paragraph, 88) or [""])]
