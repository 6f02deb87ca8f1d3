"""GRPO (or RLOO) through TRL on a prompt set, rewarded by the constitution's rules and/or a reward model.

TRL samples ``num_generations`` responses per prompt and scores each with charter's reward functions
(``tasks.train.rewards``: one per applicable rule, or their aggregate, and the reward model), the
same definitions charter's PPO sums. Charter picks the prompts each step answers (the seeded
schedule PPO uses, given to TRL in order), so the lineage can list them (``rollout_prompt_ids``) and
the scoreboard leave them out of its held-out prompts; it sets CPU-safe defaults (no bf16, no
gradient checkpointing, no vLLM, generation by ``transformers``) and a KL to the base (``beta``
0.04: with LoRA the reference is the base with the adapter disabled). Each step's TRL log (``reward``,
``kl``, ``rewards/<name>/mean``, ...) is kept in the lineage's ``metrics.steps``.
"""

from __future__ import annotations

import shutil
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from tasks.constitution.model import Constitution, load_constitution
from tasks.core.conversation import Message
from tasks.core.errors import CharterError
from tasks.core.progress import progress
from tasks.generate.generation import PromptItem, select_prompts
from tasks.merge.preference_sets import read_set
from tasks.store.store import Store
from tasks.train.checkpoints import _install, _made_by, _staging, _target
from tasks.train.ensemble import load_scorer
from tasks.train.lineage import lineage_record, policy_start, read_lineage
from tasks.train.ppo import rollout_schedule
from tasks.train.rewards import (
    REWARD_MODEL_NAME,
    NamedReward,
    applicable_rule_ids,
    reward_functions,
    trl_reward_function,
)
from tasks.train.settings import GRPOSettings
from tasks.train.tracking import check_report_to, tracked
from tasks.train.trl_setup import cpu_safe_arguments, lora_config


def grpo_rewards(
    settings: GRPOSettings,
    constitution: Constitution | None,
    prompts: Sequence[PromptItem],
    scorer: Callable[..., list[float]] | None,
) -> list[NamedReward]:
    """The named, weighted reward functions ``settings.rewards`` asks for, over ``prompts``."""
    per_rule: list[str] = []
    if constitution is not None and settings.rule_rewards == "per_rule":
        per_rule = applicable_rule_ids(constitution, [(p.family, p.messages) for p in prompts])
        if not per_rule:
            raise CharterError(
                f"no rule of constitution {constitution.name} applies to any of the {len(prompts)} prompts "
                "(their families and turns): nothing for --rule-rewards per_rule to reward"
            )
    return reward_functions(
        constitution,
        {p.prompt_id: p.family for p in prompts},
        per_rule=per_rule,
        rules_weight=settings.rules_weight,
        reward_model=scorer,
        reward_model_weight=settings.reward_model_weight,
    )


def grpo_trainer(
    model: Any,
    tokenizer: Any,
    conversations: Sequence[Sequence[Message]],
    rewards: Sequence[NamedReward],
    settings: GRPOSettings,
    output_dir: str | Path,
    callbacks: Sequence[Any] = (),
    figures: Mapping[str, Callable[[], Mapping[str, float]]] | None = None,
) -> Any:
    """TRL's ``GRPOTrainer`` (or ``RLOOTrainer``) for ``settings``, answering ``conversations`` in
    order, ``settings.batch_size`` per step; ``figures`` maps a reward's name to its extra log figures."""
    from transformers import PrinterCallback
    from trl import GRPOConfig, GRPOTrainer, RLOOConfig, RLOOTrainer

    from datasets import Dataset

    grpo = settings.algorithm == "grpo"
    config = (GRPOConfig if grpo else RLOOConfig)(
        output_dir=str(output_dir),
        **({"loss_type": settings.loss_type} if grpo else {}),
        beta=settings.beta,
        num_generations=settings.num_generations,
        per_device_train_batch_size=settings.batch_size * settings.num_generations,
        gradient_accumulation_steps=1,
        max_completion_length=settings.max_new_tokens,
        temperature=settings.temperature,
        learning_rate=settings.learning_rate,
        max_steps=settings.steps,
        reward_weights=[reward.weight for reward in rewards],
        # charter's schedule already orders the prompts (the lineage lists them): TRL must not reshuffle.
        shuffle_dataset=False,
        seed=settings.seed,
        use_vllm=False,
        **cpu_safe_arguments(settings.precision),
    )
    peft_config = lora_config(settings.lora, settings.lora_r, settings.lora_alpha)
    figures = figures or {}
    trainer = (GRPOTrainer if grpo else RLOOTrainer)(
        model=model,
        reward_funcs=[trl_reward_function(reward, figures.get(reward.name)) for reward in rewards],
        args=config,
        train_dataset=Dataset.from_list([{"prompt": list(c)} for c in conversations]),
        processing_class=tokenizer,
        peft_config=peft_config,
        callbacks=list(callbacks),
    )
    # With tqdm off the Trainer prints every log entry instead; charter's progress bar replaces both.
    trainer.remove_callback(PrinterCallback)
    return trainer


