"""A race between candidate policies (``charter compare``): every candidate and its base on the
same held-out prompts, with the same seeds, judged by the same reward model and AI judge.

Each entrant (:mod:`tasks.evaluate.race`: the candidates, then their distinct bases) is loaded
once, answers every prompt once (held-out prompts, then the stress set's), and is closed before
the next loads, so one GPU never holds two engines; a base also scores its candidates' held-out
answers for their KL. Every comparison then reads those answers: each candidate's scoreboard
against its base (:func:`tasks.evaluate.evaluation.compare_with_base`, the stress tables of
:func:`tasks.stress.tables.stress_report`), the win-rate matrix of every entrant over every
other by the reward model and by the AI judge (both orders, as ``charter eval`` judges), and
with a held-out preference file each candidate's preference accuracy. The result is
``STORE/compare/<id>/compare.json``, its folder named by the hash of what made it, so the
same race asked again is read back instead of run.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from datetime import UTC, datetime
from itertools import combinations
from pathlib import Path
from typing import Any

from tasks.backends.base import Backend
from tasks.backends.loading import load_backend
from tasks.backends.models import ResolvedModel
from tasks.backends.settings import concrete
from tasks.constitution.model import Constitution, load_constitution
from tasks.core.hashing import content_id, file_sha256
from tasks.core.progress import progress
from tasks.evaluate.evaluation import (
    EvaluationSettings,
    Rewards,
    _judge_contests,
    _judges_with_base,
    _opened,
    _scored,
    _split,
    compare_with_base,
    sample_responses,
    scoreboard_fields,
    split_rewards,
    training_prompt_ids,
)
from tasks.evaluate.preference_eval_inputs import HeldOutPairs, held_out_pairs, overlaps
from tasks.evaluate.preferences import policy_preference_accuracy
from tasks.evaluate.race import (
    Entrant,
    lineage_summary,
    race_entrants,
    race_prompts,
    reward_contests,
    standings,
    win_matrix,
)
from tasks.evaluate.settings import CompareSettings
from tasks.generate.generation import PromptItem
from tasks.store.store import Store
from tasks.stress.stress_set import StressPrompt, select_stress
from tasks.train.lineage import as_recorded, read_lineage, write_json_atomically

COMPARE_FILE = "compare.json"


class ComparisonSettings(EvaluationSettings, CompareSettings):
    """What a race is made with: the candidates, the evaluation's inputs and settings, and the
    held-out preference file; recorded in ``compare.json`` with the candidates' lineage."""

    checkpoints: tuple[str, ...]
    preferences: str | None = None


def race_identity(settings: ComparisonSettings, field: Sequence[Entrant]) -> dict[str, Any]:
    """Everything a race's result depends on: its settings, each candidate's lineage identity (a
    checkpoint trained again in the same folder is another candidate) and the files it read."""
    files = [settings.constitution_path, settings.stress, settings.preferences]
    reward_model = read_lineage(settings.reward_model) if settings.reward_model else {}
    return {
        "settings": settings.model_dump(),
        "reward_model": {"run_id": reward_model.get("run_id"), "created": reward_model.get("created_at")},
        "candidates": [
            {
                "checkpoint": e.checkpoint,
                "run_id": e.lineage.get("run_id"),
                "created": e.lineage.get("created_at"),
            }
            for e in field
            if e.role == "candidate"
        ],
        "files": {path: file_sha256(path) for path in files if path and Path(path).is_file()},
    }


def compare_folder(store: Store, identity: dict[str, Any]) -> Path:
    return store.root / "compare" / content_id("compare", identity)[:12]


