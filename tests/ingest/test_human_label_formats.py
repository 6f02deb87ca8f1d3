"""Human-label formats and label identity: Argilla, CSV and TRL imports, cumulative exports that
import once, and round trips through the review exports (Label Studio, Argilla), CSV and TRL
that come back on the same pair ids with the same votes."""

from __future__ import annotations

import csv
import io
import json
from pathlib import Path
from typing import Any

import pytest

from tasks.core.conversation import pair_id, prompt_id, response_id
from tasks.core.errors import InputError, Problem
from tasks.ingest.human_labels import parse_label_file
from tasks.ingest.ingest import ingest_label_file
from tasks.review.display import shows_second_first
from tasks.review.exports import (
    LABEL_STUDIO_CONFIG,
    argilla_records,
    label_studio_tasks,
    write_review_export,
)
from tasks.review.items import ReviewItem
from tasks.store.exports import pair_record, write_records
from tasks.store.runs import RunContext
from tasks.store.sql import run_query
from tasks.store.store import Store
from tests.conftest import run_charter, stored_files

BOOKING = [{"role": "user", "content": "Can I book a flu shot on Saturday?"}]
MOVING = [
    {"role": "system", "content": "You are the clinic's scheduling assistant."},
    {"role": "user", "content": "I need to move my Tuesday visit."},
    {"role": "assistant", "content": "Sure, which day works?"},
    {"role": "user", "content": "Thursday afternoon"},
]
PARKING = [{"role": "user", "content": "Is parking free?"}]


def review_item(messages: list[dict], one: str, two: str, p_one: float | None, family: str) -> ReviewItem:
    """An item as :func:`tasks.review.items.load_items` builds it, from texts: ``p_one`` is the
    AI's P(``one`` is better), turned into P(first by id) as the items query does."""
    one_id, two_id = response_id(one), response_id(two)
    one_first = one_id < two_id
    first, second = (one, two) if one_first else (two, one)
    p_first = None if p_one is None else p_one if one_first else 1 - p_one
    return ReviewItem(
        pair_id=pair_id(prompt_id(messages), one_id, two_id),
        prompt_id=prompt_id(messages),
        family=family,
        messages=messages,
        first_id=response_id(first),
        first_text=first,
        second_id=response_id(second),
        second_text=second,
        principle_id=None,
        comparison=None,
        ai_p_first=p_first,
        ai_labels=0 if p_one is None else 2,
    )


# The AI prefers the booking answer (0.8), prefers "Thursday 3pm" (P(2pm) = 0.25), has no view on
# parking; the reviewer agrees on booking, overturns the AI on moving, calls parking a tie.
ITEMS = [
    review_item(
        BOOKING, "Yes: Saturday 9:00 or 10:30 at Northgate.", "I cannot help with that.", 0.8, "booking"
    ),
    review_item(MOVING, "Thursday 2pm is free.", "Thursday 3pm is free.", 0.25, "rescheduling"),
    review_item(PARKING, "Parking is free.", "Parking costs $2.", None, "(none)"),
]
REVIEWER_PREFERS = ["Yes: Saturday 9:00 or 10:30 at Northgate.", "Thursday 2pm is free.", None]


def expected_vote(item: ReviewItem, preferred_text: str | None) -> str:
    if preferred_text is None:
        return "tie"
    return "first" if preferred_text == item.first_text else "second"


def votes(labels: list[dict]) -> dict[str, str]:
    return {label["pair_id"]: label["vote"] for label in labels}


def write_json(path: Path, value: Any, newline: str = "\n") -> Path:
    path.write_bytes(json.dumps(value, indent=1).replace("\n", newline).encode())
    return path


# -- Label Studio ---------------------------------------------------------------------------------


