"""Evaluate a tuned model against its base on held-out prompts: the data behind the scoreboard.

Both models sample one response per prompt (same seeds, temperature 1 by default so the KL
estimate below is unbiased). Each response gets its deterministic behaviour facts (rules,
escalation, refusal, length), a reward-model score when a reward model is given, and for
the tuned model the log-ratio log pi_tuned(y) - log pi_base(y), whose mean over the tuned
model's own samples estimates KL(tuned || base). Win rates compare the two responses to each
prompt by the reward model and by the AI judge (both orders, as ``charter label`` does).
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from pydantic import BaseModel, ConfigDict, Field

from tasks.backends.base import Backend, SamplingSettings
from tasks.constitution.model import Constitution, load_constitution
from tasks.core.conversation import Message
from tasks.core.errors import CharterError
from tasks.evaluate.scoreboard import (
    LengthCheck,
    behaviour,
    family_table,
    length_check,
    principle_table,
    win_rates,
)
from tasks.generate.generation import PromptItem, prompt_seed, select_prompts
from tasks.label.judge import JudgeSettings, judge, plan_comparisons
from tasks.label.pairs import make_pair
from tasks.merge.preference_sets import read_set
from tasks.store.store import Store
from tasks.train.lineage import SCOREBOARD_FILE, read_lineage, write_json_atomically
from tasks.train.logprobs import sequence_logprobs


@dataclass
class Evaluation:
    responses: list[dict[str, Any]] = field(default_factory=list)
    families: list[dict[str, Any]] = field(default_factory=list)
    principles: list[dict[str, Any]] = field(default_factory=list)
    wins: list[dict[str, Any]] = field(default_factory=list)
    length: LengthCheck | None = None


def sample_responses(
    backend: Backend, prompts: Sequence[PromptItem], max_tokens: int, temperature: float, seed: int
) -> list[str]:
    sampling = SamplingSettings(n=1, temperature=temperature, top_p=1.0, max_tokens=max_tokens, seed=seed)
    seeds = [prompt_seed(seed, p.prompt_id) for p in prompts]
    return [c[0].text for c in backend.generate([list(p.messages) for p in prompts], sampling, seeds)]


def evaluate(
    base: Backend,
    tuned: Backend,
    prompts: Sequence[PromptItem],
    constitution: Constitution,
    *,
    reward_scorer: Any = None,
    judge_backend: Backend | None = None,
    max_tokens: int = 64,
    temperature: float = 1.0,
    seed: int = 0,
) -> Evaluation:
    """Sample, score and compare; ``reward_scorer(conversations, responses) -> scores`` is optional."""
    result = Evaluation()
    texts = {
        name: sample_responses(backend, prompts, max_tokens, temperature, seed)
        for name, backend in (("base", base), ("tuned", tuned))
    }
    conversations = [list(p.messages) for p in prompts]
    rewards = {name: reward_scorer(conversations, t) if reward_scorer else None for name, t in texts.items()}
    tuned_logprobs = sequence_logprobs(tuned.model, tuned.tokenizer, conversations, texts["tuned"])
    reference_logprobs = sequence_logprobs(base.model, base.tokenizer, conversations, texts["tuned"])
    for name in ("base", "tuned"):
        for index, prompt in enumerate(prompts):
            row = {
                "model": name,
                "family": prompt.family,
                "prompt_id": prompt.prompt_id,
                "response": texts[name][index],
                **behaviour(constitution, prompt.family, prompt.messages, texts[name][index]),
                "reward": rewards[name][index] if rewards[name] is not None else None,
                "kl": tuned_logprobs[index] - reference_logprobs[index] if name == "tuned" else 0.0,
            }
            result.responses.append(row)
    result.families = family_table(result.responses)
    result.principles = principle_table(result.responses)
    contests = []
    if rewards["base"] is not None:
        for prompt, base_score, tuned_score in zip(prompts, rewards["base"], rewards["tuned"], strict=True):
            p_tuned = 1.0 if tuned_score > base_score else 0.0 if tuned_score < base_score else 0.5
            contests.append({"judge": "reward model", "family": prompt.family, "p_tuned": p_tuned})
    if judge_backend is not None:
        contests.extend(_judge_contests(judge_backend, prompts, texts, constitution))
    result.wins = win_rates(contests)
    by_model = {name: [r for r in result.responses if r["model"] == name] for name in ("base", "tuned")}
    result.length = length_check(by_model["base"], by_model["tuned"])
    return result


def _judge_contests(
    backend: Backend, prompts: Sequence[PromptItem], texts: dict[str, list[str]], constitution: Constitution
) -> list[dict[str, Any]]:
    """The AI judge's P(tuned better) per prompt (both orders); identical responses are a tie."""
    settings = JudgeSettings(methods=("logprob",))
    contests, pairs = [], []
    for prompt, base_text, tuned_text in zip(prompts, texts["base"], texts["tuned"], strict=True):
        pair = make_pair(prompt, base_text, tuned_text)
        if pair is None:
            contests.append({"judge": "ai judge", "family": prompt.family, "p_tuned": 0.5})
        else:
            pairs.append((pair, tuned_text))
    comparisons = plan_comparisons(
        [p for p, _ in pairs], constitution, settings, backend.model_id, backend.name
    )
    labels = {row["pair_id"]: row for row in judge(backend, comparisons, constitution, settings)}
    for pair, tuned_text in pairs:
        label = labels[pair.pair_id]
        p_tuned = label["p_a"] if pair.response_a == tuned_text else 1 - label["p_a"]
        contests.append({"judge": "ai judge", "family": pair.prompt.family, "p_tuned": p_tuned})
    return contests


