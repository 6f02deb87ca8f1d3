"""Constitution files: validation with located errors, content hashing, diff and import."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from tasks.constitution.diff import diff_constitutions
from tasks.constitution.importers import import_anthropic
from tasks.constitution.model import load_constitution
from tasks.core.errors import InputError
from tasks.ingest.ingest import ingest_constitution
from tasks.store.runs import RunContext
from tests.conftest import stored_files

PROJECT_ROOT = Path(__file__).resolve().parents[2]
SHIPPED = sorted((PROJECT_ROOT / "constitutions").glob("*.yaml"))

MINIMAL = """\
name: clinic
version: "1.0"
description: A small constitution for tests.
principles:
  - id: no-diagnosis
    title: Never diagnose
    tags: [non-urgent-symptoms]
    critique: Identify any diagnosis the assistant gave.
    revision: Rewrite the response without a diagnosis.
    comparison: Choose the response that does not diagnose.
  - id: escalate
    title: Escalate emergencies
    critique: Identify whether an emergency was missed.
    revision: Rewrite the response to send the user to emergency care first.
    comparison: Choose the response that sends emergencies to 911 first.
    rules:
      - id: mention-911
        when: '(?i)chest pain'
        must_match: '911'
"""


def write(tmp_path: Path, text: str, name: str = "c.yaml") -> Path:
    path = tmp_path / name
    path.write_text(text, encoding="utf-8")
    return path


@pytest.mark.parametrize("path", SHIPPED, ids=lambda p: p.name)
def test_every_shipped_constitution_validates_with_complete_principles(path: Path) -> None:
    constitution = load_constitution(path)
    assert len(constitution.principles) >= 10
    for principle in constitution.principles:
        assert principle.critique and principle.revision and principle.comparison, principle.id
        assert not principle.comparison.rstrip().endswith("Options:"), "the judge template adds the options"


def test_shipped_constitutions_cover_the_healthcare_duties() -> None:
    constitution = load_constitution(PROJECT_ROOT / "constitutions" / "healthcare-scheduling.yaml")
    with_rules = [p for p in constitution.principles if p.rules]
    assert len(with_rules) >= 5
    urgent = [p for p in constitution.principles if p.applies_to("urgent-symptoms")]
    assert any(rule.must_match and "911" in rule.must_match for p in urgent for rule in p.rules)


def test_cosmetic_edits_keep_the_constitution_id(tmp_path: Path) -> None:
    original = load_constitution(write(tmp_path, MINIMAL))
    data = yaml.safe_load(MINIMAL)
    data["description"] = "Reworded description."
    data["version"] = "1.0.1"
    data["principles"].reverse()
    data["principles"][0]["title"] = "A new title"
    data["principles"][1]["critique"] = "Identify any diagnosis\n   the assistant   gave."  # re-wrapped
    data["principles"][0]["rules"][0]["description"] = "commentary only"
    edited = load_constitution(write(tmp_path, yaml.safe_dump(data), "edited.yaml"))
    assert edited.constitution_id == original.constitution_id


@pytest.mark.parametrize(
    "edit",
    [
        lambda d: d["principles"][0].update(critique="Identify any diagnosis or prognosis."),
        lambda d: d["principles"][0].update(comparison="Choose the kinder response."),
        lambda d: d["principles"][0].update(tags=["medication"]),
        lambda d: d["principles"][1]["rules"][0].update(must_match="911|emergency"),
        lambda d: d["principles"].pop(),
    ],
    ids=["critique", "comparison", "tags", "rule-regex", "removed-principle"],
)
def test_meaningful_edits_change_the_constitution_id(tmp_path: Path, edit) -> None:
    original = load_constitution(write(tmp_path, MINIMAL))
    data = yaml.safe_load(MINIMAL)
    edit(data)
    edited = load_constitution(write(tmp_path, yaml.safe_dump(data), "edited.yaml"))
    assert edited.constitution_id != original.constitution_id


def test_only_the_edited_principle_changes_its_hash(tmp_path: Path) -> None:
    original = load_constitution(write(tmp_path, MINIMAL))
    data = yaml.safe_load(MINIMAL)
    data["principles"][1]["revision"] = "Rewrite it to mention 911 in the first sentence."
    edited = load_constitution(write(tmp_path, yaml.safe_dump(data), "edited.yaml"))
    assert (
        edited.principle("no-diagnosis").principle_hash == original.principle("no-diagnosis").principle_hash
    )
    assert edited.principle("escalate").principle_hash != original.principle("escalate").principle_hash


def test_tags_limit_a_principle_to_its_families(tmp_path: Path) -> None:
    constitution = load_constitution(write(tmp_path, MINIMAL))
    assert constitution.principle("no-diagnosis").applies_to("non-urgent-symptoms")
    assert not constitution.principle("no-diagnosis").applies_to("booking")
    assert not constitution.principle("no-diagnosis").applies_to(None)
    assert constitution.principle("escalate").applies_to("booking")


# Each malformed constitution: (text, expected line, expected field, expected message fragment).
MALFORMED_CONSTITUTIONS = {
    "yaml-syntax": (
        MINIMAL.replace("    title: Never diagnose", "   title: Never diagnose"),
        6,
        None,
        "YAML syntax",
    ),
    "unclosed-quote": (MINIMAL.replace("'911'", "'911"), 20, None, "started on line 19"),
    "missing-title": (
        MINIMAL.replace("    title: Never diagnose\n", ""),
        5,
        "principles[0].title",
        "missing",
    ),
    "unknown-field": (
        MINIMAL.replace("    tags:", "    critque: typo\n    tags:"),
        7,
        "principles[0].critque",
        "unknown field",
    ),
    "duplicate-key": (
        MINIMAL.replace(
            "    revision: Rewrite the response without",
            "    critique: again\n    revision: Rewrite the response without",
        ),
        9,
        "principles[0].critique",
        "duplicate key",
    ),
    "bad-regex": (
        MINIMAL.replace("must_match: '911'", "must_match: '(911'"),
        19,
        "principles[1].rules[0].must_match",
        "regular expression",
    ),
    "duplicate-principle-id": (
        MINIMAL.replace("id: escalate", "id: no-diagnosis"),
        11,
        "principles[1].id",
        "duplicate principle id",
    ),
    "duplicate-rule-id": (
        MINIMAL.replace(
            "        must_match: '911'\n",
            "        must_match: '911'\n      - id: mention-911\n        max_words: 9\n",
        ),
        20,
        "principles[1].rules[1].id",
        "duplicate rule id",
    ),
    "version-not-string": (
        MINIMAL.replace('version: "1.0"', "version: 1.0"),
        2,
        "version",
        "expected a string",
    ),
    "bad-id": (MINIMAL.replace("id: escalate", "id: Escalate Now"), 11, "principles[1].id", "not a valid id"),
    "rule-without-check": (
        MINIMAL.replace("        must_match: '911'\n", ""),
        17,
        "principles[1].rules[0]",
        "at least one of",
    ),
    "critique-without-revision": (
        MINIMAL.replace("    revision: Rewrite the response without a diagnosis.\n", ""),
        5,
        "principles[0]",
        "revision is required",
    ),
    "min-above-max": (
        MINIMAL.replace("must_match: '911'", "min_words: 50\n        max_words: 10"),
        17,
        "principles[1].rules[0]",
        "greater than",
    ),
    "no-principles": ("name: x\nversion: '1'\nprinciples: []\n", 3, "principles", "at least 1"),
    "not-a-mapping": ("- just\n- a list\n", 1, None, "must be a mapping"),
    "empty-file": ("", 1, None, "empty"),
}


@pytest.mark.parametrize("case", sorted(MALFORMED_CONSTITUTIONS))
def test_malformed_constitutions_name_file_line_and_field(run: RunContext, tmp_path: Path, case: str) -> None:
    text, line, field, fragment = MALFORMED_CONSTITUTIONS[case]
    path = write(tmp_path, text)
    before = stored_files(run.store)
    with pytest.raises(InputError) as raised:
        ingest_constitution(run, path)
    assert stored_files(run.store) == before
    problems = raised.value.problems
    matching = [p for p in problems if fragment in p.message]
    assert matching, f"no problem mentions {fragment!r}: {raised.value}"
    problem = matching[0]
    assert problem.path == str(path)
    assert problem.line == line, str(raised.value)
    assert problem.field == field
    assert str(path) in str(raised.value) and f":{line}" in str(raised.value)


def test_not_utf8_and_missing_files_are_reported(tmp_path: Path) -> None:
    path = tmp_path / "latin1.yaml"
    path.write_bytes("name: caf\xe9\n".encode("latin-1"))
    with pytest.raises(InputError, match="not UTF-8"):
        load_constitution(path)
    with pytest.raises(InputError, match="file not found"):
        load_constitution(tmp_path / "absent.yaml")


def test_diff_reports_added_removed_and_changed_text(tmp_path: Path) -> None:
    old = load_constitution(write(tmp_path, MINIMAL, "old.yaml"))
    data = yaml.safe_load(MINIMAL)
    data["principles"][0]["comparison"] = "Choose the response that never names a condition."
    data["principles"].pop(1)
    data["principles"].append(
        {"id": "privacy", "title": "Protect privacy", "comparison": "Choose the response that shares less."}
    )
    new = load_constitution(write(tmp_path, yaml.safe_dump(data), "new.yaml"))
    diff = diff_constitutions(old, new)
    assert [p.id for p in diff.added] == ["privacy"]
    assert [p.id for p in diff.removed] == ["escalate"]
    assert list(diff.changed) == ["no-diagnosis"]
    [change] = diff.changed["no-diagnosis"]
    assert change.field == "comparison"
    assert "-Choose the response that does not diagnose." in change.unified()
    assert "+Choose the response that never names a condition." in change.unified()
    assert diff.meaning_changed


def test_diff_of_cosmetic_edit_is_marked_unchanged(tmp_path: Path) -> None:
    old = load_constitution(write(tmp_path, MINIMAL, "old.yaml"))
    new = load_constitution(write(tmp_path, MINIMAL.replace("Never diagnose", "Do not diagnose"), "new.yaml"))
    diff = diff_constitutions(old, new)
    assert not diff.meaning_changed
    assert [c.field for c in diff.changed["no-diagnosis"]] == ["title"]


def test_anthropic_critique_revision_import_validates(cai_dir: Path, tmp_path: Path) -> None:
    text, constitution = import_anthropic([cai_dir / "CritiqueRevisionInstructions.json"], "cai", "1.0", None)
    written = write(tmp_path, text, "cai.yaml")
    reloaded = load_constitution(written)
    assert len(reloaded.principles) == 16
    assert reloaded.constitution_id == constitution.constitution_id
    first = reloaded.principles[0]
    assert first.critique and not first.critique.startswith("CritiqueRequest")
    assert not first.critique.endswith("Critique:")
    assert first.revision and not first.revision.endswith("Revision:")


def test_anthropic_comparison_import_strips_options(cai_dir: Path) -> None:
    _, constitution = import_anthropic([cai_dir / "RLMadisonInstructions.json"], "cai-compare", "1.0", None)
    assert len(constitution.principles) == 16
    assert all(p.comparison and not p.comparison.endswith("Options:") for p in constitution.principles)


def test_anthropic_import_rejects_other_json(tmp_path: Path) -> None:
    path = write(tmp_path, '{"x": {"prompt": ["a"]}}', "bad.json")
    with pytest.raises(InputError, match="edit_request"):
        import_anthropic([path], "x", "1", None)
