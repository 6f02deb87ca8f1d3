"""Comparison pairs: which two responses to a prompt a judge compares.

Candidates per prompt are the stored generations and the final revisions of their critique
chains. Three ways to pair them: every two distinct candidates (``all``), optionally a seeded
sample of ``per_prompt`` of those pairs; each final revision against the response it revised
(``revision``); or exactly the pairs people labelled (``human``), to measure the judge
against them. A pair's id is the same in either order (:func:`tasks.core.conversation.pair_id`),
so AI and human labels on the same two texts meet; response ids hash the text, so the same
text generated twice is one candidate. Two responses with the same text (ignoring
surrounding whitespace) are never a pair: they are counted and skipped, not judged. Nor is a
final revision that talks about the response instead of being one
(:func:`tasks.critique.revision_check.talks_about_the_response`) a candidate: it is counted.
"""

from __future__ import annotations

import json
import random
from collections import Counter
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from itertools import combinations
from typing import Literal, get_args

from pydantic import BaseModel, ConfigDict, Field

from tasks.core.conversation import pair_id, response_id
from tasks.core.errors import CharterError
from tasks.core.hashing import content_id
from tasks.critique.revision_check import talks_about_the_response
from tasks.generate.generation import PromptItem, generations_of, select_prompts, stored_prompts
from tasks.store.store import Store

PairMode = Literal["all", "revision", "human"]
PAIR_MODES: tuple[PairMode, ...] = get_args(PairMode)
FLAGGED_REVISIONS = "revisions that talk about the response"


class PairSettings(BaseModel):
    """How to build pairs; plain data so it can be a flow parameter."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    mode: PairMode = Field(
        default="all",
        description="all (every two responses), revision (revision vs original), human (labelled pairs).",
    )
    per_prompt: int | None = Field(
        default=None, ge=1, description="At most N sampled pairs per prompt (default: all)."
    )
    seed: int = Field(default=0, description="Seeds the pair sample and the judge's principle draw.")


@dataclass(frozen=True)
class Pair:
    """Two different responses to one conversation; A is the one whose id sorts first."""

    pair_id: str
    prompt: PromptItem
    response_a_id: str
    response_a: str
    response_b_id: str
    response_b: str


@dataclass
class PairPlan:
    """The pairs to judge, in a fixed order, and what was skipped on the way."""

    pairs: list[Pair] = field(default_factory=list)
    skipped: Counter[str] = field(default_factory=Counter)


def make_pair(prompt: PromptItem, first: str, second: str) -> Pair | None:
    """The pair of two texts in canonical order, or None when the texts are the same response."""
    if first.strip() == second.strip():
        return None
    (a_id, a), (b_id, b) = sorted([(response_id(first), first), (response_id(second), second)])
    return Pair(pair_id(prompt.prompt_id, a_id, b_id), prompt, a_id, a, b_id, b)


def _add(plan: PairPlan, seen: set[str], prompt: PromptItem, first: str, second: str) -> None:
    pair = make_pair(prompt, first, second)
    if pair is None:
        plan.skipped["identical responses"] += 1
    elif pair.pair_id not in seen:
        seen.add(pair.pair_id)
        plan.pairs.append(pair)


def _sampled(pairs: list[Pair], per_prompt: int | None, seed: int) -> list[Pair]:
    """At most ``per_prompt`` pairs of each prompt, drawn with a per-prompt seed; order kept."""
    if per_prompt is None:
        return pairs
    by_prompt: dict[str, list[Pair]] = {}
    for pair in pairs:
        by_prompt.setdefault(pair.prompt.prompt_id, []).append(pair)
    kept: set[str] = set()
    for prompt, group in by_prompt.items():
        draw = random.Random(int(content_id("pair_draw", {"seed": seed, "prompt": prompt})[:15], 16))
        kept.update(p.pair_id for p in draw.sample(group, min(per_prompt, len(group))))
    return [pair for pair in pairs if pair.pair_id in kept]


def final_revisions(store: Store, generation_ids: Iterable[str]) -> tuple[dict[str, list[str]], int]:
    """Per generation, the revisions of its last stored round (one per critic model and constitution)
    but those that talk about the response, and how many of those were left out."""
    wanted = set(generation_ids)
    columns = ["generation_id", "round", "revision", "input_text", "model"]
    rows = [r for r in store.read("critiques", columns).to_pylist() if r["generation_id"] in wanted]
    last_round: dict[str, int] = {}
    for row in rows:
        last_round[row["generation_id"]] = max(row["round"], last_round.get(row["generation_id"], -1))
    revisions: dict[str, list[str]] = {}
    flagged = 0
    for row in sorted(rows, key=lambda r: (r["generation_id"], r["model"], r["revision"])):
        if row["round"] != last_round[row["generation_id"]]:
            continue
        if talks_about_the_response(row["revision"], row["input_text"]):
            flagged += 1
        else:
            revisions.setdefault(row["generation_id"], []).append(row["revision"])
    return revisions, flagged


def generated_pairs(store: Store, selection: dict, settings: PairSettings) -> PairPlan:
    """Pairs among a prompt set's generations and their final revisions (modes ``all``/``revision``)."""
    prompts = select_prompts(
        store,
        selection["prompt_set"],
        families=selection.get("families"),
        limit=selection.get("limit"),
        prompt_ids=selection.get("prompt_ids"),
    )
    generations = generations_of(store, prompts)
    if not generations:
        raise CharterError(
            f"no generations for prompt set {selection['prompt_set']!r}: run `charter generate` first"
        )
    revisions, flagged = final_revisions(store, (gid for gid, _, _ in generations))
    plan, seen = PairPlan(), set[str]()
    if flagged:
        plan.skipped[FLAGGED_REVISIONS] = flagged
    if settings.mode == "revision":
        for gid, prompt, text in generations:
            for revision in revisions.get(gid, []):
                _add(plan, seen, prompt, text, revision)
        if not plan.pairs and not plan.skipped:
            raise CharterError("no critique revisions for these generations: run `charter critique` first")
    else:
        candidates: dict[str, tuple[PromptItem, list[str]]] = {}
        for gid, prompt, text in generations:
            texts = candidates.setdefault(prompt.prompt_id, (prompt, []))[1]
            for candidate in [text, *revisions.get(gid, [])]:
                if candidate not in texts:
                    texts.append(candidate)
        for prompt, texts in candidates.values():
            for first, second in combinations(texts, 2):
                _add(plan, seen, prompt, first, second)
    plan.pairs = _sampled(plan.pairs, settings.per_prompt, settings.seed)
    return plan


