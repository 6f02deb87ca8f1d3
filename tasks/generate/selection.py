"""Which prompts of a set a run covers: all of them, the unseen ones, a seeded sample, or the hardest.

A nightly run that repeats one selection finds every batch already stored and brings nothing
new. ``unseen`` takes the next prompts with no generations for this model and sampling (the
content hash a generation's id is made of, so "seen" means exactly what the generate stage
would skip); ``sample`` draws a seeded sample (``seed: date``: a new one every UTC night);
``hardest`` takes the prompts whose responses broke the most rules, then those whose pairs the
judge was least sure of. ``all`` is the set's first ``limit`` prompts, as before.

A selection is resolved once, before its run starts, and recorded in the run's parameters
(``selection``: the resolved seed and the prompt ids). When the latest run with the same
request did not complete (it failed, was killed or cancelled), the next one takes that run's
prompts again instead: its critique and label stages then finish what its generate began,
and a rerun ends with the rows an uninterrupted run would have written.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import date
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator

from tasks.backends.base import SamplingSettings
from tasks.core.hashing import content_id
from tasks.generate.generation import PromptItem, generation_id, ordered_prompts, select_prompts
from tasks.ingest.prompt_sets import default_prompt_set_name, load_prompt_set
from tasks.store.store import Store

SelectMode = Literal["all", "unseen", "sample", "hardest"]
DATE_SEED = "date"
# Judge margins |p - 0.5| are at most 0.5: a prompt with no judge label ranks after every judged
# prompt with as many rule breaks.
_NO_JUDGE_MARGIN = 1.0


class SelectionSettings(BaseModel):
    """How a run picks its prompts; ``families`` and ``limit`` narrow the set before and after."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    select: SelectMode = Field(
        default="all",
        description="all (the first prompts of the set), unseen (not yet generated for this model "
        "and sampling), sample (seeded), hardest (most rules broken, then the judge least sure).",
    )
    seed: int | Literal["date"] = Field(
        default=DATE_SEED,
        description="select sample: its seed, or date (the run's date in UTC as YYYYMMDD: "
        "a new sample each night).",
    )

    @field_validator("seed", mode="before")
    @classmethod
    def _number_or_date(cls, value: Any) -> int | str:
        """One plain message for every wrong value (a union would report one per member)."""
        if value == DATE_SEED or (isinstance(value, int) and not isinstance(value, bool)):
            return value
        if isinstance(value, str) and value.strip().lstrip("-").isdigit():  # a command-line value
            return int(value)
        raise ValueError(f"must be a whole number or {DATE_SEED} (the run's date in UTC), got {value!r}")

    def seed_for(self, today: date) -> int:
        """The sample's seed: the number given, or ``today`` as YYYYMMDD."""
        return int(today.strftime("%Y%m%d")) if self.seed == DATE_SEED else int(self.seed)


@dataclass(frozen=True)
class GenerationIdentity:
    """What a generation's id hashes besides its prompt and sample index."""

    model_id: str
    backend: str
    sampling: SamplingSettings

    def ids(self, prompt_id: str) -> set[str]:
        """The ids of the prompt's ``n`` samples: it is generated when all of them are stored."""
        return {
            generation_id(prompt_id, self.model_id, self.backend, self.sampling, index)
            for index in range(self.sampling.n)
        }

    def describe(self) -> str:
        return f"model {self.model_id} ({self.backend}) with these sampling settings"


@dataclass(frozen=True)
class Difficulty:
    """The store's evidence that a prompt is hard for the models that answered it."""

    rule_breaks: int = 0
    """Distinct (response, rule) pairs a rule label held against one of the prompt's responses."""
    judge_margin: float | None = None
    """The smallest |p - 0.5| of the judge's log-prob labels on the prompt's pairs (None: no label)."""


