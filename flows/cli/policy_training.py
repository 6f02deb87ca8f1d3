"""``train grpo``: TRL's GRPO (or RLOO) on constitution rewards, beside ``train reward|sft|dpo|ppo``.

A module of its own so ``flows/cli/training.py`` stays readable; its command joins the same
``charter train`` group (importing this module registers it, see ``flows.cli.entry``).
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from flows.cli.common import out, prefect_environment
from flows.cli.options import Flag, Options, settings_options
from flows.cli.store_option import DEFAULT_STORE_PATH, StoreOption
from flows.cli.training import OutputOption, PolicyModelOption, _checkpoint, train_app
from tasks.constitution.model import load_constitution
from tasks.train.lineage import read_lineage
from tasks.train.settings import GRPOSettings


@train_app.command("grpo")
@settings_options(
    settings=Options(GRPOSettings, flags={"lora": Flag(names=("--lora/--no-lora",))}),
)
def train_grpo_command(
    prompts: Annotated[str, typer.Option(help="Prompt set whose prompts the policy answers.")],
    rules: Annotated[
        Path | None,
        typer.Option(help="Constitution whose rules reward each response (--rewards rules|both)."),
    ] = None,
    reward_model: Annotated[
        Path | None, typer.Option(help="Reward model checkpoint or ensemble (--rewards reward_model|both).")
    ] = None,
    model: PolicyModelOption = None,
    *,
    settings: GRPOSettings,
    output: OutputOption = None,
    store: StoreOption = DEFAULT_STORE_PATH,
) -> None:
    """GRPO (or --algorithm rloo) through TRL: responses sampled in groups per prompt, rewarded by the
    constitution's rules (one reward per applicable rule, or their sum) and/or a reward model, with a
    KL to the frozen base (--beta); LoRA; saves the merged model, lineage and per-step log."""
    settings.check_reward_inputs(str(reward_model) if reward_model else None, str(rules) if rules else None)
    if reward_model:
        read_lineage(reward_model)
    if rules:
        load_constitution(rules)
    prefect_environment()
    from flows.train import train_grpo

    result = train_grpo(
        store=str(store),
        prompts=prompts,
        model=model,
        settings=settings,
        reward_model=str(reward_model) if reward_model else None,
        rules=str(rules) if rules else None,
        output=str(output) if output else None,
    )
    steps = result.metrics["steps"]
    first, last = steps[0], steps[-1]
    kl = f", KL {first['kl']:.4f} -> {last['kl']:.4f} per token" if "kl" in last else ""
    out.print(
        f"{_checkpoint(f'{settings.algorithm.upper()} policy', result)}: {len(steps)} steps; "
        f"reward {first['reward']:.3f} -> {last['reward']:.3f}{kl}"
    )
    for name in result.metrics["reward_functions"]:
        key = f"rewards/{name}/mean"
        out.print(f"  {name}: {first[key]:.3f} -> {last[key]:.3f}")
