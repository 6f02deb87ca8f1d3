"""Evaluate a tuned model against its base on held-out prompts: the data behind the scoreboard.

Both models sample one response per prompt (same seeds, temperature 1 by default so the KL
estimate below is unbiased). Each response gets its deterministic behaviour facts (rules,
escalation, refusal, length), a reward-model score when a reward model is given (an
ensemble's mean, with the members' spread: :func:`tasks.evaluate.scoreboard.beyond_known`
reads it), and for the tuned model the log-ratio log pi_tuned(y) - log pi_base(y), whose mean
over the tuned model's own samples estimates KL(tuned || base). Win rates compare the two
responses to each prompt by the reward model and by the AI judge (both orders, as ``charter
label`` does). A stress set's prompts (:mod:`tasks.stress`) are sampled in the same passes and
compared per stress type; they never enter the held-out tables.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from pydantic import field_validator

from tasks.backends.base import Backend, PolicyBackend, SamplingSettings
from tasks.backends.loading import load_backend
from tasks.backends.models import ResolvedModel
from tasks.backends.settings import BackendSettings, concrete, model_identity
from tasks.constitution.model import Constitution, load_constitution
from tasks.core.conversation import Message
from tasks.core.errors import CharterError
from tasks.core.progress import progress
from tasks.evaluate.scoreboard import (
    LengthCheck,
    behaviour,
    beyond_known,
    family_table,
    length_check,
    principle_table,
    win_rates,
)
from tasks.evaluate.settings import EvaluateSettings
from tasks.generate.generation import PromptItem, prompt_seed, select_prompts
from tasks.label.judge import JudgeSettings, judge, plan_comparisons
from tasks.label.pairs import make_pair
from tasks.merge.preference_sets import read_set
from tasks.store.store import Store
from tasks.stress.stress_set import select_stress
from tasks.stress.tables import stress_report
from tasks.train.lineage import LINEAGE_FILE, SCOREBOARD_FILE, read_lineage, write_json_atomically
from tasks.train.uncertainty import means_and_stds

# Per model: the reward model's mean score and spread over its members (None for one member),
# one per response.
Rewards = dict[str, tuple[list[float], list[float | None]]]
# Members' scores of responses to conversations: ``scores[k][i]``, member k, response i.
MemberScores = Callable[[Sequence[Sequence[Message]], Sequence[str]], list[list[float]]]


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


def compare_with_base(
    prompts: Sequence[PromptItem],
    constitution: Constitution,
    texts: dict[str, list[str]],
    log_ratios: Sequence[float],
    *,
    rewards: Rewards | None = None,
    judge_backend: Backend | None = None,
) -> Evaluation:
    """Score and compare both models' responses (``texts["base"]``, ``texts["tuned"]``, one per
    prompt); ``log_ratios`` are log pi_tuned(y) - log pi_base(y) of the tuned responses;
    ``rewards[model]`` the reward model's (means, spreads) of them. The reward model and the AI
    judge are optional."""
    result = Evaluation()
    for name in ("base", "tuned"):
        for index, prompt in enumerate(prompts):
            row = {
                "model": name,
                "family": prompt.family,
                "prompt_id": prompt.prompt_id,
                "response": texts[name][index],
                **behaviour(constitution, prompt.family, prompt.messages, texts[name][index]),
                "reward": rewards[name][0][index] if rewards else None,
                "reward_std": rewards[name][1][index] if rewards else None,
                "kl": log_ratios[index] if name == "tuned" else 0.0,
            }
            result.responses.append(row)
    result.families = family_table(result.responses)
    result.principles = principle_table(result.responses)
    contests = []
    if rewards:
        for prompt, base_score, tuned_score in zip(
            prompts, rewards["base"][0], rewards["tuned"][0], strict=True
        ):
            p_tuned = 1.0 if tuned_score > base_score else 0.0 if tuned_score < base_score else 0.5
            contests.append({"judge": "reward model", "family": prompt.family, "p_tuned": p_tuned})
    if judge_backend is not None:
        contests.extend(_judge_contests(judge_backend, prompts, texts, constitution))
    result.wins = win_rates(contests)
    by_model = {name: [r for r in result.responses if r["model"] == name] for name in ("base", "tuned")}
    result.length = length_check(by_model["base"], by_model["tuned"])
    return result


def reward_figures(
    member_scores: MemberScores, conversations: Sequence[Sequence[Message]], texts: dict[str, list[str]]
) -> Rewards:
    """Every model's responses scored by every member in one call, as (means, spreads) per model.

    A single reward model has no spread: its spreads are None, not 0, so no table reads a
    one-member "ensemble" as perfectly sure."""
    names = list(texts)
    members = member_scores([c for _ in names for c in conversations], [t for n in names for t in texts[n]])
    means, stds = means_and_stds(members)
    spreads: list[float | None] = list(stds) if len(members) > 1 else [None] * len(means)
    count = len(conversations)
    return {
        name: (means[i * count : (i + 1) * count], spreads[i * count : (i + 1) * count])
        for i, name in enumerate(names)
    }


def split_rewards(rewards: Rewards | None, count: int) -> tuple[Rewards | None, Rewards | None]:
    """(the first ``count`` responses' figures, the rest's) of every model."""
    if rewards is None:
        return None, None
    head = {name: (means[:count], spreads[:count]) for name, (means, spreads) in rewards.items()}
    tail = {name: (means[count:], spreads[count:]) for name, (means, spreads) in rewards.items()}
    return head, tail


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
    """Up to ``per_family`` prompts of each family that the policy was not trained on, in set order."""
    kept: dict[str | None, list[PromptItem]] = {}
    for prompt in select_prompts(store, prompt_set):
        group = kept.setdefault(prompt.family, [])
        if prompt.prompt_id not in seen and len(group) < per_family:
            group.append(prompt)
    return [prompt for group in kept.values() for prompt in group]


def training_prompt_ids(store: Store, lineage: dict[str, Any]) -> set[str]:
    """The prompts a checkpoint learnt from, which a held-out evaluation must leave out.

    Those of its preference set (DPO's pairs; for PPO and GRPO, its reward model's), the prompts
    PPO's or GRPO's rollouts answered, an SFT checkpoint's revisions' prompts, and, all the way
    down, what the checkpoint it started from (``start_checkpoint``: an SFT stage) learnt from. A
    PPO lineage written before rollouts were recorded counts its whole prompt set. A checkpoint
    without a set (PPO or GRPO on rules alone) has no pairs: never the store's latest set.
    """
    seen = set(lineage.get("rollout_prompt_ids", ())) | set(lineage.get("prompt_ids", ()))
    if lineage["kind"] == "ppo" and "rollout_prompt_ids" not in lineage:
        seen |= {prompt.prompt_id for prompt in select_prompts(store, lineage["prompt_set"])}
    if lineage.get("preference_set"):
        seen |= {row["prompt_id"] for row in read_set(store, lineage["preference_set"])[1]}
    start = lineage.get("start_checkpoint")
    if start and (Path(start) / LINEAGE_FILE).is_file():
        seen |= training_prompt_ids(store, read_lineage(start))
    return seen


class EvaluationSettings(EvaluateSettings):
    """What a scoreboard is made with (its inputs and the stage's settings); saved in it, so the
    same evaluation asked again is reused.

    ``policy_backend`` samples and scores the tuned model and its base (``vllm`` or ``hf``; its
    ``model`` stays empty: the checkpoint names both models). ``judge_model`` is the AI judge,
    any backend; when it is the base model on an ``auto`` or the same backend, the base's loaded
    model judges, so no second copy is loaded.
    """

    constitution_path: str
    prompt_set: str
    reward_model: str | None = None
    policy_backend: BackendSettings = BackendSettings(kind="hf")
    judge_model: BackendSettings = BackendSettings()

    @field_validator("policy_backend")
    @classmethod
    def _local(cls, spec: BackendSettings) -> BackendSettings:
        if spec.kind == "openai" or spec.model is not None or spec.base_url is not None:
            raise ValueError(
                "the policy backend is vllm, hf or auto, with no model (the checkpoint names it)"
            )
        return spec


def evaluate_checkpoint(store: Store, checkpoint: str | Path, settings: EvaluationSettings) -> dict[str, Any]:
    """The scoreboard of a policy checkpoint against its base model, as plain data (also saved beside it).

    The tuned model samples first, then the base (each loaded, used and closed in turn, so one
    GPU never holds two engines); the base scores the tuned model's held-out samples for the KL.
    With a stress set both models also answer its prompts (refused if the checkpoint trained on
    any), compared per stress type in the scoreboard's ``stress`` section.
    """
    path = Path(checkpoint) / SCOREBOARD_FILE
    previous = _finished_scoreboard(path, settings.model_dump())
    if previous is not None:
        return previous
    lineage = read_lineage(checkpoint)
    if "model_path" not in lineage:
        raise CharterError(
            f"{checkpoint} is a {lineage['kind']} checkpoint, not a policy: evaluate a dpo, ppo or grpo one"
        )
    trained_on = training_prompt_ids(store, lineage)
    prompts = held_out_prompts(store, settings.prompt_set, trained_on, settings.per_family)
    if not prompts:
        raise CharterError(
            f"prompt set {settings.prompt_set!r} has no prompts the checkpoint was not trained on "
            "(its preference pairs and PPO rollouts): evaluate on another prompt set"
        )
    constitution = load_constitution(settings.constitution_path)
    stress = (
        select_stress(settings.stress, constitution, settings.stress_per_type, trained_on)
        if settings.stress
        else []
    )
    asked = [*prompts, *(item.prompt for item in stress)]
    kind = concrete(settings.policy_backend).kind
    options = settings.policy_backend.options
    conversations = [list(p.messages) for p in prompts]
    sample = {"max_tokens": settings.max_tokens, "temperature": 1.0, "seed": settings.seed}
    tuned_model = ResolvedModel(lineage["model_path"], f"{lineage['kind']}:{Path(checkpoint).name}")
    with progress("evaluation sampling", total=2 * len(asked), unit="responses") as bar:
        with _opened(kind, tuned_model, options) as tuned:
            tuned_texts = sample_responses(tuned, asked, **sample)
            bar.advance(len(asked))
            tuned_logprobs = tuned.sequence_logprobs(conversations, tuned_texts[: len(prompts)])
        with _opened(kind, ResolvedModel(lineage["base_model_path"], lineage["base_model"]), options) as base:
            answers = {"base": sample_responses(base, asked, **sample), "tuned": tuned_texts}
            bar.advance(len(asked))
            reference_logprobs = base.sequence_logprobs(conversations, tuned_texts[: len(prompts)])
            log_ratios = [t - r for t, r in zip(tuned_logprobs, reference_logprobs, strict=True)]
            held, rest = _split(answers, len(prompts))
            rewards, stress_rewards = split_rewards(
                _scored(settings.reward_model, asked, answers), len(prompts)
            )
            base_judges = _judges_with_base(settings.judge_model, kind, lineage["base_model_path"], options)
            judge_backend = base if settings.judge and base_judges else None
            if judge_backend is not None or not settings.judge:
                result = compare_with_base(
                    prompts, constitution, held, log_ratios, rewards=rewards, judge_backend=judge_backend
                )
    if settings.judge and judge_backend is None:  # another model: loaded once the base is closed
        judge_backend = load_backend(settings.judge_model)
        result = compare_with_base(
            prompts, constitution, held, log_ratios, rewards=rewards, judge_backend=judge_backend
        )
    report = {
        "settings": settings.model_dump(),
        "checkpoint": str(checkpoint),
        "reward_model": settings.reward_model,
        "judge": {"model": judge_backend.model_id, "backend": judge_backend.name} if judge_backend else None,
        "prompts": len(prompts),
        "win_rates": result.wins,
        **scoreboard_fields(result, settings.stress, stress, constitution, rest, stress_rewards),
        "sampling": bar.figures().as_dict(),
    }
    write_json_atomically(path, report)
    return report


def scoreboard_fields(
    result: Any,
    stress_path: str | None,
    stress: Any,
    constitution: Constitution,
    stress_answers: dict[str, Any],
    stress_rewards: Any,
) -> dict[str, Any]:
    """A tuned model's scoreboard against its base (``compare_with_base``'s ``result``): per family
    and principle, the length check, the share beyond what the reward model knows and, with a
    stress set, the stress section; what ``charter eval`` and each candidate of a race both save."""
    known = beyond_known(result.responses)
    return {
        "families": result.families,
        "principles": result.principles,
        "length_check": asdict(result.length) if result.length else None,
        "beyond_known": known,
        "stress": (
            stress_report(
                stress_path,
                stress,
                constitution,
                stress_answers,
                stress_rewards,
                known["threshold"] if known else None,
            )
            if stress_path
            else None
        ),
        "responses": result.responses,
    }


def _split(answers: dict[str, list[str]], count: int) -> tuple[dict[str, list[str]], dict[str, list[str]]]:
    """Each model's replies to the held-out prompts (the first ``count``) and to the stress prompts."""
    return {m: t[:count] for m, t in answers.items()}, {m: t[count:] for m, t in answers.items()}


