"""The one atomic writer: a hidden temporary file beside the target, fsynced, renamed, the folder fsynced;
and every file charter writes goes through it."""

from __future__ import annotations

import json
import os
from collections.abc import Callable
from pathlib import Path

import pytest

from tasks.core.files import atomic_target, write_atomically, write_jsonl_atomically
from tasks.ingest.human_labels import import_labels, parse_label_file
from tasks.report.report import write_report
from tasks.store.exports import write_records
from tasks.store.runs import RunContext
from tasks.store.store import Store
from tasks.train.lineage import write_lineage


@pytest.fixture
def fsynced(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """The paths fsynced from here on, in order (the real fsync still runs)."""
    paths: list[str] = []
    real_fsync = os.fsync

    def recording_fsync(fd: int) -> None:
        paths.append(os.readlink(f"/proc/self/fd/{fd}"))
        real_fsync(fd)

    monkeypatch.setattr(os, "fsync", recording_fsync)
    return paths


def test_the_target_keeps_its_old_content_until_the_new_file_is_renamed_over_it(tmp_path: Path) -> None:
    target = tmp_path / "report.md"
    target.write_text("old", encoding="utf-8")
    with atomic_target(target) as partial:
        partial.write_text("new", encoding="utf-8")
        assert partial.parent == tmp_path and partial.name.startswith(".report.md.")
        assert target.read_text(encoding="utf-8") == "old"
    assert target.read_text(encoding="utf-8") == "new"
    assert [p.name for p in tmp_path.iterdir()] == ["report.md"]


def test_a_failed_write_leaves_the_old_file_and_no_temporary_file(tmp_path: Path) -> None:
    target = tmp_path / "set.jsonl"
    write_jsonl_atomically(target, [{"n": 1}])

    def records():
        yield {"n": 2}
        raise RuntimeError("disk full")

    with pytest.raises(RuntimeError, match="disk full"):
        write_jsonl_atomically(target, records())
    assert json.loads(target.read_text(encoding="utf-8")) == {"n": 1}
    assert [p.name for p in tmp_path.iterdir()] == ["set.jsonl"]


def test_the_data_is_fsynced_before_the_rename_and_the_folder_after(
    tmp_path: Path, fsynced: list[str]
) -> None:
    target = write_atomically(tmp_path / "sub" / "lineage.json", "{}\n")
    partial, folder = fsynced
    assert Path(partial).parent == target.parent and Path(partial).name.startswith(".lineage.json.")
    assert Path(folder) == target.parent
    assert target.read_text(encoding="utf-8") == "{}\n"


def _export(tmp_path: Path, store: Store) -> Path:
    return write_records(
        [{"prompt": "p", "chosen": "c", "rejected": "r"}], tmp_path / "out" / "set.jsonl", "jsonl"
    )


def _report(tmp_path: Path, store: Store) -> Path:
    return write_report(store, tmp_path / "out", title="t", stages=[]).markdown


def _lineage(tmp_path: Path, store: Store) -> Path:
    return write_lineage(tmp_path / "out", {"run_id": "r"})


def _rejects(tmp_path: Path, store: Store) -> Path:
    labels = tmp_path / "labels.jsonl"
    good = {
        "prompt": "Book me in?",
        "response_a": "Yes.",
        "response_b": "No.",
        "choice": "a",
        "annotator": "x",
    }
    labels.write_text(json.dumps(good) + "\n" + json.dumps({**good, "choice": "c"}) + "\n", encoding="utf-8")
    run = RunContext(run_id="r", flow="test", store=store, parameters={})
    result = import_labels(run, parse_label_file(labels, "charter"), skip_invalid=True)
    assert result.rejects_path is not None
    return result.rejects_path


WRITERS: dict[str, Callable[[Path, Store], Path]] = {
    "export": _export,
    "report": _report,
    "lineage": _lineage,
    "rejects": _rejects,
}


@pytest.mark.parametrize("writer", sorted(WRITERS))
def test_every_file_charter_writes_is_fsynced_and_its_folder_too(
    tmp_path: Path, store: Store, fsynced: list[str], writer: str
) -> None:
    path = WRITERS[writer](tmp_path, store)
    assert path.is_file()
    partials = [Path(p) for p in fsynced if Path(p).name.startswith(f".{path.name}.")]
    assert partials and all(p.parent == path.parent for p in partials), fsynced
    assert str(path.parent) in fsynced
    assert not [p for p in path.parent.iterdir() if p.name.endswith(".partial")]
