"""The ingest flow: constitutions, prompt sets and human label files into the store."""

from __future__ import annotations

from dataclasses import dataclass

from prefect import flow
from prefect.runtime import flow_run

from flows.results import FlowResult
from tasks.ingest.label_files import LabelFileSettings
from tasks.ingest.prefect_tasks import import_constitution, import_label_file, import_prompt_set
from tasks.store.runs import recorded_run
from tasks.store.store import Store


@dataclass(frozen=True, kw_only=True)
class IngestResult(FlowResult):
    rejects: tuple[str, ...]
    """The rejects files written (label files imported with ``skip_invalid`` that had bad rows)."""


@flow(name="ingest")
def ingest(
    store: str,
    constitutions: list[str] | None = None,
    prompt_sets: list[str] | None = None,
    label_files: list[LabelFileSettings] | None = None,
) -> IngestResult:
    """Import every given file; returns rows added per table and any rejects files written."""
    constitutions, prompt_sets, label_files = constitutions or [], prompt_sets or [], label_files or []
    target = Store.create(store)
    parameters = {
        "store": str(target.root),
        "constitutions": constitutions,
        "prompt_sets": prompt_sets,
        "label_files": [spec.model_dump() for spec in label_files],
    }
    rejects: list[str] = []
    with recorded_run(target, "ingest", parameters, run_id=flow_run.get_id()) as run:
        for path in constitutions:
            run.merge(import_constitution(str(target.root), run.run_id, path))
        for path in prompt_sets:
            run.merge(import_prompt_set(str(target.root), run.run_id, path))
        for spec in label_files:
            outcome = import_label_file(str(target.root), run.run_id, spec)
            run.merge(outcome)
            if outcome["rejects_path"]:
                rejects.append(outcome["rejects_path"])
    return IngestResult(run_id=run.run_id, rows_added=dict(run.rows_added), rejects=tuple(rejects))
