"""Looking at checkpoints: ``score`` (a reward model's scores) and ``lineage`` (what made one)."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer
from rich.table import Table

from flows.cli.common import out
from tasks.train.lineage import read_lineage

app = typer.Typer()


@app.command()
def score(
    reward_model: Annotated[Path, typer.Option(help="Reward model or ensemble checkpoint.")],
    prompt: Annotated[str, typer.Option(help="The user's message.")],
    responses: Annotated[list[str], typer.Argument(help="Responses to score.")],
) -> None:
    """Score responses to a prompt with a trained reward model (higher is better): per response the
    members' mean and spread, and for every two responses P(the first better) and its spread."""
    from itertools import combinations

    from tasks.train.ensemble import load_ensemble
    from tasks.train.uncertainty import means_and_stds, pair_probabilities

    ensemble = load_ensemble(reward_model)[0]
    members = ensemble.member_scores([[{"role": "user", "content": prompt}]] * len(responses), responses)
    single = len(members) == 1
    means, stds = means_and_stds(members)
    table = Table("#", "mean", "std", "response", title=f"{len(members)} reward model(s)")
    for index in sorted(range(len(responses)), key=lambda i: -means[i]):
        spread = "single model" if single else f"{stds[index]:.4f}"
        table.add_row(str(index + 1), f"{means[index]:.4f}", spread, responses[index])
    out.print(table)
    if len(responses) < 2:
        return
    pairs = list(combinations(range(len(responses)), 2))
    p, spread = pair_probabilities(
        [[m[i] for i, _ in pairs] for m in members], [[m[j] for _, j in pairs] for m in members]
    )
    table = Table("first", "second", "P(first better)", "spread")
    for (i, j), value, std in zip(pairs, p, spread, strict=True):
        table.add_row(str(i + 1), str(j + 1), f"{value:.4f}", "single model" if single else f"{std:.4f}")
    out.print(table)


@app.command()
def lineage(checkpoint: Annotated[Path, typer.Argument(help="A checkpoint folder charter wrote.")]) -> None:
    """What made a checkpoint: run, base model, preference set, constitutions, label counts, metrics."""
    record = read_lineage(checkpoint)
    record.get("metrics", {}).pop("steps", None)  # per-step logs are in the file, too long to print
    out.print_json(data=record)