def human_pairs(store: Store, families: Sequence[str] | None = None, limit: int | None = None) -> PairPlan:
    """The pairs people labelled (mode ``human``), in pair-id order, with their conversations."""
    labels = store.read("human_labels", ["pair_id", "prompt_id", "response_a", "response_b"]).to_pylist()
    if not labels:
        raise CharterError("no human labels in the store: import some with `charter import-labels`")
    prompts = stored_prompts(store)
    one_per_pair = {label["pair_id"]: label for label in labels}
    plan, seen = PairPlan(), set[str]()
    for pair in sorted(one_per_pair):
        label = one_per_pair[pair]
        row = prompts.get(label["prompt_id"])
        if row is None:
            raise CharterError(
                f"human label pair {label['pair_id']} names prompt {label['prompt_id']}, not stored"
            )
        if families and row["family"] not in families:
            continue
        prompt = PromptItem(label["prompt_id"], row["family"], tuple(json.loads(row["messages"])))
        _add(plan, seen, prompt, label["response_a"], label["response_b"])
    if limit is not None:
        plan.pairs = plan.pairs[:limit]
    return plan


def plan_pairs(store: Store, selection: dict, settings: PairSettings) -> PairPlan:
    """The pairs a label run judges, for any mode."""
    if settings.mode == "human":
        plan = human_pairs(store, selection.get("families"), selection.get("limit"))
        plan.pairs = _sampled(plan.pairs, settings.per_prompt, settings.seed)
        return plan
    if not selection.get("prompt_set"):
        raise CharterError(f"pairing mode {settings.mode!r} needs a prompt set (--prompts)")
    return generated_pairs(store, selection, settings)
