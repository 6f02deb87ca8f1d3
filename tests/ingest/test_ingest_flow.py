"""The ingest flow on a real Prefect (ephemeral API server, throwaway PREFECT_HOME)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from flows.ingest import ingest
from tasks.constitution.model import load_constitution
from tasks.core.errors import InputError
from tasks.core.hashing import file_sha256
from tasks.ingest.label_files import LabelFileSettings, preflight
from tasks.store.sql import run_query
from tasks.store.store import Store

pytestmark = pytest.mark.integration

PROJECT_ROOT = Path(__file__).resolve().parents[2]
CONSTITUTION = PROJECT_ROOT / "constitutions" / "healthcare-scheduling.yaml"
PROMPTS = PROJECT_ROOT / "datasets" / "healthcare-scheduling" / "prompts.jsonl"
LABELS = PROJECT_ROOT / "datasets" / "healthcare-scheduling" / "human-labels.jsonl"


def test_ingest_flow_writes_rows_and_lineage_then_adds_nothing_on_rerun(tmp_path: Path) -> None:
    store_path = tmp_path / "store"
    arguments = {
        "store": str(store_path),
        "constitutions": [str(CONSTITUTION)],
        "prompt_sets": [str(PROMPTS)],
        "label_files": [LabelFileSettings(path=str(LABELS))],
    }
    first = ingest(**arguments)
    assert first.rows_added["human_labels"] == 60
    assert first.rows_added["constitutions"] == 1
    assert first.rows_added["principles"] == 12
    second = ingest(**arguments)
    assert sum(second.rows_added.values()) == 0

    store = Store(store_path)
    assert store.count("human_labels") == 60
    runs = run_query(store, "select * from run_summary").records()
    assert [r["status"] for r in runs] == ["completed", "completed"]
    assert runs[-1]["run_id"] == first.run_id  # the flow run id is the lineage id
    closing = run_query(
        store, f"select * from runs where run_id = '{first.run_id}' and status = 'completed'"
    ).records()[0]
    constitution_id = load_constitution(CONSTITUTION).constitution_id
    assert closing["constitution_ids"] == [constitution_id]
    assert json.loads(closing["input_hashes"])[str(LABELS)] == file_sha256(LABELS)
    assert json.loads(closing["rows_added"])["human_labels"] == 60
    labels_run = run_query(store, "select distinct run_id from human_labels").rows
    assert labels_run == [(first.run_id,)]


def test_a_bad_file_fails_the_flow_records_the_failure_and_writes_no_data(tmp_path: Path) -> None:
    bad = tmp_path / "bad.jsonl"
    bad.write_text('{"prompt": "p", "response_a": "x", "response_b": "y", "choice": "z", "annotator": "a"}\n')
    store_path = tmp_path / "store"
    with pytest.raises(InputError, match="not one of a, b, tie"):
        ingest(
            store=str(store_path), prompt_sets=[str(PROMPTS)], label_files=[LabelFileSettings(path=str(bad))]
        )
    store = Store(store_path)
    runs = run_query(store, "select status, error from run_summary").records()
    assert runs[0]["status"] == "failed" and "not one of a, b, tie" in runs[0]["error"]
    assert store.count("human_labels") == 0


def test_preflight_reports_problems_of_every_file_before_any_work(tmp_path: Path) -> None:
    bad_constitution = tmp_path / "c.yaml"
    bad_constitution.write_text("name: x\nversion: '1'\nprinciples:\n  - id: a\n    titel: t\n")
    bad_labels = tmp_path / "l.jsonl"
    bad_labels.write_text("not json\n")
    with pytest.raises(InputError) as raised:
        preflight([str(bad_constitution)], [str(PROMPTS)], [LabelFileSettings(path=str(bad_labels))])
    text = str(raised.value)
    assert f"{bad_constitution}:5 [principles[0].titel]" in text
    assert f"{bad_labels}:1" in text and "invalid JSON" in text