def _scored(
    reward_model: str | None, asked: Sequence[PromptItem], answers: dict[str, list[str]]
) -> Rewards | None:
    """Both models' replies scored by every member of the reward model (ensemble), if there is one."""
    if not reward_model:
        return None
    from tasks.train.ensemble import load_ensemble

    ensemble, _ = load_ensemble(reward_model)
    return reward_figures(ensemble.member_scores, [list(p.messages) for p in asked], answers)


@contextmanager
def _opened(kind: str, model: ResolvedModel, options: dict[str, Any]) -> Iterator[PolicyBackend]:
    """A policy backend loaded for one phase of the evaluation and closed after it."""
    if kind == "vllm":
        from tasks.backends.vllm_backend import VLLMBackend

        backend: PolicyBackend = VLLMBackend(model, **options)
    else:
        from tasks.backends.hf import HFBackend

        backend = HFBackend(model, **options)
    try:
        yield backend
    finally:
        backend.close()


def _judges_with_base(judge: BackendSettings, kind: str, base_path: str, options: dict[str, Any]) -> bool:
    """Whether the configured judge is the base model as loaded (``auto`` accepts either local backend)."""
    if judge.kind not in ("auto", kind) or judge.base_url is not None or judge.options not in ({}, options):
        return False
    return model_identity(judge.model_copy(update={"kind": kind})).path == base_path


def _finished_scoreboard(path: Path, settings: dict[str, Any]) -> dict[str, Any] | None:
    """The scoreboard already made with exactly these settings (sampling is seeded), if any."""
    if not path.is_file():
        return None
    report = json.loads(path.read_text(encoding="utf-8"))
    return report if report.get("settings") == settings else None
