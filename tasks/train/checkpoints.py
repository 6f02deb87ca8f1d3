"""Training runs on stored preference sets: checkpoint folders with their lineage.

A checkpoint's folder name hashes what made it (kind, preference set, base model, settings),
and its lineage records the same identity, so training the same thing again, into the
default folder or into ``-o DIR``, returns the finished checkpoint instead of training twice;
a folder holding a checkpoint made otherwise is trained again and replaced. Each checkpoint
is assembled in a hidden staging folder, lineage included, and renamed into place, so a
crashed run leaves no half-checkpoint to reuse.
"""

from __future__ import annotations

import shutil
from collections.abc import Callable
from pathlib import Path
from typing import Any

from tasks.constitution.model import Constitution, load_constitution
from tasks.core.errors import CharterError
from tasks.core.hashing import content_id
from tasks.generate.generation import select_prompts
from tasks.merge.preference_sets import read_set
from tasks.store.store import Store
from tasks.train.dpo import logprob_margin, train_dpo, training_rows
from tasks.train.ensemble import (
    TrainedEnsemble,
    ensemble_metrics,
    load_scorer,
    member_names,
    reward_step_metrics,
    save_ensemble,
    train_ensemble,
)
from tasks.train.lineage import lineage_record, policy_start, read_lineage, reusable_checkpoint, write_lineage
from tasks.train.ppo import make_policy, ppo_train, rollout_schedule, save_policy, trl_step_metrics
from tasks.train.rewards import RewardFn, reward_functions, weighted_sum
from tasks.train.settings import DPOSettings, PPOSettings, RewardModelSettings
from tasks.train.tracking import check_report_to, tracked


def checkpoint_dir(store: Store, kind: str, identity: dict[str, Any]) -> Path:
    return store.root / "checkpoints" / f"{kind}-{content_id(f'checkpoint_{kind}', identity)[:12]}"


def _target(
    store: Store, kind: str, identity: dict[str, Any], output: str | None
) -> tuple[Path, dict[str, Any] | None]:
    """Where the checkpoint goes, and its lineage if a finished one made from ``identity`` is there."""
    path = Path(output) if output else checkpoint_dir(store, kind, identity)
    return path, reusable_checkpoint(path, kind, identity, owned=output is None)


def _made_by(settings: Any) -> dict[str, Any]:
    """The settings that make a checkpoint what it is: all but where its training logs go."""
    return settings.model_dump(exclude={"report_to"})


def _staging(path: Path) -> Path:
    staging = path.with_name(f".{path.name}.training")
    shutil.rmtree(staging, ignore_errors=True)
    return staging


def _install(staging: Path, path: Path, record: dict[str, Any]) -> dict[str, Any]:
    """Write the lineage into the finished staging folder, then put it in place of anything at ``path``."""
    write_lineage(staging, record)
    shutil.rmtree(path, ignore_errors=True)
    path.parent.mkdir(parents=True, exist_ok=True)
    staging.replace(path)
    return {**record, "path": str(path), "reused": False}


def train_reward_checkpoint(
    store: Store, run_id: str, set_id: str | None, config: RewardModelSettings, output: str | None
) -> dict[str, Any]:
    """Bradley-Terry reward model on a set's rows (soft targets, weights), held-out metrics, lineage."""
    check_report_to(config.report_to)
    chosen, rows = read_set(store, set_id)
    settings = config.model_dump()
    identity = {"set": chosen, "settings": _made_by(config)}
    path, done = _target(store, "reward", identity, output)
    if done is not None:
        return {**done, "path": str(path), "reused": True}
    staging = _staging(path)
    # Saving the ensemble replaces the staging folder whole: the logs join it afterwards.
    logs = _staging(path.with_name(f"{path.name}-logs"))
    with tracked(config.report_to, logs, path.name) as tracker:

        def log_step(entry: dict[str, Any]) -> None:
            tracker.log(reward_step_metrics(entry, config.ensemble), entry["step"])

        trained = train_ensemble(rows, config, on_step=log_step)
    metrics = _reward_metrics(trained)
    save_ensemble(trained.ensemble, staging, {"config": settings})
    if logs.exists():
        logs.replace(staging / "logs")
    record = lineage_record(
        kind="reward",
        run_id=run_id,
        base_model=config.backbone,
        set_id=chosen,
        rows=rows,
        settings=settings,
        identity=identity,
        metrics=metrics,
    )
    return _install(staging, path, record)


