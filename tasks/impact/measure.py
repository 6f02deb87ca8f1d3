"""An impact run against a store: its plan from the stored labels, its summary and its report.

Shared by the impact flow's tasks and the command's checks before Prefect starts, so all of
them derive the same plan (and the same label ids) from the same store.
"""

from __future__ import annotations

from datetime import UTC, datetime

from tasks.backends.settings import BackendSettings
from tasks.constitution.model import Constitution, load_constitution
from tasks.core.files import write_atomically
from tasks.generate.generation import stored_prompts
from tasks.impact.preference_changes import preference_changes
from tasks.impact.record import (
    ConstitutionVersion,
    ImpactSummary,
    report_dir,
    write_record,
)
from tasks.impact.work import ImpactPlan, JudgeIdentity, plan_impact
from tasks.label.judge import JudgeSettings
from tasks.merge.policy import MergeSettings
from tasks.report.data import ReportData
from tasks.report.impact_section import impact_section
from tasks.report.report import ReportPaths, render_html, render_markdown
from tasks.store.runs import code_version
from tasks.store.sql import run_query
from tasks.store.store import Store

HTML_FILE = "impact.html"
MARKDOWN_FILE = "impact.md"
IMPACT_VIEW_SQL = (
    "select * from impact where old_constitution_id = '{old}' and new_constitution_id = '{new}'"
    " order by principle_id, method"
)


def store_plan(
    store: Store, old: Constitution, new: Constitution, spec: BackendSettings, settings: JudgeSettings
) -> ImpactPlan:
    """The plan over every stored label, for the judge ``spec`` with ``settings``."""
    judge = JudgeIdentity(spec, settings)
    return plan_impact(store.read("ai_labels").to_pylist(), stored_prompts(store), old, new, judge)


def summarise(
    store: Store,
    run_id: str,
    sources: tuple[str, str],
    plan: ImpactPlan,
    work: dict[str, int],
    policy: MergeSettings,
) -> ImpactSummary:
    """The run's figures, read after its labels landed: the view's rows and the two merges.

    ``sources`` are the OLD and NEW constitution files.
    """
    old, new = (load_constitution(path) for path in sources)
    changes = preference_changes(
        store.read("human_labels").to_pylist(),
        store.read("ai_labels").to_pylist(),
        stored_prompts(store),
        old,
        new,
        plan.kept,
        policy,
    )
    # Both ids are content hashes (hex digits), so formatting them into the query is safe.
    view = run_query(store, IMPACT_VIEW_SQL.format(old=old.constitution_id, new=new.constitution_id))
    return ImpactSummary(
        run_id=run_id,
        created_at=datetime.now(UTC).isoformat(timespec="seconds"),
        old=ConstitutionVersion.of(old, sources[0]),
        new=ConstitutionVersion.of(new, sources[1]),
        changes=[
            {
                "principle_id": change.principle_id,
                "change": change.change,
                "fields": list(change.fields),
                "labels_before": plan.labels_before[change.principle_id],
                "not_rejudged": dict(plan.not_rejudged.get(change.principle_id, {})),
            }
            for change in plan.changes
        ],
        labels=view.records(),
        preferences=changes,
        work=work,
    )


def write_impact_report(store: Store, summary: ImpactSummary) -> ReportPaths:
    """``impact.json``, ``impact.html`` and ``impact.md`` in ``STORE/reports/<run id>``."""
    write_record(store, summary)
    data = ReportData(
        title=f"Constitution impact: {summary.old.label} \u2192 {summary.new.label}",
        created_at=datetime.fromisoformat(summary.created_at),
        store_root=store.root,
        code_version=code_version(),
        stages=(),
        audit={},
        unlabelled_families={},
        reward=None,
        policy=None,
        impact=summary,
    )
    sections = [impact_section(data)]
    folder = report_dir(store, summary.run_id)
    paths = ReportPaths(folder / HTML_FILE, folder / MARKDOWN_FILE)
    write_atomically(paths.html, render_html(data, sections))
    write_atomically(paths.markdown, render_markdown(data, sections))
    return paths
