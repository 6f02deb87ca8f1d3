"""The ``human_labels`` row every format's parser builds, and what a parser yields per row.

Kept apart from the import logic so each format's module can build rows without importing
the module that dispatches to it.

A label's id says which vote it is, not which file carried it. Annotation tools export
cumulatively (each Label Studio or Argilla export holds every earlier annotation plus the
new ones) and files get re-saved (CRLF line endings, a BOM, another folder), so an id that
hashed the file would add every old vote again on each import. Where the tool gives the
annotation an id of its own, the label id hashes that id with the vote; otherwise it hashes
the vote's content (pair, annotator, preferred response, confidence, comment). Either way
a re-import adds only what is new, and a changed vote is a new label whose later
``created_at`` makes it the annotator's current one in ``human_votes``. The file, its
sha256 and the row stay in the row as provenance.
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
    """Where a label came from: enough to find the row again (provenance, not identity)."""

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
    identity: dict[str, Any] | None = None,
    a_shown_first: bool = False,
    ai_shown: bool | None = None,
) -> dict[str, Any]:
    """One ``human_labels`` row; ``choice`` is relative to the order of ``response_a``/``response_b``.

    ``identity`` is the annotation's own id in the tool that exported it (for example
    ``{"annotation_id": 17, "updated_at": "..."}``), when it has one; see the module docstring.
    ``a_shown_first`` says the source knows ``response_a`` was shown first (on the left), so
    ``shown_first`` can record it for ``human_position_bias``; ``ai_shown`` whether the AI's
    verdict was shown with the pair (None: unknown). Neither is part of the label's id.
    """
    prompt = prompt_record(messages, prompt_set="labels", family=None).prompt_id
    a_id, b_id = response_id(response_a), response_id(response_b)
    pair = pair_id(prompt, a_id, b_id)
    preferred = {"a": a_id, "b": b_id, "tie": None}[choice]
    vote = {"pair_id": pair, "preferred": preferred, "confidence": confidence, "comment": comment}
    if identity:
        key = {**vote, "format": origin.source_format, "tool_id": identity}
    else:
        key = {**vote, "annotator": annotator}
    return {
        "label_id": content_id("human_label", key),
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
        "shown_first": ("first" if a_id < b_id else "second") if a_shown_first else None,
        "ai_shown": ai_shown,
    }
