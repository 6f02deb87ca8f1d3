"""``charter models``: prepare and inspect the models charter loads."""

from __future__ import annotations

from typing import Annotated

import typer

from flows.cli.common import out
from tasks.backends.models import resolve_model

models_app = typer.Typer(
    name="models", help="Prepare and inspect the models charter loads.", no_args_is_help=True
)


@models_app.command("prepare")
def models_prepare(
    model: Annotated[
        str | None, typer.Option(help="Model to resolve (default: the embedded SmolLM2).")
    ] = None,
) -> None:
    """Convert the embedded default model into a safetensors folder in the cache (once)."""
    resolved = resolve_model(model)
    out.print(f"[green]ready[/green] {resolved.model_id} at {resolved.path}")
