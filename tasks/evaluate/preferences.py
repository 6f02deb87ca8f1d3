"""Held-out preference evaluation: how often a reward model, a policy or the AI judge prefers the
response people (or the merge) chose, on pairs none of them trained on.

- A reward model or ensemble: pairwise accuracy, calibration (ECE and the reliability table)
  and, for an ensemble, accuracy by uncertainty bin: :func:`tasks.train.ensemble.ensemble_metrics`,
  the figures its own training reports on its held-out split.
- A policy (dpo, ppo, grpo, sft): DPO's implicit reward r(y) = beta * [log pi(y) - log pi_ref(y)]
  (Rafailov et al. 2023), with pi_ref the checkpoint's base model; a pair is a hit when
  r(chosen) > r(rejected). Since beta > 0 only scales the margin, the accuracy does not depend
  on it; beta (from the checkpoint's settings, else 0.1) sets the reported mean reward margin.
  Beside it the plain log-probability margin log pi(chosen) - log pi(rejected): its accuracy
  and mean (what ``charter train dpo`` reports before and after on its training pairs).
- The AI judge (any backend): each pair judged in both orders (:func:`tasks.label.judge.judge`,
  as ``charter label`` does), with one seeded principle per pair; accuracy with the chosen
  response shown first, shown second, and on the two orders' mean, plus position consistency
  (the share of pairs where both orders prefer the same response) and how often the response
  shown first was picked.

Accuracies count decisive pairs only (a target of 0.5 has no better response); a figure of
exactly 0.5 or a zero margin favours the rejected response, a miss when the chosen one is
better, as :func:`tasks.core.calibration.top_label` counts it. The
arithmetic here is plain Python; models load inside the functions that need them.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from tasks.backends.base import Backend
from tasks.constitution.model import Constitution
from tasks.core.errors import CharterError
from tasks.evaluate.preference_eval_inputs import HeldOutPairs, limited
from tasks.generate.generation import PromptItem
from tasks.label.judge import JudgeSettings, judge, plan_comparisons
from tasks.label.pairs import make_pair
from tasks.label.soft_labels import orders_agree
from tasks.train.lineage import read_lineage
from tasks.train.reward_metrics import PreferenceRecord, decisive

DEFAULT_BETA = 0.1


def _records(records: Sequence[Mapping[str, Any] | PreferenceRecord]) -> list[PreferenceRecord]:
    parsed = [r if isinstance(r, PreferenceRecord) else PreferenceRecord.model_validate(r) for r in records]
    if not parsed:
        raise CharterError("no preference pairs to evaluate")
    return parsed


def _share(hits: Sequence[bool]) -> float | None:
    return sum(hits) / len(hits) if hits else None


def _mean(values: Sequence[float]) -> float | None:
    return sum(values) / len(values) if values else None


def policy_figures(
    policy_chosen: Sequence[float],
    policy_rejected: Sequence[float],
    reference_chosen: Sequence[float],
    reference_rejected: Sequence[float],
    targets: Sequence[float],
    beta: float = DEFAULT_BETA,
) -> dict[str, Any]:
    """A policy's preference figures from sequence log-probs of each pair's two responses under
    the policy and its reference, and the pairs' targets (see the module docstring)."""
    count = len(targets)
    if {len(policy_chosen), len(policy_rejected), len(reference_chosen), len(reference_rejected)} != {count}:
        raise ValueError("one log-prob per pair and response, under the policy and the reference")
    kept = [i for i in range(count) if abs(targets[i] - 0.5) > 1e-9]
    margins = [policy_chosen[i] - policy_rejected[i] for i in kept]
    rewards = [
        beta * ((policy_chosen[i] - reference_chosen[i]) - (policy_rejected[i] - reference_rejected[i]))
        for i in kept
    ]
    better = [targets[i] > 0.5 for i in kept]
    return {
        "pairs": count,
        "decisive_pairs": len(kept),
        "beta": beta,
        "implicit_reward_accuracy": _share([(r > 0) == b for r, b in zip(rewards, better, strict=True)]),
        "mean_implicit_reward_margin": _mean([r if b else -r for r, b in zip(rewards, better, strict=True)]),
        "logprob_margin_accuracy": _share([(m > 0) == b for m, b in zip(margins, better, strict=True)]),
        "mean_logprob_margin": _mean([m if b else -m for m, b in zip(margins, better, strict=True)]),
    }


def judge_figures(p_chosen_first: Sequence[float], p_chosen_second: Sequence[float]) -> dict[str, Any]:
    """The judge's figures from its P(chosen better) with the chosen response shown first and
    shown second, one of each per decisive pair."""
    if len(p_chosen_first) != len(p_chosen_second):
        raise ValueError("one figure per pair in each order")
    orders = list(zip(p_chosen_first, p_chosen_second, strict=True))
    # The response shown first is picked when the chosen one, shown first, wins (p > 0.5), or
    # when the rejected one, shown first, wins (the chosen one's p < 0.5 in the second order).
    firsts = [first > 0.5 for first, _ in orders] + [second < 0.5 for _, second in orders]
    return {
        "pairs": len(orders),
        "accuracy_chosen_first": _share([first > 0.5 for first, _ in orders]),
        "accuracy_chosen_second": _share([second > 0.5 for _, second in orders]),
        "accuracy_both_orders": _share([(first + second) / 2 > 0.5 for first, second in orders]),
        "position_consistency": _share([orders_agree(first, second) for first, second in orders]),
        "first_position_rate": _share(firsts),
    }


def _checked_policy(checkpoint: str | Path) -> dict[str, Any]:
    lineage = read_lineage(checkpoint)
    if "model_path" not in lineage or "base_model_path" not in lineage:
        raise CharterError(
            f"{checkpoint} is a {lineage['kind']} checkpoint, not a policy with a base model: "
            "give a dpo, ppo, grpo or sft checkpoint"
        )
    return lineage