def annotation(annotation_id: int, side: str, updated_at: str, user: int = 3) -> dict:
    """An annotation as Label Studio exports it: 'left', 'right' or 'tie'."""
    if side == "tie":
        result = [{"from_name": "tie", "to_name": "prompt", "type": "choices", "value": {"choices": ["Tie"]}}]
    else:
        result = [{"from_name": "comparison", "to_name": "comparison", "type": "pairwise",
                   "value": {"selected": side}}]  # fmt: skip
    return {
        "id": annotation_id,
        "completed_by": user,
        "result": result,
        "was_cancelled": False,
        "created_at": "2026-12-01T10:00:00.000000Z",
        "updated_at": updated_at,
    }


def side_of(task: dict, preferred_text: str | None) -> str:
    if preferred_text is None:
        return "tie"
    return "left" if task["data"]["answer1"] == preferred_text else "right"


def test_label_studio_tasks_show_the_pair_the_messages_and_the_ai_verdict() -> None:
    tasks = label_studio_tasks(ITEMS, model_version="judge-v1", seed=7)
    booking, moving, parking = tasks
    assert booking["data"]["prompt"] == "Can I book a flu shot on Saturday?"
    assert moving["data"]["prompt"].startswith("System: You are the clinic's scheduling assistant.")
    assert [t["data"]["pair_id"] for t in tasks] == [item.pair_id for item in ITEMS]
    assert moving["data"]["messages"] == MOVING and parking["data"]["family"] is None
    for task, item in zip(tasks, ITEMS, strict=True):
        left_second = shows_second_first(7, "export", item.pair_id)
        assert task["data"]["answer1"] == (item.second_text if left_second else item.first_text)
    # The AI's verdict as a prediction, scored by its confidence; none where there is no verdict.
    [prediction] = booking["predictions"]
    assert prediction["model_version"] == "judge-v1" and prediction["score"] == pytest.approx(0.8)
    [result] = prediction["result"]
    ai_side = side_of(booking, "Yes: Saturday 9:00 or 10:30 at Northgate.")
    assert result == {"from_name": "comparison", "to_name": "comparison", "type": "pairwise",
                      "value": {"selected": ai_side}}  # fmt: skip
    assert moving["predictions"][0]["result"][0]["value"] == {
        "selected": side_of(moving, "Thursday 3pm is free.")
    }
    assert moving["predictions"][0]["score"] == pytest.approx(0.75)
    assert "predictions" not in parking
    assert '<Pairwise name="comparison" toName="answer1,answer2"/>' in LABEL_STUDIO_CONFIG


def test_the_export_does_not_always_put_the_id_first_response_on_the_left() -> None:
    items = [review_item(BOOKING, f"Answer {n}.", f"Other answer {n}.", 0.6, "booking") for n in range(16)]
    tasks = label_studio_tasks(items, model_version="v", seed=1)
    lefts = {task["data"]["answer1"] == item.first_text for task, item in zip(tasks, items, strict=True)}
    assert lefts == {True, False}


def test_label_studio_round_trip_gives_the_items_pairs_and_the_reviewers_votes(
    run: RunContext, tmp_path: Path
) -> None:
    tasks = label_studio_tasks(ITEMS, model_version="judge-v1", seed=7)
    path = write_review_export(tasks, tmp_path / "queue.json", "label-studio")
    exported = json.loads(path.read_text(encoding="utf-8"))
    for number, (task, preferred) in enumerate(zip(exported, REVIEWER_PREFERS, strict=True)):
        task["id"] = 100 + number
        task["annotations"] = [annotation(500 + number, side_of(task, preferred), "2026-12-01T10:05:00Z")]
    write_json(path, exported)
    parsed = parse_label_file(path, "label-studio")
    assert parsed.problems == []
    assert votes(parsed.labels) == {
        item.pair_id: expected_vote(item, preferred)
        for item, preferred in zip(ITEMS, REVIEWER_PREFERS, strict=True)
    }
    assert {label["annotator"] for label in parsed.labels} == {"label-studio:3"}
    # The left text is response_a, so the display order is known; the AI was shown where predicted.
    for label, task, item in zip(parsed.labels, exported, ITEMS, strict=True):
        assert label["response_a"] == task["data"]["answer1"]
        left_second = shows_second_first(7, "export", item.pair_id)
        assert label["shown_first"] == ("second" if left_second else "first")
    assert [label["ai_shown"] for label in parsed.labels] == [True, True, False]
    assert ingest_label_file(run, path, "label-studio").labels_added == 3
    families = {row["prompt_id"]: row["family"] for row in run.store.read("prompts").to_pylist()}
    assert families[ITEMS[1].prompt_id] == "rescheduling" and families[ITEMS[2].prompt_id] is None