def held_out_prompts(store: Store, prompt_set: str, seen: set[str], per_family: int) -> list[PromptItem]:
    """Up to ``per_family`` prompts of each family that no training pair came from, in set order."""
    kept: dict[str | None, list[PromptItem]] = {}
    for prompt in select_prompts(store, prompt_set):
        group = kept.setdefault(prompt.family, [])
        if prompt.prompt_id not in seen and len(group) < per_family:
            group.append(prompt)
    return [prompt for group in kept.values() for prompt in group]


class EvaluationSettings(BaseModel):
    """What a scoreboard is made with; saved in it, so the same evaluation asked again is reused."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    constitution_path: str
    prompt_set: str
    per_family: int = Field(default=2, ge=1)
    reward_model: str | None = None
    use_judge: bool = True
    max_tokens: int = Field(default=64, ge=1)
    seed: int = 0


def evaluate_checkpoint(store: Store, checkpoint: str | Path, settings: EvaluationSettings) -> dict[str, Any]:
    """The scoreboard of a policy checkpoint against its base model, as plain data (also saved beside it)."""
    from tasks.backends.hf import HFBackend
    from tasks.backends.models import ResolvedModel

    path = Path(checkpoint) / SCOREBOARD_FILE
    previous = _finished_scoreboard(path, settings.model_dump())
    if previous is not None:
        return previous
    lineage = read_lineage(checkpoint)
    if "model_path" not in lineage:
        raise CharterError(
            f"{checkpoint} is a {lineage['kind']} checkpoint, not a policy: evaluate a dpo or ppo one"
        )
    seen = {row["prompt_id"] for row in read_set(store, lineage["preference_set"])[1]}
    prompts = held_out_prompts(store, settings.prompt_set, seen, settings.per_family)
    if not prompts:
        raise CharterError(f"prompt set {settings.prompt_set!r} has no prompts the training set did not use")
    base = HFBackend(ResolvedModel(lineage["base_model_path"], lineage["base_model"]))
    tuned = HFBackend(ResolvedModel(lineage["model_path"], f"{lineage['kind']}:{Path(checkpoint).name}"))
    scorer = None
    if settings.reward_model:
        from tasks.train.reward_model import load_reward_model, score_texts

        model, tokenizer, metadata = load_reward_model(settings.reward_model)
        max_length = metadata["config"]["max_length"]

        def scorer(conversations: list[list[Message]], responses: list[str]) -> list[float]:
            return score_texts(model, tokenizer, conversations, responses, max_length, 16)

    result = evaluate(
        base,
        tuned,
        prompts,
        load_constitution(settings.constitution_path),
        reward_scorer=scorer,
        judge_backend=base if settings.use_judge else None,
        max_tokens=settings.max_tokens,
        seed=settings.seed,
    )
    report = {
        "settings": settings.model_dump(),
        "checkpoint": str(checkpoint),
        "reward_model": settings.reward_model,
        "prompts": len(prompts),
        "families": result.families,
        "principles": result.principles,
        "win_rates": result.wins,
        "length_check": asdict(result.length) if result.length else None,
        "responses": result.responses,
    }
    write_json_atomically(path, report)
    return report


def _finished_scoreboard(path: Path, settings: dict[str, Any]) -> dict[str, Any] | None:
    """The scoreboard already made with exactly these settings (sampling is seeded), if any."""
    if not path.is_file():
        return None
    report = json.loads(path.read_text(encoding="utf-8"))
    return report if report.get("settings") == settings else None