def _logprobs(model_path: str, pairs: Sequence[PreferenceRecord]) -> tuple[list[float], list[float]]:
    """(log pi(chosen), log pi(rejected)) per pair under the model at ``model_path``."""
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    from tasks.train.logprobs import sequence_logprobs

    tokenizer = AutoTokenizer.from_pretrained(model_path)
    model = AutoModelForCausalLM.from_pretrained(model_path, dtype=torch.float32)
    model.to("cuda" if torch.cuda.is_available() else "cpu")
    prompts = [p.prompt for p in pairs]
    scores = sequence_logprobs(
        model, tokenizer, [*prompts, *prompts], [p.chosen for p in pairs] + [p.rejected for p in pairs]
    )
    del model
    return scores[: len(pairs)], scores[len(pairs) :]


def policy_preference_accuracy(
    checkpoint: str | Path, records: Sequence[Mapping[str, Any]], limit: int | None = None
) -> dict[str, Any]:
    """A policy checkpoint's figures on held-out preference records (:func:`policy_figures`, plus
    ``checkpoint``, ``kind`` and ``reference_model``); ``limit`` keeps the pairs with the lowest
    pair ids (:func:`tasks.evaluate.preference_eval_inputs.limited`). The policy is loaded, used
    and freed, then its reference, so only one model is in memory at a time."""
    lineage = _checked_policy(checkpoint)
    pairs = _records(limited(records, limit) if limit is not None else records)
    beta = lineage.get("settings", {}).get("beta") or DEFAULT_BETA  # GRPO's beta may be 0 (no KL term)
    policy_chosen, policy_rejected = _logprobs(lineage["model_path"], pairs)
    reference_chosen, reference_rejected = _logprobs(lineage["base_model_path"], pairs)
    figures = policy_figures(
        policy_chosen, policy_rejected, reference_chosen, reference_rejected, [p.target for p in pairs], beta
    )
    return {
        "checkpoint": str(checkpoint),
        "kind": lineage["kind"],
        "reference_model": lineage.get("base_model"),
        **figures,
    }


def reward_model_preference_metrics(reward_model: str | Path, records: Sequence[Mapping[str, Any]]) -> dict:
    """A reward model's (or ensemble's) held-out figures on the records, with ``members``; a
    single model has no spread, so its uncertainty figures are None."""
    from tasks.train.ensemble import ensemble_metrics, load_ensemble

    ensemble, _ = load_ensemble(reward_model)
    figures = {"checkpoint": str(reward_model), "members": len(ensemble.members)}
    figures |= ensemble_metrics(ensemble, [dict(r) for r in records])
    if len(ensemble.members) == 1:
        figures |= {"mean_uncertainty": None, "uncertainty_bins": None}
    return figures


def judge_preference_accuracy(
    backend: Backend, constitution: Constitution, records: Sequence[Mapping[str, Any]], seed: int = 0
) -> dict[str, Any]:
    """The AI judge's figures on the decisive records (:func:`judge_figures`), judged by the
    logprob method in both orders under one principle per pair drawn with ``seed``."""
    parsed = _records(records)
    settings = JudgeSettings(methods=("logprob",), seed=seed)
    asked, skipped = [], 0
    for index in decisive(parsed):
        record, row = parsed[index], records[index]
        pair = make_pair(
            PromptItem(row["prompt_id"], record.family, tuple(record.prompt)), record.chosen, record.rejected
        )
        if pair is None:  # the two texts differ only in surrounding whitespace: no comparison
            skipped += 1
            continue
        asked.append((pair, record))
    comparisons = plan_comparisons(
        [p for p, _ in asked], constitution, settings, backend.model_id, backend.name
    )
    labels = {row["pair_id"]: row for row in judge(backend, comparisons, constitution, settings)}
    firsts, seconds = [], []
    for pair, record in asked:
        label = labels[pair.pair_id]
        chosen_is_a = pair.response_a == record.chosen
        shown_first_a, shown_second_a = label["p_a_first"], label["p_a_second"]
        # P(chosen better) with the chosen response in each position: A's own figure when the
        # chosen one is A, else one minus A's figure in the other position.
        firsts.append(shown_first_a if chosen_is_a else 1 - shown_second_a)
        seconds.append(shown_second_a if chosen_is_a else 1 - shown_first_a)
    return {
        "model": backend.model_id,
        "backend": backend.name,
        "constitution_id": constitution.constitution_id,
        "seed": seed,
        "identical_skipped": skipped,
        **judge_figures(firsts, seconds),
    }


def evaluate_preferences(
    pairs: HeldOutPairs,
    *,
    reward_model: str | None = None,
    policy: str | None = None,
    judge_backend: Backend | None = None,
    constitution: Constitution | None = None,
    seed: int = 0,
) -> dict[str, Any]:
    """Every evaluator given, on the same records: the report ``charter eval --preferences``
    prints and writes (``reward_model``, ``policy``, ``judge``: None when not asked)."""
    if judge_backend is not None and constitution is None:
        raise CharterError("the AI judge reads a constitution's principles: give --constitution")
    records = pairs.records
    return {
        "source": pairs.source,
        "pairs": len({r["pair_id"] for r in records}),
        "records": len(records),
        "records_in_source": pairs.total,
        "reward_model": reward_model_preference_metrics(reward_model, records) if reward_model else None,
        "policy": policy_preference_accuracy(policy, records) if policy else None,
        "judge": (
            judge_preference_accuracy(judge_backend, constitution, records, seed)
            if judge_backend is not None and constitution is not None
            else None
        ),
    }
