"""An impact run's record: what it measured, kept beside its report as ``impact.json``.

The label figures come from the ``impact`` view, the preference-set changes from two merges
in memory (:mod:`tasks.impact.preference_changes`), the reasons labels were not judged again
from the run's plan; the record holds all three, so the run report shows a measured edit
without judging or merging anything again, as it shows a checkpoint's scoreboard.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from tasks.constitution.model import Constitution
from tasks.core.files import write_atomically
from tasks.impact.preference_changes import PreferenceChanges
from tasks.store.store import Store

RECORD_FILE = "impact.json"
REPORTS_DIR = "reports"


@dataclass(frozen=True)
class ConstitutionVersion:
    name: str
    version: str
    constitution_id: str
    path: str

    @classmethod
    def of(cls, constitution: Constitution, path: str) -> ConstitutionVersion:
        return cls(constitution.name, constitution.version, constitution.constitution_id, path)

    @property
    def label(self) -> str:
        return f"{self.name} {self.version} ({self.constitution_id[:12]})"


@dataclass(frozen=True)
class ImpactSummary:
    """What one impact run found, per principle; plain data, written and read as JSON."""

    run_id: str
    created_at: str
    old: ConstitutionVersion
    new: ConstitutionVersion
    changes: list[dict[str, Any]]
    """Per added, removed or changed principle: ``principle_id``, ``change``, ``fields`` (which of
    its fields changed), ``labels_before`` and ``not_rejudged`` ({reason: labels})."""
    labels: list[dict[str, Any]]
    """The ``impact`` view's rows for OLD -> NEW."""
    preferences: PreferenceChanges
    work: dict[str, int]
    """What the run did: ``judged`` (labels a model judged again), ``carried`` (verdicts carried
    over, the judge's prompt unchanged), ``rule_labels`` (NEW rule labels), ``rechecked_pairs``."""

    def to_json(self) -> str:
        return json.dumps(asdict(self), indent=2, sort_keys=True, default=str)

    @classmethod
    def from_json(cls, text: str) -> ImpactSummary:
        data = json.loads(text)
        return cls(
            **data
            | {
                "old": ConstitutionVersion(**data["old"]),
                "new": ConstitutionVersion(**data["new"]),
                "preferences": PreferenceChanges.from_dict(data["preferences"]),
            }
        )


def report_dir(store: Store, run_id: str) -> Path:
    """Where a run's report files go: ``STORE/reports/<run id>``, as for ``charter run``."""
    return store.root / REPORTS_DIR / run_id


def write_record(store: Store, summary: ImpactSummary) -> Path:
    path = report_dir(store, summary.run_id) / RECORD_FILE
    write_atomically(path, summary.to_json())
    return path


def latest_impact(store: Store) -> ImpactSummary | None:
    """The most recent impact run's record in the store, or None when no edit was measured."""
    records = sorted((store.root / REPORTS_DIR).glob(f"*/{RECORD_FILE}"))
    summaries = [ImpactSummary.from_json(path.read_text(encoding="utf-8")) for path in records]
    return max(summaries, key=lambda summary: summary.created_at, default=None)
