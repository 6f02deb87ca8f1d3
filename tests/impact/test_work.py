"""The impact plan on the fixture's labels, without a store or Prefect: what is judged, carried,
counted and kept, and the two merges it compares (see ``conftest`` for the pairs)."""

from __future__ import annotations

from collections import Counter
from datetime import UTC, datetime
from pathlib import Path

import pytest

from tasks.backends.settings import BackendSettings
from tasks.constitution.model import load_constitution
from tasks.impact.preference_changes import labels_under, preference_changes
from tasks.impact.work import (
    NO_COMPARISON,
    OTHER_JUDGE,
    OUT_OF_SCOPE,
    REMOVED,
    JudgeIdentity,
    plan_impact,
    principle_changes,
    rechecked_rules,
)
from tasks.label.judge import Comparison, JudgeSettings, judge, label_id
from tasks.merge.policy import MergeSettings
from tests.impact.conftest import (
    BUNDLED,
    CASES,
    DOSING,
    JUDGE_SPEC,
    NEW_COMPARISON,
    ScriptedJudge,
    ai_label_rows,
    comparison_edit,
    edited_constitution,
    human_rows,
    prompt_rows,
    rule_edit,
    stored_prompts_of,
)

DOSING_TAGS = "tags: [medication, mixed-intent, adversarial]"


@pytest.fixture(scope="module")
def rows() -> list[dict]:
    return ai_label_rows(BUNDLED)


@pytest.fixture(scope="module")
def prompts() -> dict[str, dict]:
    return stored_prompts_of(prompt_rows())


def _plan(rows: list[dict], prompts: dict, new_path: Path, spec: BackendSettings = JUDGE_SPEC):
    old, new = load_constitution(BUNDLED), load_constitution(new_path)
    return plan_impact(rows, prompts, old, new, JudgeIdentity(spec, JudgeSettings())), new


def test_changes_name_the_fields_that_change_a_principle_hash_and_ignore_titles(tmp_path: Path) -> None:
    old = load_constitution(BUNDLED)
    compared = principle_changes(old, load_constitution(comparison_edit(tmp_path)))
    assert [(c.principle_id, c.change, c.fields, c.comparison_changed) for c in compared] == [
        ("no-dosing-advice", "changed", ("comparison",), True)
    ]
    ruled = principle_changes(old, load_constitution(rule_edit(tmp_path)))
    assert [(c.principle_id, c.fields, c.comparison_changed) for c in ruled] == [
        ("no-dosing-advice", ("rules",), False)
    ]
    retitled = edited_constitution(
        tmp_path, "title: Never diagnose", "title: Do not diagnose", "retitled.yaml"
    )
    assert principle_changes(old, load_constitution(retitled)) == []


def test_a_comparison_edit_judges_exactly_that_principles_model_labels_again(
    rows: list[dict], prompts: dict, tmp_path: Path
) -> None:
    plan, new = _plan(rows, prompts, comparison_edit(tmp_path))
    principle = new.principle("no-dosing-advice")
    params = JudgeSettings().params("logprob")
    # One comparison per logprob label of the 14 dosing pairs, under NEW's text and hash.
    assert len(plan.comparisons) == len(DOSING) == 14
    assert {c.label_id for c in plan.comparisons} == {
        label_id(case.pair, principle.principle_hash, "logprob", "scripted/judge", "hf", params)
        for case in DOSING
    }
    assert {c.principle.comparison for c in plan.comparisons} == {NEW_COMPARISON}
    assert plan.carried == [] and plan.not_rejudged == {} and plan.kept == set()
    # 14 logprob + 12 no-dose-amounts + 9 route-to-pharmacist rule labels under OLD's version.
    assert plan.labels_before == Counter({"no-dosing-advice": 35})
    assert len(plan.recheck_pairs) == len(CASES) == 17  # every pair labelled under OLD


