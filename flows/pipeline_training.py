"""The pipeline's train and evaluate stages: the Constitutional AI route, one policy or a race.

Train: the reward model (the scoreboard, PPO and GRPO score with it), then SL-CAI if
``train.sft`` is on (supervised fine-tuning on the critique stage's revisions), then each policy
algorithm (``train.algorithm``, or every one of ``train.algorithms``) starting from the SFT
checkpoint when there is one, which is then also their reference model (RL-CAI). Evaluate: the
behaviour scoreboard of the one policy against its base, or, for a race, ``compare`` of every
candidate on the same held-out prompts, seeds and judge.
"""

from __future__ import annotations

from pathlib import Path

from flows.compare import compare_policies
from flows.pipeline_state import PipelineState, StageOutcome
from flows.results import CheckpointResult
from flows.train import evaluate_policy, train_dpo, train_grpo, train_ppo, train_reward, train_sft
from tasks.core.errors import CharterError
from tasks.evaluate.settings import CompareSettings

# The checkpoint kinds a policy evaluation looks for when the train stage did not run.
POLICY_KINDS = ("dpo", "ppo", "grpo", "sft")


def train_stage(state: PipelineState) -> StageOutcome:
    config, train = state.config, state.config.train
    if not train.policies and not train.sft.enabled:
        return StageOutcome(detail="training disabled in the config")
    set_id = state.latest_set()
    reward = train_reward(store=state.store, set_id=set_id, config=train.reward_model)
    state.reward_checkpoint = reward.path
    made: dict[str, CheckpointResult] = {"reward": reward}
    start = config.policy_model.model
    if train.sft.enabled:
        made["sft"] = train_sft(store=state.store, model=start, settings=train.sft.stage())
        state.sft_checkpoint = start = made["sft"].path
    for algorithm in train.policies:
        made[algorithm] = _policy(state, algorithm, set_id, start, reward.path)
        state.policy_checkpoints.append(made[algorithm].path)
    reused = [name for name, result in made.items() if result.reused]
    detail = ", ".join(f"{name} {Path(result.path).name}" for name, result in made.items()) + (
        f" (reused: {', '.join(reused)})" if reused else ""
    )
    return StageOutcome(dict(reward.rows_added), skipped=len(reused), detail=detail)


def _policy(
    state: PipelineState, algorithm: str, set_id: str, start: str | None, reward_model: str
) -> CheckpointResult:
    """One policy algorithm from ``start`` (the SFT checkpoint, or the configured base)."""
    config, train = state.config, state.config.train
    if algorithm == "dpo":
        return train_dpo(store=state.store, set_id=set_id, model=start, settings=train.dpo)
    if algorithm == "ppo":
        return train_ppo(
            store=state.store,
            prompts=config.prompts.set_name,
            model=start,
            config=train.ppo,
            reward_model=reward_model if train.ppo_reward != "rules" else None,
            rules=config.constitution if train.ppo_reward != "reward_model" else None,
        )
    return train_grpo(
        store=state.store,
        prompts=config.prompts.set_name,
        model=start,
        settings=train.grpo,
        reward_model=reward_model if train.grpo.rewards != "rules" else None,
        rules=config.constitution if train.grpo.rewards != "reward_model" else None,
    )


def evaluate_stage(state: PipelineState) -> StageOutcome:
    config = state.config
    if not config.evaluate.enabled:
        return StageOutcome(detail="evaluation disabled in the config")
    state.reward_checkpoint = state.reward_checkpoint or state.latest(("reward",))
    if not state.policy_checkpoints and len(config.train.policies) > 1:
        # A race's evaluate stage run on its own: the latest candidate of each algorithm.
        found = [state.latest((algorithm,)) for algorithm in config.train.policies]
        state.policy_checkpoints = [path for path in found if path]
    if len(state.policy_checkpoints) > 1:
        race = compare_policies(
            store=state.store,
            checkpoints=state.policy_checkpoints,
            constitution=config.constitution,
            prompts=config.prompts.set_name,
            reward_model=state.reward_checkpoint,
            settings=CompareSettings(**config.evaluate.stage().model_dump()),
            judge_model=config.judge_spec,
        )
        return StageOutcome(detail=f"compared {len(state.policy_checkpoints)} candidates: {race.path}")
    checkpoint = state.policy_checkpoint or state.latest(POLICY_KINDS)
    if checkpoint is None:
        raise CharterError(f"nothing to evaluate: no policy checkpoint in {state.store}/checkpoints")
    state.policy_checkpoints = state.policy_checkpoints or [checkpoint]
    result = evaluate_policy(
        store=state.store,
        checkpoint=checkpoint,
        constitution=config.constitution,
        prompts=config.prompts.set_name,
        reward_model=state.reward_checkpoint,
        settings=config.evaluate.stage(),
        judge_model=config.judge_spec,
    )
    stress = result.scoreboard.get("stress")
    on_stress = f", {stress['prompts']} stress prompts" if stress else ""
    return StageOutcome(detail=f"{result.prompts} held-out prompts{on_stress}")
