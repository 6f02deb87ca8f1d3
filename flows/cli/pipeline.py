"""The whole pipeline and its schedules: ``run`` (one config, every stage) and ``schedule``."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated

import typer

from flows.cli.common import PROJECT_ROOT, out, prefect_environment
from tasks.core.errors import CharterError
from tasks.orchestration.deployments import FLOWS, check_cron, check_timezone, flow_path, next_run_times

app = typer.Typer()


@app.command("run")
def run_pipeline(
    config: Annotated[
        Path | None,
        typer.Argument(help="Pipeline config YAML (default: the bundled healthcare-scheduling one)."),
    ] = None,
    stage: Annotated[
        list[str] | None,
        typer.Option(help="Only these stages (repeatable): ingest, generate, ..., evaluate."),
    ] = None,
    store: Annotated[
        Path | None, typer.Option("--store", envvar="CHARTER_STORE", help="Override the config's store.")
    ] = None,
) -> None:
    """The whole pipeline from one config: ingest, generate, critique, label, merge, train, evaluate."""
    from tasks.backends.settings import model_identity
    from tasks.orchestration.pipeline_config import STAGES, load_pipeline_config

    path = config or PROJECT_ROOT / "datasets" / "healthcare-scheduling" / "pipeline.yaml"
    settings = load_pipeline_config(path)  # every key and file checked before any work
    unknown = sorted(set(stage or ()) - set(STAGES))
    if unknown:
        raise CharterError(f"unknown --stage {', '.join(unknown)}; stages: {', '.join(STAGES)}")
    prefect_environment()
    from tasks.orchestration.prefect_server import api_server_starting, without_heartbeats_when_ephemeral

    with api_server_starting():  # comes up while the model is prepared and torch is imported
        identity = model_identity(settings.policy_model.spec())
        out.print(f"pipeline {path}: store {store or settings.store}, model {identity.model_id}")
        from flows.pipeline import pipeline

    with without_heartbeats_when_ephemeral():
        result = pipeline(config=str(path), stages=stage, store=str(store) if store else None)
    out.print(Path(result.report_markdown).read_text(encoding="utf-8"), markup=False, highlight=False)
    out.print(f"[green]pipeline complete[/green] (run {result.run_id}); report: {result.report_html}")
    from tasks.report.review_section import bench_summary_lines
    from tasks.store.store import Store

    used = str(store or settings.store)
    for line in bench_summary_lines(Store.existing(used), used):
        out.print(line, markup=False, highlight=False)


@app.command()
def schedule(
    flow: Annotated[str, typer.Option(help=f"Flow to serve: {', '.join(FLOWS)}.")] = "pipeline",
    cron: Annotated[
        str | None, typer.Option(help="Cron expression, 5 fields, e.g. '0 2 * * *' (none: on demand only).")
    ] = None,
    timezone: Annotated[str, typer.Option(help="IANA time zone the cron expression is read in.")] = "UTC",
    name: Annotated[str | None, typer.Option(help="Deployment name (default: the flow's name).")] = None,
    param: Annotated[
        list[str] | None,
        typer.Option(help="Default parameter KEY=VALUE, VALUE read as JSON if it parses (repeatable)."),
    ] = None,
) -> None:
    """Serve a flow as a deployment on a Prefect server (PREFECT_API_URL): its runs execute here."""
    prefect_environment()  # the cron check imports Prefect's validator
    cron = check_cron(cron) if cron is not None else None
    check_timezone(timezone)
    flow_path(flow)
    from flows.schedule import plan, serve

    serve_plan = plan(flow, cron, timezone, name, param or [])
    out.print(f"[green]serving deployment[/green] [bold]{serve_plan.full_name}[/bold]")
    if serve_plan.parameters:
        out.print(f"default parameters: {json.dumps(serve_plan.parameters)}", markup=False, highlight=False)
    if cron:
        times = ", ".join(t.isoformat() for t in next_run_times(cron, timezone))
        out.print(f"schedule '{cron}' ({timezone}); next runs: {times}", markup=False, highlight=False)
    else:
        out.print("no schedule: runs start only when triggered")
    out.print(f"trigger a run now: {serve_plan.trigger_command}", markup=False, highlight=False)
    out.print("[dim]Ctrl+C stops serving and pauses the schedule.[/dim]")
    serve(serve_plan)
