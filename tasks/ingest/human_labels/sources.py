"""What the Argilla and TRL readers share: Hugging Face ``datasets`` folders, and conversations
that arrive as a list or as the JSON text of one.

Both tools hand their data over as a ``datasets`` folder (``save_to_disk``) as often as a file,
so a label import may name a folder. A folder has no single file to hash, so its provenance
hash covers every file in it; and the ``datasets`` package (charter's ``hf`` extra) is only
imported when a folder is read, so importing a JSONL file never pays for it.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from tasks.core.conversation import Message, messages_problem, response_id
from tasks.core.errors import InputError, Problem
from tasks.core.hashing import file_sha256
from tasks.core.jsonl import MAX_RECORD_BYTES, parse_json

# The files ``Dataset.save_to_disk`` and ``DatasetDict.save_to_disk`` write at a folder's top.
_DATASET_MARKERS = ("state.json", "dataset_dict.json")


def is_datasets_folder(path: str | Path) -> bool:
    folder = Path(path)
    return folder.is_dir() and any((folder / name).is_file() for name in _DATASET_MARKERS)


def folder_sha256(path: str | Path) -> str:
    """sha256 over every file's relative path and sha256, in path order: changes when any file does."""
    root = Path(path)
    digest = hashlib.sha256()
    for file in sorted(p for p in root.rglob("*") if p.is_file()):
        digest.update(f"{file.relative_to(root).as_posix()}\0{file_sha256(file)}\n".encode())
    return digest.hexdigest()


def datasets_folder_rows(path: str | Path) -> Iterator[tuple[int, str, dict[str, Any] | Problem]]:
    """``(row, unit, record)`` for each row of a ``save_to_disk`` folder, or one located problem.

    The unit is ``row`` (``<split> row`` for a DatasetDict) so that a problem reads
    ``folder (row 3)``. Class-label columns (Argilla stores label suggestions as ones) come
    back as their names, as they read in the tool.
    """
    source = str(path)
    if not is_datasets_folder(path):
        yield (
            0,
            "row",
            Problem(
                source,
                "is a directory, not a file or a Hugging Face datasets folder "
                "(no state.json or dataset_dict.json from save_to_disk)",
            ),
        )
        return
    try:
        from datasets import ClassLabel, DatasetDict, load_from_disk
    except ImportError:
        yield (
            0,
            "row",
            Problem(
                source, "reading a datasets folder needs the datasets package (pip install 'charter[hf]')"
            ),
        )
        return
    try:
        loaded = load_from_disk(source)
    except Exception as exc:  # datasets raises many kinds (missing shards, bad Arrow, bad JSON)
        yield 0, "row", Problem(source, f"cannot load the datasets folder: {type(exc).__name__}: {exc}")
        return
    splits = loaded.items() if isinstance(loaded, DatasetDict) else [(None, loaded)]
    for split, dataset in splits:
        unit = "row" if split is None else f"{split} row"
        labels = {name: f for name, f in dataset.features.items() if isinstance(f, ClassLabel)}
        for number, record in enumerate(dataset, start=1):
            for name, feature in labels.items():
                if isinstance(record.get(name), int) and record[name] >= 0:
                    record[name] = feature.int2str(record[name])
            yield number, unit, record


def conversation(value: Any, source: str, row: int, field: str, unit: str) -> list[Message] | Problem:
    """A prompt conversation given as a list of {role, content}, or as the JSON text of one.

    Keys whose value is None are dropped first: a ``datasets`` column of messages is a struct
    of every key any row used, so a row's messages carry the others as None.
    """
    if isinstance(value, str):
        if len(value) > MAX_RECORD_BYTES:
            return Problem(source, f"longer than {MAX_RECORD_BYTES:,} characters", row, field, unit)
        try:
            value = parse_json(value, source)
        except InputError as exc:
            message = f"not a JSON list of messages: {exc.problems[0].message}"
            return Problem(source, message, row, field, unit)
    if isinstance(value, list):
        value = [{k: v for k, v in m.items() if v is not None} if isinstance(m, dict) else m for m in value]
    reason = messages_problem(value)
    return Problem(source, reason, row, field, unit) if reason else value


def text_problem(value: Any, source: str, row: int, field: str, unit: str) -> Problem | None:
    """Why ``value`` cannot be a prompt or response text (not a string, blank, or too long)."""
    if not isinstance(value, str):
        return Problem(source, f"expected a string, got {type(value).__name__}", row, field, unit)
    if not value.strip():
        return Problem(source, "must not be empty", row, field, unit)
    if len(value) > MAX_RECORD_BYTES:
        return Problem(source, f"longer than {MAX_RECORD_BYTES:,} characters", row, field, unit)
    return None


def in_id_order(chosen: str, rejected: str) -> tuple[str, str, str]:
    """``(response_a, response_b, choice)`` with the responses in id order: for sources that say
    which response was chosen but not where it was shown, so that no position is invented."""
    if response_id(chosen) < response_id(rejected):
        return chosen, rejected, "a"
    return rejected, chosen, "b"
