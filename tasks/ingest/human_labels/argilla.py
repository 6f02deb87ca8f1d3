"""Argilla v2 exports: records as ``dataset.records.to_list(flatten=True)`` gives them (a JSON list,
or JSONL with one record per line), or a ``to_datasets()`` dataset saved with ``save_to_disk``.

Flattened, a record has its fields and metadata at the top level (``prompt``, ``response_a``,
``response_b``; charter's export adds ``pair_id``, ``family`` and ``messages``), its ``id``
and ``status``, and per question three parallel lists: ``<question>.responses`` (the values),
``<question>.responses.users`` (user ids) and ``<question>.responses.status`` (``submitted``,
``draft`` or ``discarded``); suggestions are ``<question>.suggestion`` with ``.score`` and
``.agent``. Those are the key names of ``GenericIO._record_to_dict`` in argilla-io/argilla
(``argilla/src/argilla/records/_io/_generic.py``).

The question is the LabelQuestion ``preference`` (fixed: charter's review export creates it),
with labels ``response_a``, ``response_b`` and ``tie`` (``a`` and ``b`` are accepted too). Only
submitted responses are votes, one label each, by ``argilla:<user id>``; a record nobody has
submitted yet is skipped, not refused, since an export of a queue in progress holds many.
Each response's identity is its record id and user id, so a later export of the same dataset
adds only new or changed votes. The conversation is the ``messages`` field or metadata (a list
of {role, content}, or its JSON text) when the record has one, else ``prompt`` as one user
message.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

from tasks.core.errors import Problem, input_file
from tasks.core.jsonl import read_json, read_jsonl
from tasks.ingest.human_labels.label_rows import LabelOrigin, RowOutcome, human_label_row
from tasks.ingest.human_labels.sources import conversation, datasets_folder_rows, text_problem

QUESTION = "preference"
CHOICES = {"response_a": "a", "response_b": "b", "tie": "tie", "a": "a", "b": "b"}
_VALUES, _USERS, _STATUS = (
    f"{QUESTION}.responses",
    f"{QUESTION}.responses.users",
    f"{QUESTION}.responses.status",
)
_NO_FAMILY = "(none)"


def argilla_rows(
    path: str | Path, origin: LabelOrigin, annotator: str | None
) -> Iterator[tuple[int, Any, RowOutcome]]:
    """One label per submitted response to the ``preference`` question of each record."""
    source = str(path)
    for number, unit, record in _records(path):
        if isinstance(record, Problem):
            yield number, None, [record]
            continue
        for outcome in _record_labels(record, source, number, unit, origin, annotator):
            yield number, record, outcome


def _records(path: str | Path) -> Iterator[tuple[int, str, dict[str, Any] | Problem]]:
    """Each record with its number and what the number counts, whichever way it was exported."""
    source = str(path)
    if Path(path).is_dir():
        yield from datasets_folder_rows(path)
        return
    if _first_character(path) != "[":
        for line, item in read_jsonl(path):
            yield line, "line", item
        return
    records = read_json(path)
    for number, record in enumerate(records, start=1):
        if not isinstance(record, dict):
            yield number, "record", Problem(source, "a record must be an object", number, None, "record")
        else:
            yield number, "record", record


def _first_character(path: str | Path) -> str:
    """The first character after any BOM and whitespace: ``[`` for a JSON list, else JSONL."""
    with open(input_file(path), "rb") as handle:
        head = handle.read(4096).removeprefix(b"\xef\xbb\xbf").lstrip()
    return head[:1].decode("latin-1")


def _record_labels(
    record: dict[str, Any], source: str, number: int, unit: str, origin: LabelOrigin, annotator: str | None
) -> Iterator[RowOutcome]:
    def problem(field: str | None, message: str) -> list[Problem]:
        return [Problem(source, message, number, field, unit)]

    if isinstance(record.get("fields"), dict) and "prompt" not in record:
        yield problem("fields", "a nested record: export with dataset.records.to_list(flatten=True)")
        return
    responses = _responses(record, source, number, unit)
    if isinstance(responses, Problem):
        yield [responses]
        return
    submitted = [(index, value, user) for index, value, user, status in responses if status == "submitted"]
    if not submitted:
        return
    for field in ("response_a", "response_b"):
        bad = text_problem(record.get(field), source, number, field, unit)
        if bad:
            yield [bad]
            return
    if record["response_a"] == record["response_b"]:
        yield problem("response_b", "the two responses are identical")
        return
    messages = _messages(record, source, number, unit)
    if isinstance(messages, Problem):
        yield [messages]
        return
    record_id = record.get("id") if isinstance(record.get("id"), str | int) else record.get("_server_id")
    family = record.get("family") if isinstance(record.get("family"), str) else None
    for index, value, user in submitted:
        choice = CHOICES.get(value.strip().lower()) if isinstance(value, str) else None
        if choice is None:
            labels = ", ".join(sorted({k for k in CHOICES if len(k) > 1}))
            yield problem(f"{_VALUES}[{index}]", f"{value!r} is not one of the labels {labels}")
            continue
        has_user = user not in (None, "", "None")
        label = human_label_row(
            messages=messages,
            response_a=record["response_a"],
            response_b=record["response_b"],
            choice=choice,
            annotator=f"argilla:{user}" if has_user else annotator or "argilla",
            origin=origin,
            source_row=number,
            identity={"record_id": record_id, "user_id": user} if record_id and has_user else None,
            a_shown_first=True,  # Argilla shows the fields in order: response_a above response_b
            ai_shown=record.get(f"{QUESTION}.suggestion") is not None,
        )
        yield label, messages, None if family == _NO_FAMILY else family


def _responses(
    record: dict[str, Any], source: str, number: int, unit: str
) -> list[tuple[int, Any, Any, Any]] | Problem:
    """``(index, value, user id, status)`` per response (index from 1), from the three parallel lists."""
    lists = {key: record.get(key) for key in (_VALUES, _USERS, _STATUS)}
    if lists[_VALUES] is None:
        return []
    for key, value in lists.items():
        if not isinstance(value, list):
            kind = "missing" if value is None else f"a {type(value).__name__}"
            return Problem(source, f"expected a list, got {kind}", number, key, unit)
    lengths = {len(value) for value in lists.values()}
    if len(lengths) > 1:
        sizes = ", ".join(f"{key} {len(value)}" for key, value in lists.items())
        return Problem(source, f"the response lists differ in length ({sizes})", number, _VALUES, unit)
    return [
        (index, value, None if user is None else str(user), status)
        for index, (value, user, status) in enumerate(zip(*lists.values(), strict=True), start=1)
    ]


def _messages(record: dict[str, Any], source: str, number: int, unit: str) -> list[dict[str, str]] | Problem:
    if record.get("messages") is not None:
        return conversation(record["messages"], source, number, "messages", unit)
    bad = text_problem(record.get("prompt"), source, number, "prompt", unit)
    if bad:
        if "prompt" not in record:
            return Problem(source, "no prompt: expected a prompt or messages field", number, "prompt", unit)
        return bad
    return [{"role": "user", "content": record["prompt"]}]
