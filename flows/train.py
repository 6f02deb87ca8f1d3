"""Training and evaluation flows, each with lineage in the store and on the checkpoint.

``train-reward`` fits a Bradley-Terry reward model (or an ensemble) on a stored preference set and
stores its verdict on every labelled pair (``reward_scores``); ``train-sft`` fine-tunes a policy
on a critique run's final revisions (SL-CAI, TRL); ``train-dpo`` fits a DPO policy (TRL) on a set,
from a base model or an SFT checkpoint; ``train-ppo`` runs charter's own PPO (adaptive KL) on a
prompt set against a reward model and/or the constitution's rules; ``train-grpo`` runs TRL's GRPO
or RLOO on the same rewards; ``evaluate`` compares a dpo, ppo or grpo checkpoint with its base
model on held-out prompts (the behaviour scoreboard). A checkpoint or scoreboard made from the
same inputs is found and returned instead of being made twice.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from typing import Any

from prefect import flow, get_run_logger
from prefect.runtime import flow_run

from flows.results import CheckpointResult
from tasks.backends.settings import BackendSettings
from tasks.evaluate.evaluation import EvaluationSettings
from tasks.evaluate.settings import EvaluateSettings
from tasks.store.runs import recorded_run
from tasks.store.store import Store
from tasks.train.prefect_tasks import (
    dpo_task,
    evaluate_task,
    grpo_task,
    pair_scores_task,
    ppo_task,
    reward_task,
    sft_task,
)
from tasks.train.settings import DPOSettings, GRPOSettings, PPOSettings, RewardModelSettings, SFTSettings


def _trained(store: str, flow_name: str, parameters: dict[str, Any], train, after=None) -> CheckpointResult:
    """Train (or reuse) a checkpoint in a recorded run; ``after(root, run_id, path)`` then adds what
    the checkpoint says to the store (its outcome is folded into the run's record)."""
    target = Store.existing(store)
    with recorded_run(target, flow_name, parameters, run_id=flow_run.get_id()) as run:
        result = CheckpointResult.of(train(str(target.root), run.run_id))
        run.constitution_ids.update(result.lineage["constitution_ids"])
        if after is not None:
            run.merge(after(str(target.root), run.run_id, result.path))
    get_run_logger().info("%s checkpoint %s%s", flow_name, result.path, " (reused)" if result.reused else "")
    return replace(result, rows_added=dict(run.rows_added))


@flow(name="train-reward")
def train_reward(
    store: str,
    set_id: str | None = None,
    config: RewardModelSettings | None = None,
    output: str | None = None,
) -> CheckpointResult:
    """Train a Bradley-Terry reward model (or ensemble) on a preference set (the latest by
    default), then store its verdicts on every labelled pair (``reward_scores``)."""
    config = config or RewardModelSettings()
    parameters = {"set_id": set_id, "config": config.model_dump(), "output": output}
    return _trained(
        store,
        "train-reward",
        parameters,
        lambda root, run_id: reward_task(root, run_id, set_id, config, output),
        after=pair_scores_task,
    )


@flow(name="train-dpo")
def train_dpo(
    store: str,
    set_id: str | None = None,
    model: str | None = None,
    settings: DPOSettings | None = None,
    output: str | None = None,
) -> CheckpointResult:
    """DPO (TRL, LoRA by default) on a preference set (the latest by default)."""
    settings = settings or DPOSettings()
    parameters = {"set_id": set_id, "model": model, "settings": settings.model_dump(), "output": output}
    return _trained(
        store,
        "train-dpo",
        parameters,
        lambda root, run_id: dpo_task(root, run_id, set_id, model, settings, output),
    )


@flow(name="train-sft")
def train_sft(
    store: str,
    critique_run: str | None = None,
    model: str | None = None,
    settings: SFTSettings | None = None,
    output: str | None = None,
) -> CheckpointResult:
    """SL-CAI: SFT (TRL, LoRA by default) on a critique run's final revisions (the latest completed
    run by default). Give its checkpoint as DPO's or PPO's ``model`` to start RL-CAI from it."""
    settings = settings or SFTSettings()
    parameters = {
        "critique_run": critique_run,
        "model": model,
        "settings": settings.model_dump(),
        "output": output,
    }
    return _trained(
        store,
        "train-sft",
        parameters,
        lambda root, run_id: sft_task(root, run_id, critique_run, model, settings, output),
    )


@flow(name="train-ppo")
def train_ppo(
    store: str,
    prompts: str,
    model: str | None = None,
    config: PPOSettings | None = None,
    reward_model: str | None = None,
    rules: str | None = None,
    output: str | None = None,
) -> CheckpointResult:
    """PPO (charter's own, adaptive KL) on a prompt set against a reward model and/or rules."""
    config = config or PPOSettings()
    options = {
        "prompt_set": prompts,
        "model": model,
        "config": config,
        "reward_model": reward_model,
        "constitution_path": rules,
        "output": output,
    }
    parameters = {**options, "config": config.model_dump()}
    return _trained(store, "train-ppo", parameters, lambda root, run_id: ppo_task(root, run_id, options))


@flow(name="train-grpo")
def train_grpo(
    store: str,
    prompts: str,
    model: str | None = None,
    settings: GRPOSettings | None = None,
    reward_model: str | None = None,
    rules: str | None = None,
    output: str | None = None,
) -> CheckpointResult:
    """GRPO or RLOO (TRL, LoRA, KL to the base) on a prompt set, rewarded by the constitution's rules
    (one reward function per applicable rule, or their aggregate) and/or a reward model."""
    settings = settings or GRPOSettings()
    options = {
        "prompt_set": prompts,
        "model": model,
        "settings": settings,
        "reward_model": reward_model,
        "constitution_path": rules,
        "output": output,
    }
    parameters = {**options, "settings": settings.model_dump()}
    return _trained(store, "train-grpo", parameters, lambda root, run_id: grpo_task(root, run_id, options))


@dataclass(frozen=True, kw_only=True)
class ScoreboardResult:
    run_id: str
    checkpoint: str
    prompts: int
    """Held-out prompts each model answered."""
    scoreboard: dict[str, Any]
    """The scoreboard document (also saved beside the checkpoint): per-family and per-principle
    tables, win rates, the length check, the share beyond what the reward model knows, the
    stress section (per stress type and the shadow zone) and every response."""


@flow(name="evaluate")
def evaluate_policy(
    store: str,
    checkpoint: str,
    constitution: str,
    prompts: str,
    reward_model: str | None = None,
    settings: EvaluateSettings | None = None,
    judge_model: BackendSettings | None = None,
) -> ScoreboardResult:
    """The behaviour scoreboard of a policy checkpoint against its base on held-out prompts."""
    evaluation = EvaluationSettings(
        constitution_path=constitution,
        prompt_set=prompts,
        reward_model=reward_model,
        judge_model=judge_model or BackendSettings(),
        **(settings or EvaluateSettings()).model_dump(),
    )
    target = Store.existing(store)
    parameters = {"checkpoint": checkpoint, **evaluation.model_dump()}
    with recorded_run(target, "evaluate", parameters, run_id=flow_run.get_id()) as run:
        run.add_input(constitution)
        if evaluation.stress:
            run.add_input(evaluation.stress)
        scoreboard = evaluate_task(str(target.root), checkpoint, evaluation)
    return ScoreboardResult(
        run_id=run.run_id, checkpoint=checkpoint, prompts=scoreboard["prompts"], scoreboard=scoreboard
    )
