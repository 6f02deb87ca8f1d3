"""What a run report shows, gathered in one place: the audit views, checkpoint lineage, the scoreboard.

Kept apart from the rendering so that a report is plain data first: the HTML and the Markdown
are two views of the same :class:`ReportData`, and tests can check either without a browser.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from tasks.core.errors import CharterError
from tasks.impact.record import ImpactSummary, latest_impact
from tasks.report.revision_section import CritiqueRunCheck, critique_run_checks
from tasks.review.queues import load_queues, queue_sizes
from tasks.store.audit import audit_summary
from tasks.store.runs import code_version
from tasks.store.sql import execute, readonly_connection, run_query
from tasks.store.store import Store
from tasks.train.lineage import SCOREBOARD_FILE, read_lineage

REWARD_KINDS = ("reward",)
POLICY_KINDS = ("dpo", "ppo", "grpo")

# Labels made in the review bench, per annotator and queue (a changed vote is a second label).
BENCH_LABELS_SQL = (
    "select annotator, queue, count(*) as labels, count(distinct pair_id) as pairs"
    " from human_labels where source_format = 'review'"
    " group by annotator, queue order by annotator, queue"
)
# How many pairs people have labelled at all, and how many of them in the bench.
HUMAN_PAIRS_SQL = (
    "select count(distinct pair_id) as pairs,"
    " count(distinct pair_id) filter (where source_format = 'review') as bench_pairs"
    " from human_labels"
)

# Only what the uncertainty tables need of each scored pair: a store may hold many.
REWARD_UNCERTAINTY_SQL = "select members, p_first_std, rm_correct from reward_uncertainty"


@dataclass(frozen=True)
class StageRecord:
    """What one pipeline stage did in this run, as the flow measured it."""

    name: str
    seconds: float
    rows_added: dict[str, int]
    skipped: int = 0
    """Batches skipped because an earlier (crashed or finished) run had already written them."""
    detail: str = ""


@dataclass(frozen=True)
class Checkpoint:
    """A trained checkpoint's folder, its lineage record and, for a policy, its scoreboard."""

    path: Path
    lineage: dict[str, Any]
    scoreboard: dict[str, Any] | None = None

    @property
    def kind(self) -> str:
        return self.lineage["kind"]

    @property
    def metrics(self) -> dict[str, Any]:
        return self.lineage.get("metrics") or {}


@dataclass(frozen=True)
class ReviewData:
    """What the report says about the review bench: the bundled queues' sizes (or why they could
    not be read), the labels people made in the bench, and how many pairs people labelled."""

    queues: tuple[dict[str, Any], ...]
    """One record per bundled queue: ``queue``, ``title``, ``pairs`` (pairs it holds now)."""
    queue_error: str | None
    bench_labels: tuple[dict[str, Any], ...]
    """Per annotator and queue: ``labels`` made in the bench and distinct ``pairs``."""
    human_pairs: int
    bench_pairs: int


@dataclass(frozen=True)
class ReportData:
    """Everything a report renders; ``audit`` maps each audit query's name to its rows."""

    title: str
    created_at: datetime
    store_root: Path
    code_version: str
    stages: Sequence[StageRecord]
    audit: dict[str, list[dict[str, Any]]]
    unlabelled_families: dict[str, list[str]]
    reward: Checkpoint | None
    policy: Checkpoint | None
    review: ReviewData | None = None
    impact: ImpactSummary | None = None
    """The latest measured constitution edit (``charter constitution impact``), if any."""
    critique_runs: tuple[CritiqueRunCheck, ...] = ()
    """The latest critique runs' revisions, checked for commentary about the response."""


def load_checkpoint(path: str | Path | None, kinds: tuple[str, ...]) -> Checkpoint | None:
    """The checkpoint at ``path`` (None stays None); refuses one of another kind, which would
    otherwise be reported under the wrong heading."""
    if path is None:
        return None
    lineage = read_lineage(path)
    if lineage.get("kind") not in kinds:
        raise CharterError(
            f"{path} is a {lineage.get('kind')!r} checkpoint; expected one of: {', '.join(kinds)}"
        )
    board = Path(path) / SCOREBOARD_FILE
    scoreboard = json.loads(board.read_text(encoding="utf-8")) if board.is_file() else None
    return Checkpoint(Path(path), lineage, scoreboard)


def audit_records(store: Store) -> tuple[dict[str, list[dict[str, Any]]], dict[str, list[str]]]:
    """The audit summary's sections plus the per-bin ``calibration``, the ``rule_agreement`` and the
    per-pair ``reward_uncertainty`` views, as plain records, and the families with no human and
    no AI label."""
    summary = audit_summary(store, disagreement_limit=5)
    records = {name: result.records() for name, result in summary.sections.items()}
    records["calibration"] = run_query(store, "select * from calibration").records()
    records["rule_agreement"] = run_query(store, "select * from rule_agreement").records()
    records["reward_uncertainty"] = run_query(store, REWARD_UNCERTAINTY_SQL).records()
    unlabelled = {source: summary.unlabelled_families(source) for source in ("human", "ai")}
    return records, unlabelled


def review_data(store: Store) -> ReviewData:
    """The bench's queues and labels. A queue file that fails to load or run (a store too old for
    a view a queue reads, say) becomes the error's text in the report, never a failed report:
    the report is the run's record and must be written whatever the bench's state."""
    with readonly_connection(store) as con:
        bench_labels = tuple(execute(con, BENCH_LABELS_SQL).records())
        counts = execute(con, HUMAN_PAIRS_SQL).records()[0]
    queues: tuple[dict[str, Any], ...] = ()
    error = None
    try:
        loaded = load_queues(None, store)
        sizes = queue_sizes(store, loaded)
        queues = tuple({"queue": q.name, "title": q.settings.title, "pairs": sizes[q.name]} for q in loaded)
    except (CharterError, OSError) as exc:
        error = str(exc)
    return ReviewData(
        queues=queues,
        queue_error=error,
        bench_labels=bench_labels,
        human_pairs=int(counts["pairs"] or 0),
        bench_pairs=int(counts["bench_pairs"] or 0),
    )


def gather_report_data(
    store: Store,
    *,
    title: str,
    stages: Sequence[StageRecord],
    reward_checkpoint: str | Path | None = None,
    policy_checkpoint: str | Path | None = None,
) -> ReportData:
    """Read everything a report needs; checkpoints are read first, so a wrong path fails fast."""
    reward = load_checkpoint(reward_checkpoint, REWARD_KINDS)
    policy = load_checkpoint(policy_checkpoint, POLICY_KINDS)
    audit, unlabelled = audit_records(store)
    return ReportData(
        title=title,
        created_at=datetime.now(UTC),
        store_root=store.root,
        code_version=code_version(),
        stages=tuple(stages),
        audit=audit,
        unlabelled_families=unlabelled,
        reward=reward,
        policy=policy,
        review=review_data(store),
        impact=latest_impact(store),
        critique_runs=critique_run_checks(store),
    )
