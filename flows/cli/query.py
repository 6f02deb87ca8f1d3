"""Asking the store: ``sql`` and ``audit``, read-only.

Kept apart from the commands that change the store, and importing only what they need (the
store, DuckDB, the SQL settings), so a query answers in a fraction of a second.
"""

from __future__ import annotations

from typing import Annotated

import typer

from flows.cli.console import err, out
from flows.cli.options import Options, settings_options
from flows.cli.store_option import DEFAULT_STORE_PATH, StoreOption
from tasks.core.errors import CharterError
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


@app.command()
@settings_options(settings=Options(SqlSettings))
def sql(
    query: Annotated[
        str | None,
        typer.Argument(
            help="One SELECT statement over the store's tables and views (none with --interactive)."
        ),
    ] = None,
    fmt: Annotated[str, typer.Option("--format", help="table, csv or json.")] = "table",
    interactive: Annotated[
        bool,
        typer.Option(
            "--interactive",
            "-i",
            help="A read-only prompt over one session (.help lists its commands); with stdin piped, "
            "run the statements read from it and exit 1 if any failed.",
        ),
    ] = False,
    *,
    settings: SqlSettings,
    store: StoreOption = DEFAULT_STORE_PATH,
) -> None:
    """Query the store with DuckDB SQL, read-only, within --timeout and --memory-limit.

    Ctrl+C stops the query (exit 130, SIGTERM 143; at the --interactive prompt, Ctrl+C stops
    only the query); a store with symbolic links under tables/ is refused.
    """
    from rich.text import Text

    from flows.render import OUTPUT_FORMATS, print_result
    from tasks.store.sql import QueryInterrupted, run_bounded_query
    from tasks.store.sql_shell import ShellOutput, run_session
    from tasks.store.store import Store

    if fmt not in OUTPUT_FORMATS:
        raise CharterError(f"unknown --format {fmt!r}; formats: {', '.join(OUTPUT_FORMATS)}")
    if (query is None) != interactive:
        raise CharterError(
            "--interactive reads its statements from the prompt or stdin: give no QUERY with it"
            if interactive
            else "give a QUERY, or --interactive for a prompt (or statements piped to stdin)"
        )
    output = ShellOutput(
        result=lambda result: print_result(result, fmt, out),
        text=lambda text: out.print(text, markup=False, highlight=False),
        error=lambda message: err.print(Text.assemble(("error: ", "red"), message), highlight=False),
    )
    try:
        if interactive:
            raise typer.Exit(run_session(Store.existing(store), settings, output))
        output.result(run_bounded_query(Store.existing(store), query, settings))
    except QueryInterrupted as stop:
        err.print(str(stop), highlight=False)
        raise typer.Exit(stop.exit_code) from None


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
