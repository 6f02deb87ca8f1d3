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
    reward_model: Annotated[Path, typer.Option(help="Reward model checkpoint.")],
    prompt: Annotated[str, typer.Option(help="The user's message.")],
    responses: Annotated[list[str], typer.Argument(help="Responses to score.")],
) -> None:
    """Score responses to a prompt with a trained reward model (higher is better)."""
    from tasks.train.reward_model import load_scorer

    conversation = [{"role": "user", "content": prompt}]
    scores = load_scorer(reward_model)([conversation] * len(responses), responses)
    table = Table("score", "response")
    for value, text in sorted(zip(scores, responses, strict=True), reverse=True):
        table.add_row(f"{value:.4f}", text)
    out.print(table)


@app.command()
def lineage(checkpoint: Annotated[Path, typer.Argument(help="A checkpoint folder charter wrote.")]) -> None:
    """What made a checkpoint: run, base model, preference set, constitutions, label counts, metrics."""
    record = read_lineage(checkpoint)
    record.get("metrics", {}).pop("steps", None)  # per-step logs are in the file, too long to print
    out.print_json(data=record)
