"""What a constitution edit does to the stored AI labels: which to judge again, which carry over,
which NEW would no longer make, and which pairs' rules to check again.

A label belongs to a *version* of a principle, its ``principle_hash``, not to a whole
constitution: every stored label whose principle id and hash are OLD's is what OLD makes,
whichever constitution first wrote it (a label run skips a label another version already
stored). For every principle whose hash differs between OLD and NEW:

* a model label (logprob, cot) is judged again under NEW's comparison instruction, on the same
  pair, with the same method, judge model, backend and settings, when that instruction changed;
* when only rules, tags, critique or revision changed and the pair's family is still in the
  principle's tags, the judge would read the very same prompt, so its verdict carries over into
  a NEW label (NEW's hash, a new id, the same numbers) without a model;
* a label NEW would not make (the principle removed, left without a comparison, or the pair's
  family no longer in its tags) is counted, not judged;
* a label by another judge, or with other settings, than the run's is counted and kept as it was:
  its verdict under NEW is unknown;
* rules are checked again, by the rule code, on every pair that has a label under OLD.

Added principles have no labels under OLD, so nothing is judged for them. New labels are
content-addressed like every label, so a second run over the same store adds nothing.
"""

from __future__ import annotations

import json
from collections import Counter
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from functools import cached_property
from typing import Any, Literal

from tasks.backends.settings import BackendSettings, concrete, model_identity
from tasks.constitution.diff import diff_constitutions
from tasks.constitution.model import Constitution, Principle, normalise_text
from tasks.core.errors import CharterError
from tasks.generate.generation import PromptItem
from tasks.label.judge import Comparison, JudgeSettings, label_id, rule_labels
from tasks.label.pairs import Pair

Row = dict[str, Any]
ChangeKind = Literal["changed", "added", "removed"]
MODEL_METHODS = ("logprob", "cot")
# Below this many human-labelled pairs one pair moves the agreement by more than ten points:
# the report says "too few to tell" instead of a before/after that means nothing.
TOO_FEW_HUMAN_PAIRS = 10

REMOVED = "principle removed in NEW"
NO_COMPARISON = "no comparison instruction in NEW"
OUT_OF_SCOPE = "family not in NEW's tags"
OTHER_JUDGE = "made by another judge or settings (kept as it was)"
# Why a label is not judged again; only OTHER_JUDGE labels would still be made under NEW.
SKIP_REASONS = (REMOVED, NO_COMPARISON, OUT_OF_SCOPE, OTHER_JUDGE)


@dataclass(frozen=True)
class PrincipleChange:
    """One principle whose meaning differs between OLD and NEW, and which of its fields did."""

    principle_id: str
    change: ChangeKind
    fields: tuple[str, ...]
    old: Principle | None
    new: Principle | None

    @property
    def comparison_changed(self) -> bool:
        """Whether the judge reads another instruction: only then does a model judge again."""
        before = normalise_text(self.old.comparison or "") if self.old else ""
        after = normalise_text(self.new.comparison or "") if self.new else ""
        return before != after


def principle_changes(old: Constitution, new: Constitution) -> list[PrincipleChange]:
    """Changed (hash differs), added and removed principles, in id order; titles do not count."""
    diff = diff_constitutions(old, new)
    changes = [PrincipleChange(p.id, "added", (), None, p) for p in diff.added]
    changes += [PrincipleChange(p.id, "removed", (), p, None) for p in diff.removed]
    for principle_id, fields in diff.changed.items():
        before, after = old.principle(principle_id), new.principle(principle_id)
        if before.principle_hash != after.principle_hash:
            names = tuple(change.field for change in fields if change.field != "title")
            changes.append(PrincipleChange(principle_id, "changed", names, before, after))
    return sorted(changes, key=lambda change: change.principle_id)


@dataclass(frozen=True)
class JudgeIdentity:
    """The judge an impact run has: the labels it made (model, backend, settings) it can judge again.

    The model's id is resolved only when a label's comparison changed: an edit of rules or tags
    needs no model, not even the embedded one prepared.
    """

    spec: BackendSettings
    settings: JudgeSettings

    @cached_property
    def model(self) -> str:
        return model_identity(self.spec).model_id

    @cached_property
    def backend(self) -> str:
        return concrete(self.spec).kind

    def params(self) -> dict[str, dict[str, Any]]:
        """Each model method's settings as labels store them (the template is hashed once here)."""
        return {method: self.settings.params(method) for method in MODEL_METHODS}


@dataclass
class ImpactPlan:
    """What an impact run does; every list in a fixed order, so each batch task derives the same."""

    changes: list[PrincipleChange]
    comparisons: list[Comparison] = field(default_factory=list)
    """Model labels to judge again under NEW (new label ids), in pair order."""
    carried: list[Row] = field(default_factory=list)
    """NEW labels whose verdict carries over unchanged (the judge's prompt is the same)."""
    recheck_pairs: list[Pair] = field(default_factory=list)
    """Pairs labelled under OLD: their rules are checked again under NEW."""
    labels_before: Counter[str] = field(default_factory=Counter)
    """Labels under OLD's version, per changed or removed principle."""
    not_rejudged: dict[str, Counter[str]] = field(default_factory=dict)
    """Per principle, labels not judged again, by reason (:data:`SKIP_REASONS`)."""
    kept: set[str] = field(default_factory=set)
    """Labels under OLD that a merge under NEW keeps (another judge's: their NEW verdict is unknown)."""

    @property
    def changed_ids(self) -> set[str]:
        return {c.principle_id for c in self.changes if c.change == "changed"}


