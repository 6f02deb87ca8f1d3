"""``charter compare CKPT [CKPT ...]``: a race between candidate policies and their bases.

Every input is checked (each checkpoint a policy, the constitution, the stress set, the reward
model) before Prefect starts; the flow and the models load only once the command runs.
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any

import typer
from rich.markup import escape
from rich.table import Table

from flows.cli.common import backend_options, checked_backend, out, prefect_environment
from flows.cli.options import Flag, Options, settings_options
from flows.cli.store_option import DEFAULT_STORE_PATH, StoreOption
from tasks.backends.settings import BackendSettings
from tasks.constitution.model import load_constitution
from tasks.evaluate.settings import CompareSettings
from tasks.stress.stress_set import load_stress_set
from tasks.train.lineage import latest_checkpoint, read_lineage

app = typer.Typer()


@app.command("compare")
@settings_options(
    settings=Options(CompareSettings, flags={"label_format": Flag(names=("--format",))}),
    judge_model=backend_options("Judge", prefix="judge"),
)
def compare_command(
    checkpoints: Annotated[
        list[Path], typer.Argument(help="Policy checkpoints (dpo, ppo, grpo, sft) to race.")
    ],
    constitution: Annotated[Path, typer.Option(help="Constitution for rule checks and the AI judge.")],
    prompts: Annotated[
        str, typer.Option(help="Prompt set; the prompts no candidate trained on are held out.")
    ],
    reward_model: Annotated[
        Path | None, typer.Option(help="Reward model checkpoint (default: the store's latest, if any).")
    ] = None,
    preferences: Annotated[
        str | None,
        typer.Option(
            help="Held-out preference file (any label format) or set id: each candidate's accuracy."
        ),
    ] = None,
    *,
    settings: CompareSettings,
    judge_model: BackendSettings,
    store: StoreOption = DEFAULT_STORE_PATH,
) -> None:
    """Race policies and their bases on the same held-out prompts and seeds: scoreboard per
    candidate, win rates of each over each other (reward model, AI judge in both orders), KL to
    its base, and with --stress / --preferences the stress tables and preference accuracy."""
    load_constitution(constitution)
    for checkpoint in checkpoints:
        read_lineage(checkpoint)
    if settings.stress:
        load_stress_set(settings.stress, load_constitution(constitution))
    reward_model = reward_model or latest_checkpoint(store, ("reward",))
    if reward_model:
        read_lineage(reward_model)
    if settings.judge:
        judge_model = checked_backend(judge_model)
    prefect_environment()
    from flows.compare import compare_policies

    result = compare_policies(
        store=str(store),
        checkpoints=[str(c) for c in checkpoints],
        constitution=str(constitution),
        prompts=prompts,
        reward_model=str(reward_model) if reward_model else None,
        preferences=preferences,
        settings=settings,
        judge_model=judge_model,
    )
    out.print(race_table(result.compare))
    for name, board in result.compare["candidates"].items():
        warning = (board["length_check"] or {}).get("warning")
        if warning:
            out.print(f"[yellow]warning:[/yellow] {escape(name)}: {escape(warning)}")
    note = " (already raced: read back)" if result.reused else ""
    out.print(f"[dim]the whole race, with every response: {result.path}{note}[/dim]")


def _figure(value: Any) -> str:
    return "\u2013" if value is None else f"{value:.3f}" if isinstance(value, float) else str(value)


def _pair(first: Any, second: Any) -> str:
    return f"{_figure(first)} / {_figure(second)}"


def race_table(race: dict[str, Any]) -> Table:
    """One row per entrant: scoreboard figures, win rates over its base, over each entrant
    (``#k``, reward model / AI judge) and over the field, KL and preference accuracy."""
    from tasks.evaluate.race import matrix_cell

    names = [entrant["name"] for entrant in race["entrants"]]
    missing = [
        what for what, key in (("no reward model", "reward_model"), ("no AI judge", "judge")) if not race[key]
    ]
    title = f"Race on {race['prompts']} held-out prompts; win rates by reward model / AI judge" + "".join(
        f"; {what}" for what in missing
    )
    table = Table(title=title, title_justify="left")
    for heading in ("entrant", "kind", "reward", "rule pass", "escal.", "refusal", "KL to base", "vs base"):
        table.add_column(heading, overflow="fold")
    for index in range(len(names)):
        table.add_column(f"vs #{index + 1}")
    table.add_column("vs field")
    table.add_column("pref. acc. (implicit / log-prob)")
    matrix = race["win_matrix"]
    for index, row in enumerate(race["standings"]):
        versus = [
            "\u00b7"
            if other == row["model"]
            else _pair(
                *(matrix_cell(matrix, judge, row["model"], other) for judge in ("reward model", "ai judge"))
            )
            for other in names
        ]
        table.add_row(
            escape(f"#{index + 1} {row['model']}"),
            row["kind"],
            *(_figure(row[key]) for key in ("reward", "rule_pass_rate", "escalation_rate", "refusal_rate")),
            _figure(row["kl_to_base"]),
            _pair(row["base_win_rate_rm"], row["base_win_rate_judge"]),
            *versus,
            _pair(row["field_win_rate_rm"], row["field_win_rate_judge"]),
            _pair(row["implicit_reward_accuracy"], row["logprob_margin_accuracy"]),
        )
    return table
