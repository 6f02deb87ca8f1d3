"""Human-label import: the three formats, idempotence, and every bad row located and refused."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from tasks.core.conversation import parse_hh_transcript, response_id
from tasks.core.errors import InputError
from tasks.ingest.human_labels import import_labels, parse_label_file
from tasks.ingest.ingest import ingest_label_file, ingest_prompt_set
from tasks.store.runs import RunContext
from tasks.store.store import Store
from tests.conftest import stored_files

PROJECT_ROOT = Path(__file__).resolve().parents[2]
SAMPLE_LABELS = PROJECT_ROOT / "datasets" / "healthcare-scheduling" / "human-labels.jsonl"
SAMPLE_PROMPTS = PROJECT_ROOT / "datasets" / "healthcare-scheduling" / "prompts.jsonl"

GOOD_ROW = {
    "prompt": "Can I book a flu shot on Saturday?",
    "response_a": "Yes: Saturday 9:00 or 10:30 at Northgate. Which suits you?",
    "response_b": "I cannot help with medical questions.",
    "choice": "a",
    "annotator": "ana",
    "confidence": 0.9,
}


def write_jsonl(path: Path, rows: list[object]) -> Path:
    path.write_text(
        "".join((r if isinstance(r, str) else json.dumps(r)) + "\n" for r in rows), encoding="utf-8"
    )
    return path


def test_hh_rlhf_sample_imports_997_labels_once(run: RunContext, hh_rlhf_sample: Path) -> None:
    parsed = parse_label_file(hh_rlhf_sample, "hh-rlhf")
    # Three of the 1,000 published rows have an empty chosen reply: refused, by line.
    assert [(p.line, p.field, p.message) for p in parsed.problems] == [
        (line, "chosen", "the final Assistant reply of chosen is empty") for line in (87, 517, 926)
    ]
    first = import_labels(run, parsed, skip_invalid=True)
    second = import_labels(run, parse_label_file(hh_rlhf_sample, "hh-rlhf"), skip_invalid=True)
    assert (first.labels_added, second.labels_added) == (997, 0)
    assert run.store.count("human_labels") == 997


def test_hh_rlhf_choice_points_at_the_chosen_reply(run: RunContext, hh_rlhf_sample: Path) -> None:
    lines = hh_rlhf_sample.read_text(encoding="utf-8").splitlines()
    parsed = parse_label_file(hh_rlhf_sample, "hh-rlhf")
    by_row = {label["source_row"]: label for label in parsed.labels}
    for line_number in (1, 2, 500, 1000):
        record = json.loads(lines[line_number - 1])
        chosen_reply = parse_hh_transcript(record["chosen"])[-1]["content"]
        label = by_row[line_number]
        assert label["preferred_id"] == response_id(chosen_reply)
        shown = label["response_a"] if label["choice"] == "a" else label["response_b"]
        assert shown == chosen_reply
        # Canonical order: the worker's display order is unknown, so a is the smaller id.
        assert label["response_a_id"] < label["response_b_id"]


def test_hh_transcripts_with_repeated_speakers_are_merged() -> None:
    messages = parse_hh_transcript(
        "\n\nHuman: hi\n\nAssistant: one\n\nAssistant: two\n\nHuman: ok\n\nAssistant: bye"
    )
    assert [m["role"] for m in messages] == ["user", "assistant", "user", "assistant"]
    assert messages[1]["content"] == "one\n\ntwo"


def test_bundled_sample_links_labels_to_prompt_families(run: RunContext) -> None:
    ingest_prompt_set(run, SAMPLE_PROMPTS)
    result = ingest_label_file(run, SAMPLE_LABELS, "charter")
    assert result.labels_added == result.labels_read == 60
    # Every label's conversation is one of the prompt set's, with its family.
    labels = run.store.read("human_labels").to_pylist()
    families = {
        row["prompt_id"]: row["family"] for row in run.store.read("prompts").to_pylist() if row["family"]
    }
    assert {label["prompt_id"] for label in labels} <= set(families)
    assert len({families[label["prompt_id"]] for label in labels}) >= 9


def test_charter_format_multi_turn_and_tie(run: RunContext, tmp_path: Path) -> None:
    messages = [
        {"role": "user", "content": "I need to move my Tuesday visit."},
        {"role": "assistant", "content": "Sure, which day works?"},
        {"role": "user", "content": "Thursday afternoon"},
    ]
    path = write_jsonl(
        tmp_path / "labels.jsonl",
        [
            {
                "messages": messages,
                "response_a": "Thursday 2pm is free.",
                "response_b": "Thursday 3pm is free.",
                "choice": "tie",
            }
        ],
    )
    result = ingest_label_file(run, path, "charter", annotator="dana", family="rescheduling-cancelling")
    assert result.labels_added == 1
    [label] = run.store.read("human_labels").to_pylist()
    assert label["choice"] == "tie" and label["preferred_id"] is None and label["annotator"] == "dana"
    [prompt] = run.store.read("prompts").to_pylist()
    assert json.loads(prompt["messages"]) == messages
    assert prompt["family"] == "rescheduling-cancelling" and prompt["text"] == "Thursday afternoon"


def label_studio_export() -> list[dict]:
    return [
        {
            "id": 11,
            "data": {
                "prompt": "Do you take BlueHarbor PPO?",
                "answer1": "Yes, at all sites.",
                "answer2": "Call billing.",
            },
            "annotations": [
                {
                    "completed_by": {"id": 1, "email": "ana@clinic.example"},
                    "result": [
                        {
                            "from_name": "comparison",
                            "to_name": "answer1",
                            "type": "pairwise",
                            "value": {"selected": "right"},
                        }
                    ],
                },
                {"completed_by": 2, "result": [{"type": "pairwise", "value": {"selected": "left"}}]},
                {"completed_by": 3, "was_cancelled": True, "result": []},
            ],
        },
        {
            "id": 12,
            "data": {"text1": "Parking is free.", "text2": "Parking costs $2.", "prompt": "Is parking free?"},
            "annotations": [
                {"completed_by": 2, "result": [{"type": "choices", "value": {"choices": ["Tie"]}}]}
            ],
        },
    ]


def test_label_studio_pairwise_export(run: RunContext, tmp_path: Path) -> None:
    path = tmp_path / "export.json"
    path.write_text(json.dumps(label_studio_export()), encoding="utf-8")
    result = ingest_label_file(run, path, "label-studio")
    assert result.labels_added == 3
    labels = sorted(
        run.store.read("human_labels").to_pylist(), key=lambda r: (r["source_row"], r["annotator"])
    )
    assert [(r["annotator"], r["choice"]) for r in labels] == [
        ("label-studio:2", "a"),
        ("label-studio:ana@clinic.example", "b"),
        ("label-studio:2", "tie"),
    ]
    assert labels[1]["preferred_id"] == response_id("Call billing.")
    # Two annotators on one pair share the pair id.
    assert labels[0]["pair_id"] == labels[1]["pair_id"]


# Each malformed label file: (format, file content, expected row, field, message fragment).
MALFORMED_LABEL_FILES = {
    "invalid-json": ("charter", ['{"prompt": "x",'], 1, None, "invalid JSON"),
    "not-an-object": ("charter", ["[1, 2]"], 1, None, "expected a JSON object"),
    "bad-choice": ("charter", [{**GOOD_ROW, "choice": "left"}], 1, "choice", "not one of a, b, tie"),
    "missing-response": (
        "charter",
        [{k: v for k, v in GOOD_ROW.items() if k != "response_b"}],
        1,
        "response_b",
        "missing",
    ),
    "confidence-out-of-range": (
        "charter",
        [{**GOOD_ROW, "confidence": 1.5}],
        1,
        "confidence",
        "outside [0, 1]",
    ),
    "confidence-not-number": (
        "charter",
        [{**GOOD_ROW, "confidence": "high"}],
        1,
        "confidence",
        "expected a number",
    ),
    "unknown-field": ("charter", [{**GOOD_ROW, "chioce": "a"}], 1, "chioce", "unknown field"),
    "identical-responses": (
        "charter",
        [{**GOOD_ROW, "response_b": GOOD_ROW["response_a"]}],
        1,
        "response_b",
        "identical",
    ),
    "prompt-and-messages": (
        "charter",
        [{**GOOD_ROW, "messages": [{"role": "user", "content": "x"}]}],
        1,
        "prompt",
        "exactly one of",
    ),
    "messages-end-with-assistant": (
        "charter",
        [
            {
                **{k: v for k, v in GOOD_ROW.items() if k != "prompt"},
                "messages": [{"role": "user", "content": "x"}, {"role": "assistant", "content": "y"}],
            }
        ],
        1,
        "messages",
        "end with a user message",
    ),
    "missing-annotator": (
        "charter",
        [{k: v for k, v in GOOD_ROW.items() if k != "annotator"}],
        1,
        "annotator",
        "--annotator",
    ),
    "empty-prompt": ("charter", [{**GOOD_ROW, "prompt": "  "}], 1, "prompt", "must not be empty"),
    "bad-row-after-good": (
        "charter",
        [GOOD_ROW, GOOD_ROW, {**GOOD_ROW, "choice": None}],
        3,
        "choice",
        "missing",
    ),
    "hh-missing-rejected": (
        "hh-rlhf",
        [{"chosen": "\n\nHuman: hi\n\nAssistant: hello"}],
        1,
        "rejected",
        "missing",
    ),
    "hh-different-history": (
        "hh-rlhf",
        [{"chosen": "\n\nHuman: hi\n\nAssistant: a", "rejected": "\n\nHuman: hey\n\nAssistant: b"}],
        1,
        "rejected",
        "differ before their final",
    ),
    "hh-same-reply": (
        "hh-rlhf",
        [{"chosen": "\n\nHuman: hi\n\nAssistant: a", "rejected": "\n\nHuman: hi\n\nAssistant: a"}],
        1,
        "rejected",
        "same final reply",
    ),
    "hh-empty-final-reply": (
        "hh-rlhf",
        [{"chosen": "\n\nHuman: hi\n\nAssistant: hello", "rejected": "\n\nHuman: hi\n\nAssistant: "}],
        1,
        "rejected",
        "final Assistant reply of rejected is empty",
    ),
    "hh-whitespace-final-reply": (
        "hh-rlhf",
        [{"chosen": "\n\nHuman: hi\n\nAssistant:  \n\t ", "rejected": "\n\nHuman: hi\n\nAssistant: no"}],
        1,
        "chosen",
        "final Assistant reply of chosen is empty",
    ),
    "hh-chosen-without-assistant": (
        "hh-rlhf",
        [{"chosen": "\n\nHuman: hi", "rejected": "\n\nHuman: hi\n\nAssistant: no"}],
        1,
        "chosen",
        "chosen must end with an Assistant reply",
    ),
    "hh-rejected-not-a-transcript": (
        "hh-rlhf",
        [{"chosen": "\n\nHuman: hi\n\nAssistant: a", "rejected": "general kenobi"}],
        1,
        "rejected",
        "not an hh-rlhf transcript",
    ),
    "hh-not-a-transcript": (
        "hh-rlhf",
        [{"chosen": "hello there", "rejected": "general kenobi"}],
        1,
        "chosen",
        "not an hh-rlhf transcript",
    ),
}


@pytest.mark.parametrize("case", sorted(MALFORMED_LABEL_FILES))
def test_malformed_label_files_are_located_and_change_nothing(
    store: Store, tmp_path: Path, case: str
) -> None:
    fmt, rows, row, field, fragment = MALFORMED_LABEL_FILES[case]
    path = write_jsonl(tmp_path / f"{case}.jsonl", rows)
    before = stored_files(store)
    run = RunContext(run_id="r", flow="test", store=store, parameters={})
    with pytest.raises(InputError) as raised:
        ingest_label_file(run, path, fmt)
    matching = [p for p in raised.value.problems if fragment in p.message]
    assert matching, str(raised.value)
    assert (matching[0].path, matching[0].line, matching[0].field) == (str(path), row, field)
    assert f"{path}:{row}" in str(raised.value)
    assert stored_files(store) == before


MALFORMED_LABEL_STUDIO = {
    "not-a-list": ({"tasks": []}, None, None, "list of tasks"),
    "no-response-keys": (
        [{"data": {"prompt": "p", "a": "x", "b": "y"}, "annotations": []}],
        1,
        "data",
        "no response texts",
    ),
    "no-selection": (
        [{"data": {"prompt": "p", "answer1": "x", "answer2": "y"}, "annotations": [{"result": []}]}],
        1,
        "annotations[1].result",
        "no pairwise selection",
    ),
    "annotations-not-a-list": (
        [{"data": {"prompt": "p", "answer1": "x", "answer2": "y"}, "annotations": 5}],
        1,
        "annotations",
        "expected a list of annotations, got int",
    ),
    "only-cancelled": (
        [{"data": {"prompt": "p", "answer1": "x", "answer2": "y"}, "annotations": [{"was_cancelled": True}]}],
        1,
        "annotations",
        "no completed annotation",
    ),
}


@pytest.mark.parametrize("case", sorted(MALFORMED_LABEL_STUDIO))
def test_malformed_label_studio_exports_name_the_task(store: Store, tmp_path: Path, case: str) -> None:
    export, task, field, fragment = MALFORMED_LABEL_STUDIO[case]
    path = tmp_path / "export.json"
    path.write_text(json.dumps(export), encoding="utf-8")
    before = stored_files(store)
    with pytest.raises(InputError) as raised:
        ingest_label_file(RunContext(run_id="r", flow="t", store=store, parameters={}), path, "label-studio")
    problem = next(p for p in raised.value.problems if fragment in p.message)
    assert (problem.line, problem.field) == (task, field)
    if task is not None:
        assert f"{path} (task {task})" in str(raised.value)
    assert stored_files(store) == before


def test_skip_invalid_writes_good_rows_and_a_rejects_file(run: RunContext, tmp_path: Path) -> None:
    rows = [GOOD_ROW, {**GOOD_ROW, "choice": "maybe"}, "{broken", {**GOOD_ROW, "annotator": "bilal"}]
    path = write_jsonl(tmp_path / "mixed.jsonl", rows)
    with pytest.raises(InputError):
        ingest_label_file(run, path, "charter")
    assert run.store.count("human_labels") == 0
    result = ingest_label_file(run, path, "charter", skip_invalid=True)
    assert (result.labels_added, result.rejected) == (2, 2)
    rejects = [json.loads(line) for line in result.rejects_path.read_text().splitlines()]
    assert [r["row"] for r in rejects] == [2, 3]
    assert rejects[0]["record"]["choice"] == "maybe" and "choice" in rejects[0]["problems"][0]
    again = ingest_label_file(run, path, "charter", skip_invalid=True)
    assert again.labels_added == 0
    assert run.store.count("human_labels") == 2


def test_a_file_with_only_bad_rows_is_refused_even_when_skipping(store: Store, tmp_path: Path) -> None:
    path = write_jsonl(tmp_path / "bad.jsonl", [{**GOOD_ROW, "choice": "x"}])
    with pytest.raises(InputError):
        ingest_label_file(
            RunContext(run_id="r", flow="t", store=store, parameters={}), path, "charter", skip_invalid=True
        )
    assert store.count("human_labels") == 0


def test_same_content_under_another_path_adds_nothing(run: RunContext, tmp_path: Path) -> None:
    first = write_jsonl(tmp_path / "a.jsonl", [GOOD_ROW])
    second = write_jsonl(tmp_path / "copy.jsonl", [GOOD_ROW])
    assert ingest_label_file(run, first, "charter").labels_added == 1
    assert ingest_label_file(run, second, "charter").labels_added == 0


def test_unknown_format_and_missing_file(store: Store, tmp_path: Path) -> None:
    run = RunContext(run_id="r", flow="t", store=store, parameters={})
    with pytest.raises(InputError, match="unknown label format"):
        ingest_label_file(run, SAMPLE_LABELS, "excel")
    with pytest.raises(InputError, match="file not found"):
        ingest_label_file(run, tmp_path / "absent.jsonl", "charter")
