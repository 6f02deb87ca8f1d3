"""The run report's "Revisions" section: how many revisions of the latest critique runs talk
about the response instead of being one, or copy a few-shot dialogue's revision.

Those revisions (:mod:`tasks.critique.revision_check`) are left out of the SFT set and the
revision-preference records (the revision pairs leave out the first kind); this section says
how many there were per run, why, and whether the run showed the model a few-shot file, so a
reader sees what the exports lose and whether the few-shot dialogues helped. Copies are
counted when the run's few-shot file can still be read.
"""

from __future__ import annotations

import json
from collections import Counter
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import TYPE_CHECKING

from tasks.core.errors import CharterError
from tasks.critique.chains import load_few_shot
from tasks.critique.revision_check import revision_problem
from tasks.report.blocks import Note, Section, Table
from tasks.store.store import Store

if TYPE_CHECKING:  # the report data holds this module's records: a runtime import would be a cycle
    from tasks.report.data import ReportData

SECTION_ID = "revisions"
TITLE = "Revisions"
LATEST_RUNS = 3


@dataclass(frozen=True)
class CritiqueRunCheck:
    """One critique run's revisions, checked: how many it wrote and the flagged ones by reason."""

    run_id: str
    finished_at: datetime
    few_shot: str | None
    """The few-shot file the run showed the model (its name), or None."""
    revisions: int
    flagged: dict[str, int]

    @property
    def flagged_count(self) -> int:
        return sum(self.flagged.values())


def critique_run_checks(store: Store, latest: int = LATEST_RUNS) -> tuple[CritiqueRunCheck, ...]:
    """The ``latest`` critique runs that wrote revisions, newest first, each revision checked
    against the text it revised."""
    rows = store.read("critiques", ["run_id", "created_at", "revision", "input_text"]).to_pylist()
    by_run: dict[str, list[dict]] = {}
    for row in rows:
        by_run.setdefault(row["run_id"], []).append(row)
    newest = sorted(by_run, key=lambda run: max(r["created_at"] for r in by_run[run]), reverse=True)
    few_shot = _few_shot_files(store)
    checks = []
    for run in newest[:latest]:
        examples = _example_revisions(few_shot.get(run))
        reasons = Counter(
            reason
            for row in by_run[run]
            if (reason := revision_problem(row["revision"], row["input_text"], examples))
        )
        checks.append(
            CritiqueRunCheck(
                run_id=run,
                finished_at=max(r["created_at"] for r in by_run[run]),
                few_shot=Path(few_shot[run]).name if run in few_shot else None,
                revisions=len(by_run[run]),
                flagged=dict(reasons.most_common()),
            )
        )
    return tuple(checks)


def _few_shot_files(store: Store) -> dict[str, str]:
    """Per critique run, the few-shot file its parameters name (runs without one are absent)."""
    files = {}
    for event in store.read("runs", ["run_id", "flow", "parameters"]).to_pylist():
        if event["flow"] == "critique":
            path = json.loads(event["parameters"]).get("few_shot_path")
            if path:
                files[event["run_id"]] = path
    return files


def _example_revisions(path: str | None) -> list[str]:
    """The revisions of a run's few-shot dialogues; none when the file is gone or no longer
    valid (the report is written whatever the store's surroundings)."""
    if path is None:
        return []
    try:
        return [dialogue[-1]["content"] for dialogue in load_few_shot(path)]
    except (CharterError, OSError):
        return []


def revision_section(data: ReportData) -> Section:
    if not data.critique_runs:
        return Section(SECTION_ID, TITLE, (Note("No data: no critique run has written revisions."),))
    rows = tuple(
        (
            check.run_id[:8],
            check.finished_at,
            check.few_shot or "none",
            check.revisions,
            check.flagged_count,
            check.flagged_count / check.revisions,
            check.flagged or None,
        )
        for check in data.critique_runs
    )
    table = Table(
        ("critique run", "last written", "few-shot file", "revisions", "flagged", "share", "why"),
        rows,
        f"Revisions flagged as no training target, in the latest {len(rows)} critique runs (newest first)",
    )
    note = Note(
        "A flagged revision is commentary about the response (\u201cThe original response used\u2026\u201d) "
        "rather than a reply to the user, or a copy of a few-shot dialogue's revision: `charter "
        "export sft|revisions` leaves both out and counts them, the revision pairs the first. A "
        "few-shot file (`--few-shot`, `critique.few_shot_path`) of worked dialogues shows the model "
        "what a revision looks like."
    )
    return Section(SECTION_ID, TITLE, (table, note))
