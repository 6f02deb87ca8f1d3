"""``charter constitution``: validate, show, diff and import constitution files (read-only, instant),
and ``impact``: what an edit does to the stored labels (a flow, like the stage commands)."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer
from rich.panel import Panel
from rich.table import Table

from flows.cli.common import backend_options, checked_backend, err, out, prefect_environment
from flows.cli.options import Flag, Options, settings_options
from flows.cli.store_option import DEFAULT_STORE_PATH, StoreOption
from tasks.backends.settings import BackendSettings, choose_kind
from tasks.constitution.diff import diff_constitutions
from tasks.constitution.importers import IMPORT_FORMATS, import_anthropic, slugify
from tasks.constitution.model import load_constitution
from tasks.core.errors import CharterError, InputError
from tasks.core.files import write_atomically
from tasks.impact.settings import ImpactSettings
from tasks.label.judge import JudgeSettings
from tasks.merge.policy import MergeSettings, load_merge_policy

constitution_app = typer.Typer(
    name="constitution",
    help="Validate, show, diff and import constitution files, and measure an edit's impact.",
    no_args_is_help=True,
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


@constitution_app.command("impact")
@settings_options(
    backend=backend_options("Judge"),
    judge=Options(
        JudgeSettings,
        only=("template_path", "cot_tokens", "cot_clamp"),
        flags={"template_path": Flag(names=("--template",), path=True)},
    ),
    stage=Options(ImpactSettings),
)
def constitution_impact(
    old: Annotated[Path, typer.Argument(help="The constitution the stored labels were made under.")],
    new: Annotated[Path, typer.Argument(help="The edited constitution.")],
    policy: Annotated[
        Path | None, typer.Option(help="Merge policy YAML for both merges (default: charter merge's).")
    ] = None,
    *,
    backend: BackendSettings,
    judge: JudgeSettings,
    stage: ImpactSettings,
    store: StoreOption = DEFAULT_STORE_PATH,
) -> None:
    """Judge again under NEW only the stored labels whose principle changed (with the judge they
    were made with); report flips, agreement with people and the preference rows that change."""
    from tasks.impact.measure import store_plan
    from tasks.store.store import Store

    old_version, new_version = load_constitution(old), load_constitution(new)
    judge.template()  # a bad template fails here, before any work
    merge_policy = load_merge_policy(policy) if policy else MergeSettings()
    target = Store.existing(store)
    spec = backend.model_copy(update={"kind": choose_kind(backend.kind)[0]})
    plan = store_plan(target, old_version, new_version, spec, judge)
    if not plan.changes:
        out.print("no principle's meaning differs between OLD and NEW: nothing to judge again")
        return
    if plan.comparisons:  # only a changed comparison instruction needs the model
        spec = checked_backend(backend)
    out.print(
        f"{sum(plan.labels_before.values())} labels under OLD's changed principles: "
        f"{len(plan.comparisons)} to judge again, {len(plan.carried)} verdicts to carry over; "
        f"rules checked again on {len(plan.recheck_pairs)} pairs"
    )
    prefect_environment()
    from flows.impact import impact as impact_flow

    result = impact_flow(
        store=str(target.root),
        constitution=str(new),
        against=str(old),
        backend=spec,
        judge=judge,
        policy=merge_policy,
        batch_size=stage.batch_size,
    )
    out.print(Path(result.report_markdown).read_text(encoding="utf-8"), markup=False, highlight=False)
    out.print(
        f"[green]impact complete[/green] (run {result.run_id}): {result.batches} judge batches "
        f"({result.batches_skipped} already done), ai_labels +{result.added('ai_labels')}; "
        f"report {result.report_html}"
    )
