"""Prompt sets: JSONL files of conversations, each with a stable id and a prompt family.

Format, one object per line: ``id`` (unique in the file), ``family``, ``text`` (the
final user message) and optionally ``messages``, the whole conversation ending with
that user message. The family is what constitutions' principle tags and the audit's
coverage ledger refer to. A stress set (``tasks.stress.stress_set``) is a prompt set whose
lines may also carry the :data:`STRESS_FIELDS`; they are accepted here and read there.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

from tasks.core.conversation import last_user_text, messages_json, messages_problem, prompt_id
from tasks.core.errors import InputError, Problem
from tasks.core.hashing import content_id
from tasks.core.records import checked_jsonl


@dataclass(frozen=True)
class PromptRecord:
    """One conversation to respond to, ready for the ``prompts`` table."""

    prompt_id: str
    prompt_set: str
    source_id: str | None
    family: str | None
    text: str
    messages: tuple[dict[str, str], ...]

    def row(self) -> dict[str, Any]:
        return {
            "row_id": content_id(
                "prompt_row",
                {
                    "prompt_id": self.prompt_id,
                    "set": self.prompt_set,
                    "source": self.source_id,
                    "family": self.family,
                },
            ),
            "prompt_id": self.prompt_id,
            "prompt_set": self.prompt_set,
            "source_id": self.source_id,
            "family": self.family,
            "text": self.text,
            "messages": messages_json(list(self.messages)),
        }


# A stress prompt's annotations: its stress type, the behaviour expected of a reply, and for a
# derived variant (``charter stress derive``) the prompt it came from and the transform applied.
STRESS_FIELDS: dict[str, type] = {"stress_type": str, "expected": str, "source": str, "transform": str}


def prompt_record(
    messages: list[dict[str, str]], prompt_set: str, family: str | None, source_id: str | None = None
) -> PromptRecord:
    return PromptRecord(
        prompt_id=prompt_id(messages),
        prompt_set=prompt_set,
        source_id=source_id,
        family=family,
        text=last_user_text(messages),
        messages=tuple(messages),
    )


def default_prompt_set_name(path: str | Path) -> str:
    """The file's stem, or its folder's name for a generically named ``prompts.jsonl``."""
    path = Path(path)
    return path.parent.name if path.stem == "prompts" and path.parent.name else path.stem


def load_prompt_set(path: str | Path, prompt_set: str | None = None) -> list[PromptRecord]:
    """Parse and validate a prompt set; raises :class:`InputError` listing every bad line."""
    source = str(path)
    name = prompt_set or default_prompt_set_name(path)
    records: list[PromptRecord] = []
    problems: list[Problem] = []
    first_line_of_id: dict[str, int] = {}
    required = {"id": str, "family": str, "text": str}
    optional = {"messages": list, **STRESS_FIELDS}
    for line, item, row_problems in checked_jsonl(path, required=required, optional=optional):
        if item is not None and not row_problems:
            messages = item.get("messages") or [{"role": "user", "content": item["text"]}]
            reason = messages_problem(messages)
            if reason is None and last_user_text(messages) != item["text"]:
                reason = "the last user message must equal text"
            if reason is not None:
                row_problems.append(Problem(source, reason, line, "messages"))
            elif item["id"] in first_line_of_id:
                row_problems.append(
                    Problem(
                        source,
                        f"duplicate id {item['id']!r} (first on line {first_line_of_id[item['id']]})",
                        line,
                        "id",
                    )
                )
        if row_problems:
            problems.extend(row_problems)
            continue
        first_line_of_id[item["id"]] = line
        records.append(prompt_record(messages, name, item["family"], item["id"]))
    if problems:
        raise InputError(problems)
    if not records:
        raise InputError.single(source, "the prompt set has no prompts")
    return records
