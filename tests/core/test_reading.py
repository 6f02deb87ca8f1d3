"""Reading users' files: directories, binary data, other encodings, byte-order marks, runaway sizes.

Each problem names the file and the line it is on, and is found in bounded time and memory.
"""

from __future__ import annotations

import json
import time
from pathlib import Path

import pytest

from tasks.core.errors import MAX_TEXT_FILE_BYTES, InputError, read_input_text
from tasks.core.jsonl import MAX_RECORD_BYTES, read_json, read_jsonl
from tests.core.hostile import DEEP_BRACKETS

RECORD = {"prompt": "Can I book a flu shot?", "choice": "a"}


def problems_of(path: Path) -> list[str]:
    return [str(item) for _, item in read_jsonl(path) if not isinstance(item, dict)]


def test_a_directory_is_named_as_one_by_every_reader(tmp_path: Path) -> None:
    for read in (read_input_text, read_json, lambda p: list(read_jsonl(p))):
        with pytest.raises(InputError) as raised:
            read(tmp_path)
        assert str(raised.value) == f"{tmp_path}: is a directory, not a file"


def test_text_files_name_the_line_of_a_bad_byte_and_call_nul_bytes_binary(tmp_path: Path) -> None:
    latin = tmp_path / "latin1.yaml"
    latin.write_bytes("name: clinic\nversion: '1'\ndescription: caf\xe9\n".encode("latin-1"))
    with pytest.raises(InputError) as raised:
        read_input_text(latin)
    message = "not UTF-8 text (invalid continuation byte at byte 17 of the line)"
    assert str(raised.value) == f"{latin}:3: {message}"
    binary = tmp_path / "image.yaml"
    binary.write_bytes(b"\x89PNG\r\n\x1a\n\x00\x00\x00\rIHDR")
    with pytest.raises(InputError) as raised:
        read_input_text(binary)
    assert str(raised.value) == f"{binary}:3: binary data (a NUL byte), not UTF-8 text"


def test_a_byte_order_mark_is_dropped_from_text_and_json(tmp_path: Path) -> None:
    yaml_file = tmp_path / "bom.yaml"
    yaml_file.write_bytes(b"\xef\xbb\xbfname: clinic\n")
    assert read_input_text(yaml_file) == "name: clinic\n"
    jsonl = tmp_path / "bom.jsonl"
    jsonl.write_text(json.dumps(RECORD) + "\n" + json.dumps(RECORD) + "\n", encoding="utf-8-sig")
    assert list(read_jsonl(jsonl)) == [(1, RECORD), (2, RECORD)]
    export = tmp_path / "bom.json"
    export.write_text(json.dumps([RECORD]), encoding="utf-8-sig")
    assert read_json(export) == [RECORD]


def test_an_oversized_hand_written_file_is_refused_before_it_is_read(tmp_path: Path) -> None:
    path = tmp_path / "huge.yaml"
    path.write_bytes(b"# " + b"x" * MAX_TEXT_FILE_BYTES + b"\n")
    with pytest.raises(InputError, match=f"the file is {MAX_TEXT_FILE_BYTES + 3:,} bytes"):
        read_input_text(path)


def test_jsonl_problems_name_their_lines(tmp_path: Path) -> None:
    path = tmp_path / "labels.jsonl"
    path.write_bytes(
        json.dumps(RECORD).encode()
        + b"\n"
        + b'{"prompt": "caf\xe9"}\n'
        + DEEP_BRACKETS.encode()
        + b"\n"
        + b"[" * 150
        + b"]" * 150
        + b"\n"
        + b"\n"
        + b'{"prompt": [1, 2'
    )
    assert problems_of(path) == [
        f"{path}:2: not UTF-8 text (invalid continuation byte at byte 16 of the line)",
        f"{path}:3: invalid JSON: nested more than 100 levels deep",
        f"{path}:4: invalid JSON: nested more than 100 levels deep",
        f"{path}:6: invalid JSON: Expecting ',' delimiter (column 17)",
    ]


def test_a_binary_file_gives_one_problem_not_one_per_line_of_noise(tmp_path: Path) -> None:
    path = tmp_path / "labels.jsonl"
    path.write_bytes(json.dumps(RECORD).encode() + b"\n" + b"\x00\x01\n\x02\n\x03\n" * 100)
    assert problems_of(path) == [f"{path}:2: binary data (a NUL byte), not UTF-8 text"]


def test_a_50_mb_line_is_refused_without_holding_it_and_the_next_line_still_read(tmp_path: Path) -> None:
    path = tmp_path / "labels.jsonl"
    line = json.dumps({**RECORD, "comment": "x" * 50_000_000}) + "\n"
    path.write_text(line + json.dumps(RECORD) + "\n", encoding="utf-8")
    started = time.perf_counter()
    items = list(read_jsonl(path))
    assert time.perf_counter() - started < 1
    size = len(line.encode())
    assert [str(items[0][1])] == [
        f"{path}:1: the line is {size:,} bytes; one record may have at most {MAX_RECORD_BYTES:,}"
    ]
    assert items[1] == (2, RECORD)


def test_deep_json_documents_name_the_line_where_they_go_too_deep(tmp_path: Path) -> None:
    path = tmp_path / "export.json"
    path.write_text('[\n  {"data": {"prompt": "[[["},\n   "x": ' + DEEP_BRACKETS + "\n", encoding="utf-8")
    started = time.perf_counter()
    with pytest.raises(InputError) as raised:
        read_json(path)
    assert time.perf_counter() - started < 1
    assert str(raised.value) == f"{path}:3: invalid JSON: nested more than 100 levels deep"
