"""Critique and revision against sampled principles: the supervised stage of Constitutional AI.

For each generation, ``rounds`` times: a principle is sampled (seeded, among those whose
tags admit the prompt's family), the model critiques the current response against the
principle's critique request, then rewrites it following the revision request; the
revision is the next round's input.

A round's id hashes its generation, round, the sampled principle's own hash, the input
text and the model settings, but not the whole constitution's id. Which principle a
round samples depends only on the applicable principle ids, so editing one principle's
text changes the ids of exactly the rounds that used it (and the rounds after them),
and only those are re-run. Rows keep the constitution id they were produced under.
"""

from __future__ import annotations

import random
import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from tasks.backends.base import Backend, SamplingSettings
from tasks.constitution.model import Constitution, Principle
from tasks.core.conversation import Message, messages_problem
from tasks.core.errors import CharterError, InputError, Problem
from tasks.core.hashing import content_id
from tasks.core.progress import progress
from tasks.core.records import checked_jsonl
from tasks.generate.generation import PromptItem

REVISION_SUFFIX = " Reply with the rewritten response only."
_LEADING_LABEL = re.compile(
    r"^\s*(revision|revised response|rewritten response|critique)\s*:\s*", re.IGNORECASE
)


@dataclass(frozen=True)
class RoundSettings:
    """What a critique run does besides the constitution: rounds, model settings, few-shot examples.

    Built from :class:`tasks.critique.settings.CritiqueSettings`, which holds the defaults.
    """

    rounds: int
    critique_tokens: int
    revision_tokens: int
    temperature: float
    top_p: float
    seed: int
    few_shot: tuple[tuple[Message, ...], ...] = ()

    def identity(self) -> dict[str, Any]:
        """The settings that shape a round's output (the round count does not: more rounds extend a chain)."""
        return {
            "critique_tokens": self.critique_tokens,
            "revision_tokens": self.revision_tokens,
            "temperature": self.temperature,
            "top_p": self.top_p,
            "seed": self.seed,
            "few_shot": content_id("few_shot", [list(example) for example in self.few_shot]),
        }


@dataclass(frozen=True)
class GenerationItem:
    """A generation to critique, with its prompt."""

    generation_id: str
    prompt: PromptItem
    text: str


@dataclass
class ChainState:
    """Where a generation's chain of rounds stands: the next round to run and its input."""

    item: GenerationItem
    next_round: int
    input_text: str
    done: list[dict[str, Any]] = field(default_factory=list)


def critique_principles(constitution: Constitution, family: str | None) -> list[Principle]:
    """Principles with critique and revision requests that apply to ``family``, in id order."""
    usable = [p for p in constitution.principles if p.critique and p.revision and p.applies_to(family)]
    return sorted(usable, key=lambda p: p.id)


def sample_principle(
    constitution: Constitution, item: GenerationItem, round_index: int, seed: int
) -> Principle:
    candidates = critique_principles(constitution, item.prompt.family)
    if not candidates:
        raise CharterError(
            f"constitution {constitution.name} has no critique principle for family {item.prompt.family!r}"
        )
    key = content_id(
        "principle_draw", {"seed": seed, "generation_id": item.generation_id, "round": round_index}
    )
    return random.Random(int(key[:15], 16)).choice(candidates)


def critique_id(
    item: GenerationItem,
    round_index: int,
    principle: Principle,
    input_text: str,
    model_id: str,
    backend: str,
    config: RoundSettings,
) -> str:
    return content_id(
        "critique",
        {
            "generation_id": item.generation_id,
            "round": round_index,
            "principle": principle.principle_hash,
            "input": input_text,
            "model": model_id,
            "backend": backend,
            "config": config.identity(),
        },
    )


def walk_chains(
    items: Iterable[GenerationItem],
    stored: dict[str, dict[str, Any]],
    constitution: Constitution,
    config: RoundSettings,
    model_id: str,
    backend: str,
) -> list[ChainState]:
    """Follow each generation's chain through the rounds already stored (by id) to its first missing round."""
    states = []
    for item in items:
        state = ChainState(item=item, next_round=0, input_text=item.text)
        while state.next_round < config.rounds:
            principle = sample_principle(constitution, item, state.next_round, config.seed)
            row = stored.get(
                critique_id(item, state.next_round, principle, state.input_text, model_id, backend, config)
            )
            if row is None:
                break
            state.done.append(row)
            state.input_text = row["revision"]
            state.next_round += 1
        states.append(state)
    return states


