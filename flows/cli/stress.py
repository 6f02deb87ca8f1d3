"""``charter stress``: derived stress variants of a prompt set; and the stress tables ``charter eval``
prints. Deriving writes a file and reads nothing from the store, so it runs no flow."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any

import typer
from rich.console import Console

from flows.cli.common import out
from flows.cli.options import Options, settings_options
from flows.render import records_table
from tasks.constitution.model import load_constitution
from tasks.core.files import write_jsonl_atomically
from tasks.stress.derive import derive, variant_row
from tasks.stress.settings import DeriveSettings
from tasks.stress.stress_set import load_stress_set

stress_app = typer.Typer(
    name="stress", help="Stress sets: edge cases the tuned model never trained on.", no_args_is_help=True
)

# Shown for every untagged line of a source prompt set; variants carry their transform instead.
UNTAGGED = "(none)"


@stress_app.command("derive")
@settings_options(settings=Options(DeriveSettings))
def derive_command(
    prompts: Annotated[Path, typer.Option(help="Prompt set (or stress set) to derive variants of.")],
    output: Annotated[Path, typer.Option("-o", "--output", help="Where to write the variants (JSONL).")],
    constitution: Annotated[
        Path | None,
        typer.Option(help="Keep each source's expected behaviour where one of its rules still applies."),
    ] = None,
    *,
    settings: DeriveSettings,
) -> None:
    """Variants of every prompt by deterministic transforms, each naming its source and transform."""
    rules = load_constitution(constitution) if constitution else None
    items = load_stress_set(prompts, rules, untagged=UNTAGGED)
    variants = derive(items, settings, rules)
    write_jsonl_atomically(output, (variant_row(v) for v in variants))
    kept = sum(v.expected is not None for v in variants)
    out.print(
        f"[green]{len(variants)} variants[/green] of {len(items)} prompts "
        f"({', '.join(settings.transforms)}) written to {output}"
        + (f"; {kept} keep their expected behaviour" if rules else "")
    )


def print_stress(section: dict[str, Any], console: Console) -> None:
    """The stress section of a scoreboard: the per-type table, then the shadow zone."""
    title = f"Stress set {section['file']}: {section['prompts']} prompts, base vs tuned per stress type"
    console.print(records_table(section["table"], title))
    zone = [{k: v for k, v in entry.items() if k != "tuned_response"} for entry in section["shadow_zone"]]
    if zone:
        console.print(
            records_table(zone, "Shadow zone: tuned worse than base, or the reward model least sure")
        )
    else:
        console.print(
            "[dim]shadow zone empty: the tuned model did no worse than its base on any stress prompt[/dim]"
        )


def print_beyond_known(section: dict[str, Any] | None, console: Console) -> None:
    """Per family, the share of tuned samples beyond the reward model's held-out spread."""
    if section is None:
        return
    title = (
        f"Out of what the reward model knows: spread above {section['threshold']:.4f} "
        f"(the {section['quantile']:.0%} quantile on {section['reference_samples']} held-out base samples)"
    )
    console.print(records_table(section["families"], title))
