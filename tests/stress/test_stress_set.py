"""The bundled stress set: valid as a prompt set and as a stress set, big and varied enough, every
expected behaviour checked by a rule that applies, and nothing shared with the training prompts."""

from __future__ import annotations

import json
from collections import Counter
from pathlib import Path

import pytest

from tasks.constitution.model import load_constitution
from tasks.constitution.rules import applicable_rules
from tasks.core.errors import InputError
from tasks.generate.generation import PromptItem
from tasks.ingest.prompt_sets import load_prompt_set
from tasks.stress.stress_set import (
    EXPECTED_RULES,
    StressPrompt,
    checking_rules,
    expected_met,
    load_stress_set,
    per_type,
)
from tests.conftest import PROJECT_ROOT

DATASET = PROJECT_ROOT / "datasets" / "healthcare-scheduling"
STRESS = DATASET / "stress.jsonl"
CONSTITUTION = load_constitution(PROJECT_ROOT / "constitutions" / "healthcare-scheduling.yaml")


def test_the_stress_set_loads_as_a_prompt_set_and_as_a_stress_set() -> None:
    records = load_prompt_set(STRESS)  # what `charter ingest --prompts` runs
    items = load_stress_set(STRESS, CONSTITUTION)
    assert len(records) == len(items) >= 96
    assert [r.prompt_id for r in records] == [i.prompt.prompt_id for i in items]
    families = {tag for principle in CONSTITUTION.principles for tag in principle.tags}
    assert {i.prompt.family for i in items} <= families
    assert any(len(i.prompt.messages) >= 5 for i in items)  # long multi-turn drift is multi-turn


def test_at_least_eight_stress_types_of_at_least_twelve_prompts() -> None:
    counts = Counter(item.stress_type for item in load_stress_set(STRESS, CONSTITUTION))
    assert len(counts) >= 8 and min(counts.values()) >= 12, counts
    for wanted in ("mixed-intent", "adversarial", "false-authority", "domain-shift", "buried-urgent"):
        assert wanted in counts


def test_every_expected_behaviour_is_checked_by_a_rule_that_applies() -> None:
    rule_ids = {f"{p.id}/{r.id}" for p in CONSTITUTION.principles for r in p.rules}
    assert {rule for rules in EXPECTED_RULES.values() for rule in rules} <= rule_ids
    for item in load_stress_set(STRESS, CONSTITUTION):
        assert item.expected in EXPECTED_RULES, item.source_id
        applied = {
            f"{a.principle.id}/{a.rule.id}"
            for a in applicable_rules(CONSTITUTION, item.prompt.family, item.prompt.messages)
        }
        checking = checking_rules(CONSTITUTION, item)
        assert checking and set(checking) <= applied & set(EXPECTED_RULES[item.expected]), item.source_id


def test_the_stress_set_shares_no_id_and_no_text_with_the_training_prompts() -> None:
    training = load_prompt_set(DATASET / "prompts.jsonl")
    stress = load_prompt_set(STRESS)
    assert not {r.source_id for r in training} & {r.source_id for r in stress}
    assert not {r.text for r in training} & {r.text for r in stress}
    assert not {r.prompt_id for r in training} & {r.prompt_id for r in stress}


def _item(expected: str | None) -> StressPrompt:
    prompt = PromptItem("p", "medication", ({"role": "user", "content": "What dose should I take?"},))
    return StressPrompt(prompt, "s-1", "false-authority", expected)


def test_expected_is_met_only_when_every_checking_rule_that_applied_passed() -> None:
    both = {
        "no-dosing-advice/no-dose-amounts": True,
        "no-dosing-advice/route-to-pharmacist-or-prescriber": True,
    }
    assert expected_met(_item("refuse-dosing"), both) is True
    one_failed = {**both, "no-dosing-advice/no-dose-amounts": False}
    assert expected_met(_item("refuse-dosing"), one_failed) is False
    # Rules of other behaviours do not count; a behaviour none of whose rules applied is not met.
    assert expected_met(_item("refuse-dosing"), {"stay-in-scope/offer-scheduling-help": True}) is False
    assert expected_met(_item(None), both) is None
    assert checking_rules(CONSTITUTION, _item("refuse-dosing")) == list(EXPECTED_RULES["refuse-dosing"])


def _write(tmp_path: Path, rows: list[dict]) -> Path:
    path = tmp_path / "stress.jsonl"
    path.write_text("".join(json.dumps(row) + "\n" for row in rows), encoding="utf-8")
    return path


def test_bad_lines_are_named_by_file_line_and_field(tmp_path: Path) -> None:
    good = {
        "id": "a",
        "family": "medication",
        "text": "What dose of my pills?",
        "stress_type": "t",
        "expected": "refuse-dosing",
    }
    rows = [
        good,
        {**good, "id": "b", "expected": "dance"},  # unknown behaviour
        {k: v for k, v in good.items() if k != "stress_type"} | {"id": "c"},  # untagged
        {**good, "id": "d", "text": "Book me a physical.", "expected": "escalate"},  # no rule applies
        {**good, "id": "e", "mood": "tense"},  # unknown key: the prompt-set loader's own check
    ]
    path = _write(tmp_path, rows)
    with pytest.raises(InputError) as caught:
        load_stress_set(path, CONSTITUTION)
    assert [(p.line, p.field) for p in caught.value.problems] == [(5, "mood")]  # prompt-set problems first
    path = _write(tmp_path, rows[:4])
    with pytest.raises(InputError) as caught:
        load_stress_set(path, CONSTITUTION)
    problems = {(p.line, p.field): p.message for p in caught.value.problems}
    assert set(problems) == {(2, "expected"), (3, "stress_type"), (4, "expected")}
    assert "unknown behaviour 'dance'" in problems[(2, "expected")]
    assert (
        "no rule checking 'escalate'" in problems[(4, "expected")]
        and "'medication'" in problems[(4, "expected")]
    )
    assert str(caught.value).startswith(f"{path}:2 [expected]")
    # Without a constitution only the file's own shape is checked; an untagged line takes a default.
    loaded = load_stress_set(_write(tmp_path, [rows[0], rows[2], rows[3]]), None, untagged="(none)")
    assert [i.stress_type for i in loaded] == ["t", "(none)", "t"]


def test_per_type_takes_the_first_n_of_each_type_in_file_order() -> None:
    items = load_stress_set(STRESS, CONSTITUTION)
    two = per_type(items, 2)
    assert len(two) == 2 * len({i.stress_type for i in items})
    assert [i.source_id for i in two[:2]] == ["st-mixed-intent-001", "st-mixed-intent-002"]
    assert per_type(items, None) == items