def test_a_rule_edit_carries_the_judges_verdicts_over_unchanged(
    rows: list[dict], prompts: dict, tmp_path: Path
) -> None:
    plan, new = _plan(rows, prompts, rule_edit(tmp_path))
    assert plan.comparisons == []
    assert len(plan.carried) == 14
    # What the judge would write under NEW, asked again with the same script: the same rows.
    settings = JudgeSettings(methods=("logprob",))
    principle = new.principle("no-dosing-advice")
    params = settings.params("logprob")
    fresh = judge(
        ScriptedJudge("before"),
        [
            Comparison(
                case.pair,
                principle,
                "logprob",
                label_id(case.pair, principle.principle_hash, "logprob", "scripted/judge", "hf", params),
            )
            for case in DOSING
        ],
        new,
        settings,
    )
    assert sorted(plan.carried, key=lambda r: r["label_id"]) == sorted(fresh, key=lambda r: r["label_id"])
    # The rules again: "2 tablets" (cases 9-11) no longer breaks no-dose-amounts.
    rules = Counter(row["rule_id"] for row in rechecked_rules(plan, new))
    assert rules == Counter({"no-dose-amounts": 9, "route-to-pharmacist-or-prescriber": 9})


def test_labels_new_would_not_make_or_cannot_judge_are_counted_by_reason(
    rows: list[dict], prompts: dict, tmp_path: Path
) -> None:
    compared = comparison_edit(tmp_path)
    text = compared.read_text(encoding="utf-8")
    out_of_scope = tmp_path / "out-of-scope.yaml"
    out_of_scope.write_text(text.replace(DOSING_TAGS, "tags: [mixed-intent, adversarial]"), encoding="utf-8")
    plan, _ = _plan(rows, prompts, out_of_scope)
    assert plan.comparisons == [] and plan.not_rejudged == {"no-dosing-advice": Counter({OUT_OF_SCOPE: 14})}

    start = text.index("    comparison: >\n      Choose the response that never")
    no_comparison = tmp_path / "no-comparison.yaml"
    no_comparison.write_text(text[:start] + text[text.index("    rules:", start) :], encoding="utf-8")
    plan, _ = _plan(rows, prompts, no_comparison)
    assert plan.not_rejudged == {"no-dosing-advice": Counter({NO_COMPARISON: 14})} and plan.kept == set()

    other = BackendSettings(kind="hf", model="another/judge")
    plan, _ = _plan(rows, prompts, compared, other)
    assert plan.comparisons == [] and plan.not_rejudged == {"no-dosing-advice": Counter({OTHER_JUDGE: 14})}
    dosing = {row["label_id"] for row in rows if row["principle_id"] == "no-dosing-advice"}
    assert len(plan.kept) == 14 and plan.kept <= dosing


def test_a_removed_principle_counts_every_label_it_made(
    rows: list[dict], prompts: dict, tmp_path: Path
) -> None:
    text = BUNDLED.read_text(encoding="utf-8")
    start, end = text.index("  - id: efficient-booking"), text.index("  - id: accurate-policy-and-billing")
    removed = tmp_path / "removed.yaml"
    removed.write_text(text[:start] + text[end:], encoding="utf-8")
    plan, _ = _plan(rows, prompts, removed)
    assert [(c.principle_id, c.change) for c in plan.changes] == [("efficient-booking", "removed")]
    assert plan.not_rejudged == {"efficient-booking": Counter({REMOVED: 3})}
    assert plan.labels_before == Counter({"efficient-booking": 3})


def test_merges_under_old_and_new_see_their_own_versions_and_count_the_changed_rows(
    rows: list[dict], prompts: dict, tmp_path: Path
) -> None:
    plan, new = _plan(rows, prompts, rule_edit(tmp_path))
    old = load_constitution(BUNDLED)
    after = rows + plan.carried + rechecked_rules(plan, new)
    under_old, under_new = labels_under(after, old, new, kept=set())
    assert sorted(r["label_id"] for r in under_old) == sorted(r["label_id"] for r in rows)
    assert len(under_new) == 3 + 14 + 18  # booking labels, the carried verdicts, NEW's rule labels
    stamped = [row | {"created_at": datetime(2026, 1, 1, tzinfo=UTC)} for row in human_rows()]
    changes = preference_changes(stamped, after, prompts, old, new, set(), MergeSettings())
    # Case 10 (the judge's mean 0.525 is below the 0.1 margin) is dropped once no rule decides it;
    # case 11 (the judge prefers "2 tablets", mean 0.25) flips; case 9 (0.65) keeps its choice.
    assert (changes.rows_before, changes.rows_after) == (16, 15)
    assert (changes.total.added, changes.total.dropped, changes.total.flipped) == (0, 1, 1)
    assert list(changes.principles) == ["no-dosing-advice"]