def compare_checkpoints(store: Store, settings: ComparisonSettings) -> dict[str, Any]:
    """Race the candidates; the result as plain data, saved as ``compare.json`` (or read back).

    Every input is checked (policies only, held-out prompts left, the stress set and the
    preference file never trained on) before any model loads.
    """
    field = race_entrants([(c, read_lineage(c)) for c in settings.checkpoints])
    identity = race_identity(settings, field)
    path = compare_folder(store, identity) / COMPARE_FILE
    done = json.loads(path.read_text(encoding="utf-8")) if path.is_file() else {}
    if done.get("identity") == as_recorded(identity):
        return {**done, "path": str(path), "reused": True}
    candidates = [e for e in field if e.role == "candidate"]
    trained = {e.name: training_prompt_ids(store, e.lineage) for e in candidates}
    prompts = race_prompts(store, settings.prompt_set, trained, settings.per_family)
    constitution = load_constitution(settings.constitution_path)
    union = set().union(*trained.values())
    stress = (
        select_stress(settings.stress, constitution, settings.stress_per_type, union)
        if settings.stress
        else []
    )
    held_out = _held_out_preferences(store, settings, candidates)
    asked = [*prompts, *(item.prompt for item in stress)]
    texts, log_ratios, contests, judge, sampling = _run_field(field, asked, prompts, settings, constitution)
    held, rest = _split(texts, len(prompts))
    rewards, stress_rewards = split_rewards(_scored(settings.reward_model, asked, texts), len(prompts))
    boards = {
        e.name: _candidate_board(
            e, prompts, stress, constitution, settings, held, rest, log_ratios, rewards, stress_rewards
        )
        for e in candidates
    }
    families = _as_entrants(field, boards, "families")
    if rewards is not None:
        for first, second in combinations([e.name for e in field], 2):
            contests += reward_contests(
                prompts, first, second, {n: means for n, (means, _) in rewards.items()}
            )
    matrix = win_matrix(contests)
    preference = _preference_accuracy(candidates, held_out)
    report = {
        "identity": identity,
        "settings": settings.model_dump(),
        "created_at": datetime.now(UTC).isoformat(timespec="seconds"),
        "reward_model": settings.reward_model,
        "judge": judge,
        "prompts": len(prompts),
        "prompt_ids": [p.prompt_id for p in prompts],
        "trained_on": {name: len(seen) for name, seen in trained.items()},
        "entrants": [
            {"name": e.name, "role": e.role, "model": e.model_id, "checkpoint": e.checkpoint, "base": e.base}
            for e in field
        ],
        "lineage": [lineage_summary(e) for e in candidates],
        "standings": standings(field, families, matrix, (preference or {}).get("accuracy")),
        "families": families,
        "win_matrix": matrix,
        "preferences": preference,
        "candidates": {
            name: {k: v for k, v in board.items() if k != "responses"} for name, board in boards.items()
        },
        "responses": _as_entrants(field, boards, "responses"),
        "sampling": sampling,
    }
    write_json_atomically(path, report)
    return {**report, "path": str(path), "reused": False}


def _run_field(
    field: Sequence[Entrant],
    asked: Sequence[PromptItem],
    prompts: Sequence[PromptItem],
    settings: ComparisonSettings,
    constitution: Constitution,
) -> tuple[dict[str, list[str]], dict[str, list[float]], list[dict[str, Any]], dict[str, str] | None, dict]:
    """Each entrant's answers (loaded once, in turn), each candidate's log-ratios to its base on
    its held-out answers, the AI judge's contests, the judge's identity, and the sampling figures.

    When the judge is a base model as loaded, that base goes last and judges while it is open.
    """
    kind = concrete(settings.policy_backend).kind
    options = settings.policy_backend.options
    conversations = [list(p.messages) for p in prompts]
    sample = {"max_tokens": settings.max_tokens, "temperature": 1.0, "seed": settings.seed}
    bases = [e for e in field if e.role == "base"]
    judging = next(
        (
            b
            for b in bases
            if settings.judge and _judges_with_base(settings.judge_model, kind, b.model_path, options)
        ),
        None,
    )
    order = [*(e for e in field if e.role == "candidate"), *(b for b in bases if b is not judging)]
    texts: dict[str, list[str]] = {}
    own: dict[str, list[float]] = {}
    reference: dict[str, list[float]] = {}
    contests: list[dict[str, Any]] = []
    judge = None
    with progress("race sampling", total=len(field) * len(asked), unit="responses") as bar:
        for entrant in [*order, *([judging] if judging else [])]:
            with _opened(kind, ResolvedModel(entrant.model_path, entrant.model_id), options) as model:
                texts[entrant.name] = sample_responses(model, asked, **sample)
                bar.advance(len(asked))
                mine = texts[entrant.name][: len(prompts)]
                if entrant.role == "candidate":
                    own[entrant.name] = model.sequence_logprobs(conversations, mine)
                for candidate in (e for e in field if e.base == entrant.name):
                    answers = texts[candidate.name][: len(prompts)]
                    reference[candidate.name] = model.sequence_logprobs(conversations, answers)
                if entrant is judging:
                    contests, judge = _judged(model, field, prompts, texts, constitution)
    if settings.judge and judging is None:  # another model: loaded once every entrant is closed
        contests, judge = _judged(load_backend(settings.judge_model), field, prompts, texts, constitution)
    log_ratios = {name: [t - r for t, r in zip(own[name], reference[name], strict=True)] for name in own}
    return texts, log_ratios, contests, judge, bar.figures().as_dict()


