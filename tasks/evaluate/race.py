"""The arithmetic of a race between candidate policies (``charter compare``), without a model.

Every candidate checkpoint and every distinct base model is an *entrant*: each answers the same
held-out prompts once, with the same seeds, and every comparison reads those answers. The
held-out prompts are held out from *every* candidate's training (the union of their training
prompts), so no candidate is scored on prompts it learnt from. The win-rate matrix counts, per
judge (the reward model, the AI judge) and family, how often one entrant's answer to a prompt
beat another's; a tie counts half, so ``win(a, b) + win(b, a) = 1`` for every pair.
"""

from __future__ import annotations

import json
import statistics
from collections import defaultdict
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from tasks.core.errors import CharterError
from tasks.generate.generation import PromptItem
from tasks.store.store import Store

ALL = "(all)"
JUDGES = ("reward model", "ai judge")


@dataclass(frozen=True)
class Entrant:
    """One model in the race: a candidate checkpoint or a base one or more candidates started from."""

    name: str
    role: str  # "candidate" or "base"
    model_path: str
    model_id: str
    checkpoint: str | None = None
    base: str | None = None  # a candidate's base entrant's name
    lineage: dict[str, Any] = field(default_factory=dict)


def race_entrants(checkpoints: Sequence[tuple[str, dict[str, Any]]]) -> list[Entrant]:
    """The candidates (``(folder, lineage)`` each), in the given order, then their distinct bases.

    A candidate is named by its folder (a repeated folder name gets ``#2``, ...); a base by its
    model id. Anything but a policy checkpoint, or the same checkpoint twice, is refused.
    """
    names: list[str] = []
    seen: set[str] = set()
    for folder, lineage in checkpoints:
        if "model_path" not in lineage or "base_model_path" not in lineage:
            raise CharterError(
                f"{folder} is a {lineage.get('kind')!r} checkpoint, not a policy: compare dpo, ppo, "
                "grpo or sft checkpoints"
            )
        resolved = str(Path(folder).resolve())
        if resolved in seen:
            raise CharterError(f"{folder} is given twice: each candidate races once")
        seen.add(resolved)
        names.append(_unique(Path(folder).name, names))
    bases: dict[str, Entrant] = {}
    candidates = []
    for name, (folder, lineage) in zip(names, checkpoints, strict=True):
        path = lineage["base_model_path"]
        if path not in bases:
            base_name = _unique(
                f"base {lineage.get('base_model') or Path(path).name}",
                [*names, *(b.name for b in bases.values())],
            )
            bases[path] = Entrant(base_name, "base", path, lineage.get("base_model") or path)
        candidates.append(
            Entrant(
                name,
                "candidate",
                lineage["model_path"],
                f"{lineage['kind']}:{name}",
                checkpoint=str(folder),
                base=bases[path].name,
                lineage=lineage,
            )
        )
    return [*candidates, *bases.values()]


def _unique(name: str, taken: Sequence[str]) -> str:
    if name not in taken:
        return name
    return next(f"{name}#{n}" for n in range(2, len(taken) + 2) if f"{name}#{n}" not in taken)


def race_prompts(
    store: Store, prompt_set: str, trained_on: Mapping[str, set[str]], per_family: int
) -> list[PromptItem]:
    """Up to ``per_family`` prompts of each family that no candidate trained on (``trained_on``:
    candidate -> its training prompt ids), in set order; none left is refused."""
    from tasks.evaluate.evaluation import held_out_prompts

    union = set().union(*trained_on.values())
    prompts = held_out_prompts(store, prompt_set, union, per_family)
    if not prompts:
        raise CharterError(
            f"prompt set {prompt_set!r} has no prompt that none of the {len(trained_on)} candidates trained "
            f"on ({len(union)} training prompts between them): compare on another prompt set"
        )
    return prompts


def outcome(p_first: float) -> float:
    """1 when the first answer is judged better, 0 when the second is, half for a tie."""
    return 1.0 if p_first > 0.5 else 0.0 if p_first < 0.5 else 0.5


def reward_contests(
    prompts: Sequence[PromptItem], first: str, second: str, rewards: Mapping[str, Sequence[float]]
) -> list[dict[str, Any]]:
    """Per prompt, the reward model's verdict between two entrants' answers (the higher score wins)."""
    return [
        {
            "judge": "reward model",
            "family": prompt.family,
            "first": first,
            "second": second,
            "p_first": 1.0 if a > b else 0.0 if a < b else 0.5,
        }
        for prompt, a, b in zip(prompts, rewards[first], rewards[second], strict=True)
    ]


