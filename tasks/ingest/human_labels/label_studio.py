"""Label Studio's JSON export of a pairwise-comparison project: one label per completed annotation.

Reads both pairwise templates (``text1``/``text2``, and ``prompt`` with ``answer1``/``answer2``
as in "Human Preference collection for RLHF" and charter's own review export,
:mod:`tasks.review.exports`). Where a task's data holds ``messages`` (the conversation as a
list of {role, content}, which charter's export writes), that is the prompt: the ``prompt``
text only displays it, and a multi-turn conversation must keep its own prompt and pair id.
Each annotation's ``id`` (and ``updated_at``, which changes when its annotator edits it) is
its identity, so a later, larger export of the same project adds only the new or changed ones.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

from tasks.core.errors import Problem
from tasks.core.jsonl import read_json
from tasks.ingest.human_labels.label_rows import LabelOrigin, RowOutcome, human_label_row
from tasks.ingest.human_labels.sources import conversation

# Label Studio's pairwise templates name the two texts text1/text2 (Pairwise Classification)
# or answer1/answer2 with a prompt (Human Preference collection for RLHF).
_RESPONSE_KEYS = (("answer1", "answer2"), ("text1", "text2"), ("response_a", "response_b"))
_PROMPT_KEYS = ("prompt", "instruction", "question", "text")
_TIE_WORDS = {"tie", "equal", "same", "both", "neither"}
_NO_FAMILY = "(none)"


def label_studio_rows(
    path: str | Path, origin: LabelOrigin, annotator: str | None
) -> Iterator[tuple[int, Any, RowOutcome]]:
    """One label per completed annotation of each task; an unreadable export is an InputError."""
    source = str(path)
    tasks = read_json(path)
    if not isinstance(tasks, list):
        yield 0, None, [Problem(source, "a Label Studio JSON export is a list of tasks")]
        return
    for number, task in enumerate(tasks, start=1):
        for outcome in _task_labels(task, number, source, origin, annotator):
            yield number, task, outcome


def _task_labels(
    task: Any, number: int, source: str, origin: LabelOrigin, annotator: str | None
) -> Iterator[RowOutcome]:
    def problem(field: str, message: str) -> list[Problem]:
        return [Problem(source, message, number, field, unit="task")]

    if not isinstance(task, dict) or not isinstance(task.get("data"), dict):
        yield problem("data", "task must be an object with a data object")
        return
    data = task["data"]
    keys = next((pair for pair in _RESPONSE_KEYS if pair[0] in data and pair[1] in data), None)
    if keys is None:
        options = " or ".join("/".join(pair) for pair in _RESPONSE_KEYS)
        yield problem("data", f"no response texts: expected data keys {options}")
        return
    response_a, response_b = data[keys[0]], data[keys[1]]
    messages = _messages(data, keys, number, source)
    if isinstance(messages, Problem):
        yield [messages]
        return
    for key in keys:
        if not isinstance(data[key], str) or not data[key].strip():
            yield problem(f"data.{key}", "must be a non-empty string")
            return
    if response_a == response_b:
        yield problem(f"data.{keys[1]}", "the two responses are identical")
        return
    annotations = task.get("annotations") or []
    if not isinstance(annotations, list):
        yield problem("annotations", f"expected a list of annotations, got {type(annotations).__name__}")
        return
    completed = [a for a in annotations if isinstance(a, dict) and not a.get("was_cancelled")]
    if not completed:
        yield problem("annotations", "no completed annotation")
        return
    family = data.get("family") if isinstance(data.get("family"), str) else None
    for index, annotation in enumerate(completed, start=1):
        choice = _choice(annotation.get("result"))
        if choice is None or choice == "conflict":
            message = (
                "no pairwise selection ('selected': 'left' or 'right') or tie choice"
                if choice is None
                else "both a pairwise selection and a tie choice"
            )
            yield problem(f"annotations[{index}].result", message)
            continue
        label = human_label_row(
            messages=messages,
            response_a=response_a,
            response_b=response_b,
            choice=choice,
            annotator=_annotator(annotation.get("completed_by"), annotator),
            origin=origin,
            source_row=number,
            identity=_identity(annotation),
            a_shown_first=True,  # answer1 / text1 is the left text of the Pairwise tag
            ai_shown=bool(task.get("predictions")),
        )
        yield label, messages, None if family == _NO_FAMILY else family


def _messages(
    data: dict[str, Any], response_keys: tuple[str, str], number: int, source: str
) -> list[dict[str, str]] | Problem:
    """``data.messages`` when the task has it, else the prompt text as one user message."""
    if data.get("messages") is not None:
        return conversation(data["messages"], source, number, "data.messages", "task")
    prompt_key = next((key for key in _PROMPT_KEYS if key in data and key not in response_keys), None)
    if prompt_key is None:
        keys = ", ".join(("messages", *_PROMPT_KEYS))
        return Problem(source, f"no prompt: expected one of data keys {keys}", number, "data", "task")
    prompt = data[prompt_key]
    if not isinstance(prompt, str) or not prompt.strip():
        return Problem(source, "must be a non-empty string", number, f"data.{prompt_key}", "task")
    return [{"role": "user", "content": prompt}]


def _identity(annotation: dict[str, Any]) -> dict[str, Any] | None:
    """The annotation's id in Label Studio, with the time it was last edited; None without an id."""
    annotation_id = annotation.get("id")
    if annotation_id is None or isinstance(annotation_id, bool | dict | list):
        return None
    updated = annotation.get("updated_at")
    return {"annotation_id": annotation_id, "updated_at": updated if isinstance(updated, str) else None}


def _choice(result: Any) -> str | None:
    """'a', 'b' or 'tie'; 'conflict' for a side and a tie at once; None for neither."""
    found = set()
    for item in result if isinstance(result, list) else []:
        value = item.get("value") if isinstance(item, dict) else None
        if not isinstance(value, dict):
            continue
        selected = value.get("selected")
        if selected in ("left", "right"):
            found.add("a" if selected == "left" else "b")
        choices = value.get("choices")
        if isinstance(choices, list) and any(str(c).strip().lower() in _TIE_WORDS for c in choices):
            found.add("tie")
    if len(found) > 1:
        return "conflict"
    return found.pop() if found else None


def _annotator(completed_by: Any, fallback: str | None) -> str:
    if isinstance(completed_by, dict):
        completed_by = completed_by.get("email") or completed_by.get("id")
    if completed_by is not None:
        return f"label-studio:{completed_by}"
    return fallback or "label-studio"
