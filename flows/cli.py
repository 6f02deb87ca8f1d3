"""The ``charter`` command line.

Commands that change the store run as Prefect flows (ephemeral mode unless
``PREFECT_API_URL`` points at a server); their inputs are validated first, so a bad
file fails in a second with its line and field, before Prefect starts. Read-only
commands (``sql``, ``audit``, ``constitution``) are plain functions and answer at once.
"""

from __future__ import annotations

import os
import sys
from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console
from rich.panel import Panel
from rich.table import Table
from rich.text import Text

from flows.render import OUTPUT_FORMATS, print_result, rich_table
from tasks.audit import audit_summary
from tasks.constitution import load_constitution
from tasks.constitution_diff import diff_constitutions
from tasks.constitution_import import IMPORT_FORMATS, import_anthropic, slugify
from tasks.errors import CharterError, InputError
from tasks.human_labels import FORMATS
from tasks.label_files import LabelFileSpec, preflight
from tasks.sql import run_query
from tasks.store import DEFAULT_STORE, Store

PROJECT_ROOT = Path(__file__).resolve().parent.parent

app = typer.Typer(
    name="charter",
    help="Constitutional and AI-feedback preference data: principles, labels, audits.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    add_completion=False,
)
constitution_app = typer.Typer(
    help="Validate, show, diff and import constitution files.", no_args_is_help=True
)
app.add_typer(constitution_app, name="constitution")

out = Console(soft_wrap=True)
err = Console(stderr=True, soft_wrap=True)

StoreOption = Annotated[
    Path,
    typer.Option(
        "--store", envvar="CHARTER_STORE", help="Store directory (default ./store or $CHARTER_STORE)."
    ),
]


def _run_ingest(
    store: Path, constitutions: list[str], prompt_sets: list[str], label_files: list[LabelFileSpec]
) -> None:
    preflight(constitutions, prompt_sets, label_files)
    os.environ.setdefault("PREFECT_SERVER_ANALYTICS_ENABLED", "false")
    from flows.ingest import ingest  # Prefect is imported only for commands that run flows.

    result = ingest(
        store=str(store), constitutions=constitutions, prompt_sets=prompt_sets, label_files=label_files
    )
    added = ", ".join(f"{table} +{n}" for table, n in sorted(result["rows_added"].items())) or "nothing new"
    out.print(f"[green]ingest complete[/green] (run {result['run_id']}): {added}")
    for path in result["rejects"]:
        out.print(f"[yellow]rejected rows written to {path}[/yellow]")


def _bundled(pattern: str) -> list[str]:
    return [
        str(p.relative_to(Path.cwd()) if p.is_relative_to(Path.cwd()) else p)
        for p in sorted(PROJECT_ROOT.glob(pattern))
    ]


@app.command()
def ingest(
    store: StoreOption = Path(DEFAULT_STORE),
    constitution: Annotated[list[Path] | None, typer.Option(help="Constitution YAML (repeatable).")] = None,
    prompts: Annotated[list[Path] | None, typer.Option(help="Prompt set JSONL (repeatable).")] = None,
    labels: Annotated[
        list[Path] | None, typer.Option(help="Label file in charter's format (repeatable).")
    ] = None,
    hh_rlhf: Annotated[
        list[Path] | None, typer.Option("--hh-rlhf", help="hh-rlhf JSONL (repeatable).")
    ] = None,
    label_studio: Annotated[
        list[Path] | None, typer.Option("--label-studio", help="Label Studio JSON export (repeatable).")
    ] = None,
    bundled: Annotated[bool, typer.Option(help="With no files given, ingest the bundled samples.")] = True,
) -> None:
    """Import constitutions, prompt sets and label files in one Prefect flow run."""
    constitutions = [str(p) for p in constitution or []]
    prompt_sets = [str(p) for p in prompts or []]
    specs = [
        *(LabelFileSpec(path=str(p), format="charter") for p in labels or []),
        *(LabelFileSpec(path=str(p), format="hh-rlhf") for p in hh_rlhf or []),
        *(LabelFileSpec(path=str(p), format="label-studio") for p in label_studio or []),
    ]
    if bundled and not (constitutions or prompt_sets or specs):
        constitutions = _bundled("constitutions/*.yaml")
        prompt_sets = _bundled("datasets/*/prompts.jsonl")
        specs = [LabelFileSpec(path=p) for p in _bundled("datasets/*/human-labels.jsonl")]
        out.print(
            f"[dim]ingesting the bundled samples: {len(constitutions)} constitutions, "
            f"{len(prompt_sets)} prompt sets, {len(specs)} label files[/dim]"
        )
    if not (constitutions or prompt_sets or specs):
        raise CharterError("nothing to ingest: give --constitution, --prompts or a label file")
    _run_ingest(store, constitutions, prompt_sets, specs)


