"""Training runs on stored preference sets: checkpoint folders with their lineage.

A checkpoint's folder name hashes what made it (kind, preference set, base model, settings),
so training the same thing again finds the finished checkpoint (its lineage file is written
last) and returns it instead of training twice; a run that crashed left no lineage file and
trains again from the start.
"""

from __future__ import annotations

import shutil
from pathlib import Path
from typing import Any

from tasks.backends.models import resolve_model
from tasks.constitution.model import Constitution, load_constitution
from tasks.core.conversation import prompt_id
from tasks.core.errors import CharterError
from tasks.core.hashing import content_id
from tasks.evaluate.scoreboard import behaviour
from tasks.generate.generation import select_prompts
from tasks.merge.preference_sets import read_set
from tasks.store.store import Store
from tasks.train.dpo import confident_rows, logprob_margin, train_dpo
from tasks.train.lineage import LINEAGE_FILE, lineage_record, read_lineage, write_lineage
from tasks.train.ppo import make_policy, ppo_train, save_policy
from tasks.train.reward_model import (
    load_reward_model,
    save_reward_model,
    score_texts,
    train_reward_model,
)
from tasks.train.settings import DPOSettings, PPOSettings, RewardModelSettings


def checkpoint_dir(store: Store, kind: str, identity: dict[str, Any]) -> Path:
    return store.root / "checkpoints" / f"{kind}-{content_id(f'checkpoint_{kind}', identity)[:12]}"


def _finished(path: Path) -> dict[str, Any] | None:
    return read_lineage(path) if (path / LINEAGE_FILE).is_file() else None


def train_reward_checkpoint(
    store: Store, run_id: str, set_id: str | None, config: RewardModelSettings, output: str | None
) -> dict[str, Any]:
    """Bradley-Terry reward model on a set's rows (soft targets, weights), held-out metrics, lineage."""
    chosen, rows = read_set(store, set_id)
    settings = config.model_dump()
    path = Path(output) if output else checkpoint_dir(store, "reward", {"set": chosen, "settings": settings})
    done = _finished(path)
    if done is not None:
        return {**done, "path": str(path), "reused": True}
    model, tokenizer, history = train_reward_model(rows, config)
    metrics = {
        "before": history.evaluations[0] if history.evaluations else None,
        "after": history.evaluations[-1] if len(history.evaluations) > 1 else None,
        "train_pairs": history.train_pairs,
        "eval_pairs": history.eval_pairs,
        "pairs_per_second": history.pairs_per_second,
        "steps": history.steps,
    }
    save_reward_model(model, tokenizer, path, {"config": settings})
    record = lineage_record(
        kind="reward",
        run_id=run_id,
        base_model=config.backbone,
        set_id=chosen,
        rows=rows,
        settings=settings,
        metrics=metrics,
    )
    write_lineage(path, record)
    return {**record, "path": str(path), "reused": False}


def train_dpo_checkpoint(
    store: Store,
    run_id: str,
    set_id: str | None,
    model: str | None,
    settings: DPOSettings,
    output: str | None,
) -> dict[str, Any]:
    """DPO (TRL) on a set's confident rows; saves the merged model, so any backend can load it."""
    chosen, rows = read_set(store, set_id)
    base = resolve_model(model)
    identity = {"set": chosen, "model": base.model_id, "settings": settings.model_dump()}
    path = Path(output) if output else checkpoint_dir(store, "dpo", identity)
    done = _finished(path)
    if done is not None:
        return {**done, "path": str(path), "reused": True}
    from transformers import AutoModelForCausalLM, AutoTokenizer

    used = confident_rows(rows, settings.min_confidence)
    tokenizer = AutoTokenizer.from_pretrained(base.path)
    probe = used[: settings.margin_pairs]
    margin_before = logprob_margin(AutoModelForCausalLM.from_pretrained(base.path), tokenizer, probe)
    staging = path.with_name(f".{path.name}.training")
    shutil.rmtree(staging, ignore_errors=True)
    trained, tokenizer, log = train_dpo(base.path, used, settings, staging / "trainer")
    merged = trained.merge_and_unload() if hasattr(trained, "merge_and_unload") else trained
    margin_after = logprob_margin(merged, tokenizer, probe)
    merged.save_pretrained(staging / "model")
    tokenizer.save_pretrained(staging / "model")
    shutil.rmtree(staging / "trainer", ignore_errors=True)
    shutil.rmtree(path, ignore_errors=True)
    staging.replace(path)
    steps = [entry for entry in log if "loss" in entry]
    record = lineage_record(
        kind="dpo",
        run_id=run_id,
        base_model=base.model_id,
        set_id=chosen,
        rows=used,
        settings=settings.model_dump(),
        metrics={
            "margin_pairs": len(probe),
            "logprob_margin_before": margin_before,
            "logprob_margin_after": margin_after,
            "loss": [entry["loss"] for entry in steps],
            "reward_margin": [entry.get("rewards/margins") for entry in steps],
            "train_seconds": next((e["train_runtime"] for e in log if "train_runtime" in e), None),
        },
        extra={"base_model_path": base.path, "model_path": str(path / "model")},
    )
    write_lineage(path, record)
    return {**record, "path": str(path), "reused": False}