# -- Label identity -------------------------------------------------------------------------------


def label_studio_export(*annotations_per_task: list[dict]) -> list[dict]:
    tasks = label_studio_tasks(ITEMS[:2], model_version="v", seed=7)
    for number, (task, given) in enumerate(zip(tasks, annotations_per_task, strict=False)):
        task["id"] = 100 + number
        task["annotations"] = given
    return tasks[: len(annotations_per_task)]


def human_votes(store: Store) -> dict[tuple[str, str], str]:
    rows = run_query(store, "select pair_id, annotator, vote from human_votes").records()
    return {(r["pair_id"], r["annotator"]): r["vote"] for r in rows}


def test_a_grown_label_studio_export_adds_only_the_new_annotation(run: RunContext, tmp_path: Path) -> None:
    first = [
        annotation(501, "left", "2026-12-01T10:05:00Z"),
        annotation(502, "right", "2026-12-01T10:06:00Z", 4),
    ]
    old = write_json(tmp_path / "export-1.json", label_studio_export(first))
    assert ingest_label_file(run, old, "label-studio").labels_added == 2
    # The next export repeats both annotations and adds one on the second task.
    grown = label_studio_export(first, [annotation(503, "tie", "2026-12-02T09:00:00Z")])
    assert (
        ingest_label_file(run, write_json(tmp_path / "export-2.json", grown), "label-studio").labels_added
        == 1
    )
    assert run.store.count("human_labels") == 3


def test_a_changed_label_studio_vote_is_a_new_label_and_the_current_vote(
    run: RunContext, tmp_path: Path
) -> None:
    before = label_studio_export([annotation(501, "left", "2026-12-01T10:05:00Z")])
    assert ingest_label_file(run, write_json(tmp_path / "a.json", before), "label-studio").labels_added == 1
    after = label_studio_export([annotation(501, "right", "2026-12-03T08:00:00Z")])
    assert ingest_label_file(run, write_json(tmp_path / "b.json", after), "label-studio").labels_added == 1
    task = after[0]
    item = ITEMS[0]
    right_text = task["data"]["answer2"]
    assert human_votes(run.store) == {(item.pair_id, "label-studio:3"): expected_vote(item, right_text)}
    # Importing the older export again changes nothing: its label is already stored.
    assert ingest_label_file(run, tmp_path / "a.json", "label-studio").labels_added == 0
    assert human_votes(run.store) == {(item.pair_id, "label-studio:3"): expected_vote(item, right_text)}


