"""Training and evaluation: ``train reward|dpo|ppo`` and ``eval``.

Every field of a training settings model is an option (``--lora-r``, ``--gamma``, ...), with the
model's default; the flows, Prefect and torch load only once a command runs.
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from flows.cli.common import (
    DEFAULT_STORE_PATH,
    StoreOption,
    backend_options,
    checked_backend,
    out,
    prefect_environment,
)
from flows.cli.options import Flag, Options, settings_options
from flows.results import CheckpointResult
from tasks.backends.settings import BackendSettings
from tasks.constitution.model import load_constitution
from tasks.core.errors import CharterError
from tasks.evaluate.settings import EvaluateSettings
from tasks.stress.stress_set import load_stress_set
from tasks.train.lineage import SCOREBOARD_FILE, latest_checkpoint, read_lineage
from tasks.train.settings import DPOSettings, PPOSettings, RewardModelSettings

train_app = typer.Typer(
    name="train", help="Train reward models and policies on preference sets.", no_args_is_help=True
)
app = typer.Typer()

SetOption = Annotated[
    str | None, typer.Option("--set", help="Preference set id or prefix (default: the latest).")
]
OutputOption = Annotated[
    Path | None, typer.Option("-o", "--output", help="Checkpoint folder (default: STORE/checkpoints/...).")
]
PolicyModelOption = Annotated[str | None, typer.Option(help="Policy model (default: embedded SmolLM2).")]


def _check_set(store: Path, set_id: str | None) -> list[dict]:
    """A missing preference set fails before Prefect starts; its rows."""
    from tasks.merge.preference_sets import read_set
    from tasks.store.store import Store

    return read_set(Store.existing(store), set_id)[1]


def _checkpoint(name: str, result: CheckpointResult) -> str:
    return f"[green]{name}[/green] {result.path}{' (already trained)' if result.reused else ''}"


@train_app.command("reward")
@settings_options(
    config=Options(
        RewardModelSettings,
        flags={
            "backbone": Flag(help="minilm (embedded encoder), smollm2 (embedded causal LM) or a model path."),
            "eval_fraction": Flag(help="Share of pairs held out for evaluation."),
        },
    )
)
def train_reward_command(
    set_id: SetOption = None,
    *,
    config: RewardModelSettings,
    output: OutputOption = None,
    store: StoreOption = DEFAULT_STORE_PATH,
) -> None:
    """Train a Bradley-Terry reward model (soft targets, weights) and report held-out calibration."""
    _check_set(store, set_id)
    prefect_environment()
    from flows.train import train_reward

    result = train_reward(
        store=str(store), set_id=set_id, config=config, output=str(output) if output else None
    )
    metrics = result.metrics
    after, before = metrics.get("after") or {}, metrics.get("before") or {}
    out.print(
        f"{_checkpoint('reward model', result)}: "
        f"{metrics['train_pairs']} training pairs, {metrics['eval_pairs']} held out; "
        f"held-out loss {before.get('loss', float('nan')):.4f} -> {after.get('loss', float('nan')):.4f}, "
        f"accuracy {after.get('accuracy')}, ECE {after.get('ece')}"
    )
    if config.ensemble > 1:
        accuracies = ", ".join(str(m["accuracy"]) for m in metrics["members"])
        out.print(
            f"{config.ensemble} members (held-out accuracy {accuracies}); "
            f"mean uncertainty on held-out pairs {after.get('mean_uncertainty')}"
        )
    out.print(f"{result.rows_added.get('reward_scores', 0)} new pair verdicts in reward_scores")


@train_app.command("dpo")
@settings_options(
    settings=Options(
        DPOSettings,
        flags={
            "lora": Flag(names=("--lora/--no-lora",), help="Train LoRA adapters (default)."),
            "min_confidence": Flag(help="Only rows whose |2*target-1| is at least this."),
            "margin_pairs": Flag(help="Training pairs the log-prob margin before/after is measured on."),
        },
    )
)
def train_dpo_command(
    set_id: SetOption = None,
    model: PolicyModelOption = None,
    *,
    settings: DPOSettings,
    output: OutputOption = None,
    store: StoreOption = DEFAULT_STORE_PATH,
) -> None:
    """DPO on a preference set through TRL, with a frozen reference; saves the merged model and lineage."""
    from tasks.train.dpo import training_rows

    training_rows(_check_set(store, set_id), settings.min_confidence)  # none left fails here, not in Prefect
    prefect_environment()
    from flows.train import train_dpo

    result = train_dpo(
        store=str(store),
        set_id=set_id,
        model=model,
        settings=settings,
        output=str(output) if output else None,
    )
    metrics = result.metrics
    out.print(
        f"{_checkpoint('DPO policy', result)}: {result.lineage['pairs']} pairs, "
        f"{len(metrics['loss'])} steps; log pi(chosen) - log pi(rejected) "
        f"{metrics['logprob_margin_before']:.3f} -> {metrics['logprob_margin_after']:.3f}"
    )


@train_app.command("ppo")
@settings_options(
    config=Options(
        PPOSettings,
        flags={
            "target_kl": Flag(help="The adaptive KL controller's target (nats per response)."),
            "adaptive_kl": Flag(names=("--adaptive-kl/--fixed-kl",)),
        },
    )
)
def train_ppo_command(
    prompts: Annotated[str, typer.Option(help="Prompt set whose prompts the policy answers in rollouts.")],
    reward_model: Annotated[
        Path | None, typer.Option(help="Reward model checkpoint (its score is the reward).")
    ] = None,
    rules: Annotated[
        Path | None, typer.Option(help="Constitution whose rules add a reward (-1 per broken rule).")
    ] = None,
    model: PolicyModelOption = None,
    *,
    config: PPOSettings,
    output: OutputOption = None,
    store: StoreOption = DEFAULT_STORE_PATH,
) -> None:
    """PPO with a LoRA policy, value head, GAE, clipping and an adaptive KL penalty to the frozen base."""
    if reward_model is None and rules is None:
        raise CharterError("give a reward: --reward-model DIR, --rules CONSTITUTION, or both")
    if reward_model:
        read_lineage(reward_model)
    if rules:
        load_constitution(rules)
    prefect_environment()
    from flows.train import train_ppo

    result = train_ppo(
        store=str(store),
        prompts=prompts,
        model=model,
        config=config,
        reward_model=str(reward_model) if reward_model else None,
        rules=str(rules) if rules else None,
        output=str(output) if output else None,
    )
    steps = result.metrics["steps"]
    first, last = steps[0], steps[-1]
    out.print(
        f"{_checkpoint('PPO policy', result)}: {len(steps)} steps; "
        f"reward {first['reward_mean']:.3f} -> {last['reward_mean']:.3f}, "
        f"KL {first['kl']:.3f} -> {last['kl']:.3f} (coefficient {last['kl_coef']:.4f})"
    )
    if "rm/aggregate" in last:
        out.print(
            f"reward model ({config.reward_aggregation}): {first['rm/aggregate']:.3f} -> "
            f"{last['rm/aggregate']:.3f}, members' spread {first['rm/std']:.3f} -> {last['rm/std']:.3f}"
        )


@app.command("eval")
@settings_options(settings=Options(EvaluateSettings), judge_model=backend_options("Judge", prefix="judge"))
def eval_command(
    constitution: Annotated[Path, typer.Option(help="Constitution for rule checks and the AI judge.")],
    prompts: Annotated[
        str, typer.Option(help="Prompt set; prompts the training set did not use are held out.")
    ],
    checkpoint: Annotated[
        Path | None, typer.Argument(help="A dpo or ppo checkpoint (default: the store's latest).")
    ] = None,
    reward_model: Annotated[
        Path | None, typer.Option(help="Reward model checkpoint (default: the store's latest, if any).")
    ] = None,
    *,
    settings: EvaluateSettings,
    judge_model: BackendSettings,
    store: StoreOption = DEFAULT_STORE_PATH,
) -> None:
    """Behaviour scoreboard, tuned vs base per family: reward, rules, escalation, refusal, KL, wins;
    with --stress, also per stress type on a stress set, and its shadow zone."""
    rules = load_constitution(constitution)
    if settings.stress:
        load_stress_set(settings.stress, rules)  # a bad line fails here, before any model loads
    checkpoint = checkpoint or latest_checkpoint(store, ("dpo", "ppo"))
    if checkpoint is None:
        raise CharterError(f"no policy checkpoint in {store}/checkpoints: run `charter train dpo` first")
    read_lineage(checkpoint)
    reward_model = reward_model or latest_checkpoint(store, ("reward",))
    if reward_model:
        read_lineage(reward_model)
    if settings.judge:
        judge_model = checked_backend(judge_model)
    out.print(f"evaluating {checkpoint}" + (f" with reward model {reward_model}" if reward_model else ""))
    prefect_environment()
    from flows.cli.stress import print_beyond_known, print_stress
    from flows.render import print_scoreboard
    from flows.train import evaluate_policy

    result = evaluate_policy(
        store=str(store),
        checkpoint=str(checkpoint),
        constitution=str(constitution),
        prompts=prompts,
        reward_model=str(reward_model) if reward_model else None,
        settings=settings,
        judge_model=judge_model,
    )
    print_scoreboard(result.scoreboard, out)
    print_beyond_known(result.scoreboard["beyond_known"], out)
    if result.scoreboard["stress"]:
        print_stress(result.scoreboard["stress"], out)
    out.print(f"[dim]full scoreboard with every response: {Path(checkpoint) / SCOREBOARD_FILE}[/dim]")
