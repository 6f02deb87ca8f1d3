"""Prefect task wrappers for training: one task per training run (a retry restarts it whole)."""

from __future__ import annotations

from typing import Any

from prefect import task

from tasks.evaluate.evaluation import EvaluationSettings, evaluate_checkpoint
from tasks.orchestration.task_options import task_context, task_options
from tasks.store.store import Store
from tasks.train.checkpoints import train_dpo_checkpoint, train_ppo_checkpoint, train_reward_checkpoint
from tasks.train.grpo import train_grpo_checkpoint
from tasks.train.pair_scores import new_score_rows
from tasks.train.settings import DPOSettings, RewardModelSettings, SFTSettings
from tasks.train.sft import train_sft_checkpoint


@task(name="train-reward-model", **task_options(retries=0))
def reward_task(
    store_root: str, run_id: str, set_id: str | None, config: RewardModelSettings, output: str | None
) -> dict[str, Any]:
    return train_reward_checkpoint(Store(store_root), run_id, set_id, config, output)


@task(name="score-labelled-pairs", **task_options())
def pair_scores_task(store_root: str, run_id: str, checkpoint: str) -> dict[str, Any]:
    """Store the reward checkpoint's verdicts on the labelled pairs it has not scored yet."""
    run = task_context(store_root, run_id)
    run.append("reward_scores", new_score_rows(run.store, checkpoint))
    return run.outcome()


@task(name="train-dpo", **task_options(retries=0))
def dpo_task(
    store_root: str,
    run_id: str,
    set_id: str | None,
    model: str | None,
    settings: DPOSettings,
    output: str | None,
) -> dict[str, Any]:
    return train_dpo_checkpoint(Store(store_root), run_id, set_id, model, settings, output)


@task(name="train-sft", **task_options(retries=0))
def sft_task(
    store_root: str,
    run_id: str,
    critique_run: str | None,
    model: str | None,
    settings: SFTSettings,
    output: str | None,
) -> dict[str, Any]:
    return train_sft_checkpoint(Store(store_root), run_id, critique_run, model, settings, output)


@task(name="evaluate-checkpoint", **task_options(retries=0))
def evaluate_task(store_root: str, checkpoint: str, settings: EvaluationSettings) -> dict[str, Any]:
    return evaluate_checkpoint(Store(store_root), checkpoint, settings)


@task(name="train-ppo", **task_options(retries=0))
def ppo_task(store_root: str, run_id: str, options: dict[str, Any]) -> dict[str, Any]:
    return train_ppo_checkpoint(Store(store_root), run_id, **options)


@task(name="train-grpo", **task_options(retries=0))
def grpo_task(store_root: str, run_id: str, options: dict[str, Any]) -> dict[str, Any]:
    return train_grpo_checkpoint(Store(store_root), run_id, **options)