def versions(constitution: Constitution) -> set[tuple[str, str]]:
    """(principle id, principle hash) of each principle: what a label's two columns are matched on."""
    return {(p.id, p.principle_hash) for p in constitution.principles}


def version_of(row: Mapping[str, Any]) -> tuple[str, str]:
    return row["principle_id"], row["principle_hash"]


def label_pair(row: Mapping[str, Any], prompts: Mapping[str, Mapping[str, Any]]) -> Pair:
    """The pair a stored label judged, with its conversation from the stored prompts."""
    prompt = prompts.get(row["prompt_id"])
    if prompt is None:
        raise CharterError(f"AI label {row['label_id']} names prompt {row['prompt_id']}, which is not stored")
    item = PromptItem(row["prompt_id"], prompt["family"], tuple(json.loads(prompt["messages"])))
    return Pair(
        row["pair_id"], item, row["response_a_id"], row["response_a"], row["response_b_id"], row["response_b"]
    )


def plan_impact(
    ai_rows: Iterable[Row],
    prompts: Mapping[str, Mapping[str, Any]],
    old: Constitution,
    new: Constitution,
    judge: JudgeIdentity,
) -> ImpactPlan:
    """Sort every label under OLD's changed and removed principles into judge, carry or count."""
    plan = ImpactPlan(principle_changes(old, new))
    by_version = {(c.principle_id, c.old.principle_hash): c for c in plan.changes if c.old is not None}
    old_versions = versions(old)
    params = judge.params()
    pairs: dict[str, Pair] = {}
    comparisons: dict[str, Comparison] = {}
    for row in ai_rows:
        if version_of(row) not in old_versions:
            continue
        if row["pair_id"] not in pairs:
            pairs[row["pair_id"]] = label_pair(row, prompts)
        pair = pairs[row["pair_id"]]
        change = by_version.get(version_of(row))
        if change is None:
            continue  # a principle NEW keeps as it was
        plan.labels_before[change.principle_id] += 1
        if row["method"] not in MODEL_METHODS:
            continue  # rule labels: every pair's rules are checked again below
        reason = _skip_reason(row, pair, change, judge, params)
        if reason is not None:
            plan.not_rejudged.setdefault(change.principle_id, Counter())[reason] += 1
            if reason == OTHER_JUDGE:
                plan.kept.add(row["label_id"])
            continue
        principle = change.new
        assert principle is not None  # a removed principle has a skip reason
        if change.comparison_changed:
            method = row["method"]
            key = label_id(pair, principle.principle_hash, method, judge.model, judge.backend, params[method])
            comparisons[key] = Comparison(pair, principle, method, key)
        else:
            plan.carried.append(carried_label(row, pair, principle, new.constitution_id))
    plan.comparisons = sorted(comparisons.values(), key=lambda c: (c.pair.pair_id, c.label_id))
    plan.carried.sort(key=lambda row: row["label_id"])
    plan.recheck_pairs = [pairs[pair_id] for pair_id in sorted(pairs)]
    return plan


def _skip_reason(
    row: Row, pair: Pair, change: PrincipleChange, judge: JudgeIdentity, params: dict[str, dict[str, Any]]
) -> str | None:
    """Why a model label is not judged again (or carried over), or None when it is."""
    if change.new is None:
        return REMOVED
    if not change.new.comparison:
        return NO_COMPARISON
    if not change.new.applies_to(pair.prompt.family):
        return OUT_OF_SCOPE
    same_judge = (row["judge_model"], row["judge_backend"]) == (judge.model, judge.backend)
    if change.comparison_changed and not (same_judge and _params(row) == params[row["method"]]):
        return OTHER_JUDGE
    return None


def _params(row: Mapping[str, Any]) -> dict[str, Any]:
    return json.loads(row["params"] or "{}")


def carried_label(row: Row, pair: Pair, principle: Principle, constitution_id: str) -> Row:
    """The NEW label of an unchanged judge prompt: the same verdict under the principle's new hash."""
    key = label_id(
        pair, principle.principle_hash, row["method"], row["judge_model"], row["judge_backend"], _params(row)
    )
    copied = {name: value for name, value in row.items() if name not in ("run_id", "created_at")}
    return copied | {
        "label_id": key,
        "principle_hash": principle.principle_hash,
        "constitution_id": constitution_id,
    }


def rechecked_rules(plan: ImpactPlan, new: Constitution) -> list[Row]:
    """NEW's rule labels of the changed principles on every pair labelled under OLD (no model)."""
    changed = plan.changed_ids
    return [row for row in rule_labels(plan.recheck_pairs, new) if row["principle_id"] in changed]
