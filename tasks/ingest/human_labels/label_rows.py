"""The ``human_labels`` row every format's parser builds, and what a parser yields per row.

Kept apart from the import logic so each format's module can build rows without importing
the module that dispatches to it.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from tasks.core.conversation import orientation_free_vote, pair_id, response_id
from tasks.core.errors import Problem
from tasks.core.hashing import content_id
from tasks.ingest.prompt_sets import prompt_record


@dataclass(frozen=True)
class LabelOrigin:
    """Where a label came from: enough to find the row again and to make re-imports idempotent."""

    source_format: str
    source_file: str
    source_sha256: str


# Each format's row parser yields (row number, original record, outcome), where the outcome is
# either the problems with that row or (label row, prompt messages, family or None).
RowOutcome = list[Problem] | tuple[dict[str, Any], list[dict[str, str]], str | None]


def human_label_row(
    *,
    messages: list[dict[str, str]],
    response_a: str,
    response_b: str,
    choice: str,
    annotator: str,
    origin: LabelOrigin,
    source_row: int,
    confidence: float | None = None,
    comment: str | None = None,
) -> dict[str, Any]:
    """One ``human_labels`` row; ``choice`` is relative to the order of ``response_a``/``response_b``."""
    prompt = prompt_record(messages, prompt_set="labels", family=None).prompt_id
    a_id, b_id = response_id(response_a), response_id(response_b)
    pair = pair_id(prompt, a_id, b_id)
    preferred = {"a": a_id, "b": b_id, "tie": None}[choice]
    return {
        "label_id": content_id(
            "human_label",
            {
                "pair_id": pair,
                "annotator": annotator,
                "preferred": preferred,
                "source_sha256": origin.source_sha256,
                "source_row": source_row,
            },
        ),
        "pair_id": pair,
        "prompt_id": prompt,
        "response_a_id": a_id,
        "response_b_id": b_id,
        "response_a": response_a,
        "response_b": response_b,
        "choice": choice,
        "preferred_id": preferred,
        "vote": orientation_free_vote(preferred, a_id, b_id),
        "annotator": annotator,
        "confidence": confidence,
        "comment": comment,
        "source_format": origin.source_format,
        "source_file": origin.source_file,
        "source_sha256": origin.source_sha256,
        "source_row": source_row,
    }
