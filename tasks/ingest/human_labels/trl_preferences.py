"""TRL's preference format, as charter exports it (:mod:`tasks.store.exports`): one labelled pair
per row, ``chosen`` preferred over ``rejected``.

A JSONL file or a Hugging Face ``datasets`` folder (``save_to_disk``), in either style:
standard (``prompt`` an hh-rlhf transcript ending in ``"\\n\\nAssistant:"``, ``chosen`` and
``rejected`` strings that complete it after one space) or conversational (``prompt`` a list of
messages, ``chosen`` and ``rejected`` lists of one assistant message). Reading undoes what the
export did (the transcript back to messages, the leading space dropped), so a pair exported and
imported again has its own response texts, prompt id and pair id. Other columns (a preference
set's ``target``, ``weight``, lineage ids) are ignored, except ``annotator`` and ``family``.

TRL rows say which response was chosen, never where it was shown, so the pair is stored with
its responses in id order. The annotator is the row's ``annotator`` column, else
``--annotator``, else ``trl``.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

from tasks.core.conversation import Message, messages_problem, parse_hh_transcript
from tasks.core.errors import Problem
from tasks.core.jsonl import read_jsonl
from tasks.ingest.human_labels.label_rows import LabelOrigin, RowOutcome, human_label_row
from tasks.ingest.human_labels.sources import (
    conversation,
    datasets_folder_rows,
    in_id_order,
    text_problem,
)

_COMPLETIONS = ("chosen", "rejected")


def trl_rows(
    path: str | Path, origin: LabelOrigin, annotator: str | None
) -> Iterator[tuple[int, Any, RowOutcome]]:
    """One label per row of a TRL preference file or ``datasets`` folder."""
    source = str(path)
    if Path(path).is_dir():
        rows = datasets_folder_rows(path)
    else:
        rows = ((line, "line", item) for line, item in read_jsonl(path))
    for number, unit, record in rows:
        if isinstance(record, Problem):
            yield number, None, [record]
            continue
        yield number, record, _label(record, source, number, unit, origin, annotator)


def _label(
    record: dict[str, Any], source: str, row: int, unit: str, origin: LabelOrigin, annotator: str | None
) -> RowOutcome:
    def problem(field: str | None, message: str) -> list[Problem]:
        return [Problem(source, message, row, field, unit)]

    for field in ("prompt", *_COMPLETIONS):
        if record.get(field) is None:
            hint = " (full chosen/rejected transcripts are --format hh-rlhf)" if field == "prompt" else ""
            return problem(field, f"required field is missing{hint}")
    conversational = isinstance(record["prompt"], list)
    messages = _prompt(record["prompt"], source, row, unit)
    if isinstance(messages, Problem):
        return [messages]
    texts = []
    for field in _COMPLETIONS:
        text = _completion(record[field], conversational, source, row, field, unit)
        if isinstance(text, Problem):
            return [text]
        texts.append(text)
    chosen, rejected = texts
    if chosen == rejected:
        return problem("rejected", "chosen and rejected are the same response")
    row_annotator = record.get("annotator")
    bad_annotator = row_annotator is not None and text_problem(row_annotator, source, row, "annotator", unit)
    if bad_annotator:
        return [bad_annotator]
    response_a, response_b, choice = in_id_order(chosen, rejected)
    label = human_label_row(
        messages=messages,
        response_a=response_a,
        response_b=response_b,
        choice=choice,
        annotator=row_annotator or annotator or "trl",
        origin=origin,
        source_row=row,
    )
    family = record.get("family")
    return label, messages, family if isinstance(family, str) and family.strip() else None


def _prompt(value: Any, source: str, row: int, unit: str) -> list[Message] | Problem:
    """The conversation: a list of messages, or a standard-style transcript parsed back into one."""
    if isinstance(value, list):
        return conversation(value, source, row, "prompt", unit)
    problem = text_problem(value, source, row, "prompt", unit)
    if problem:
        return problem
    system, value = _system_turn(value)
    try:
        turns = system + parse_hh_transcript(value)
    except ValueError as exc:
        return Problem(source, f"not an hh-rlhf transcript: {exc}", row, "prompt", unit)
    if not turns or turns[-1] != {"role": "assistant", "content": ""}:
        message = "a standard-style prompt must end with an open '\\n\\nAssistant:' turn"
        return Problem(source, message, row, "prompt", unit)
    messages = turns[:-1]
    reason = messages_problem(messages)
    return Problem(source, reason, row, "prompt", unit) if reason else messages


def _system_turn(transcript: str) -> tuple[list[Message], str]:
    """A leading ``System:`` turn (which charter's export writes for a system message) split off:
    hh-rlhf transcripts have none, so :func:`parse_hh_transcript` does not read one."""
    head, human = "\n\nSystem: ", transcript.find("\n\nHuman:")
    if not transcript.startswith(head) or human < 0:
        return [], transcript
    return [{"role": "system", "content": transcript[len(head) : human]}], transcript[human:]


def _completion(
    value: Any, conversational: bool, source: str, row: int, field: str, unit: str
) -> str | Problem:
    """The response text: one assistant message's content, or the string after its leading space."""
    if conversational:
        messages = _without_nones(value)
        if (
            not isinstance(messages, list)
            or len(messages) != 1
            or not isinstance(messages[0], dict)
            or set(messages[0]) != {"role", "content"}
            or messages[0]["role"] != "assistant"
        ):
            message = "a conversational completion is a list of one {role: assistant, content} message"
            return Problem(source, message, row, field, unit)
        text = messages[0]["content"]
    else:
        if isinstance(value, list):
            message = "the prompt is a transcript (standard style), so this must be a string"
            return Problem(source, message, row, field, unit)
        text = value
    problem = text_problem(text, source, row, field, unit)
    if problem:
        return problem
    # The standard style joins completion to prompt with one space, which is not the response's.
    return text[1:] if not conversational and text.startswith(" ") else text


def _without_nones(value: Any) -> Any:
    """Messages without their None-valued keys (a ``datasets`` struct column has every row's keys)."""
    if not isinstance(value, list):
        return value
    return [{k: v for k, v in m.items() if v is not None} if isinstance(m, dict) else m for m in value]
