"""``charter export review`` -> the tool's annotators -> ``charter import-labels``, through the real CLI.

The exported files are edited as Label Studio and Argilla would (their export shapes), then
imported: the votes land on the queue's own pair ids, and a grown export adds only what is new.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from tasks.store.sql import run_query
from tasks.store.store import Store
from tests.conftest import run_charter
from tests.review.conftest import CASES, UNCERTAIN_ORDER

pytestmark = pytest.mark.integration


def _export(store: Store, fmt: str, path: Path) -> list[dict]:
    done = run_charter("export", "review", "--queue", "uncertain", "--format", fmt, "-o", str(path),
                       "--store", str(store.root))  # fmt: skip
    assert done.returncode == 0, done.stderr
    assert f"wrote {len(UNCERTAIN_ORDER)} items of queue uncertain" in done.stdout
    return json.loads(path.read_text())


def _import(store: Store, fmt: str, path: Path) -> None:
    done = run_charter("import-labels", str(path), "--format", fmt, "--store", str(store.root))
    assert done.returncode == 0, done.stdout + done.stderr


def _votes(store: Store, source_format: str) -> dict[tuple[str, str], str]:
    rows = run_query(
        store, f"select pair_id, annotator, vote from human_labels where source_format = '{source_format}'"
    ).rows
    return {(pair, annotator): vote for pair, annotator, vote in rows}


def test_label_studio_round_trip_lands_on_the_queue_pairs_and_a_grown_export_adds_only_the_new(
    bench_store: Store, tmp_path: Path
) -> None:
    tasks = _export(bench_store, "label-studio", tmp_path / "tasks.json")
    by_pair = {case.pair.pair_id: case for case in CASES.values()}
    assert [by_pair[t["data"]["pair_id"]].name for t in tasks] == UNCERTAIN_ORDER
    assert all(t["predictions"][0]["score"] >= 0.5 for t in tasks)  # the AI verdict as pre-annotation
    expected = {}
    for number, task in enumerate(tasks, start=1):
        # Label Studio's export: the task as loaded plus the annotations people completed.
        task["annotations"] = [{
            "id": number, "completed_by": {"email": "lee@clinic.example"}, "was_cancelled": False,
            "updated_at": "2026-12-01T10:00:00Z",
            "result": [{"from_name": "comparison", "to_name": "comparison", "type": "pairwise",
                        "value": {"selected": "left"}}],
        }]  # fmt: skip
        case = by_pair[task["data"]["pair_id"]]
        left_is_first = task["data"]["answer1"] == case.first
        expected[(case.pair.pair_id, "label-studio:lee@clinic.example")] = (
            "first" if left_is_first else "second"
        )
    export = tmp_path / "export.json"
    export.write_text(json.dumps(tasks))
    _import(bench_store, "label-studio", export)
    assert _votes(bench_store, "label-studio") == expected

    # The next export holds the same annotations plus one more: only that one is added.
    tasks[0]["annotations"].append({
        "id": 99, "completed_by": {"email": "kim@clinic.example"}, "updated_at": "2026-12-02T09:00:00Z",
        "result": [{"type": "pairwise", "value": {"selected": "right"}}],
    })  # fmt: skip
    export.write_text(json.dumps(tasks))
    before = bench_store.count("human_labels")
    _import(bench_store, "label-studio", export)
    assert bench_store.count("human_labels") == before + 1


def test_argilla_round_trip_counts_only_submitted_responses(bench_store: Store, tmp_path: Path) -> None:
    records = _export(bench_store, "argilla", tmp_path / "records.json")
    by_pair = {case.pair.pair_id: case for case in CASES.values()}
    expected = {}
    for record in records:
        assert record["preference.suggestion.score"] >= 0.5
        # Argilla's to_list(flatten=True): parallel lists per question; one draft that must not count.
        record["preference.responses"] = ["response_b", "response_a"]
        record["preference.responses.users"] = ["u-ana", "u-bo"]
        record["preference.responses.status"] = ["submitted", "draft"]
        case = by_pair[record["pair_id"]]
        right_is_first = record["response_b"] == case.first
        expected[(case.pair.pair_id, "argilla:u-ana")] = "first" if right_is_first else "second"
    export = tmp_path / "argilla-export.json"
    export.write_text(json.dumps(records))
    _import(bench_store, "argilla", export)
    assert _votes(bench_store, "argilla") == expected