@contextmanager
def _completion_positions_scored_on_cpu() -> Iterator[None]:
    """Score only the completion's positions in TRL's fused log-prob head on a CPU too.

    Off Triton devices TRL 1.16 (``trl.trainer.utils._fused_forward``) projects every position,
    prompt included, onto the vocabulary, so that a compiling device (Neuron) sees one tile shape;
    the prompt positions are masked out afterwards. A CPU compiles nothing, so charter lets it take
    the compact path: the same log-probs (the same rewards and KL, step for step, in a 3-step run)
    at 2.4x the speed of a step of the two-layer test model (7.3 s against 17.5 s, measured under
    load). Where TRL no longer has the switch, nothing is changed.
    """
    from trl.trainer import utils

    original = getattr(utils, "_use_triton", None)
    if original is None:
        yield
        return
    utils._use_triton = lambda device: device.type == "cpu" or original(device)
    try:
        yield
    finally:
        utils._use_triton = original


def grpo_train(
    model: Any,
    tokenizer: Any,
    prompts: Sequence[Sequence[Message]],
    rewards: Sequence[NamedReward],
    settings: GRPOSettings,
    output_dir: str | Path,
    log_dir: str | Path | None = None,
    run_name: str | None = None,
    figures: Mapping[str, Callable[[], Mapping[str, float]]] | None = None,
) -> tuple[Any, list[dict[str, Any]]]:
    """Train ``model`` on ``prompts`` (chat conversations, visited in :func:`rollout_schedule`'s order);
    return the trained model (LoRA merged) and TRL's log of each step.

    Per-step metrics also go to ``settings.report_to`` under ``log_dir`` (default ``output_dir/logs``).
    """
    from transformers import TrainerCallback

    check_report_to(settings.report_to)
    order = [prompts[i] for batch in rollout_schedule(len(prompts), settings) for i in batch]

    class StepProgress(TrainerCallback):
        def on_step_end(self, args, state, control, **kwargs):
            bar.advance()

    logs = Path(log_dir) if log_dir is not None else Path(output_dir) / "logs"
    with tracked(settings.report_to, logs, run_name or settings.algorithm) as tracker:
        trainer = grpo_trainer(
            model,
            tokenizer,
            order,
            rewards,
            settings,
            output_dir,
            [StepProgress(), tracker.callback()],
            figures,
        )
        label = f"{settings.algorithm.upper()} training"
        with (
            progress(label, total=settings.steps, unit="steps") as bar,
            _completion_positions_scored_on_cpu(),
        ):
            trainer.train()
    trained = trainer.model
    merged = trained.merge_and_unload() if hasattr(trained, "merge_and_unload") else trained
    return merged, [entry for entry in trainer.state.log_history if "reward" in entry]


def train_grpo_checkpoint(
    store: Store,
    run_id: str,
    prompt_set: str,
    model: str | None,
    settings: GRPOSettings,
    reward_model: str | None,
    constitution_path: str | None,
    output: str | None,
) -> dict[str, Any]:
    """GRPO/RLOO on a prompt set's prompts; saves the merged model at ``<checkpoint>/model``.

    The inputs ``settings.rewards`` names must be given, and only those; everything is checked (the
    constitution read, the rules that apply found) before any model loads.
    """
    settings.check_reward_inputs(reward_model, constitution_path)
    check_report_to(settings.report_to)
    base, start = policy_start(model)
    prompts = select_prompts(store, prompt_set)
    constitution = load_constitution(constitution_path) if constitution_path else None
    rm_lineage = read_lineage(reward_model) if reward_model else None
    grpo_rewards(settings, constitution, prompts, None)  # no applicable rule fails here
    identity = {
        "prompts": sorted(p.prompt_id for p in prompts),
        "model": base.model_id,
        "settings": _made_by(settings),
        "reward_model": rm_lineage["run_id"] if rm_lineage else None,
        "rules": constitution.constitution_id if constitution else None,
    }
    path, done = _target(store, "grpo", identity, output)
    if done is not None:
        return {**done, "path": str(path), "reused": True}
    scorer = (
        load_scorer(reward_model, settings.reward_aggregation, settings.uncertainty_penalty)
        if reward_model
        else None
    )
    rewards = grpo_rewards(settings, constitution, prompts, scorer)
    rolled_out = sorted(
        {prompts[i].prompt_id for batch in rollout_schedule(len(prompts), settings) for i in batch}
    )

    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(base.path)
    dtype = torch.bfloat16 if settings.precision == "bfloat16" else torch.float32
    policy = AutoModelForCausalLM.from_pretrained(base.path, dtype=dtype)
    staging = _staging(path)
    merged, steps = grpo_train(
        policy,
        tokenizer,
        [list(p.messages) for p in prompts],
        rewards,
        settings,
        staging / "trainer",
        log_dir=staging / "logs",
        run_name=path.name,
        figures={REWARD_MODEL_NAME: scorer.figures} if scorer is not None else None,
    )
    merged.save_pretrained(staging / "model")
    tokenizer.save_pretrained(staging / "model")
    shutil.rmtree(staging / "trainer", ignore_errors=True)
    rows = read_set(store, rm_lineage["preference_set"])[1] if rm_lineage else []
    record = lineage_record(
        kind="grpo",
        run_id=run_id,
        base_model=base.model_id,
        set_id=rm_lineage["preference_set"] if rm_lineage else None,
        rows=rows,
        settings=settings.model_dump(),
        identity=identity,
        metrics={"steps": steps, "reward_functions": [r.name for r in rewards]},
        extra={
            "algorithm": settings.algorithm,
            "base_model_path": base.path,
            "model_path": str(path / "model"),
            "reference_model": base.path if settings.beta > 0 else None,
            **start,
            "reward_model": reward_model,
            "rules_constitution_id": constitution.constitution_id if constitution else None,
            "prompt_set": prompt_set,
            "rollout_prompt_ids": rolled_out,
        },
    )
    return _install(staging, path, record)
