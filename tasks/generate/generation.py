"""Sampling candidate responses: which prompts, in which batches, and the rows they produce.

A generation's id hashes its prompt, model, backend, sampling parameters and sample
index, so a rerun knows exactly what exists. Batches are fixed by the prompt order
(never by what is missing), each batch is written in one atomic append, and a batch
whose rows all exist is skipped: after a crash, a rerun regenerates only the batches
that never landed, with the same inputs and seeds, so the final table equals an
uninterrupted run's.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from itertools import zip_longest
from typing import Any

import pyarrow.compute as pc

from tasks.backends.base import Backend, SamplingSettings
from tasks.core.conversation import Message
from tasks.core.errors import CharterError
from tasks.core.hashing import content_id
from tasks.store.store import Store


@dataclass(frozen=True)
class PromptItem:
    """A conversation to respond to, as generation and critique need it."""

    prompt_id: str
    family: str | None
    messages: tuple[Message, ...]


def select_prompts(
    store: Store,
    prompt_set: str,
    *,
    families: Sequence[str] | None = None,
    limit: int | None = None,
    prompt_ids: Sequence[str] | None = None,
) -> list[PromptItem]:
    """The prompt set's conversations, optionally only some families, at most ``limit`` of them.

    Prompts come round-robin across families (:func:`ordered_prompts`), so a small ``limit``
    still covers every family and the order, and so the batches, are reproducible.
    ``prompt_ids`` (a selection resolved by :mod:`tasks.generate.selection`) keeps only those
    prompts, in that order; ``families`` and ``limit`` still apply on top.
    """
    prompts = store.read("prompts", ["prompt_id", "prompt_set", "source_id", "family", "messages"])
    rows = prompts.filter(pc.equal(prompts["prompt_set"], prompt_set)).to_pylist()
    if not rows:
        known = sorted(set(prompts["prompt_set"].to_pylist()))
        raise CharterError(f"no prompt set {prompt_set!r} in the store; known: {', '.join(known) or 'none'}")
    if families:
        wanted = set(families)
        rows = [r for r in rows if r["family"] in wanted]
    items = ordered_prompts(
        (row["source_id"], PromptItem(row["prompt_id"], row["family"], tuple(json.loads(row["messages"]))))
        for row in rows
    )
    if prompt_ids is not None:
        by_id = {item.prompt_id: item for item in items}
        items = [by_id[prompt] for prompt in prompt_ids if prompt in by_id]
    return items[:limit] if limit is not None else items


def ordered_prompts(entries: Iterable[tuple[str | None, PromptItem]]) -> list[PromptItem]:
    """(source id, prompt) entries in the order every selection starts from: round-robin across
    families, each family in source-id order, each conversation once (its first entry)."""
    by_family: dict[str | None, list[PromptItem]] = {}
    seen: set[str] = set()
    for _, item in sorted(entries, key=lambda entry: (entry[0] or "", entry[1].prompt_id)):
        if item.prompt_id not in seen:
            seen.add(item.prompt_id)
            by_family.setdefault(item.family, []).append(item)
    return [item for group in zip_longest(*by_family.values()) for item in group if item is not None]


def stored_prompts(store: Store) -> dict[str, dict[str, Any]]:
    """prompt_id -> messages (JSON) and family: the earliest family any prompt set gave it, as the
    ``prompt_families`` view says, so every stage files a conversation under the same family."""
    rows = store.read("prompts", ["prompt_id", "family", "messages", "created_at"]).to_pylist()
    prompts: dict[str, dict[str, Any]] = {}
    for row in sorted(rows, key=lambda r: (r["family"] is None, r["created_at"])):
        prompts.setdefault(row["prompt_id"], {"messages": row["messages"], "family": row["family"]})
    return prompts


def prompt_seed(seed: int, prompt_id: str) -> int:
    """A per-prompt seed: a prompt's samples do not depend on its batch or position."""
    return int(content_id("seed", {"seed": seed, "prompt_id": prompt_id})[:15], 16)


def generation_id(prompt_id: str, model_id: str, backend: str, sampling: SamplingSettings, index: int) -> str:
    return content_id(
        "generation",
        {
            "prompt_id": prompt_id,
            "model": model_id,
            "backend": backend,
            "sampling": sampling.as_dict(),
            "index": index,
        },
    )


def batches(items: Sequence[PromptItem], batch_size: int) -> list[list[PromptItem]]:
    if batch_size < 1:
        raise ValueError("batch_size must be at least 1")
    return [list(items[i : i + batch_size]) for i in range(0, len(items), batch_size)]


def batch_ids(
    batch: Sequence[PromptItem], model_id: str, backend: str, sampling: SamplingSettings
) -> list[str]:
    return [
        generation_id(item.prompt_id, model_id, backend, sampling, index)
        for item in batch
        for index in range(sampling.n)
    ]


def pending_batches(
    store: Store, planned: list[list[PromptItem]], model_id: str, backend: str, sampling: SamplingSettings
) -> list[int]:
    """Indices of the batches not yet (completely) in the store."""
    existing = set(store.read("generations", ["generation_id"]).column("generation_id").to_pylist())
    return [
        index
        for index, batch in enumerate(planned)
        if not set(batch_ids(batch, model_id, backend, sampling)) <= existing
    ]


def generate_rows(
    backend: Backend, batch: Sequence[PromptItem], sampling: SamplingSettings
) -> list[dict[str, Any]]:
    """Sample a batch and turn the completions into ``generations`` rows."""
    seeds = [prompt_seed(sampling.seed, item.prompt_id) for item in batch]
    outputs = backend.generate([list(item.messages) for item in batch], sampling, seeds)
    params = json.dumps(sampling.as_dict(), sort_keys=True)
    rows = []
    for item, completions in zip(batch, outputs, strict=True):
        if len(completions) != sampling.n:
            raise CharterError(
                f"backend returned {len(completions)} samples for a prompt, expected {sampling.n}"
            )
        for index, completion in enumerate(completions):
            rows.append(
                {
                    "generation_id": generation_id(
                        item.prompt_id, backend.model_id, backend.name, sampling, index
                    ),
                    "prompt_id": item.prompt_id,
                    "model": backend.model_id,
                    "backend": backend.name,
                    "params": params,
                    "sample_index": index,
                    "text": completion.text,
                    "finish_reason": completion.finish_reason,
                    "num_tokens": completion.num_tokens,
                }
            )
    return rows


def generations_of(store: Store, prompts: Sequence[PromptItem]) -> list[tuple[str, PromptItem, str]]:
    """Every stored generation of ``prompts``: (generation id, prompt, text), in prompt then sample order."""
    order = {item.prompt_id: (position, item) for position, item in enumerate(prompts)}
    table = store.read(
        "generations", ["generation_id", "prompt_id", "model", "backend", "sample_index", "text"]
    )
    rows = [row for row in table.to_pylist() if row["prompt_id"] in order]
    rows.sort(
        key=lambda r: (
            order[r["prompt_id"]][0],
            r["model"],
            r["backend"],
            r["sample_index"],
            r["generation_id"],
        )
    )
    return [(row["generation_id"], order[row["prompt_id"]][1], row["text"]) for row in rows]