@dataclass(frozen=True)
class Selection:
    """A resolved selection: the prompts in the order the run takes them, and how they were chosen."""

    select: SelectMode
    key: str
    """Hashes the request (flow, set, selection, model, sampling, scope): what a resume matches."""
    prompt_ids: tuple[str, ...]
    summary: str
    """One line for the log: how the prompts were chosen, or that the set is exhausted."""
    seed: int | None = None
    resumed_from: str | None = None

    @property
    def exhausted(self) -> bool:
        return not self.prompt_ids

    def record(self) -> dict[str, Any]:
        """The run parameter ``selection``: what a later run needs to resume it, and what an audit reads."""
        return {
            "select": self.select,
            "seed": self.seed,
            "key": self.key,
            "prompt_ids": list(self.prompt_ids),
            "resumed_from": self.resumed_from,
        }


def unseen(items: Sequence[PromptItem], identity: GenerationIdentity, stored: set[str]) -> list[PromptItem]:
    """The prompts not every sample of which is in ``stored`` (generation ids), in set order."""
    return [item for item in items if not identity.ids(item.prompt_id) <= stored]


def seeded_sample(items: Sequence[PromptItem], seed: int) -> list[PromptItem]:
    """Every prompt, in an order drawn from ``seed``; the first N are the sample.

    Each prompt's rank hashes the seed and its id alone, so prompts added to the set later do
    not reshuffle the others, and the same seed picks the same prompts whatever the store holds.
    """
    return sorted(
        items, key=lambda item: content_id("prompt_sample", {"seed": seed, "prompt": item.prompt_id})
    )


def difficulties(labels: Iterable[Mapping[str, Any]]) -> dict[str, Difficulty]:
    """Per prompt, its rule breaks and the judge's smallest margin, from ``ai_labels`` rows.

    Only log-prob labels measure the judge's certainty: chain-of-thought labels are clamped to
    0.4-0.6 by design, so their distance from 0.5 would make every such pair look unsure.
    """
    broken: dict[str, set[tuple[str, str]]] = {}
    margins: dict[str, float] = {}
    for row in labels:
        prompt = row["prompt_id"]
        if row["method"] == "rule" and row["preferred_id"] is not None:
            loser = (
                row["response_b_id"] if row["preferred_id"] == row["response_a_id"] else row["response_a_id"]
            )
            broken.setdefault(prompt, set()).add((loser, row["rule_id"]))
        elif row["method"] == "logprob":
            margin = abs(row["p_a"] - 0.5)
            margins[prompt] = min(margin, margins.get(prompt, margin))
    return {
        prompt: Difficulty(len(broken.get(prompt, ())), margins.get(prompt))
        for prompt in broken.keys() | margins.keys()
    }


def hardest_first(items: Sequence[PromptItem], evidence: Mapping[str, Difficulty]) -> list[PromptItem]:
    """Most rule breaks first, then the smallest judge margin, then set order.

    Prompts with no evidence come last (in set order), not dropped: on a young store a nightly
    ``hardest`` run still does its ``limit`` of work, and that work is the next night's evidence.
    """

    def rank(entry: tuple[int, PromptItem]) -> tuple[int, int, float, int]:
        position, item = entry
        found = evidence.get(item.prompt_id)
        if found is None:
            return (1, 0, 0.0, position)
        margin = found.judge_margin if found.judge_margin is not None else _NO_JUDGE_MARGIN
        return (0, -found.rule_breaks, margin, position)

    return [item for _, item in sorted(enumerate(items), key=rank)]


def candidate_prompts(
    store: Store, prompts: str, families: Sequence[str] | None
) -> tuple[str, list[PromptItem]]:
    """The set's name and its prompts in set order: from the file when ``prompts`` is one (it may
    not be imported yet: a run resolves its selection before it imports), else from the store."""
    if not Path(prompts).is_file():
        return prompts, select_prompts(store, prompts, families=families)
    records = [r for r in load_prompt_set(prompts) if not families or r.family in families]
    items = ordered_prompts((r.source_id, PromptItem(r.prompt_id, r.family, r.messages)) for r in records)
    return default_prompt_set_name(prompts), items