def _reward_metrics(trained: TrainedEnsemble) -> dict[str, Any]:
    """A reward checkpoint's figures: held-out before/after (the ensemble's, for several members,
    with its uncertainty bins), sizes, speed, each step (with its member), and each member."""
    histories = trained.histories
    first = histories[0]
    after = first.evaluations[-1] if len(first.evaluations) > 1 else None
    if len(histories) > 1 and trained.held_out:
        figures = ensemble_metrics(trained.ensemble, trained.held_out)
        after = {"epoch": first.evaluations[-1]["epoch"], **figures}
    seconds = sum(h.train_seconds for h in histories)
    return {
        "before": first.evaluations[0] if first.evaluations else None,
        "after": after,
        "train_pairs": trained.train_pairs,
        "eval_pairs": first.eval_pairs,
        "pairs_per_second": sum(s["pairs"] for h in histories for s in h.steps) / seconds if seconds else 0.0,
        "steps": [{**step, "member": k} for k, h in enumerate(histories) for step in h.steps],
        "members": [
            {
                "member": k,
                "name": name,
                "seed": seed,
                "distinct_pairs": size,
                "accuracy": h.evaluations[-1]["accuracy"] if len(h.evaluations) > 1 else None,
            }
            for k, (name, h, size, seed) in enumerate(
                zip(member_names(len(histories)), histories, trained.sample_sizes, trained.seeds, strict=True)
            )
        ],
    }


def train_dpo_checkpoint(
    store: Store,
    run_id: str,
    set_id: str | None,
    model: str | None,
    settings: DPOSettings,
    output: str | None,
) -> dict[str, Any]:
    """DPO (TRL) on a set's confident rows; saves the merged model, so any backend can load it.

    The rows are filtered, and an empty result refused, before any model is loaded.
    """
    check_report_to(settings.report_to)
    chosen, rows = read_set(store, set_id)
    used = training_rows(rows, settings, f"preference set {chosen[:12]}")
    base, start = policy_start(model)
    identity = {"set": chosen, "model": base.model_id, "settings": _made_by(settings)}
    path, done = _target(store, "dpo", identity, output)
    if done is not None:
        return {**done, "path": str(path), "reused": True}
    from transformers import AutoModelForCausalLM, AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(base.path)
    probe = used[: settings.margin_pairs]
    margin_before = logprob_margin(AutoModelForCausalLM.from_pretrained(base.path), tokenizer, probe)
    staging = _staging(path)
    trained, tokenizer, log = train_dpo(
        base.path, used, settings, staging / "trainer", log_dir=staging / "logs", run_name=path.name
    )
    merged = trained.merge_and_unload() if hasattr(trained, "merge_and_unload") else trained
    margin_after = logprob_margin(merged, tokenizer, probe)
    merged.save_pretrained(staging / "model")
    tokenizer.save_pretrained(staging / "model")
    shutil.rmtree(staging / "trainer", ignore_errors=True)
    steps = [entry for entry in log if "loss" in entry]
    record = lineage_record(
        kind="dpo",
        run_id=run_id,
        base_model=base.model_id,
        set_id=chosen,
        rows=used,
        settings=settings.model_dump(),
        identity=identity,
        metrics={
            "margin_pairs": len(probe),
            "logprob_margin_before": margin_before,
            "logprob_margin_after": margin_after,
            "loss": [entry["loss"] for entry in steps],
            "reward_margin": [entry.get("rewards/margins") for entry in steps],
            "train_seconds": next((e["train_runtime"] for e in log if "train_runtime" in e), None),
        },
        # The frozen reference is the starting model (with LoRA: the policy, adapter disabled).
        extra={
            "base_model_path": base.path,
            "model_path": str(path / "model"),
            "reference_model": base.path,
            **start,
        },
    )
    return _install(staging, path, record)


