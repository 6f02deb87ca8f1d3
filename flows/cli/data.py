"""Getting data in: ``ingest`` and ``import-labels`` (asking about it: :mod:`flows.cli.query`)."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from flows.cli.common import PROJECT_ROOT, out, prefect_environment
from flows.cli.store_option import DEFAULT_STORE_PATH, StoreOption
from tasks.core.errors import CharterError
from tasks.ingest.human_labels import FORMATS
from tasks.ingest.label_files import LabelFileSettings, preflight

app = typer.Typer()


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
