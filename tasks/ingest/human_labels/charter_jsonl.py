"""charter's own label format: JSONL rows of a prompt (or messages), two responses and a choice."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

from tasks.core.conversation import messages_problem
from tasks.core.errors import Problem
from tasks.core.records import checked_jsonl
from tasks.ingest.human_labels.label_rows import LabelOrigin, RowOutcome, human_label_row

CHOICES = ("a", "b", "tie")
_REQUIRED = {"response_a": str, "response_b": str, "choice": str}
_OPTIONAL = {
    "prompt": str,
    "messages": list,
    "annotator": str,
    "confidence": float,
    "comment": str,
    "family": str,
}


def charter_rows(
    path: str | Path, origin: LabelOrigin, annotator: str | None
) -> Iterator[tuple[int, Any, RowOutcome]]:
    """One label per line; every field problem of a line is reported, not only the first."""
    source = str(path)
    for line, item, problems in checked_jsonl(path, required=_REQUIRED, optional=_OPTIONAL):
        if item is None:
            yield line, None, problems
            continue
        has_prompt, has_messages = item.get("prompt") is not None, item.get("messages") is not None
        if has_prompt == has_messages:
            problems.append(Problem(source, "give exactly one of prompt or messages", line, "prompt"))
        if has_messages and isinstance(item["messages"], list):
            reason = messages_problem(item["messages"])
            if reason:
                problems.append(Problem(source, reason, line, "messages"))
        if isinstance(item.get("choice"), str) and item["choice"] not in CHOICES:
            problems.append(Problem(source, f"{item['choice']!r} is not one of a, b, tie", line, "choice"))
        row_annotator = item.get("annotator") or annotator
        if not row_annotator and "annotator" not in {p.field for p in problems}:
            problems.append(
                Problem(source, "required field is missing (or pass --annotator)", line, "annotator")
            )
        confidence = item.get("confidence")
        if (
            isinstance(confidence, int | float)
            and not isinstance(confidence, bool)
            and not 0 <= confidence <= 1
        ):
            problems.append(Problem(source, f"{confidence} is outside [0, 1]", line, "confidence"))
        if not problems and item["response_a"] == item["response_b"]:
            problems.append(Problem(source, "response_a and response_b are identical", line, "response_b"))
        if problems:
            yield line, item, problems
            continue
        messages = item.get("messages") or [{"role": "user", "content": item["prompt"]}]
        label = human_label_row(
            messages=messages,
            response_a=item["response_a"],
            response_b=item["response_b"],
            choice=item["choice"],
            annotator=row_annotator,
            origin=origin,
            source_row=line,
            confidence=None if confidence is None else float(confidence),
            comment=item.get("comment"),
        )
        yield line, item, (label, messages, item.get("family"))
