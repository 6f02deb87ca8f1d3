"""Review queues for other annotation tools: Label Studio tasks and Argilla records.

Teams that already label in Label Studio or Argilla get the same pairs the bench would show,
with the AI judge's verdict as a pre-annotation (a Label Studio prediction, an Argilla
suggestion) that a reviewer accepts or overturns, and their exports come back through
``charter import-labels --format label-studio|argilla`` onto the same pair ids: each task or
record carries the conversation as ``messages`` and its ``pair_id``, and the response texts
exactly as stored.

Which response is shown first is drawn per pair from the seed
(:func:`tasks.review.display.shows_second_first` with the annotator ``export``), not the
id order and not the judge's order, so a reviewer's position bias does not line up with
either. Pure functions but :func:`queue_export` (which reads the queue from the store); no Prefect.
"""

from __future__ import annotations

import json
from collections.abc import Iterable
from pathlib import Path
from typing import Any

from tasks.core.conversation import Message, messages_json, render_turns
from tasks.core.errors import CharterError
from tasks.core.files import write_atomically
from tasks.review.display import shows_second_first
from tasks.review.items import GENERAL_QUESTION, ReviewItem, load_items
from tasks.review.queues import load_queues, queue_snapshot
from tasks.store.sql import readonly_connection
from tasks.store.store import Store

FORMATS = ("label-studio", "argilla")
_DISPLAY_SEAT = "export"  # the "annotator" the display order is drawn for
_NO_FAMILY = "(none)"

# Label Studio's "Human Preference collection for RLHF" template, plus a Tie choice: click the
# better answer (the Pairwise tag stores {"selected": "left"|"right"}), or tick Tie.
LABEL_STUDIO_CONFIG = """<View>
  <Header value="Which response is more helpful, honest and harmless?"/>
  <Text name="prompt" value="$prompt"/>
  <Pairwise name="comparison" toName="answer1,answer2"/>
  <View style="display: flex; gap: 1em;">
    <View style="flex: 1;"><Text name="answer1" value="$answer1"/></View>
    <View style="flex: 1;"><Text name="answer2" value="$answer2"/></View>
  </View>
  <Choices name="tie" toName="prompt" choice="single">
    <Choice value="Tie"/>
  </Choices>
</View>
"""

# The dataset the records fit, for ``rg.Settings``: three TextFields, the LabelQuestion the
# importer reads and the metadata that brings a vote back to its pair.
ARGILLA_QUESTION = "preference"
ARGILLA_SETTINGS: dict[str, Any] = {
    "guidelines": GENERAL_QUESTION,
    "fields": [
        {"name": "prompt", "type": "TextField", "title": "Conversation"},
        {"name": "response_a", "type": "TextField", "title": "Response A"},
        {"name": "response_b", "type": "TextField", "title": "Response B"},
    ],
    "questions": [
        {
            "name": ARGILLA_QUESTION,
            "type": "LabelQuestion",
            "title": "Which response is better?",
            "labels": {"response_a": "Response A", "response_b": "Response B", "tie": "Tie"},
            "required": True,
        }
    ],
    "metadata": [
        {"name": "pair_id", "type": "TermsMetadataProperty"},
        {"name": "family", "type": "TermsMetadataProperty"},
        {"name": "messages", "type": "TermsMetadataProperty"},
    ],
}
# ``dataset.records.log(records, mapping=ARGILLA_MAPPING)``: the flattened suggestion keys
# (the names ``to_list(flatten=True)`` uses) routed to the question's suggestion.
ARGILLA_MAPPING = {
    f"{ARGILLA_QUESTION}.suggestion": f"{ARGILLA_QUESTION}.suggestion",
    f"{ARGILLA_QUESTION}.suggestion.score": f"{ARGILLA_QUESTION}.suggestion.score",
    f"{ARGILLA_QUESTION}.suggestion.agent": f"{ARGILLA_QUESTION}.suggestion.agent",
}


def display_prompt(messages: list[Message]) -> str:
    """What the prompt text shows: a single user turn as it is, a longer conversation as turns.

    A single turn is kept verbatim so that a tool export without ``messages`` still names the
    same conversation; ``messages`` itself is what the importers read when it is there.
    """
    if len(messages) == 1 and messages[0]["role"] == "user":
        return messages[0]["content"]
    return render_turns(messages)


def _shown(item: ReviewItem, seed: int) -> tuple[str, str, str, str]:
    """``(left id, left text, right id, right text)`` in this export's display order."""
    if shows_second_first(seed, _DISPLAY_SEAT, item.pair_id):
        return item.second_id, item.second_text, item.first_id, item.first_text
    return item.first_id, item.first_text, item.second_id, item.second_text


