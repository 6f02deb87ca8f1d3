"""The report's "Revisions" section: flagged revisions per critique run, newest runs first; copies
of a few-shot revision counted when the run's file can be read."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from pathlib import Path

from tasks.critique.revision_check import COPIES_AN_EXAMPLE, NAMES_THE_RESPONSE, THIRD_PERSON
from tasks.report.data import ReportData
from tasks.report.report import render_html, render_markdown
from tasks.report.revision_section import CritiqueRunCheck, critique_run_checks, revision_section
from tasks.store.store import Store

REPLY = "Sure: which day next week suits you?"
FEW_SHOT = Path(__file__).parents[2] / "constitutions" / "healthcare-scheduling.few-shot.jsonl"


def _critique_run(store: Store, run_id: str, revisions: list[str], few_shot: str | None) -> None:
    parameters = {"few_shot_path": few_shot, "rounds": 1}
    event = {
        "event_id": f"e-{run_id}",
        "flow": "critique",
        "status": "started",
        "parameters": json.dumps(parameters),
        "code_version": "test",
        "constitution_ids": ["c"],
        "input_hashes": "{}",
        "rows_added": None,
        "error": None,
        "host": "h",
        "pid": 1,
        "process_start": None,
    }
    store.append("runs", [event], run_id)
    rows = [
        {
            "critique_id": f"{run_id}-{index}",
            "generation_id": f"g-{index}",
            "prompt_id": "p",
            "round": 0,
            "principle_id": "efficient-booking",
            "principle_hash": "h",
            "constitution_id": "c",
            "model": "m",
            "input_text": "Yes. Anything else?",
            "critique": "critique",
            "revision": text,
        }
        for index, text in enumerate(revisions)
    ]
    store.append("critiques", rows, run_id)


def test_each_critique_run_counts_its_flagged_revisions_by_reason(store: Store) -> None:
    _critique_run(
        store,
        "run-without",
        [
            "The original response never asked for a day.",
            "The rewritten response asks which day suits.",
            "The user asked for Friday.",
            REPLY,
        ],
        None,
    )
    copy = "Please call 911 now: a drooping face and slurred speech can be signs of a stroke."
    _critique_run(store, "run-gone", [copy], "/gone/clinic.few-shot.jsonl")  # copies not countable
    _critique_run(store, "run-with", [REPLY, "The revised reply asks for a day.", copy], str(FEW_SHOT))

    newest, gone, older = critique_run_checks(store)
    assert (newest.run_id, newest.few_shot, newest.revisions, newest.flagged) == (
        "run-with",
        FEW_SHOT.name,
        3,
        {NAMES_THE_RESPONSE: 1, COPIES_AN_EXAMPLE: 1},
    )
    assert (gone.run_id, gone.few_shot, gone.revisions, gone.flagged) == (
        "run-gone",
        "clinic.few-shot.jsonl",
        1,
        {},
    )
    assert (older.run_id, older.few_shot, older.revisions) == ("run-without", None, 4)
    assert older.flagged == {NAMES_THE_RESPONSE: 2, THIRD_PERSON: 1}
    assert older.flagged_count == 3
    assert len(critique_run_checks(store, latest=1)) == 1

    data = _data(store, critique_run_checks(store))
    section = revision_section(data)
    body = render_html(data, [section])
    assert FEW_SHOT.name in body and "0.750" in body and "0.667" in body
    when = newest.finished_at.isoformat(timespec="seconds")
    markdown = render_markdown(data, [section])
    why = f"{NAMES_THE_RESPONSE}: 1, {COPIES_AN_EXAMPLE}: 1"
    assert f"| run-with | {when} | {FEW_SHOT.name} | 3 | 2 | 0.667 | {why} |" in markdown


def test_a_store_without_critiques_says_so(store: Store) -> None:
    assert critique_run_checks(store) == ()
    data = _data(store, ())
    assert "> No data: no critique run has written revisions." in render_markdown(
        data, [revision_section(data)]
    )


def _data(store: Store, checks: tuple[CritiqueRunCheck, ...]) -> ReportData:
    return ReportData(
        title="t",
        created_at=datetime.now(UTC),
        store_root=store.root,
        code_version="test",
        stages=(),
        audit={},
        unlabelled_families={},
        reward=None,
        policy=None,
        critique_runs=checks,
    )