@app.command("import-labels")
def import_labels_command(
    file: Annotated[Path, typer.Argument(help="The label export to import.")],
    fmt: Annotated[str, typer.Option("--format", help=f"One of: {', '.join(FORMATS)}.")] = "charter",
    annotator: Annotated[str | None, typer.Option(help="Annotator for rows that do not name one.")] = None,
    family: Annotated[str | None, typer.Option(help="Prompt family for rows that do not name one.")] = None,
    skip_invalid: Annotated[
        bool, typer.Option("--skip-invalid", help="Write the good rows; bad rows go to a rejects file.")
    ] = False,
    store: StoreOption = Path(DEFAULT_STORE),
) -> None:
    """Import human pairwise labels (charter JSONL, hh-rlhf JSONL, Label Studio JSON)."""
    if fmt not in FORMATS:
        raise CharterError(f"unknown --format {fmt!r}; formats: {', '.join(FORMATS)}")
    spec = LabelFileSpec(
        path=str(file), format=fmt, annotator=annotator, family=family, skip_invalid=skip_invalid
    )
    _run_ingest(store, [], [], [spec])


@app.command()
def sql(
    query: Annotated[str, typer.Argument(help="One SELECT statement over the store's tables and views.")],
    fmt: Annotated[str, typer.Option("--format", help="table, csv or json.")] = "table",
    store: StoreOption = Path(DEFAULT_STORE),
) -> None:
    """Query the store with DuckDB SQL, read-only."""
    if fmt not in OUTPUT_FORMATS:
        raise CharterError(f"unknown --format {fmt!r}; formats: {', '.join(OUTPUT_FORMATS)}")
    print_result(run_query(Store.existing(store), query), fmt, out)


@app.command()
def audit(
    store: StoreOption = Path(DEFAULT_STORE),
    disagreements: Annotated[int, typer.Option(help="How many disagreements to list.")] = 10,
) -> None:
    """Summarise label counts, coverage, human agreement and disagreements."""
    summary = audit_summary(Store.existing(store), disagreement_limit=disagreements)
    titles = {
        "label_counts": "Labels by source and labeller",
        "coverage_ledger": "Coverage ledger (prompt family x label source)",
        "human_agreement": "Human-human agreement (Cohen's kappa)",
        "disagreements": "Disagreement bench (most split first)",
    }
    for name, result in summary.sections.items():
        if result.rows:
            out.print(rich_table(result, title=titles[name], max_width=40))
        else:
            out.print(f"[bold]{titles[name]}[/bold]: [dim]none yet[/dim]")
    missing = summary.unlabelled_families("human")
    if missing:
        out.print(f"[yellow]families with no human label:[/yellow] {', '.join(missing)}")


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
    text, constitution = import_anthropic(
        list(sources), name or slugify(sources[0].stem), version, description
    )
    output.write_text(text, encoding="utf-8")
    out.print(
        f"[green]wrote[/green] {output}: {len(constitution.principles)} principles, "
        f"id {constitution.constitution_id[:12]}"
    )


def main() -> None:
    """Entry point: user errors print as messages, not tracebacks, and exit 1."""
    try:
        app()
    except CharterError as exc:
        err.print(Text.assemble(("error: ", "red"), str(exc)), highlight=False)
        sys.exit(1)