def win_matrix(contests: Sequence[dict[str, Any]]) -> list[dict[str, Any]]:
    """Per judge, family (and ``(all)``) and ordered pair of entrants: prompts and win rate.

    Each contest is one prompt's verdict between ``first`` and ``second`` (``p_first``:
    P(first better)); it counts for both orders of the pair, as a win for one and a loss for
    the other.
    """
    groups: dict[tuple[str, str, str, str], list[float]] = defaultdict(list)
    for contest in contests:
        won = outcome(contest["p_first"])
        a, b = contest["first"], contest["second"]
        for family in (contest["family"] or "(none)", ALL):
            groups[(contest["judge"], family, a, b)].append(won)
            groups[(contest["judge"], family, b, a)].append(1.0 - won)
    return [
        {
            "judge": judge,
            "family": family,
            "model": model,
            "opponent": opponent,
            "prompts": len(v),
            "win_rate": sum(v) / len(v),
        }
        for (judge, family, model, opponent), v in sorted(groups.items())
    ]


def matrix_cell(matrix: Sequence[dict[str, Any]], judge: str, model: str, opponent: str) -> float | None:
    """``model``'s overall win rate over ``opponent`` by ``judge`` (None: not compared)."""
    return next(
        (
            row["win_rate"]
            for row in matrix
            if (row["judge"], row["family"], row["model"], row["opponent"]) == (judge, ALL, model, opponent)
        ),
        None,
    )


def standings(
    entrants: Sequence[Entrant],
    families: Sequence[dict[str, Any]],
    matrix: Sequence[dict[str, Any]],
    preference: Mapping[str, dict[str, Any]] | None = None,
) -> list[dict[str, Any]]:
    """One row per entrant: its overall scoreboard figures, its win rate over its own base and its
    mean win rate over the rest of the field (each judge), and its held-out preference accuracy."""
    overall = {row["model"]: row for row in families if row["family"] == ALL}
    rows = []
    for entrant in entrants:
        figures = overall.get(entrant.name, {})
        others = [e.name for e in entrants if e.name != entrant.name]
        row: dict[str, Any] = {
            "model": entrant.name,
            "role": entrant.role,
            "kind": entrant.lineage.get("kind", "base"),
            "prompts": figures.get("responses"),
            **{key: figures.get(key) for key in ("reward", "rule_pass_rate", "escalation_rate")},
            **{key: figures.get(key) for key in ("refusal_rate", "words")},
            "kl_to_base": figures.get("kl_to_reference") if entrant.role == "candidate" else None,
        }
        for judge, tag in zip(JUDGES, ("rm", "judge"), strict=True):
            cells = [c for o in others if (c := matrix_cell(matrix, judge, entrant.name, o)) is not None]
            row[f"field_win_rate_{tag}"] = statistics.fmean(cells) if cells else None
            versus = matrix_cell(matrix, judge, entrant.name, entrant.base) if entrant.base else None
            row[f"base_win_rate_{tag}"] = versus
        accuracy = (preference or {}).get(entrant.name) or {}
        row["implicit_reward_accuracy"] = accuracy.get("implicit_reward_accuracy")
        row["logprob_margin_accuracy"] = accuracy.get("logprob_margin_accuracy")
        rows.append(row)
    return rows


def lineage_summary(entrant: Entrant) -> dict[str, Any]:
    """What made a candidate: kind, run, base, preference set, and the checkpoint it started from."""
    lineage = entrant.lineage
    return {
        "model": entrant.name,
        "checkpoint": entrant.checkpoint,
        "kind": lineage.get("kind"),
        "run_id": lineage.get("run_id"),
        "base_model": lineage.get("base_model"),
        "preference_set": lineage.get("preference_set"),
        "start_checkpoint": start_checkpoint(lineage),
        "created_at": lineage.get("created_at"),
    }


# Where a checkpoint trained from another charter checkpoint (an SFT one, say) names it.
def start_checkpoint(lineage: Mapping[str, Any]) -> str | None:
    """The checkpoint a candidate started from (an SFT stage), as its lineage names it."""
    return str(lineage["start_checkpoint"]) if lineage.get("start_checkpoint") else None


def latest_race(store_root: str | Path) -> dict[str, Any] | None:
    """The most recently run race under ``STORE/compare`` (``charter compare``), if any."""
    races = [
        json.loads(path.read_text(encoding="utf-8"))
        for path in sorted((Path(store_root) / "compare").glob("*/compare.json"))
    ]
    return max(races, key=lambda race: race["created_at"]) if races else None