def rule_reward(constitution: Constitution, families: dict[str, str | None]):
    """Reward from the constitution's rules: minus the number of applicable rules a response breaks."""

    def reward(responses: list[str], conversations: list[list[dict]]) -> list[float]:
        return [
            -float(
                sum(
                    not passed
                    for passed in behaviour(constitution, families.get(prompt_id(c)), c, r)["rules"].values()
                )
            )
            for r, c in zip(responses, conversations, strict=True)
        ]

    return reward


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
    """PPO against a reward model's score and/or the constitution's rules, on a prompt set's prompts."""
    if reward_model is None and constitution_path is None:
        raise CharterError("PPO needs a reward: --reward-model, --rules CONSTITUTION, or both")
    base = resolve_model(model)
    prompts = select_prompts(store, prompt_set)
    constitution = load_constitution(constitution_path) if constitution_path else None
    rm_lineage = read_lineage(reward_model) if reward_model else None
    identity = {
        "prompts": sorted(p.prompt_id for p in prompts),
        "model": base.model_id,
        "config": config.model_dump(),
        "reward_model": rm_lineage["run_id"] if rm_lineage else None,
        "rules": constitution.constitution_id if constitution else None,
    }
    path = Path(output) if output else checkpoint_dir(store, "ppo", identity)
    done = _finished(path)
    if done is not None:
        return {**done, "path": str(path), "reused": True}
    rewards = []
    if rm_lineage is not None:
        rm, rm_tokenizer, metadata = load_reward_model(reward_model)
        max_length = metadata["config"]["max_length"]
        rewards.append(
            lambda responses, conversations: score_texts(
                rm, rm_tokenizer, conversations, responses, max_length, 16
            )
        )
    if constitution is not None:
        rewards.append(rule_reward(constitution, {p.prompt_id: p.family for p in prompts}))

    def reward_fn(responses: list[str], conversations: list[list[dict]]) -> list[float]:
        parts = [fn(responses, conversations) for fn in rewards]
        return [sum(values) for values in zip(*parts, strict=True)]

    from transformers import AutoModelForCausalLM, AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(base.path)
    policy = make_policy(AutoModelForCausalLM.from_pretrained(base.path), config)
    history = ppo_train(policy, tokenizer, [list(p.messages) for p in prompts], reward_fn, config)
    staging = path.with_name(f".{path.name}.training")
    shutil.rmtree(staging, ignore_errors=True)
    save_policy(policy, staging / "adapter")
    merged = policy.lm.merge_and_unload()
    merged.save_pretrained(staging / "model")
    tokenizer.save_pretrained(staging / "model")
    shutil.rmtree(path, ignore_errors=True)
    staging.replace(path)
    rows = read_set(store, rm_lineage["preference_set"])[1] if rm_lineage else []
    record = lineage_record(
        kind="ppo",
        run_id=run_id,
        base_model=base.model_id,
        set_id=rm_lineage["preference_set"] if rm_lineage else None,
        rows=rows,
        settings=config.model_dump(),
        metrics={"steps": history},
        extra={
            "base_model_path": base.path,
            "model_path": str(path / "model"),
            "reward_model": reward_model,
            "rules_constitution_id": constitution.constitution_id if constitution else None,
            "prompt_set": prompt_set,
        },
    )
    write_lineage(path, record)
    return {**record, "path": str(path), "reused": False}