def _judged(
    backend: Backend,
    field: Sequence[Entrant],
    prompts: Sequence[PromptItem],
    texts: dict[str, list[str]],
    constitution: Constitution,
) -> tuple[list[dict[str, Any]], dict[str, str]]:
    """The AI judge's verdict (both orders) on every prompt, for every pair of entrants."""
    count = len(prompts)
    contests = []
    for first, second in combinations([e.name for e in field], 2):
        pair = {"tuned": texts[first][:count], "base": texts[second][:count]}
        for contest in _judge_contests(backend, prompts, pair, constitution):
            contests.append(
                {"judge": "ai judge", "family": contest["family"], "first": first, "second": second}
                | {"p_first": contest["p_tuned"]}
            )
    return contests, {"model": backend.model_id, "backend": backend.name}


def _pick(rewards: Rewards | None, candidate: Entrant) -> Rewards | None:
    """A candidate's and its base's reward figures, under the names ``compare_with_base`` reads."""
    if rewards is None:
        return None
    return {"base": rewards[candidate.base], "tuned": rewards[candidate.name]}  # type: ignore[index]


def _candidate_board(
    candidate: Entrant,
    prompts: Sequence[PromptItem],
    stress: Sequence[StressPrompt],
    constitution: Constitution,
    settings: ComparisonSettings,
    held: dict[str, list[str]],
    rest: dict[str, list[str]],
    log_ratios: dict[str, list[float]],
    rewards: Rewards | None,
    stress_rewards: Rewards | None,
) -> dict[str, Any]:
    """The candidate's scoreboard against its own base, as ``charter eval`` makes it (its AI-judge
    verdicts are in the race's matrix instead)."""
    pair = {"base": held[candidate.base], "tuned": held[candidate.name]}  # type: ignore[index]
    result = compare_with_base(
        prompts, constitution, pair, log_ratios[candidate.name], rewards=_pick(rewards, candidate)
    )
    answers = {"base": rest[candidate.base], "tuned": rest[candidate.name]}  # type: ignore[index]
    return scoreboard_fields(
        result, settings.stress, stress, constitution, answers, _pick(stress_rewards, candidate)
    )


def _as_entrants(
    field: Sequence[Entrant], boards: dict[str, dict[str, Any]], part: str
) -> list[dict[str, Any]]:
    """Every entrant's rows of the boards' ``part`` ("families", "responses") under its own name; a
    base's come from its first candidate's board (every board holds the same base answers)."""
    rows = []
    for entrant in field:
        if entrant.role == "candidate":
            source, model = entrant.name, "tuned"
        else:
            source, model = next(e.name for e in field if e.base == entrant.name), "base"
        rows += [{**row, "model": entrant.name} for row in boards[source][part] if row["model"] == model]
    return rows


def _held_out_preferences(
    store: Store, settings: ComparisonSettings, candidates: Sequence[Entrant]
) -> tuple[HeldOutPairs, list[dict[str, Any]]] | None:
    """The held-out preference records and each candidate's overlap with them, checked before
    any model loads (a candidate trained on some of them is refused unless overlap is allowed)."""
    if settings.preferences is None:
        return None
    pairs = held_out_pairs(settings.preferences, store.root, settings)
    found = overlaps(
        pairs.records, {e.checkpoint: e.lineage for e in candidates}, store.root, settings.allow_overlap
    )
    return pairs, [overlap.as_dict() for overlap in found]


def _preference_accuracy(
    candidates: Sequence[Entrant], held_out: tuple[HeldOutPairs, list[dict[str, Any]]] | None
) -> dict[str, Any] | None:
    """Each candidate's implicit-reward and log-prob margin accuracy on the held-out pairs."""
    if held_out is None:
        return None
    pairs, overlap = held_out
    return {
        "source": pairs.source,
        "pairs": len({r["pair_id"] for r in pairs.records}),
        "records_in_source": pairs.total,
        "overlap": overlap,
        "accuracy": {e.name: policy_preference_accuracy(e.checkpoint, pairs.records) for e in candidates},
    }
