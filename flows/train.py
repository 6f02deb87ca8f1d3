"""Training flows: a reward model or a DPO policy from a stored preference set, with lineage."""

from __future__ import annotations

from typing import Any

from prefect import flow, get_run_logger
from prefect.runtime import flow_run

from tasks.evaluate.evaluation import EvaluationSettings
from tasks.store.runs import recorded_run
from tasks.store.store import Store
from tasks.train.prefect_tasks import dpo_task, evaluate_task, ppo_task, reward_task
from tasks.train.settings import DPOSettings, PPOSettings, RewardModelSettings


def _trained(store: str, flow_name: str, parameters: dict[str, Any], train) -> dict[str, Any]:
    target = Store.existing(store)
    with recorded_run(target, flow_name, parameters, run_id=flow_run.get_id()) as run:
        result = train(str(target.root), run.run_id)
        run.constitution_ids.update(result["constitution_ids"])
    get_run_logger().info(
        "%s checkpoint %s%s", flow_name, result["path"], " (reused)" if result["reused"] else ""
    )
    return result


@flow(name="train-reward")
def train_reward(
    store: str,
    set_id: str | None = None,
    config: RewardModelSettings | None = None,
    output: str | None = None,
) -> dict[str, Any]:
    """Train a Bradley-Terry reward model on a preference set (the latest by default)."""
    config = config or RewardModelSettings()
    parameters = {"set_id": set_id, "config": config.model_dump(), "output": output}
    return _trained(
        store,
        "train-reward",
        parameters,
        lambda root, run_id: reward_task(root, run_id, set_id, config, output),
    )


@flow(name="train-dpo")
def train_dpo(
    store: str,
    set_id: str | None = None,
    model: str | None = None,
    settings: DPOSettings | None = None,
    output: str | None = None,
) -> dict[str, Any]:
    """DPO (TRL, LoRA by default) on a preference set (the latest by default)."""
    settings = settings or DPOSettings()
    parameters = {"set_id": set_id, "model": model, "settings": settings.model_dump(), "output": output}
    return _trained(
        store,
        "train-dpo",
        parameters,
        lambda root, run_id: dpo_task(root, run_id, set_id, model, settings, output),
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
) -> dict[str, Any]:
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


@flow(name="evaluate")
def evaluate(
    store: str,
    checkpoint: str,
    constitution: str,
    prompts: str,
    per_family: int = 2,
    reward_model: str | None = None,
    use_judge: bool = True,
    max_tokens: int = 64,
    seed: int = 0,
) -> dict[str, Any]:
    """The behaviour scoreboard of a policy checkpoint against its base on held-out prompts."""
    settings = EvaluationSettings(
        constitution_path=constitution,
        prompt_set=prompts,
        per_family=per_family,
        reward_model=reward_model,
        use_judge=use_judge,
        max_tokens=max_tokens,
        seed=seed,
    )
    target = Store.existing(store)
    parameters = {"checkpoint": checkpoint, **settings.model_dump()}
    with recorded_run(target, "evaluate", parameters, run_id=flow_run.get_id()) as run:
        run.add_input(constitution)
        return evaluate_task(str(target.root), checkpoint, settings)
