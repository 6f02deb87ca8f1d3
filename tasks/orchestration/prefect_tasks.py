"""Prefect tasks for the pipeline flow's own work between and after its stages."""

from __future__ import annotations

from pathlib import Path

from prefect import task

from tasks.backends.registry import close_backends
from tasks.orchestration.task_options import task_options
from tasks.report.report import ReportPaths, StageRecord, write_report
from tasks.store.store import Store


@task(name="release-models", **task_options(retries=0))
def release_models() -> None:
    """Stop the model engines this process holds, so their memory and threads go to what follows."""
    close_backends()


@task(name="write-report", **task_options())
def write_run_report(
    store_root: str,
    report_dir: str,
    title: str,
    stages: list[StageRecord],
    reward_checkpoint: str | None,
    policy_checkpoint: str | None,
) -> ReportPaths:
    """The run's HTML report and Markdown summary (each file replaced atomically, so a retry is safe)."""
    return write_report(
        Store(store_root),
        Path(report_dir),
        title=title,
        stages=stages,
        reward_checkpoint=reward_checkpoint,
        policy_checkpoint=policy_checkpoint,
    )