def test_a_crlf_copy_adds_no_labels(run: RunContext, tmp_path: Path) -> None:
    rows = [
        {"prompt": "Is parking free?", "response_a": "Yes.", "response_b": "It costs $2.", "choice": "a",
         "annotator": "ana", "confidence": 0.9},
        {"prompt": "Is parking free?", "response_a": "Yes.", "response_b": "It costs $2.", "choice": "b",
         "annotator": "bo"},
    ]  # fmt: skip
    text = "".join(json.dumps(row) + "\n" for row in rows)
    (tmp_path / "labels.jsonl").write_text(text, encoding="utf-8")
    (tmp_path / "labels-crlf.jsonl").write_bytes(text.replace("\n", "\r\n").encode())
    assert ingest_label_file(run, tmp_path / "labels.jsonl", "charter").labels_added == 2
    assert ingest_label_file(run, tmp_path / "labels-crlf.jsonl", "charter").labels_added == 0
    export = label_studio_export([annotation(501, "left", "2026-12-01T10:05:00Z")])
    assert ingest_label_file(run, write_json(tmp_path / "ls.json", export), "label-studio").labels_added == 1
    crlf = write_json(tmp_path / "ls-crlf.json", export, newline="\r\n")
    assert ingest_label_file(run, crlf, "label-studio").labels_added == 0
    table = (
        "prompt,response_a,response_b,choice,annotator,confidence\n"
        "Is parking free?,Yes.,It costs $2.,a,ana,0.9\n"
    )
    (tmp_path / "labels.csv").write_text(table, encoding="utf-8")
    (tmp_path / "labels-crlf.csv").write_bytes(table.replace("\n", "\r\n").encode("utf-8-sig"))
    # The same vote as the JSONL file's first row: the same label, whichever format carried it.
    assert ingest_label_file(run, tmp_path / "labels.csv", "csv").labels_added == 0
    assert ingest_label_file(run, tmp_path / "labels-crlf.csv", "csv").labels_added == 0
    assert run.store.count("human_labels") == 3


# -- Argilla --------------------------------------------------------------------------------------


def as_argilla_exports(records: list[dict], responses: list[list[tuple[str, str, str]]]) -> list[dict]:
    """Records as ``dataset.records.to_list(flatten=True)`` returns them once people responded:
    ``(value, user id, status)`` per response, and every key any record has on every record."""
    flat = []
    for number, (record, given) in enumerate(zip(records, responses, strict=True)):
        row = {**record, "status": "completed" if given else "pending", "_server_id": f"srv-{number}"}
        if given:
            row["preference.responses"] = [value for value, _, _ in given]
            row["preference.responses.users"] = [user for _, user, _ in given]
            row["preference.responses.status"] = [status for _, _, status in given]
        flat.append(row)
    keys = {key for row in flat for key in row}
    return [{key: row.get(key) for key in sorted(keys)} for row in flat]


def argilla_label(record: dict, preferred_text: str | None) -> str:
    if preferred_text is None:
        return "tie"
    return "response_a" if record["response_a"] == preferred_text else "response_b"


def test_argilla_records_carry_fields_metadata_and_the_ai_suggestion() -> None:
    booking, moving, parking = argilla_records(ITEMS, seed=7)
    assert booking["id"] == booking["pair_id"] == ITEMS[0].pair_id
    assert json.loads(moving["messages"]) == MOVING and parking["family"] is None
    assert booking["preference.suggestion"] == argilla_label(
        booking, "Yes: Saturday 9:00 or 10:30 at Northgate."
    )
    assert booking["preference.suggestion.score"] == pytest.approx(0.8)
    assert moving["preference.suggestion"] == argilla_label(moving, "Thursday 3pm is free.")
    assert "preference.suggestion" not in parking


@pytest.mark.parametrize("shape", ["json", "jsonl", "datasets"])
def test_argilla_round_trip_gives_the_items_pairs_and_the_submitted_votes(
    run: RunContext, tmp_path: Path, shape: str
) -> None:
    records = argilla_records(ITEMS, seed=7)
    responses = [
        [
            (argilla_label(records[0], REVIEWER_PREFERS[0]), "u-1", "submitted"),
            ("response_a", "u-2", "draft"),
        ],
        [(argilla_label(records[1], REVIEWER_PREFERS[1]), "u-1", "submitted")],
        [("tie", "u-1", "submitted"), ("response_b", "u-2", "discarded")],
    ]
    exported = as_argilla_exports(records, responses)
    if shape == "json":
        path = write_json(tmp_path / "records.json", exported)
    elif shape == "jsonl":
        path = tmp_path / "records.jsonl"
        path.write_text("".join(json.dumps(r) + "\n" for r in exported), encoding="utf-8")
    else:
        from datasets import Dataset

        path = tmp_path / "records-hf"
        Dataset.from_list(exported).save_to_disk(str(path))
    parsed = parse_label_file(path, "argilla")
    assert parsed.problems == []
    assert votes(parsed.labels) == {
        item.pair_id: expected_vote(item, preferred)
        for item, preferred in zip(ITEMS, REVIEWER_PREFERS, strict=True)
    }
    assert {label["annotator"] for label in parsed.labels} == {"argilla:u-1"}
    assert [label["ai_shown"] for label in parsed.labels] == [True, True, False]
    assert all(label["shown_first"] is not None for label in parsed.labels)
    assert ingest_label_file(run, path, "argilla").labels_added == 3
    if shape == "datasets":
        assert str(path.resolve()) in run.input_hashes