def policy_reward(
    config: PPOSettings,
    reward_model: str | None,
    constitution: Constitution | None,
    families: dict[str, str | None],
) -> tuple[RewardFn, Callable[[], dict[str, float]] | None]:
    """A policy optimiser's reward: the reward model's members aggregated as ``config`` says
    (``reward_aggregation``, ``uncertainty_penalty``) plus the constitution's rule reward, either
    or both (``tasks.train.rewards.reward_functions``, as GRPO's, summed); and, with a reward model,
    the figures of its last call for the training log."""
    scorer = None
    if reward_model is not None:
        scorer = load_scorer(reward_model, config.reward_aggregation, config.uncertainty_penalty)
    rewards = reward_functions(constitution, families, reward_model=scorer)
    return weighted_sum(rewards), scorer.figures if scorer is not None else None


def train_ppo_checkpoint(
    store: Store,
    run_id: str,
    prompt_set: str,
    model: str | None,
    config: PPOSettings,
    reward_model: str | None,
    constitution_path: str | None,
    output: str | None,
) -> dict[str, Any]:
    """PPO against a reward model's score and/or the constitution's rules, on a prompt set's prompts.

    An ensemble reward model's members are aggregated as ``config.reward_aggregation`` says, and
    each step's log records their mean, spread and the aggregate (``rm/mean``, ``rm/std``,
    ``rm/aggregate``). The lineage lists the prompts the rollouts used (``rollout_prompt_ids``):
    the policy was trained on them, so the scoreboard leaves them out of its held-out prompts.
    """
    if reward_model is None and constitution_path is None:
        raise CharterError("PPO needs a reward: --reward-model, --rules CONSTITUTION, or both")
    if reward_model is None and config.reward_aggregation != "mean":
        raise CharterError(
            f"--reward-aggregation {config.reward_aggregation} aggregates a reward model's members: "
            "give --reward-model"
        )
    check_report_to(config.report_to)
    base, start = policy_start(model)
    prompts = select_prompts(store, prompt_set)
    constitution = load_constitution(constitution_path) if constitution_path else None
    rm_lineage = read_lineage(reward_model) if reward_model else None
    identity = {
        "prompts": sorted(p.prompt_id for p in prompts),
        "model": base.model_id,
        "config": _made_by(config),
        "reward_model": rm_lineage["run_id"] if rm_lineage else None,
        "rules": constitution.constitution_id if constitution else None,
    }
    path, done = _target(store, "ppo", identity, output)
    if done is not None:
        return {**done, "path": str(path), "reused": True}
    reward, reward_log = policy_reward(
        config, reward_model, constitution, {p.prompt_id: p.family for p in prompts}
    )
    rolled_out = sorted(
        {prompts[i].prompt_id for batch in rollout_schedule(len(prompts), config) for i in batch}
    )

    from transformers import AutoModelForCausalLM, AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(base.path)
    policy = make_policy(AutoModelForCausalLM.from_pretrained(base.path), config)
    conversations = [list(p.messages) for p in prompts]
    staging = _staging(path)
    with tracked(config.report_to, staging / "logs", path.name) as tracker:
        history = ppo_train(
            policy,
            tokenizer,
            conversations,
            reward,
            config,
            on_step=lambda log: tracker.log(trl_step_metrics(log), log["step"] + 1),
            reward_log=reward_log,
        )
    save_policy(policy, staging / "adapter")
    merged = policy.lm.merge_and_unload()
    merged.save_pretrained(staging / "model")
    tokenizer.save_pretrained(staging / "model")
    rows = read_set(store, rm_lineage["preference_set"])[1] if rm_lineage else []
    record = lineage_record(
        kind="ppo",
        run_id=run_id,
        base_model=base.model_id,
        set_id=rm_lineage["preference_set"] if rm_lineage else None,
        rows=rows,
        settings=config.model_dump(),
        identity=identity,
        metrics={"steps": history},
        extra={
            **start,
            "reference_model": base.path,  # PPO's KL is to the starting model (its adapter disabled)
            "base_model_path": base.path,
            "model_path": str(path / "model"),
            "reward_model": reward_model,
            "rules_constitution_id": constitution.constitution_id if constitution else None,
            "prompt_set": prompt_set,
            "rollout_prompt_ids": rolled_out,
        },
    )
    return _install(staging, path, record)
