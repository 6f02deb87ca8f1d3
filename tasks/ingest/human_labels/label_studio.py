"""Label Studio's JSON export of a pairwise-comparison project: one label per completed annotation."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

from tasks.core.errors import Problem
from tasks.core.jsonl import read_json
from tasks.ingest.human_labels.label_rows import LabelOrigin, RowOutcome, human_label_row

# Label Studio's pairwise templates name the two texts text1/text2 (Pairwise Classification)
# or answer1/answer2 with a prompt (Human Preference collection for RLHF).
_RESPONSE_KEYS = (("answer1", "answer2"), ("text1", "text2"), ("response_a", "response_b"))
_PROMPT_KEYS = ("prompt", "instruction", "question", "text")
_TIE_WORDS = {"tie", "equal", "same", "both", "neither"}


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
    prompt_key = next((key for key in _PROMPT_KEYS if key in data and key not in keys), None)
    if prompt_key is None:
        yield problem("data", f"no prompt: expected one of data keys {', '.join(_PROMPT_KEYS)}")
        return
    for key in (prompt_key, *keys):
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
    messages = [{"role": "user", "content": data[prompt_key]}]
    for index, annotation in enumerate(completed, start=1):
        choice = _choice(annotation.get("result"))
        if choice is None:
            yield problem(
                f"annotations[{index}].result",
                "no pairwise selection ('selected': 'left' or 'right') or tie choice",
            )
            continue
        label = human_label_row(
            messages=messages,
            response_a=response_a,
            response_b=response_b,
            choice=choice,
            annotator=_annotator(annotation.get("completed_by"), annotator),
            origin=origin,
            source_row=number,
        )
        yield label, messages, None


def _choice(result: Any) -> str | None:
    for item in result if isinstance(result, list) else []:
        value = item.get("value") if isinstance(item, dict) else None
        if not isinstance(value, dict):
            continue
        selected = value.get("selected")
        if selected in ("left", "right"):
            return "a" if selected == "left" else "b"
        choices = value.get("choices")
        if isinstance(choices, list) and any(str(c).strip().lower() in _TIE_WORDS for c in choices):
            return "tie"
    return None


def _annotator(completed_by: Any, fallback: str | None) -> str:
    if isinstance(completed_by, dict):
        completed_by = completed_by.get("email") or completed_by.get("id")
    if completed_by is not None:
        return f"label-studio:{completed_by}"
    return fallback or "label-studio"
