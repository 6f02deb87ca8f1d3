"""Anthropic's hh-rlhf format: JSONL lines of two full transcripts, ``chosen`` and ``rejected``."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

from tasks.core.conversation import Message, messages_problem, parse_hh_transcript, response_id
from tasks.core.errors import Problem
from tasks.core.records import checked_jsonl
from tasks.ingest.human_labels.label_rows import LabelOrigin, RowOutcome, human_label_row

_TRANSCRIPTS = ("chosen", "rejected")


def hh_rlhf_rows(
    path: str | Path, origin: LabelOrigin, annotator: str | None
) -> Iterator[tuple[int, Any, RowOutcome]]:
    """hh-rlhf lines hold two full transcripts that differ only in the final assistant reply.

    The order the crowd worker saw is not in the data, so the pair is stored in a canonical
    order (by response id) and the choice points at the chosen reply.
    """
    source = str(path)
    required = dict.fromkeys(_TRANSCRIPTS, str)
    for line, item, problems in checked_jsonl(path, required=required, optional={}):
        if problems or item is None:
            yield line, item, problems
            continue
        transcripts = _transcripts(item, source, line)
        if isinstance(transcripts, Problem):
            yield line, item, [transcripts]
            continue
        chosen, rejected = transcripts
        problem = _pair_problem(chosen, rejected)
        if problem:
            field, message = problem
            yield line, item, [Problem(source, message, line, field)]
            continue
        yield line, item, (_label(chosen, rejected, origin, annotator, line), chosen[:-1], None)


def _transcripts(item: dict[str, Any], source: str, line: int) -> tuple[list[Message], ...] | Problem:
    """Both transcripts as messages, or the problem with the first that is not a transcript."""
    parsed = []
    for name in _TRANSCRIPTS:
        try:
            parsed.append(parse_hh_transcript(item[name]))
        except ValueError as exc:
            return Problem(source, f"not an hh-rlhf transcript: {exc}", line, name)
    return tuple(parsed)


def _label(
    chosen: list[Message], rejected: list[Message], origin: LabelOrigin, annotator: str | None, line: int
) -> dict[str, Any]:
    chosen_text, rejected_text = chosen[-1]["content"], rejected[-1]["content"]
    chosen_first = response_id(chosen_text) < response_id(rejected_text)
    return human_label_row(
        messages=chosen[:-1],
        response_a=chosen_text if chosen_first else rejected_text,
        response_b=rejected_text if chosen_first else chosen_text,
        choice="a" if chosen_first else "b",
        annotator=annotator or "hh-rlhf",
        origin=origin,
        source_row=line,
    )


def _pair_problem(chosen: list[Message], rejected: list[Message]) -> tuple[str, str] | None:
    """The field at fault and what is wrong with it, or None for a usable pair."""
    for name, turns in (("chosen", chosen), ("rejected", rejected)):
        if len(turns) < 2 or turns[-1]["role"] != "assistant":
            return name, f"{name} must end with an Assistant reply after at least one Human turn"
        if not turns[-1]["content"].strip():
            # An empty reply would be stored, paired and trained on as if it were a response.
            return name, f"the final Assistant reply of {name} is empty"
    if chosen[:-1] != rejected[:-1]:
        return "rejected", "chosen and rejected differ before their final Assistant reply"
    if chosen[-1]["content"] == rejected[-1]["content"]:
        return "rejected", "chosen and rejected have the same final reply"
    reason = messages_problem(chosen[:-1])
    return ("chosen", reason) if reason else None
