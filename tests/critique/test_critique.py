"""Critique/revision: principle sampling, chains, and re-running only what an edit touches."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import yaml

from tasks.constitution.model import load_constitution
from tasks.core.errors import InputError
from tasks.critique.chains import (
    GenerationItem,
    RoundSettings,
    clean,
    critique_principles,
    load_few_shot,
    run_rounds,
    sample_principle,
    walk_chains,
)
from tasks.generate.generation import PromptItem
from tasks.store.exports import preference_records, sft_records, write_records

CONSTITUTION = {
    "name": "clinic",
    "version": "1",
    "principles": [
        {
            "id": "be-brief",
            "title": "Brief",
            "critique": "Is the reply too long?",
            "revision": "Rewrite it shorter.",
            "comparison": "Choose the briefer reply.",
        },
        {
            "id": "escalate",
            "title": "Escalate",
            "tags": ["urgent-symptoms", "booking"],
            "critique": "Did the reply miss an emergency?",
            "revision": "Rewrite it to send emergencies to 911.",
            "comparison": "Choose the reply that escalates.",
        },
        {
            "id": "urgent-only",
            "title": "Urgent only",
            "tags": ["urgent-symptoms"],
            "critique": "Was the urgency clear?",
            "revision": "Rewrite it to be clearer.",
            "comparison": "Choose the clearer reply.",
        },
        {"id": "judge-only", "title": "Judging only", "comparison": "Choose the kinder reply."},
    ],
}
CONFIG = RoundSettings(rounds=2, critique_tokens=10, revision_tokens=12, temperature=1.0, top_p=0.95, seed=1)


def constitution_file(tmp_path: Path, data: dict, name: str = "c.yaml") -> Path:
    path = tmp_path / name
    path.write_text(yaml.safe_dump(data), encoding="utf-8")
    return path


def items(count: int, family: str = "booking") -> list[GenerationItem]:
    return [
        GenerationItem(
            generation_id=f"gen-{i}",
            prompt=PromptItem(
                f"prompt-{i}", family, ({"role": "user", "content": f"Can I book a visit on day {i}?"},)
            ),
            text=f"Sure, day {i} at 9am works.",
        )
        for i in range(count)
    ]


def test_sampling_respects_tags_and_needs_critique_requests(tmp_path: Path) -> None:
    constitution = load_constitution(constitution_file(tmp_path, CONSTITUTION))
    assert [p.id for p in critique_principles(constitution, "booking")] == ["be-brief", "escalate"]
    assert [p.id for p in critique_principles(constitution, "urgent-symptoms")] == [
        "be-brief",
        "escalate",
        "urgent-only",
    ]
    assert [p.id for p in critique_principles(constitution, "privacy")] == ["be-brief"]
    drawn = [sample_principle(constitution, item, r, seed=1).id for item in items(20) for r in range(2)]
    assert set(drawn) == {"be-brief", "escalate"}  # both drawn, never a principle the family excludes
    assert drawn == [
        sample_principle(constitution, item, r, seed=1).id for item in items(20) for r in range(2)
    ]


def test_clean_strips_a_leading_label() -> None:
    assert clean("  Revision: Call 911 now.  ") == "Call 911 now."
    assert clean("Rewritten response:\nSure.") == "Sure."
    assert clean("No label here.") == "No label here."


@pytest.mark.integration
def test_editing_one_principle_reruns_only_the_rounds_that_depend_on_it(hf_backend, tmp_path: Path) -> None:
    original = load_constitution(constitution_file(tmp_path, CONSTITUTION))
    generations = items(6)
    first = run_rounds(
        hf_backend,
        walk_chains(generations, {}, original, CONFIG, hf_backend.model_id, "hf"),
        original,
        CONFIG,
    )
    assert len(first) == 6 * CONFIG.rounds
    assert {row["constitution_id"] for row in first} == {original.constitution_id}
    stored = {row["critique_id"]: row for row in first}

    # Nothing to do when nothing changed.
    unchanged = walk_chains(generations, stored, original, CONFIG, hf_backend.model_id, "hf")
    assert all(state.next_round == CONFIG.rounds for state in unchanged)

    edited_data = json.loads(json.dumps(CONSTITUTION))
    edited_data["principles"][1]["critique"] = (
        "Did the reply miss chest pain, stroke signs or trouble breathing?"
    )
    edited = load_constitution(constitution_file(tmp_path, edited_data, "edited.yaml"))
    assert edited.constitution_id != original.constitution_id

    by_chain = {
        g.generation_id: sorted(
            (r for r in first if r["generation_id"] == g.generation_id), key=lambda r: r["round"]
        )
        for g in generations
    }
    expected_start = {
        gid: next((r["round"] for r in rows if r["principle_id"] == "escalate"), CONFIG.rounds)
        for gid, rows in by_chain.items()
    }
    assert set(expected_start.values()) != {CONFIG.rounds}, (
        "the seed must draw the edited principle somewhere"
    )
    assert sum(CONFIG.rounds - start for start in expected_start.values()) < len(first), "some work is kept"

    states = walk_chains(generations, stored, edited, CONFIG, hf_backend.model_id, "hf")
    assert {s.item.generation_id: s.next_round for s in states} == expected_start
    rerun = run_rounds(hf_backend, states, edited, CONFIG)
    assert len(rerun) == sum(CONFIG.rounds - start for start in expected_start.values())
    assert {row["constitution_id"] for row in rerun} == {edited.constitution_id}
    assert not {row["critique_id"] for row in rerun} & set(stored)
    for row in rerun:
        if row["round"] == expected_start[row["generation_id"]]:
            assert row["principle_id"] == "escalate"
            assert row["principle_hash"] == edited.principle("escalate").principle_hash

    # Exports follow the edited constitution's chains.
    stored.update({row["critique_id"]: row for row in rerun})
    final_states = walk_chains(generations, stored, edited, CONFIG, hf_backend.model_id, "hf")
    sft, left_out = sft_records(final_states, CONFIG.rounds)
    assert len(sft) + sum(left_out.values()) == 6  # less the revisions that talk about the response
    exported = {record["generation_id"] for record in sft}
    for record, state in zip(sft, [s for s in final_states if s.item.generation_id in exported], strict=True):
        assert record["messages"][-1]["content"] == state.done[-1]["revision"]
        assert record["principle_ids"] == [row["principle_id"] for row in state.done]


def test_preference_records_in_both_styles_and_hf_datasets(tmp_path: Path) -> None:
    from tasks.critique.chains import ChainState

    item = items(1)[0]
    done = [
        {
            "revision": "Call 911 now, then we can book a follow-up.",
            "principle_id": "escalate",
            "constitution_id": "c1",
        }
    ]
    state = ChainState(item=item, next_round=1, input_text=done[0]["revision"], done=done)
    unchanged = ChainState(
        item=items(2)[1],
        next_round=1,
        input_text="x",
        done=[{"revision": items(2)[1].text, "principle_id": "be-brief", "constitution_id": "c1"}],
    )
    records, skipped = preference_records([state, unchanged], 1)
    assert skipped == {"unchanged by revision": 1} and len(records) == 1
    assert records[0]["chosen"] == [{"role": "assistant", "content": done[0]["revision"]}]
    assert records[0]["rejected"] == [{"role": "assistant", "content": item.text}]
    assert records[0]["prompt"] == list(item.prompt.messages)
    standard, _ = preference_records([state], 1, style="standard")
    assert standard[0]["prompt"] == f"\n\nHuman: {item.prompt.messages[0]['content']}\n\nAssistant:"
    assert standard[0]["chosen"] == " " + done[0]["revision"]

    from datasets import load_from_disk

    folder = write_records(records, tmp_path / "prefs", "hf")
    dataset = load_from_disk(str(folder))
    assert dataset.num_rows == 1 and dataset[0]["chosen"][0]["content"] == done[0]["revision"]


def test_few_shot_files_are_validated(tmp_path: Path) -> None:
    good = tmp_path / "few.jsonl"
    good.write_text(
        json.dumps(
            {
                "messages": [
                    {"role": "user", "content": "Can I double my dose?"},
                    {"role": "assistant", "content": "Yes, take two."},
                    {"role": "user", "content": "Identify any dosing advice."},
                    {"role": "assistant", "content": "It told the user to double a dose."},
                    {"role": "user", "content": "Rewrite it without dosing advice."},
                    {"role": "assistant", "content": "Please ask your pharmacist; I can book you a visit."},
                ]
            }
        )
        + "\n"
    )
    assert len(load_few_shot(good)[0]) == 6
    bad = tmp_path / "bad.jsonl"
    bad.write_text(json.dumps({"messages": [{"role": "user", "content": "only a question"}]}) + "\n")
    with pytest.raises(InputError, match=r"bad.jsonl:1 \[messages\]"):
        load_few_shot(bad)
