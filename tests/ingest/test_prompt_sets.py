"""Prompt sets: the bundled healthcare set and located errors for malformed ones."""

from __future__ import annotations

import json
from collections import Counter
from pathlib import Path

import pytest

from tasks.core.errors import InputError
from tasks.ingest.ingest import ingest_prompt_set
from tasks.ingest.prompt_sets import load_prompt_set
from tasks.store.runs import RunContext
from tests.conftest import stored_files

BUNDLED = Path(__file__).resolve().parents[2] / "datasets" / "healthcare-scheduling" / "prompts.jsonl"
GOOD = {"id": "p1", "family": "booking", "text": "Can I book a physical?"}


def test_bundled_set_covers_every_family_with_distinct_prompts() -> None:
    records = load_prompt_set(BUNDLED)
    assert len(records) >= 150
    families = Counter(r.family for r in records)
    assert len(families) >= 10 and min(families.values()) >= 10
    assert len({r.prompt_id for r in records}) == len(records)
    assert any(len(r.messages) > 1 for r in records), "some prompts are multi-turn"
    assert records[0].prompt_set == "healthcare-scheduling"


MALFORMED = {
    "missing-family": ([{k: v for k, v in GOOD.items() if k != "family"}], 1, "family", "missing"),
    "duplicate-id": ([GOOD, {**GOOD, "text": "Another one"}], 2, "id", "duplicate id 'p1' (first on line 1)"),
    "messages-disagree-with-text": (
        [{**GOOD, "messages": [{"role": "user", "content": "Something else"}]}],
        1,
        "messages",
        "last user message must equal text",
    ),
    "bad-role": (
        [{**GOOD, "messages": [{"role": "doctor", "content": GOOD["text"]}]}],
        1,
        "messages",
        "roles are",
    ),
    "text-not-string": ([{**GOOD, "text": ["a"]}], 1, "text", "expected a string"),
}


@pytest.mark.parametrize("case", sorted(MALFORMED))
def test_malformed_prompt_sets_are_located_and_change_nothing(
    run: RunContext, tmp_path: Path, case: str
) -> None:
    rows, line, field, fragment = MALFORMED[case]
    path = tmp_path / "prompts.jsonl"
    path.write_text("".join(json.dumps(r) + "\n" for r in rows), encoding="utf-8")
    before = stored_files(run.store)
    with pytest.raises(InputError) as raised:
        ingest_prompt_set(run, path)
    problem = next(p for p in raised.value.problems if fragment in p.message)
    assert (problem.path, problem.line, problem.field) == (str(path), line, field)
    assert stored_files(run.store) == before