def critique_messages(
    item: GenerationItem, response: str, principle: Principle, few_shot: Sequence[Sequence[Message]]
) -> list[Message]:
    examples = [message for example in few_shot for message in example]
    return [
        *examples,
        *item.prompt.messages,
        {"role": "assistant", "content": response},
        {"role": "user", "content": principle.critique or ""},
    ]


def revision_messages(critique_turns: list[Message], critique: str, principle: Principle) -> list[Message]:
    return [
        *critique_turns,
        {"role": "assistant", "content": critique},
        {"role": "user", "content": (principle.revision or "") + REVISION_SUFFIX},
    ]


def clean(text: str) -> str:
    """The reply without a leading "Revision:"-style label or surrounding whitespace."""
    return _LEADING_LABEL.sub("", text.strip(), count=1).strip()


def run_rounds(
    backend: Backend, states: list[ChainState], constitution: Constitution, config: RoundSettings
) -> list[dict[str, Any]]:
    """Run every missing round of every chain, batching each round across the chains; returns new rows."""
    rows: list[dict[str, Any]] = []
    constitution_id = constitution.constitution_id
    left = sum(max(config.rounds - s.next_round, 0) for s in states)
    with progress("critique rounds", total=left, unit="rounds") as bar:
        for round_index in range(config.rounds):
            active = [s for s in states if s.next_round == round_index]
            if not active:
                continue
            principles = [sample_principle(constitution, s.item, round_index, config.seed) for s in active]
            ids = [
                critique_id(s.item, round_index, p, s.input_text, backend.model_id, backend.name, config)
                for s, p in zip(active, principles, strict=True)
            ]
            seeds = [int(i[:15], 16) for i in ids]
            asks = [
                critique_messages(s.item, s.input_text, p, config.few_shot)
                for s, p in zip(active, principles, strict=True)
            ]
            critiques = _one_each(backend, asks, config, config.critique_tokens, seeds)
            revisions = _one_each(
                backend,
                [revision_messages(ask, c, p) for ask, c, p in zip(asks, critiques, principles, strict=True)],
                config,
                config.revision_tokens,
                [seed + 1 for seed in seeds],
            )
            for state, principle, row_id, critique, revision in zip(
                active, principles, ids, critiques, revisions, strict=True
            ):
                row = {
                    "critique_id": row_id,
                    "generation_id": state.item.generation_id,
                    "prompt_id": state.item.prompt.prompt_id,
                    "round": round_index,
                    "principle_id": principle.id,
                    "principle_hash": principle.principle_hash,
                    "constitution_id": constitution_id,
                    "model": backend.model_id,
                    "input_text": state.input_text,
                    "critique": critique,
                    "revision": revision or state.input_text,
                }
                rows.append(row)
                state.done.append(row)
                state.input_text = row["revision"]
                state.next_round += 1
            bar.advance(len(active))
    return rows


def _one_each(
    backend: Backend,
    conversations: list[list[Message]],
    config: RoundSettings,
    max_tokens: int,
    seeds: list[int],
) -> list[str]:
    sampling = SamplingSettings(
        n=1, temperature=config.temperature, top_p=config.top_p, max_tokens=max_tokens
    )
    return [clean(completions[0].text) for completions in backend.generate(conversations, sampling, seeds)]


def load_few_shot(path: str | Path) -> tuple[tuple[Message, ...], ...]:
    """Few-shot critique/revision dialogues: JSONL, one ``{"messages": [...]}`` per example.

    Each example is a whole worked dialogue (user, assistant response, user critique request,
    assistant critique, user revision request, assistant revision) shown before the real one.
    """
    examples = []
    problems: list[Problem] = []
    for line, item, row_problems in checked_jsonl(path, required={"messages": list}, optional={}):
        if item is not None and not row_problems:
            reason = _few_shot_problem(item["messages"])
            if reason:
                row_problems.append(Problem(str(path), reason, line, "messages"))
        if row_problems or item is None:
            problems.extend(row_problems)
            continue
        examples.append(tuple(item["messages"]))
    if problems:
        raise InputError(problems)
    return tuple(examples)


def _few_shot_problem(messages: Any) -> str | None:
    if not isinstance(messages, list) or len(messages) < 2 or messages[-1].get("role") != "assistant":
        return "an example must be a list of messages ending with the assistant's revision"
    return messages_problem(messages[:-1])


def final_revisions(states: Iterable[ChainState], rounds: int) -> list[tuple[GenerationItem, str]]:
    """Each completed chain's generation and its last revision."""
    return [(s.item, s.done[-1]["revision"]) for s in states if len(s.done) == rounds]
