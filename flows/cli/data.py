"""Getting data in and asking about it: ``ingest``, ``import-labels``, ``sql`` and ``audit``."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from flows.cli.common import DEFAULT_STORE_PATH, PROJECT_ROOT, StoreOption, err, out, prefect_environment
from flows.cli.options import Options, settings_options
from tasks.core.errors import CharterError
from tasks.ingest.human_labels import FORMATS
from tasks.ingest.label_files import LabelFileSettings, preflight
from tasks.store.sql_settings import SqlSettings

app = typer.Typer()

AUDIT_TITLES = {
    "stage_counts": "Pipeline stages (items in, rows out)",
    "label_counts": "Labels by source and labeller",
    "coverage_ledger": "Coverage ledger (prompt family x label source)",
    "human_agreement": "Human-human agreement (Cohen's kappa)",
    "disagreements": "Disagreement bench (most split first)",
    "ai_human_agreement": "AI-human agreement (vs the human majority; Cohen's kappa)",
    "position_consistency": "AI judge position consistency (both orders)",
    "length_bias": "Length bias (how often the longer response wins)",
    "human_position_bias": "People's position bias (how often the response shown first wins; 0.5 is none)",
    "calibration_error": "AI judge calibration (expected calibration error vs humans)",
    "rule_agreement": "Rules and judges against people (agreement, estimated confidence)",
    "ai_disagreements": "AI labels against the human majority (most confident first)",
    "preference_summary": "Preference sets (rows by deciding source)",
}


def _run_ingest(
    store: Path, constitutions: list[str], prompt_sets: list[str], label_files: list[LabelFileSettings]
) -> None:
    preflight(constitutions, prompt_sets, label_files)
    prefect_environment()
    from flows.ingest import ingest  # Prefect is imported only for commands that run flows.

    result = ingest(
        store=str(store), constitutions=constitutions, prompt_sets=prompt_sets, label_files=label_files
    )
    added = ", ".join(f"{table} +{n}" for table, n in sorted(result.rows_added.items())) or "nothing new"
    out.print(f"[green]ingest complete[/green] (run {result.run_id}): {added}")
    for path in result.rejects:
        out.print(f"[yellow]rejected rows written to {path}[/yellow]")


def _bundled(pattern: str) -> list[str]:
    return [
        str(p.relative_to(Path.cwd()) if p.is_relative_to(Path.cwd()) else p)
        for p in sorted(PROJECT_ROOT.glob(pattern))
    ]


@app.command()
def ingest(
    store: StoreOption = DEFAULT_STORE_PATH,
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
        *(LabelFileSettings(path=str(p), format="charter") for p in labels or []),
        *(LabelFileSettings(path=str(p), format="hh-rlhf") for p in hh_rlhf or []),
        *(LabelFileSettings(path=str(p), format="label-studio") for p in label_studio or []),
    ]
    if bundled and not (constitutions or prompt_sets or specs):
        constitutions = _bundled("constitutions/*.yaml")
        prompt_sets = _bundled("datasets/*/prompts.jsonl")
        specs = [LabelFileSettings(path=p) for p in _bundled("datasets/*/human-labels.jsonl")]
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
    store: StoreOption = DEFAULT_STORE_PATH,
) -> None:
    """Import human pairwise labels (charter JSONL, hh-rlhf JSONL, Label Studio JSON, Argilla records,
    CSV, TRL preferences; Argilla and TRL also as a datasets folder)."""
    if fmt not in FORMATS:
        raise CharterError(f"unknown --format {fmt!r}; formats: {', '.join(FORMATS)}")
    spec = LabelFileSettings(
        path=str(file), format=fmt, annotator=annotator, family=family, skip_invalid=skip_invalid
    )
    _run_ingest(store, [], [], [spec])


@app.command()
@settings_options(settings=Options(SqlSettings))
def sql(
    query: Annotated[str, typer.Argument(help="One SELECT statement over the store's tables and views.")],
    fmt: Annotated[str, typer.Option("--format", help="table, csv or json.")] = "table",
    *,
    settings: SqlSettings,
    store: StoreOption = DEFAULT_STORE_PATH,
) -> None:
    """Query the store with DuckDB SQL, read-only, within --timeout and --memory-limit.

    Ctrl+C stops the query (exit 130, SIGTERM 143); a store with symbolic links under
    tables/ is refused.
    """
    from flows.render import OUTPUT_FORMATS, print_result
    from tasks.store.sql import QueryInterrupted, run_bounded_query
    from tasks.store.store import Store

    if fmt not in OUTPUT_FORMATS:
        raise CharterError(f"unknown --format {fmt!r}; formats: {', '.join(OUTPUT_FORMATS)}")
    try:
        result = run_bounded_query(Store.existing(store), query, settings)
    except QueryInterrupted as stop:
        err.print(str(stop), highlight=False)
        raise typer.Exit(stop.exit_code) from None
    print_result(result, fmt, out)


@app.command()
def audit(
    store: StoreOption = DEFAULT_STORE_PATH,
    disagreements: Annotated[
        int, typer.Option(help="How many disagreements to list (human, and AI against the human majority).")
    ] = 10,
) -> None:
    """Summarise labels, coverage, human and AI-human agreement, judge biases and preference sets."""
    from flows.render import rich_table
    from tasks.store.audit import audit_summary
    from tasks.store.store import Store

    summary = audit_summary(Store.existing(store), disagreement_limit=disagreements)
    for name, result in summary.sections.items():
        if result.rows:
            out.print(rich_table(result, title=AUDIT_TITLES[name], max_width=40))
        else:
            out.print(f"[bold]{AUDIT_TITLES[name]}[/bold]: [dim]none yet[/dim]")
    missing = summary.unlabelled_families("human")
    if missing:
        out.print(f"[yellow]families with no human label:[/yellow] {', '.join(missing)}")