def unfinished_selection(store: Store, flow: str, key: str) -> tuple[str, dict[str, Any]] | None:
    """The run id and recorded selection of the latest ``flow`` run with this key, if it did not complete."""
    started: dict[str, tuple[Any, dict[str, Any]]] = {}
    statuses: dict[str, set[str]] = {}
    for row in store.read("runs", ["run_id", "flow", "status", "parameters", "created_at"]).to_pylist():
        if row["flow"] != flow:
            continue
        statuses.setdefault(row["run_id"], set()).add(row["status"])
        recorded = json.loads(row["parameters"]).get("selection")
        if row["status"] == "started" and isinstance(recorded, dict) and recorded.get("key") == key:
            started[row["run_id"]] = (row["created_at"], recorded)
    if not started:
        return None
    latest = max(started, key=lambda run: started[run][0])
    return None if "completed" in statuses[latest] else (latest, started[latest][1])


def resolve_selection(
    store: Store,
    prompts: str,
    settings: SelectionSettings,
    identity: GenerationIdentity,
    *,
    families: Sequence[str] | None,
    limit: int | None,
    flow: str,
    scope: Mapping[str, Any],
    today: date,
) -> Selection:
    """The prompts a ``flow`` run takes from ``prompts`` (a prompt-set file or a set in the store).

    ``scope`` is what else makes two runs the same request (the pipeline's stages): a run resumes
    only an unfinished run of the same flow, set, selection, model, sampling and scope.
    """
    prompt_set, items = candidate_prompts(store, prompts, families)
    request = {
        "flow": flow,
        "scope": dict(scope),
        "prompt_set": prompt_set,
        "families": list(families or []),
        "limit": limit,
        "selection": settings.model_dump(),
        "model": identity.model_id,
        "backend": identity.backend,
        "sampling": identity.sampling.as_dict(),
    }
    key = content_id("prompt_selection", request)
    unfinished = unfinished_selection(store, flow, key)
    if unfinished is not None:
        run_id, recorded = unfinished
        ids = tuple(recorded["prompt_ids"])
        return Selection(
            select=settings.select,
            key=key,
            prompt_ids=ids,
            summary=f"select {settings.select}: resuming the {len(ids)} prompts of run {run_id}, "
            "which did not complete",
            seed=recorded["seed"],
            resumed_from=run_id,
        )
    seed = settings.seed_for(today) if settings.select == "sample" else None
    ordered, how = _ordered(store, items, settings.select, identity, seed)
    chosen = tuple(item.prompt_id for item in (ordered[:limit] if limit is not None else ordered))
    if chosen or not items:
        summary = f"select {settings.select}: {len(chosen)} of {len(items)} prompts, {how}"
    else:  # only unseen can leave a non-empty set with nothing to take
        summary = (
            f"prompt set {prompt_set} is exhausted: all {len(items)} prompts are generated for "
            f"{identity.describe()}; nothing to do"
        )
    return Selection(settings.select, key, chosen, summary, seed)


def _ordered(
    store: Store,
    items: Sequence[PromptItem],
    select: SelectMode,
    identity: GenerationIdentity,
    seed: int | None,
) -> tuple[list[PromptItem], str]:
    """The candidates in the order ``select`` takes them, and how that order was made."""
    match select:
        case "unseen":
            stored = set(store.read("generations", ["generation_id"]).column("generation_id").to_pylist())
            fresh = unseen(items, identity, stored)
            return fresh, f"the first of {len(fresh)} not yet generated for {identity.describe()}"
        case "sample":
            assert seed is not None  # resolved for every sample
            return seeded_sample(items, seed), f"a sample drawn with seed {seed}"
        case "hardest":
            columns = [
                "prompt_id",
                "method",
                "preferred_id",
                "response_a_id",
                "response_b_id",
                "rule_id",
                "p_a",
            ]
            evidence = difficulties(store.read("ai_labels", columns).to_pylist())
            known = sum(1 for item in items if item.prompt_id in evidence)
            return hardest_first(items, evidence), (
                f"hardest first ({known} with rule or judge evidence, then the rest in set order)"
            )
        case _:
            return list(items), "in set order"
