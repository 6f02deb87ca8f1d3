"""Pairing stored responses: modes, per-prompt sampling, revisions, identical texts, human pairs."""

from __future__ import annotations

import json

import pytest

from tasks.core.conversation import pair_id, response_id
from tasks.core.errors import CharterError
from tasks.ingest.prompt_sets import prompt_record
from tasks.label.pairs import FLAGGED_REVISIONS, PairSettings, plan_pairs
from tasks.store.store import Store


def _prompt(store: Store, text: str, family: str) -> str:
    record = prompt_record(
        [{"role": "user", "content": text}], prompt_set="set", family=family, source_id=text
    )
    store.append("prompts", [record.row()], "r")
    return record.prompt_id


def _generations(store: Store, prompt: str, texts: list[str]) -> list[str]:
    rows = [
        {
            "generation_id": f"g-{prompt[:8]}-{index}",
            "prompt_id": prompt,
            "model": "m",
            "backend": "hf",
            "params": "{}",
            "sample_index": index,
            "text": text,
            "finish_reason": "stop",
            "num_tokens": 3,
        }
        for index, text in enumerate(texts)
    ]
    store.append("generations", rows, "r")
    return [row["generation_id"] for row in rows]


def _revision(store: Store, generation: str, prompt: str, round_index: int, text: str) -> None:
    store.append(
        "critiques",
        [
            {
                "critique_id": f"c-{generation}-{round_index}",
                "generation_id": generation,
                "prompt_id": prompt,
                "round": round_index,
                "principle_id": "p",
                "principle_hash": "h",
                "constitution_id": "c",
                "model": "m",
                "input_text": "x",
                "critique": "critique",
                "revision": text,
            }
        ],
        "r",
    )


SELECTION = {"prompt_set": "set", "families": None, "limit": None}


def test_all_pairs_every_two_distinct_candidates_including_final_revisions(store: Store) -> None:
    prompt = _prompt(store, "Book me in", "booking")
    first = _generations(store, prompt, ["one", "two", "one"])[0]  # "one" twice: one candidate
    _revision(store, first, prompt, 0, "one, revised")
    _revision(store, first, prompt, 1, "one, revised twice")  # only the last round is a candidate
    plan = plan_pairs(store, SELECTION, PairSettings())
    # Candidates: one, one revised twice, two -> 3 choose 2 = 3 pairs.
    texts = {frozenset((p.response_a, p.response_b)) for p in plan.pairs}
    assert texts == {
        frozenset(("one", "two")),
        frozenset(("one", "one, revised twice")),
        frozenset(("two", "one, revised twice")),
    }
    for pair in plan.pairs:
        assert pair.response_a_id == response_id(pair.response_a) < pair.response_b_id
        assert pair.pair_id == pair_id(prompt, pair.response_b_id, pair.response_a_id)
        assert pair.prompt.family == "booking"


def test_revision_mode_pairs_each_revision_with_its_original_and_skips_unchanged(store: Store) -> None:
    prompt = _prompt(store, "Cancel my visit", "rescheduling-cancelling")
    first, second = _generations(store, prompt, ["draft one", "draft two"])
    _revision(store, first, prompt, 0, "better one")
    _revision(store, second, prompt, 0, "  draft two\n")  # unchanged but for whitespace
    plan = plan_pairs(store, SELECTION, PairSettings(mode="revision"))
    assert [{p.response_a, p.response_b} for p in plan.pairs] == [{"draft one", "better one"}]
    assert plan.skipped == {"identical responses": 1}


def test_revisions_that_talk_about_the_response_are_no_candidates_and_are_counted(store: Store) -> None:
    prompt = _prompt(store, "Move my Friday visit", "rescheduling-cancelling")
    first, second = _generations(store, prompt, ["draft one", "draft two"])
    _revision(store, first, prompt, 0, "Sure: which day next week suits you?")
    _revision(store, second, prompt, 0, "The original response never asked which day suits the user.")
    revision_pairs = plan_pairs(store, SELECTION, PairSettings(mode="revision"))
    assert [{p.response_a, p.response_b} for p in revision_pairs.pairs] == [
        {"draft one", "Sure: which day next week suits you?"}
    ]
    assert revision_pairs.skipped == {FLAGGED_REVISIONS: 1}
    every_pair = plan_pairs(store, SELECTION, PairSettings())
    assert len(every_pair.pairs) == 3  # draft one, draft two and the one reply: 3 choose 2
    assert every_pair.skipped == {FLAGGED_REVISIONS: 1}


def test_per_prompt_sampling_is_seeded_and_bounded(store: Store) -> None:
    for index in range(3):
        prompt = _prompt(store, f"question {index}", "booking")
        _generations(store, prompt, [f"reply {index}.{k}" for k in range(5)])  # 10 pairs each
    full = plan_pairs(store, SELECTION, PairSettings())
    assert len(full.pairs) == 30
    sampled = plan_pairs(store, SELECTION, PairSettings(per_prompt=2, seed=1))
    counts: dict[str, int] = {}
    for pair in sampled.pairs:
        counts[pair.prompt.prompt_id] = counts.get(pair.prompt.prompt_id, 0) + 1
    assert sorted(counts.values()) == [2, 2, 2]
    again = plan_pairs(store, SELECTION, PairSettings(per_prompt=2, seed=1))
    assert [p.pair_id for p in again.pairs] == [p.pair_id for p in sampled.pairs]
    other = {
        tuple(p.pair_id for p in plan_pairs(store, SELECTION, PairSettings(per_prompt=2, seed=s)).pairs)
        for s in range(2, 8)
    }
    assert len(other) > 1


def test_human_mode_takes_each_labelled_pair_once(store: Store) -> None:
    from tasks.ingest.human_labels import LabelOrigin, human_label_row

    messages = [{"role": "user", "content": "Is my MRI covered?"}]
    store.append("prompts", [prompt_record(messages, "labels", "insurance-billing").row()], "r")
    origin = LabelOrigin("charter", "f.jsonl", "sha")
    rows = [
        human_label_row(
            messages=messages,
            response_a="Ask billing.",
            response_b="Yes.",
            choice=c,
            annotator=who,
            origin=origin,
            source_row=row,
        )
        for row, (c, who) in enumerate([("a", "ana"), ("b", "bo")])
    ]
    rows.append(
        human_label_row(
            messages=messages,
            response_a="Same",
            response_b="Same ",
            choice="tie",
            annotator="ana",
            origin=origin,
            source_row=9,
        )
    )
    store.append("human_labels", rows, "r")
    plan = plan_pairs(store, {"prompt_set": None}, PairSettings(mode="human"))
    assert [(p.pair_id, p.prompt.family) for p in plan.pairs] == [(rows[0]["pair_id"], "insurance-billing")]
    assert json.loads(json.dumps(plan.pairs[0].prompt.messages)) == messages
    assert plan.skipped == {"identical responses": 1}


def test_modes_need_their_inputs(store: Store) -> None:
    with pytest.raises(CharterError, match="needs a prompt set"):
        plan_pairs(store, {"prompt_set": None}, PairSettings())
    with pytest.raises(CharterError, match="no human labels"):
        plan_pairs(store, {"prompt_set": None}, PairSettings(mode="human"))
    _prompt(store, "hello", "booking")
    with pytest.raises(CharterError, match="run `charter generate` first"):
        plan_pairs(store, SELECTION, PairSettings())
