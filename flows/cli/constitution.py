"""``charter constitution``: validate, show, diff and import constitution files (read-only, instant)."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer
from rich.panel import Panel
from rich.table import Table

from flows.cli.common import err, out
from tasks.constitution.diff import diff_constitutions
from tasks.constitution.importers import IMPORT_FORMATS, import_anthropic, slugify
from tasks.constitution.model import load_constitution
from tasks.core.errors import CharterError, InputError
from tasks.core.files import write_atomically

constitution_app = typer.Typer(
    name="constitution", help="Validate, show, diff and import constitution files.", no_args_is_help=True
)


@constitution_app.command("validate")
def constitution_validate(
    files: Annotated[list[Path], typer.Argument(help="Constitution YAML files.")],
) -> None:
    """Check constitution files; every problem names its file, line and field."""
    failed = 0
    for path in files:
        try:
            constitution = load_constitution(path)
        except InputError as exc:
            failed += 1
            err.print(f"[red]✗ {path}[/red]")
            for problem in exc.problems:
                err.print(f"  {problem}", markup=False, highlight=False)
            continue
        out.print(
            f"[green]✓ {path}[/green]: {constitution.name} {constitution.version}, "
            f"{len(constitution.principles)} principles, id {constitution.constitution_id[:12]}"
        )
    if failed:
        raise typer.Exit(1)


@constitution_app.command("show")
def constitution_show(
    file: Path,
    full: Annotated[bool, typer.Option(help="Print every principle's full text.")] = False,
) -> None:
    """Show a constitution's principles, tags and rules."""
    constitution = load_constitution(file)
    out.print(
        Panel(
            f"{constitution.description or ''}\n\n[dim]id {constitution.constitution_id}[/dim]",
            title=f"{constitution.name} {constitution.version}",
            title_align="left",
        )
    )
    if full:
        for p in constitution.principles:
            body = "\n".join(
                f"[bold]{name}[/bold]: {getattr(p, name)}"
                for name in ("critique", "revision", "comparison")
                if getattr(p, name)
            )
            rules = "\n".join(f"[bold]rule {r.id}[/bold]: {r.meaning()}" for r in p.rules)
            tags = f"tags: {', '.join(p.tags)}\n" if p.tags else "tags: (all families)\n"
            out.print(
                Panel(
                    tags + body + ("\n" + rules if rules else ""),
                    title=f"{p.id}: {p.title}",
                    title_align="left",
                )
            )
        return
    table = Table("id", "title", "tags", "rules", "hash")
    for p in constitution.principles:
        table.add_row(
            p.id,
            p.title,
            ", ".join(p.tags) or "(all)",
            ", ".join(r.id for r in p.rules),
            p.principle_hash[:10],
        )
    out.print(table)


@constitution_app.command("diff")
def constitution_diff(old: Path, new: Path) -> None:
    """Principle-level differences: added, removed and changed principles with their text."""
    diff = diff_constitutions(load_constitution(old), load_constitution(new))
    if diff.empty:
        out.print("no differences")
        return
    status = (
        "[yellow]changed[/yellow]"
        if diff.meaning_changed
        else "[green]unchanged (cosmetic edits only)[/green]"
    )
    out.print(f"constitution id {diff.old_id[:12]} → {diff.new_id[:12]}: {status}")
    for change in diff.metadata:
        out.print(f"[bold]{change.field}[/bold]: {change.old!r} → {change.new!r}")
    for p in diff.added:
        out.print(f"[green]+ added[/green] {p.id}: {p.title}")
    for p in diff.removed:
        out.print(f"[red]- removed[/red] {p.id}: {p.title}")
    for principle_id, changes in diff.changed.items():
        out.print(f"[yellow]~ changed[/yellow] {principle_id}: {', '.join(c.field for c in changes)}")
        for change in changes:
            out.print(change.unified(), markup=False, highlight=False)


@constitution_app.command("import")
def constitution_import(
    sources: Annotated[
        list[Path], typer.Argument(help="Files to import (e.g. the CAI critique and comparison JSON).")
    ],
    output: Annotated[Path, typer.Option("-o", "--output", help="Where to write the YAML.")],
    fmt: Annotated[str, typer.Option("--format", help=f"One of: {', '.join(IMPORT_FORMATS)}.")] = "anthropic",
    name: Annotated[
        str | None, typer.Option(help="Constitution name (default: from the first file).")
    ] = None,
    version: Annotated[str, typer.Option(help="Version string.")] = "1.0.0",
    description: Annotated[str | None, typer.Option(help="Description.")] = None,
) -> None:
    """Convert a published constitution into charter's YAML format (validated before writing)."""
    if fmt not in IMPORT_FORMATS:
        raise CharterError(f"unknown --format {fmt!r}; formats: {', '.join(IMPORT_FORMATS)}")
    if output.is_dir():
        raise CharterError(
            f"-o {output} is a directory: give the YAML file to write, e.g. {output}/NAME.yaml"
        )
    if not output.parent.is_dir():
        raise CharterError(f"-o {output}: no such directory {output.parent}")
    text, constitution = import_anthropic(
        list(sources), name or slugify(sources[0].stem), version, description
    )
    write_atomically(output, text)
    out.print(
        f"[green]wrote[/green] {output}: {len(constitution.principles)} principles, "
        f"id {constitution.constitution_id[:12]}"
    )