def test_a_grown_argilla_export_adds_only_the_new_response(run: RunContext, tmp_path: Path) -> None:
    records = argilla_records(ITEMS[:2], seed=7)
    first = [[("response_a", "u-1", "submitted")], []]
    old = write_json(tmp_path / "old.json", as_argilla_exports(records, first))
    assert ingest_label_file(run, old, "argilla").labels_added == 1  # the pending record is skipped
    grown = [[("response_a", "u-1", "submitted")], [("tie", "u-2", "submitted")]]
    new = write_json(tmp_path / "new.json", as_argilla_exports(records, grown))
    assert ingest_label_file(run, new, "argilla").labels_added == 1


ARGILLA_PROBLEMS = {
    "bad-label": (
        {"prompt": "p", "response_a": "x", "response_b": "y", "preference.responses": ["left"],
         "preference.responses.users": ["u"], "preference.responses.status": ["submitted"]},
        "preference.responses[1]", "'left' is not one of the labels response_a, response_b, tie",
    ),
    "uneven-lists": (
        {"prompt": "p", "response_a": "x", "response_b": "y", "preference.responses": ["tie", "tie"],
         "preference.responses.users": ["u"], "preference.responses.status": ["submitted", "submitted"]},
        "preference.responses", "the response lists differ in length",
    ),
    "nested": (
        {"id": "r1", "fields": {"prompt": "p"}, "responses": {"preference": [{"value": "tie"}]}},
        "fields", "export with dataset.records.to_list(flatten=True)",
    ),
    "bad-messages": (
        {"messages": "[{\"role\": \"user\"}]", "response_a": "x", "response_b": "y",
         "preference.responses": ["tie"], "preference.responses.users": ["u"],
         "preference.responses.status": ["submitted"]},
        "messages", "exactly the keys role and content",
    ),
}  # fmt: skip


@pytest.mark.parametrize("case", sorted(ARGILLA_PROBLEMS))
def test_bad_argilla_records_are_located(tmp_path: Path, case: str) -> None:
    record, field, fragment = ARGILLA_PROBLEMS[case]
    pending = {"id": "r0", "prompt": "q", "response_a": "1", "response_b": "2"}  # skipped: no responses
    path = write_json(tmp_path / "records.json", [pending, record])
    [problem] = parse_label_file(path, "argilla").problems
    assert (problem.line, problem.field, problem.unit) == (2, field, "record"), problem
    assert fragment in problem.message
    assert f"{path} (record 2) [{field}]" in str(problem)


# -- CSV ------------------------------------------------------------------------------------------


def csv_text(rows: list[list[str]]) -> str:
    buffer = io.StringIO()
    csv.writer(buffer, lineterminator="\n").writerows(rows)
    return buffer.getvalue()


