"""Hostile and broken input files through the real ``charter`` command: one clear line, exit 1,
no traceback, the store exactly as it was. The probe that found these is issue 12."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path

import pytest

from tasks.core.jsonl import MAX_RECORD_BYTES
from tasks.ingest.ingest import ingest_label_file, ingest_prompt_set
from tasks.store.runs import RunContext
from tasks.store.store import Store
from tests.conftest import run_charter
from tests.core.hostile import DEEP_BRACKETS, alias_bomb, folder, write

GOOD_LABEL = {
    "prompt": "Can I book a flu shot on Saturday?",
    "response_a": "Yes: Saturday 9:00 or 10:30 at Northgate.",
    "response_b": "I cannot help with medical questions.",
    "choice": "a",
    "annotator": "ana",
}
# "café" in Latin-1: the é (0xE9) is not followed by the continuation byte UTF-8 needs.
LATIN_1_LABEL = json.dumps({**GOOD_LABEL, "comment": "café"}, ensure_ascii=False).encode("latin-1")
HUGE_COMMENT = 50_000_000
HUGE_LINE_BYTES = len(json.dumps({**GOOD_LABEL, "comment": ""})) + HUGE_COMMENT + 1


# case -> (how to make the input under tmp_path, charter's arguments before --store, message after "path")
CASES: dict[str, tuple[Callable[[Path], Path], list[str], str]] = {
    "labels-nested-100000-deep": (
        lambda tmp: write(tmp / "deep.jsonl", DEEP_BRACKETS + "\n"),
        ["import-labels"],
        ":1: invalid JSON: nested more than 100 levels deep",
    ),
    "labels-a-directory": (
        lambda tmp: folder(tmp / "labels"),
        ["import-labels"],
        ": is a directory, not a file",
    ),
    "labels-binary": (
        lambda tmp: write(tmp / "labels.jsonl", b"\x89PNG\r\n\x1a\n\x00\x00\x00\rIHDR\n" * 50),
        ["import-labels"],
        ":3: binary data (a NUL byte), not UTF-8 text",
    ),
    "labels-latin-1": (
        lambda tmp: write(tmp / "labels.jsonl", LATIN_1_LABEL),
        ["import-labels"],
        f":1: not UTF-8 text (invalid continuation byte at byte {LATIN_1_LABEL.index(0xE9) + 1} of the line)",
    ),
    "labels-50-mb-line": (
        lambda tmp: write(
            tmp / "labels.jsonl", json.dumps({**GOOD_LABEL, "comment": "x" * HUGE_COMMENT}) + "\n"
        ),
        ["import-labels"],
        f":1: the line is {HUGE_LINE_BYTES:,} bytes; one record may have at most {MAX_RECORD_BYTES:,}",
    ),
    "labels-empty-file": (
        lambda tmp: write(tmp / "labels.jsonl", ""),
        ["import-labels"],
        ": the file has no labels",
    ),
    "hh-rlhf-empty-reply": (
        lambda tmp: write(
            tmp / "hh.jsonl",
            json.dumps(
                {"chosen": "\n\nHuman: hi\n\nAssistant: ", "rejected": "\n\nHuman: hi\n\nAssistant: no"}
            ),
        ),
        ["import-labels", "--format", "hh-rlhf"],
        ":1 [chosen]: the final Assistant reply of chosen is empty",
    ),
    "label-studio-nested-100000-deep": (
        lambda tmp: write(tmp / "export.json", '[{"data": {}},\n' + DEEP_BRACKETS),
        ["import-labels", "--format", "label-studio"],
        ":2: invalid JSON: nested more than 100 levels deep",
    ),
    "label-studio-a-directory": (
        lambda tmp: folder(tmp / "export.json"),
        ["import-labels", "--format", "label-studio"],
        ": is a directory, not a file",
    ),
    "prompts-nested-100000-deep": (
        lambda tmp: write(
            tmp / "prompts.jsonl", '{"id": "p1", "family": "booking", "text": "hi"}\n' + DEEP_BRACKETS
        ),
        ["ingest", "--prompts"],
        ":2: invalid JSON: nested more than 100 levels deep",
    ),
    "constitution-alias-bomb": (
        lambda tmp: write(tmp / "bomb.yaml", alias_bomb(9)),
        ["ingest", "--constitution"],
        ":5: aliases expand to more than 10,000 values",
    ),
    "constitution-a-directory": (
        lambda tmp: folder(tmp / "constitution.yaml"),
        ["ingest", "--constitution"],
        ": is a directory, not a file",
    ),
}


def listing(root: Path) -> list[str]:
    """Every path under the store: equal before and after means nothing at all was written."""
    return sorted(str(path.relative_to(root)) for path in root.rglob("*"))


@pytest.mark.parametrize("case", sorted(CASES))
def test_hostile_input_gives_one_located_line_exit_1_and_an_unchanged_store(
    tmp_path: Path, case: str
) -> None:
    make, command, message = CASES[case]
    path = make(tmp_path)
    store = Store.create(tmp_path / "store").root
    before = listing(store)
    result = run_charter(*command, str(path), "--store", str(store))
    assert result.returncode == 1, result.stdout
    assert result.stderr == f"error: {path}{message}\n"
    assert listing(store) == before


def test_a_byte_order_mark_is_accepted_in_label_files_and_prompt_sets(
    run: RunContext, tmp_path: Path
) -> None:
    labels = write(tmp_path / "labels.jsonl", b"\xef\xbb\xbf" + json.dumps(GOOD_LABEL).encode() + b"\n")
    assert ingest_label_file(run, labels, "charter").labels_added == 1
    prompts = tmp_path / "prompts.jsonl"
    prompts.write_text(
        json.dumps({"id": "p1", "family": "booking", "text": "hi"}) + "\n", encoding="utf-8-sig"
    )
    assert ingest_prompt_set(run, prompts) == 1
    export = tmp_path / "export.json"
    task = {
        "data": {"prompt": "p", "answer1": "x", "answer2": "y"},
        "annotations": [{"result": [{"value": {"selected": "left"}}]}],
    }
    export.write_text(json.dumps([task]), encoding="utf-8-sig")
    assert ingest_label_file(run, export, "label-studio").labels_added == 1
