"""Conversations, responses and pairs, and the content hashes that identify them.

One conversation has one ``prompt_id`` wherever it appears (a prompt set, a human
label export, a generation), and a pair's id does not depend on which response was
shown first, so labels from different sources and orders meet on the same pair.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterable
from typing import Any

from tasks.core.hashing import content_id

ROLES = ("system", "user", "assistant")

Message = dict[str, str]


def messages_problem(messages: Any) -> str | None:
    """Why ``messages`` is not a usable prompt conversation, or None if it is."""
    if not isinstance(messages, list) or not messages:
        return "must be a non-empty list of {role, content} objects"
    for index, message in enumerate(messages):
        if not isinstance(message, dict) or set(message) != {"role", "content"}:
            return f"message {index} must be an object with exactly the keys role and content"
        if message["role"] not in ROLES:
            return f"message {index} has role {message['role']!r}; roles are {', '.join(ROLES)}"
        if not isinstance(message["content"], str):
            return f"message {index} content must be a string"
        if message["role"] == "system" and index != 0:
            return f"message {index}: a system message may only come first"
    turns = [m["role"] for m in messages if m["role"] != "system"]
    if not turns or turns[-1] != "user":
        return "the conversation must end with a user message"
    for index in range(1, len(turns)):
        if turns[index] == turns[index - 1]:
            return "user and assistant turns must alternate"
    return None


def prompt_id(messages: list[Message]) -> str:
    return content_id("prompt", [{"role": m["role"], "content": m["content"]} for m in messages])


def response_id(text: str) -> str:
    return content_id("response", text)


def pair_id(prompt: str, first_response_id: str, second_response_id: str) -> str:
    """The same for (x, y) and (y, x): a pair is unordered, its presentation is not."""
    return content_id(
        "pair", {"prompt_id": prompt, "responses": sorted([first_response_id, second_response_id])}
    )


def orientation_free_vote(preferred: str | None, response_a: str, response_b: str) -> str:
    """'first' or 'second' (the pair's responses in id order), or 'tie' when nothing is preferred."""
    if preferred is None:
        return "tie"
    return "first" if preferred == min(response_a, response_b) else "second"


def last_user_text(messages: list[Message]) -> str:
    return next(m["content"] for m in reversed(messages) if m["role"] == "user")


def messages_json(messages: list[Message]) -> str:
    return json.dumps(messages, ensure_ascii=False)


# hh-rlhf's speaker names, which the Constitutional AI prompts also use.
SPEAKERS = {"user": "Human", "assistant": "Assistant", "system": "System"}


def render_turns(messages: Iterable[Message]) -> str:
    """The conversation as ``Human: ...`` / ``Assistant: ...`` turns, a blank line apart: what the
    judge prompt's ``{conversation}`` shows, and the body of an hh-rlhf transcript."""
    return "\n\n".join(f"{SPEAKERS[m['role']]}: {m['content']}" for m in messages)


def hh_transcript(messages: Iterable[Message]) -> str:
    """The conversation as an hh-rlhf prompt (``\\n\\nHuman: ...``), ending in an open assistant turn
    that a response completes after one space: TRL's standard (non-chat) preference format."""
    return f"\n\n{render_turns(messages)}\n\nAssistant:"


_HH_TURN = re.compile(r"\n\n(Human|Assistant): ?")


def parse_hh_transcript(transcript: str) -> list[Message]:
    """Split an Anthropic hh-rlhf transcript (``\\n\\nHuman: ...\\n\\nAssistant: ...``) into messages.

    Consecutive turns of one speaker, which occur in the published data, are joined into one message.
    """
    parts = _HH_TURN.split(transcript)
    if parts[0].strip():
        raise ValueError("text before the first '\\n\\nHuman:' turn")
    roles = {"Human": "user", "Assistant": "assistant"}
    messages: list[Message] = []
    for speaker, text in zip(parts[1::2], parts[2::2], strict=True):
        role = roles[speaker]
        if messages and messages[-1]["role"] == role:
            # Some real transcripts repeat a speaker; one turn per speaker keeps chat templates valid.
            messages[-1] = {"role": role, "content": f"{messages[-1]['content']}\n\n{text}"}
        else:
            messages.append({"role": role, "content": text})
    return messages