def test_csv_round_trip_and_its_spellings(run: RunContext, tmp_path: Path) -> None:
    items = [item for item in ITEMS if len(item.messages) == 1]  # one prompt column: single turns
    rows = [[" Prompt ", "response_a", "response_b", "CHOICE", "annotator", "confidence", "comment"]]
    choices = ["A", "Tie"]
    for item, choice in zip(items, choices, strict=True):
        rows.append(
            [item.messages[0]["content"], item.first_text, item.second_text, choice, "", "0.7", "multi\nline"]
        )
    path = tmp_path / "labels.csv"
    path.write_bytes(csv_text(rows).encode("utf-8-sig"))
    parsed = parse_label_file(path, "csv", annotator="dana", family="front-desk")
    assert parsed.problems == []
    assert votes(parsed.labels) == {items[0].pair_id: "first", items[1].pair_id: "tie"}
    first = parsed.labels[0]
    assert (first["annotator"], first["confidence"], first["comment"], first["source_row"]) == (
        "dana",
        0.7,
        "multi\nline",
        2,
    )
    assert parsed.labels[1]["source_row"] == 4  # the quoted comment spans lines 2 and 3
    assert ingest_label_file(run, path, "csv", annotator="dana").labels_added == 2


H = "prompt,response_a,response_b,choice,annotator"  # a CSV header
CSV_PROBLEMS = {
    "no-annotator": ("prompt,response_a,response_b,choice\np,x,y,a\n", 2, "annotator", "--annotator"),
    "bad-choice": (f"{H}\np,x,y,left,ana\n", 2, "choice", "not one of a, b, tie"),
    "confidence": (f"{H},confidence\np,x,y,a,ana,1.5\n", 2, "confidence", "outside [0, 1]"),
    "confidence-text": (f"{H},confidence\np,x,y,a,ana,high\n", 2, "confidence", "not a number"),
    "identical": (f"{H}\np,x,x,a,ana\n", 2, "response_b", "identical"),
    "empty-prompt": (f"{H}\n ,x,y,a,ana\n", 2, "prompt", "must not be empty"),
    "unknown-column": (f"{H},chioce\n", 1, "chioce", "unknown column"),
    "missing-column": ("prompt,response_a,choice,annotator\n", 1, "response_b", "required column is missing"),
    "duplicate-column": ("prompt,response_a,response_b,choice,choice\n", 1, "choice", "more than once"),
    "too-many-values": (f"{H}\np,x,y,a,ana,extra\n", 2, None, "the row has 6 values"),
    # The quoted prompt of row 3 spans lines 3 and 4, so row 4 starts on line 5.
    "row-after-multiline": (f'{H}\np,x,y,a,ana\n"p\nq",x,y,a,ana\np,x,y,z,ana\n', 5, "choice", "'z'"),
    "broken-quote": (f'{H}\n"p"q,x,y,a,ana\n', 2, None, "not valid CSV"),
    "empty-file": ("", 1, None, "a header row is required"),
}


@pytest.mark.parametrize("case", sorted(CSV_PROBLEMS))
def test_bad_csv_rows_name_the_line_and_column(store: Store, tmp_path: Path, case: str) -> None:
    text, line, field, fragment = CSV_PROBLEMS[case]
    path = tmp_path / "labels.csv"
    path.write_text(text, encoding="utf-8")
    before = stored_files(store)
    with pytest.raises(InputError) as raised:
        ingest_label_file(RunContext(run_id="r", flow="t", store=store, parameters={}), path, "csv")
    problem = next(p for p in raised.value.problems if fragment in p.message)
    assert (problem.path, problem.line, problem.field) == (str(path), line, field)
    assert f"{path}:{line}" in str(raised.value)
    assert stored_files(store) == before


@pytest.mark.parametrize(
    ("content", "line", "fragment"),
    [
        (b"prompt,response_a,response_b,choice\n\x89PNG\x00\x00\r\n", 2, "binary data (a NUL byte)"),
        (
            "prompt,response_a,response_b,choice,annotator\np,caf\xe9,y,a,ana\n".encode("latin-1"),
            2,
            "not UTF-8 text",
        ),
    ],
)
def test_unreadable_csv_is_one_located_problem(
    tmp_path: Path, content: bytes, line: int, fragment: str
) -> None:
    path = tmp_path / "labels.csv"
    path.write_bytes(content)
    [problem] = parse_label_file(path, "csv").problems
    assert problem.line == line and fragment in problem.message


