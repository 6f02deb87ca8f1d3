"""Importing human pairwise preference labels from annotation tools into the store.

Six formats, one module each: charter's own JSONL (:mod:`.charter_jsonl`), Anthropic's
hh-rlhf JSONL of ``chosen``/``rejected`` transcripts (:mod:`.hh_rlhf`), Label Studio's JSON
export of a pairwise-comparison project (:mod:`.label_studio`), Argilla v2 records
(:mod:`.argilla`), a CSV spreadsheet (:mod:`.csv_labels`) and TRL's preference format
(:mod:`.trl_preferences`); Argilla and TRL data may also be a Hugging Face ``datasets``
folder. Each input is parsed completely before anything is written; every bad row is
reported with its file, row and field. By default one bad row means nothing is written;
with ``skip_invalid`` the good rows are written and the bad ones go to a rejects file.

Label ids hash the vote, not the file (see :mod:`.label_rows`): the annotation tool's own id
for it where the format has one, else the pair, annotator, preferred response, confidence
and comment. So importing a file twice, a copy of it with other line endings, or a later
export that repeats every earlier annotation adds only the votes that are new or changed.
The file's path, sha256 and row are kept in each row as provenance.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from tasks.core.errors import InputError, Problem, input_file
from tasks.core.files import write_jsonl_atomically
from tasks.core.hashing import file_sha256
from tasks.core.progress import progress
from tasks.ingest.human_labels.argilla import argilla_rows
from tasks.ingest.human_labels.charter_jsonl import charter_rows
from tasks.ingest.human_labels.csv_labels import csv_rows
from tasks.ingest.human_labels.hh_rlhf import hh_rlhf_rows
from tasks.ingest.human_labels.label_rows import LabelOrigin
from tasks.ingest.human_labels.label_studio import label_studio_rows
from tasks.ingest.human_labels.sources import folder_sha256
from tasks.ingest.human_labels.trl_preferences import trl_rows
from tasks.ingest.prompt_sets import PromptRecord, prompt_record
from tasks.store.runs import RunContext
from tasks.store.store import Store

_ROW_PARSERS = {
    "charter": charter_rows,
    "hh-rlhf": hh_rlhf_rows,
    "label-studio": label_studio_rows,
    "argilla": argilla_rows,
    "csv": csv_rows,
    "trl": trl_rows,
}
FORMATS = tuple(_ROW_PARSERS)
# Formats whose data may be a Hugging Face ``datasets`` folder (save_to_disk) instead of a file.
_FOLDER_FORMATS = {"argilla", "trl"}
# hh-rlhf conversations have no family of their own; without --family they are grouped under the format.
_DEFAULT_FAMILY = {"hh-rlhf": "hh-rlhf"}


@dataclass
class ParsedLabels:
    """A label file, parsed: rows ready for the store, plus every row that could not be used."""

    path: str
    source_sha256: str
    labels: list[dict[str, Any]] = field(default_factory=list)
    prompts: list[PromptRecord] = field(default_factory=list)
    problems: list[Problem] = field(default_factory=list)
    rejected: list[dict[str, Any]] = field(default_factory=list)

    def blocking_problems(self, skip_invalid: bool) -> list[Problem]:
        """The problems that stop an import: any at all, unless skipping leaves good rows to write."""
        return self.problems if self.problems and (not skip_invalid or not self.labels) else []


@dataclass(frozen=True)
class ImportResult:
    labels_read: int
    labels_added: int
    prompts_added: int
    rejected: int
    rejects_path: Path | None


def parse_label_file(
    path: str | Path, fmt: str, *, annotator: str | None = None, family: str | None = None
) -> ParsedLabels:
    """Parse a whole label file in ``fmt``; problems are collected, not raised."""
    if fmt not in FORMATS:
        raise InputError.single(str(path), f"unknown label format {fmt!r}; formats: {', '.join(FORMATS)}")
    source = str(path)
    if fmt in _FOLDER_FORMATS and Path(path).is_dir():
        file, sha256 = Path(path), folder_sha256(path)
    else:
        file = input_file(path)
        sha256 = file_sha256(file)
    origin = LabelOrigin(source_format=fmt, source_file=str(file.resolve()), source_sha256=sha256)
    parsed = ParsedLabels(path=source, source_sha256=origin.source_sha256)
    prompt_set = f"labels/{file.stem}"
    with progress(f"reading {file.name}", unit="rows") as bar:
        for row_number, record, outcome in _ROW_PARSERS[fmt](path, origin, annotator):
            bar.advance()
            if isinstance(outcome, list):
                parsed.problems.extend(outcome)
                parsed.rejected.append(
                    {"row": row_number, "problems": [str(p) for p in outcome], "record": record}
                )
                continue
            label, messages, row_family = outcome
            parsed.labels.append(label)
            parsed.prompts.append(
                prompt_record(messages, prompt_set, row_family or family or _DEFAULT_FAMILY.get(fmt))
            )
    if not parsed.labels and not parsed.problems:
        parsed.problems.append(Problem(source, "the file has no labels"))
    return parsed


def import_labels(run: RunContext, parsed: ParsedLabels, *, skip_invalid: bool = False) -> ImportResult:
    """Write a parsed file's labels (and their prompts) to the run's store.

    Raises :class:`InputError`, writing nothing, if any row is bad and ``skip_invalid`` is off.
    """
    if parsed.blocking_problems(skip_invalid):
        raise InputError(parsed.problems)
    if Path(parsed.path).is_dir():  # a datasets folder: its hash covers every file in it
        run.input_hashes[str(Path(parsed.path).resolve())] = parsed.source_sha256
    else:
        run.add_input(parsed.path)
    rejects_path = _write_rejects(run.store, parsed) if parsed.rejected else None
    prompts_added = run.append("prompts", [p.row() for p in parsed.prompts])
    labels_added = run.append("human_labels", parsed.labels)
    return ImportResult(
        labels_read=len(parsed.labels),
        labels_added=labels_added,
        prompts_added=prompts_added,
        rejected=len(parsed.rejected),
        rejects_path=rejects_path,
    )


def _write_rejects(store: Store, parsed: ParsedLabels) -> Path:
    path = store.root / "rejects" / f"{Path(parsed.path).stem}.{parsed.source_sha256[:12]}.rejects.jsonl"
    return write_jsonl_atomically(path, parsed.rejected)
