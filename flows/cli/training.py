"""Training and evaluation: ``train reward|sft|dpo|ppo`` and ``eval``.

Every field of a training settings model is an option (``--lora-r``, ``--gamma``, ...), with the
model's default; the flows, Prefect and torch load only once a command runs.
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from flows.cli.common import backend_options, checked_backend, out, prefect_environment
from flows.cli.options import Flag, Options, settings_options
from flows.cli.store_option import DEFAULT_STORE_PATH, StoreOption
from flows.results import CheckpointResult
from tasks.backends.settings import BackendSettings
from tasks.constitution.model import load_constitution
from tasks.core.errors import CharterError
from tasks.evaluate.settings import EvaluateSettings, PreferenceEvalSettings
from tasks.stress.stress_set import load_stress_set
from tasks.train.lineage import SCOREBOARD_FILE, latest_checkpoint, read_lineage
from tasks.train.settings import DPOSettings, PPOSettings, RewardModelSettings, SFTSettings

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


@train_app.command("sft")
@settings_options(
    settings=Options(
        SFTSettings, flags={"lora": Flag(names=("--lora/--no-lora",), help="Train LoRA adapters (default).")}
    )
)
def train_sft_command(
    critique_run: Annotated[
        str | None,
        typer.Option(help="Critique run id or prefix whose revisions to train on (default: the latest)."),
    ] = None,
    model: PolicyModelOption = None,
    *,
    settings: SFTSettings,
    output: OutputOption = None,
    store: StoreOption = DEFAULT_STORE_PATH,
) -> None:
    """SL-CAI: fine-tune on a critique run's final revisions (TRL SFT, loss on the revision only);
    saves the merged model and lineage. Start DPO or PPO from it with --model CHECKPOINT."""
    from tasks.store.store import Store
    from tasks.train.sft import sft_set
    from tasks.train.tracking import check_report_to

    # No records or a missing tracking package fails here, not in Prefect.
    data = sft_set(Store.existing(store), critique_run)
    check_report_to(settings.report_to)
    prefect_environment()
    from flows.train import train_sft

    result = train_sft(
        store=str(store),
        critique_run=data.critique_run,
        model=model,
        settings=settings,
        output=str(output) if output else None,
    )
    metrics, lineage = result.metrics, result.lineage
    left = ", ".join(f"{n} {why}" for why, n in sorted(lineage["records_left_out"].items())) or "none"
    out.print(
        f"{_checkpoint('SFT policy', result)}: {lineage['records']} records of critique run "
        f"{lineage['critique_run'][:12]} (left out: {left}), {len(metrics['loss'])} steps; "
        f"revision loss {metrics['revision_loss_before']:.3f} -> {metrics['revision_loss_after']:.3f} "
        f"nats/token on {metrics['loss_records']} records"
    )


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
    from tasks.train.tracking import check_report_to

    # No rows left or a missing tracking package fails here, not in Prefect after a model loaded.
    training_rows(_check_set(store, set_id), settings)
    check_report_to(settings.report_to)
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
@settings_options(
    settings=Options(EvaluateSettings),
    judge_model=backend_options("Judge", prefix="judge"),
    preference=Options(PreferenceEvalSettings, flags={"label_format": Flag(names=("--format",))}),
)
def eval_command(
    constitution: Annotated[
        Path | None, typer.Option(help="Constitution for rule checks and the AI judge.")
    ] = None,
    prompts: Annotated[
        str | None, typer.Option(help="Prompt set; prompts the training set did not use are held out.")
    ] = None,
    checkpoint: Annotated[
        Path | None, typer.Argument(help="A dpo, ppo or grpo checkpoint (default: the store's latest).")
    ] = None,
    reward_model: Annotated[
        Path | None,
        typer.Option(help="Reward model checkpoint (scoreboard default: the store's latest, if any)."),
    ] = None,
    preferences: Annotated[
        str | None,
        typer.Option(
            help="Held-out preference file (any label format) or set id: accuracy, not the scoreboard."
        ),
    ] = None,
    policy: Annotated[Path | None, typer.Option(help="With --preferences: a policy checkpoint.")] = None,
    json_path: Annotated[
        Path | None, typer.Option("--json", help="With --preferences: write the figures to this file.")
    ] = None,
    *,
    settings: EvaluateSettings,
    judge_model: BackendSettings,
    preference: PreferenceEvalSettings,
    store: StoreOption = DEFAULT_STORE_PATH,
) -> None:
    """Behaviour scoreboard, tuned vs base per family: reward, rules, escalation, refusal, KL, wins;
    with --stress, also per stress type on a stress set, and its shadow zone. With --preferences,
    held-out preference accuracy of --reward-model, --policy and the AI judge instead."""
    if preferences is not None:
        if checkpoint is not None:
            raise CharterError("with --preferences, name the policy with --policy DIR")
        from flows.cli.preference_eval import run_preference_eval

        run_preference_eval(
            preferences,
            store=store,
            settings=preference,
            reward_model=reward_model,
            policy=policy,
            constitution=constitution,
            judge=settings.judge,
            judge_model=judge_model,
            seed=settings.seed,
            json_path=json_path,
        )
        return
    if constitution is None or prompts is None:
        raise CharterError(
            "the scoreboard needs --constitution and --prompts (held-out pairs: --preferences)"
        )
    if policy is not None or json_path is not None:
        raise CharterError("--policy and --json go with --preferences FILE|SET")
    rules = load_constitution(constitution)
    if settings.stress:
        load_stress_set(settings.stress, rules)  # a bad line fails here, before any model loads
    checkpoint = checkpoint or latest_checkpoint(store, ("dpo", "ppo", "grpo"))
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