def test_a_csv_field_over_the_size_limit_is_refused(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr("tasks.ingest.human_labels.csv_labels.MAX_RECORD_BYTES", 1000)
    long_field = "\n".join(["x" * 90] * 20)  # no line is long; the quoted field is 1,819 characters
    path = tmp_path / "labels.csv"
    path.write_text(csv_text([["prompt", "response_a", "response_b", "choice"], [long_field, "x", "y", "a"]]))
    [problem] = parse_label_file(path, "csv", annotator="ana").problems
    assert "field larger than field limit (1000)" in problem.message
    assert csv.field_size_limit() != 1000  # the limit is the module's own again


def test_an_over_long_csv_line_is_refused(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr("tasks.ingest.human_labels.csv_labels.MAX_RECORD_BYTES", 1000)
    path = tmp_path / "labels.csv"
    path.write_text(csv_text([["prompt", "response_a", "response_b", "choice"], ["x" * 5000, "x", "y", "a"]]))
    [problem] = parse_label_file(path, "csv", annotator="ana").problems
    assert (problem.line, problem.message) == (
        2,
        "the line is over 1,000 bytes; one row may have at most that",
    )


# -- TRL ------------------------------------------------------------------------------------------


@pytest.mark.parametrize("style", ["conversational", "standard"])
@pytest.mark.parametrize("shape", ["jsonl", "hf"])
def test_trl_round_trip_gives_the_same_pairs_and_texts(
    run: RunContext, tmp_path: Path, style: str, shape: str
) -> None:
    # "  indented" keeps one of its own leading spaces after the export's separator is dropped.
    pairs = [(BOOKING, "Yes: Saturday 9:00.", "No."), (MOVING, "  indented 2pm", "Thursday 3pm is free.")]
    records = [
        {**pair_record(messages, chosen, rejected, style), "target": 1.0, "weight": 1.0, "pair_id": "x"}
        for messages, chosen, rejected in pairs
    ]
    path = write_records(records, tmp_path / ("prefs.jsonl" if shape == "jsonl" else "prefs"), shape)
    parsed = parse_label_file(path, "trl")
    assert parsed.problems == []
    for label, (messages, chosen, rejected) in zip(parsed.labels, pairs, strict=True):
        assert label["pair_id"] == pair_id(prompt_id(messages), response_id(chosen), response_id(rejected))
        assert label["preferred_id"] == response_id(chosen)
        assert {label["response_a"], label["response_b"]} == {chosen, rejected}
        assert label["response_a_id"] < label["response_b_id"]  # no display order is invented
        assert label["annotator"] == "trl"
    assert ingest_label_file(run, path, "trl").labels_added == 2


OPEN = "\n\nHuman: hi\n\nAssistant:"  # a standard-style prompt
ASSISTANT = [{"role": "assistant", "content": "a"}]
TRL_PROBLEMS = {
    "no-prompt": ({"chosen": f"{OPEN} a", "rejected": "b"}, "prompt", "--format hh-rlhf"),
    "open-turn": ({"prompt": "\n\nHuman: hi", "chosen": " a", "rejected": " b"}, "prompt", "open '"),
    "not-transcript": ({"prompt": "hi", "chosen": " a", "rejected": " b"}, "prompt", "not an hh-rlhf"),
    "two-messages": (
        {"prompt": [{"role": "user", "content": "hi"}], "chosen": ASSISTANT * 2, "rejected": ASSISTANT},
        "chosen",
        "a list of one {role: assistant, content} message",
    ),
    "same": ({"prompt": OPEN, "chosen": " a", "rejected": " a"}, "rejected", "the same response"),
    "mixed-styles": ({"prompt": OPEN, "chosen": ASSISTANT, "rejected": " b"}, "chosen", "must be a string"),
}


@pytest.mark.parametrize("case", sorted(TRL_PROBLEMS))
def test_bad_trl_rows_name_the_line_and_field(tmp_path: Path, case: str) -> None:
    record, field, fragment = TRL_PROBLEMS[case]
    path = tmp_path / "prefs.jsonl"
    path.write_text(json.dumps(record) + "\n", encoding="utf-8")
    [problem] = parse_label_file(path, "trl").problems
    assert (problem.line, problem.field) == (1, field) and fragment in problem.message, problem


def test_a_trl_annotator_column_is_the_annotator(tmp_path: Path) -> None:
    path = tmp_path / "prefs.jsonl"
    row = {**pair_record(BOOKING, "Yes.", "No.", "standard"), "annotator": "nurse-1"}
    path.write_text(json.dumps(row) + "\n", encoding="utf-8")
    assert [label["annotator"] for label in parse_label_file(path, "trl", annotator="x").labels] == [
        "nurse-1"
    ]


# -- Hostile inputs -------------------------------------------------------------------------------


def test_folders_that_are_not_datasets_are_refused(tmp_path: Path) -> None:
    plain = tmp_path / "plain"
    plain.mkdir()
    for fmt in ("trl", "argilla"):
        [problem] = parse_label_file(plain, fmt).problems
        assert (
            problem == Problem(str(plain), problem.message)
            and "not a file or a Hugging Face datasets" in problem.message
        )
    broken = tmp_path / "broken"
    broken.mkdir()
    (broken / "state.json").write_text("{not json", encoding="utf-8")
    [problem] = parse_label_file(broken, "trl").problems
    assert problem.message.startswith("cannot load the datasets folder")
    with pytest.raises(InputError, match="is a directory, not a file"):
        parse_label_file(plain, "csv")


def test_argilla_exports_with_a_bom_and_as_binary(tmp_path: Path) -> None:
    record = {
        **{"id": "r1", "prompt": "p", "response_a": "x", "response_b": "y"},
        **{"preference.responses": ["tie"], "preference.responses.users": ["u"]},
        "preference.responses.status": ["submitted"],
    }
    with_bom = tmp_path / "records.json"
    with_bom.write_text(json.dumps([record]), encoding="utf-8-sig")
    assert len(parse_label_file(with_bom, "argilla").labels) == 1
    binary = tmp_path / "records.jsonl"
    binary.write_bytes(b"\x89PNG\r\n\x1a\n\x00\x00" * 20)
    [problem] = parse_label_file(binary, "argilla").problems
    assert "binary data" in problem.message


# case -> (the input to make under tmp_path, charter's arguments, message after the path)
NOT_DATASETS = "not a file or a Hugging Face datasets folder (no state.json or dataset_dict.json"
CLI_CASES = {
    "csv-binary": (
        lambda tmp: _write(tmp / "l.csv", b"prompt\n\x00\x01"),
        "csv",
        ":2: binary data (a NUL byte), not UTF-8 text",
    ),
    "argilla-deep": (
        lambda tmp: _write(tmp / "r.json", b"[" * 100_000),
        "argilla",
        ":1: invalid JSON: nested more than 100 levels deep",
    ),
    "trl-plain-folder": (
        lambda tmp: _folder(tmp / "prefs"),
        "trl",
        f": is a directory, {NOT_DATASETS} from save_to_disk)",
    ),
}


def _write(path: Path, data: bytes) -> Path:
    path.write_bytes(data)
    return path


def _folder(path: Path) -> Path:
    path.mkdir()
    return path


@pytest.mark.parametrize("case", sorted(CLI_CASES))
def test_hostile_inputs_of_the_new_formats_give_one_line_and_exit_1(tmp_path: Path, case: str) -> None:
    make, fmt, message = CLI_CASES[case]
    path = make(tmp_path)
    store = Store.create(tmp_path / "store")
    before = stored_files(store)
    result = run_charter("import-labels", "--format", fmt, str(path), "--store", str(store.root))
    assert result.returncode == 1, result.stdout
    assert result.stderr == f"error: {path}{message}\n"
    assert stored_files(store) == before
