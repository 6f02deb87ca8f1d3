"""Datasets in TRL's formats: from critique chains, SFT (prompt, final revision) and
preferences (final revision preferred over the original response); and merged preference sets.

A chain's final revision that talks about the response instead of being one
(:func:`tasks.critique.revision_check.talks_about_the_response`), or that copies one of the
few-shot dialogues' revisions, is left out of both chain exports, and counted by reason.

Conversational style keeps the messages (TRL applies the chat template); standard style
flattens the prompt to an hh-rlhf transcript ending in "\\n\\nAssistant:".
"""

from __future__ import annotations

import json
from collections import Counter
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path
from typing import Any

from tasks.core.conversation import Message, hh_transcript
from tasks.core.errors import CharterError
from tasks.core.files import write_jsonl_atomically
from tasks.critique.chains import ChainState
from tasks.critique.revision_check import COPIES_AN_EXAMPLE, revision_problem

STYLES = ("conversational", "standard")
# jsonl: one file; hf: a ``save_to_disk`` folder (``load_from_disk``); hub: a folder in the Hub's
# datasets layout (``data/train.jsonl``, and a card for a preference set: ``load_dataset(FOLDER)``).
FORMATS = ("jsonl", "hf", "hub")
HUB_DATA_FILE = "data/train.jsonl"
UNCHANGED = "unchanged by revision"
TALKS_ABOUT_THE_RESPONSE = "talks about the response"


def _lineage(state: ChainState) -> dict[str, Any]:
    return {
        "prompt_id": state.item.prompt.prompt_id,
        "generation_id": state.item.generation_id,
        "principle_ids": [row["principle_id"] for row in state.done],
        "constitution_id": state.done[-1]["constitution_id"],
    }


def left_out_reason(state: ChainState, examples: Sequence[str] = ()) -> str | None:
    """Why a completed chain's final revision is no training target, or None when it is one:
    ``talks about the response (<the check's reason>)``, or it copies one of ``examples``
    (the revisions of the few-shot dialogues the critique run showed)."""
    revision = state.done[-1]["revision"]
    revised = state.done[-2]["revision"] if len(state.done) > 1 else state.item.text
    reason = revision_problem(revision, revised, examples)
    return f"{TALKS_ABOUT_THE_RESPONSE} ({reason})" if reason not in (None, COPIES_AN_EXAMPLE) else reason


def sft_records(
    states: Iterable[ChainState],
    rounds: int,
    style: str = "conversational",
    few_shot: Sequence[Sequence[Message]] = (),
) -> tuple[list[dict[str, Any]], Counter[str]]:
    """One record per completed chain: the prompt and the final revision as the target; also
    how many chains were left out, by reason (see :func:`left_out_reason`; ``few_shot``: the
    dialogues the critique run showed, ``RoundSettings.few_shot``)."""
    records, left_out = [], Counter[str]()
    examples = _example_revisions(few_shot)
    for state in _complete(states, rounds):
        if reason := left_out_reason(state, examples):
            left_out[reason] += 1
            continue
        messages = list(state.item.prompt.messages)
        revision = state.done[-1]["revision"]
        if style == "conversational":
            record = {"messages": [*messages, {"role": "assistant", "content": revision}]}
        else:
            record = {"prompt": hh_transcript(messages), "completion": " " + revision}
        records.append({**record, **_lineage(state)})
    return records, left_out


def pair_record(messages: list[Message], chosen: str, rejected: str, style: str) -> dict[str, Any]:
    """One preference pair in TRL's conversational (messages) or standard (transcript) style."""
    if style == "conversational":
        return {
            "prompt": messages,
            "chosen": [{"role": "assistant", "content": chosen}],
            "rejected": [{"role": "assistant", "content": rejected}],
        }
    return {"prompt": hh_transcript(messages), "chosen": " " + chosen, "rejected": " " + rejected}


def preference_records(
    states: Iterable[ChainState],
    rounds: int,
    style: str = "conversational",
    few_shot: Sequence[Sequence[Message]] = (),
) -> tuple[list[dict[str, Any]], Counter[str]]:
    """Final revision (chosen) over the original (rejected); also how many chains were left out,
    by reason: the revision left the response unchanged (no preference to learn from), or one
    of :func:`left_out_reason`'s."""
    records, left_out = [], Counter[str]()
    examples = _example_revisions(few_shot)
    for state in _complete(states, rounds):
        original, revision = state.item.text, state.done[-1]["revision"]
        reason = UNCHANGED if revision.strip() == original.strip() else left_out_reason(state, examples)
        if reason:
            left_out[reason] += 1
            continue
        record = pair_record(list(state.item.prompt.messages), revision, original, style)
        records.append({**record, **_lineage(state)})
    return records, left_out


# What a preference-set record carries besides the pair: TRL's DPOTrainer ignores these
# columns, a reward model trained on soft labels reads target and weight.
_PREFERENCE_SET_LINEAGE = (
    "target",
    "weight",
    "pair_id",
    "set_id",
    "decided_by",
    "label_ids",
    "principle_ids",
    "constitution_ids",
)


def preference_set_records(
    rows: Iterable[Mapping[str, Any]], style: str = "conversational"
) -> list[dict[str, Any]]:
    """A merged preference set (``preferences`` rows) in TRL's preference format, with its lineage."""
    if style not in STYLES:
        raise CharterError(f"unknown export style {style!r}; styles: {', '.join(STYLES)}")
    return [
        {
            **pair_record(json.loads(row["prompt"]), row["chosen"], row["rejected"], style),
            **{key: row[key] for key in _PREFERENCE_SET_LINEAGE},
        }
        for row in rows
    ]


def _example_revisions(few_shot: Sequence[Sequence[Message]]) -> list[str]:
    return [dialogue[-1]["content"] for dialogue in few_shot]


def _complete(states: Iterable[ChainState], rounds: int) -> list[ChainState]:
    return [state for state in states if len(state.done) == rounds]


def write_records(records: list[dict[str, Any]], output: str | Path, fmt: str) -> Path:
    """JSONL (one record per line), a Hugging Face ``datasets`` folder (``load_from_disk``) or a
    folder in the Hub's layout, the JSONL at ``data/train.jsonl`` (``load_dataset(FOLDER)``)."""
    if fmt not in FORMATS:
        raise CharterError(f"unknown export format {fmt!r}; formats: {', '.join(FORMATS)}")
    if not records:
        raise CharterError("nothing to export: the selection is empty")
    output = Path(output)
    if fmt == "jsonl":
        write_jsonl_atomically(output, records)
    elif fmt == "hub":
        (output / HUB_DATA_FILE).parent.mkdir(parents=True, exist_ok=True)
        write_jsonl_atomically(output / HUB_DATA_FILE, records)
    else:
        from datasets import Dataset

        Dataset.from_list(records).save_to_disk(str(output))
    return output