def _ai_preferred(item: ReviewItem) -> str | None:
    """The response id the AI prefers, '' for a tie, None without AI labels."""
    vote = item.ai_vote
    if vote is None:
        return None
    return "" if vote == "tie" else item.first_id if vote == "first" else item.second_id


def _family(item: ReviewItem) -> str | None:
    return None if item.family == _NO_FAMILY else item.family


def label_studio_tasks(items: Iterable[ReviewItem], *, model_version: str, seed: int) -> list[dict[str, Any]]:
    """One Label Studio task per item, for the config :data:`LABEL_STUDIO_CONFIG`.

    ``data`` holds ``prompt``, ``answer1`` (left), ``answer2`` (right), ``messages``,
    ``pair_id`` and ``family``; an item with an AI verdict gets one prediction: the Pairwise
    selection of the side the AI prefers (or the Tie choice), scored by the AI's confidence.
    """
    tasks = []
    for item in items:
        left_id, left, _right_id, right = _shown(item, seed)
        task: dict[str, Any] = {
            "data": {
                "prompt": display_prompt(item.messages),
                "answer1": left,
                "answer2": right,
                "messages": list(item.messages),
                "pair_id": item.pair_id,
                "family": _family(item),
            }
        }
        preferred = _ai_preferred(item)
        if preferred is not None:
            task["predictions"] = [
                {
                    "model_version": model_version,
                    "score": item.ai_confidence,
                    "result": [_label_studio_result(preferred, left_id)],
                }
            ]
        tasks.append(task)
    return tasks


def _label_studio_result(preferred: str, left_id: str) -> dict[str, Any]:
    if not preferred:
        return {"from_name": "tie", "to_name": "prompt", "type": "choices", "value": {"choices": ["Tie"]}}
    # The Pairwise tag is its own object: Label Studio stores its result with to_name = its name.
    side = "left" if preferred == left_id else "right"
    value = {"selected": side}
    return {"from_name": "comparison", "to_name": "comparison", "type": "pairwise", "value": value}


def argilla_records(
    items: Iterable[ReviewItem], *, seed: int, agent: str = "charter-ai-judge"
) -> list[dict[str, Any]]:
    """One Argilla v2 record per item, flat, in the key names ``to_list(flatten=True)`` gives back.

    ``id`` is the pair id (logging a pair again updates its record instead of adding one);
    fields ``prompt``, ``response_a``, ``response_b``; metadata ``pair_id``, ``family`` and
    ``messages`` (JSON text); and, for an item with an AI verdict, the suggestion for
    ``preference`` (its label and the AI's confidence as score). Log them with
    ``dataset.records.log(records, mapping=ARGILLA_MAPPING)``.
    """
    records = []
    for item in items:
        left_id, left, _right_id, right = _shown(item, seed)
        record: dict[str, Any] = {
            "id": item.pair_id,
            "prompt": display_prompt(item.messages),
            "response_a": left,
            "response_b": right,
            "pair_id": item.pair_id,
            "family": _family(item),
            "messages": messages_json(list(item.messages)),
        }
        preferred = _ai_preferred(item)
        if preferred is not None:
            key = f"{ARGILLA_QUESTION}.suggestion"
            label = "tie" if not preferred else "response_a" if preferred == left_id else "response_b"
            record |= {key: label, f"{key}.score": item.ai_confidence, f"{key}.agent": agent}
        records.append(record)
    return records


def queue_export(
    store: Store, queue_name: str, fmt: str, *, queues_path: str | Path | None, limit: int, seed: int
) -> list[dict[str, Any]]:
    """The first ``limit`` items of a queue as Label Studio tasks or Argilla records."""
    if fmt not in FORMATS:
        raise CharterError(f"unknown review export format {fmt!r}; formats: {', '.join(FORMATS)}")
    queues = {queue.name: queue for queue in load_queues(queues_path, store)}
    if queue_name not in queues:
        raise CharterError(f"no queue {queue_name!r}; queues: {', '.join(queues)}")
    with readonly_connection(store) as con:
        ranked = queue_snapshot(con, queues[queue_name], limit)
        found = load_items(con, [pair for pair, _ in ranked])
    items = [found[pair] for pair, _ in ranked if pair in found]
    if fmt == "label-studio":
        return label_studio_tasks(items, model_version="charter-ai-judge", seed=seed)
    return argilla_records(items, seed=seed)


def write_review_export(records: list[dict[str, Any]], path: str | Path, fmt: str) -> Path:
    """Write tasks or records as one JSON list (what both tools import), atomically."""
    if fmt not in FORMATS:
        raise CharterError(f"unknown review export format {fmt!r}; formats: {', '.join(FORMATS)}")
    if not records:
        raise CharterError("nothing to export: the queue is empty")
    return write_atomically(path, json.dumps(records, ensure_ascii=False, indent=2) + "\n")
