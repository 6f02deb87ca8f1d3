"""``charter store``: check every stored file against its table's manifest, and compact tables.

Both are plain commands, not flows: ``verify`` only reads (``--adopt`` records the files of
tables written before manifests), and ``compact`` adds no rows and no run.
"""

from __future__ import annotations

from typing import Annotated

import typer

from flows.cli.common import err, out
from flows.cli.store_option import DEFAULT_STORE_PATH, StoreOption
from tasks.core.errors import CharterError
from tasks.store.manifest import RETIRED_KEPT_FOR
from tasks.store.schema import TABLES
from tasks.store.store import Store

store_app = typer.Typer(
    name="store",
    help="Check the store's files against their manifests; compact tables.",
    no_args_is_help=True,
)


@store_app.command("verify")
def verify(
    adopt: Annotated[
        bool,
        typer.Option(
            "--adopt",
            help="First record the files of tables that have no manifest (stores made before them).",
        ),
    ] = False,
    store: StoreOption = DEFAULT_STORE_PATH,
) -> None:
    """Check every Parquet file byte for byte (sha256) against its table's manifest.

    Names each missing, truncated, corrupted or unexpected file by path; exits 1 if anything
    is wrong.
    """
    target = Store.existing(store)
    if adopt:
        for name, files in target.adopt().items():
            if files:
                out.print(f"{name}: recorded {files:,} files written before manifests", highlight=False)
    problems = 0
    for name, state in target.verify().items():
        if state.problems:
            problems += len(state.problems)
            for problem in state.problems:
                err.print(f"[red]✗[/red] {problem}", highlight=False)
        else:  # a table with no manifest and no problem has no files
            entries = state.manifest.files if state.manifest else ()
            rows = sum(entry.rows for entry in entries)
            out.print(f"[green]✓[/green] {name}: {len(entries):,} files, {rows:,} rows", highlight=False)
    if problems:
        err.print(f"{problems} problem{'s' * (problems > 1)} in {target.root}", highlight=False)
        raise typer.Exit(1)


@store_app.command("compact")
def compact(
    table: Annotated[str | None, typer.Option(help="Only this table (default: every table).")] = None,
    store: StoreOption = DEFAULT_STORE_PATH,
) -> None:
    """Merge each table's runs of small Parquet files (one per append) into files of full row groups.

    Ids, rows and query results stay the same; readers and writers may keep running.
    """
    from tasks.store.compaction import compact as compact_table

    if table is not None and table not in TABLES:
        raise CharterError(f"unknown --table {table!r}; tables: {', '.join(TABLES)}")
    target = Store.existing(store)
    for name in [table] if table else list(TABLES):
        done = compact_table(target, name)
        if done.files_retired:
            out.print(
                f"{name}: {done.files_before:,} files -> {done.files_after:,} "
                f"({done.rows_merged:,} rows merged from {done.files_retired:,} files)",
                highlight=False,
            )
        else:
            out.print(f"{name}: {done.files_before:,} files, nothing to merge", highlight=False)
    minutes = int(RETIRED_KEPT_FOR.total_seconds() // 60)
    out.print(
        f"[dim]merged files stay on disk for {minutes} minutes for readers that listed them; "
        "the next write after that removes them[/dim]"
    )
